//! The services between the HTTP handlers and the domain and storage layers: each takes
//! typed input, does one use case (with its metrics and audit events), and returns a typed
//! result or error that `http::errors` maps. Handlers never build store commands or reach the
//! store.

pub mod grants;
pub mod login;
pub mod role_mappings;
