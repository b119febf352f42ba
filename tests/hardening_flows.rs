//! Issue 10, findings 2 and 6: pending logins are limited per caller (expired ones never
//! count), "too many pending logins" is its own answer (429), a login can only be consumed by
//! the facilitator that prepared it (another one presenting its state leaves it usable), and
//! the implicit `id_token token` flow requires `token_type=Bearer`.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use common::fake_op::*;
use common::login::*;
use common::*;
use oidc_realm::model::{Hash32, Refreshed, TokenDoc};
use oidc_realm::store::{
    FlowCondition, FlowInsert, FlowLimits, FlowRecord, FlowTake, Invalidation, InvalidationCounts,
    MemoryStore, RefreshOutcome, Store, StoreError,
};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The per-caller quota the server runs with when none is configured.
const QUOTA: usize = oidc_realm::config::DEFAULT_PENDING_LOGINS_PER_CALLER;

/// This file's authenticate requests, by the login they finish.
impl<S, B> Env<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn authenticate_req(
        &self,
        who: (&str, &str),
        callback: &str,
        login: &Login,
        realm: Option<&str>,
    ) -> (u16, Value) {
        let (s, _, b) = self
            .authenticate_full(who, callback, &login.state, &login.nonce, realm)
            .await;
        (s, b)
    }

    async fn authenticate_as(
        &self,
        who: (&str, &str),
        login: &Login,
        realm: Option<&str>,
    ) -> (u16, Value) {
        self.authenticate_req(who, &login.callback, login, realm)
            .await
    }
}

fn assert_refused(resp: &(u16, Value), code: &str) {
    let (s, b) = resp;
    assert_eq!(*s, 401, "{b}");
    assert_eq!(b["error"]["type"], "security_exception", "{b}");
    assert_eq!(b["error"]["reason_code"], code, "{b}");
}

fn assert_logged_in(resp: &(u16, Value)) {
    let (s, b) = resp;
    assert_eq!(*s, 200, "{b}");
    assert_eq!(b["username"], "00u1abcd", "{b}");
}

// ---------------------------------------------------------------------------------------
// Finding 2: another facilitator cannot consume a login

#[actix_web::test]
async fn a_foreign_caller_presenting_a_state_leaves_the_login_usable() {
    let e = env("code", &[]).await;
    let a = e.start_login_as(FACILITATOR).await;
    // Facilitator B learnt A's state, nonce and callback: refused, with and without a realm,
    // with A's realm or another one, as often as it likes...
    for realm in [Some("oidc1"), None, Some("oidc2"), Some("oidc1")] {
        assert_refused(
            &e.authenticate_as(OTHER_FACILITATOR, &a, realm).await,
            "flow_other_caller",
        );
    }
    // ...and A asking for another realm does not consume it either...
    assert_refused(
        &e.authenticate_as(FACILITATOR, &a, Some("oidc2")).await,
        "flow_other_realm",
    );
    assert_eq!(e.op.hits("/token"), 0, "no code was exchanged");
    // ...so A's login still goes through, once.
    assert_logged_in(&e.authenticate_as(FACILITATOR, &a, Some("oidc1")).await);
    assert_refused(
        &e.authenticate_as(FACILITATOR, &a, Some("oidc1")).await,
        "flow_unknown",
    );
    assert_refused(
        &e.authenticate_as(OTHER_FACILITATOR, &a, Some("oidc1"))
            .await,
        "flow_unknown",
    );
}

#[actix_web::test]
async fn concurrent_authenticates_of_one_login_succeed_once_and_never_for_another_caller() {
    let e = env("code", &[]).await;
    for _ in 0..8 {
        let a = e.start_login_as(FACILITATOR).await;
        let (r1, rb, r2, r3) = futures_util::future::join4(
            e.authenticate_as(FACILITATOR, &a, Some("oidc1")),
            e.authenticate_as(OTHER_FACILITATOR, &a, Some("oidc1")),
            e.authenticate_as(FACILITATOR, &a, None),
            e.authenticate_as(FACILITATOR, &a, Some("oidc1")),
        )
        .await;
        let ok = [&r1, &r2, &r3].iter().filter(|r| r.0 == 200).count();
        assert_eq!(ok, 1, "{r1:?} {r2:?} {r3:?}");
        for r in [&r1, &r2, &r3] {
            if r.0 != 200 {
                assert_refused(r, "flow_unknown");
            }
        }
        // B never gets it; it learns at most that the login is gone.
        assert_eq!(rb.0, 401, "{rb:?}");
        let code = rb.1["error"]["reason_code"].as_str().unwrap().to_string();
        assert!(
            code == "flow_other_caller" || code == "flow_unknown",
            "{code}"
        );
    }
    assert_eq!(e.op.hits("/token"), 8, "one code exchange per login");
}

