//! Issue 10, finding 1: a flood of bad Basic credentials from some addresses cannot deny
//! service to callers whose credentials are good.

mod common;

use actix_web::test::TestRequest;
use common::*;
use futures_util::future::join_all;
use std::net::SocketAddr;

fn from(addr: &str) -> SocketAddr {
    format!("{addr}:40000").parse().unwrap()
}

fn authenticate(who: (&str, &str), addr: &str) -> TestRequest {
    TestRequest::get()
        .uri("/_security/_authenticate")
        .insert_header(basic(who))
        .peer_addr(from(addr))
}

#[actix_web::test]
async fn a_flood_of_bad_credentials_from_one_address_does_not_block_a_facilitator() {
    let t = TestApp::new();
    let app = t.service().await;
    // The facilitator's first call verifies its password once.
    let (s, _, _) = send(&app, authenticate(FACILITATOR, "127.0.0.1")).await;
    assert_eq!(s, 200);
    let before = t.state.password_verifications();

    // 300 bad credentials from 127.0.0.2 (unknown users and a known user with a wrong
    // password), interleaved with the facilitator's calls from 127.0.0.1.
    let mut flood = Vec::new();
    let mut good = Vec::new();
    for i in 0..300 {
        let user = if i % 2 == 0 {
            (format!("nobody{i}"), "guess".to_string())
        } else {
            (FACILITATOR.0.to_string(), format!("wrong{i}"))
        };
        flood.push(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(basic((&user.0, &user.1)))
                .peer_addr(from("127.0.0.2")),
        );
        if i % 10 == 0 {
            good.push(authenticate(FACILITATOR, "127.0.0.1"));
        }
    }
    let started = std::time::Instant::now();
    let flood_answers = join_all(flood.into_iter().map(|r| send(&app, r))).await;
    // The allowance refills in real time (2/s): what the flood may have used.
    let allowance = oidc_realm::auth::caller::PASSWORD_CHECKS_BURST.get() as f64
        + started.elapsed().as_secs_f64() * 2.0
        + 1.0;
    let good_answers = join_all(good.into_iter().map(|r| send(&app, r))).await;
    assert!(good_answers.iter().all(|(s, _, _)| *s == 200));

    let throttled: Vec<_> = flood_answers.iter().filter(|(s, _, _)| *s == 429).collect();
    let refused = flood_answers.iter().filter(|(s, _, _)| *s == 401).count();
    // Unknown users are shed first when the verification slots are busy: 503, retry.
    let shed = flood_answers.iter().filter(|(s, _, _)| *s == 503).count();
    assert_eq!(
        throttled.len() + refused + shed,
        300,
        "only 401, 429 and 503"
    );
    assert!(
        (refused + shed) as f64 <= allowance,
        "{refused} verifications and {shed} shed from one address, allowance {allowance}"
    );
    assert!(throttled.len() >= 200, "{} throttled", throttled.len());
    let (_, h, b) = throttled[0];
    assert_eq!(b["error"]["type"], "es_rejected_execution_exception");
    assert_eq!(b["error"]["reason_code"], "password_checks_throttled");
    assert_eq!(b["status"], 429);
    assert!(
        h.get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // The flood cost at most the burst in hashing; the facilitator none (remembered).
    assert!(t.state.password_verifications() - before <= refused as u64);

    // Another address is not affected by 127.0.0.2's allowance.
    let (s, _, _) = send(&app, authenticate(ADMIN, "127.0.0.3")).await;
    assert_eq!(s, 200);
    // The facilitator's remembered success is served even from the flooding address.
    let (s, _, _) = send(&app, authenticate(FACILITATOR, "127.0.0.2")).await;
    assert_eq!(s, 200);
}

#[actix_web::test]
async fn a_reload_keeps_remembered_successes_unless_the_hash_changed() {
    let t = TestApp::new();
    let app = t.service().await;
    let (s, _, _) = send(&app, authenticate(FACILITATOR, "127.0.0.1")).await;
    assert_eq!(s, 200);
    let n = t.state.password_verifications();
    // Reload with the same users (same hashes): no new verification.
    let same = (*t.state.runtime().settings).clone();
    t.state.swap_settings(same.clone(), Vec::new()).unwrap();
    let (s, _, _) = send(&app, authenticate(FACILITATOR, "127.0.0.1")).await;
    assert_eq!(s, 200);
    assert_eq!(t.state.password_verifications(), n);
    // A new hash for the same password: verified again (and still accepted).
    let mut s2 = same;
    s2.users.get_mut(FACILITATOR.0).unwrap().password_hash =
        oidc_realm::config::PasswordHash::Bcrypt(bcrypt::hash(FACILITATOR.1, 4).unwrap());
    t.state.swap_settings(s2, Vec::new()).unwrap();
    let (s, _, _) = send(&app, authenticate(FACILITATOR, "127.0.0.1")).await;
    assert_eq!(s, 200);
    assert_eq!(t.state.password_verifications(), n + 1);
}

#[actix_web::test]
async fn request_limits_per_caller_and_per_address() {
    let mut s = settings();
    // Slow refills (1/s and 2/s), so the test does not depend on how fast it runs.
    s.limits.requests_per_caller = 1; // bursts of 2
    s.limits.requests_per_address = 2; // bursts of 4
    let t = TestApp::with(
        s,
        std::sync::Arc::new(oidc_realm::store::MemoryStore::new()),
    );
    let app = t.service().await;
    let token = |who: (&str, &str), addr: &str| {
        post_json(
            "/_security/oauth2/token",
            serde_json::json!({"grant_type": "client_credentials"}),
        )
        .insert_header(basic(who))
        .peer_addr(from(addr))
    };
    // The facilitator: 2 requests in its burst, then 429 with Retry-After.
    for i in 0..2 {
        let (s, _, b) = send(&app, token(FACILITATOR, "127.0.0.1")).await;
        assert_eq!(s, 200, "request {i}: {b}");
    }
    let (s, h, b) = send(&app, token(FACILITATOR, "127.0.0.1")).await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(b["error"]["reason_code"], "rate_limited");
    assert_eq!(b["error"]["type"], "es_rejected_execution_exception");
    assert!(h.contains_key("retry-after"));
    // Another caller on another address is not affected.
    let (s, _, _) = send(&app, token(ADMIN, "127.0.0.3")).await;
    assert_eq!(s, 200);
    // The address limit counts every caller from it: 127.0.0.1 already sent 3 (the refused
    // one too: the address is counted first).
    let (s, _, b) = send(&app, token(ADMIN, "127.0.0.1")).await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = send(&app, token(ADMIN, "127.0.0.1")).await;
    assert_eq!(
        (s, b["error"]["reason_code"].clone()),
        (429, serde_json::json!("rate_limited"))
    );
    // _authenticate is not limited (a bearer or Basic check does no work for the caller).
    for _ in 0..30 {
        let (s, _, _) = send(&app, authenticate(FACILITATOR, "127.0.0.1")).await;
        assert_eq!(s, 200);
    }
    // A reload that changes the limits applies them at once: 0 turns them off.
    let mut s = (*t.state.runtime().settings).clone();
    s.limits.requests_per_caller = 0;
    s.limits.requests_per_address = 0;
    t.state.swap_settings(s, Vec::new()).unwrap();
    let (s, _, _) = send(&app, token(FACILITATOR, "127.0.0.1")).await;
    assert_eq!(s, 200);
}

/// `limits.password_checks_*`: a low configured burst refuses the next full verification
/// from the address; a reload applies new values at once (0: no limit) and keeps the
/// allowance used so far when they did not change.
#[actix_web::test]
async fn the_password_check_allowance_is_configurable_and_reloadable() {
    let mut s = settings();
    // A refill of 1/s: one verification per second after the burst of 1, so the second
    // request below is refused however slow the machine (unless it takes a whole second).
    s.limits.password_checks_per_second = 1;
    s.limits.password_checks_burst = 1;
    let t = TestApp::with(
        s,
        std::sync::Arc::new(oidc_realm::store::MemoryStore::new()),
    );
    let app = t.service().await;
    let wrong = (FACILITATOR.0, "wrong");
    let (s, _, b) = send(&app, authenticate(wrong, "127.0.0.5")).await;
    assert_eq!(s, 401, "{b}");
    let (s, h, b) = send(&app, authenticate(FACILITATOR, "127.0.0.5")).await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(b["error"]["reason_code"], "password_checks_throttled");
    assert!(h.contains_key("retry-after"));
    // Another address has its own allowance.
    let (s, _, _) = send(&app, authenticate(FACILITATOR, "127.0.0.6")).await;
    assert_eq!(s, 200);

    // A reload that changes something else keeps the allowance used so far.
    let mut s = (*t.state.runtime().settings).clone();
    s.limits.requests_per_caller = 100;
    t.state.swap_settings(s.clone(), Vec::new()).unwrap();
    let (s2, _, b) = send(&app, authenticate(wrong, "127.0.0.5")).await;
    assert_eq!(
        (s2, b["error"]["reason_code"].clone()),
        (429, serde_json::json!("password_checks_throttled"))
    );

    // 0: no limit.
    s.limits.password_checks_per_second = 0;
    t.state.swap_settings(s.clone(), Vec::new()).unwrap();
    for _ in 0..3 {
        let (s, _, b) = send(&app, authenticate(wrong, "127.0.0.5")).await;
        assert_eq!(s, 401, "{b}");
    }

    // Back to a limit: a fresh allowance of the configured burst.
    s.limits.password_checks_per_second = 1;
    s.limits.password_checks_burst = 2;
    t.state.swap_settings(s, Vec::new()).unwrap();
    for _ in 0..2 {
        let (s, _, b) = send(&app, authenticate(wrong, "127.0.0.5")).await;
        assert_eq!(s, 401, "{b}");
    }
    let (s, _, b) = send(&app, authenticate(wrong, "127.0.0.5")).await;
    assert_eq!(s, 429, "{b}");
}

#[test]
fn password_check_limits_are_read_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let load = |yaml: &str| oidc_realm::config::load_str(yaml, dir.path());
    let d = load("users: {}\n").unwrap().settings.limits;
    assert_eq!(
        (d.password_checks_per_second, d.password_checks_burst),
        (2, 20)
    );
    assert_eq!(
        oidc_realm::auth::caller::PASSWORD_CHECKS_BURST.get(),
        d.password_checks_burst
    );
    let l = load("limits:\n  password_checks_per_second: 0\n  password_checks_burst: 5\n")
        .unwrap()
        .settings
        .limits;
    assert_eq!(
        (l.password_checks_per_second, l.password_checks_burst),
        (0, 5)
    );
    let e = load("limits:\n  password_checks_burst: 0\n").unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].path, "limits.password_checks_burst");
    assert!(e.0[0].message.contains("between 1 and 1000000"), "{e}");
    let e = load("limits:\n  password_checks_per_second: -1\n").unwrap_err();
    assert_eq!(e.0[0].path, "limits.password_checks_per_second", "{e}");
    let e = load("limits:\n  password_check_burst: 3\n").unwrap_err();
    assert!(
        e.0[0]
            .message
            .contains("did you mean `limits.password_checks_burst`?"),
        "{e}"
    );
}
