//! Black-box tests of the configuration loader: `oidc_realm::config::{load, load_str}`.

use oidc_realm::config::{load, load_str, ConfigErrors, JwksSource, Loaded, SignatureAlgorithm};
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

/// A fresh config directory with a JWKS file, a secret file and PEM fixtures.
fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("jwks.json"), r#"{"keys":[]}"#).unwrap();
    std::fs::create_dir(d.path().join("secrets")).unwrap();
    std::fs::write(
        d.path().join("secrets/client_secret"),
        "file-secret-value-7f3a\n",
    )
    .unwrap();
    std::fs::write(d.path().join("not-pem.txt"), "hello").unwrap();
    for f in ["test-cert.pem", "test-key.pem"] {
        std::fs::copy(Path::new(FIXTURES).join(f), d.path().join(f)).unwrap();
    }
    d
}

/// The realm keys of a valid realm, flat.
const REALM: &[(&str, &str)] = &[
    ("order", "1"),
    ("rp.client_id", "my-client"),
    ("rp.client_secret", "${file:secrets/client_secret}"),
    (
        "rp.redirect_uri",
        "https://kibana.example.com/api/security/oidc/callback",
    ),
    ("rp.response_type", "code"),
    ("op.issuer", "https://op.example.com"),
    (
        "op.authorization_endpoint",
        "https://op.example.com/authorize",
    ),
    ("op.token_endpoint", "https://op.example.com/token"),
    ("op.jwkset_path", "jwks.json"),
    ("claims.principal", "sub"),
];

const USERS: &str = r#"users:
  fac:
    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$Iy2ZDXnjzi7xO+E5+Km8AQ$l5/SzYuTfWaQz+6X7eh3Q/CmES4gLfVg1Fl0jkpgzvE"
    privileges: [manage_oidc, manage_token]
"#;

/// A config with one realm `oidc1`: `changes` replace (Some) or remove (None) realm keys or
/// add new ones; `top` is appended at the top level.
fn config(changes: &[(&str, Option<&str>)], top: &str) -> String {
    let mut keys: Vec<(String, String)> = REALM
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in changes {
        keys.retain(|(kk, _)| kk != k);
        if let Some(v) = v {
            keys.push((k.to_string(), v.to_string()));
        }
    }
    let mut s = String::from(USERS);
    s.push_str("realms:\n  oidc1:\n");
    for (k, v) in keys {
        s.push_str(&format!("    {k}: {}\n", yaml_scalar(&v)));
    }
    s.push_str(top);
    s
}

fn yaml_scalar(v: &str) -> String {
    if v.starts_with('[') || v.parse::<i64>().is_ok() || v == "true" || v == "false" {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "''"))
    }
}

fn ok(yaml: &str, d: &Path) -> Loaded {
    load_str(yaml, d).unwrap_or_else(|e| panic!("expected to load, got:\n{e}\n---\n{yaml}"))
}

fn err(yaml: &str, d: &Path) -> ConfigErrors {
    match load_str(yaml, d) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(e) => e,
    }
}

fn assert_has(e: &ConfigErrors, path: &str, needle: &str) {
    assert!(
        e.0.iter()
            .any(|x| x.path == path && x.message.contains(needle)),
        "no error at `{path}` containing `{needle}`; got:\n{e}"
    );
}

#[test]
fn example_config_loads_without_errors() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/oidc-realm.yml");
    let l = load(&path).unwrap_or_else(|e| panic!("{e}"));
    let s = &l.settings;
    assert_eq!(s.http.bind.to_string(), "127.0.0.1:9280");
    assert_eq!(
        s.data.path,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/oidc-realm.redb")
    );
    assert_eq!(s.users.len(), 2);
    assert!(s.users["facilitator"].password_hash != s.users["admin"].password_hash);
    assert_eq!(s.realms.len(), 1);
    let r = &s.realms[0];
    assert_eq!(r.name, "oidc1");
    assert_eq!(r.op.issuer, "http://127.0.0.1:9380");
    assert_eq!(
        r.op.jwkset,
        JwksSource::File(Path::new(env!("CARGO_MANIFEST_DIR")).join("jwks/example.json"))
    );
    assert_eq!(
        r.rp.client_secret.expose_secret(),
        "dev-only-oidc1-client-secret-change-me"
    );
    // Only the loopback-http warnings: the client secret comes from a file.
    assert!(
        l.warnings.iter().all(|w| w.contains("loopback")),
        "{:?}",
        l.warnings
    );
    assert_eq!(l.warnings.len(), 4, "{:?}", l.warnings);
}

