//! The token service over the embedded redb store: real races and restarts.

mod common;

use actix_web::test::TestRequest;
use common::*;
use oidc_realm::store::{RedbStore, Store};
use serde_json::{json, Value};
use std::sync::Arc;

fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(&dir.path().join("data/oidc-realm.redb")).unwrap())
}

/// 32 connections to a server with 4 worker threads, released together, over redb (whose
/// single writer serialises the refresh transactions).
#[actix_web::test]
async fn concurrent_refreshes_race_on_redb_and_all_get_the_same_pair() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestApp::with_store(open(&dir));
    let served = Served::start(t.state.clone(), 4);
    assert_concurrent_refreshes_get_one_pair(&served.base, 32).await;
    served.stop().await;
}

#[actix_web::test]
async fn tokens_and_invalidations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, revoked) = {
        let t = TestApp::with_store(open(&dir));
        let app = t.service().await;
        let mut tokens = Vec::new();
        for _ in 0..2 {
            let (s, _, b) = send(
                &app,
                post_json(
                    "/_security/oauth2/token",
                    json!({"grant_type": "client_credentials"}),
                )
                .insert_header(basic(FACILITATOR)),
            )
            .await;
            assert_eq!(s, 200);
            tokens.push(b["access_token"].as_str().unwrap().to_string());
        }
        let (s, _, _) = send(
            &app,
            delete_json("/_security/oauth2/token", json!({"token": tokens[1]}))
                .insert_header(basic(FACILITATOR)),
        )
        .await;
        assert_eq!(s, 200);
        (tokens[0].clone(), tokens[1].clone())
        // the app, its state and the store are dropped here: the file is closed
    };
    let t = TestApp::with_store(open(&dir));
    let app = t.service().await;
    let me = |tok: &str| {
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(tok))
    };
    let (s, _, b): (u16, _, Value) = send(&app, me(&kept)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["username"], "facilitator");
    let (s, _, b) = send(&app, me(&revoked)).await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "token_expired", "{b}");
}
