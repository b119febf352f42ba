//! Provider discovery (`op.discovery: true`, OpenID Connect Discovery 1.0 §4).
//!
//! The metadata is fetched from `op.discovery_url` (default
//! `<op.issuer>/.well-known/openid-configuration`) with the realm's own HTTP client (its TLS
//! settings, timeouts, proxy; no redirects; at most [`MAX_METADATA_BYTES`]), parsed strictly
//! (duplicate members refused) and then validated by the `openidconnect` crate's
//! `ProviderMetadata` (the members Discovery §3 requires, URL syntax). Its `issuer` must equal
//! `op.issuer` byte for byte (§4.3), and every endpoint taken from it must be https (plain http
//! only to a loopback host), as the YAML's endpoints must.
//!
//! [`apply`] writes the endpoints into the realm's `op.*`: an endpoint written in the YAML wins,
//! and a YAML endpoint that differs from the metadata is a warning. Discovery runs:
//! - at start (`serve`) and in `check-config` (unless `--offline`), before the realms are
//!   built: a failure is a configuration error naming the realm;
//! - on reload: a realm whose `op.issuer` and `op.discovery_url` are unchanged keeps the
//!   metadata it runs with (no fetch in the reload path, which is synchronous); a realm that
//!   needs metadata it does not have refuses the reload, saying to restart;
//! - periodically, with the JWKS (`op.jwkset_reload_interval`): changed metadata swaps in a
//!   new configuration generation; a failed refresh keeps the last good metadata and is shown
//!   by `_status`.

use crate::clock::UnixMillis;
use crate::config::{
    DiscoveredEndpoints, DiscoverySettings, JwksSource, RealmConfig, ResponseType, Settings,
};
use crate::oidc::client::{Endpoint, OpClient, OpError};
use crate::realm::{RealmBuildError, RealmBuildErrors};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

/// Largest metadata document accepted, in bytes (real providers send a few KiB; Keycloak's,
/// one of the largest, is under 10 KiB).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 members, beyond Core's metadata.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct LogoutMetadata {
    #[serde(default)]
    end_session_endpoint: Option<Url>,
}

impl openidconnect::AdditionalProviderMetadata for LogoutMetadata {}

type ProviderMetadata = openidconnect::ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The endpoints a realm takes from the provider metadata.
pub type Metadata = DiscoveredEndpoints;

/// Why discovery failed. Messages name the realm's keys and the document's members, never
/// a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The document could not be fetched (unreachable, status, redirect, too large...).
    #[error("cannot fetch the provider metadata from {url}: {error}")]
    Fetch { url: String, error: OpError },
    /// Not JSON, or not valid provider metadata.
    #[error("the provider metadata from {url} is not valid: {detail}")]
    Invalid { url: String, detail: String },
    /// `issuer` differs from `op.issuer`.
    #[error("the provider metadata from {url} has issuer {found:?}, but op.issuer is {expected:?}; they must be equal exactly")]
    IssuerMismatch {
        url: String,
        expected: String,
        found: String,
    },
    /// An endpoint of the metadata is not https (nor http to a loopback host).
    #[error("the provider metadata from {url} has an insecure {member} ({value}); only https, or http to a loopback host, is accepted")]
    InsecureEndpoint {
        url: String,
        member: &'static str,
        value: String,
    },
    /// A code-flow realm, and neither the YAML nor the metadata has a token endpoint.
    #[error("the provider metadata from {url} has no token_endpoint, and op.token_endpoint is not set; the code flow needs one")]
    NoTokenEndpoint { url: String },
}

impl DiscoveryError {
    /// A stable snake_case code for logs and `_status`.
    pub fn code(&self) -> &'static str {
        match self {
            DiscoveryError::Fetch {
                error: OpError::ResponseTooLarge { .. },
                ..
            } => "discovery_too_large",
            DiscoveryError::Fetch { .. } => "discovery_unreachable",
            DiscoveryError::Invalid { .. } => "discovery_invalid",
            DiscoveryError::IssuerMismatch { .. } => "discovery_issuer_mismatch",
            DiscoveryError::InsecureEndpoint { .. } => "discovery_insecure_endpoint",
            DiscoveryError::NoTokenEndpoint { .. } => "discovery_no_token_endpoint",
        }
    }
}