#[test]
fn example_password_hashes_match_the_documented_passwords() {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/oidc-realm.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    for (user, pw) in [
        ("facilitator", "facilitator-password"),
        ("admin", "admin-password"),
    ] {
        let after = &text[text.find(&format!("  {user}:")).unwrap()..];
        let line = after
            .lines()
            .find(|l| l.contains("password_hash:"))
            .unwrap();
        let hash = line.split('"').nth(1).unwrap();
        let parsed = PasswordHash::new(hash).unwrap();
        assert!(argon2::Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok());
    }
}

#[test]
fn valid_base_config_loads() {
    let d = dir();
    let l = ok(&config(&[], ""), d.path());
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let r = &l.settings.realms[0];
    assert_eq!(r.rp.signature_algorithms, vec![SignatureAlgorithm::RS256]);
    assert_eq!(r.rp.requested_scopes, vec!["openid"]);
}

/// (realm key changes, top-level YAML or extra users, expected error path, expected text).
type Case<'a> = (Vec<(&'a str, Option<&'a str>)>, &'a str, String, &'a str);

#[test]
fn broken_configs_report_the_expected_errors() {
    let d = dir();
    let o = "realms.oidc1.";
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (vec![("rp.redirect_uri", Some("/callback"))], "", format!("{o}rp.redirect_uri"), "not an absolute URL (\"/callback\")"),
        (vec![("rp.redirect_uri", Some("https://exa mple.com/"))], "", format!("{o}rp.redirect_uri"), "Not a valid URI"),
        (vec![("rp.client_id", None)], "", format!("{o}rp.client_id"), "The configuration setting [realms.oidc1.rp.client_id] is required"),
        (vec![("rp.client_secret", None)], "", format!("{o}rp.client_secret"), "is required"),
        (vec![("op.issuer", None)], "", format!("{o}op.issuer"), "is required"),
        (vec![("op.jwkset_path", None)], "", format!("{o}op.jwkset_path"), "is required"),
        (vec![("order", None)], "", format!("{o}order"), "is required"),
        (vec![("order", Some("first"))], "", format!("{o}order"), "expected an integer"),
        (vec![("enabled", Some("yes"))], "", format!("{o}enabled"), "only [true] or [false] are allowed"),
        (vec![("claims.principal", None)], "", format!("{o}claims.principal"), "Setting [realms.oidc1.claims.principal] is required"),
        (vec![("claims.principal", Some(""))], "", format!("{o}claims.principal"), "Setting [realms.oidc1.claims.principal] is required"),
        (vec![("rp.client_secret", Some(""))], "", format!("{o}rp.client_secret"), "is required"),
        (vec![("claims.groups", Some("")), ("claim_patterns.groups", Some("^(.*)$"))], "", format!("{o}claim_patterns.groups"), "cannot be set unless"),
        (vec![("op.token_endpoint", None)], "", format!("{o}op.token_endpoint"), "is required when [realms.oidc1.rp.response_type] is set to \"code\""),
        (vec![("rp.response_type", Some("token"))], "", format!("{o}rp.response_type"), "Invalid value [token] for [realms.oidc1.rp.response_type]. Allowed values are [code, id_token, id_token token]"),
        (vec![("rp.signature_algorithm", Some("rs256"))], "", format!("{o}rp.signature_algorithm"), "Invalid value [rs256]"),
        (vec![("rp.signature_algorithm", Some("none"))], "", format!("{o}rp.signature_algorithm"), "unsigned ID tokens are never accepted"),
        (vec![("rp.signature_algorithm", Some("[RS256, HS1]"))], "", format!("{o}rp.signature_algorithm"), "Invalid value [HS1]"),
        (vec![("rp.client_auth_method", Some("tls_client_auth"))], "", format!("{o}rp.client_auth_method"), "Allowed values are [client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt]"),
        (vec![("rp.client_auth_jwt_signature_algorithm", Some("RS256"))], "", format!("{o}rp.client_auth_jwt_signature_algorithm"), "Allowed values are [HS256, HS384, HS512]"),
        (vec![("rp.signature_algorithm", Some("[RS256, HS256]"))], "", format!("{o}rp.client_secret"), "HMAC key of at least 32 bytes"),
        (vec![("rp.client_auth_method", Some("client_secret_jwt"))], "", format!("{o}rp.client_secret"), "HMAC key of at least 48 bytes"),
        (vec![("rp.requested_scopes", Some("openid profile"))], "", format!("{o}rp.requested_scopes"), "cannot contain spaces"),
        (vec![("rp.pkce", Some("maybe"))], "", format!("{o}rp.pkce"), "only [true] or [false]"),
        (vec![("op.token_endpoint", Some("http://op.example.com/token"))], "", format!("{o}op.token_endpoint"), "The [http] protocol is not supported as it is insecure. Use [https] instead"),
        (vec![("op.authorization_endpoint", Some("ftp://op.example.com/a"))], "", format!("{o}op.authorization_endpoint"), "unsupported URL scheme [ftp]"),
        (vec![("op.jwkset_path", Some("http://op.example.com/jwks"))], "", format!("{o}op.jwkset_path"), "The [http] protocol is not supported"),
        (vec![("op.jwkset_path", Some("missing.json"))], "", format!("{o}op.jwkset_path"), "cannot read file"),
        (vec![("claim_patterns.groups", Some("^(.*)$"))], "", format!("{o}claim_patterns.groups"), "Setting [realms.oidc1.claim_patterns.groups] cannot be set unless [realms.oidc1.claims.groups] is also set"),
        (vec![("claim_patterns.principal", Some("^sub$"))], "", format!("{o}claim_patterns.principal"), "has no capture group"),
        (vec![("claim_patterns.principal", Some("^(unclosed$"))], "", format!("{o}claim_patterns.principal"), "not a valid regular expression"),
        (vec![("allowed_clock_skew", Some("60"))], "", format!("{o}allowed_clock_skew"), "unit is missing or unrecognized"),
        (vec![("http.connect_timeout", Some("-1"))], "", format!("{o}http.connect_timeout"), "-1 is not allowed"),
        (vec![("http.max_connections", Some("0"))], "", format!("{o}http.max_connections"), "must be between 1"),
        (vec![("http.proxy.host", Some("proxy.example.com")), ("http.proxy.scheme", Some("socks5"))], "", format!("{o}http.proxy.scheme"), "Invalid value [socks5] for [realms.oidc1.http.proxy.scheme]. Only `http` or `https` are allowed."),
        (vec![("http.proxy.host", Some("proxy.example.com")), ("http.proxy.port", Some("70000"))], "", format!("{o}http.proxy.port"), "must be between 1 and 65535"),
        (vec![("http.proxy.host", Some("http://proxy.example.com:3128"))], "", format!("{o}http.proxy.host"), "host name or IP only"),
        (vec![("http.proxy.port", Some("3128"))], "", format!("{o}http.proxy.port"), "cannot be set unless [realms.oidc1.http.proxy.host] is also set"),
        (vec![("rp.clientid", Some("x"))], "", format!("{o}rp.clientid"), "unknown key; did you mean `rp.client_id`?"),
        (vec![("client_secret", Some("x"))], "", format!("{o}client_secret"), "did you mean `rp.client_secret`?"),
        (vec![("op.jwks_path", Some("x"))], "", format!("{o}op.jwks_path"), "did you mean `op.jwkset_path`?"),
        (vec![("authorization_realms", Some("native1"))], "", format!("{o}authorization_realms"), "not supported"),
        (vec![("ssl.truststore.path", Some("ts.p12"))], "", format!("{o}ssl.truststore.path"), "convert to PEM"),
        (vec![("ssl.truststore.path", Some("ts.p12"))], "", format!("{o}ssl.truststore.path"), "use ssl.certificate_authorities"),
        (vec![("ssl.keystore.path", Some("ks.p12"))], "", format!("{o}ssl.keystore.path"), "use ssl.certificate and ssl.key"),
        (vec![("ssl.keystore.secure_password", Some("${env:KS_PW}"))], "", format!("{o}ssl.keystore.secure_password"), "not supported"),
        (vec![("ssl.secure_key_passphrase", Some("${env:KEY_PW}"))], "", format!("{o}ssl.secure_key_passphrase"), "encrypted private keys are not supported"),
        (vec![("ssl.certificate", Some("test-cert.pem"))], "", format!("{o}ssl.key"), "is required"),
        (vec![("ssl.certificate_authorities", Some("not-pem.txt"))], "", format!("{o}ssl.certificate_authorities"), "holds no PEM certificate"),
        (vec![("ssl.certificate_authorities", Some("[test-cert.pem, nope.pem]"))], "", format!("{o}ssl.certificate_authorities"), "cannot read file"),
        (vec![("ssl.certificate", Some("test-cert.pem")), ("ssl.key", Some("test-cert.pem"))], "", format!("{o}ssl.key"), "no usable PEM private key"),
        (vec![("ssl.verification_mode", Some("strict"))], "", format!("{o}ssl.verification_mode"), "Allowed values are [full, certificate, none]"),
        (vec![("ssl.supported_protocols", Some("TLSv1.1"))], "", format!("{o}ssl.supported_protocols"), "unsupported protocol [TLSv1.1]"),
        (vec![("ssl.cipher_suites", Some("TLS_RSA_WITH_AES_128_CBC_SHA"))], "", format!("{o}ssl.cipher_suites"), "unsupported cipher suite"),
        (vec![], "http:\n  bind: localhost:9280\n", "http.bind".into(), "not a socket address"),
        (vec![], "http:\n  max_body: lots\n", "http.max_body".into(), "size in bytes"),
        (vec![], "http:\n  tls:\n    certificate: test-cert.pem\n", "http.tls.key".into(), "is required"),
        (vec![], "http:\n  tls:\n    certificate: not-pem.txt\n    key: test-key.pem\n", "http.tls.certificate".into(), "holds no PEM certificate"),
        (vec![], "http:\n  bnd: 1.2.3.4:5\n", "http.bnd".into(), "did you mean `http.bind`?"),
        (vec![], "htpp:\n  bind: 1.2.3.4:5\n", "htpp.bind".into(), "did you mean `http.bind`?"),
        (vec![], "token:\n  timeout: 2h\n", "token.timeout".into(), "must be <= [1h]"),
        (vec![], "token:\n  timeout: 500ms\n", "token.timeout".into(), "must be >= [1s]"),
        (vec![], "token:\n  refresh_timeout: 0s\n", "token.refresh_timeout".into(), "must be greater than 0"),
        (vec![], "token:\n  cache_size: lots\n", "token.cache_size".into(), "size in bytes (use e.g. 48mb"),
        (vec![], "token:\n  cache_size: 512kb\n", "token.cache_size".into(), "must be at least 1mb (got [512kb])"),
        (vec![], "data:\n  cache_size: 0\n", "data.cache_size".into(), "must be at least 1mb (got [0])"),
        (vec![], "data:\n  cache_size: -5mb\n", "data.cache_size".into(), "size in bytes (use e.g. 8mb"),
        (vec![], "data:\n  cache_sise: 5mb\n", "data.cache_sise".into(), "did you mean `data.cache_size`?"),
        (vec![], "log:\n  format: xml\n", "log.format".into(), "Allowed values are [human, json]"),
        (vec![], "log:\n  level: 'info,=='\n", "log.level".into(), "not a valid log filter"),
        (vec![], "  bob:\n    password: hunter2\n    privileges: [all]\n", "users.bob.password".into(), "oidc-realm hash-password"),
        (vec![], "  bob:\n    password_hash: plain\n    privileges: [all]\n", "users.bob.password_hash".into(), "not a supported password hash"),
        (vec![], "  bob:\n    password_hash: '$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$Z3JpZ3JpZ3JpZ3Jp'\n    privileges: [all]\n", "users.bob.password_hash".into(), "only argon2id"),
        (vec![], "  bob:\n    password_hash: '$2b$12$short'\n    privileges: [all]\n", "users.bob.password_hash".into(), "not a valid bcrypt hash"),
        (vec![], "  bob:\n    password_hash: '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW'\n    privileges: [read]\n", "users.bob.privileges".into(), "unknown privilege [read]"),
        (vec![], "  bob:\n    password_hash: '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW'\n    privileges: [manage_oidc]\n    roles: true\n", "users.bob.roles".into(), "expected a list"),
        (vec![], "  bob:\n    password_hash: '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW'\n", "users.bob.privileges".into(), "is required"),
        (vec![], "  'bo:b':\n    password_hash: '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW'\n    privileges: [all]\n", "users.bo:b".into(), "cannot contain `:`"),
        (vec![], "  bob:\n    password_hash: '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW'\n    privileges: [all]\n    mail: b@example.com\n", "users.bob.mail".into(), "did you mean `email`?"),
        (vec![], "xpack.security.authc.realms.saml.saml1.order: 2\n", "xpack.security.authc.realms.saml.saml1.order".into(), "only OpenID Connect realms"),
    ];
    for (changes, top, path, needle) in cases {
        // Users given as `top` are added under `users:` (they start with two spaces).
        let yaml = if top.starts_with("  ") {
            config(&changes, "").replacen("realms:\n", &format!("{top}realms:\n"), 1)
        } else {
            config(&changes, top)
        };
        let e = err(&yaml, d.path());
        assert_has(&e, &path, needle);
    }
}

