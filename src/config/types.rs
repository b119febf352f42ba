//! The typed, validated configuration. Every value here has been parsed and checked.

use crate::secret::Secret;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directory of the config file; relative paths in the file resolve against it.
    pub base_dir: PathBuf,
    pub http: HttpSettings,
    pub data: DataSettings,
    pub token: TokenSettings,
    pub log: LogSettings,
    /// Callers (facilitators, admins, end users of the `password` grant) by name.
    pub users: BTreeMap<String, UserEntry>,
    /// Service account tokens (`namespace/service/name`), e.g. Kibana's.
    pub service_tokens: BTreeMap<String, ServiceTokenEntry>,
    /// `compatibility.*`: what Elasticsearch's official clients need to see.
    pub compatibility: CompatibilitySettings,
    /// `limits.*`: bounds on what callers can make the server hold.
    pub limits: LimitSettings,
    /// `metrics.*`: the Prometheus listener (off unless `metrics.bind` is set).
    pub metrics: MetricsSettings,
    /// `audit.*`: the audit trail (off unless `audit.path` is set).
    pub audit: AuditSettings,
    /// OIDC realms, sorted by `order`.
    pub realms: Vec<RealmConfig>,
    /// Role mappings from `role_mappings` and `role_mapping_files`, compiled (read-only
    /// through the API).
    pub role_mappings: Vec<std::sync::Arc<crate::roles::RoleMapping>>,
    /// `connections.*` and `connection_encryption.*`: third-party OAuth services and the key
    /// that seals their secrets and grants (see docs/connections.md).
    pub connections: super::ConnectionSettings,
}

/// `http.*`: the listener.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `http.bind`, default `127.0.0.1:9280`.
    pub bind: SocketAddr,
    /// `http.tls`: when set, only HTTPS is served.
    pub tls: Option<TlsSettings>,
    /// `http.max_body`, default 64 KiB.
    pub max_body: usize,
}

/// `http.tls.*`: PEM files (already checked to exist and parse).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// `data.*`: the embedded store.
#[derive(Debug, Clone)]
pub struct DataSettings {
    /// `data.path`: the redb file (absolute after load).
    pub path: PathBuf,
    /// `data.backend: postgres`: the shared PostgreSQL store (`None`: `redb`, the file at
    /// `data.path`).
    pub postgres: Option<PostgresSettings>,
    /// `data.cache_size`: redb's page cache, in bytes (default [`DEFAULT_DATA_CACHE_SIZE`]).
    pub cache_size: usize,
}

/// `data.*` when `data.backend` is `postgres`.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// `data.url`: `postgres://user@host:port/db?sslmode=require` (or a `${env:}` /
    /// `${file:}` reference to one).
    pub url: crate::secret::Secret<String>,
    /// `data.password`: overrides a password in the URL (a `${env:}`/`${file:}` reference).
    pub password: Option<crate::secret::Secret<String>>,
    /// `data.schema`: default `oidc_realm`.
    pub schema: String,
    /// `data.pool_size`: connections per node, default 16, 1..=256.
    pub pool_size: usize,
    /// `data.tls_ca`: PEM file of the CAs that sign the database's certificate (default: the
    /// system's roots).
    pub tls_ca: Option<PathBuf>,
    /// `data.cache_ttl`: how long a node trusts a cached bearer token without asking the
    /// database (the backstop behind change notifications); default 5s, 0s..=1m.
    pub cache_ttl: Duration,
}

/// Default `data.cache_size`: redb's page cache. redb's own default (1 GiB) let a server
/// holding a million tokens grow past half a gigabyte; see docs/operations.md ("Memory").
pub const DEFAULT_DATA_CACHE_SIZE: usize = 8 << 20;
/// Default `token.cache_size`: the bearer cache's byte bound (estimated sizes).
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 48 << 20;
/// The smallest `data.cache_size` and `token.cache_size` accepted.
pub const MIN_CACHE_SIZE: usize = 1 << 20;

