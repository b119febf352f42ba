//! The server's own sections: `http`, `data`, `token`, `log`, `limits`, `metrics`, `audit`,
//! `compatibility`, `users`.

use super::ctx::{scalar_text, shown, Ctx};
use super::duration::format_time;
use super::service_tokens;
use super::PostgresSettings;
use super::{
    AuditSettings, AuditSink, CompatibilitySettings, DataSettings, HttpSettings, LimitSettings,
    LogFormat, LogSettings, MetricsSettings, PasswordHash, Privilege, RefreshReuse,
    ServiceTokenEntry, TlsSettings, TokenSettings, UserEntry, DEFAULT_COMPAT_VERSION,
    DEFAULT_DATA_CACHE_SIZE, DEFAULT_TOKEN_CACHE_SIZE, MIN_CACHE_SIZE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub(super) const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 9280);
pub(super) const DEFAULT_MAX_BODY: usize = 64 * 1024;
pub(super) const DEFAULT_DATA_PATH: &str = "data/oidc-realm.redb";

pub(super) fn http(ctx: &mut Ctx) -> Option<HttpSettings> {
    let bind = match ctx.string("http.bind") {
        None => Some(DEFAULT_BIND),
        Some(s) => match s.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                ctx.error(
                    "http.bind",
                    format!(
                        "not a socket address (\"{}\"); expected IP:port, e.g. 127.0.0.1:9280 or [::]:9280",
                        shown(&s)
                    ),
                );
                None
            }
        },
    };
    let tls = if ctx.any_under("http.tls") {
        let cert = ctx.req_string("http.tls.certificate");
        let key = ctx.req_string("http.tls.key");
        let cert = cert.and_then(|c| ctx.pem_certificates("http.tls.certificate", &c));
        let key = key.and_then(|k| ctx.pem_private_key("http.tls.key", &k));
        match (cert, key) {
            (Some(certificate), Some(key)) => Some(Some(TlsSettings { certificate, key })),
            _ => None,
        }
    } else {
        Some(None)
    };
    let max_body = byte_size_at_least(ctx, "http.max_body", DEFAULT_MAX_BODY, 1);
    if let (Some(addr), Some(None)) = (&bind, &tls) {
        if !is_loopback_ip(addr.ip()) {
            ctx.warn(
                "http.bind",
                format!(
                    "plain HTTP on {addr}, which is not a loopback address: Basic passwords, bearer tokens and refresh tokens travel in clear over the network; set http.tls (certificate and key), or bind to 127.0.0.1 behind a TLS-terminating proxy"
                ),
            );
        }
    }
    Some(HttpSettings {
        bind: bind?,
        tls: tls?,
        max_body: max_body?,
    })
}