#[test]
fn every_problem_in_one_file_is_reported_in_file_order() {
    let d = dir();
    let yaml = r#"http:
  bind: nowhere
  colour: blue
token:
  timeout: 2h
users:
  bob:
    password: hunter2
    privileges: [all, sudo]
realms:
  oidc1:
    order: 1
    rp.client_id: x
    rp.redirect_uri: /callback
    rp.response_type: code
    op.issuer: https://op.example.com
    op.authorization_endpoint: http://op.example.com/auth
    op.jwkset_path: jwks.json
  oidc2:
    order: 1
    rp:
      client_id: y
"#;
    let e = err(yaml, d.path());
    let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
    for p in [
        "http.bind",
        "http.colour",
        "token.timeout",
        "users.bob.password",
        "users.bob.privileges",
        "realms.oidc1.rp.client_secret",
        "realms.oidc1.rp.redirect_uri",
        "realms.oidc1.op.token_endpoint",
        "realms.oidc1.op.authorization_endpoint",
        "realms.oidc1.claims.principal",
        "realms.oidc1.order",
        "realms.oidc2.order",
        "realms.oidc2.op.issuer",
    ] {
        assert!(paths.contains(&p), "missing {p} in:\n{e}");
    }
    // Sorted by position in the file; every error here has one.
    let locs: Vec<(usize, usize)> = e.0.iter().map(|x| x.location.unwrap()).collect();
    let mut sorted = locs.clone();
    sorted.sort();
    assert_eq!(locs, sorted);
    let first = &e.0[0];
    assert_eq!(first.path, "http.bind");
    assert_eq!(first.location, Some((2, 3)));
    assert!(e.to_string().contains("(line 2, column 3)"));
    // Deterministic.
    assert_eq!(load_str(yaml, d.path()).unwrap_err(), e);
}

