//! Live operations: key rotation (URL and file JWKS) and configuration reload without a
//! restart, against the fake OP with the manual clock. Reloads are driven by calling
//! `reload::reload_from` directly, except where the file watcher itself is under test; there
//! the tests poll (bounded, 5 s) instead of sleeping a fixed time.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::TestRequest;
use common::fake_op::*;
use common::*;
use oidc_realm::app::AppState;
use oidc_realm::clock::ManualClock;
use oidc_realm::reload::{self, WatchOptions};
use oidc_realm::store::MemoryStore;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const PW: &str = "facilitator-password";

/// A config file with one facilitator (cheap bcrypt) and these realm blocks.
fn config_text(realm_blocks: &[String], extra_top: &str) -> String {
    let hash = bcrypt::hash(PW, 4).unwrap();
    let mut s = format!(
        "{extra_top}users:\n  facilitator:\n    password_hash: \"{hash}\"\n    privileges: [manage_oidc, manage_token]\nrealms:\n"
    );
    for b in realm_blocks {
        s.push_str(b);
    }
    s
}

fn jwks_of(keys: &[(&str, KeyChoice)]) -> String {
    let keys: Vec<Value> = keys.iter().map(|(k, c)| c.public_jwk(Some(k))).collect();
    json!({ "keys": keys }).to_string()
}

/// Write `text` to `path` the way editors and config management do: a temporary file, then
/// a rename over the old one.
fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Env<S> {
    dir: tempfile::TempDir,
    state: Arc<AppState>,
    clock: Arc<ManualClock>,
    op: FakeOp,
    app: S,
}

/// Write `config.yml` (from `config(op, dir)`) into a fresh directory, load it as `serve`
/// does, and build the app over it.
async fn env(
    config: impl FnOnce(&FakeOp, &Path) -> String,
) -> Env<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let op = FakeOp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config(&op, dir.path())).unwrap();
    let loaded = oidc_realm::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::at(1_790_000_000_000);
    let state = AppState::new(
        loaded.settings,
        loaded.warnings,
        Arc::new(MemoryStore::new()),
        clock.clone(),
    );
    state.reload_log().set_source(&path, loaded.files);
    op.use_clock(clock.clone());
    let app = actix_web::test::init_service(
        actix_web::App::new().configure(oidc_realm::configure(state.clone())),
    )
    .await;
    Env {
        dir,
        state,
        clock,
        op,
        app,
    }
}