// ---------------------------------------------------------------------------------------
// Finding 2: per-caller quota of pending logins

#[actix_web::test]
async fn one_caller_at_its_quota_does_not_block_another_and_expired_logins_do_not_count() {
    let e = env("code", &[]).await;
    let first = e.start_login_as(FACILITATOR).await;
    for n in 1..QUOTA {
        let (s, _, b) = e.prepare_as(FACILITATOR).await;
        assert_eq!(s, 200, "prepare {n}: {b}");
    }
    // A is at its quota: refused with its own answer, not a store outage.
    let (s, headers, b) = e.prepare_as(FACILITATOR).await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(b["status"], 429, "{b}");
    assert_eq!(b["error"]["type"], "es_rejected_execution_exception", "{b}");
    assert_eq!(
        b["error"]["root_cause"][0]["type"], "es_rejected_execution_exception",
        "{b}"
    );
    assert_eq!(b["error"]["reason_code"], "too_many_pending_logins", "{b}");
    let reason = b["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("pending logins"), "{reason}");
    assert!(reason.contains(&QUOTA.to_string()), "{reason}");
    let retry_after: u64 = headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    assert!(headers.get("x-correlation-id").is_some());

    // Facilitator B is not affected: it prepares and completes logins.
    let b_login = e.start_login_as(OTHER_FACILITATOR).await;
    assert_logged_in(&e.authenticate_as(OTHER_FACILITATOR, &b_login, None).await);

    // A finishing one of its logins frees one slot.
    assert_logged_in(&e.authenticate_as(FACILITATOR, &first, None).await);
    assert_eq!(e.prepare_as(FACILITATOR).await.0, 200);
    assert_eq!(e.prepare_as(FACILITATOR).await.0, 429);

    // Expired logins never count, swept or not: 10 minutes later A has its whole quota again.
    e.t.advance(Duration::from_secs(601));
    e.op.set_now(e.op.now_secs());
    for n in 0..QUOTA {
        let (s, _, b) = e.prepare_as(FACILITATOR).await;
        assert_eq!(s, 200, "prepare {n} after expiry: {b}");
    }
    assert_eq!(e.prepare_as(FACILITATOR).await.0, 429);
    let b_login = e.start_login_as(OTHER_FACILITATOR).await;
    assert_logged_in(&e.authenticate_as(OTHER_FACILITATOR, &b_login, None).await);
}

// ---------------------------------------------------------------------------------------
// Finding 6: `id_token token` requires token_type=Bearer

/// The callback with the fragment's `token_type` removed (`None`) or replaced.
fn with_token_type(callback: &str, token_type: Option<&str>) -> String {
    let (base, fragment) = callback.split_once('#').expect("a fragment");
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(fragment.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "token_type")
        .collect();
    assert!(pairs.iter().any(|(k, _)| k == "access_token"), "{callback}");
    if let Some(t) = token_type {
        pairs.push(("token_type".into(), t.into()));
    }
    let fragment = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}#{fragment}")
}

#[actix_web::test]
async fn implicit_id_token_token_requires_a_bearer_token_type() {
    let e = env("id_token token", &[]).await;
    for (token_type, refused) in [
        (None, true),
        (Some(""), true),
        (Some("mac"), true),
        (Some("Bearer "), true),
        (Some("Bearer"), false),
        (Some("bearer"), false),
        (Some("BEARER"), false),
    ] {
        let login = e.start_login_as(FACILITATOR).await;
        assert!(
            login.callback.contains("token_type=Bearer"),
            "{}",
            login.callback
        );
        let callback = with_token_type(&login.callback, token_type);
        let resp = e
            .authenticate_req(FACILITATOR, &callback, &login, Some("oidc1"))
            .await;
        if refused {
            assert_refused(&resp, "unsupported_token_type");
        } else {
            assert_logged_in(&resp);
        }
    }
    assert_eq!(
        e.op.hits("/userinfo"),
        3,
        "the OP access token is used only when its type is Bearer"
    );
}

