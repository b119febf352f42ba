//! Reading and validating the YAML file.
//!
//! Steps: parse YAML (`serde_norway`) → flatten to canonical dotted keys (`flatten.rs`) →
//! check every key is known (with "did you mean") → read and validate each section
//! (`values.rs` for typed getters, `realm.rs` for OIDC realms), collecting **every** problem.

use super::ctx::Ctx;
use super::flatten::{flatten, scan_key_lines, Leaf};
use super::{keys, realm, role_mappings as rm, sections, Settings};
use std::fmt;
use std::path::Path;

/// A loaded configuration and the warnings found on the way (logged by `serve`,
/// printed by `check-config`).
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
    /// Other files this configuration was read from (`${file:...}` secrets, role-mapping
    /// files), for the reloader.
    pub files: Vec<std::path::PathBuf>,
}

/// One configuration problem, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `realms.oidc1.rp.redirect_uri`.
    pub path: String,
    pub message: String,
    /// 1-based line and column where the YAML parser knows them.
    pub location: Option<(usize, usize)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if let Some((line, col)) = self.location {
            write!(f, " (line {line}, column {col})")?;
        }
        Ok(())
    }
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Load and validate the file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.display().to_string(),
            message: format!("cannot read config file: {e}"),
            location: None,
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(&text, base)
}

/// Validate YAML text; relative paths resolve against `base_dir`.
///
/// A panic during validation (a bug) becomes one error instead of ending the process, so
/// `check-config` and `serve` print a list and the reloader records a failed reload.
pub fn load_str(yaml: &str, base_dir: &Path) -> Result<Loaded, ConfigErrors> {
    std::panic::catch_unwind(|| validate(yaml, base_dir)).unwrap_or_else(|_| {
        Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: "internal error: validating the configuration panicked (a bug in oidc-realm; the panic message is on standard error, please report it); nothing was loaded".into(),
            location: None,
        }]))
    })
}

fn validate(yaml: &str, base_dir: &Path) -> Result<Loaded, ConfigErrors> {
    #[cfg(test)]
    if yaml.contains(tests::PANIC_MARKER) {
        panic!("injected panic (load test hook)");
    }
    let base_dir = absolute_dir(base_dir);
    let mut doc: serde_norway::Value = match serde_norway::from_str(yaml) {
        Ok(v) => v,
        Err(e) => {
            let location = e.location().map(|l| (l.line(), l.column()));
            let mut message = e.to_string();
            // The location is reported separately; avoid saying it twice.
            if let Some((l, c)) = location {
                if let Some(stripped) = message.strip_suffix(&format!(" at line {l} column {c}")) {
                    message = stripped.to_string();
                }
            }
            return Err(ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("YAML syntax error: {message}"),
                location,
            }]));
        }
    };
    // YAML merge keys (`<<: *common`) let realms share settings.
    if let Err(e) = doc.apply_merge() {
        return Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: format!("YAML merge key (<<) error: {e}"),
            location: e.location().map(|l| (l.line(), l.column())),
        }]));
    }
    let mut ctx = Ctx::new(base_dir.clone(), scan_key_lines(yaml));
    // Role mappings are free-form (their rules are not settings): kept out of flattening.
    let raw_mappings = rm::take(&mut doc);
    match &doc {
        serde_norway::Value::Mapping(_) | serde_norway::Value::Null => {}
        _ => {
            return Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            message:
                "the configuration must be a YAML mapping (http, data, token, log, compatibility, limits, metrics, audit, users, service_tokens, realms)"
                    .into(),
            location: Some((1, 1)),
        }]))
        }
    }
    let mut leaves: Vec<Leaf> = Vec::new();
    let mut bad_keys = Vec::new();
    flatten(&doc, &mut leaves, &mut bad_keys);
    for raw in bad_keys {
        let loc = ctx.raw_location(&raw);
        let path = super::flatten::canonical(&raw).join(".");
        ctx.error_at(&path, "map keys must be strings", loc);
    }
    for leaf in leaves {
        if ctx.leaves.contains_key(&leaf.path) {
            let loc = ctx.raw_location(&leaf.raw);
            ctx.error_at(
                &leaf.path.clone(),
                format!(
                    "key [{}] is given twice (as written here: `{}`); keep one (flat `a.b`, nested `a: {{b: ..}}` and `xpack.security.authc.realms.oidc.` forms name the same key)",
                    leaf.path,
                    leaf.raw.join(" → ")
                ),
                loc,
            );
            continue;
        }
        ctx.leaves.insert(leaf.path.clone(), leaf);
    }

    keys::check_known(&mut ctx);
    let http = sections::http(&mut ctx);
    let data = sections::data(&mut ctx);
    let token = sections::token(&mut ctx);
    let log = sections::log(&mut ctx);
    let compatibility = sections::compatibility(&mut ctx);
    let limits = sections::limits(&mut ctx);
    let metrics = sections::metrics(&mut ctx, http.as_ref());
    let audit = sections::audit(&mut ctx);
    let users = sections::users(&mut ctx);
    let service_tokens = sections::service_tokens(&mut ctx);
    let realms = realm::realms(&mut ctx);
    let role_mappings = rm::role_mappings(&mut ctx, raw_mappings);
    let connections = super::connections::connection_settings(&mut ctx);
    if users.is_empty() && !ctx.any_under("users") {
        ctx.warn(
            "users",
            "no users are configured: nobody can call the API (add one with a hash from `oidc-realm hash-password`)",
        );
    }
    if realms.is_empty() && !ctx.any_under("realms") {
        ctx.warn("realms", "no realms are configured");
    }

    let mut errors = std::mem::take(&mut ctx.errors);
    if !errors.is_empty() {
        errors.sort_by(|a, b| {
            let la = a.location.unwrap_or((usize::MAX, usize::MAX));
            let lb = b.location.unwrap_or((usize::MAX, usize::MAX));
            (la, &a.path, &a.message).cmp(&(lb, &b.path, &b.message))
        });
        errors.dedup();
        return Err(ConfigErrors(errors));
    }
    let mut warnings = std::mem::take(&mut ctx.warnings);
    warnings.sort_by(|a, b| {
        let la = a.0.unwrap_or((usize::MAX, usize::MAX));
        let lb = b.0.unwrap_or((usize::MAX, usize::MAX));
        (la, &a.1, &a.2).cmp(&(lb, &b.1, &b.2))
    });
    warnings.dedup();
    let warnings = warnings
        .into_iter()
        .map(|(loc, path, msg)| match loc {
            Some((l, c)) => format!("{path}: {msg} (line {l}, column {c})"),
            None => format!("{path}: {msg}"),
        })
        .collect();
    let (
        Some(http),
        Some(data),
        Some(token),
        Some(log),
        Some(compatibility),
        Some(limits),
        Some(metrics),
        Some(audit),
    ) = (
        http,
        data,
        token,
        log,
        compatibility,
        limits,
        metrics,
        audit,
    )
    else {
        // Every `None` above comes with an error, so this is unreachable in practice.
        return Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: "internal error: a section failed without an error".into(),
            location: None,
        }]));
    };
    Ok(Loaded {
        settings: Settings {
            base_dir,
            http,
            data,
            token,
            log,
            users,
            service_tokens,
            compatibility,
            limits,
            metrics,
            audit,
            realms,
            role_mappings,
            connections,
        },
        warnings,
        files: std::mem::take(&mut ctx.secret_files),
    })
}