/// Whether a listening address is loopback: `127.0.0.0/8`, `::1`, or an IPv4-mapped
/// `::ffff:127.x.y.z`.
fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `65536`, `64kb`, `1mb`, `1gb`, `512b` (1024-based, case-insensitive, as Elasticsearch's
/// byte sizes).
pub(super) fn parse_byte_size(s: &str) -> Option<usize> {
    let t = s.trim().to_ascii_lowercase();
    let units: [(&str, usize); 5] = [
        ("kb", 1 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("k", 1 << 10),
        ("b", 1),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(u, m)| t.strip_suffix(u).map(|r| (r.trim().to_string(), *m)))
        .unwrap_or((t.clone(), 1));
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<usize>().ok()?.checked_mul(mult)
}

/// A byte size at `key` (`parse_byte_size`), `default` when absent; unparsable or below `min`
/// is an error at `key` (and `None`).
pub(super) fn byte_size_at_least(
    ctx: &mut Ctx,
    key: &str,
    default: usize,
    min: usize,
) -> Option<usize> {
    let Some(v) = ctx.value(key).cloned() else {
        return Some(default);
    };
    let text = scalar_text(&v);
    match parse_byte_size(&text) {
        Some(n) if n < min => {
            ctx.error(
                key,
                format!(
                    "must be at least {} (got [{}])",
                    format_byte_size(min),
                    shown(&text)
                ),
            );
            None
        }
        Some(n) => Some(n),
        None => {
            ctx.error(
                key,
                format!(
                    "failed to parse value [{}] as a size in bytes (use e.g. {}, 65536, 512kb)",
                    shown(&text),
                    format_byte_size(default)
                ),
            );
            None
        }
    }
}

/// `1024` → `1kb`, `33554432` → `32mb`: the largest unit that divides `n`.
pub(super) fn format_byte_size(n: usize) -> String {
    match n {
        0 => "0b".into(),
        n if n % (1 << 30) == 0 => format!("{}gb", n >> 30),
        n if n % (1 << 20) == 0 => format!("{}mb", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}kb", n >> 10),
        n => format!("{n}b"),
    }
}

pub(super) fn data(ctx: &mut Ctx) -> Option<DataSettings> {
    let p = ctx
        .string("data.path")
        .unwrap_or_else(|| DEFAULT_DATA_PATH.to_string());
    let path = ctx.resolve(&p);
    if path.is_dir() {
        ctx.error(
            "data.path",
            format!("{} is a directory; give the redb file path", path.display()),
        );
        return None;
    }
    let cache_size = byte_size_at_least(
        ctx,
        "data.cache_size",
        DEFAULT_DATA_CACHE_SIZE,
        MIN_CACHE_SIZE,
    )?;
    let postgres = data_postgres(ctx);
    Some(DataSettings {
        path,
        postgres,
        cache_size,
    })
}

/// `data.backend` and, for `postgres`, its keys.
fn data_postgres(ctx: &mut Ctx) -> Option<PostgresSettings> {
    let backend = ctx.string("data.backend").unwrap_or_else(|| "redb".into());
    let pg_keys = [
        "data.url",
        "data.password",
        "data.schema",
        "data.pool_size",
        "data.tls_ca",
        "data.cache_ttl",
        "data.insecure_plaintext",
    ];
    match backend.as_str() {
        "redb" => {
            for k in pg_keys {
                if ctx.value(k).is_some() {
                    ctx.error(k, "only for data.backend: postgres");
                }
            }
            return None;
        }
        "postgres" => {
            if ctx.value("data.cache_size").is_some() {
                ctx.warn(
                    "data.cache_size",
                    "redb's page cache: unused with data.backend: postgres",
                );
            }
        }
        other => {
            ctx.error(
                "data.backend",
                format!("unknown backend {other:?}; use redb or postgres"),
            );
            return None;
        }
    }
    let url = match ctx.value("data.url") {
        None => {
            ctx.missing("data.url", "data.backend: postgres needs data.url");
            return None;
        }
        Some(serde_norway::Value::String(u)) if !u.trim_start().starts_with("${") => {
            crate::secret::Secret::new(u.clone())
        }
        Some(_) => ctx.secret("data.url")?,
    };
    let parsed = match crate::store::postgres::parse_url(url.expose_secret()) {
        Ok(p) => p,
        Err(e) => {
            ctx.error("data.url", e);
            return None;
        }
    };
    let password = if ctx.value("data.password").is_some() {
        Some(ctx.secret("data.password")?)
    } else {
        if parsed.get_password().is_some() {
            ctx.warn(
                "data.url",
                "the URL holds a password; prefer data.password: ${env:NAME} or ${file:path}",
            );
        }
        None
    };
    let plaintext = ctx.bool("data.insecure_plaintext", false)?;
    let tls_required = parsed.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
    if !tls_required && !plaintext && !crate::store::postgres::only_local_hosts(&parsed) {
        ctx.error(
            "data.url",
            "a database on another host needs TLS: add sslmode=require to the URL \
             (or set data.insecure_plaintext: true)",
        );
    }
    let schema = ctx
        .string("data.schema")
        .unwrap_or_else(|| "oidc_realm".into());
    if !crate::store::postgres::valid_schema(&schema) {
        ctx.error(
            "data.schema",
            format!("{schema:?}: use lower-case letters, digits and _ (at most 48)"),
        );
    }
    let pool_size = ctx.int_in("data.pool_size", 16, 1, 256)? as usize;
    let tls_ca = match ctx.string("data.tls_ca") {
        Some(f) => Some(ctx.pem_certificates("data.tls_ca", &f)?),
        None => None,
    };
    let cache_ttl = ctx.time("data.cache_ttl", Duration::from_secs(5))?;
    if cache_ttl > Duration::from_secs(60) {
        ctx.error("data.cache_ttl", "at most 1m");
    }
    Some(PostgresSettings {
        url,
        password,
        schema,
        pool_size,
        tls_ca,
        cache_ttl,
    })
}

pub(super) fn token(ctx: &mut Ctx) -> Option<TokenSettings> {
    // `xpack.security.authc.token.enabled`, which every Elasticsearch OIDC setup sets to true,
    // is accepted from a pasted block; the token service cannot be switched off here.
    if ctx.bool("token.enabled", true) == Some(false) {
        ctx.error(
            "token.enabled",
            "the token service cannot be disabled: OpenID Connect realms require it (as in Elasticsearch); remove the key or set it to true",
        );
    }
    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(3600);
    let timeout = ctx
        .time("token.timeout", Duration::from_secs(20 * 60))
        .and_then(|d| {
            let raw = ctx
                .value("token.timeout")
                .map(scalar_text)
                .unwrap_or_default();
            if d < MIN {
                ctx.error(
                    "token.timeout",
                    format!(
                        "failed to parse value [{}] for setting [token.timeout], must be >= [{}]",
                        shown(&raw),
                        format_time(MIN)
                    ),
                );
                None
            } else if d > MAX {
                ctx.error(
                    "token.timeout",
                    format!(
                        "failed to parse value [{}] for setting [token.timeout], must be <= [{}]",
                        shown(&raw),
                        format_time(MAX)
                    ),
                );
                None
            } else {
                Some(d)
            }
        });
    let refresh_timeout = ctx
        .time("token.refresh_timeout", Duration::from_secs(24 * 3600))
        .and_then(|d| {
            if d.is_zero() {
                ctx.error("token.refresh_timeout", "must be greater than 0");
                None
            } else {
                Some(d)
            }
        });
    let refresh_reuse = match ctx.string("token.refresh_reuse").as_deref() {
        None | Some("revoke_family") => Some(RefreshReuse::RevokeFamily),
        Some("refuse") => Some(RefreshReuse::Refuse),
        Some(other) => {
            ctx.error(
                "token.refresh_reuse",
                format!(
                    "Invalid value [{}] for [token.refresh_reuse]. Allowed values are [revoke_family, refuse]",
                    shown(other)
                ),
            );
            None
        }
    };
    let cache_size = byte_size_at_least(
        ctx,
        "token.cache_size",
        DEFAULT_TOKEN_CACHE_SIZE,
        MIN_CACHE_SIZE,
    );
    Some(TokenSettings {
        cache_size: cache_size? as u64,
        timeout: timeout?,
        refresh_timeout: refresh_timeout?,
        refresh_reuse: refresh_reuse?,
    })
}

/// `limits.*`.
pub(super) fn limits(ctx: &mut Ctx) -> Option<LimitSettings> {
    let d = LimitSettings::default();
    let total = ctx.int_in(
        "limits.pending_logins",
        d.pending_logins as i64,
        1,
        10_000_000,
    );
    let per_caller = ctx.int_in(
        "limits.pending_logins_per_caller",
        d.pending_logins_per_caller as i64,
        1,
        10_000_000,
    );
    let rate = |ctx: &mut Ctx, key: &str, default: u32| {
        ctx.int_in(key, default as i64, 0, 1_000_000)
            .map(|n| n as u32)
    };
    let requests_per_caller = rate(ctx, "limits.requests_per_caller", d.requests_per_caller);
    let requests_per_address = rate(ctx, "limits.requests_per_address", d.requests_per_address);
    let password_checks_per_second = rate(
        ctx,
        "limits.password_checks_per_second",
        d.password_checks_per_second,
    );
    let password_checks_burst = ctx
        .int_in(
            "limits.password_checks_burst",
            d.password_checks_burst as i64,
            1,
            1_000_000,
        )
        .map(|n| n as u32);
    let (total, per_caller) = (total? as usize, per_caller? as usize);
    if per_caller > total {
        ctx.error(
            "limits.pending_logins_per_caller",
            format!("must not exceed limits.pending_logins ({total})"),
        );
        return None;
    }
    Some(LimitSettings {
        pending_logins_per_caller: per_caller,
        pending_logins: total,
        requests_per_caller: requests_per_caller?,
        requests_per_address: requests_per_address?,
        password_checks_per_second: password_checks_per_second?,
        password_checks_burst: password_checks_burst?,
    })
}

/// `metrics.*`: the Prometheus listener. `metrics.bind` is optional (no listener when
/// unset), must differ from `http.bind`, and gets a warning when it is not loopback.
pub(super) fn metrics(ctx: &mut Ctx, http: Option<&HttpSettings>) -> Option<MetricsSettings> {
    let Some(s) = ctx.string("metrics.bind") else {
        return Some(MetricsSettings::default());
    };
    let Ok(addr) = s.trim().parse::<SocketAddr>() else {
        ctx.error(
            "metrics.bind",
            format!(
                "not a socket address (\"{}\"); expected IP:port, e.g. 127.0.0.1:9281 or [::1]:9281",
                shown(&s)
            ),
        );
        return None;
    };
    if let Some(h) = http {
        let same_port = addr.port() != 0 && addr.port() == h.bind.port();
        let overlap =
            addr.ip() == h.bind.ip() || addr.ip().is_unspecified() || h.bind.ip().is_unspecified();
        if same_port && overlap {
            ctx.error(
                "metrics.bind",
                format!(
                    "{addr} is the API listener's address (http.bind {}); metrics are served on a separate listener: choose another port",
                    h.bind
                ),
            );
            return None;
        }
    }
    if !is_loopback_ip(addr.ip()) {
        ctx.warn(
            "metrics.bind",
            format!(
                "metrics on {addr}, which is not a loopback address: anyone who can reach it reads realm names, login and failure counts (no authentication, plain HTTP); bind to 127.0.0.1 and scrape locally, or restrict access with a firewall"
            ),
        );
    }
    Some(MetricsSettings { bind: Some(addr) })
}

/// `audit.*`: the audit trail. `audit.path` is `stdout` or a file whose directory exists;
/// `audit.max_size` a byte size of at least 1kb; `audit.max_files` 1..=100. The size and
/// count keys apply to a file only (a warning when `audit.path` is `stdout` or not set).
pub(super) fn audit(ctx: &mut Ctx) -> Option<AuditSettings> {
    let d = AuditSettings::default();
    let sink = match ctx.string("audit.path") {
        None => Some(None),
        Some(p) if p.trim() == "stdout" => Some(Some(AuditSink::Stdout)),
        Some(p) if p.trim().is_empty() => {
            ctx.error(
                "audit.path",
                "must not be empty: give a file path, or `stdout` (remove the key to switch the audit trail off)",
            );
            None
        }
        Some(p) => {
            let path = ctx.resolve(p.trim());
            let parent = path.parent().map(std::path::Path::to_path_buf);
            if path.is_dir() {
                ctx.error(
                    "audit.path",
                    format!(
                        "{} is a directory; give the audit file's path",
                        path.display()
                    ),
                );
                None
            } else if parent.as_ref().is_some_and(|d| !d.is_dir()) {
                ctx.error(
                    "audit.path",
                    format!(
                        "the directory of {} does not exist; create it (the file itself is created on start)",
                        path.display()
                    ),
                );
                None
            } else {
                Some(Some(AuditSink::File(path)))
            }
        }
    };
    let max_size =
        byte_size_at_least(ctx, "audit.max_size", d.max_size as usize, 1024).map(|n| n as u64);
    let max_files = ctx
        .int_in("audit.max_files", d.max_files as i64, 1, 100)
        .map(|n| n as u32);
    if !matches!(sink, Some(Some(AuditSink::File(_)))) && !ctx.has_error_under("audit") {
        for key in ["audit.max_size", "audit.max_files"] {
            if ctx.value(key).is_some() {
                ctx.warn(
                    key,
                    "has no effect: only an audit file (audit.path: <file>) is rotated",
                );
            }
        }
    }
    Some(AuditSettings {
        sink: sink?,
        max_size: max_size?,
        max_files: max_files?,
    })
}

/// `compatibility.*`: the signals Elasticsearch's official clients need.
pub(super) fn compatibility(ctx: &mut Ctx) -> Option<CompatibilitySettings> {
    let product_header = ctx.bool("compatibility.product_header", true);
    let version = match ctx.string("compatibility.version") {
        None => Some(DEFAULT_COMPAT_VERSION.to_string()),
        Some(v) => {
            let v = v.trim().to_string();
            let parts: Vec<&str> = v.split('.').collect();
            let numeric = parts.len() == 3
                && parts.iter().all(|p| {
                    !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit())
                });
            if numeric && matches!(parts[0], "7" | "8" | "9") {
                Some(v)
            } else {
                ctx.error(
                    "compatibility.version",
                    format!(
                        "Invalid value [{}] for [compatibility.version]: expected an Elasticsearch version 7.x.y, 8.x.y or 9.x.y, e.g. {DEFAULT_COMPAT_VERSION}",
                        shown(&v)
                    ),
                );
                None
            }
        }
    };
    Some(CompatibilitySettings {
        product_header: product_header?,
        version: version?,
    })
}

pub(super) fn log(ctx: &mut Ctx) -> Option<LogSettings> {
    let format = match ctx.string("log.format").as_deref() {
        None | Some("human") => Some(LogFormat::Human),
        Some("json") => Some(LogFormat::Json),
        Some(other) => {
            ctx.error(
                "log.format",
                format!(
                    "Invalid value [{}] for [log.format]. Allowed values are [human, json]",
                    shown(other)
                ),
            );
            None
        }
    };
    let level = ctx.string("log.level").unwrap_or_else(|| "info".into());
    let level = match tracing_subscriber::EnvFilter::try_new(&level) {
        Ok(_) => Some(level),
        Err(e) => {
            ctx.error(
                "log.level",
                format!(
                    "not a valid log filter (\"{}\"): {e}; use e.g. info, debug or info,oidc_realm=debug",
                    shown(&level)
                ),
            );
            None
        }
    };
    Some(LogSettings {
        format: format?,
        level: level?,
    })
}

pub(super) fn users(ctx: &mut Ctx) -> BTreeMap<String, UserEntry> {
    let names: BTreeSet<String> = ctx
        .leaves
        .values()
        .filter(|l| l.segs.len() >= 2 && l.segs[0] == "users")
        .map(|l| l.segs[1].clone())
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let base = format!("users.{name}");
        if ctx.value(&base).is_some() {
            // `users.<name>: <scalar>`: already reported as "must be a mapping".
            continue;
        }
        match user(ctx, &name, &base) {
            Some(e) => {
                out.insert(name, e);
            }
            // Safety net: a user is never dropped silently.
            None if !ctx.has_error_under(&base) => {
                ctx.error(&base, "the user could not be validated (internal error)")
            }
            None => {}
        }
    }
    out
}

