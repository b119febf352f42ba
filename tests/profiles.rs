//! User profiles through HTTP on the real `configure()`: `POST /_security/profile/_activate`
//! (as Kibana calls it after each login) and `GET /_security/profile/{uid}`.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::TestRequest;
use common::fake_op::*;
use common::login::*;
use common::*;
use oidc_realm::config::{PasswordHash, Privilege, UserEntry};
use oidc_realm::model::{Hash32, Refreshed, TokenDoc};
use oidc_realm::profiles::{self, ProfileDoc};
use oidc_realm::store::{
    FlowRecord, Invalidation, InvalidationCounts, MemoryStore, RedbStore, RefreshOutcome, Store,
    StoreError, StoredProfile,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ACTIVATE: &str = "/_security/profile/_activate";
/// A caller holding only `manage_user_profile`, as Kibana's system user would.
const KIBANA: (&str, &str) = ("kibana_system", "kibana-system-password");
/// `u_` + base64url(SHA-256("00u1abcd")), computed with Python's hashlib and base64.
const OIDC_USER_UID: &str = "u_je9njaDQdnCbpwNjz9Och3W-azIbAMMyoYn4ooYNZHA_0";
const ADMIN_UID: &str = "u_jGl25bVBBBW96Qi9Te4V37Fnqchz_Eu4qB9vKrRIqRg_0";

fn profile_settings() -> oidc_realm::config::Settings {
    let mut s = settings();
    s.users.insert(
        KIBANA.0.to_string(),
        UserEntry {
            password_hash: PasswordHash::Bcrypt(bcrypt::hash(KIBANA.1, 4).unwrap()),
            privileges: [Privilege::ManageUserProfile].into_iter().collect(),
            roles: Vec::new(),
            full_name: None,
            email: None,
        },
    );
    s
}

/// A server with realm `oidc1` on a fresh fake OP (sharing its clock) and a role mapping that
/// gives its users role `finance`.
async fn oidc_env() -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let e = env_from(profile_settings(), Arc::new(MemoryStore::new()), |op, s| {
        s.realms = vec![realm_config(op, "oidc1", 0, "code", &[])]
    })
    .await;
    let (s, b) = e
        .call(
            TestRequest::put()
                .uri("/_security/role_mapping/finance")
                .set_json(json!({
                    "enabled": true,
                    "roles": ["finance"],
                    "rules": {"field": {"groups": "finance-team"}}
                }))
                .insert_header(basic(ADMIN)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    e
}

/// A server without realms over `store` (its fake OP is not used).
async fn env_on(
    store: Arc<dyn Store>,
) -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    env_from(profile_settings(), store, |_, _| {}).await
}

impl<S, B> Env<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn activate_as(&self, who: (&str, &str), body: Value) -> (u16, Value) {
        self.call(post_json(ACTIVATE, body).insert_header(basic(who)))
            .await
    }

    async fn activate(&self, body: Value) -> (u16, Value) {
        self.activate_as(KIBANA, body).await
    }

    async fn get(&self, path_and_query: &str) -> (u16, Value) {
        self.call(
            TestRequest::get()
                .uri(&format!("/_security/profile/{path_and_query}"))
                .insert_header(basic(KIBANA)),
        )
        .await
    }

    /// A full OIDC login; the user's access token.
    async fn login(&self) -> String {
        let op = &self.op;
        let (s, p) = self
            .call(
                post_json("/_security/oidc/prepare", json!({"realm": "oidc1"}))
                    .insert_header(basic(FACILITATOR)),
            )
            .await;
        assert_eq!(s, 200, "{p}");
        let callback = op.browser_login(p["redirect"].as_str().unwrap()).await;
        let (s, b) = self
            .call(
                post_json(
                    "/_security/oidc/authenticate",
                    json!({"redirect_uri": callback, "state": p["state"], "nonce": p["nonce"]}),
                )
                .insert_header(basic(FACILITATOR)),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_string()
    }

    fn now(&self) -> i64 {
        use oidc_realm::clock::Clock;
        self.t.clock.now_millis()
    }
}

fn assert_validation(resp: &(u16, Value), reason: &str) {
    let (s, b) = resp;
    assert_eq!(*s, 400, "{b}");
    assert_eq!(
        b["error"]["type"], "action_request_validation_exception",
        "{b}"
    );
    assert_eq!(b["error"]["reason"], reason, "{b}");
}

#[actix_web::test]
async fn activate_with_an_oidc_users_token_then_again_then_later() {
    let e = oidc_env().await;
    let token = e.login().await;
    let created_at = e.now();
    let (s, p) = e
        .activate(json!({"grant_type": "access_token", "access_token": token}))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p,
        json!({
            "uid": OIDC_USER_UID,
            "enabled": true,
            "last_synchronized": created_at,
            "user": {
                "username": "00u1abcd",
                "roles": ["finance"],
                "realm_name": "oidc1",
                "email": "james.wong@staff.example.com",
                "full_name": "James Wong"
            },
            "labels": {},
            "data": {},
            "_doc": {"_primary_term": 1, "_seq_no": 0}
        })
    );
    assert_eq!(
        p["uid"].as_str().unwrap(),
        profiles::uid("00u1abcd", 0),
        "the uid shape u_<sha256>_0"
    );

    // Again within 30 s, with another login's token: the same profile, not rewritten.
    e.t.advance(Duration::from_secs(29));
    let token2 = e.login().await;
    let (s, again) = e
        .activate(json!({"grant_type": "access_token", "access_token": token2}))
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again, p);

    // 31 s after the last synchronization: rewritten.
    e.t.advance(Duration::from_secs(2));
    let (s, later) = e
        .activate(json!({"grant_type": "access_token", "access_token": token}))
        .await;
    assert_eq!(s, 200, "{later}");
    assert_eq!(later["uid"], OIDC_USER_UID);
    assert_eq!(later["_doc"], json!({"_primary_term": 1, "_seq_no": 1}));
    assert_eq!(later["last_synchronized"], created_at + 31_000);
    assert_eq!(later["user"], p["user"]);

    // Read back by uid: what activation answered.
    let (s, got) = e.get(OIDC_USER_UID).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got, json!({"profiles": [later]}));
}