/// `token.*`: lifetimes of issued tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `token.cache_size`: the bearer cache's bound in (estimated) bytes; default
    /// [`DEFAULT_TOKEN_CACHE_SIZE`].
    pub cache_size: u64,
    /// `token.timeout`: access-token lifetime; default 20m, 1s..=1h.
    pub timeout: Duration,
    /// `token.refresh_timeout`: refresh-token lifetime; default 24h.
    pub refresh_timeout: Duration,
    /// `token.refresh_reuse`: what a refresh token used again after the 30 s window does.
    pub refresh_reuse: RefreshReuse,
}

/// `token.refresh_reuse`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RefreshReuse {
    /// Refuse the request and invalidate every token of the login (default): a replayed
    /// refresh token is a sign of theft.
    #[default]
    RevokeFamily,
    /// Refuse the request only, as Elasticsearch does.
    Refuse,
}

/// `compatibility.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilitySettings {
    /// `compatibility.product_header` (default true): send `X-Elastic-Product: Elasticsearch`
    /// on every response, which Elasticsearch's official clients require.
    pub product_header: bool,
    /// `compatibility.version` (default `8.19.0`): the Elasticsearch API level reported as
    /// `version.number` by `GET /`.
    pub version: String,
}

impl Default for CompatibilitySettings {
    fn default() -> Self {
        Self {
            product_header: true,
            version: DEFAULT_COMPAT_VERSION.to_string(),
        }
    }
}

/// The most logins one caller (facilitator: user name and realm) may have pending at once,
/// unless `limits.pending_logins_per_caller` says otherwise. Expired logins never count.
pub const DEFAULT_PENDING_LOGINS_PER_CALLER: usize = 10_000;

/// The most logins all callers together may have pending at once (`limits.pending_logins`):
/// a safety cap on the memory pending logins take (each ~0.4 KB, so ~40 MB). Expired logins
/// never count.
pub const DEFAULT_PENDING_LOGINS: usize = 100_000;

/// Full password verifications allowed per client address and second, unless
/// `limits.password_checks_per_second` says otherwise.
pub const DEFAULT_PASSWORD_CHECKS_PER_SECOND: u32 = 2;

/// Full password verifications one client address may make at once before the rate applies,
/// unless `limits.password_checks_burst` says otherwise.
pub const DEFAULT_PASSWORD_CHECKS_BURST: u32 = 20;

/// `limits.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// `limits.pending_logins_per_caller` (default 10,000): logins one facilitator may have
    /// prepared and not yet completed.
    pub pending_logins_per_caller: usize,
    /// `limits.pending_logins` (default 100,000): the same for all facilitators together, a
    /// safety cap on memory.
    pub pending_logins: usize,
    /// `limits.requests_per_caller` (default 1,000 per second, bursts of twice that; 0 = no
    /// limit): prepare, authenticate, logout, token and profile-activation requests of one
    /// caller.
    pub requests_per_caller: u32,
    /// `limits.requests_per_address` (the same, per client address).
    pub requests_per_address: u32,
    /// `limits.password_checks_per_second` (default 2; 0 = no limit): full password
    /// verifications (argon2/bcrypt; remembered successes cost none) per client address.
    pub password_checks_per_second: u32,
    /// `limits.password_checks_burst` (default 20, at least 1): how many of them one address
    /// may make at once before the rate applies.
    pub password_checks_burst: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            pending_logins_per_caller: DEFAULT_PENDING_LOGINS_PER_CALLER,
            pending_logins: DEFAULT_PENDING_LOGINS,
            requests_per_caller: 1_000,
            requests_per_address: 1_000,
            password_checks_per_second: DEFAULT_PASSWORD_CHECKS_PER_SECOND,
            password_checks_burst: DEFAULT_PASSWORD_CHECKS_BURST,
        }
    }
}

/// `metrics.*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `metrics.bind`: the address of the separate listener serving `GET /metrics`
    /// (Prometheus text format). Not set (default): no metrics listener.
    pub bind: Option<SocketAddr>,
}

/// `audit.max_size` unless configured: 100 MiB per file.
pub const DEFAULT_AUDIT_MAX_SIZE: u64 = 100 * 1024 * 1024;
/// `audit.max_files` unless configured: rotated files kept besides the current one.
pub const DEFAULT_AUDIT_MAX_FILES: u32 = 5;

