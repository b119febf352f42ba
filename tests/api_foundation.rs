//! The foundation through HTTP: who may call, and how bad requests are answered.

mod common;

use actix_web::test::TestRequest;
use common::*;
use serde_json::json;

#[actix_web::test]
async fn root_lists_name_version_and_realms_without_auth() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, headers, body) = send(&app, TestRequest::get().uri("/")).await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "oidc-realm");
    // The fields Elasticsearch's clients read, and oidc-realm's own beside them.
    assert_eq!(body["version"]["number"], "8.19.0");
    assert_eq!(body["version"]["build_flavor"], "default");
    assert_eq!(body["tagline"], "You Know, for Search");
    assert_eq!(body["oidc_realm"]["name"], "oidc-realm");
    assert_eq!(body["oidc_realm"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["oidc_realm"]["realms"].is_array());
    assert!(headers.contains_key("x-correlation-id"));
    assert_eq!(headers.get("x-elastic-product").unwrap(), "Elasticsearch");
}

#[actix_web::test]
async fn health_is_public_and_trivial() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, _, body) = send(&app, TestRequest::get().uri("/_health")).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
}

#[actix_web::test]
async fn authenticate_returns_the_caller_in_elasticsearch_shape() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, _, body) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({
            "username": "admin",
            "roles": [],
            "full_name": "The Admin",
            "email": "admin@example.com",
            "metadata": {},
            "enabled": true,
            "authentication_realm": {"name": "default_file", "type": "file"},
            "lookup_realm": {"name": "default_file", "type": "file"},
            "authentication_type": "realm"
        })
    );
}

#[actix_web::test]
async fn argon2id_and_bcrypt_users_both_authenticate_and_success_is_remembered() {
    let t = TestApp::new();
    let app = t.service().await;
    for (user, kind) in [(ARGON_USER, "argon2id"), (ADMIN, "bcrypt")] {
        let before = t.state.password_verifications();
        for n in 0..3 {
            let (status, _, body) = send(
                &app,
                TestRequest::get()
                    .uri("/_security/_authenticate")
                    .insert_header(basic(user)),
            )
            .await;
            assert_eq!(status, 200, "{kind}: {body}");
            assert_eq!(body["username"], user.0);
            // The first success costs one full verification; the repeats are remembered.
            assert_eq!(
                t.state.password_verifications(),
                before + 1,
                "{kind}: after request {n}"
            );
        }
    }
    // A wrong password is refused even right after a remembered success, and costs a full
    // verification (failures are never remembered).
    let before = t.state.password_verifications();
    for _ in 0..2 {
        let (status, _, body) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(basic((ARGON_USER.0, "wrong"))),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(
            body["error"]["reason_code"], "credentials_invalid",
            "{body}"
        );
    }
    assert_eq!(t.state.password_verifications(), before + 2);
}

fn assert_basic_401(
    status: u16,
    headers: &actix_web::http::header::HeaderMap,
    body: &serde_json::Value,
) {
    assert_eq!(status, 401, "{body}");
    let challenges: Vec<_> = headers
        .get_all("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        challenges.contains(&"Basic realm=\"security\" charset=\"UTF-8\"".to_string()),
        "{challenges:?}"
    );
    assert_eq!(body["status"], 401);
    assert_eq!(body["error"]["type"], "security_exception");
    assert_eq!(body["error"]["root_cause"][0]["type"], "security_exception");
    assert!(body["error"]["header"]["WWW-Authenticate"].is_array());
    assert!(body["error"]["correlation_id"].is_string());
}

#[actix_web::test]
async fn missing_wrong_and_unknown_credentials_get_401() {
    let t = TestApp::new();
    let app = t.service().await;
    let (s, h, b) = send(&app, TestRequest::get().uri("/_security/_authenticate")).await;
    assert_basic_401(s, &h, &b);
    assert_eq!(
        b["error"]["reason"],
        "missing authentication credentials for REST request [/_security/_authenticate]"
    );

    let (s, h, b) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(basic((FACILITATOR.0, "not-the-password"))),
    )
    .await;
    assert_basic_401(s, &h, &b);
    assert_eq!(
        b["error"]["reason"],
        "unable to authenticate user [facilitator] for REST request [/_security/_authenticate]"
    );
    assert!(!b.to_string().contains("not-the-password"));

    let (s, h, b) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(basic(("nobody", "x"))),
    )
    .await;
    assert_basic_401(s, &h, &b);

    for bad in [
        "Basic !!!",
        "Basic",
        "Basic bm9jb2xvbg==",
        "Digest abc",
        "Bearer",
    ] {
        let (s, h, b) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(("Authorization", bad)),
        )
        .await;
        if bad.starts_with("Bearer") {
            assert_eq!(s, 401, "{bad}");
            assert_eq!(b["status"], 401, "{b}");
            assert_eq!(b["error"]["type"], "security_exception", "{b}");
        } else {
            assert_basic_401(s, &h, &b);
        }
        let code = match bad {
            "Basic !!!" | "Basic bm9jb2xvbg==" => "credentials_malformed",
            _ => "credentials_unsupported",
        };
        assert_eq!(b["error"]["reason_code"], code, "{bad}: {b}");
    }
}