/// Provider-supplied text made safe for a message.
fn cap(s: &str) -> String {
    crate::text::Cap {
        max_chars: 300,
        control: Some('?'),
        ellipsis: true,
    }
    .apply(s)
}

fn secure(u: &Url) -> bool {
    match u.scheme() {
        "https" => true,
        "http" => match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

/// Parse and validate a metadata document fetched from `url` for a realm whose `op.issuer`
/// is `expected_issuer`.
pub fn parse(bytes: &[u8], url: &Url, expected_issuer: &str) -> Result<Metadata, DiscoveryError> {
    let invalid = |detail: String| DiscoveryError::Invalid {
        url: url.to_string(),
        detail,
    };
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(DiscoveryError::Fetch {
            url: url.to_string(),
            error: OpError::ResponseTooLarge {
                endpoint: Endpoint::Discovery,
            },
        });
    }
    // Duplicate members refused, nesting bounded; then openidconnect's typed validation.
    let doc = crate::json::parse_strict(bytes, 8).map_err(invalid)?;
    let md: ProviderMetadata =
        serde_json::from_value(doc).map_err(|e| invalid(cap(&e.to_string())))?;
    let issuer: &str = md.issuer();
    if issuer != expected_issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.to_string(),
            expected: expected_issuer.to_string(),
            found: cap(issuer),
        });
    }
    let metadata = Metadata {
        issuer: issuer.to_string(),
        authorization_endpoint: md.authorization_endpoint().url().clone(),
        token_endpoint: md.token_endpoint().map(|u| u.url().clone()),
        userinfo_endpoint: md.userinfo_endpoint().map(|u| u.url().clone()),
        end_session_endpoint: md.additional_metadata().end_session_endpoint.clone(),
        jwks_uri: md.jwks_uri().url().clone(),
    };
    for (member, value) in [
        (
            "authorization_endpoint",
            Some(&metadata.authorization_endpoint),
        ),
        ("token_endpoint", metadata.token_endpoint.as_ref()),
        ("userinfo_endpoint", metadata.userinfo_endpoint.as_ref()),
        (
            "end_session_endpoint",
            metadata.end_session_endpoint.as_ref(),
        ),
        ("jwks_uri", Some(&metadata.jwks_uri)),
    ] {
        if let Some(v) = value.filter(|v| !secure(v)) {
            return Err(DiscoveryError::InsecureEndpoint {
                url: url.to_string(),
                member,
                value: cap(v.as_str()),
            });
        }
    }
    Ok(metadata)
}

/// Fetch and validate the metadata of `realm` with `client`.
pub async fn fetch(
    client: &OpClient,
    discovery: &DiscoverySettings,
    issuer: &str,
) -> Result<Metadata, DiscoveryError> {
    let bytes = client
        .get_discovery(&discovery.url, MAX_METADATA_BYTES)
        .await
        .map_err(|error| DiscoveryError::Fetch {
            url: discovery.url.to_string(),
            error,
        })?;
    parse(&bytes, &discovery.url, issuer)
}