// ---------------------------------------------------------------------------------------
// Finding 2: a real store outage is still a 503, not "too many pending logins"

/// A memory store whose pending-login table is down, or hands out tampered records.
#[derive(Debug, Default)]
struct FlowsDown {
    inner: MemoryStore,
    /// Instead of being down: flip a bit of every taken record's sealed part.
    tampered: bool,
}

fn down() -> StoreError {
    StoreError::Unavailable("flow table unreachable".into())
}

#[async_trait::async_trait]
impl Store for FlowsDown {
    async fn insert_token(&self, doc: TokenDoc) -> Result<(), StoreError> {
        self.inner.insert_token(doc).await
    }
    async fn get_by_access(&self, h: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.inner.get_by_access(h).await
    }
    async fn get_by_refresh(&self, h: &Hash32) -> Result<Option<TokenDoc>, StoreError> {
        self.inner.get_by_refresh(h).await
    }
    async fn refresh(
        &self,
        h: &Hash32,
        r: Refreshed,
        d: TokenDoc,
    ) -> Result<RefreshOutcome, StoreError> {
        self.inner.refresh(h, r, d).await
    }
    async fn invalidate(&self, w: Invalidation) -> Result<InvalidationCounts, StoreError> {
        self.inner.invalidate(w).await
    }
    async fn insert_flow_within(
        &self,
        h: &Hash32,
        f: FlowRecord,
        l: &FlowLimits,
        now: i64,
    ) -> Result<FlowInsert, StoreError> {
        if !self.tampered {
            return Err(down());
        }
        self.inner.insert_flow_within(h, f, l, now).await
    }
    async fn take_flow_if(
        &self,
        h: &Hash32,
        now: i64,
        c: &FlowCondition,
    ) -> Result<FlowTake, StoreError> {
        if !self.tampered {
            return Err(down());
        }
        match self.inner.take_flow_if(h, now, c).await? {
            FlowTake::Taken(mut record) => {
                *record.sealed.last_mut().unwrap() ^= 1;
                Ok(FlowTake::Taken(record))
            }
            other => Ok(other),
        }
    }
    async fn sweep_expired(&self, now: i64, limit: usize) -> Result<usize, StoreError> {
        self.inner.sweep_expired(now, limit).await
    }
    async fn put_role_mapping(&self, name: &str, json: Vec<u8>) -> Result<bool, StoreError> {
        self.inner.put_role_mapping(name, json).await
    }
    async fn get_role_mappings(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.get_role_mappings().await
    }
    async fn delete_role_mapping(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.delete_role_mapping(name).await
    }
}