#[actix_web::test]
async fn an_overlong_password_is_refused_without_hashing() {
    let t = TestApp::new();
    let app = t.service().await;
    let max = oidc_realm::auth::caller::MAX_PASSWORD_LEN;
    // Over the bound: refused like a wrong password, and no verification ran (for a known and
    // an unknown user alike: the unknown user's dummy verification is skipped too).
    for user in [ARGON_USER.0, ADMIN.0, "nobody"] {
        let (s, h, b) = send(
            &app,
            TestRequest::get()
                .uri("/_security/_authenticate")
                .insert_header(basic((user, &"p".repeat(max + 1)))),
        )
        .await;
        assert_basic_401(s, &h, &b);
        assert_eq!(b["error"]["reason_code"], "credentials_invalid", "{b}");
        assert_eq!(
            b["error"]["reason"],
            format!(
                "unable to authenticate user [{user}] for REST request [/_security/_authenticate]"
            )
        );
        assert_eq!(t.state.password_verifications(), 0, "{user}");
    }
    // At the bound: hashed (and wrong), so the counter does count what it claims to.
    let (s, _, _) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate")
            .insert_header(basic((ARGON_USER.0, &"p".repeat(max)))),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(t.state.password_verifications(), 1);
}

#[actix_web::test]
async fn missing_privilege_gets_403_naming_action_and_user() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, _, body) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "client_credentials"}),
        )
        .insert_header(basic(OIDC_ONLY)),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "security_exception");
    assert_eq!(
        body["error"]["reason"],
        "action [cluster:admin/xpack/security/token/create] is unauthorized for user [oidc-only] with effective roles [], this action is granted by the cluster privileges [manage_token,manage_security,all]"
    );
    assert!(!body.to_string().contains(OIDC_ONLY.1));
}

#[actix_web::test]
async fn oversized_body_gets_413_before_parsing() {
    let t = TestApp::new();
    let app = t.service().await;
    let big = "x".repeat(70 * 1024);
    let (status, _, body) = send(
        &app,
        TestRequest::post()
            .uri("/_security/oauth2/token")
            .insert_header(basic(FACILITATOR))
            .insert_header(("content-type", "application/json"))
            .set_payload(format!("{{\"grant_type\":\"{big}\"}}")),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status"], 413);
    assert!(body["error"]["reason"].as_str().unwrap().contains("65536"));
}

#[actix_web::test]
async fn malformed_json_wrong_content_type_unknown_fields_bad_utf8() {
    let t = TestApp::new();
    let app = t.service().await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{\"grant_type\":".to_vec(),
            400,
            "x_content_parse_exception",
        ),
        (
            "application/json",
            b"[]".to_vec(),
            400,
            "x_content_parse_exception",
        ),
        (
            "application/json",
            b"{\"foo\":1}".to_vec(),
            400,
            "x_content_parse_exception",
        ),
        (
            "application/json",
            b"{\"grant_type\":\"\xff\xfe\"}".to_vec(),
            400,
            "x_content_parse_exception",
        ),
        (
            "application/json",
            b"{\"grant_type\":1}".to_vec(),
            400,
            "x_content_parse_exception",
        ),
        (
            "application/json",
            b"".to_vec(),
            400,
            "x_content_parse_exception",
        ),
        (
            "text/plain",
            b"{}".to_vec(),
            406,
            "media_type_header_exception",
        ),
        (
            "application/x-www-form-urlencoded",
            b"grant_type=password".to_vec(),
            406,
            "media_type_header_exception",
        ),
        // A versioned Content-Type without a versioned Accept: refused as Elasticsearch
        // does (tests/compat.rs covers the vendor types in full).
        (
            "application/vnd.elasticsearch+cbor; compatible-with=8",
            b"\xa0".to_vec(),
            400,
            "media_type_header_exception",
        ),
        (
            "application/vnd.elasticsearch+yaml; compatible-with=8",
            b"grant_type: password".to_vec(),
            400,
            "media_type_header_exception",
        ),
    ];
    for (ct, payload, want, kind) in cases {
        let (status, _, body) = send(
            &app,
            TestRequest::post()
                .uri("/_security/oauth2/token")
                .insert_header(basic(FACILITATOR))
                .insert_header(("content-type", ct))
                .set_payload(payload.clone()),
        )
        .await;
        assert_eq!(status, want, "{ct} {payload:?}: {body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert_eq!(body["status"], want);
    }
    let (_, _, body) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "foo": 1}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(
        body["error"]["reason"],
        "[1:30] [token_request] unknown field [foo]"
    );
}

