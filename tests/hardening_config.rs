//! Configuration hardening (issue 10): HMAC keys shorter than their hash (finding 4), a
//! bcrypt-shaped password hash that used to panic the loader (finding 7), and plain HTTP on a
//! non-loopback bind (finding 9). Black-box, through `oidc_realm::config::load_str`.

use oidc_realm::config::{load_str, ConfigErrors, Loaded};
use std::path::Path;

/// A fresh config directory with an empty JWKS file.
fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("jwks.json"), r#"{"keys":[]}"#).unwrap();
    d
}

const USERS: &str = r#"users:
  fac:
    password_hash: "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"
    privileges: [manage_oidc, manage_token]
"#;

/// One realm `oidc1` with `rp.client_secret` = `secret` (written as given, so a literal or a
/// `${env:}`/`${file:}` reference) and `extra` realm keys; `top` is put first.
fn config(secret: &str, extra: &[(&str, &str)], top: &str) -> String {
    let mut s = String::from(top);
    s.push_str(USERS);
    s.push_str("realms:\n  oidc1:\n");
    let base: [(&str, &str); 9] = [
        ("order", "1"),
        ("rp.client_id", "my-client"),
        ("rp.redirect_uri", "https://app.example.com/cb"),
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
    for (k, v) in base.iter().chain(extra.iter()) {
        s.push_str(&format!("    {k}: {v}\n"));
    }
    s.push_str(&format!(
        "    rp.client_secret: '{}'\n",
        secret.replace('\'', "''")
    ));
    s
}

fn all_text(r: &Result<Loaded, ConfigErrors>) -> String {
    match r {
        Ok(l) => format!("{:?} {:?}", l.warnings, l.settings),
        Err(e) => format!("{e} {e:?}"),
    }
}

/// A secret of exactly `n` bytes, distinctive enough to be spotted if echoed.
fn secret(n: usize) -> String {
    "Zq7#secretvalue-".chars().cycle().take(n).collect()
}

/// Loads, or panics with the errors.
fn ok(yaml: &str, d: &Path) -> Loaded {
    load_str(yaml, d).unwrap_or_else(|e| panic!("expected to load, got:\n{e}\n---\n{yaml}"))
}

/// The one error at `realms.oidc1.rp.client_secret`, checked not to echo `secret`.
fn short_key_error(yaml: &str, d: &Path, secret: &str) -> String {
    let r = load_str(yaml, d);
    let text = all_text(&r);
    assert!(!text.contains(secret), "the secret is echoed: {text}");
    let e = r
        .err()
        .unwrap_or_else(|| panic!("expected a refusal for:\n{yaml}"));
    let on_key: Vec<&str> =
        e.0.iter()
            .filter(|x| x.path == "realms.oidc1.rp.client_secret")
            .map(|x| x.message.as_str())
            .collect();
    assert_eq!(on_key.len(), 1, "{e}");
    on_key[0].to_string()
}

// ------------------------------------------------------------------------------------------
// Finding 4: HMAC keys shorter than the hash output (RFC 7518 §3.2)

#[test]
fn hmac_id_token_algorithms_need_a_client_secret_as_long_as_the_hash() {
    let d = dir();
    for (alg, need) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] {
        let extra = [("rp.signature_algorithm", alg)];
        let s = secret(need - 1);
        let msg = short_key_error(&config(&s, &extra, ""), d.path(), &s);
        assert!(msg.contains(alg), "{msg}");
        assert!(msg.contains(&format!("at least {need} bytes")), "{msg}");
        assert!(msg.contains("rp.signature_algorithm"), "{msg}");
        assert!(msg.contains("RFC 7518"), "{msg}");
        assert!(!msg.contains(&(need - 1).to_string()), "no length: {msg}");
        // Exactly the hash size is enough.
        let l = ok(&config(&secret(need), &extra, ""), d.path());
        assert!(l.settings.realms[0].rp.signature_algorithms[0].is_hmac());
    }
    // A 1-byte secret, the issue's case.
    short_key_error(
        &config("x", &[("rp.signature_algorithm", "HS256")], ""),
        d.path(),
        "'x'",
    );
    // In a list, the longest HMAC hash decides.
    let s = secret(40);
    let msg = short_key_error(
        &config(
            &s,
            &[("rp.signature_algorithm", "[RS256, HS256, HS512]")],
            "",
        ),
        d.path(),
        &s,
    );
    assert!(msg.contains("HS512") && msg.contains("64 bytes"), "{msg}");
    // Bytes, not characters: 16 × `é` is 32 bytes.
    ok(
        &config(&"é".repeat(16), &[("rp.signature_algorithm", "HS256")], ""),
        d.path(),
    );
    // No HMAC algorithm: the secret only authenticates the client, any length will do.
    ok(&config("x", &[], ""), d.path());
    ok(
        &config("x", &[("rp.signature_algorithm", "[RS256, ES256]")], ""),
        d.path(),
    );
}