#[test]
fn yaml_syntax_errors_have_a_location() {
    let d = dir();
    let e = err("http:\n  bind: 127.0.0.1:9280\n   bad: [\n", d.path());
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].message.contains("YAML syntax error"), "{e}");
    assert!(e.0[0].location.is_some());
}

#[test]
fn flat_nested_and_xpack_forms_are_equal() {
    let d = dir();
    let flat = config(&[], "");
    let nested = format!(
        "{USERS}realms:
  oidc1:
    order: 1
    rp:
      client_id: my-client
      client_secret: ${{file:secrets/client_secret}}
      redirect_uri: https://kibana.example.com/api/security/oidc/callback
      response_type: code
    op:
      issuer: https://op.example.com
      authorization_endpoint: https://op.example.com/authorize
      token_endpoint: https://op.example.com/token
      jwkset_path: jwks.json
    claims:
      principal: sub
"
    );
    let xpack_flat = format!(
        "{USERS}{}",
        REALM
            .iter()
            .map(|(k, v)| format!(
                "xpack.security.authc.realms.oidc.oidc1.{k}: {}\n",
                yaml_scalar(v)
            ))
            .collect::<String>()
    );
    let xpack_nested = format!(
        "{USERS}xpack:
  security:
    authc:
      realms:
        oidc:
          oidc1:
            order: 1
            rp.client_id: my-client
            rp.client_secret: ${{file:secrets/client_secret}}
            rp.redirect_uri: https://kibana.example.com/api/security/oidc/callback
            rp.response_type: code
            op:
              issuer: https://op.example.com
              authorization_endpoint: https://op.example.com/authorize
              token_endpoint: https://op.example.com/token
              jwkset_path: jwks.json
            claims.principal: sub
"
    );
    let mixed = format!(
        "{USERS}realms.oidc1.order: 1
realms:
  oidc1:
    rp.client_id: my-client
    rp:
      client_secret: ${{file:secrets/client_secret}}
      redirect_uri: https://kibana.example.com/api/security/oidc/callback
    op.issuer: https://op.example.com
    op.authorization_endpoint: https://op.example.com/authorize
    op.token_endpoint: https://op.example.com/token
    op.jwkset_path: jwks.json
    claims.principal: sub
xpack.security.authc.realms.oidc.oidc1.rp.response_type: code
"
    );
    let reference = format!("{:?}", ok(&flat, d.path()).settings.realms);
    for (name, yaml) in [
        ("nested", nested),
        ("xpack flat", xpack_flat),
        ("xpack nested", xpack_nested),
        ("mixed", mixed),
    ] {
        let got = format!("{:?}", ok(&yaml, d.path()).settings.realms);
        assert_eq!(got, reference, "{name} differs");
    }
}