/// Write `md` into the realm's `op.*` endpoints that the YAML left out; a YAML endpoint that
/// differs from the metadata stays and gives a warning (returned, naming the key). Records
/// `md` as `discovered`. A no-op for a realm without discovery.
pub fn apply(realm: &mut RealmConfig, md: &Metadata) -> Result<Vec<String>, DiscoveryError> {
    let Some(d) = realm.op.discovery.clone() else {
        return Ok(Vec::new());
    };
    let name = realm.name.clone();
    let mut warnings = Vec::new();
    let mut conflict = |key: &str, yaml: &str, meta: &str| {
        if yaml != meta {
            warnings.push(format!(
                "realms.{name}.op.{key}: [{yaml}] differs from the provider metadata [{meta}]; the configured value is used"
            ));
        }
    };
    let op = &mut realm.op;
    if d.written.contains(&"authorization_endpoint") {
        conflict(
            "authorization_endpoint",
            op.authorization_endpoint.as_str(),
            md.authorization_endpoint.as_str(),
        );
    } else {
        op.authorization_endpoint = md.authorization_endpoint.clone();
    }
    for (key, slot, meta) in [
        ("token_endpoint", &mut op.token_endpoint, &md.token_endpoint),
        (
            "userinfo_endpoint",
            &mut op.userinfo_endpoint,
            &md.userinfo_endpoint,
        ),
        (
            "endsession_endpoint",
            &mut op.endsession_endpoint,
            &md.end_session_endpoint,
        ),
    ] {
        if d.written.contains(&key) {
            if let (Some(y), Some(m)) = (slot.as_ref(), meta.as_ref()) {
                conflict(key, y.as_str(), m.as_str());
            }
        } else {
            *slot = meta.clone();
        }
    }
    if d.written.contains(&"jwkset_path") {
        let yaml = match &op.jwkset {
            JwksSource::Url(u) => u.to_string(),
            JwksSource::File(p) => p.display().to_string(),
        };
        conflict("jwkset_path", &yaml, md.jwks_uri.as_str());
    } else {
        op.jwkset = JwksSource::Url(md.jwks_uri.clone());
    }
    if realm.rp.response_type == ResponseType::Code && realm.op.token_endpoint.is_none() {
        return Err(DiscoveryError::NoTokenEndpoint {
            url: d.url.to_string(),
        });
    }
    if let Some(d) = realm.op.discovery.as_mut() {
        d.discovered = Some(md.clone());
    }
    Ok(warnings)
}