#[test]
fn client_secret_jwt_needs_a_client_secret_as_long_as_its_hash() {
    let d = dir();
    let jwt = ("rp.client_auth_method", "client_secret_jwt");
    // The default assertion algorithm is HS384.
    let s = secret(47);
    let msg = short_key_error(&config(&s, &[jwt], ""), d.path(), &s);
    assert!(
        msg.contains("HS384") && msg.contains("at least 48 bytes"),
        "{msg}"
    );
    assert!(msg.contains("client_secret_jwt"), "{msg}");
    ok(&config(&secret(48), &[jwt], ""), d.path());
    for (alg, need) in [("HS256", 32), ("HS384", 48), ("HS512", 64)] {
        let extra = [jwt, ("rp.client_auth_jwt_signature_algorithm", alg)];
        let s = secret(need - 1);
        let msg = short_key_error(&config(&s, &extra, ""), d.path(), &s);
        assert!(msg.contains(alg), "{msg}");
        assert!(msg.contains(&format!("at least {need} bytes")), "{msg}");
        assert!(
            msg.contains("rp.client_auth_jwt_signature_algorithm"),
            "{msg}"
        );
        ok(&config(&secret(need), &extra, ""), d.path());
    }
    // The assertion algorithm is not used by the other client authentication methods.
    for method in ["client_secret_basic", "client_secret_post"] {
        ok(
            &config(
                "x",
                &[
                    ("rp.client_auth_method", method),
                    ("rp.client_auth_jwt_signature_algorithm", "HS512"),
                ],
                "",
            ),
            d.path(),
        );
    }
    // Both uses too short: one error, the stricter length, both uses named.
    let s = secret(20);
    let msg = short_key_error(
        &config(
            &s,
            &[
                jwt,
                ("rp.client_auth_jwt_signature_algorithm", "HS256"),
                ("rp.signature_algorithm", "HS512"),
            ],
            "",
        ),
        d.path(),
        &s,
    );
    assert!(msg.contains("at least 64 bytes"), "{msg}");
    assert!(
        msg.contains("HS512 ID tokens (rp.signature_algorithm)")
            && msg.contains("HS256 client_secret_jwt"),
        "{msg}"
    );
    // Only the use that is too short is named.
    let s = secret(40);
    let msg = short_key_error(
        &config(
            &s,
            &[
                jwt,
                ("rp.client_auth_jwt_signature_algorithm", "HS256"),
                ("rp.signature_algorithm", "HS512"),
            ],
            "",
        ),
        d.path(),
        &s,
    );
    assert!(msg.contains("HS512") && !msg.contains("HS256"), "{msg}");
}

#[test]
fn the_key_length_check_applies_to_secrets_from_files_and_the_environment() {
    let d = dir();
    let hs256 = [("rp.signature_algorithm", "HS256")];
    // A file: the value is what is left after the trailing newline is removed.
    let short = secret(31);
    std::fs::write(d.path().join("short"), format!("{short}\n")).unwrap();
    let msg = short_key_error(&config("${file:short}", &hs256, ""), d.path(), &short);
    assert!(msg.contains("at least 32 bytes"), "{msg}");
    let long = secret(32);
    std::fs::write(d.path().join("long"), format!("{long}\n")).unwrap();
    let l = ok(&config("${file:long}", &hs256, ""), d.path());
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);

    // The environment (names unique to this test).
    let env_short = secret(20);
    std::env::set_var("OIDC_REALM_HARDENING_SHORT_SECRET", &env_short);
    std::env::set_var("OIDC_REALM_HARDENING_LONG_SECRET", secret(64));
    let jwt = [
        ("rp.client_auth_method", "client_secret_jwt"),
        ("rp.client_auth_jwt_signature_algorithm", "HS512"),
    ];
    let msg = short_key_error(
        &config("${env:OIDC_REALM_HARDENING_SHORT_SECRET}", &jwt, ""),
        d.path(),
        &env_short,
    );
    assert!(msg.contains("at least 64 bytes"), "{msg}");
    ok(
        &config("${env:OIDC_REALM_HARDENING_LONG_SECRET}", &jwt, ""),
        d.path(),
    );
}