fn user(ctx: &mut Ctx, name: &str, base: &str) -> Option<UserEntry> {
    let mut ok = true;
    if name.is_empty() {
        ctx.error(base, "user names cannot be empty");
        ok = false;
    } else if name.contains(':') {
        ctx.error(
            base,
            "user names cannot contain `:` (it separates name and password in HTTP Basic authentication)",
        );
        ok = false;
    } else if name.chars().any(char::is_control) {
        ctx.error(base, "user names cannot contain control characters");
        ok = false;
    }
    let hash_key = format!("{base}.password_hash");
    let hash = ctx.string(&hash_key);
    let password_hash = match hash {
        None => {
            if !ctx.any_under(&format!("{base}.password")) {
                ctx.error(
                    &hash_key,
                    format!(
                        "The configuration setting [{hash_key}] is required (create one with `oidc-realm hash-password`)"
                    ),
                );
            }
            None
        }
        Some(h) => parse_password_hash(ctx, &hash_key, h.trim()),
    };
    let privileges = privileges(ctx, &format!("{base}.privileges"));
    let roles = match ctx.list(&format!("{base}.roles")) {
        None if ctx.has_error_under(&format!("{base}.roles")) => None,
        None => Some(Vec::new()),
        Some(mut list) => {
            list.sort();
            list.dedup();
            Some(list)
        }
    };
    let full_name = ctx.string(&format!("{base}.full_name"));
    let email = ctx.string(&format!("{base}.email"));
    if !ok {
        return None;
    }
    Some(UserEntry {
        password_hash: password_hash?,
        privileges: privileges?,
        roles: roles?,
        full_name,
        email,
    })
}