/// `audit.*`: the audit trail, JSON lines on a sink of its own (see `crate::audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// `audit.path`: a file (resolved against the config directory) or `stdout`. Not set
    /// (default): no audit trail.
    pub sink: Option<AuditSink>,
    /// `audit.max_size` (default 100mb, at least 1kb): a file is rotated before a line would
    /// take it past this size.
    pub max_size: u64,
    /// `audit.max_files` (default 5, 1..=100): rotated files kept (`<path>.1` newest ..
    /// `<path>.<max_files>` oldest); the oldest is deleted on rotation.
    pub max_files: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            sink: None,
            max_size: DEFAULT_AUDIT_MAX_SIZE,
            max_files: DEFAULT_AUDIT_MAX_FILES,
        }
    }
}

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// `audit.path: stdout`: the process's standard output (no rotation; each line carries
    /// `"type":"audit"` to tell it from log lines).
    Stdout,
    /// A file, rotated by size (absolute after load).
    File(PathBuf),
}

/// The Elasticsearch API level oidc-realm implements.
pub const DEFAULT_COMPAT_VERSION: &str = "8.19.0";

/// `log.*`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `log.format`: `human` (default) or `json`.
    pub format: LogFormat,
    /// `log.level`: a `tracing` filter, default `info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// One configured caller.
#[derive(Debug, Clone)]
pub struct UserEntry {
    pub password_hash: PasswordHash,
    /// API privileges; may be empty (an end user who only uses the `password` grant).
    pub privileges: BTreeSet<Privilege>,
    /// `users.<name>.roles`: shown by `_authenticate` and in token responses; grant nothing
    /// here (privileges do).
    pub roles: Vec<String>,
    /// Optional, shown by `_authenticate`.
    pub full_name: Option<String>,
    pub email: Option<String>,
}

/// One configured service account token (`service_tokens.<namespace/service/name>`).
#[derive(Debug, Clone)]
pub struct ServiceTokenEntry {
    /// SHA-256 of the token's secret (the secret has 256 bits of entropy: no slow hash needed).
    pub secret_hash: crate::secret::Secret<[u8; 32]>,
    pub privileges: BTreeSet<Privilege>,
}

/// A stored password hash (already checked to parse).
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// PHC string `$argon2id$...`.
    Argon2id(String),
    /// `$2a$`/`$2b$`/`$2y$` bcrypt, as in an Elasticsearch `users` file.
    Bcrypt(String),
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordHash::Argon2id(_) => f.write_str("Argon2id([redacted])"),
            PasswordHash::Bcrypt(_) => f.write_str("Bcrypt([redacted])"),
        }
    }
}

/// Cluster privileges that guard oidc-realm's APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    ManageOidc,
    ManageToken,
    ManageUserProfile,
    ManageSecurity,
    All,
    /// `GET /_oauth/connections[/{name}]`.
    ReadConnections,
    /// Every connection API (define, delete, any user's grant).
    ManageConnections,
    /// Act for a user at a connection: `_authorize`, `_callback`, `_token`, `_grant`.
    UseConnections,
}

impl Privilege {
    pub const ALL: [Privilege; 8] = [
        Privilege::ManageOidc,
        Privilege::ManageToken,
        Privilege::ManageUserProfile,
        Privilege::ManageSecurity,
        Privilege::All,
        Privilege::ReadConnections,
        Privilege::ManageConnections,
        Privilege::UseConnections,
    ];

