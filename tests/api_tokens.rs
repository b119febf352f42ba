//! The token service through HTTP: get, refresh, invalidate, bearer authentication.

mod common;

use actix_web::test::TestRequest;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn get_token<S, B>(app: &S, caller: (&str, &str), body: Value) -> (u16, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let (s, _, b) = send(
        app,
        post_json("/_security/oauth2/token", body).insert_header(basic(caller)),
    )
    .await;
    (s, b)
}

fn password_grant() -> Value {
    json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1})
}

#[actix_web::test]
async fn password_grant_returns_elasticsearch_response() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, body) = get_token(&app, FACILITATOR, password_grant()).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(access.starts_with("ora1_") && access.len() == 48);
    assert!(refresh.starts_with("orr1_") && refresh.len() == 48);
    assert_eq!(body["type"], "Bearer");
    assert_eq!(body["expires_in"], 1200);
    assert_eq!(body["authentication"]["username"], "admin");
    assert_eq!(body["authentication"]["authentication_type"], "realm");
    assert_eq!(
        body["authentication"]["authentication_realm"]["type"],
        "file"
    );

    // The token authenticates, as the user it was issued for, with type "token".
    let (s, _, me) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(access)),
    )
    .await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["username"], "admin");
    assert_eq!(me["authentication_type"], "token");
    assert_eq!(me["full_name"], "The Admin");
}

#[actix_web::test]
async fn client_credentials_is_for_the_caller_and_has_no_refresh_token() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, body) = get_token(
        &app,
        FACILITATOR,
        json!({"grant_type": "client_credentials"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["authentication"]["username"], "facilitator");
}

#[actix_web::test]
async fn wrong_password_in_password_grant_is_401() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, body) = get_token(
        &app,
        FACILITATOR,
        json!({"grant_type": "password", "username": "admin", "password": "nope"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["reason"],
        "unable to authenticate user [admin] for action [cluster:admin/xpack/security/token/create]"
    );
}

#[actix_web::test]
async fn grant_validation_uses_the_oauth_shape() {
    let t = TestApp::new();
    let app = t.service().await;
    let cases = [
        (json!({}), "unsupported_grant_type", "Validation Failed: 1: grant_type only supports the values: [password, _kerberos, refresh_token, client_credentials];"),
        (json!({"grant_type": "magic"}), "unsupported_grant_type", "Validation Failed: 1: grant_type only supports the values: [password, _kerberos, refresh_token, client_credentials];"),
        (json!({"grant_type": "password", "username": "admin"}), "invalid_request", "Validation Failed: 1: password is missing;"),
        (json!({"grant_type": "password"}), "invalid_request", "Validation Failed: 1: username is missing;2: password is missing;"),
        (json!({"grant_type": "password", "username": "a", "password": "b", "refresh_token": "x"}), "invalid_request", "Validation Failed: 1: refresh_token is not supported with the password grant_type;"),
        (json!({"grant_type": "refresh_token"}), "invalid_request", "Validation Failed: 1: refresh_token is missing;"),
        (json!({"grant_type": "client_credentials", "username": "a"}), "invalid_request", "Validation Failed: 1: username is not supported with the client_credentials grant_type;"),
    ];
    for (body, error, description) in cases {
        let (status, resp) = get_token(&app, FACILITATOR, body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            resp,
            json!({"error": error, "error_description": description}),
            "{body}"
        );
    }
}

async fn refresh<S, B>(app: &S, caller: (&str, &str), token: &str) -> (u16, actix_web::web::Bytes)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    send_raw(
        app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "refresh_token", "refresh_token": token}),
        )
        .insert_header(basic(caller)),
    )
    .await
}

fn invalid_grant(bytes: &[u8], description: &str) {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(
        v,
        json!({"error": "invalid_grant", "error_description": description})
    );
}