#[test]
fn yaml_merge_keys_share_settings_between_realms() {
    let d = dir();
    let shared: String = REALM
        .iter()
        .filter(|(k, _)| *k != "order")
        .map(|(k, v)| format!("    {k}: {}\n", yaml_scalar(v)))
        .collect();
    let yaml = format!(
        "{USERS}realms:\n  oidc1: &common\n    order: 1\n{shared}  oidc2:\n    <<: *common\n    order: 2\n    rp.client_id: other\n"
    );
    let l = ok(&yaml, d.path());
    let r = &l.settings.realms;
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].name, "oidc2");
    assert_eq!(r[1].rp.client_id, "other");
    assert_eq!(r[1].op.issuer, r[0].op.issuer);
}

#[test]
fn the_same_key_twice_is_an_error() {
    let d = dir();
    let yaml = config(
        &[],
        "xpack.security.authc.realms.oidc.oidc1.rp.client_id: other\n",
    );
    let e = err(&yaml, d.path());
    assert_has(&e, "realms.oidc1.rp.client_id", "is given twice");
    let yaml = config(&[], "").replace(
        "    order: 1\n",
        "    order: 1\n    rp:\n      client_id: again\n",
    );
    let e = err(&yaml, d.path());
    assert_has(&e, "realms.oidc1.rp.client_id", "is given twice");
}

