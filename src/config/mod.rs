//! Configuration: the YAML file an operator edits, turned into typed, validated [`Settings`].
//!
//! `load` reads the file, resolves secret references (`${env:NAME}`, `${file:path}`),
//! validates everything and returns either the settings (with warnings) or **every** problem
//! found, each with its key path. `check-config`, `serve` and (later) reload all call `load`.
//! Code outside this module receives typed values and never re-parses strings.

mod types;
pub use types::*;

mod client_keys;
pub use client_keys::ClientAuthKey;
mod connections;
pub use connections::{
    check_connection_name, check_endpoint, check_scope, ConnectionClientAuth, ConnectionDef,
    ConnectionMode, ConnectionSettings,
};
mod ctx;
mod flatten;
mod keys;
mod load;
mod realm;
mod role_mappings;
mod sections;
pub mod service_tokens;
pub use load::{load, load_str, ConfigError, ConfigErrors, Loaded};

pub mod duration;