// ------------------------------------------------------------------------------------------
// Finding 7: a value that used to panic the loader

#[test]
fn a_bcrypt_shaped_hash_with_a_multibyte_character_is_an_error_not_a_panic() {
    let d = dir();
    // 60 bytes starting with `$2`, a multi-byte character across byte 4 (the old `&h[..4]`),
    // across byte 6 (the old `h[4..6]`), or further on.
    let hashes = [
        format!("$2b{}{}", 'é', "a".repeat(55)),
        format!("$2{}{}", '€', "a".repeat(55)),
        format!("$2b$1{}{}", 'é', "a".repeat(53)),
        format!("$2b$12{}{}", '€', "a".repeat(51)),
        format!(
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jW{}",
            '€'
        ),
    ];
    for h in hashes {
        assert_eq!(h.len(), 60, "{h}");
        let yaml = config("x", &[], "").replace(
            "realms:\n",
            &format!("  bob:\n    password_hash: '{h}'\n    privileges: [all]\nrealms:\n"),
        );
        let e = load_str(&yaml, d.path()).expect_err(&h);
        assert!(
            e.0.iter().any(|x| x.path == "users.bob.password_hash"
                && x.message.contains("not a valid bcrypt hash")),
            "{h}: {e}"
        );
        assert!(!e.to_string().contains(&h), "the hash is echoed: {e}");
    }
}

// ------------------------------------------------------------------------------------------
// Finding 9: plain HTTP on a non-loopback bind

fn bind_warnings(top: &str) -> Vec<String> {
    let d = dir();
    // A secret from the environment, so the only warnings are about the listener.
    std::env::set_var("OIDC_REALM_HARDENING_BIND_SECRET", secret(20));
    let l = ok(
        &config("${env:OIDC_REALM_HARDENING_BIND_SECRET}", &[], top),
        d.path(),
    );
    l.warnings
        .into_iter()
        .filter(|w| w.starts_with("http."))
        .collect()
}

#[test]
fn plain_http_on_a_non_loopback_bind_warns() {
    for bind in [
        "0.0.0.0:9280",
        "'[::]:9280'",
        "10.1.2.3:9280",
        "192.168.0.10:443",
        "'[2001:db8::1]:9280'",
        // An IPv4-mapped IPv6 address counts as its IPv4 address.
        "'[::ffff:10.0.0.1]:9280'",
    ] {
        let w = bind_warnings(&format!("http:\n  bind: {bind}\n"));
        assert_eq!(w.len(), 1, "{bind}: {w:?}");
        let w = &w[0];
        assert!(w.starts_with("http.bind: "), "{w}");
        assert!(w.contains("in clear"), "{w}");
        assert!(w.contains("Basic") && w.contains("token"), "{w}");
        assert!(w.contains("http.tls"), "{w}");
        assert!(w.contains("(line 2, column 3)"), "{w}");
    }
}

#[test]
fn loopback_binds_and_tls_give_no_plain_http_warning() {
    for top in [
        "",
        "http:\n  bind: 127.0.0.1:9280\n",
        "http:\n  bind: 127.1.2.3:9280\n",
        "http:\n  bind: '[::1]:9280'\n",
        "http:\n  bind: '[::ffff:127.0.0.1]:9280'\n",
    ] {
        assert_eq!(bind_warnings(top), Vec::<String>::new(), "{top}");
    }
    // With TLS, a non-loopback bind is fine.
    let d = dir();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    for f in ["test-cert.pem", "test-key.pem"] {
        std::fs::copy(fixtures.join(f), d.path().join(f)).unwrap();
    }
    std::env::set_var("OIDC_REALM_HARDENING_TLS_SECRET", secret(20));
    let l = ok(
        &config(
            "${env:OIDC_REALM_HARDENING_TLS_SECRET}",
            &[],
            "http:\n  bind: 0.0.0.0:9280\n  tls:\n    certificate: test-cert.pem\n    key: test-key.pem\n",
        ),
        d.path(),
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}