#[test]
fn lists_accept_yaml_lists_and_comma_strings() {
    let d = dir();
    let a = ok(
        &config(
            &[
                ("rp.requested_scopes", Some("[profile, email]")),
                ("rp.signature_algorithm", Some("[RS256, ES256]")),
            ],
            "",
        ),
        d.path(),
    );
    let b = ok(
        &config(
            &[
                ("rp.requested_scopes", Some("profile, email")),
                ("rp.signature_algorithm", Some("RS256,ES256")),
            ],
            "",
        ),
        d.path(),
    );
    let (ra, rb) = (&a.settings.realms[0], &b.settings.realms[0]);
    assert_eq!(ra.rp.requested_scopes, vec!["openid", "profile", "email"]);
    assert_eq!(ra.rp.requested_scopes, rb.rp.requested_scopes);
    assert_eq!(
        ra.rp.signature_algorithms,
        vec![SignatureAlgorithm::RS256, SignatureAlgorithm::ES256]
    );
    assert_eq!(ra.rp.signature_algorithms, rb.rp.signature_algorithms);
    // `openid` stays first and is not repeated.
    let c = ok(
        &config(&[("rp.requested_scopes", Some("email,openid"))], ""),
        d.path(),
    );
    assert_eq!(
        c.settings.realms[0].rp.requested_scopes,
        vec!["openid", "email"]
    );
}

const ENV_SECRET: &str = "env-secret-value-91c2";
const FILE_SECRET: &str = "file-secret-value-7f3a";
const LITERAL_SECRET: &str = "literal-secret-value-55de";

fn all_text(r: &Result<Loaded, ConfigErrors>) -> String {
    match r {
        Ok(l) => format!("{:?} {:?}", l.warnings, l.settings),
        Err(e) => format!("{e} {e:?}"),
    }
}

#[test]
fn secrets_come_from_env_and_files_and_never_show() {
    let d = dir();
    // SAFETY-free in edition 2021; the name is unique to this test.
    std::env::set_var("OIDC_REALM_TEST_SECRET_A", ENV_SECRET);
    let r = load_str(
        &config(
            &[("rp.client_secret", Some("${env:OIDC_REALM_TEST_SECRET_A}"))],
            "",
        ),
        d.path(),
    );
    assert!(!all_text(&r).contains(ENV_SECRET));
    let l = r.unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(
        l.settings.realms[0].rp.client_secret.expose_secret(),
        ENV_SECRET
    );

    // From a file: one trailing newline trimmed.
    let r = load_str(&config(&[], ""), d.path());
    assert!(!all_text(&r).contains(FILE_SECRET));
    assert_eq!(
        r.unwrap().settings.realms[0]
            .rp
            .client_secret
            .expose_secret(),
        FILE_SECRET
    );

    // Literal: accepted, with a warning naming the key and not the value.
    let r = load_str(
        &config(&[("rp.client_secret", Some(LITERAL_SECRET))], ""),
        d.path(),
    );
    assert!(!all_text(&r).contains(LITERAL_SECRET));
    let l = r.unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].starts_with("realms.oidc1.rp.client_secret:"));
}

