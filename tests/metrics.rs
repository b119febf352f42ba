//! Prometheus metrics (issue 10, Observability): what each event counts, read back through
//! `AppState::render_metrics` (what `GET /metrics` answers); `GET /metrics` on its own
//! listener and never on the API's; the `metrics.bind` key.

mod common;

use actix_web::test::TestRequest;
use common::fake_op::*;
use common::login::*;
use common::*;
use oidc_realm::store::MemoryStore;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')
            .map(str::to_string)
    })
}

/// Assert that the exposition has the line `series value`.
#[track_caller]
fn assert_sample(text: &str, series: &str, value: &str) {
    assert_eq!(
        sample(text, series).as_deref(),
        Some(value),
        "{series}\n---\n{text}"
    );
}

/// A server with the fake OP's realm `oidc1`; `tweak` adjusts the settings.
async fn env(
    tweak: impl FnOnce(&mut oidc_realm::config::Settings),
) -> Env<
    impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
> {
    env_from(settings(), Arc::new(MemoryStore::new()), |op, s| {
        s.realms = vec![realm_config(op, "oidc1", 0, "code", &[])];
        tweak(s);
    })
    .await
}

#[actix_web::test]
async fn logins_tokens_bearer_checks_and_reloads_are_counted() {
    let Env { t, op, app } = env(|_| {}).await;
    let m = t.state.render_metrics();
    // Before anything: the fixed series exist at 0.
    assert_sample(&m, "oidc_realm_tokens_total{event=\"issued\"}", "0");
    assert_sample(
        &m,
        "oidc_realm_rate_limited_total{limit=\"pending_logins\"}",
        "0",
    );
    assert_sample(&m, "oidc_realm_config_generation", "1");
    assert_sample(&m, "oidc_realm_bearer_check_seconds_count", "0");
    assert!(sample(
        &m,
        "oidc_realm_logins_total{realm=\"oidc1\",outcome=\"success\",reason=\"ok\"}"
    )
    .is_none());

    // A successful login.
    let prepare = || {
        post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
            .insert_header(basic(FACILITATOR))
    };
    let (s, _, p) = send(&app, prepare()).await;
    assert_eq!(s, 200, "{p}");
    let callback = op.browser_login(p["redirect"].as_str().unwrap()).await;
    let (s, _, login) = send(
        &app,
        post_json(
            "/_security/oidc/authenticate",
            json!({"redirect_uri": callback, "state": p["state"], "nonce": p["nonce"], "realm": "oidc1"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{login}");

    // A failed login: a second prepare, then the wrong nonce.
    let (s, _, p2) = send(&app, prepare()).await;
    assert_eq!(s, 200, "{p2}");
    let callback = op.browser_login(p2["redirect"].as_str().unwrap()).await;
    let (s, _, failed) = send(
        &app,
        post_json(
            "/_security/oidc/authenticate",
            json!({"redirect_uri": callback, "state": p2["state"], "nonce": "not-the-nonce", "realm": "oidc1"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 401, "{failed}");
    assert_eq!(failed["error"]["reason_code"], "nonce_mismatch");
    // A failure naming no configured realm gets an empty realm label (a caller cannot
    // create series with names of its choosing).
    let (s, _, unknown) = send(
        &app,
        post_json(
            "/_security/oidc/authenticate",
            json!({"redirect_uri": "https://x/cb?code=1&state=s", "state": "s", "nonce": "n", "realm": "made-up"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 401, "{unknown}");
    let unknown_code = unknown["error"]["reason_code"]
        .as_str()
        .unwrap()
        .to_string();

    // Bearer checks: one good, one malformed.
    let access = login["access_token"].as_str().unwrap();
    let (s, _, _) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(access)),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer("not-a-token")),
    )
    .await;
    assert_eq!(s, 401);

    // Refresh, then reuse of the old refresh token after the 30 s window.
    let refresh_body = |r: &Value| json!({"grant_type": "refresh_token", "refresh_token": r});
    let r0 = login["refresh_token"].clone();
    let (s, _, refreshed) = send(
        &app,
        post_json("/_security/oauth2/token", refresh_body(&r0)).insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{refreshed}");
    t.advance(Duration::from_secs(31));
    let (s, _, reused) = send(
        &app,
        post_json("/_security/oauth2/token", refresh_body(&r0)).insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 400, "{reused}");
    // The family was revoked: the first access token is now refused.
    let (s, _, _) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(access)),
    )
    .await;
    assert_eq!(s, 401);

    // A password grant and an invalidation by user.
    let (s, _, _) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "username": ARGON_USER.0, "password": ARGON_USER.1}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, inv) = send(
        &app,
        delete_json(
            "/_security/oauth2/token",
            json!({"username": ARGON_USER.0, "realm_name": "default_file"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{inv}");
    // The access and the refresh token of the grant.
    assert_eq!(inv["invalidated_tokens"], 2, "{inv}");

    let m = t.state.render_metrics();
    assert_sample(
        &m,
        "oidc_realm_logins_total{realm=\"oidc1\",outcome=\"success\",reason=\"ok\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_logins_total{realm=\"oidc1\",outcome=\"failure\",reason=\"nonce_mismatch\"}",
        "1",
    );
    assert_sample(
        &m,
        &format!(
            "oidc_realm_logins_total{{realm=\"\",outcome=\"failure\",reason=\"{unknown_code}\"}}"
        ),
        "1",
    );
    assert!(!m.contains("made-up"), "{m}");
    assert_sample(&m, "oidc_realm_prepares_total{realm=\"oidc1\"}", "2");
    // The login and the password grant.
    assert_sample(&m, "oidc_realm_tokens_total{event=\"issued\"}", "2");
    assert_sample(&m, "oidc_realm_tokens_total{event=\"refreshed\"}", "1");
    assert_sample(&m, "oidc_realm_tokens_total{event=\"refresh_reuse\"}", "1");
    assert_sample(&m, "oidc_realm_tokens_total{event=\"invalidated\"}", "2");
    assert_sample(
        &m,
        "oidc_realm_bearer_checks_total{outcome=\"success\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_bearer_checks_total{outcome=\"malformed\"}",
        "1",
    );
    // The first access token after its family was revoked.
    assert_sample(
        &m,
        "oidc_realm_bearer_checks_total{outcome=\"invalidated\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_bearer_checks_total{outcome=\"unknown\"}",
        "0",
    );
    assert_sample(
        &m,
        "oidc_realm_bearer_checks_total{outcome=\"expired\"}",
        "0",
    );
    assert_sample(&m, "oidc_realm_bearer_checks_total{outcome=\"error\"}", "0");
    assert_sample(&m, "oidc_realm_bearer_check_seconds_count", "3");
    assert_sample(
        &m,
        "oidc_realm_bearer_check_seconds_bucket{le=\"+Inf\"}",
        "3",
    );
    // Calls to the OP: the successful login exchanged its code, fetched the JWKS and called
    // UserInfo; the failed one was refused (nonce) before any call.
    assert_sample(
        &m,
        "oidc_realm_op_calls_total{realm=\"oidc1\",endpoint=\"token\",outcome=\"success\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_op_calls_total{realm=\"oidc1\",endpoint=\"userinfo\",outcome=\"success\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_op_calls_total{realm=\"oidc1\",endpoint=\"jwks\",outcome=\"success\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_op_call_seconds_count{realm=\"oidc1\",endpoint=\"token\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_op_call_seconds_count{realm=\"oidc1\",endpoint=\"userinfo\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_op_call_seconds_bucket{le=\"+Inf\",realm=\"oidc1\",endpoint=\"jwks\"}",
        "1",
    );
    // A memory store has no commits.
    assert_sample(&m, "oidc_realm_store_commit_seconds_count", "0");
    assert_sample(&m, "oidc_realm_store_commit_batch_size_count", "0");
    // The fake OP publishes four keys.
    assert_sample(&m, "oidc_realm_jwks_keys{realm=\"oidc1\"}", "4");
    assert!(
        sample(&m, "oidc_realm_jwks_age_seconds{realm=\"oidc1\"}").is_some(),
        "{m}"
    );
    assert_sample(
        &m,
        "oidc_realm_rate_limited_total{limit=\"requests_per_caller\"}",
        "0",
    );
    // Every Basic-authenticated call above was remembered after one full check per user.
    assert_sample(&m, "oidc_realm_password_verifications_total", "2");

    // A reload that works and one that does not.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oidc-realm.yml");
    std::fs::write(&path, "token:\n  timeout: 10m\n").unwrap();
    assert_eq!(oidc_realm::reload::reload_from(&t.state, &path), Ok(2));
    std::fs::write(&path, "token:\n  timeout: forever\n").unwrap();
    assert!(oidc_realm::reload::reload_from(&t.state, &path).is_err());
    let m = t.state.render_metrics();
    assert_sample(&m, "oidc_realm_config_generation", "2");
    assert_sample(
        &m,
        "oidc_realm_config_reloads_total{outcome=\"success\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_config_reloads_total{outcome=\"failure\"}",
        "1",
    );
    // The reloaded configuration has no realms: their series are gone.
    assert!(
        sample(&m, "oidc_realm_jwks_keys{realm=\"oidc1\"}").is_none(),
        "{m}"
    );
}

/// Failed OP calls are counted by their error code, from a login (token endpoint, JWKS at
/// first use) and from the periodic JWKS refresher (a document that is not a JWK set).
#[actix_web::test]
async fn failed_op_calls_are_counted_by_endpoint_and_error() {
    let e = env(|_| {}).await;
    async fn login<S, B>(e: &Env<S>) -> String
    where
        S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
        B: actix_web::body::MessageBody,
    {
        let l = e.start_login().await;
        let (_, _, b) = e
            .authenticate_full(FACILITATOR, &l.callback, &l.state, &l.nonce, Some("oidc1"))
            .await;
        b["error"]["reason_code"]
            .as_str()
            .unwrap_or("ok")
            .to_string()
    }
    let (t, op) = (&e.t, &e.op);
    // The JWKS endpoint fails at the first login (after a good code exchange).
    op.set(|k| k.jwks_status = 500);
    assert_eq!(login(&e).await, "jwks_unavailable");
    // The token endpoint refuses the code.
    op.set(|k| {
        k.jwks_status = 200;
        k.token_reply = TokenReply::invalid_grant("code already used");
    });
    let code = login(&e).await;
    assert!(code.starts_with("token_endpoint"), "{code}");
    // The refresher finds a document that is not a JWK set.
    op.set(|k| k.jwks_body = Some("{\"keys\": 1}".into()));
    t.advance(Duration::from_secs(31));
    assert_eq!(oidc_realm::reload::refresh_jwks(&t.state).await, 1);

    let m = t.state.render_metrics();
    let calls = |endpoint: &str, outcome: &str| {
        sample(
            &m,
            &format!("oidc_realm_op_calls_total{{realm=\"oidc1\",endpoint=\"{endpoint}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(calls("token", "success").as_deref(), Some("1"), "{m}");
    assert_eq!(
        calls("token", "token_endpoint_rejected").as_deref(),
        Some("1"),
        "{m}"
    );
    assert_eq!(calls("jwks", "jwks_status").as_deref(), Some("1"), "{m}");
    assert_eq!(calls("jwks", "jwks_invalid").as_deref(), Some("1"), "{m}");
    assert_eq!(calls("jwks", "success"), None, "{m}");
    assert_sample(
        &m,
        "oidc_realm_op_call_seconds_count{realm=\"oidc1\",endpoint=\"jwks\"}",
        "2",
    );
    assert_sample(
        &m,
        "oidc_realm_op_call_seconds_count{realm=\"oidc1\",endpoint=\"token\"}",
        "2",
    );
}

/// The redb store's group commits: one token issuance is one commit of one task.
#[actix_web::test]
async fn store_commits_are_measured_on_a_redb_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = oidc_realm::store::RedbStore::open(&dir.path().join("m.redb")).unwrap();
    let t = TestApp::with_store(Arc::new(store));
    let app = t.service().await;
    let m = t.state.render_metrics();
    assert_sample(&m, "oidc_realm_store_commit_seconds_count", "0");
    let (s, _, b) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "username": ARGON_USER.0, "password": ARGON_USER.1}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let m = t.state.render_metrics();
    assert_sample(&m, "oidc_realm_store_commit_seconds_count", "1");
    assert_sample(
        &m,
        "oidc_realm_store_commit_seconds_bucket{le=\"+Inf\"}",
        "1",
    );
    assert_sample(&m, "oidc_realm_store_commit_batch_size_count", "1");
    assert_sample(&m, "oidc_realm_store_commit_batch_size_sum", "1.0");
    assert_sample(
        &m,
        "oidc_realm_store_commit_batch_size_bucket{le=\"1.0\"}",
        "1",
    );
    assert_sample(&m, "oidc_realm_store_commit_failures_total", "0");
}

#[actix_web::test]
async fn the_bearer_cache_reports_its_entries_and_bytes() {
    let t = TestApp::new();
    let app = t.service().await;
    let m = t.state.render_metrics();
    assert_sample(&m, "oidc_realm_bearer_cache_entries", "0");
    assert_sample(&m, "oidc_realm_bearer_cache_bytes", "0");
    let (s, _, b) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "username": ARGON_USER.0, "password": ARGON_USER.1}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let token = b["access_token"].as_str().unwrap().to_string();
    // Issued, not yet checked: not cached.
    assert_sample(
        &t.state.render_metrics(),
        "oidc_realm_bearer_cache_entries",
        "0",
    );
    let whoami = || {
        actix_web::test::TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(("Authorization", format!("Bearer {token}")))
    };
    let (s, _, b) = send(&app, whoami()).await;
    assert_eq!(s, 200, "{b}");
    let m = t.state.render_metrics();
    assert_sample(&m, "oidc_realm_bearer_cache_entries", "1");
    let bytes: u64 = sample(&m, "oidc_realm_bearer_cache_bytes")
        .unwrap()
        .parse()
        .unwrap();
    assert!((200..2_000).contains(&bytes), "{bytes}");
    // Invalidated: dropped from the cache.
    let (s, _, b) = send(
        &app,
        actix_web::test::TestRequest::delete()
            .uri("/_security/oauth2/token")
            .insert_header(basic(FACILITATOR))
            .set_json(json!({ "token": token })),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let m = t.state.render_metrics();
    assert_sample(&m, "oidc_realm_bearer_cache_entries", "0");
    assert_sample(&m, "oidc_realm_bearer_cache_bytes", "0");
}

#[actix_web::test]
async fn every_kind_of_429_is_counted_by_its_limit() {
    let Env { t, op: _op, app } = env(|s| {
        s.limits.pending_logins_per_caller = 1;
        s.limits.requests_per_caller = 1;
    })
    .await;
    let prepare = || {
        post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
            .insert_header(basic(FACILITATOR))
    };
    assert_eq!(send(&app, prepare()).await.0, 200);
    // Then: too many pending logins, until the caller is over its request rate (1/s, bursts
    // of 2; the loop is bounded whatever the machine's speed).
    let (mut pending, mut rate_limited) = (0, 0);
    for _ in 0..50 {
        let (s, _, b) = send(&app, prepare()).await;
        assert_eq!(s, 429, "{b}");
        match b["error"]["reason_code"].as_str() {
            Some("too_many_pending_logins") => pending += 1,
            Some("rate_limited") => {
                rate_limited += 1;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        pending >= 1 && rate_limited == 1,
        "{pending} {rate_limited}"
    );
    // Password checks per address: wrong passwords from one address until throttled.
    let addr: std::net::SocketAddr = "127.0.0.9:40000".parse().unwrap();
    let mut throttled = false;
    for _ in 0..200 {
        let (s, _, b) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .peer_addr(addr)
                .insert_header(basic((FACILITATOR.0, "wrong"))),
        )
        .await;
        if s == 429 {
            assert_eq!(b["error"]["reason_code"], "password_checks_throttled");
            throttled = true;
            break;
        }
        assert_eq!(s, 401);
    }
    assert!(throttled);

    let m = t.state.render_metrics();
    assert_sample(
        &m,
        "oidc_realm_rate_limited_total{limit=\"pending_logins\"}",
        &pending.to_string(),
    );
    assert_sample(
        &m,
        "oidc_realm_rate_limited_total{limit=\"requests_per_caller\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_rate_limited_total{limit=\"password_checks\"}",
        "1",
    );
    assert_sample(
        &m,
        "oidc_realm_rate_limited_total{limit=\"requests_per_address\"}",
        "0",
    );
    assert_sample(&m, "oidc_realm_prepares_total{realm=\"oidc1\"}", "1");
}

#[actix_web::test]
async fn the_exposition_is_openmetrics_and_every_name_is_prefixed() {
    let t = TestApp::new();
    let m = t.state.render_metrics();
    assert!(m.ends_with("# EOF\n"), "{m}");
    let mut families = Vec::new();
    for line in m.lines().filter(|l| *l != "# EOF") {
        let name = match line.strip_prefix("# ") {
            Some(meta) => {
                let mut parts = meta.splitn(3, ' ');
                let kind = parts.next().unwrap();
                assert!(matches!(kind, "HELP" | "TYPE" | "UNIT"), "{line}");
                let name = parts.next().unwrap();
                if kind == "TYPE" {
                    families.push(name.to_string());
                }
                name
            }
            None => line.split(['{', ' ']).next().unwrap(),
        };
        assert!(name.starts_with("oidc_realm_"), "{line}");
    }
    // (Families with a label per realm appear with their first series: logins, prepares,
    // op_calls, op_call_seconds, jwks_keys, jwks_age_seconds; see the first tests.)
    for f in [
        "oidc_realm_tokens",
        "oidc_realm_logouts",
        "oidc_realm_bearer_checks",
        "oidc_realm_bearer_check_seconds",
        "oidc_realm_rate_limited",
        "oidc_realm_password_checks_busy",
        "oidc_realm_password_verifications",
        "oidc_realm_config_generation",
        "oidc_realm_config_reloads",
        "oidc_realm_store_commit_seconds",
        "oidc_realm_store_commit_batch_size",
        "oidc_realm_store_commit_failures",
    ] {
        assert!(families.iter().any(|x| x == f), "{f} missing:\n{m}");
    }
    // Each State has its own registry.
    let other = TestApp::new();
    other
        .state
        .metrics
        .token(oidc_realm::metrics::TokenEvent::Issued);
    let m = t.state.render_metrics();
    assert_sample(&m, "oidc_realm_tokens_total{event=\"issued\"}", "0");
}

#[actix_web::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let t = TestApp::new();
    t.state
        .metrics
        .token(oidc_realm::metrics::TokenEvent::Refreshed);
    let (server, addrs) =
        oidc_realm::http::metrics::server(t.state.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let addr = addrs[0];
    // The suite's client installs the process's rustls provider, which reqwest needs.
    let client = common::fake_op::http_client();
    let r = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        oidc_realm::metrics::CONTENT_TYPE
    );
    let body = r.text().await.unwrap();
    assert_sample(&body, "oidc_realm_tokens_total{event=\"refreshed\"}", "1");
    assert_sample(&body, "oidc_realm_config_generation", "1");
    // Nothing else there: not the API.
    for path in ["/", "/_security/_authenticate", "/_health"] {
        let r = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = client
        .post(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
    handle.stop(true).await;

    // And no metrics on the API listener.
    let app = t.service().await;
    let (s, raw) = send_raw(&app, TestRequest::get().uri("/metrics")).await;
    assert_eq!(s, 404);
    assert!(!String::from_utf8_lossy(&raw).contains("oidc_realm_"));
}

/// `serve` with `metrics.bind`: the real binary answers `GET /metrics` there, and the API
/// listener does not.
#[cfg(unix)]
#[test]
fn serve_starts_the_metrics_listener_when_metrics_bind_is_set() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::Instant;
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
    fn get(port: u16, path: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (api, metrics) = (free_port(), free_port());
    let path = dir.path().join("oidc-realm.yml");
    std::fs::write(
        &path,
        format!("http:\n  bind: 127.0.0.1:{api}\nmetrics:\n  bind: 127.0.0.1:{metrics}\ndata:\n  path: data/test.redb\n"),
    )
    .unwrap();
    let _server = Kill(
        Command::new(env!("CARGO_BIN_EXE_oidc-realm"))
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        if let Some(a) = get(metrics, "/metrics") {
            break a;
        }
        assert!(Instant::now() < deadline, "no metrics listener");
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\noidc_realm_config_generation 1\n"),
        "{answer}"
    );
    let api_answer = get(api, "/metrics").unwrap();
    assert!(api_answer.starts_with("HTTP/1.1 404"), "{api_answer}");
    assert!(!api_answer.contains("oidc_realm_config_generation"));
}

// ---------------------------------------------------------------------------------------
// metrics.bind

fn load(yaml: &str) -> Result<oidc_realm::config::Loaded, oidc_realm::config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    oidc_realm::config::load_str(yaml, dir.path())
}

#[test]
fn metrics_bind_is_off_unless_set() {
    let l = load("users: {}\n").unwrap();
    assert_eq!(l.settings.metrics.bind, None);
    let l = load("metrics:\n  bind: 127.0.0.1:9281\n").unwrap();
    assert_eq!(
        l.settings.metrics.bind,
        Some("127.0.0.1:9281".parse().unwrap())
    );
    assert!(
        !l.warnings.iter().any(|w| w.starts_with("metrics.")),
        "{:?}",
        l.warnings
    );
    let l = load("metrics.bind: '[::1]:9281'\n").unwrap();
    assert_eq!(l.settings.metrics.bind, Some("[::1]:9281".parse().unwrap()));
}

#[test]
fn a_non_loopback_metrics_bind_is_warned_about() {
    let l = load("metrics:\n  bind: 0.0.0.0:9281\n").unwrap();
    let w: Vec<&String> = l
        .warnings
        .iter()
        .filter(|w| w.starts_with("metrics.bind: "))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", l.warnings);
    assert!(w[0].contains("not a loopback address"), "{}", w[0]);
}

#[test]
fn a_bad_metrics_bind_is_an_error_with_its_key() {
    let e = load("metrics:\n  bind: localhost\n").unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "metrics.bind");
    assert!(e.0[0].message.contains("expected IP:port"), "{e}");
    // The API's own address.
    let e = load("http:\n  bind: 127.0.0.1:9280\nmetrics:\n  bind: 127.0.0.1:9280\n").unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "metrics.bind");
    assert!(e.0[0].message.contains("separate listener"), "{e}");
    let e = load("http:\n  bind: 0.0.0.0:9280\nmetrics:\n  bind: 127.0.0.1:9280\n").unwrap_err();
    assert_eq!(e.0[0].path, "metrics.bind", "{e}");
    // Not a mapping.
    let e = load("metrics: 9281\n").unwrap_err();
    assert_eq!(e.0[0].path, "metrics", "{e}");
}

#[test]
fn metrics_key_typos_get_did_you_mean() {
    let e = load("metrics:\n  bnd: 127.0.0.1:9281\n").unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "metrics.bnd");
    assert!(
        e.0[0].message.contains("did you mean `metrics.bind`?"),
        "{e}"
    );
    let e = load("metric:\n  bind: 127.0.0.1:9281\n").unwrap_err();
    assert!(
        e.0[0].message.contains("did you mean `metrics.bind`?"),
        "{e}"
    );
}

#[test]
fn changing_metrics_bind_needs_a_restart() {
    let t = TestApp::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oidc-realm.yml");
    std::fs::write(&path, "metrics:\n  bind: 127.0.0.1:9281\n").unwrap();
    assert_eq!(oidc_realm::reload::reload_from(&t.state, &path), Ok(2));
    let rt = t.state.runtime();
    assert_eq!(rt.settings.metrics.bind, None);
    assert!(
        rt.warnings
            .iter()
            .any(|w| w.starts_with("metrics.bind: changed from [none] to [127.0.0.1:9281]")),
        "{:?}",
        rt.warnings
    );
}

/// Every exposed metric is in the table of docs/operations.md ("Metrics"), and every metric
/// the table lists is exposed.
#[test]
fn every_metric_is_documented_in_operations_md() {
    let m = oidc_realm::metrics::Metrics::new();
    // Families with a realm label appear with their first series.
    m.login_succeeded("r");
    m.prepared("r");
    m.op_calls().record(
        "r",
        oidc_realm::oidc::client::Endpoint::Token,
        "success",
        Duration::ZERO,
    );
    let text = m.render(oidc_realm::metrics::ScrapeValues {
        generation: 1,
        password_verifications: 0,
        bearer_cache: (0, 0),
        jwks: vec![("r".into(), 1, Some(1.0))],
    });
    let mut exposed = std::collections::BTreeSet::new();
    for line in text.lines() {
        let Some(meta) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = meta.split_once(' ').unwrap();
        exposed.insert(match kind {
            "counter" => format!("{name}_total"),
            _ => name.to_string(),
        });
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let documented: std::collections::BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `oidc_realm_"))
        .map(|rest| format!("oidc_realm_{}", rest.split('`').next().unwrap()))
        .collect();
    assert_eq!(exposed, documented);
}