/// `<base>.privileges`: required; `[]` is allowed (a caller that may call no API but
/// `_authenticate`, e.g. an end user of the `password` grant).
fn privileges(ctx: &mut Ctx, key: &str) -> Option<BTreeSet<Privilege>> {
    let Some(list) = ctx.list(key) else {
        if ctx.value(key).is_none() {
            ctx.error(
                key,
                format!(
                    "The configuration setting [{key}] is required: a list of {} (or [] for none)",
                    Privilege::names()
                ),
            );
        }
        return None;
    };
    let mut set = BTreeSet::new();
    let mut good = true;
    for p in list {
        match Privilege::parse(&p) {
            Some(x) => {
                set.insert(x);
            }
            None => {
                good = false;
                ctx.error(
                    key,
                    format!(
                        "unknown privilege [{}]; allowed are [{}]",
                        shown(&p),
                        Privilege::names()
                    ),
                );
            }
        }
    }
    good.then_some(set)
}

/// `service_tokens.<namespace/service/name>`: `hash` (from `oidc-realm create-service-token`)
/// and `privileges`.
pub(super) fn service_tokens(ctx: &mut Ctx) -> BTreeMap<String, ServiceTokenEntry> {
    let names: BTreeSet<String> = ctx
        .leaves
        .values()
        .filter(|l| l.segs.len() >= 2 && l.segs[0] == "service_tokens")
        .map(|l| l.segs[1].clone())
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let base = format!("service_tokens.{name}");
        if ctx.value(&base).is_some() {
            // A scalar instead of a mapping: reported by the key check.
            continue;
        }
        let mut ok = true;
        if let Err(why) = service_tokens::check_name(&name) {
            ctx.error(&base, why);
            ok = false;
        }
        let hash_key = format!("{base}.hash");
        let secret_hash = match ctx.string(&hash_key) {
            None => {
                ctx.error(
                    &hash_key,
                    format!("The configuration setting [{hash_key}] is required (create a token with `oidc-realm create-service-token {name}`)"),
                );
                None
            }
            Some(h) => match service_tokens::parse_hash(h.trim()) {
                Ok(h) => Some(h),
                Err(why) => {
                    ctx.error(&hash_key, why);
                    None
                }
            },
        };
        let privileges = privileges(ctx, &format!("{base}.privileges"));
        if let (true, Some(secret_hash), Some(privileges)) = (ok, secret_hash, privileges) {
            out.insert(
                name,
                ServiceTokenEntry {
                    secret_hash,
                    privileges,
                },
            );
        }
    }
    out
}