/// The config directory as an absolute path (`""` means the current directory).
fn absolute_dir(dir: &Path) -> std::path::PathBuf {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    super::ctx::normalize(&std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test hook: validating YAML that holds this line panics (in unit tests only).
    pub(super) const PANIC_MARKER: &str = "# unit-test hook: panic while validating";

    fn base() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oidc-realm-load-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("jwks.json"), r#"{"keys":[]}"#).unwrap();
        d
    }

    const MINIMAL: &str = r#"
users:
  fac:
    password_hash: "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
    privileges: manage_oidc, manage_token
realms:
  oidc1:
    order: 1
    rp.client_id: cid
    rp.client_secret: literal-secret
    rp.redirect_uri: https://app.example.com/cb
    rp.response_type: code
    op.issuer: https://op.example.com
    op.authorization_endpoint: https://op.example.com/auth
    op.token_endpoint: https://op.example.com/token
    op.jwkset_path: jwks.json
    claims.principal: sub
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let l = load_str(MINIMAL, &base()).unwrap();
        let s = &l.settings;
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:9280");
        assert_eq!(s.http.max_body, 64 * 1024);
        assert_eq!(s.token.timeout.as_secs(), 1200);
        assert_eq!(s.token.refresh_timeout.as_secs(), 86400);
        assert_eq!(s.log.format, super::super::LogFormat::Human);
        assert!(s.data.path.ends_with("data/oidc-realm.redb"));
        assert!(s.data.path.is_absolute());
        let r = &s.realms[0];
        assert_eq!(r.rp.requested_scopes, vec!["openid"]);
        assert!(r.rp.pkce);
        assert_eq!(r.http.connection_pool_ttl.unwrap().as_secs(), 180);
        assert_eq!(
            r.op.jwkset,
            super::super::JwksSource::File(base().join("jwks.json"))
        );
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(l.warnings[0].starts_with("realms.oidc1.rp.client_secret: "));
        assert!(!l.warnings[0].contains("literal-secret"));
    }

    #[test]
    fn a_panic_while_validating_is_an_error() {
        let e = load_str(&format!("{MINIMAL}{PANIC_MARKER}\n"), &base()).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].message.starts_with("internal error: "), "{e}");
        assert!(e.0[0].path.is_empty());
        // And the next load is unaffected.
        assert!(load_str(MINIMAL, &base()).is_ok());
    }

    #[test]
    fn syntax_error_has_location() {
        let e = load_str("http:\n  bind: [1,\n", &base()).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(e.0[0].message.starts_with("YAML syntax error"));
        assert!(e.0[0].location.is_some());
    }

    #[test]
    fn key_errors_carry_the_line() {
        let yaml = MINIMAL.replace("    order: 1\n", "    order: 1\n    rp.clientid: x\n");
        let e = load_str(&yaml, &base()).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].path, "realms.oidc1.rp.clientid");
        assert!(e.0[0].message.contains("did you mean `rp.client_id`?"));
        assert_eq!(e.0[0].location, Some((9, 5)));
    }
}