#[actix_web::test]
async fn refresh_is_single_use_with_a_30s_window_returning_the_same_pair() {
    let t = TestApp::new();
    let app = t.service().await;
    let (_, first) = get_token(&app, FACILITATOR, password_grant()).await;
    let r0 = first["refresh_token"].as_str().unwrap();

    let (s1, b1) = refresh(&app, FACILITATOR, r0).await;
    assert_eq!(s1, 200);
    let v1: Value = serde_json::from_slice(&b1).unwrap();
    assert_ne!(v1["access_token"], first["access_token"]);
    assert_ne!(v1["refresh_token"], first["refresh_token"]);

    // Within 30 s: byte-for-byte the same response.
    t.advance(Duration::from_secs(29));
    let (s2, b2) = refresh(&app, FACILITATOR, r0).await;
    assert_eq!(s2, 200);
    assert_eq!(b1, b2);

    // The new pair works; the old access token still lives until it expires (as in ES).
    for tok in [&v1["access_token"], &first["access_token"]] {
        let (s, _, _) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(tok.as_str().unwrap())),
        )
        .await;
        assert_eq!(s, 200);
    }

    // After the window: refused, and the whole family is invalidated.
    t.advance(Duration::from_secs(2));
    let (s3, b3) = refresh(&app, FACILITATOR, r0).await;
    assert_eq!(s3, 400);
    invalid_grant(
        &b3,
        "token has already been refreshed more than 30 seconds in the past",
    );
    for tok in [&v1["access_token"], &first["access_token"]] {
        let (s, h, _) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(bearer(tok.as_str().unwrap())),
        )
        .await;
        assert_eq!(s, 401);
        assert_eq!(
            h.get("www-authenticate").unwrap(),
            "Bearer realm=\"security\", error=\"invalid_token\", error_description=\"The access token expired\""
        );
    }
    let (s4, b4) = refresh(&app, FACILITATOR, v1["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s4, 400);
    invalid_grant(&b4, "token has been invalidated");
}

#[actix_web::test]
async fn concurrent_refreshes_all_get_the_same_pair() {
    let t = TestApp::new();
    let app = std::rc::Rc::new(t.service().await);
    let (_, first) = get_token(&*app, FACILITATOR, password_grant()).await;
    let r0 = first["refresh_token"].as_str().unwrap().to_string();
    let futs: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            let r0 = r0.clone();
            async move { refresh(&*app, FACILITATOR, &r0).await }
        })
        .collect();
    let results = futures_util::future::join_all(futs).await;
    let (s0, b0) = &results[0];
    assert_eq!(*s0, 200);
    for (s, b) in &results {
        assert_eq!(*s, 200);
        assert_eq!(b, b0);
    }
}