/// Check the shape of a stored hash; never echo it.
pub(super) fn parse_password_hash(ctx: &mut Ctx, key: &str, h: &str) -> Option<PasswordHash> {
    if h.starts_with("$argon2") {
        return match argon2::PasswordHash::new(h) {
            Ok(p) if p.algorithm.as_str() == "argon2id" => {
                Some(PasswordHash::Argon2id(h.to_string()))
            }
            Ok(p) => {
                ctx.error(
                    key,
                    format!(
                        "only argon2id hashes are accepted, found {}; run `oidc-realm hash-password`",
                        p.algorithm
                    ),
                );
                None
            }
            Err(e) => {
                ctx.error(
                    key,
                    format!(
                        "not a valid argon2id PHC string ({e}); run `oidc-realm hash-password`"
                    ),
                );
                None
            }
        };
    }
    if h.starts_with("$2") {
        return if is_bcrypt(h) {
            Some(PasswordHash::Bcrypt(h.to_string()))
        } else {
            ctx.error(
                key,
                "not a valid bcrypt hash (expected 60 characters: $2a$/$2b$/$2y$, a cost 04-31, `$`, 53 characters of salt and hash)",
            );
            None
        };
    }
    ctx.error(
        key,
        "not a supported password hash: use an argon2id PHC string ($argon2id$...) from `oidc-realm hash-password`, or a bcrypt hash ($2a$/$2b$/$2y$)",
    );
    None
}

