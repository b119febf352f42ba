//! The fuzz corpora as ordinary tests: every file of every `fuzz/corpus/<target>/` directory
//! goes through the function its `cargo fuzz` target calls (`oidc_realm::fuzzing`), so a
//! crashing input added to a corpus fails `cargo test` on any toolchain, without cargo-fuzz.
//! A seed named `ok-*` must be accepted and one named `bad-*` refused (see
//! `fuzz/make_seeds.py`); other files (added by fuzzing) only must not panic. A few seeds
//! have an exact expected outcome.

use oidc_realm::fuzzing::{self, AuthorizationOutcome};
use std::path::{Path, PathBuf};

const TARGETS: [&str; 6] = [
    "id_token",
    "redirect_uri",
    "config",
    "role_mapping",
    "jwks",
    "authorization",
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Every file of a target's corpus, sorted by name, with its bytes.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

/// Runs `f` over a target's corpus and checks the `ok-`/`bad-` expectations with
/// `accepted`. Returns how many files ran.
fn run<T: std::fmt::Debug>(
    target: &str,
    f: impl Fn(&[u8]) -> T,
    accepted: impl Fn(&T) -> bool,
) -> usize {
    let files = corpus(target);
    let mut failures = Vec::new();
    for (name, data) in &files {
        let outcome = f(data);
        let want = if name.starts_with("ok-") {
            Some(true)
        } else if name.starts_with("bad-") {
            Some(false)
        } else {
            None
        };
        if want.is_some_and(|w| w != accepted(&outcome)) {
            failures.push(format!("{target}/{name}: {outcome:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "unexpected outcomes:\n{}",
        failures.join("\n")
    );
    files.len()
}

fn outcome_of(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir(target).join(name)).unwrap()
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    for t in TARGETS {
        assert!(corpus_dir(t).is_dir(), "fuzz/corpus/{t} missing");
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{t}.rs\"")),
            "fuzz/Cargo.toml has no target {t}"
        );
    }
}

#[test]
fn id_token_corpus() {
    let n = run("id_token", fuzzing::id_token, Result::is_ok);
    assert!(n >= 40, "{n} files");
    assert_eq!(
        fuzzing::id_token(&outcome_of("id_token", "ok-sign-hs256")),
        Ok("alice".to_string())
    );
    assert_eq!(
        fuzzing::id_token(&outcome_of("id_token", "ok-rs256-rsa1")),
        Ok("rs-user".to_string())
    );
    for (name, code) in [
        ("bad-sign-expired", "expired"),
        ("bad-sign-wrong-nonce", "nonce_mismatch"),
        ("bad-sign-azp-missing", "azp_missing"),
        ("bad-sign-typ-at-jwt", "wrong_type"),
        ("bad-sign-duplicate-claim", "malformed"),
        ("bad-rs256-rsa1-tampered", "bad_signature"),
    ] {
        assert_eq!(
            fuzzing::id_token(&outcome_of("id_token", name)),
            Err(code),
            "{name}"
        );
    }
}

#[test]
fn redirect_uri_corpus() {
    let n = run("redirect_uri", fuzzing::redirect_uri, Result::is_ok);
    assert!(n >= 30, "{n} files");
    assert_eq!(
        fuzzing::redirect_uri(&outcome_of("redirect_uri", "ok-path-code")),
        Ok((2, 0))
    );
    for (name, code) in [
        ("bad-state-twice", "redirect_param_duplicate"),
        ("bad-path-dot", "redirect_uri_invalid"),
        ("bad-path-other", "redirect_uri_mismatch"),
    ] {
        assert_eq!(
            fuzzing::redirect_uri(&outcome_of("redirect_uri", name)),
            Err(code),
            "{name}"
        );
    }
}

#[test]
fn config_corpus() {
    run("config", fuzzing::config, Result::is_ok);
    assert_eq!(
        fuzzing::config(&outcome_of("config", "ok-anchors-mappings-tokens")),
        Ok(2)
    );
    // The inputs the target does not load (they could name a device).
    assert!(fuzzing::config_input_skipped(
        "realms: {oidc1: {rp.client_secret: '${file:/dev/zero}'}}"
    ));
    assert!(fuzzing::config_input_skipped("a: \"\\x2fdev/zero\""));
    assert!(!fuzzing::config_input_skipped("a: \"\\x2f\""));
}

#[test]
fn role_mapping_corpus() {
    run("role_mapping", fuzzing::role_mapping, Result::is_ok);
    assert_eq!(
        fuzzing::role_mapping(&outcome_of("role_mapping", "ok-finance")),
        Ok(vec!["finance_data".to_string()])
    );
    assert_eq!(
        fuzzing::role_mapping(&outcome_of("role_mapping", "ok-disabled")),
        Ok(vec![])
    );
}

#[test]
fn jwks_corpus() {
    run("jwks", fuzzing::jwks, Result::is_ok);
    assert_eq!(fuzzing::jwks(&outcome_of("jwks", "ok-example")), Ok(4));
    assert_eq!(
        fuzzing::jwks(&outcome_of("jwks", "bad-duplicate-member")),
        Err("jwks_not_json")
    );
}

#[test]
fn authorization_corpus() {
    use AuthorizationOutcome as O;
    run("authorization", fuzzing::authorization, |o| {
        matches!(o, O::Basic { .. } | O::ServiceToken { .. } | O::AccessToken)
    });
    assert_eq!(
        fuzzing::authorization(&outcome_of("authorization", "ok-basic")),
        O::Basic {
            username: "alice".into()
        }
    );
    assert_eq!(
        fuzzing::authorization(&outcome_of("authorization", "ok-service-token-known")),
        O::ServiceToken {
            name: fuzzing::SERVICE_TOKEN_NAME.into(),
            known: true
        }
    );
    assert_eq!(
        fuzzing::authorization(format!("Bearer {}", fuzzing::service_token_bearer()).as_bytes()),
        O::ServiceToken {
            name: fuzzing::SERVICE_TOKEN_NAME.into(),
            known: true
        }
    );
    assert_eq!(
        fuzzing::authorization(&outcome_of("authorization", "ok-service-token-unknown")),
        O::ServiceToken {
            name: "elastic/kibana/other".into(),
            known: false
        }
    );
    assert_eq!(
        fuzzing::authorization(&outcome_of("authorization", "bad-refresh-as-bearer")),
        O::RefreshTokenShape
    );
    assert_eq!(
        fuzzing::authorization(&outcome_of("authorization", "bad-control")),
        O::NotHeaderText
    );
}
