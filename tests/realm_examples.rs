//! The provider examples of `config/realms/` load as `check-config` loads them: the whole
//! configuration validated (`config::load`) and the realms built (`Realms::build`: HTTP
//! clients, JWKS sources). No network: a JWKS URL is only fetched by a running server.
//!
//! The examples take `rp.client_secret` from `${env:...}`, as a deployment would; the test
//! sets those variables once, before any configuration is read, and gives them to the
//! `check-config` child processes explicitly.

use oidc_realm::config::{self, JwksSource, Privilege, ResponseType, Settings};
use oidc_realm::realm::Realms;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

const DIR: &str = "config/realms";

/// Every example, with the environment variable holding its client secret. A file added to
/// `config/realms/` must be added here (and so get its own test below).
const EXAMPLES: &[(&str, &str)] = &[
    ("entra-id.yml", "ENTRA_CLIENT_SECRET"),
    ("google.yml", "GOOGLE_CLIENT_SECRET"),
    ("keycloak.yml", "KEYCLOAK_CLIENT_SECRET"),
    ("oidc-provider.yml", "OIDC_PROVIDER_CLIENT_SECRET"),
    ("okta.yml", "OKTA_CLIENT_SECRET"),
];

/// A test value for `env` (distinct per example, so a mix-up shows).
fn secret_for(env: &str) -> String {
    format!("test-secret-of-{}-0123456789abcdef", env.to_lowercase())
}

static ENV: Once = Once::new();

/// Sets the secrets' variables once, before any test reads a configuration (every test calls
/// this first, so no thread reads the environment while it is written).
fn set_secret_env() {
    ENV.call_once(|| {
        for (_, env) in EXAMPLES {
            std::env::set_var(env, secret_for(env));
        }
    });
}

fn path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(file)
}