#[actix_web::test]
async fn refresh_refusals_in_elasticsearch_order() {
    let t = TestApp::new();
    let app = t.service().await;

    // Unknown and malformed.
    let (s, b) = refresh(
        &app,
        FACILITATOR,
        "orr1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    assert_eq!(s, 400);
    invalid_grant(&b, "could not refresh the requested token");
    let (s, b) = refresh(&app, FACILITATOR, "garbage").await;
    assert_eq!(s, 400);
    invalid_grant(&b, "could not refresh the requested token");

    // Another client.
    let (_, pair) = get_token(&app, FACILITATOR, password_grant()).await;
    let r = pair["refresh_token"].as_str().unwrap();
    let (s, b) = refresh(&app, OTHER_FACILITATOR, r).await;
    assert_eq!(s, 400);
    invalid_grant(&b, "tokens must be refreshed by the creating client");

    // Invalidated, even though never used.
    let (s, _, _) = send(
        &app,
        delete_json("/_security/oauth2/token", json!({"refresh_token": r}))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = refresh(&app, FACILITATOR, r).await;
    assert_eq!(s, 400);
    invalid_grant(&b, "token has been invalidated");

    // Expired after 24 h (expiry is checked before invalidation).
    let (_, pair2) = get_token(&app, FACILITATOR, password_grant()).await;
    t.advance(Duration::from_secs(24 * 3600));
    let (s, b) = refresh(&app, FACILITATOR, pair2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 400);
    invalid_grant(&b, "token document has expired");
    let (s, b) = refresh(&app, FACILITATOR, r).await;
    assert_eq!(s, 400);
    invalid_grant(&b, "token document has expired");
}

#[actix_web::test]
async fn bearer_expiry_malformed_and_unknown() {
    let t = TestApp::new();
    let app = t.service().await;
    let (_, pair) = get_token(&app, FACILITATOR, password_grant()).await;
    let access = pair["access_token"].as_str().unwrap();
    let me = |tok: String| {
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(&tok))
    };

    t.advance(Duration::from_secs(20 * 60 - 1));
    assert_eq!(send(&app, me(access.to_string())).await.0, 200);
    t.advance(Duration::from_secs(1));
    let (s, h, b) = send(&app, me(access.to_string())).await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["reason"], "token expired");
    assert!(h
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("The access token expired"));

    for bad in [
        "x",
        "ora1_short",
        "eyJhbGciOiJub25lIn0.e30.",
        &"a".repeat(5000),
        "orr1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (s, h, b) = send(&app, me(bad.to_string())).await;
        assert_eq!(s, 401, "{bad}");
        assert_eq!(b["error"]["reason"], "token malformed");
        assert!(h
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("The access token is malformed"));
    }
    let (s, _, b) = send(
        &app,
        me("ora1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["reason"], "token expired");
}

#[actix_web::test]
async fn every_malformed_token_of_the_corpus_is_a_401() {
    let t = TestApp::new();
    let app = t.service().await;
    let corpus = include_str!("fixtures/malformed-tokens.txt");
    for line in corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!("Bearer {line}"))
        else {
            continue; // not expressible as a header value at all
        };
        let (s, _, b) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(("Authorization", v)),
        )
        .await;
        assert_eq!(s, 401, "{line}: {b}");
    }
}