#[actix_web::test]
async fn get_reports_missing_profiles_in_an_errors_block() {
    let e = env_on(Arc::new(MemoryStore::new())).await;
    let (s, admin) = e
        .activate(json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}))
        .await;
    assert_eq!(s, 200, "{admin}");
    let unknown = profiles::uid("nobody", 0);
    let (s, b) = e
        .get(&format!("{unknown},{ADMIN_UID},not-a-uid,{ADMIN_UID}"))
        .await;
    assert_eq!(s, 200, "{b}");
    let not_found =
        json!({"type": "resource_not_found_exception", "reason": "profile document not found"});
    assert_eq!(
        b,
        json!({
            "profiles": [admin],
            "errors": {
                "count": 2,
                "details": {unknown.clone(): not_found, "not-a-uid": not_found}
            }
        })
    );
    // None found: still 200.
    let (s, b) = e.get(&unknown).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["profiles"], json!([]));
    assert_eq!(b["errors"]["count"], 1);
    // Found alone: no errors block.
    let (s, b) = e.get(ADMIN_UID).await;
    assert_eq!((s, b), (200, json!({"profiles": [admin]})));
}

#[actix_web::test]
async fn data_parameter_selects_application_data() {
    let e = env_on(Arc::new(MemoryStore::new())).await;
    let body = json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1});
    let (s, p) = e.activate(body.clone()).await;
    assert_eq!(s, 200, "{p}");
    // Application data as Kibana's update-data call would leave it (written to the store).
    let store = e.t.state.tokens.store().clone();
    let stored = store.get_profile(ADMIN_UID).await.unwrap().unwrap();
    let mut doc: ProfileDoc = serde_json::from_slice(&stored.json).unwrap();
    doc.application_data.insert(
        "kibana".into(),
        json!({"avatar": {"initials": "TA"}, "theme": "dark"}),
    );
    doc.application_data.insert("other".into(), json!([1, 2]));
    doc.labels.insert("team".into(), json!("blue"));
    store
        .put_profile(
            ADMIN_UID,
            serde_json::to_vec(&doc).unwrap(),
            Some(stored.seq_no),
        )
        .await
        .unwrap();

    let (s, b) = e.get(ADMIN_UID).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["profiles"][0]["data"], json!({}));
    assert_eq!(b["profiles"][0]["labels"], json!({"team": "blue"}));
    assert_eq!(b["profiles"][0]["_doc"]["_seq_no"], 1);
    let (_, b) = e.get(&format!("{ADMIN_UID}?data=kibana")).await;
    assert_eq!(
        b["profiles"][0]["data"],
        json!({"kibana": {"avatar": {"initials": "TA"}, "theme": "dark"}})
    );
    let (_, b) = e.get(&format!("{ADMIN_UID}?data=kibana.theme,other")).await;
    assert_eq!(
        b["profiles"][0]["data"],
        json!({"kibana": {"theme": "dark"}, "other": [1, 2]})
    );
    let (_, b) = e.get(&format!("{ADMIN_UID}?data=*")).await;
    assert_eq!(
        b["profiles"][0]["data"],
        Value::Object(doc.application_data.clone())
    );
    let (_, b) = e.get(&format!("{ADMIN_UID}?data=nope")).await;
    assert_eq!(b["profiles"][0]["data"], json!({}));

    // A later activation keeps labels and data, and answers with `data: {}`.
    e.t.advance(Duration::from_secs(31));
    let (s, a) = e.activate(body).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["_doc"]["_seq_no"], 2);
    assert_eq!(a["data"], json!({}));
    assert_eq!(a["labels"], json!({"team": "blue"}));
    let (_, b) = e.get(&format!("{ADMIN_UID}?data=*")).await;
    assert_eq!(
        b["profiles"][0]["data"],
        Value::Object(doc.application_data)
    );
}