#[actix_web::test]
async fn a_store_outage_is_a_503_not_a_quota_refusal() {
    let op = FakeOp::start().await;
    let mut s = settings();
    s.realms = vec![realm_config(&op, "oidc1", 0, "code", &[])];
    let t = TestApp::with(s, Arc::new(FlowsDown::default()));
    op.use_clock(t.clock.clone());
    let app = t.service().await;
    let (s, headers, b) = send(
        &app,
        post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["type"], "unavailable_shards_exception", "{b}");
    assert_eq!(b["error"]["reason_code"], "store_unavailable", "{b}");
    assert!(headers.get("retry-after").is_none());
    let (s, _, b) = send(
        &app,
        post_json(
            "/_security/oidc/authenticate",
            json!({"redirect_uri": format!("{REDIRECT_URI}?code=c&state=s"), "state": "s", "nonce": "n"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["error"]["reason_code"], "store_unavailable", "{b}");
}

/// A pending login whose stored record was altered is refused with its own code (not as an
/// unknown state), and consumed.
#[actix_web::test]
async fn a_tampered_pending_login_is_refused_as_corrupt() {
    let op = FakeOp::start().await;
    let mut s = settings();
    s.realms = vec![realm_config(&op, "oidc1", 0, "code", &[])];
    let t = TestApp::with(
        s,
        Arc::new(FlowsDown {
            tampered: true,
            ..FlowsDown::default()
        }),
    );
    op.use_clock(t.clock.clone());
    let app = t.service().await;
    let (s, _, p) = send(
        &app,
        post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    let state = p["state"].as_str().unwrap();
    let body = json!({
        "redirect_uri": format!("{REDIRECT_URI}?code=c&state={state}"),
        "state": state,
        "nonce": p["nonce"],
        "realm": "oidc1",
    });
    let authenticate = || {
        post_json("/_security/oidc/authenticate", body.clone()).insert_header(basic(FACILITATOR))
    };
    let (s, _, b) = send(&app, authenticate()).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "flow_corrupt", "{b}");
    assert_eq!(
        b["error"]["reason"],
        "unable to authenticate user [<OIDC Token>] for action [cluster:admin/xpack/security/oidc/authenticate]"
    );
    assert_eq!(op.hits("/token"), 0, "no code exchange for a corrupt login");
    // Consumed: the same state again is unknown.
    let (s, _, b) = send(&app, authenticate()).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "flow_unknown", "{b}");
}

#[actix_web::test]
async fn the_quotas_come_from_the_configuration_and_a_reload() {
    let e = env("code", &[]).await;
    let mut s = (*e.t.state.runtime().settings).clone();
    s.limits.pending_logins_per_caller = 2;
    s.limits.pending_logins = 3;
    e.t.state.swap_settings(s, Vec::new()).unwrap();
    for _ in 0..2 {
        assert_eq!(e.prepare_as(FACILITATOR).await.0, 200);
    }
    let (s, _, b) = e.prepare_as(FACILITATOR).await;
    assert_eq!(
        (s, b["error"]["reason_code"].clone()),
        (429, json!("too_many_pending_logins"))
    );
    // Another caller has its own quota, up to the total of 3.
    assert_eq!(e.prepare_as(OTHER_FACILITATOR).await.0, 200);
    let (s, _, b) = e.prepare_as(OTHER_FACILITATOR).await;
    assert_eq!(s, 429, "{b}");
    assert!(
        b["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("on this server"),
        "{b}"
    );
    // From YAML, with its checks.
    let l = oidc_realm::config::load_str(
        "limits:\n  pending_logins_per_caller: 5\n  pending_logins: 50\n",
        &std::env::temp_dir(),
    )
    .unwrap();
    assert_eq!(l.settings.limits.pending_logins_per_caller, 5);
    assert_eq!(l.settings.limits.pending_logins, 50);
    let err = oidc_realm::config::load_str(
        "limits:\n  pending_logins_per_caller: 60\n  pending_logins: 50\n",
        &std::env::temp_dir(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "limits.pending_logins_per_caller: must not exceed limits.pending_logins (50)"
        ),
        "{err}"
    );
    let err = oidc_realm::config::load_str("limits:\n  pending_login: 5\n", &std::env::temp_dir())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("did you mean `limits.pending_logins`"),
        "{err}"
    );
}

/// A login may carry at most 500 top-level claims (ID token and UserInfo merged): more are
/// refused before any of them is mapped or stored in a token record.
#[actix_web::test]
async fn a_login_with_more_claims_than_the_bound_is_refused() {
    let e = env("code", &[]).await;
    let extra = |n: usize| {
        (0..n)
            .map(|i| (format!("extra_{i}"), json!(i)))
            .collect::<serde_json::Map<String, Value>>()
    };
    // Well within the bound: a normal login, every claim in the metadata.
    e.op.set(|k| k.userinfo_claims = extra(400));
    let login = e.start_login().await;
    let resp = e.authenticate_as(FACILITATOR, &login, Some("oidc1")).await;
    assert_logged_in(&resp);
    assert_eq!(
        resp.1["authentication"]["metadata"]["oidc(extra_399)"],
        json!(399)
    );
    // 500 more from UserInfo: over the bound whatever the ID token carries.
    e.op.set(|k| k.userinfo_claims = extra(500));
    let login = e.start_login().await;
    let resp = e.authenticate_as(FACILITATOR, &login, Some("oidc1")).await;
    assert_refused(&resp, "too_many_claims");
}