    /// `manage_oidc, manage_token, ...` for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::ManageOidc => "manage_oidc",
            Privilege::ManageToken => "manage_token",
            Privilege::ManageUserProfile => "manage_user_profile",
            Privilege::ManageSecurity => "manage_security",
            Privilege::All => "all",
            Privilege::ReadConnections => "read_connections",
            Privilege::ManageConnections => "manage_connections",
            Privilege::UseConnections => "use_connections",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One OpenID Connect realm, with Elasticsearch's keys.
#[derive(Debug, Clone)]
pub struct RealmConfig {
    pub name: String,
    /// `order` (required, unique).
    pub order: i64,
    /// `enabled`, default true.
    pub enabled: bool,
    pub rp: RpSettings,
    pub op: OpSettings,
    pub claims: ClaimSettings,
    /// `populate_user_metadata`, default true.
    pub populate_user_metadata: bool,
    /// `allowed_clock_skew`, default 60s.
    pub allowed_clock_skew: Duration,
    pub http: RealmHttpSettings,
    pub ssl: RealmSslSettings,
}

/// `rp.*`.
#[derive(Debug, Clone)]
pub struct RpSettings {
    pub client_id: String,
    pub client_secret: Secret<String>,
    /// Parsed, for comparing the provider's redirects with it.
    pub redirect_uri: Url,
    /// Exactly as written in the configuration: what is sent to the provider (it must equal
    /// the provider's registration byte for byte; `Url` would normalise it).
    pub redirect_uri_exact: String,
    pub response_type: ResponseType,
    /// Always contains `openid` (added first if missing).
    pub requested_scopes: Vec<String>,
    /// `rp.signature_algorithm`: a single value (as in Elasticsearch) or a list; default RS256.
    pub signature_algorithms: Vec<SignatureAlgorithm>,
    pub post_logout_redirect_uri: Option<Url>,
    pub client_auth_method: ClientAuthMethod,
    pub client_auth_jwt_signature_algorithm: SignatureAlgorithm,
    /// `private_key_jwt`: `rp.client_auth_key` (signs) and `rp.client_auth_key_2` (published
    /// only); empty for the other methods.
    pub client_auth_keys: Vec<super::ClientAuthKey>,
    /// `rp.backchannel_logout`, default false: accept OpenID Connect Back-Channel Logout at
    /// `POST /oidc/{realm}/backchannel-logout`.
    pub backchannel_logout: bool,
    /// `rp.pkce`, default true (beyond Elasticsearch).
    pub pkce: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    Code,
    IdToken,
    IdTokenToken,
}

impl ResponseType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
            ResponseType::IdToken => "id_token",
            ResponseType::IdTokenToken => "id_token token",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignatureAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    ES512,
    PS256,
    PS384,
    PS512,
    /// Ed25519 (RFC 8037). Not one of Elasticsearch's algorithms; accepted only when listed.
    EdDSA,
}

impl SignatureAlgorithm {
    pub const ALL: [SignatureAlgorithm; 13] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Exact, case-sensitive parse (`none` and lower-case forms are refused).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// For HS256/384/512, the shortest key allowed: the hash output size, 32/48/64 bytes
    /// (RFC 7518 §3.2). `None` for the other algorithms.
    pub fn min_hmac_key_len(self) -> Option<usize> {
        match self {
            Self::HS256 => Some(32),
            Self::HS384 => Some(48),
            Self::HS512 => Some(64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
    /// RFC 7523 assertion signed with the realm's private key (`rp.client_auth_key`).
    PrivateKeyJwt,
}

/// `op.*`.
#[derive(Debug, Clone)]
pub struct OpSettings {
    pub issuer: String,
    pub authorization_endpoint: Url,
    /// Required when `rp.response_type` is `code`.
    pub token_endpoint: Option<Url>,
    pub userinfo_endpoint: Option<Url>,
    pub endsession_endpoint: Option<Url>,
    pub jwkset: JwksSource,
    /// `op.jwkset_reload_interval`: how often a JWKS URL is fetched again; default 1h.
    pub jwkset_reload_interval: Duration,
    /// `op.jwkset_min_refetch_interval`: the least time between two fetches of a JWKS URL
    /// (unknown `kid`, bad signature, failed periodic refresh); default 30s.
    pub jwkset_min_refetch_interval: Duration,
    /// `op.discovery` / `op.discovery_url`: the provider metadata to take endpoints from.
    /// `None` when discovery is off (the realm uses exactly the keys written).
    pub discovery: Option<DiscoverySettings>,
}

/// `op.discovery: true`.
///
/// While `discovered` is `None` the endpoints the YAML left out hold the discovery URL as a
/// placeholder (the types need a value); a realm is never built from such settings
/// (`realm::discovery::apply` fills them from the metadata first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// `op.discovery_url`, default `<op.issuer>/.well-known/openid-configuration`.
    pub url: Url,
    /// The `op.*` endpoint keys written in the YAML (`authorization_endpoint`,
    /// `token_endpoint`, `userinfo_endpoint`, `endsession_endpoint`, `jwkset_path`): they win
    /// over the metadata.
    pub written: Vec<&'static str>,
    /// The metadata applied to these settings, once it has been.
    pub discovered: Option<DiscoveredEndpoints>,
}

impl DiscoverySettings {
    /// Whether the metadata has not been applied yet.
    pub fn pending(&self) -> bool {
        self.discovered.is_none()
    }
}

/// The endpoints taken from a provider's metadata (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredEndpoints {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Option<Url>,
    pub userinfo_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    pub jwks_uri: Url,
}

/// `op.jwkset_path`: a file (resolved against the config directory) or an https URL
/// (plain http only for loopback hosts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(Url),
}

