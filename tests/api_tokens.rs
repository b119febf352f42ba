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
    assert!(access.starts_with("ora2_") && access.len() == 48);
    assert!(refresh.starts_with("orr2_") && refresh.len() == 48);
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

/// Concurrent for real: 16 connections to a server with 4 worker threads, released together.
#[actix_web::test]
async fn concurrent_refreshes_all_get_the_same_pair() {
    let t = TestApp::new();
    let served = Served::start(t.state.clone(), 4);
    assert_concurrent_refreshes_get_one_pair(&served.base, 16).await;
    served.stop().await;
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

/// A refused bearer token: 401, the `invalid_token` challenge with its description, and the
/// reason code (`token_malformed` for a token refused by its shape, before any lookup;
/// `token_expired` for one of the right shape that is unknown, expired or invalidated).
#[track_caller]
fn assert_bearer_refused(
    what: &str,
    (s, h, b): &(u16, actix_web::http::header::HeaderMap, Value),
    code: &str,
) {
    assert_eq!(*s, 401, "{what}: {b}");
    assert_eq!(b["error"]["reason_code"], code, "{what}: {b}");
    assert_eq!(b["error"]["type"], "security_exception", "{what}: {b}");
    assert_eq!(b["status"], 401, "{what}: {b}");
    let (reason, description) = match code {
        "token_malformed" => ("token malformed", "The access token is malformed"),
        _ => ("token expired", "The access token expired"),
    };
    assert_eq!(b["error"]["reason"], reason, "{what}: {b}");
    assert_eq!(
        h.get("www-authenticate").map(|v| v.to_str().unwrap()),
        Some(
            format!(
                "Bearer realm=\"security\", error=\"invalid_token\", error_description=\"{description}\""
            )
            .as_str()
        ),
        "{what}"
    );
}

async fn whoami_raw<S, B>(
    app: &S,
    header: actix_web::http::header::HeaderValue,
) -> (u16, actix_web::http::header::HeaderMap, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    send(
        app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(("Authorization", header)),
    )
    .await
}

/// Bearer values that carry the access-token prefix `ora2_` (or are one edit away from a real
/// token), so each is refused by the check it names and not merely by the prefix test. A real
/// token issued by the server is the starting point, and is first shown to work.
#[actix_web::test]
async fn every_malformed_bearer_token_of_the_corpus_is_a_401_with_its_reason() {
    let t = TestApp::new();
    let app = t.service().await;
    let (_, pair) = get_token(&app, FACILITATOR, password_grant()).await;
    let real = pair["access_token"].as_str().unwrap().to_string();
    let real_refresh = pair["refresh_token"].as_str().unwrap().to_string();
    let body = &real["ora2_".len()..];
    assert_eq!(body.len(), 43);
    let hv =
        |s: &str| actix_web::http::header::HeaderValue::from_str(&format!("Bearer {s}")).unwrap();
    // The control: the real token, and the real token under the lower-case scheme.
    for v in [
        hv(&real),
        actix_web::http::header::HeaderValue::from_str(&format!("bearer {real}")).unwrap(),
    ] {
        let (s, _, b) = whoami_raw(&app, v).await;
        assert_eq!((s, &b["username"]), (200, &json!("admin")), "{b}");
    }

    let with_char_at = |i: usize, c: &str| format!("ora2_{}{c}{}", &body[..i], &body[i + 1..]);
    let malformed: Vec<(&str, String)> = vec![
        ("the prefix alone", "ora2_".into()),
        ("one character short", real[..real.len() - 1].to_string()),
        ("one character long", format!("{real}A")),
        ("twice the length", format!("{real}{body}")),
        ("10,000 characters", format!("ora2_{}", "A".repeat(10_000))),
        ("standard base64 '+'", with_char_at(10, "+")),
        ("standard base64 '/'", with_char_at(10, "/")),
        ("a dot", with_char_at(42, ".")),
        ("a tilde", with_char_at(0, "~")),
        ("a percent-encoding", format!("ora2_%41{}", &body[3..])),
        (
            "padding in place of the last character",
            with_char_at(42, "="),
        ),
        ("padding appended", format!("{real}=")),
        ("two padding characters appended", format!("{real}==")),
        ("a space inside", with_char_at(20, " ")),
        ("a tab inside", with_char_at(20, "\t")),
        ("a space after the prefix", format!("ora2_ {}", &body[1..])),
        (
            "the refresh prefix on an access body",
            format!("orr2_{body}"),
        ),
        (
            "the pair's refresh token used as an access token",
            real_refresh.clone(),
        ),
        ("the prefix in upper case", format!("ORA2_{body}")),
        ("an unknown format version", format!("ora3_{body}")),
        ("no separator", format!("ora2A{body}")),
        ("a JWT", "eyJhbGciOiJub25lIn0.e30.".into()),
    ];
    for (what, token) in &malformed {
        let resp = whoami_raw(&app, hv(token)).await;
        assert_bearer_refused(what, &resp, "token_malformed");
    }

    // The right shape but never issued: looked up, not found, answered as expired (one code
    // for unknown, expired and invalidated).
    let unknown: Vec<(&str, String)> = vec![
        ("one character of a real token changed", {
            let c = if body.starts_with('A') { "B" } else { "A" };
            with_char_at(0, c)
        }),
        ("all 'A'", format!("ora2_{}", "A".repeat(43))),
        (
            "all '-' and '_'",
            format!("ora2_{}", &"-_".repeat(22)[..43]),
        ),
        // The last character of 32 bytes in base64url carries 2 unused bits: a value with
        // them set is not canonical base64, but the shape check does not decode.
        (
            "non-canonical last character",
            format!("ora2_{}B", "A".repeat(42)),
        ),
        // A version 1 token (still read) with the body of a version 2 one: another token.
        (
            "the first format's prefix on a real body",
            format!("ora1_{body}"),
        ),
        (
            "a first-format token never issued",
            format!("ora1_{}", "A".repeat(43)),
        ),
    ];
    for (what, token) in &unknown {
        let resp = whoami_raw(&app, hv(token)).await;
        assert_bearer_refused(what, &resp, "token_expired");
    }

    // Non-ASCII bytes cannot be read as a header string at all: refused before the bearer
    // check, as malformed credentials (Basic and Bearer challenges both offered).
    for (what, token) in [
        ("an 'é' (43 bytes)", format!("ora2_{}é", &body[..41])),
        (
            "a zero-width space",
            format!("ora2_{}\u{200b}{}", &body[..21], &body[21..]),
        ),
        ("full-width letters", format!("ora2_{}", "Ａ".repeat(43))),
        ("a non-breaking space", format!("{real}\u{a0}")),
    ] {
        let v =
            actix_web::http::header::HeaderValue::from_bytes(format!("Bearer {token}").as_bytes())
                .unwrap();
        let (s, _, b) = whoami_raw(&app, v).await;
        assert_eq!(s, 401, "{what}: {b}");
        assert_eq!(
            b["error"]["reason_code"], "credentials_malformed",
            "{what}: {b}"
        );
        assert_eq!(
            b["error"]["reason"],
            "malformed authentication credentials for REST request [/_security/_authenticate]",
            "{what}: {b}"
        );
    }
    // None of this touched the real token.
    let (s, _, _) = whoami_raw(&app, hv(&real)).await;
    assert_eq!(s, 200);
}

/// The JWT corpus (tests/fixtures/malformed-tokens.txt, written for ID tokens) sent as bearer
/// tokens: none has the access-token prefix, so each is refused by the shape check as
/// malformed (the corpus above is the one that reaches the checks after the prefix).
#[actix_web::test]
async fn every_token_of_the_jwt_corpus_is_a_malformed_bearer_401() {
    let t = TestApp::new();
    let app = t.service().await;
    let corpus = include_str!("fixtures/malformed-tokens.txt");
    let mut sent = 0;
    let mut lines = 0;
    for line in corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        lines += 1;
        let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!("Bearer {line}"))
        else {
            continue; // not expressible as a header value at all
        };
        sent += 1;
        let resp = whoami_raw(&app, v).await;
        let what = &line[..line.len().min(60)];
        assert!(!line.starts_with("ora1_"), "{what}");
        assert_bearer_refused(what, &resp, "token_malformed");
    }
    assert!(
        lines >= 20 && sent == lines,
        "{sent} of {lines} corpus lines sent"
    );
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
    let (s, _, b) = send(
        &app,
        delete_json("/_security/oauth2/token", json!({"username": "admin"}))
            .insert_header(bearer(pair["access_token"].as_str().unwrap())),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["type"], "security_exception", "{b}");
    assert_eq!(b["error"]["reason_code"], "action_unauthorized", "{b}");
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
    // Immediately refused, as an expired token would be (one code for both).
    let (s, _, b) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(bearer(a1)),
    )
    .await;
    assert_eq!(s, 401, "{b}");
    assert_eq!(b["error"]["reason_code"], "token_expired", "{b}");
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