impl<S, B> Env<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_path(&self) -> PathBuf {
        self.path("config.yml")
    }

    async fn call(&self, req: TestRequest) -> (u16, Value) {
        let (s, _, b) = send(&self.app, req).await;
        (s, b)
    }

    async fn prepare(&self, realm: &str) -> (u16, Value) {
        self.call(
            post_json("/_security/oidc/prepare", json!({ "realm": realm }))
                .insert_header(basic(("facilitator", PW))),
        )
        .await
    }

    async fn authenticate(&self, realm: &str, callback: &str, p: &Value) -> (u16, Value) {
        self.call(
            post_json(
                "/_security/oidc/authenticate",
                json!({"redirect_uri": callback, "state": p["state"], "nonce": p["nonce"], "realm": realm}),
            )
            .insert_header(basic(("facilitator", PW))),
        )
        .await
    }

    /// prepare → the OP → authenticate.
    async fn login_to(&self, realm: &str) -> (u16, Value) {
        let (s, p) = self.prepare(realm).await;
        if s != 200 {
            return (s, p);
        }
        let callback = self.op.browser_login(p["redirect"].as_str().unwrap()).await;
        self.authenticate(realm, &callback, &p).await
    }

    async fn login(&self) -> (u16, Value) {
        self.login_to("oidc1").await
    }

    async fn status(&self) -> Value {
        let (s, b) = self
            .call(
                TestRequest::get()
                    .uri("/_security/oidc/_status")
                    .insert_header(basic(("facilitator", PW))),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    fn reload(&self) -> Result<u64, Vec<String>> {
        reload::reload_from(&self.state, &self.config_path()).map_err(|e| e.messages())
    }

    fn rewrite_config(&self, text: &str) {
        write_by_rename(&self.config_path(), text);
    }

    /// Poll the status API until `pred` holds, for at most 5 s.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let st = self.status().await;
            if pred(&st) {
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; status: {st:#}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn reason_code(b: &Value) -> &str {
    b["error"]["reason_code"].as_str().unwrap_or("")
}

fn kids(st: &Value, realm: &str) -> Vec<String> {
    st["realms"][realm]["jwks"]["kids"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One realm on the OP's JWKS URL.
fn url_realm(op: &FakeOp, _dir: &Path) -> String {
    config_text(&[realm_yaml(op, "oidc1", 0, "code", &[])], "")
}

/// One realm on a JWKS file `jwks.json` holding the OP's rsa1 key.
fn file_realm(op: &FakeOp, dir: &Path) -> String {
    std::fs::write(dir.join("jwks.json"), jwks_of(&[("rsa1", KeyChoice::Rsa1)])).unwrap();
    config_text(
        &[realm_yaml(
            op,
            "oidc1",
            0,
            "code",
            &[("op.jwkset_path", "jwks.json")],
        )],
        "",
    )
}

// ------------------------------------------------------------------------------------------
// JWKS URL

#[actix_web::test]
async fn url_rotation_is_picked_up_on_the_next_login_without_restart() {
    let e = env(url_realm).await;
    assert_eq!(e.login().await.0, 200);
    assert_eq!(e.op.jwks_fetches(), 1);
    e.clock.advance(Duration::from_secs(31));
    e.op.rotate_to("rsa2", KeyChoice::Rsa2, false);
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(e.op.jwks_fetches(), 2);
    assert_eq!(kids(&e.status().await, "oidc1"), vec!["rsa2"]);
}

#[actix_web::test]
async fn periodic_refresh_picks_up_a_rotation_after_the_interval() {
    let e = env(|op, _| {
        config_text(
            &[realm_yaml(
                op,
                "oidc1",
                0,
                "code",
                &[("op.jwkset_reload_interval", "10m")],
            )],
            "",
        )
    })
    .await;
    assert_eq!(e.login().await.0, 200);
    assert_eq!(e.op.jwks_fetches(), 1);
    // The OP publishes the next key ahead of using it.
    e.op.set_jwks(&[("rsa1", KeyChoice::Rsa1), ("rsa2", KeyChoice::Rsa2)]);
    e.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(reload::refresh_jwks(&e.state).await, 0, "not due yet");
    assert_eq!(e.op.jwks_fetches(), 1);
    e.clock.advance(Duration::from_secs(60));
    assert_eq!(reload::refresh_jwks(&e.state).await, 1);
    assert_eq!(e.op.jwks_fetches(), 2);
    let st = e.status().await;
    assert_eq!(kids(&st, "oidc1"), vec!["rsa1", "rsa2"]);
    assert_eq!(
        st["realms"]["oidc1"]["jwks"]["reload_interval_seconds"],
        600
    );
    // Then switches: the login needs no fetch.
    e.op.rotate_to("rsa2", KeyChoice::Rsa2, true);
    assert_eq!(e.login().await.0, 200);
    assert_eq!(e.op.jwks_fetches(), 2);
}

#[actix_web::test]
async fn unreachable_jwks_url_keeps_the_old_keys() {
    let e = env(url_realm).await;
    assert_eq!(e.login().await.0, 200);
    e.op.set(|k| k.jwks_status = 500);
    e.clock.advance(Duration::from_secs(3601));
    assert_eq!(reload::refresh_jwks(&e.state).await, 1);
    let st = e.status().await;
    let j = &st["realms"]["oidc1"]["jwks"];
    assert!(j["last_error"].as_str().unwrap().contains("500"), "{j}");
    assert!(j["last_error_at"].is_string(), "{j}");
    assert_eq!(kids(&st, "oidc1"), vec!["rsa1", "ec256", "ec384", "ec521"]);
    // A failed refresh is retried after the minimum interval, not on every tick.
    assert_eq!(reload::refresh_jwks(&e.state).await, 0);
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    // The OP comes back: the next due refresh clears the error.
    e.op.set(|k| k.jwks_status = 200);
    e.clock.advance(Duration::from_secs(31));
    assert_eq!(reload::refresh_jwks(&e.state).await, 1);
    assert!(e.status().await["realms"]["oidc1"]["jwks"]["last_error"].is_null());
}

#[actix_web::test]
async fn random_kids_cause_at_most_one_fetch_per_min_interval() {
    let e = env(|op, _| config_text(&[realm_yaml(op, "oidc1", 0, "id_token", &[])], "")).await;
    // A valid implicit login (fetches the set once).
    let implicit = |kid: Option<String>| {
        let e = &e;
        async move {
            let (s, p) = e.prepare("oidc1").await;
            assert_eq!(s, 200, "{p}");
            e.op.set(|k| {
                k.kid = match kid {
                    Some(k) => Kid::Value(k),
                    None => Kid::Auto,
                }
            });
            let tok = e.op.mint_id_token(json!({ "nonce": p["nonce"] }));
            let cb =
                fragment_redirect(&[("id_token", &tok), ("state", p["state"].as_str().unwrap())]);
            e.authenticate("oidc1", &cb, &p).await
        }
    };
    let (s, b) = implicit(None).await;
    assert_eq!(s, 200, "{b}");
    let start = e.op.jwks_fetches();
    assert_eq!(start, 1);
    let mut refused = 0;
    for i in 0..1000u32 {
        e.clock.advance(Duration::from_millis(100));
        let kid = format!("random-{i}-{}", oidc_realm::crypto::random_urlsafe(6));
        let (s, b) = implicit(Some(kid)).await;
        assert_eq!(s, 401, "{b}");
        assert_eq!(reason_code(&b), "kid_not_found", "{b}");
        refused += 1;
        if i % 100 == 0 {
            let (s, b) = implicit(None).await;
            assert_eq!(s, 200, "valid logins keep working: {b}");
        }
    }
    assert_eq!(refused, 1000);
    // 100 s of clock at one fetch per 30 s at most.
    let fetched = e.op.jwks_fetches() - start;
    assert!((1..=4).contains(&fetched), "{fetched} fetches");
}

// ------------------------------------------------------------------------------------------
// JWKS file (the real watcher)

#[actix_web::test]
async fn jwks_file_rotation_by_rename_symlink_swap_and_broken_file() {
    let e = env(|op, dir| {
        // A Kubernetes ConfigMap layout: jwks.json → ..data/jwks.json, ..data → ..v1.
        let cm = dir.join("cm");
        std::fs::create_dir_all(cm.join("..v1")).unwrap();
        std::fs::write(
            cm.join("..v1/jwks.json"),
            jwks_of(&[("k8s-1", KeyChoice::Rsa1)]),
        )
        .unwrap();
        std::os::unix::fs::symlink("..v1", cm.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/jwks.json", cm.join("jwks.json")).unwrap();
        let file = file_realm(op, dir);
        let _ = file;
        config_text(
            &[
                realm_yaml(op, "oidc1", 0, "code", &[("op.jwkset_path", "jwks.json")]),
                realm_yaml(
                    op,
                    "oidc2",
                    1,
                    "code",
                    &[("op.jwkset_path", "cm/jwks.json")],
                ),
            ],
            "",
        )
    })
    .await;
    let _w = reload::spawn_watcher(
        e.state.clone(),
        &e.config_path(),
        WatchOptions {
            sighup: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(e.login().await.0, 200);
    let st = e.status().await;
    assert_eq!(st["realms"]["oidc1"]["jwks"]["source"], "file");
    assert_eq!(kids(&st, "oidc2"), vec!["k8s-1"]);

    // 1. The OP rotates; the file is replaced by rename.
    e.op.rotate_to("rsa2", KeyChoice::Rsa2, false);
    assert_eq!(reason_code(&e.login().await.1), "kid_not_found");
    write_by_rename(&e.path("jwks.json"), &jwks_of(&[("rsa2", KeyChoice::Rsa2)]));
    let t0 = std::time::Instant::now();
    e.wait_for("the renamed JWKS file", |st| kids(st, "oidc1") == ["rsa2"])
        .await;
    // Live within a second of the rename (the login after it is the harness's time).
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");

    // 2. A file that is not a usable JWKS: reported, and the last good keys stay.
    std::fs::write(e.path("jwks.json"), "{\"keys\": [").unwrap();
    let st = e
        .wait_for("the broken JWKS file error", |st| {
            st["realms"]["oidc1"]["jwks"]["last_error"].is_string()
        })
        .await;
    assert!(st["realms"]["oidc1"]["jwks"]["last_error"]
        .as_str()
        .unwrap()
        .contains("not a usable JWKS"));
    assert_eq!(kids(&st, "oidc1"), vec!["rsa2"]);
    assert_eq!(e.login().await.0, 200);
    std::fs::write(
        e.path("jwks.json"),
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"AAAA\"}]}",
    )
    .unwrap();
    e.wait_for("the no-usable-key error", |st| {
        st["realms"]["oidc1"]["jwks"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no usable signing key"))
    })
    .await;
    assert_eq!(e.login().await.0, 200);

    // 3. A ConfigMap update: ..data swapped atomically to a new directory.
    e.op.rotate_to("k8s-2", KeyChoice::Rsa2, false);
    assert_eq!(reason_code(&e.login_to("oidc2").await.1), "kid_not_found");
    let cm = e.path("cm");
    std::fs::create_dir_all(cm.join("..v2")).unwrap();
    std::fs::write(
        cm.join("..v2/jwks.json"),
        jwks_of(&[("k8s-2", KeyChoice::Rsa2)]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    std::fs::remove_dir_all(cm.join("..v1")).unwrap();
    let t0 = std::time::Instant::now();
    e.wait_for("the ConfigMap swap", |st| kids(st, "oidc2") == ["k8s-2"])
        .await;
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let (s, b) = e.login_to("oidc2").await;
    assert_eq!(s, 200, "{b}");

    // 4. And again (the watch follows the new target directory).
    e.op.rotate_to("k8s-3", KeyChoice::Rsa1, false);
    std::fs::create_dir_all(cm.join("..v3")).unwrap();
    std::fs::write(
        cm.join("..v3/jwks.json"),
        jwks_of(&[("k8s-3", KeyChoice::Rsa1)]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v3", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    e.wait_for("the second ConfigMap swap", |st| {
        kids(st, "oidc2") == ["k8s-3"]
    })
    .await;
    assert_eq!(e.login_to("oidc2").await.0, 200);
}

// ------------------------------------------------------------------------------------------
// Configuration

#[actix_web::test]
async fn broken_yaml_leaves_the_old_realms_live_and_is_reported() {
    let e = env(url_realm).await;
    assert_eq!(e.login().await.0, 200);
    let good = std::fs::read_to_string(e.config_path()).unwrap();
    let st = e.status().await;
    assert_eq!(st["config"]["generation"], 1);
    assert!(st["config"]["last_error"].is_null());

    // A typo in a key and a bad value: every error, with its key path.
    e.rewrite_config(
        &good
            .replace("rp.client_id:", "rp.clientid:")
            .replace("rp.response_type: 'code'", "rp.response_type: 'cod'"),
    );
    let errors = e.reload().unwrap_err();
    assert!(errors.len() >= 2, "{errors:?}");
    let st = e.status().await;
    assert_eq!(st["config"]["generation"], 1);
    assert_eq!(st["config"]["last_reload"]["ok"], false);
    let reported: Vec<String> = st["config"]["last_error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(reported, errors);
    assert!(
        reported
            .iter()
            .any(|e| e.starts_with("realms.oidc1.rp.clientid")),
        "{reported:?}"
    );
    assert!(st["config"]["last_error"]["at"].is_string());
    assert_eq!(e.login().await.0, 200, "the old realm still serves");

    // A YAML syntax error too.
    e.rewrite_config("realms:\n  oidc1: [\n");
    assert!(e.reload().unwrap_err()[0].contains("YAML syntax error"));
    assert_eq!(e.login().await.0, 200);

    // Fixed: the error clears, the generation moves.
    e.rewrite_config(&good);
    assert_eq!(e.reload(), Ok(2));
    let st = e.status().await;
    assert_eq!(st["config"]["generation"], 2);
    assert!(st["config"]["last_error"].is_null());
    assert_eq!(
        st["config"]["reloads"],
        json!({"succeeded": 1, "failed": 2})
    );
    assert_eq!(e.login().await.0, 200);
}

#[actix_web::test]
async fn status_api_needs_manage_oidc_or_manage_security() {
    let e = env(|op, dir| {
        let mut t = url_realm(op, dir);
        let hash = bcrypt::hash("tok", 4).unwrap();
        t = t.replace(
            "realms:\n",
            &format!("  tokens:\n    password_hash: \"{hash}\"\n    privileges: [manage_token]\nrealms:\n"),
        );
        t
    })
    .await;
    let (s, _) = e
        .call(
            TestRequest::get()
                .uri("/_security/oidc/_status")
                .insert_header(basic(("tokens", "tok"))),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = e
        .call(TestRequest::get().uri("/_security/oidc/_status"))
        .await;
    assert_eq!(s, 401);
    let st = e.status().await;
    assert_eq!(st["realms"]["oidc1"]["jwks"]["source"], "url");
    assert_eq!(
        st["realms"]["oidc1"]["jwks"]["min_refetch_interval_seconds"],
        30
    );
    assert!(st["config"]["path"]
        .as_str()
        .unwrap()
        .ends_with("config.yml"));
}

#[actix_web::test]
async fn adding_and_removing_a_realm() {
    let e = env(url_realm).await;
    assert_eq!(e.login().await.0, 200);
    let fetches = e.op.jwks_fetches();
    let (s, b) = e.prepare("oidc2").await;
    assert_eq!(s, 400, "{b}");

    // Add oidc2.
    let two = config_text(
        &[
            realm_yaml(&e.op, "oidc1", 0, "code", &[]),
            realm_yaml(&e.op, "oidc2", 1, "code", &[]),
        ],
        "",
    );
    e.rewrite_config(&two);
    assert_eq!(e.reload(), Ok(2));
    let (s, b) = e.login_to("oidc2").await;
    assert_eq!(s, 200, "{b}");
    let oidc2_token = b["access_token"].as_str().unwrap().to_string();
    // oidc1's key set was kept across the reload: no refetch for it (oidc2 fetched once).
    assert_eq!(e.login().await.0, 200);
    assert_eq!(e.op.jwks_fetches(), fetches + 1);

    // A login to oidc2 is pending when oidc2 is removed.
    let (s, pending) = e.prepare("oidc2").await;
    assert_eq!(s, 200);
    let callback =
        e.op.browser_login(pending["redirect"].as_str().unwrap())
            .await;
    e.rewrite_config(&config_text(
        &[realm_yaml(&e.op, "oidc1", 0, "code", &[])],
        "",
    ));
    assert_eq!(e.reload(), Ok(3));
    let (s, b) = e.authenticate("oidc2", &callback, &pending).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(reason_code(&b), "realm_unknown");
    let (s, _) = e.prepare("oidc2").await;
    assert_eq!(s, 400);
    // Tokens already issued by oidc2 stay valid until they expire.
    let (s, b) = e
        .call(
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(&oidc2_token)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication_realm"]["name"], "oidc2");
    assert_eq!(e.login().await.0, 200);
}

#[actix_web::test]
async fn changed_claim_patterns_apply_to_the_next_login() {
    let e = env(url_realm).await;
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["username"], "00u1abcd");
    e.rewrite_config(&config_text(
        &[realm_yaml(
            &e.op,
            "oidc1",
            0,
            "code",
            &[
                ("claims.principal", "email"),
                ("claim_patterns.principal", r"^([^@]+)@staff\.example\.com$"),
            ],
        )],
        "",
    ));
    assert_eq!(e.reload(), Ok(2));
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["username"], "james.wong");
}

#[actix_web::test]
async fn changed_secret_file_applies_to_the_next_login_through_the_watcher() {
    let e = env(|op, dir| {
        std::fs::write(dir.join("client_secret"), format!("{CLIENT_SECRET}\n")).unwrap();
        config_text(
            &[realm_yaml(
                op,
                "oidc1",
                0,
                "code",
                &[("rp.client_secret", "${file:client_secret}")],
            )],
            "",
        )
    })
    .await;
    let _w = reload::spawn_watcher(
        e.state.clone(),
        &e.config_path(),
        WatchOptions {
            sighup: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(e.login().await.0, 200);
    // The secret is rotated at the OP first: logins fail until we have it too.
    e.op.set(|k| k.client_secret = "rotated-secret-0123456789".into());
    let (s, b) = e.login().await;
    assert_eq!(s, 401, "{b}");
    write_by_rename(&e.path("client_secret"), "rotated-secret-0123456789\n");
    e.wait_for("the secret reload", |st| st["config"]["generation"] == 2)
        .await;
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
}

#[actix_web::test]
async fn settings_that_need_a_restart_are_reported_and_keep_their_running_value() {
    let e = env(url_realm).await;
    let good = std::fs::read_to_string(e.config_path()).unwrap();
    e.rewrite_config(&format!(
        "http:\n  bind: 127.0.0.1:19999\n  max_body: 1mb\ndata:\n  path: elsewhere.redb\n  cache_size: 100mb\ntoken:\n  timeout: 5m\n  cache_size: 2mb\nlog:\n  level: debug\n{good}"
    ));
    assert_eq!(e.reload(), Ok(2));
    let rt = e.state.runtime();
    assert_eq!(rt.settings.http.bind.to_string(), "127.0.0.1:9280");
    assert_eq!(rt.settings.http.max_body, 64 * 1024);
    assert!(!rt.settings.data.path.ends_with("elsewhere.redb"));
    assert_eq!(rt.settings.data.cache_size, 8 << 20);
    assert_eq!(
        rt.settings.token.cache_size,
        oidc_realm::config::DEFAULT_TOKEN_CACHE_SIZE as u64
    );
    // Reloadable settings do apply (log.level too: it changes the running filter).
    assert_eq!(rt.settings.token.timeout, Duration::from_secs(300));
    assert_eq!(rt.settings.log.level, "debug");
    let st = e.status().await;
    let warnings: Vec<&str> = st["config"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|w| w.contains("needs a restart"))
        .collect();
    assert_eq!(warnings.len(), 5, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.starts_with("data.cache_size: ")));
    assert!(warnings.iter().any(|w| w.starts_with("token.cache_size: ")));
    assert!(warnings.iter().any(|w| w.starts_with("http.bind: ")));
    assert!(warnings.iter().any(|w| w.starts_with("http.max_body: ")));
    assert!(warnings.iter().any(|w| w.starts_with("data.path: ")));
}

#[actix_web::test]
async fn an_edited_role_mapping_file_applies_to_the_next_login_through_the_watcher() {
    let mapping = |role: &str| {
        format!(
            "finance:\n  enabled: true\n  roles: [{role}]\n  rules:\n    field: {{groups: finance-team}}\n"
        )
    };
    let e = env(|op, dir| {
        std::fs::write(dir.join("mappings.yml"), mapping("finance_data")).unwrap();
        config_text(
            &[realm_yaml(op, "oidc1", 0, "code", &[])],
            "role_mapping_files: [mappings.yml]\n",
        )
    })
    .await;
    let _w = reload::spawn_watcher(
        e.state.clone(),
        &e.config_path(),
        WatchOptions {
            sighup: false,
            ..Default::default()
        },
    )
    .unwrap();
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!(["finance_data"]));
    write_by_rename(&e.path("mappings.yml"), &mapping("finance_admin"));
    e.wait_for("the role-mapping file reload", |st| {
        st["config"]["generation"] == 2
    })
    .await;
    let (s, b) = e.login().await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!(["finance_admin"]));
}

/// Issue 10, finding 4: an HMAC key shorter than its hash is refused by reload as by
/// `check-config` (the running configuration stays, the error names the key, never the value).
#[actix_web::test]
async fn a_client_secret_too_short_for_hmac_is_refused_by_reload() {
    let e = env(url_realm).await;
    assert_eq!(e.login().await.0, 200);
    let short = "short-hmac-secret-0123456789";
    std::fs::write(e.path("client_secret"), format!("{short}\n")).unwrap();
    e.rewrite_config(&config_text(
        &[realm_yaml(
            &e.op,
            "oidc1",
            0,
            "code",
            &[
                ("rp.signature_algorithm", "[RS256, HS256]"),
                ("rp.client_secret", "${file:client_secret}"),
            ],
        )],
        "",
    ));
    let errors = e.reload().unwrap_err();
    assert!(
        errors
            .iter()
            .any(|x| x.starts_with("realms.oidc1.rp.client_secret: ")
                && x.contains("HS256")
                && x.contains("at least 32 bytes")),
        "{errors:?}"
    );
    let st = e.status().await;
    assert_eq!(st["config"]["generation"], 1);
    assert!(!st.to_string().contains(short), "{st}");
    assert_eq!(e.login().await.0, 200, "the old realm still serves");
}