#[test]
fn missing_secret_sources_are_errors_naming_the_key() {
    let d = dir();
    let e = err(
        &config(
            &[(
                "rp.client_secret",
                Some("${env:OIDC_REALM_TEST_SECRET_SURELY_UNSET}"),
            )],
            "",
        ),
        d.path(),
    );
    assert_has(
        &e,
        "realms.oidc1.rp.client_secret",
        "environment variable OIDC_REALM_TEST_SECRET_SURELY_UNSET is not set",
    );
    let e = err(
        &config(&[("rp.client_secret", Some("${file:secrets/nope}"))], ""),
        d.path(),
    );
    assert_has(
        &e,
        "realms.oidc1.rp.client_secret",
        "cannot read secret file",
    );
    let e = err(
        &config(&[("rp.client_secret", Some("${vault:x}"))], ""),
        d.path(),
    );
    assert_has(
        &e,
        "realms.oidc1.rp.client_secret",
        "unrecognised secret reference",
    );
    // A bad secret elsewhere does not leak the good one, and other errors still appear.
    std::env::set_var("OIDC_REALM_TEST_SECRET_B", ENV_SECRET);
    let r = load_str(
        &config(
            &[
                ("rp.client_secret", Some("${env:OIDC_REALM_TEST_SECRET_B}")),
                ("rp.response_type", Some("nope")),
            ],
            "",
        ),
        d.path(),
    );
    assert!(r.is_err());
    assert!(!all_text(&r).contains(ENV_SECRET));
}

#[test]
fn unanchored_claim_pattern_warns() {
    let d = dir();
    let l = ok(
        &config(
            &[(
                "claim_patterns.principal",
                Some("([^@]+)@staff\\.example\\.com"),
            )],
            "",
        ),
        d.path(),
    );
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].starts_with("realms.oidc1.claim_patterns.principal:"));
    assert!(l.warnings[0].contains("not anchored"));
    let pattern = l.settings.realms[0]
        .claims
        .principal
        .pattern
        .as_ref()
        .unwrap();
    assert!(pattern.is_match("admin@staff.example.com.attacker.net"));

    let l = ok(
        &config(
            &[(
                "claim_patterns.principal",
                Some("^([^@]+)@staff\\.example\\.com$"),
            )],
            "",
        ),
        d.path(),
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);

    // A top-level `|` defeats the anchors.
    let l = ok(
        &config(
            &[
                ("claims.groups", Some("groups")),
                ("claim_patterns.groups", Some("^(admins)|(staff)$")),
            ],
            "",
        ),
        d.path(),
    );
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].starts_with("realms.oidc1.claim_patterns.groups:"));
    assert!(l.warnings[0].contains("top-level `|`"));
}

#[test]
fn plain_http_is_a_warning_for_loopback_and_an_error_otherwise() {
    let d = dir();
    for host in ["127.0.0.1:9380", "[::1]:9380", "localhost:9380"] {
        let l = ok(
            &config(
                &[
                    ("op.token_endpoint", Some(&format!("http://{host}/token"))),
                    ("op.jwkset_path", Some(&format!("http://{host}/jwks"))),
                ],
                "",
            ),
            d.path(),
        );
        assert_eq!(l.warnings.len(), 2, "{host}: {:?}", l.warnings);
        assert!(l.warnings[0].starts_with("realms.oidc1.op.token_endpoint:"));
        assert!(l.warnings[1].starts_with("realms.oidc1.op.jwkset_path:"));
        assert!(matches!(l.settings.realms[0].op.jwkset, JwksSource::Url(_)));
    }
    let e = err(
        &config(
            &[("op.jwkset_path", Some("http://op.example.com/jwks"))],
            "",
        ),
        d.path(),
    );
    assert_has(
        &e,
        "realms.oidc1.op.jwkset_path",
        "The [http] protocol is not supported as it is insecure",
    );
}

#[test]
fn realms_are_sorted_by_order_and_orders_are_unique() {
    let d = dir();
    let mut yaml = config(&[("order", Some("5"))], "");
    yaml.push_str("  oidc0:\n");
    for (k, v) in REALM {
        let v = if *k == "order" { "2" } else { v };
        yaml.push_str(&format!("    {k}: {}\n", yaml_scalar(v)));
    }
    let l = ok(&yaml, d.path());
    let names: Vec<&str> = l.settings.realms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["oidc0", "oidc1"]);

    let e = err(&yaml.replace("order: 5", "order: 2"), d.path());
    assert_has(&e, "realms.oidc1.order", "also used by realm [oidc0]");
    assert_has(&e, "realms.oidc0.order", "also used by realm [oidc1]");
}