#[actix_web::test]
async fn a_token_carries_its_users_current_privileges_but_cannot_mint_tokens() {
    let t = TestApp::new();
    let app = t.service().await;
    // A file user's token keeps that user's privileges: it may invalidate tokens...
    let (_, admin) = get_token(&app, ADMIN, json!({"grant_type": "client_credentials"})).await;
    let admin_token = admin["access_token"].as_str().unwrap();
    let (_, victim) = get_token(
        &app,
        FACILITATOR,
        json!({"grant_type": "client_credentials"}),
    )
    .await;
    let (s, _, _) = send(
        &app,
        delete_json(
            "/_security/oauth2/token",
            json!({"token": victim["access_token"]}),
        )
        .insert_header(bearer(admin_token)),
    )
    .await;
    assert_eq!(s, 200);
    // ...but it cannot mint tokens that would outlive it (a stolen token renewing itself).
    for grant in [
        json!({"grant_type": "client_credentials"}),
        json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}),
    ] {
        let (s, _, b) = send(
            &app,
            post_json("/_security/oauth2/token", grant.clone()).insert_header(bearer(admin_token)),
        )
        .await;
        assert_eq!(s, 400, "{grant}: {b}");
        assert_eq!(b["error"]["reason_code"], "token_cannot_create_token");
    }
    // A user without manage_token cannot use its token for token APIs at all.
    let (_, pair) = get_token(
        &app,
        ADMIN,
        json!({"grant_type": "password", "username": OIDC_ONLY.0, "password": OIDC_ONLY.1}),
    )
    .await;
    let (s, _, _) = send(
        &app,
        delete_json("/_security/oauth2/token", json!({"username": "admin"}))
            .insert_header(bearer(pair["access_token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(s, 403);
}

#[actix_web::test]
async fn invalidate_by_each_selector_with_elasticsearch_counts() {
    let t = TestApp::new();
    let app = t.service().await;
    let inv =
        |body: Value| delete_json("/_security/oauth2/token", body).insert_header(basic(ADMIN));

    let (_, p1) = get_token(&app, FACILITATOR, password_grant()).await;
    let a1 = p1["access_token"].as_str().unwrap();
    let (s, _, b) = send(&app, inv(json!({"token": a1}))).await;
    assert_eq!(
        (s, b.clone()),
        (
            200,
            json!({"invalidated_tokens":1,"previously_invalidated_tokens":0,"error_count":0})
        )
    );
    // Immediately refused.
    let (s, _, _) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(a1)),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _, b) = send(&app, inv(json!({"token": a1}))).await;
    assert_eq!(
        (s, b),
        (
            200,
            json!({"invalidated_tokens":0,"previously_invalidated_tokens":1,"error_count":0})
        )
    );
    // Its refresh token still refreshes (only the access token was invalidated).
    let (s, _) = refresh(&app, FACILITATOR, p1["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200);

    // Unknown or malformed tokens: 404 with zero counts.
    for body in [
        json!({"token": "ora1_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        json!({"token": "junk"}),
        json!({"refresh_token": "junk"}),
    ] {
        let (s, _, b) = send(&app, inv(body)).await;
        assert_eq!(
            (s, b),
            (
                404,
                json!({"invalidated_tokens":0,"previously_invalidated_tokens":0,"error_count":0})
            )
        );
    }

    // By user and realm: two pairs of admin (2 access + 2 refresh, minus what is already
    // invalidated), none of facilitator.
    let (_, fac) = get_token(
        &app,
        FACILITATOR,
        json!({"grant_type": "client_credentials"}),
    )
    .await;
    let (s, _, b) = send(
        &app,
        inv(json!({"username": "admin", "realm_name": "default_file"})),
    )
    .await;
    assert_eq!(s, 200);
    // p1: access already invalidated (1 previously), refresh (refreshed, still valid) → 1;
    // the refreshed pair: access + refresh → 2.
    assert_eq!(
        b,
        json!({"invalidated_tokens":3,"previously_invalidated_tokens":1,"error_count":0})
    );
    let (s, _, _) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(fac["access_token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, b) = send(&app, inv(json!({"realm_name": "default_file"}))).await;
    assert_eq!((s, b["invalidated_tokens"].clone()), (200, json!(1)));
    // By user or realm with nothing to invalidate: 200 with zero counts, as Elasticsearch.
    for body in [
        json!({"username": "nobody"}),
        json!({"realm_name": "no-such-realm"}),
        json!({"username": "nobody", "realm_name": "default_file"}),
    ] {
        let (s, _, b) = send(&app, inv(body.clone())).await;
        assert_eq!(
            (s, b),
            (
                200,
                json!({"invalidated_tokens":0,"previously_invalidated_tokens":0,"error_count":0})
            ),
            "{body}"
        );
    }
}

#[actix_web::test]
async fn invalidate_validation_messages() {
    let t = TestApp::new();
    let app = t.service().await;
    let cases = [
        (json!({"token": "a", "refresh_token": "b"}), "Validation Failed: 1: only one of [token, refresh_token] may be sent per request;"),
        (json!({"token": "a", "username": "b"}), "Validation Failed: 1: token string must not be provided when realm name or username is specified;"),
        (json!({}), "Validation Failed: 1: token string must be provided when not specifying a realm name or a username;"),
    ];
    for (body, reason) in cases {
        let (s, _, b) = send(
            &app,
            delete_json("/_security/oauth2/token", body).insert_header(basic(FACILITATOR)),
        )
        .await;
        assert_eq!(s, 400);
        assert_eq!(b["error"]["type"], "action_request_validation_exception");
        assert_eq!(b["error"]["reason"], reason);
    }
}

#[actix_web::test]
async fn sweeping_removes_only_expired_pairs() {
    let t = TestApp::new();
    let app = t.service().await;
    let (_, old) = get_token(&app, FACILITATOR, password_grant()).await;
    t.advance(Duration::from_secs(23 * 3600));
    let (_, young) = get_token(&app, FACILITATOR, password_grant()).await;
    t.advance(Duration::from_secs(3600));
    let removed = t.state.tokens.sweep(1).await.unwrap();
    assert_eq!(removed, 1);
    let (s, _) = refresh(&app, FACILITATOR, young["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    let (s, b) = refresh(&app, FACILITATOR, old["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 400);
    invalid_grant(&b, "could not refresh the requested token");
}
