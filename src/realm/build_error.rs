//! Why realms could not be built from their settings ([`RealmBuildError`], collected in
//! [`RealmBuildErrors`]); the messages are the operator-facing lines of `check-config`,
//! startup and reload.

use crate::oidc::client::ClientBuildError;
use std::fmt;

/// Why one realm could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealmBuildError {
    /// The realm's HTTP client could not be built (TLS settings, PEM files, proxy).
    #[error("realms.{realm}: cannot build the HTTP client: {error}")]
    HttpClient {
        realm: String,
        error: ClientBuildError,
    },
    /// The realm's `op.jwkset_path` file cannot be read or is not a usable JWKS (`detail`
    /// names the file).
    #[error("realms.{realm}.op.jwkset_path: {detail}")]
    JwksFile { realm: String, detail: String },
    /// `op.discovery`: the provider metadata could not be fetched or is not acceptable, or a
    /// reload needs metadata that is only fetched at start (`code`: a stable reason).
    #[error("realms.{realm}.op.discovery: {detail}")]
    Discovery {
        realm: String,
        code: &'static str,
        detail: String,
    },
}

impl RealmBuildError {
    /// The realm that could not be built.
    pub fn realm(&self) -> &str {
        match self {
            RealmBuildError::HttpClient { realm, .. }
            | RealmBuildError::JwksFile { realm, .. }
            | RealmBuildError::Discovery { realm, .. } => realm,
        }
    }
}

/// Every realm of a configuration that could not be built, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RealmBuildErrors(pub Vec<RealmBuildError>);

impl RealmBuildErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, RealmBuildError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a RealmBuildErrors {
    type Item = &'a RealmBuildError;
    type IntoIter = std::slice::Iter<'a, RealmBuildError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One line per realm, as the callers that report errors as strings (reload, startup) list
/// them.
impl From<RealmBuildErrors> for Vec<String> {
    fn from(errors: RealmBuildErrors) -> Self {
        errors.0.iter().map(ToString::to_string).collect()
    }
}

/// The messages, separated by `; `.
impl fmt::Display for RealmBuildErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RealmBuildErrors {}