#[test]
fn tls_and_client_certificates_load_from_pem() {
    let d = dir();
    let l = ok(
        &config(
            &[
                ("ssl.certificate", Some("test-cert.pem")),
                ("ssl.key", Some("test-key.pem")),
                ("ssl.certificate_authorities", Some("[test-cert.pem]")),
                ("ssl.verification_mode", Some("certificate")),
            ],
            "http:\n  tls:\n    certificate: test-cert.pem\n    key: test-key.pem\n  max_body: 1mb\n",
        ),
        d.path(),
    );
    let s = &l.settings;
    assert_eq!(s.http.max_body, 1 << 20);
    assert_eq!(
        s.http.tls.as_ref().unwrap().key,
        d.path().join("test-key.pem")
    );
    let ssl = &s.realms[0].ssl;
    assert_eq!(
        ssl.certificate_authorities,
        vec![d.path().join("test-cert.pem")]
    );
    assert!(ssl.client_certificate.is_some());

    // `none` would switch TLS verification off: refused, with what to do instead.
    let errs = load_str(
        &config(&[("ssl.verification_mode", Some("none"))], ""),
        d.path(),
    )
    .unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert!(errs.0[0].path.ends_with("ssl.verification_mode"));
    assert!(errs.0[0].message.contains("ssl.certificate_authorities"));
}

#[test]
fn load_reads_files_relative_to_their_directory() {
    let d = dir();
    let path: PathBuf = d.path().join("oidc-realm.yml");
    std::fs::write(&path, config(&[], "data:\n  path: db/x.redb\n")).unwrap();
    let l = load(&path).unwrap();
    assert_eq!(l.settings.data.path, d.path().join("db/x.redb"));
    assert_eq!(l.settings.base_dir, d.path());
    let e = load(&d.path().join("absent.yml")).unwrap_err();
    assert!(e.0[0].message.contains("cannot read config file"));
}

#[test]
fn http_settings_without_an_equivalent_warn_instead_of_being_ignored() {
    let d = dir();
    let l = ok(
        &config(
            &[
                ("http.max_connections", Some("50")),
                ("http.connection_read_timeout", Some("2s")),
            ],
            "",
        ),
        d.path(),
    );
    for key in ["http.max_connections", "http.connection_read_timeout"] {
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains(key) && w.contains("has no effect")),
            "{key}: {:?}",
            l.warnings
        );
    }
    // Not set: no warning.
    let l = ok(&config(&[], ""), d.path());
    assert!(!l.warnings.iter().any(|w| w.contains("has no effect")));
}

#[test]
fn allowed_clock_skew_is_bounded() {
    let d = dir();
    let errs = err(&config(&[("allowed_clock_skew", Some("6m"))], ""), d.path());
    assert!(
        errs.0
            .iter()
            .any(|e| e.path.ends_with("allowed_clock_skew") && e.message.contains("at most 5m")),
        "{errs}"
    );
    ok(&config(&[("allowed_clock_skew", Some("5m"))], ""), d.path());
}

#[test]
fn cache_sizes_have_bounded_defaults_and_accept_byte_sizes() {
    let d = dir();
    let l = ok(&config(&[], ""), d.path());
    assert_eq!(l.settings.data.cache_size, 8 << 20);
    assert_eq!(l.settings.token.cache_size, 48 << 20);
    let l = ok(
        &config(
            &[],
            "data:\n  cache_size: 64mb\ntoken:\n  cache_size: 1gb\n",
        ),
        d.path(),
    );
    assert_eq!(l.settings.data.cache_size, 64 << 20);
    assert_eq!(l.settings.token.cache_size, 1 << 30);
}

#[test]
fn elasticsearch_token_service_keys_are_accepted() {
    let d = dir();
    let yaml = format!(
        "xpack.security.authc.token.enabled: true\nxpack.security.authc.token.timeout: 10m\n{}",
        config(&[], "")
    );
    let l = ok(&yaml, d.path());
    assert_eq!(
        l.settings.token.timeout,
        std::time::Duration::from_secs(600)
    );
    let yaml = format!(
        "xpack.security.authc.token.enabled: false\n{}",
        config(&[], "")
    );
    let errs = err(&yaml, d.path());
    assert!(errs.0.iter().any(|e| e.path == "token.enabled"), "{errs}");
}