/// Load `file` as `check-config` does; panics with every error. Returns the settings and
/// the warnings.
fn load(file: &str) -> (Settings, Vec<String>) {
    set_secret_env();
    let loaded = match config::load(&path(file)) {
        Ok(l) => l,
        Err(errors) => panic!(
            "{file}: {} configuration error(s):\n{}",
            errors.0.len(),
            errors
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    if let Err(errors) = Realms::build(&loaded.settings) {
        panic!("{file}: realms do not build: {errors:?}");
    }
    (loaded.settings, loaded.warnings)
}

/// The one realm of an example, with what every example shares: a code-flow realm whose
/// secret comes from its variable, JWKS from an https URL, the facilitator user with the
/// privileges a facilitator needs, Kibana's callback.
fn realm_of(file: &str, name: &str) -> config::RealmConfig {
    let (settings, warnings) = load(file);
    assert!(warnings.is_empty(), "{file}: warnings: {warnings:?}");
    assert_eq!(settings.realms.len(), 1, "{file}: one realm");
    let facilitator = settings
        .users
        .get("facilitator")
        .unwrap_or_else(|| panic!("{file}: no facilitator user"));
    assert_eq!(
        facilitator.privileges.iter().copied().collect::<Vec<_>>(),
        vec![
            Privilege::ManageOidc,
            Privilege::ManageToken,
            Privilege::ManageUserProfile
        ],
        "{file}: facilitator privileges"
    );
    let realm = settings.realms[0].clone();
    assert_eq!(realm.name, name, "{file}");
    assert!(realm.enabled, "{file}");
    assert_eq!(realm.rp.response_type, ResponseType::Code, "{file}");
    assert_eq!(
        realm.rp.redirect_uri_exact, "https://kibana.example.com/api/security/oidc/callback",
        "{file}"
    );
    let env = EXAMPLES.iter().find(|(f, _)| *f == file).unwrap().1;
    assert_eq!(
        realm.rp.client_secret.expose_secret(),
        &secret_for(env),
        "{file}: rp.client_secret is ${{env:{env}}}"
    );
    assert!(realm.rp.pkce, "{file}: PKCE on (the default)");
    realm
}

fn url(u: &Option<url::Url>) -> Option<&str> {
    u.as_ref().map(url::Url::as_str)
}

fn jwks_url(realm: &config::RealmConfig) -> String {
    match &realm.op.jwkset {
        JwksSource::Url(u) => u.to_string(),
        JwksSource::File(p) => panic!("{}: JWKS is a file: {}", realm.name, p.display()),
    }
}

fn claim(rule: &Option<config::ClaimRule>) -> Option<&str> {
    rule.as_ref().map(|r| r.claim.as_str())
}

#[test]
fn the_directory_holds_exactly_the_listed_examples() {
    let mut found: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let listed: Vec<&str> = EXAMPLES.iter().map(|(f, _)| *f).collect();
    assert_eq!(found, listed, "config/realms/ and EXAMPLES differ");
}

#[test]
fn every_example_loads_without_errors_or_warnings() {
    for (file, _) in EXAMPLES {
        let (settings, warnings) = load(file);
        assert!(warnings.is_empty(), "{file}: warnings: {warnings:?}");
        assert_eq!(settings.realms.len(), 1, "{file}");
    }
}

/// The binary itself, as the examples' headers tell operators to run it.
#[test]
fn check_config_accepts_every_example() {
    for (file, env) in EXAMPLES {
        let out = Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
            .args(["check-config", "--config"])
            .arg(path(file))
            .env(env, secret_for(env))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{file}: {stdout}{stderr}");
        assert!(
            stdout.starts_with("ok: 1 realm (") && stdout.contains("1 user (facilitator)"),
            "{file}: {stdout}"
        );
        assert!(!stdout.contains("warning"), "{file}: {stdout}");
        assert!(!stdout.contains(&secret_for(env)), "{file}: secret printed");
        // Without its variable the example is refused, naming it.
        let out = Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
            .args(["check-config", "--config"])
            .arg(path(file))
            .env_remove(env)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{file}: {stdout}");
        assert!(
            stdout.contains("rp.client_secret") && stdout.contains(env),
            "{file}: {stdout}"
        );
    }
}

#[test]
fn keycloak() {
    let r = realm_of("keycloak.yml", "keycloak");
    let base = "https://keycloak.example.com/realms/example";
    assert_eq!(r.op.issuer, base);
    assert_eq!(r.rp.client_id, "oidc-realm");
    let oc = format!("{base}/protocol/openid-connect");
    assert_eq!(r.op.authorization_endpoint.as_str(), format!("{oc}/auth"));
    assert_eq!(
        url(&r.op.token_endpoint),
        Some(format!("{oc}/token").as_str())
    );
    assert_eq!(
        url(&r.op.userinfo_endpoint),
        Some(format!("{oc}/userinfo").as_str())
    );
    assert_eq!(
        url(&r.op.endsession_endpoint),
        Some(format!("{oc}/logout").as_str())
    );
    assert_eq!(jwks_url(&r), format!("{oc}/certs"));
    assert_eq!(r.claims.principal.claim, "preferred_username");
    assert_eq!(claim(&r.claims.groups), Some("groups"));
    assert_eq!(claim(&r.claims.name), Some("name"));
    assert_eq!(claim(&r.claims.mail), Some("email"));
    let (settings, _) = load("keycloak.yml");
    assert_eq!(settings.role_mappings.len(), 1);
}

#[test]
fn entra_id() {
    let r = realm_of("entra-id.yml", "entra");
    let tenant = "00000000-0000-0000-0000-000000000000";
    let login = format!("https://login.microsoftonline.com/{tenant}");
    assert_eq!(r.op.issuer, format!("{login}/v2.0"));
    assert_eq!(r.rp.client_id, "11111111-1111-1111-1111-111111111111");
    assert_eq!(
        r.op.authorization_endpoint.as_str(),
        format!("{login}/oauth2/v2.0/authorize")
    );
    assert_eq!(
        url(&r.op.token_endpoint),
        Some(format!("{login}/oauth2/v2.0/token").as_str())
    );
    assert_eq!(url(&r.op.userinfo_endpoint), None);
    assert_eq!(
        url(&r.op.endsession_endpoint),
        Some(format!("{login}/oauth2/v2.0/logout").as_str())
    );
    assert_eq!(jwks_url(&r), format!("{login}/discovery/v2.0/keys"));
    assert_eq!(
        r.rp.client_auth_method,
        config::ClientAuthMethod::ClientSecretPost
    );
    assert_eq!(r.claims.principal.claim, "oid");
    assert_eq!(claim(&r.claims.groups), Some("groups"));
    assert_eq!(claim(&r.claims.name), Some("name"));
    assert_eq!(claim(&r.claims.mail), Some("email"));
}

#[test]
fn okta() {
    let r = realm_of("okta.yml", "okta");
    let base = "https://example.okta.com/oauth2/default";
    assert_eq!(r.op.issuer, base);
    assert_eq!(r.rp.client_id, "0oa1example2client3id4");
    assert_eq!(
        r.op.authorization_endpoint.as_str(),
        format!("{base}/v1/authorize")
    );
    assert_eq!(
        url(&r.op.token_endpoint),
        Some(format!("{base}/v1/token").as_str())
    );
    assert_eq!(
        url(&r.op.userinfo_endpoint),
        Some(format!("{base}/v1/userinfo").as_str())
    );
    assert_eq!(
        url(&r.op.endsession_endpoint),
        Some(format!("{base}/v1/logout").as_str())
    );
    assert_eq!(jwks_url(&r), format!("{base}/v1/keys"));
    assert_eq!(r.claims.principal.claim, "preferred_username");
    assert_eq!(claim(&r.claims.groups), Some("groups"));
}

#[test]
fn google() {
    let r = realm_of("google.yml", "google");
    assert_eq!(r.op.issuer, "https://accounts.google.com");
    assert_eq!(
        r.rp.client_id,
        "123456789012-example.apps.googleusercontent.com"
    );
    assert_eq!(
        r.op.authorization_endpoint.as_str(),
        "https://accounts.google.com/o/oauth2/v2/auth"
    );
    assert_eq!(
        url(&r.op.token_endpoint),
        Some("https://oauth2.googleapis.com/token")
    );
    assert_eq!(
        url(&r.op.userinfo_endpoint),
        Some("https://openidconnect.googleapis.com/v1/userinfo")
    );
    assert_eq!(url(&r.op.endsession_endpoint), None, "Google has none");
    assert_eq!(jwks_url(&r), "https://www.googleapis.com/oauth2/v3/certs");
    assert_eq!(r.claims.principal.claim, "email");
    let pattern = r
        .claims
        .principal
        .pattern
        .as_ref()
        .expect("a domain pattern");
    let user = |email: &str| {
        pattern
            .captures(email)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_string())
    };
    assert_eq!(user("jdoe@example.com").as_deref(), Some("jdoe"));
    assert_eq!(user("jdoe@example.com.attacker.net"), None);
    assert_eq!(user("jdoe@gmail.com"), None);
    assert_eq!(claim(&r.claims.groups), None, "Google has no groups claim");
    let (settings, _) = load("google.yml");
    assert_eq!(settings.role_mappings.len(), 1);
}

#[test]
fn oidc_provider() {
    let r = realm_of("oidc-provider.yml", "oidc-provider");
    let base = "https://op.example.com";
    assert_eq!(r.op.issuer, base);
    assert_eq!(r.rp.client_id, "oidc-realm");
    assert_eq!(r.op.authorization_endpoint.as_str(), format!("{base}/auth"));
    assert_eq!(
        url(&r.op.token_endpoint),
        Some(format!("{base}/token").as_str())
    );
    assert_eq!(
        url(&r.op.userinfo_endpoint),
        Some(format!("{base}/me").as_str())
    );
    assert_eq!(
        url(&r.op.endsession_endpoint),
        Some(format!("{base}/session/end").as_str())
    );
    assert_eq!(jwks_url(&r), format!("{base}/jwks"));
    assert_eq!(
        r.rp.requested_scopes,
        vec!["openid", "profile", "email", "groups"]
    );
    assert_eq!(r.claims.principal.claim, "sub");
    assert_eq!(claim(&r.claims.groups), Some("groups"));
}
