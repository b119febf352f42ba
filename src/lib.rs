//! oidc-realm: a standalone OpenID Connect relying-party realm server that speaks
//! Elasticsearch's `_security/oidc/*`, `_security/oauth2/token` and `_security/_authenticate`
//! APIs. See `docs/architecture.md` for the layers.

pub mod app;
pub mod audit;
pub mod auth;
mod claims;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod crypto;
pub mod error;
/// Fuzz-target entry points (`fuzz/`), also run over the committed corpora by
/// `tests/fuzz_corpus.rs`. Only with the `test-util` feature.
#[cfg(any(test, feature = "test-util"))]
pub mod fuzzing;
mod glob;
pub mod http;
mod json;
mod logging;
pub mod metrics;
pub mod model;
pub mod oidc;
pub mod profiles;
pub mod realm;
pub mod reload;
pub mod roles;
pub mod secret;
pub(crate) mod service;
pub mod store;
mod text;
pub mod tokens;

pub use app::AppState;
pub use http::configure;