#[actix_web::test]
async fn invalid_requests_are_400_before_authorization() {
    let e = env_on(Arc::new(MemoryStore::new())).await;
    // FACILITATOR lacks manage_user_profile: 400 comes before 403.
    let v = |body: Value| e.activate_as(FACILITATOR, body);
    assert_validation(
        &v(json!({})).await,
        "Validation Failed: 1: [grant_type] is required;",
    );
    assert_validation(
        &v(json!({"access_token": "x"})).await,
        "Validation Failed: 1: [grant_type] is required;",
    );
    assert_validation(
        &v(json!({"grant_type": "client_credentials"})).await,
        "Validation Failed: 1: grant_type [client_credentials] is not supported;",
    );
    assert_validation(
        &v(json!({"grant_type": "access_token"})).await,
        "Validation Failed: 1: [access_token] is required for grant_type [access_token];",
    );
    assert_validation(
        &v(json!({"grant_type": "access_token", "access_token": "t", "username": "u", "password": "p"}))
            .await,
        "Validation Failed: 1: [username] is not supported for grant_type [access_token];2: [password] is not supported for grant_type [access_token];",
    );
    assert_validation(
        &v(json!({"grant_type": "password", "access_token": "t", "username": ""})).await,
        "Validation Failed: 1: [username] is required for grant_type [password];2: [password] is required for grant_type [password];3: [access_token] is not supported for grant_type [password];",
    );
    // Empty strings count as absent, as in Elasticsearch.
    let (s, b) = v(json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1, "access_token": ""})).await;
    assert_eq!(s, 403, "{b}");

    // Strict body.
    let (s, b) = v(json!({"grant_type": "password", "foo": 1})).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["type"], "x_content_parse_exception");
    let reason = b["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("[activate_profile_request] unknown field [foo]"),
        "{reason}"
    );
    let (s, b) = v(json!({"grant_type": 5})).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["type"], "x_content_parse_exception");

    // Unknown query parameters.
    let (s, b) = e
        .call(
            post_json(
                &format!("{ACTIVATE}?refresh=true"),
                json!({"grant_type": "password"}),
            )
            .insert_header(basic(KIBANA)),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["error"]["reason"],
        "request [/_security/profile/_activate] contains unrecognized parameter: [refresh]"
    );
    let (s, b) = e.get(&format!("{ADMIN_UID}?foo=1")).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = e.get(&format!("{ADMIN_UID}?pretty&human=true")).await;
    assert_eq!(s, 200, "{b}");

    // Other methods.
    let (s, b) = e
        .call(
            TestRequest::delete()
                .uri(&format!("/_security/profile/{ADMIN_UID}"))
                .insert_header(basic(KIBANA)),
        )
        .await;
    assert_eq!(s, 405, "{b}");
    let (s, b) = e
        .call(
            TestRequest::get()
                .uri(ACTIVATE)
                .insert_header(basic(KIBANA)),
        )
        .await;
    assert_eq!(s, 405, "{b}");
}