/// `claims.*` with their `claim_patterns.*`.
#[derive(Debug, Clone)]
pub struct ClaimSettings {
    pub principal: ClaimRule,
    pub groups: Option<ClaimRule>,
    pub name: Option<ClaimRule>,
    pub mail: Option<ClaimRule>,
    pub dn: Option<ClaimRule>,
}

/// A claim name and an optional pattern (compiled at load; has at least one capture group).
#[derive(Debug, Clone)]
pub struct ClaimRule {
    /// A top-level claim name, or a nested member as a JSON Pointer (RFC 6901) when it starts
    /// with `/` (see [`claim_pointer`]).
    pub claim: String,
    pub pattern: Option<Regex>,
}

/// Deepest nested claim path accepted (`claims.*` as a JSON Pointer).
pub const MAX_CLAIM_PATH_DEPTH: usize = 8;

/// The member names of a `claims.*` value that names a nested member: a JSON Pointer (RFC
/// 6901) such as `/realm_access/roles`, where `~1` stands for `/` and `~0` for `~`.
/// `Ok(None)` for a plain claim name (anything not starting with `/`, e.g. `groups`,
/// `email.verified` or `https://example.com/groups`). Every member name must be non-empty and
/// at most [`MAX_CLAIM_PATH_DEPTH`] deep; `~` must be followed by `0` or `1`.
pub fn claim_pointer(claim: &str) -> Result<Option<Vec<String>>, String> {
    let Some(rest) = claim.strip_prefix('/') else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() {
            return Err(
                "has an empty member name (two slashes in a row, or a trailing slash)".into(),
            );
        }
        let mut name = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '~' {
                match chars.next() {
                    Some('0') => name.push('~'),
                    Some('1') => name.push('/'),
                    _ => {
                        return Err(
                            "has a '~' not followed by 0 or 1 (write ~0 for '~' and ~1 for '/')"
                                .into(),
                        )
                    }
                }
            } else {
                name.push(c);
            }
        }
        out.push(name);
    }
    if out.len() > MAX_CLAIM_PATH_DEPTH {
        return Err(format!(
            "is {} members deep; at most {MAX_CLAIM_PATH_DEPTH} are accepted",
            out.len()
        ));
    }
    Ok(Some(out))
}

/// `http.*` of a realm: outbound calls to the OP.
#[derive(Debug, Clone)]
pub struct RealmHttpSettings {
    pub connect_timeout: Duration,
    pub connection_read_timeout: Duration,
    pub socket_timeout: Duration,
    pub max_connections: u32,
    pub max_endpoint_connections: u32,
    /// `None` = `-1` (no cap).
    pub connection_pool_ttl: Option<Duration>,
    pub tcp_keep_alive: bool,
    pub proxy: Option<ProxySettings>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySettings {
    pub host: String,
    pub port: u16,
    pub scheme: ProxyScheme,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    Http,
    Https,
}

/// `ssl.*` of a realm: TLS to the OP.
#[derive(Debug, Clone, Default)]
pub struct RealmSslSettings {
    /// PEM CA files, added to the system roots.
    pub certificate_authorities: Vec<PathBuf>,
    pub verification_mode: VerificationMode,
    /// Client certificate for mTLS to the OP: (certificate PEM, key PEM).
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    pub supported_protocols: Vec<String>,
    pub cipher_suites: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VerificationMode {
    #[default]
    Full,
    Certificate,
    None,
}
