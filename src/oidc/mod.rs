//! OpenID Connect ID-token validation: pure functions, no HTTP, no file or network I/O.
//!
//! - [`jwks`]: [`KeySet`], an immutable snapshot of the OP's signing keys, and key selection.
//! - [`id_token`]: [`validate`] (OpenID Connect Core 1.0 §3.1.3.7) under an
//!   [`IdTokenPolicy`], and the `at_hash` / `c_hash` checks.
//! - [`logout_token`]: Back-Channel Logout tokens, on the same JOSE checks.
//!
//! Nothing here fetches anything: header parameters that name key material (`jku`, `x5u`,
//! `jwk`) make a token invalid, and `x5c` is ignored.

pub mod client;
pub mod id_token;
pub mod jwks;
pub mod logout_token;

#[cfg(test)]
mod tests;

pub use crate::json::MAX_JSON_DEPTH;
pub use id_token::{
    check_at_hash, check_c_hash, validate, IdTokenClaims, IdTokenError, IdTokenPolicy,
};
pub use jwks::{JwksError, Key, KeyFamily, KeySelectError, KeySet};
