//! The audit trail (`audit.*`), black-box over HTTP on the real `configure()`: each event
//! appears with its documented fields after the request that causes it, no line ever holds
//! a token, code, nonce, state, password or secret, and a flood of failures stays within
//! the rotation bounds. (The queue that drops rather than blocks is unit-tested in
//! `src/audit.rs`, where its writer can be held still.)

mod common;

use actix_web::test::TestRequest;
use common::fake_op::*;
use common::login::*;
use common::*;
use oidc_realm::config::{AuditSettings, AuditSink, Settings};
use oidc_realm::store::MemoryStore;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Settings whose audit trail is `dir/audit.log` (rotated at `max_size`, `max_files` kept).
fn audited(dir: &Path, max_size: u64, max_files: u32) -> (Settings, PathBuf) {
    let path = dir.join("audit.log");
    let mut s = settings();
    s.audit = AuditSettings {
        sink: Some(AuditSink::File(path.clone())),
        max_size,
        max_files,
    };
    (s, path)
}

/// Every audit line written so far (oldest file first), parsed; and the raw text.
fn lines(t: &TestApp, path: &Path) -> (Vec<Value>, String) {
    t.state.audit.flush();
    let mut files: Vec<PathBuf> = (1..=100)
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .filter(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut text = String::new();
    for f in files {
        text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    let parsed = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (parsed, text)
}

/// The lines of `event`.
fn of<'a>(all: &'a [Value], event: &str) -> Vec<&'a Value> {
    all.iter().filter(|v| v["event"] == event).collect()
}

/// Every line has the common fields; a request's lines have its correlation id.
fn assert_common(all: &[Value]) {
    for v in all {
        assert_eq!(v["type"], "audit", "{v}");
        let ts = v["@timestamp"].as_str().unwrap();
        assert!(ts.starts_with("2026-") && ts.ends_with('Z'), "{v}");
        assert!(v["event"].is_string(), "{v}");
    }
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{name} in {url}"))
}