/// `$2a$`/`$2b$`/`$2y$`, a cost 04-31, `$`, 53 characters of `[./A-Za-z0-9]`: 60 bytes.
/// Works on bytes only (never slices the text, so a multi-byte character anywhere is simply
/// "not bcrypt", not a panic).
fn is_bcrypt(h: &str) -> bool {
    let Some((head, body)) = h.as_bytes().split_first_chunk::<7>() else {
        return false;
    };
    let [b'$', b'2', variant, b'$', tens, units, b'$'] = *head else {
        return false;
    };
    let prefix_ok = matches!(variant, b'a' | b'b' | b'y');
    let cost_ok = tens.is_ascii_digit()
        && units.is_ascii_digit()
        && (4..=31).contains(&((tens - b'0') * 10 + (units - b'0')));
    let body_ok = body.len() == 53
        && body
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/');
    prefix_ok && cost_ok && body_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("65536"), Some(65536));
        assert_eq!(parse_byte_size("64kb"), Some(65536));
        assert_eq!(parse_byte_size("64KB"), Some(65536));
        assert_eq!(parse_byte_size("1mb"), Some(1 << 20));
        assert_eq!(parse_byte_size("512b"), Some(512));
        assert_eq!(parse_byte_size("1.5mb"), None);
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size(""), None);
    }

    #[test]
    fn bcrypt_shape() {
        let good = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert_eq!(good.len(), 60);
        assert!(is_bcrypt(good));
        assert!(!is_bcrypt(&good.replace("$12$", "$03$")));
        assert!(!is_bcrypt(&good.replace("$12$", "$32$")));
        assert!(!is_bcrypt(&good[..59]));
        assert!(!is_bcrypt(&good.replace("$2b$", "$2x$")));
    }

    #[test]
    fn bcrypt_shape_never_slices_inside_a_character() {
        // 60 bytes, a multi-byte character across byte 4, across byte 6, and at the end.
        for h in [
            format!("$2b{}{}", '\u{e9}', "a".repeat(55)),
            format!("$2{}{}", '\u{20ac}', "a".repeat(55)),
            format!("$2b$1{}{}", '\u{e9}', "a".repeat(53)),
            format!("$2b$12{}{}", '\u{20ac}', "a".repeat(51)),
            format!(
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jW{}",
                '\u{20ac}'
            ),
        ] {
            assert_eq!(h.len(), 60);
            assert!(!is_bcrypt(&h), "{h}");
        }
    }
}