#[actix_web::test]
async fn callers_without_manage_user_profile_get_403() {
    let e = oidc_env().await;
    let token = e.login().await;
    let body = json!({"grant_type": "access_token", "access_token": token});
    for who in [FACILITATOR, OIDC_ONLY] {
        let (s, b) = e.activate_as(who, body.clone()).await;
        assert_eq!(s, 403, "{b}");
        assert_eq!(
            b["error"]["reason"],
            format!("action [cluster:admin/xpack/security/profile/activate] is unauthorized for user [{}] with effective roles [], this action is granted by the cluster privileges [manage_user_profile,manage_security,all]", who.0)
        );
        let (s, b) = e
            .call(
                TestRequest::get()
                    .uri(&format!("/_security/profile/{OIDC_USER_UID}"))
                    .insert_header(basic(who)),
            )
            .await;
        assert_eq!(s, 403, "{b}");
        assert!(b["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("cluster:admin/xpack/security/profile/get"));
    }
    // The OIDC user's own token is no profile-managing caller either.
    let (s, b) = e
        .call(post_json(ACTIVATE, body.clone()).insert_header(bearer(&token)))
        .await;
    assert_eq!(s, 403, "{b}");
    // No profile was written by any of these.
    let (_, b) = e.get(OIDC_USER_UID).await;
    assert_eq!(b["profiles"], json!([]));
    // Unauthenticated: 401.
    let (s, b) = e.call(post_json(ACTIVATE, body.clone())).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "credentials_missing", "{b}");
    // manage_security and all grant it.
    let (s, b) = e.activate_as(ADMIN, body).await;
    assert_eq!(s, 200, "{b}");
}

#[actix_web::test]
async fn bad_access_tokens_are_refused_like_bearer_callers() {
    let e = oidc_env().await;
    let token = e.login().await;
    let activate = |t: &str| e.activate(json!({"grant_type": "access_token", "access_token": t}));

    let (s, b) = activate("not a token").await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "token_malformed", "{b}");
    // The same refusal as presenting it as a bearer caller.
    let (s2, b2) = e
        .call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer("not a token")),
        )
        .await;
    assert_eq!((s2, &b2["error"]["reason"]), (s, &b["error"]["reason"]));
    let (s, b) = activate("line\nbreak").await;
    assert_eq!(s, 401, "{b}");

    // Invalidated.
    let token2 = e.login().await;
    let (s, b) = e
        .call(
            delete_json("/_security/oauth2/token", json!({"token": token2}))
                .insert_header(basic(FACILITATOR)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = activate(&token2).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "token_expired", "{b}");

    // Expired (access tokens live 20 minutes here).
    e.t.advance(Duration::from_secs(20 * 60 + 1));
    let (s, b) = activate(&token).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "token_expired", "{b}");
    let www = b["error"]["header"]["WWW-Authenticate"][0]
        .as_str()
        .unwrap();
    assert!(www.contains("invalid_token"), "{www}");
    // Nothing was activated.
    let (_, b) = e.get(OIDC_USER_UID).await;
    assert_eq!(b["profiles"], json!([]));
}

#[actix_web::test]
async fn password_grant_activates_a_configured_user() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("p.redb")).unwrap());
    let e = env_on(store).await;
    let (s, p) = e
        .activate(json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p,
        json!({
            "uid": ADMIN_UID,
            "enabled": true,
            "last_synchronized": e.now(),
            "user": {
                "username": "admin",
                "roles": [],
                "realm_name": "default_file",
                "email": "admin@example.com",
                "full_name": "The Admin"
            },
            "labels": {},
            "data": {},
            "_doc": {"_primary_term": 1, "_seq_no": 0}
        })
    );
    // A user without email or full name: the keys are absent.
    let (s, p) = e
        .activate(
            json!({"grant_type": "password", "username": FACILITATOR.0, "password": FACILITATOR.1}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p["user"],
        json!({"username": "facilitator", "roles": [], "realm_name": "default_file"})
    );
    assert_eq!(p["uid"], profiles::uid("facilitator", 0));

    // Wrong password or unknown user: 401, nothing written.
    for (u, pw) in [(ADMIN.0, "wrong"), ("nobody", "x")] {
        let (s, b) = e
            .activate(json!({"grant_type": "password", "username": u, "password": pw}))
            .await;
        assert_eq!(s, 401, "{b}");
        assert_eq!(
            b["error"]["reason"],
            format!("unable to authenticate user [{u}] for action [cluster:admin/xpack/security/profile/activate]")
        );
    }
    let (_, b) = e.get(&profiles::uid("nobody", 0)).await;
    assert_eq!(b["profiles"], json!([]));
    let (_, b) = e.get(ADMIN_UID).await;
    assert_eq!(b["profiles"][0]["user"]["username"], "admin");
}