/// Discover every realm of `settings` whose metadata is pending (at start, `check-config`):
/// fetched one realm after another with each realm's own client. Returns the warnings
/// (conflicts), or every failure as a [`RealmBuildError::Discovery`].
pub async fn discover_all(settings: &mut Settings) -> Result<Vec<String>, RealmBuildErrors> {
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for realm in settings.realms.iter_mut() {
        let Some(d) = realm.op.discovery.clone().filter(|d| d.pending()) else {
            continue;
        };
        let client = match OpClient::new(realm) {
            Ok(c) => c,
            Err(error) => {
                errors.push(RealmBuildError::HttpClient {
                    realm: realm.name.clone(),
                    error,
                });
                continue;
            }
        };
        match fetch(&client, &d, &realm.op.issuer)
            .await
            .and_then(|md| apply(realm, &md))
        {
            Ok(w) => warnings.extend(w),
            Err(e) => errors.push(RealmBuildError::Discovery {
                realm: realm.name.clone(),
                code: e.code(),
                detail: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(RealmBuildErrors(errors))
    }
}

/// What a realm knows about its discovery, for `_status`; shared by the realms of one name
/// across reloads while `op.discovery_url` and `op.issuer` are unchanged.
#[derive(Debug, Default)]
pub struct DiscoveryState {
    inner: std::sync::Mutex<DiscoveryStatus>,
}

/// See [`DiscoveryState`].
#[derive(Debug, Clone, Default)]
pub struct DiscoveryStatus {
    pub fetched_at: Option<UnixMillis>,
    pub last_attempt: Option<UnixMillis>,
    pub last_error: Option<(UnixMillis, String)>,
}

impl DiscoveryState {
    fn lock(&self) -> std::sync::MutexGuard<'_, DiscoveryStatus> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> DiscoveryStatus {
        self.lock().clone()
    }

    pub(super) fn fetched(&self, now: UnixMillis) {
        let mut st = self.lock();
        st.fetched_at = Some(now);
        st.last_attempt = Some(now);
        st.last_error = None;
    }

    pub(super) fn failed(&self, now: UnixMillis, error: String) {
        let mut st = self.lock();
        st.last_attempt = Some(now);
        st.last_error = Some((now, error));
    }

    /// Whether a refresh is due: the metadata is older than `interval` and no attempt was
    /// made in the last `min_refetch`.
    pub(super) fn due(&self, now: UnixMillis, interval: Duration, min_refetch: Duration) -> bool {
        let st = self.lock();
        st.fetched_at
            .is_none_or(|t| now.saturating_sub(t) >= crate::clock::millis(interval))
            && st
                .last_attempt
                .is_none_or(|t| now.saturating_sub(t) >= crate::clock::millis(min_refetch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://op.example.org";

    fn doc() -> serde_json::Value {
        json!({
            "issuer": ISS,
            "authorization_endpoint": "https://op.example.org/auth",
            "token_endpoint": "https://op.example.org/token",
            "userinfo_endpoint": "https://op.example.org/userinfo",
            "end_session_endpoint": "https://op.example.org/logout",
            "jwks_uri": "https://op.example.org/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]
        })
    }

    fn url() -> Url {
        Url::parse("https://op.example.org/.well-known/openid-configuration").unwrap()
    }

    fn parse_doc(v: &serde_json::Value) -> Result<Metadata, DiscoveryError> {
        parse(&serde_json::to_vec(v).unwrap(), &url(), ISS)
    }

    #[test]
    fn valid_metadata_gives_the_endpoints() {
        let md = parse_doc(&doc()).unwrap();
        assert_eq!(
            md.authorization_endpoint.as_str(),
            "https://op.example.org/auth"
        );
        assert_eq!(
            md.end_session_endpoint.unwrap().as_str(),
            "https://op.example.org/logout"
        );
        assert_eq!(md.jwks_uri.as_str(), "https://op.example.org/jwks");
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        for other in [
            "https://op.example.org/",
            "https://OP.example.org",
            "https://evil.example",
        ] {
            let mut d = doc();
            d["issuer"] = json!(other);
            let e = parse_doc(&d).unwrap_err();
            assert_eq!(e.code(), "discovery_issuer_mismatch", "{other}");
        }
    }

    #[test]
    fn invalid_documents_are_refused() {
        let e = parse(b"not json", &url(), ISS).unwrap_err();
        assert_eq!(e.code(), "discovery_invalid");
        let e = parse(
            br#"{"issuer":"https://op.example.org","issuer":"https://op.example.org"}"#,
            &url(),
            ISS,
        )
        .unwrap_err();
        assert_eq!(e.code(), "discovery_invalid");
        for missing in ["jwks_uri", "authorization_endpoint", "issuer"] {
            let mut d = doc();
            d.as_object_mut().unwrap().remove(missing);
            assert_eq!(
                parse_doc(&d).unwrap_err().code(),
                "discovery_invalid",
                "{missing}"
            );
        }
        let mut d = doc();
        d["token_endpoint"] = json!("not a url");
        assert_eq!(parse_doc(&d).unwrap_err().code(), "discovery_invalid");
    }

    #[test]
    fn insecure_endpoints_are_refused_but_loopback_http_is_accepted() {
        let mut d = doc();
        d["token_endpoint"] = json!("http://op.example.org/token");
        let e = parse_doc(&d).unwrap_err();
        assert_eq!(e.code(), "discovery_insecure_endpoint");
        assert!(e.to_string().contains("token_endpoint"), "{e}");
        let mut d = doc();
        d["jwks_uri"] = json!("http://127.0.0.1:9/jwks");
        parse_doc(&d).unwrap();
    }

    #[test]
    fn oversized_documents_are_refused() {
        let big = vec![b' '; MAX_METADATA_BYTES + 1];
        assert_eq!(
            parse(&big, &url(), ISS).unwrap_err().code(),
            "discovery_too_large"
        );
    }
}