#[actix_web::test]
async fn a_full_run_is_audited_and_no_line_holds_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (s, path) = audited(dir.path(), 100 << 20, 5);
    let e = env_from(s, Arc::new(MemoryStore::new()), |op, s| {
        s.realms = vec![realm_config(op, "oidc1", 0, "code", &[])]
    })
    .await;
    let client_secret = e.t.state.runtime().settings.realms[0]
        .rp
        .client_secret
        .expose_secret()
        .clone();
    let mut secrets: Vec<String> = vec![
        client_secret,
        FACILITATOR.1.into(),
        ADMIN.1.into(),
        "wrong-password-9f3a".into(),
    ];

    // An OIDC login: prepare, the browser at the OP, authenticate.
    let login = e.start_login().await;
    secrets.extend([
        login.state.clone(),
        login.nonce.clone(),
        query_param(&login.callback, "code"),
    ]);
    let (s, _, b) = e
        .authenticate_full(
            FACILITATOR,
            &login.callback,
            &login.state,
            &login.nonce,
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let access = b["access_token"].as_str().unwrap().to_string();
    let refresh = b["refresh_token"].as_str().unwrap().to_string();
    secrets.extend([access.clone(), refresh.clone()]);
    assert_eq!(e.whoami(&access).await.0, 200);

    // A refresh, then the old refresh token again after its window: reuse.
    let (s, b) = e.refresh(FACILITATOR, &refresh).await;
    assert_eq!(s, 200, "{b}");
    secrets.extend([
        b["access_token"].as_str().unwrap().to_string(),
        b["refresh_token"].as_str().unwrap().to_string(),
    ]);
    e.t.advance(Duration::from_secs(31));
    let (s, b) = e.refresh(FACILITATOR, &refresh).await;
    assert_eq!(s, 400, "{b}");

    // A login refused (wrong nonce).
    let bad = e.start_login().await;
    let wrong_nonce = "a-nonce-that-was-never-issued-4711";
    secrets.extend([
        bad.state.clone(),
        bad.nonce.clone(),
        query_param(&bad.callback, "code"),
        wrong_nonce.into(),
    ]);
    let (s, _, refused) = e
        .authenticate_full(FACILITATOR, &bad.callback, &bad.state, wrong_nonce, None)
        .await;
    assert_eq!(s, 401, "{refused}");

    // Password grants: one accepted, one refused; a refused Basic password; a bad bearer.
    let (s, b) = e
        .call(
            post_json(
                "/_security/oauth2/token",
                json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let admin_access = b["access_token"].as_str().unwrap().to_string();
    secrets.extend([
        admin_access.clone(),
        b["refresh_token"].as_str().unwrap().into(),
    ]);
    let (s, b) = e
        .call(
            post_json(
                "/_security/oauth2/token",
                json!({"grant_type": "password", "username": ADMIN.0, "password": "wrong-password-9f3a"}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = e
        .call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(basic((FACILITATOR.0, "wrong-password-9f3a"))),
        )
        .await;
    assert_eq!(s, 401);
    let forged = "dGhpcyBpcyBub3QgYSB0b2tlbiBhdCBhbGw";
    secrets.push(forged.into());
    let (s, bearer_refused) = e.whoami(forged).await;
    assert_eq!(s, 401);

    // Role mappings written and deleted; tokens invalidated by user; an OIDC logout.
    e.put_mapping(
        "finance",
        json!({"enabled": true, "roles": ["viewer"], "rules": {"field": {"groups": "finance-team"}}}),
    )
    .await;
    let (s, _) = e
        .call(
            TestRequest::delete()
                .uri("/_security/role_mapping/finance")
                .insert_header(basic(ADMIN)),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = e
        .call(
            delete_json("/_security/oauth2/token", json!({"username": ADMIN.0}))
                .insert_header(basic(ADMIN)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let second = e.start_login().await;
    secrets.extend([
        second.state.clone(),
        second.nonce.clone(),
        query_param(&second.callback, "code"),
    ]);
    let (s, _, b) = e
        .authenticate_full(
            FACILITATOR,
            &second.callback,
            &second.state,
            &second.nonce,
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (a2, r2) = (
        b["access_token"].as_str().unwrap().to_string(),
        b["refresh_token"].as_str().unwrap().to_string(),
    );
    secrets.extend([a2.clone(), r2.clone()]);
    let (s, b) = e
        .call(
            post_json(
                "/_security/oidc/logout",
                json!({"token": a2, "refresh_token": r2}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    let (all, text) = lines(&e.t, &path);
    assert_common(&all);

    // No secret in any line (nor any long fragment of one).
    for secret in &secrets {
        assert!(secret.len() >= 8, "{secret}");
        assert!(!text.contains(secret.as_str()), "{secret} in:\n{text}");
        let head = &secret[..secret.len().min(16)];
        assert!(!text.contains(head), "a part of {secret} in:\n{text}");
    }

    // The logins.
    let ok = of(&all, "authentication_success");
    let oidc: Vec<_> = ok.iter().filter(|v| v["method"] == "oidc").collect();
    assert_eq!(oidc.len(), 2, "{text}");
    let v = oidc[0];
    assert_eq!(v["realm"], "oidc1");
    assert_eq!(v["principal"], "00u1abcd");
    assert_eq!(v["caller_user"], FACILITATOR.0);
    assert_eq!(v["caller_realm"], "default_file");
    assert!(v["correlation_id"].as_str().unwrap().len() >= 12, "{v}");
    assert!(v["roles"].is_array());
    let pw: Vec<_> = ok
        .iter()
        .filter(|v| v["method"] == "password_grant")
        .collect();
    assert_eq!(pw.len(), 1, "{text}");
    assert_eq!(pw[0]["principal"], ADMIN.0);
    assert_eq!(pw[0]["realm"], "default_file");

    let failed = of(&all, "authentication_failed");
    let oidc_failed: Vec<_> = failed.iter().filter(|v| v["method"] == "oidc").collect();
    assert_eq!(oidc_failed.len(), 1, "{text}");
    assert_eq!(
        oidc_failed[0]["reason_code"], refused["error"]["reason_code"],
        "{text}"
    );
    assert_eq!(oidc_failed[0]["caller_user"], FACILITATOR.0);
    let grant_failed: Vec<_> = failed
        .iter()
        .filter(|v| v["method"] == "password_grant")
        .collect();
    assert_eq!(grant_failed.len(), 1, "{text}");
    assert_eq!(grant_failed[0]["reason_code"], "credentials_invalid");
    assert_eq!(grant_failed[0]["principal"], ADMIN.0);
    let request_failed: Vec<_> = failed.iter().filter(|v| v["method"] == "request").collect();
    assert_eq!(request_failed.len(), 2, "{text}");
    assert_eq!(request_failed[0]["reason_code"], "credentials_invalid");
    assert_eq!(request_failed[0]["principal"], FACILITATOR.0);
    assert!(request_failed[0].get("caller_user").is_none());
    assert_eq!(
        request_failed[1]["reason_code"],
        bearer_refused["error"]["reason_code"]
    );
    assert!(request_failed[1].get("principal").is_none());

    // Refresh and reuse.
    let refreshed = of(&all, "token_refreshed");
    assert_eq!(refreshed.len(), 1, "{text}");
    assert_eq!(refreshed[0]["principal"], "00u1abcd");
    assert_eq!(refreshed[0]["realm"], "oidc1");
    assert_eq!(refreshed[0]["caller_user"], FACILITATOR.0);
    let reuse = of(&all, "refresh_reuse_detected");
    assert_eq!(reuse.len(), 1, "{text}");
    assert_eq!(reuse[0]["family_revoked"], true);
    assert_eq!(reuse[0]["caller_user"], FACILITATOR.0);

    // Invalidation by owner, and by logout.
    let inv = of(&all, "tokens_invalidated");
    let owner: Vec<_> = inv.iter().filter(|v| v["target"] == "owner").collect();
    assert_eq!(owner.len(), 1, "{text}");
    assert_eq!(owner[0]["username"], ADMIN.0);
    assert_eq!(owner[0]["invalidated"], 2);
    assert_eq!(owner[0]["caller_user"], ADMIN.0);
    let logout: Vec<_> = inv
        .iter()
        .filter(|v| v["target"] == "oidc_logout")
        .collect();
    assert_eq!(logout.len(), 1, "{text}");
    assert_eq!(logout[0]["username"], "00u1abcd");
    assert_eq!(logout[0]["realm"], "oidc1");
    assert_eq!(logout[0]["invalidated"], 2);

    // Role mappings.
    let rm = of(&all, "role_mapping_changed");
    assert_eq!(rm.len(), 2, "{text}");
    assert_eq!(rm[0]["operation"], "put");
    assert_eq!(rm[0]["name"], "finance");
    assert_eq!(rm[0]["created"], true);
    assert_eq!(rm[0]["caller_user"], ADMIN.0);
    assert_eq!(rm[1]["operation"], "delete");
    assert_eq!(rm[1]["found"], true);
    assert_eq!(e.t.state.audit.dropped(), 0);
}

#[actix_web::test]
async fn denials_and_every_limit_are_audited_with_the_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, path) = audited(dir.path(), 100 << 20, 5);
    s.limits.pending_logins_per_caller = 1;
    let e = env_from(s, Arc::new(MemoryStore::new()), |op, s| {
        s.realms = vec![realm_config(op, "oidc1", 0, "code", &[])]
    })
    .await;
    let from = |ip: &str| {
        format!("{ip}:40000")
            .parse::<std::net::SocketAddr>()
            .unwrap()
    };

    // 403: a caller with manage_oidc only invalidates tokens.
    let (st, b) = e
        .call(
            delete_json("/_security/oauth2/token", json!({"username": "x"}))
                .insert_header(basic(OIDC_ONLY))
                .peer_addr(from("10.9.8.7")),
        )
        .await;
    assert_eq!(st, 403, "{b}");

    // 429: a second pending login of the same caller.
    let (st, b) = e.prepare(json!({"realm": "oidc1"})).await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = e.prepare(json!({"realm": "oidc1"})).await;
    assert_eq!(st, 429, "{b}");

    // 429: one address out of full password verifications (a burst of 20).
    let mut throttled = 0;
    for _ in 0..25 {
        let (st, _) = e
            .call(
                TestRequest::get()
                    .uri("/_security/_authenticate")
                    .insert_header(basic((ADMIN.0, "not-the-password")))
                    .peer_addr(from("10.1.1.1")),
            )
            .await;
        if st == 429 {
            throttled += 1;
        }
    }
    assert!(throttled >= 1);

    let (all, text) = lines(&e.t, &path);
    assert_common(&all);
    let denied = of(&all, "access_denied");
    assert_eq!(denied.len(), 1, "{text}");
    let v = denied[0];
    assert_eq!(v["action"], "cluster:admin/xpack/security/token/invalidate");
    assert_eq!(v["caller_user"], OIDC_ONLY.0);
    assert_eq!(v["caller_realm"], "default_file");
    assert_eq!(v["client_address"], "10.9.8.7");
    assert!(v["correlation_id"].is_string());
    assert_eq!(
        v["granted_by"],
        json!(["manage_token", "manage_security", "all"])
    );

    let limited = of(&all, "rate_limited");
    let pending: Vec<_> = limited
        .iter()
        .filter(|v| v["limit"] == "pending_logins")
        .collect();
    assert_eq!(pending.len(), 1, "{text}");
    assert_eq!(pending[0]["caller_user"], FACILITATOR.0);
    let checks: Vec<_> = limited
        .iter()
        .filter(|v| v["limit"] == "password_checks")
        .collect();
    assert_eq!(checks.len(), throttled, "{text}");
    assert_eq!(checks[0]["client_address"], "10.1.1.1");
    assert!(checks[0]["retry_after_secs"].as_u64().unwrap() >= 1);
    let wrong = of(&all, "authentication_failed");
    assert_eq!(wrong.len(), 25 - throttled, "{text}");
    assert_eq!(wrong[0]["client_address"], "10.1.1.1");
    assert_eq!(wrong[0]["principal"], ADMIN.0);
}

#[actix_web::test]
async fn request_limits_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, path) = audited(dir.path(), 100 << 20, 5);
    s.limits.requests_per_caller = 1;
    let t = TestApp::with(s, Arc::new(MemoryStore::new()));
    let app = t.service().await;
    let mut limited = 0;
    for _ in 0..5 {
        let (st, _, _) = send(
            &app,
            post_json(
                "/_security/oauth2/token",
                json!({"grant_type": "client_credentials"}),
            )
            .insert_header(basic(FACILITATOR)),
        )
        .await;
        if st == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 1);
    let (all, text) = lines(&t, &path);
    let v: Vec<_> = of(&all, "rate_limited");
    assert_eq!(v.len(), limited, "{text}");
    assert_eq!(v[0]["limit"], "requests_per_caller");
    assert_eq!(v[0]["caller_user"], FACILITATOR.0);
    let ok = of(&all, "authentication_success");
    assert_eq!(ok.len(), 5 - limited, "{text}");
    assert_eq!(ok[0]["method"], "client_credentials");
    assert_eq!(ok[0]["principal"], FACILITATOR.0);
}

#[actix_web::test]
async fn config_reloads_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (s, path) = audited(dir.path(), 100 << 20, 5);
    let t = TestApp::with(s, Arc::new(MemoryStore::new()));
    let config = dir.path().join("oidc-realm.yml");
    std::fs::write(&config, "token:\n  timeout: 10m\n").unwrap();
    assert_eq!(oidc_realm::reload::reload_from(&t.state, &config), Ok(2));
    std::fs::write(&config, "token:\n  timeout: forever\n").unwrap();
    assert!(oidc_realm::reload::reload_from(&t.state, &config).is_err());
    let (all, text) = lines(&t, &path);
    let v = of(&all, "config_reloaded");
    assert_eq!(v.len(), 2, "{text}");
    assert_eq!(v[0]["outcome"], "success");
    assert_eq!(v[0]["generation"], 2);
    // The file has no audit section: the running trail stays (restart-only).
    // (The test settings' http.bind and data.path differ from the file's defaults too.)
    let restart = v[0]["restart_required"].as_array().unwrap();
    assert!(restart.contains(&json!("audit")), "{text}");
    assert!(
        restart.iter().all(|k| !k.as_str().unwrap().contains(' ')),
        "{text}"
    );
    assert_eq!(v[1]["outcome"], "failure");
    assert_eq!(v[1]["error_count"], 1);
    assert!(v[1].get("correlation_id").is_none());
    assert_eq!(t.state.runtime().settings.audit, t_audit(&path));
}

fn t_audit(path: &Path) -> AuditSettings {
    AuditSettings {
        sink: Some(AuditSink::File(path.to_path_buf())),
        max_size: 100 << 20,
        max_files: 5,
    }
}

#[actix_web::test]
async fn a_flood_of_failures_stays_within_the_rotation_bounds() {
    const MAX_SIZE: u64 = 2048;
    const MAX_FILES: u32 = 2;
    let dir = tempfile::tempdir().unwrap();
    let (s, path) = audited(dir.path(), MAX_SIZE, MAX_FILES);
    let t = TestApp::with(s, Arc::new(MemoryStore::new()));
    let app = t.service().await;
    for i in 0..400 {
        let (st, _, _) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(&format!("not-a-token-{i}"))),
        )
        .await;
        assert_eq!(st, 401);
        // Let the writer keep up (the queue would otherwise drop, which is tested apart).
        if i % 100 == 99 {
            t.state.audit.flush();
        }
    }
    t.state.audit.flush();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2"]);
    let mut total = 0;
    for n in &names {
        let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
        assert!(len <= MAX_SIZE, "{n}: {len} bytes");
        total += len;
    }
    assert!(total <= MAX_SIZE * (MAX_FILES as u64 + 1));
    // The newest lines are kept; each is whole.
    let (all, _) = lines(&t, &path);
    assert!(all.len() > 10);
    assert!(all
        .iter()
        .all(|v| v["event"] == "authentication_failed" && v["method"] == "request"));
}

#[test]
fn audit_keys_are_validated_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let load = |yaml: &str| oidc_realm::config::load_str(yaml, dir.path());
    let s = load("audit:\n  path: audit.log\n").unwrap().settings.audit;
    assert_eq!(s.sink, Some(AuditSink::File(dir.path().join("audit.log"))));
    assert_eq!((s.max_size, s.max_files), (100 << 20, 5));
    let s = load("audit.path: stdout\n").unwrap().settings.audit;
    assert_eq!(s.sink, Some(AuditSink::Stdout));
    assert_eq!(load("{}\n").unwrap().settings.audit.sink, None);
    let s = load("audit:\n  path: a.log\n  max_size: 10mb\n  max_files: 2\n")
        .unwrap()
        .settings
        .audit;
    assert_eq!((s.max_size, s.max_files), (10 << 20, 2));
    for (yaml, path, words) in [
        (
            "audit:\n  path: a.log\n  max_sise: 1mb\n",
            "audit.max_sise",
            "did you mean `audit.max_size`?",
        ),
        (
            "audit:\n  path: a.log\n  max_size: 100\n",
            "audit.max_size",
            "at least 1kb",
        ),
        (
            "audit:\n  path: a.log\n  max_size: lots\n",
            "audit.max_size",
            "size in bytes",
        ),
        (
            "audit:\n  path: a.log\n  max_files: 0\n",
            "audit.max_files",
            "between 1 and 100",
        ),
        (
            "audit:\n  path: no-such-dir/a.log\n",
            "audit.path",
            "does not exist",
        ),
        ("audit:\n  path: .\n", "audit.path", "is a directory"),
        ("audit: yes\n", "audit", "expected a mapping"),
    ] {
        let e = load(yaml).unwrap_err();
        assert!(
            e.0.iter()
                .any(|e| e.path == path && e.message.contains(words)),
            "{yaml}: {e}"
        );
    }
    let w = load("audit:\n  max_files: 3\n").unwrap().warnings;
    assert!(
        w.iter()
            .any(|w| w.starts_with("audit.max_files: has no effect")),
        "{w:?}"
    );
}