/// A store in which another writer replaces a profile just before the next profile write (as a
/// concurrent activation on another worker would).
#[derive(Debug, Default)]
struct Interfering {
    inner: MemoryStore,
    rival: Mutex<Option<(String, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl Store for Interfering {
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
    async fn insert_flow(&self, h: &Hash32, f: FlowRecord) -> Result<(), StoreError> {
        self.inner.insert_flow(h, f).await
    }
    async fn take_flow(&self, h: &Hash32, now: i64) -> Result<Option<FlowRecord>, StoreError> {
        self.inner.take_flow(h, now).await
    }
    async fn sweep_expired(&self, now: i64, limit: usize) -> Result<usize, StoreError> {
        self.inner.sweep_expired(now, limit).await
    }
    async fn get_profile(&self, uid: &str) -> Result<Option<StoredProfile>, StoreError> {
        self.inner.get_profile(uid).await
    }
    async fn put_profile(
        &self,
        uid: &str,
        json: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let rival = self.rival.lock().unwrap().take();
        if let Some((rival_uid, rival_json)) = rival {
            let current = self.inner.get_profile(&rival_uid).await?.map(|p| p.seq_no);
            self.inner
                .put_profile(&rival_uid, rival_json, current)
                .await?;
        }
        self.inner.put_profile(uid, json, expected).await
    }
}

#[actix_web::test]
async fn a_concurrent_write_is_a_409_to_retry() {
    let store = Arc::new(Interfering::default());
    let e = env_on(store.clone()).await;
    let body = json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1});
    let (s, p) = e.activate(body.clone()).await;
    assert_eq!(s, 200, "{p}");

    // Someone else rewrites the profile with other content while this activation updates it.
    let stored = store.get_profile(ADMIN_UID).await.unwrap().unwrap();
    let mut rival: ProfileDoc = serde_json::from_slice(&stored.json).unwrap();
    rival.user.roles = vec!["changed-meanwhile".into()];
    rival.last_synchronized += 1;
    *store.rival.lock().unwrap() = Some((ADMIN_UID.into(), serde_json::to_vec(&rival).unwrap()));
    e.t.advance(Duration::from_secs(31));
    let (s, b) = e.activate(body.clone()).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["status"], 409);
    assert_eq!(b["error"]["type"], "version_conflict_engine_exception");
    assert_eq!(
        b["error"]["root_cause"][0]["type"],
        "version_conflict_engine_exception"
    );
    assert!(
        b["error"]["reason"].as_str().unwrap().contains(ADMIN_UID),
        "{b}"
    );
    assert!(b["error"]["correlation_id"].is_string(), "{b}");

    // Kibana retries: now it goes through.
    let (s, b) = e.activate(body.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["_doc"]["_seq_no"], 2);
    assert_eq!(b["user"]["roles"], json!([]));

    // A concurrent write that already says what this activation would: answered with it.
    let stored = store.get_profile(ADMIN_UID).await.unwrap().unwrap();
    let mut same: ProfileDoc = serde_json::from_slice(&stored.json).unwrap();
    same.last_synchronized = e.now() + 31_000;
    *store.rival.lock().unwrap() = Some((ADMIN_UID.into(), serde_json::to_vec(&same).unwrap()));
    e.t.advance(Duration::from_secs(31));
    let (s, b) = e.activate(body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["_doc"]["_seq_no"], 3);
    assert_eq!(b["last_synchronized"], same.last_synchronized);
}