#[actix_web::test]
async fn unknown_path_404_and_wrong_method_405_in_elasticsearch_shape() {
    let t = TestApp::new();
    let app = t.service().await;
    let (status, _, body) = send(&app, TestRequest::get().uri("/_security/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], 404);
    let (status, _, body) = send(
        &app,
        TestRequest::put()
            .uri("/_security/oauth2/token")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(body["status"], 405);
}

/// Issue 10, finding 5: serde's positional form would read a JSON array as a request object
/// (`["oidc1",null,"hint",null,null]` as a prepare body, `["client_credentials"]` as a token
/// request). Every body whose top-level value is not an object is refused as Elasticsearch's
/// `ObjectParser` refuses it: 400 `x_content_parse_exception`,
/// `[line:col] [<parser>] Expected START_OBJECT but was: <token>`.
#[actix_web::test]
async fn json_arrays_and_scalars_are_refused_as_request_bodies() {
    let t = TestApp::new();
    let app = t.service().await;
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "/_security/oidc/prepare",
            r#"["oidc1",null,"hint",null,null]"#,
            "[1:1] [oidc_prepare_authentication] Expected START_OBJECT but was: START_ARRAY",
        ),
        (
            "/_security/oidc/prepare",
            r#"["oidc1"]"#,
            "[1:1] [oidc_prepare_authentication] Expected START_OBJECT but was: START_ARRAY",
        ),
        (
            "/_security/oauth2/token",
            r#"["client_credentials"]"#,
            "[1:1] [token_request] Expected START_OBJECT but was: START_ARRAY",
        ),
        (
            "/_security/oauth2/token",
            "\n  [\"password\", \"facilitator\", \"facilitator-password\"]",
            "[2:3] [token_request] Expected START_OBJECT but was: START_ARRAY",
        ),
        (
            "/_security/oauth2/token",
            r#""client_credentials""#,
            "[1:1] [token_request] Expected START_OBJECT but was: VALUE_STRING",
        ),
        (
            "/_security/oauth2/token",
            "42",
            "[1:1] [token_request] Expected START_OBJECT but was: VALUE_NUMBER",
        ),
        (
            "/_security/oauth2/token",
            "true",
            "[1:1] [token_request] Expected START_OBJECT but was: VALUE_BOOLEAN",
        ),
        (
            "/_security/oauth2/token",
            "null",
            "[1:1] [token_request] Expected START_OBJECT but was: VALUE_NULL",
        ),
        (
            "/_security/oidc/authenticate",
            r#"["https://app.example.com/cb?code=c&state=s","s","n","oidc1"]"#,
            "[1:1] [oidc_authn] Expected START_OBJECT but was: START_ARRAY",
        ),
        (
            "/_security/oidc/logout",
            r#"["token"]"#,
            "[1:1] [oidc_logout] Expected START_OBJECT but was: START_ARRAY",
        ),
    ];
    for (path, payload, reason) in cases {
        let (status, _, body) = send(
            &app,
            TestRequest::post()
                .uri(path)
                .insert_header(basic(ADMIN))
                .insert_header(("content-type", "application/json"))
                .set_payload(payload),
        )
        .await;
        assert_eq!(status, 400, "{path} {payload}: {body}");
        assert_eq!(body["status"], 400, "{body}");
        assert_eq!(body["error"]["type"], "x_content_parse_exception", "{body}");
        assert_eq!(body["error"]["reason"], reason, "{path} {payload}: {body}");
        assert!(!body.to_string().contains("facilitator-password"), "{body}");
    }
    // The invalidate API (a DELETE with a body) too.
    let (status, _, body) = send(
        &app,
        TestRequest::delete()
            .uri("/_security/oauth2/token")
            .insert_header(basic(ADMIN))
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"["some-token"]"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["reason"],
        "[1:1] [invalidate_token_request] Expected START_OBJECT but was: START_ARRAY"
    );
    // An object still parses (and a broken document is still a syntax error, not this one).
    let (status, _, body) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "client_credentials"}),
        )
        .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(
        &app,
        TestRequest::post()
            .uri("/_security/oauth2/token")
            .insert_header(basic(FACILITATOR))
            .insert_header(("content-type", "application/json"))
            .set_payload("nope"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "x_content_parse_exception");
    assert!(
        !body["error"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("START_OBJECT"),
        "{body}"
    );
}
