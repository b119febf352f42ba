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

#[actix_web::test]
async fn concurrent_refreshes_race_on_redb_and_all_get_the_same_pair() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestApp::with_store(open(&dir));
    let app = std::rc::Rc::new(t.service().await);
    let (_, _, first) = send(
        &*app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    let r0 = first["refresh_token"].as_str().unwrap().to_string();
    let futs: Vec<_> = (0..32)
        .map(|_| {
            let app = app.clone();
            let r0 = r0.clone();
            async move {
                send_raw(
                    &*app,
                    post_json(
                        "/_security/oauth2/token",
                        json!({"grant_type": "refresh_token", "refresh_token": r0}),
                    )
                    .insert_header(basic(FACILITATOR)),
                )
                .await
            }
        })
        .collect();
    let results = futures_util::future::join_all(futs).await;
    let first_body = &results[0].1;
    for (s, b) in &results {
        assert_eq!(*s, 200);
        assert_eq!(b, first_body);
    }
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
    let (s, _, _) = send(&app, me(&revoked)).await;
    assert_eq!(s, 401);
}
