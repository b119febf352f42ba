//! What Elasticsearch's official clients and Kibana need beyond the bodies: the product
//! header, vendor media types, `GET /`, `filter_path`/`pretty`, configured users with roles
//! and no privileges, service account tokens, invalidation without a match, and the
//! `token.refresh_reuse` choice. Through HTTP on the real `configure()`.

mod common;

use actix_web::test::TestRequest;
use common::*;
use oidc_realm::auth::service_tokens;
use oidc_realm::config::{Privilege, RefreshReuse, ServiceTokenEntry, Settings};
use oidc_realm::store::MemoryStore;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const V8: &str = "application/vnd.elasticsearch+json; compatible-with=8";
const V8_ANSWER: &str = "application/vnd.elasticsearch+json;compatible-with=8";
const SERVICE_TOKEN_NAME: &str = "elastic/kibana/kibana-test";
const END_USER: (&str, &str) = ("enduser", "enduser-password");

/// Settings with an end user (roles, no privileges) and a service token; returns the token.
fn settings_with_extras(mut s: Settings) -> (Settings, String) {
    let mut end_user = s.users[ADMIN.0].clone();
    end_user.password_hash =
        oidc_realm::config::PasswordHash::Bcrypt(bcrypt::hash(END_USER.1, 4).unwrap());
    end_user.privileges.clear();
    end_user.roles = vec!["superuser".into()];
    end_user.full_name = Some("End User".into());
    end_user.email = None;
    s.users.insert(END_USER.0.into(), end_user);
    let (token, hash) = service_tokens::generate(SERVICE_TOKEN_NAME).unwrap();
    s.service_tokens.insert(
        SERVICE_TOKEN_NAME.into(),
        ServiceTokenEntry {
            secret_hash: service_tokens::parse_hash(&hash).unwrap(),
            privileges: [
                Privilege::ManageOidc,
                Privilege::ManageToken,
                Privilege::ManageUserProfile,
            ]
            .into_iter()
            .collect(),
        },
    );
    (s, token)
}

fn app_with(s: Settings) -> TestApp {
    TestApp::with(s, Arc::new(MemoryStore::new()))
}

fn authenticate() -> TestRequest {
    TestRequest::get().uri("/_security/_authenticate")
}

fn get_token(body: Value) -> TestRequest {
    post_json("/_security/oauth2/token", body).insert_header(basic(FACILITATOR))
}

#[actix_web::test]
async fn the_product_header_is_on_every_answer_but_401_and_403() {
    let t = TestApp::new();
    let app = t.service().await;
    let cases = [
        (TestRequest::get().uri("/"), 200),
        (TestRequest::get().uri("/_health"), 200),
        (authenticate().insert_header(basic(ADMIN)), 200),
        (TestRequest::get().uri("/nowhere"), 404),
        (TestRequest::put().uri("/_health"), 405),
        (get_token(json!({"grant_type": "magic"})), 400),
        (authenticate(), 401),
        (
            post_json("/_security/oidc/prepare", json!({"realm": "x"}))
                .insert_header(basic(ARGON_USER)),
            403,
        ),
    ];
    for (req, want) in cases {
        let (s, h, b) = send(&app, req).await;
        assert_eq!(s, want, "{b}");
        let header = h.get("x-elastic-product").map(|v| v.to_str().unwrap());
        if want == 401 || want == 403 {
            assert_eq!(header, None, "Elasticsearch strips it on {want}");
        } else {
            assert_eq!(header, Some("Elasticsearch"), "{want}");
        }
    }
}

#[actix_web::test]
async fn the_product_header_can_be_turned_off() {
    let mut s = settings();
    s.compatibility.product_header = false;
    let t = app_with(s);
    let app = t.service().await;
    let (s, h, _) = send(&app, TestRequest::get().uri("/")).await;
    assert_eq!(s, 200);
    assert!(h.get("x-elastic-product").is_none());
}

#[actix_web::test]
async fn root_answers_with_the_configured_api_level() {
    let mut s = settings();
    s.compatibility.version = "9.1.0".into();
    let t = app_with(s);
    let app = t.service().await;
    let (_, _, b) = send(&app, TestRequest::get().uri("/")).await;
    assert_eq!(b["version"]["number"], "9.1.0");
    assert_eq!(b["version"]["build_flavor"], "default");
    assert_eq!(b["tagline"], "You Know, for Search");
    assert_eq!(b["oidc_realm"]["version"], env!("CARGO_PKG_VERSION"));
}

#[actix_web::test]
async fn vendor_media_types_are_accepted_and_answered_in_kind() {
    let t = TestApp::new();
    let app = t.service().await;
    for v in [7, 8, 9] {
        let vendor = format!("application/vnd.elasticsearch+json; compatible-with={v}");
        let (s, h, b) = send(
            &app,
            TestRequest::post()
                .uri("/_security/oauth2/token")
                .insert_header(basic(FACILITATOR))
                .insert_header(("Content-Type", vendor.as_str()))
                .insert_header(("Accept", vendor.as_str()))
                .set_payload(r#"{"grant_type":"client_credentials"}"#),
        )
        .await;
        assert_eq!(s, 200, "{v}: {b}");
        assert_eq!(
            h.get("content-type").unwrap(),
            &format!("application/vnd.elasticsearch+json;compatible-with={v}"),
        );
        assert!(b["access_token"].is_string());
    }
    // GET with a vendor Accept only; errors are labelled the same way.
    let (s, h, _) = send(
        &app,
        authenticate()
            .insert_header(basic(ADMIN))
            .insert_header(("Accept", V8)),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h.get("content-type").unwrap(), V8_ANSWER);
    let (s, h, b) = send(&app, authenticate().insert_header(("Accept", V8))).await;
    assert_eq!(s, 401);
    assert_eq!(h.get("content-type").unwrap(), V8_ANSWER);
    assert_eq!(b["error"]["type"], "security_exception");
    // Plain JSON stays plain; an Accept that names nothing oidc-realm writes gets JSON.
    for accept in [
        "application/json",
        "*/*",
        "text/html",
        "application/json, text/plain",
    ] {
        let (_, h, _) = send(
            &app,
            authenticate()
                .insert_header(basic(ADMIN))
                .insert_header(("Accept", accept)),
        )
        .await;
        assert_eq!(
            h.get("content-type").unwrap(),
            "application/json",
            "{accept}"
        );
    }
    // A vendor Accept with a format oidc-realm does not write: answered in JSON, labelled
    // with the version asked for.
    let (s, h, b) = send(
        &app,
        authenticate().insert_header(basic(ADMIN)).insert_header((
            "Accept",
            "application/vnd.elasticsearch+cbor; compatible-with=8",
        )),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(h.get("content-type").unwrap(), V8_ANSWER);
    assert_eq!(b["username"], "admin");
}

#[actix_web::test]
async fn bad_media_types_get_elasticsearchs_errors() {
    let t = TestApp::new();
    let app = t.service().await;
    let token = |ct: &str, accept: Option<&str>, body: &'static str| {
        let mut r = TestRequest::post()
            .uri("/_security/oauth2/token")
            .insert_header(basic(FACILITATOR))
            .insert_header(("Content-Type", ct))
            .set_payload(body);
        if let Some(a) = accept {
            r = r.insert_header(("Accept", a));
        }
        r
    };
    let cc = r#"{"grant_type":"client_credentials"}"#;
    let cases: Vec<(TestRequest, u16, &str)> = vec![
        // Unknown versions, in either header.
        (
            token("application/vnd.elasticsearch+json; compatible-with=6", Some(V8), cc),
            400,
            "Content-Type version must be either version 7, 8 or 9, but found 6. Content-Type=application/vnd.elasticsearch+json; compatible-with=6",
        ),
        (
            authenticate()
                .insert_header(basic(ADMIN))
                .insert_header(("Accept", "application/vnd.elasticsearch+json; compatible-with=10")),
            400,
            "Accept version must be either version 7, 8 or 9, but found 10. Accept=application/vnd.elasticsearch+json; compatible-with=10",
        ),
        (
            authenticate()
                .insert_header(basic(ADMIN))
                .insert_header(("Accept", "application/vnd.elasticsearch+json; compatible-with=abc")),
            400,
            "Accept version must be either version 7, 8 or 9, but found abc. Accept=application/vnd.elasticsearch+json; compatible-with=abc",
        ),
        // Mismatched versions, or a version on one header only, with a body.
        (
            token(V8, Some("application/vnd.elasticsearch+json; compatible-with=9"), cc),
            400,
            "A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version and the compatible versions must match. Accept=application/vnd.elasticsearch+json; compatible-with=9, Content-Type=application/vnd.elasticsearch+json; compatible-with=8",
        ),
        (
            token(V8, Some("application/json"), cc),
            400,
            "A compatible version is required on both Content-Type and Accept headers if either one has requested a compatible version. Accept=application/json, Content-Type=application/vnd.elasticsearch+json; compatible-with=8",
        ),
    ];
    for (req, want, cause) in cases {
        let (s, _, b) = send(&app, req).await;
        assert_eq!(s, want, "{b}");
        assert_eq!(b["error"]["type"], "media_type_header_exception", "{b}");
        assert_eq!(
            b["error"]["reason"],
            "Invalid media-type value on headers [Content-Type, Accept]"
        );
        assert_eq!(b["error"]["caused_by"]["type"], "status_exception");
        assert_eq!(b["error"]["caused_by"]["reason"], cause);
    }
    // Formats Elasticsearch knows but oidc-realm does not read: 406, as Elasticsearch answers
    // a Content-Type it cannot read.
    for ct in [
        "application/vnd.elasticsearch+cbor; compatible-with=8",
        "application/vnd.elasticsearch+smile; compatible-with=8",
        "application/vnd.elasticsearch+yaml; compatible-with=8",
    ] {
        let (s, _, b) = send(&app, token(ct, Some(V8), "grant_type: client_credentials")).await;
        assert_eq!(s, 406, "{ct}: {b}");
        assert_eq!(b["error"]["type"], "media_type_header_exception");
        assert_eq!(
            b["error"]["reason"],
            format!("Content-Type header [{ct}] is not supported")
        );
    }
    let (s, _, b) = send(&app, token("text/plain", None, cc)).await;
    assert_eq!(s, 406);
    assert_eq!(
        b["error"]["reason"],
        "Content-Type header [text/plain] is not supported"
    );
    // Echoed header values are bounded and carry no control characters.
    let long = format!("text/{}", "x".repeat(5000));
    let (s, _, b) = send(&app, token(&long, None, cc)).await;
    assert_eq!(s, 406);
    assert!(b["error"]["reason"].as_str().unwrap().len() < 300);
}

#[actix_web::test]
async fn filter_path_and_pretty_apply_to_every_json_answer() {
    let t = TestApp::new();
    let app = t.service().await;
    let (s, _, b) = send(
        &app,
        get_token(json!({"grant_type": "client_credentials"}))
            .uri("/_security/oauth2/token?filter_path=access_token,authentication.username"),
    )
    .await;
    assert_eq!(s, 200);
    let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "authentication"]);
    assert_eq!(b["authentication"], json!({"username": "facilitator"}));

    let (_, _, b) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate?filter_path=-metadata,-*_realm,-full_name,-email")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(
        b,
        json!({"username": "admin", "roles": [], "enabled": true, "authentication_type": "realm"})
    );
    let (_, _, b) = send(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate?filter_path=**.name")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(
        b,
        json!({"authentication_realm": {"name": "default_file"}, "lookup_realm": {"name": "default_file"}})
    );
    let (_, _, b) = send(&app, TestRequest::get().uri("/?filter_path=version.number")).await;
    assert_eq!(b, json!({"version": {"number": "8.19.0"}}));
    // Nothing matches: {}. Odd values are not refused (as Elasticsearch).
    for odd in ["nothing", "..", "a..b", ",", "-", "***", "%5C"] {
        let (s, _, b) = send(
            &app,
            TestRequest::get()
                .uri(&format!(
                    "/_security/_authenticate?filter_path={odd}&human=true&error_trace=false"
                ))
                .insert_header(basic(ADMIN)),
        )
        .await;
        assert_eq!(s, 200, "{odd}");
        assert!(b.is_object(), "{odd}: {b}");
    }
    // Errors are not filtered (Elasticsearch neither).
    let (s, _, b) = send(
        &app,
        TestRequest::get().uri("/_security/_authenticate?filter_path=username"),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["type"], "security_exception");
    // The role-mapping API accepts the common parameters too.
    let (s, _, b) = send(
        &app,
        TestRequest::get()
            .uri("/_security/role_mapping?filter_path=*.roles&pretty&human&error_trace")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!((s, b), (200, json!({})));
    // pretty: indented, same content.
    let (s, raw) = send_raw(&app, TestRequest::get().uri("/_health?pretty")).await;
    assert_eq!(s, 200);
    assert_eq!(
        std::str::from_utf8(&raw).unwrap(),
        "{\n  \"status\": \"ok\"\n}"
    );
    let (s, raw) = send_raw(&app, TestRequest::get().uri("/nowhere?pretty=true")).await;
    assert_eq!(s, 404);
    assert!(std::str::from_utf8(&raw)
        .unwrap()
        .starts_with("{\n  \"error\""));
}

#[actix_web::test]
async fn configured_users_have_roles_and_may_have_no_privileges() {
    let (s, _) = settings_with_extras(settings());
    let t = app_with(s);
    let app = t.service().await;
    // The password grant for an end user: the roles of the user in the answer.
    let (s, _, b) = send(
        &app,
        get_token(
            json!({"grant_type": "password", "username": END_USER.0, "password": END_USER.1}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authentication"]["roles"], json!(["superuser"]));
    assert_eq!(b["authentication"]["full_name"], "End User");
    let access = b["access_token"].as_str().unwrap().to_string();
    // _authenticate with the token and with the password: the same roles.
    for req in [
        authenticate().insert_header(bearer(&access)),
        authenticate().insert_header(basic(END_USER)),
    ] {
        let (s, _, b) = send(&app, req).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["username"], "enduser");
        assert_eq!(b["roles"], json!(["superuser"]));
    }
    // No privilege: no API beyond _authenticate, neither with the password nor the token.
    for auth in [basic(END_USER), bearer(&access)] {
        for (req, action) in [
            (
                post_json("/_security/oidc/prepare", json!({"realm": "oidc1"})),
                "cluster:admin/xpack/security/oidc/prepare",
            ),
            (
                post_json(
                    "/_security/oauth2/token",
                    json!({"grant_type": "refresh_token", "refresh_token": "x"}),
                ),
                "cluster:admin/xpack/security/token/refresh",
            ),
            (
                delete_json("/_security/oauth2/token", json!({"username": "admin"})),
                "cluster:admin/xpack/security/token/invalidate",
            ),
        ] {
            let (s, _, b) = send(&app, req.insert_header(auth.clone())).await;
            assert_eq!(s, 403, "{b}");
            assert!(
                b["error"]["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("action [{action}] is unauthorized for user [enduser] with effective roles [superuser]")),
                "{b}"
            );
        }
    }
}

#[actix_web::test]
async fn users_roles_and_privileges_from_yaml() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let yaml = format!(
        "users:\n  enduser:\n    password_hash: \"{hash}\"\n    privileges: []\n    roles: [superuser, kibana_admin, superuser]\n"
    );
    let loaded = oidc_realm::config::load_str(&yaml, &std::env::temp_dir()).unwrap();
    let u = &loaded.settings.users["enduser"];
    assert!(u.privileges.is_empty());
    assert_eq!(u.roles, ["kibana_admin", "superuser"]);
    // A privilege list is still required, and must name known privileges.
    let e = oidc_realm::config::load_str(
        &format!("users:\n  u:\n    password_hash: \"{hash}\"\n    roles: [a]\n"),
        &std::env::temp_dir(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(
            "users.u.privileges: The configuration setting [users.u.privileges] is required"
        ),
        "{e}"
    );
    let e = oidc_realm::config::load_str(
        &format!(
            "users:\n  u:\n    password_hash: \"{hash}\"\n    privileges: [manage_everything]\n"
        ),
        &std::env::temp_dir(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown privilege [manage_everything]; allowed are [manage_oidc, manage_token, manage_user_profile, manage_security, all, read_connections, manage_connections, use_connections]"), "{e}");
}

#[actix_web::test]
async fn service_tokens_authenticate_like_elasticsearch() {
    let (s, token) = settings_with_extras(settings());
    let t = app_with(s);
    let app = t.service().await;
    let (s, _, b) = send(&app, authenticate().insert_header(bearer(&token))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({
            "username": "elastic/kibana",
            "roles": [],
            "full_name": "Service account - elastic/kibana",
            "email": null,
            "metadata": {"_elastic_service_account": true},
            "enabled": true,
            "authentication_realm": {"name": "_service_account", "type": "_service_account"},
            "lookup_realm": {"name": "_service_account", "type": "_service_account"},
            "authentication_type": "token",
            "token": {"name": "kibana-test", "type": "_service_account_file"}
        })
    );
    // Its privileges: get a token for a user with the password grant, refresh it, and
    // invalidate; not a token for itself.
    let (s, _, b) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1}),
        )
        .insert_header(bearer(&token)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "refresh_token", "refresh_token": b["refresh_token"]}),
        )
        .insert_header(bearer(&token)),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = send(
        &app,
        post_json(
            "/_security/oauth2/token",
            json!({"grant_type": "client_credentials"}),
        )
        .insert_header(bearer(&token)),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["error"]["reason_code"],
        "service_account_cannot_create_token"
    );
    // Role mappings need manage_security, which this token lacks.
    let (s, _, _) = send(
        &app,
        TestRequest::get()
            .uri("/_security/role_mapping")
            .insert_header(bearer(&token)),
    )
    .await;
    assert_eq!(s, 403);
}

#[actix_web::test]
async fn wrong_or_unknown_service_tokens_are_refused_like_a_wrong_password() {
    let (s, good) = settings_with_extras(settings());
    let t = app_with(s);
    let app = t.service().await;
    let (wrong_secret, _) = service_tokens::generate(SERVICE_TOKEN_NAME).unwrap();
    let (unknown_name, _) = service_tokens::generate("elastic/kibana/other").unwrap();
    let truncated = good[..good.len() - 4].to_string();
    let mut bodies = Vec::new();
    for bad in [
        wrong_secret,
        unknown_name,
        truncated,
        "AAEAAQ!!".to_string(),
    ] {
        let (s, h, b) = send(&app, authenticate().insert_header(bearer(&bad))).await;
        assert_eq!(s, 401, "{b}");
        assert_eq!(b["error"]["reason_code"], "credentials_invalid");
        assert_eq!(h.get_all("www-authenticate").count(), 2);
        assert!(!b.to_string().contains(&bad));
        let mut shape = b.clone();
        shape["error"]["correlation_id"] = Value::Null;
        bodies.push(shape);
    }
    // One answer for all: nothing tells an unknown name from a wrong secret.
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

#[actix_web::test]
async fn service_tokens_from_yaml() {
    let (_, hash) = service_tokens::generate("elastic/kibana/a").unwrap();
    let yaml = format!(
        "service_tokens:\n  elastic/kibana/a:\n    hash: \"{hash}\"\n    privileges: [manage_oidc]\n  elastic/fleet-server/b:\n    hash: nope\n    privileges: [x]\n  bad-name:\n    hash: \"{hash}\"\n    privileges: []\n  elastic/kibana/c:\n    hash: \"{hash}\"\n    privileges: []\n    secret: x\n"
    );
    let e = oidc_realm::config::load_str(&yaml, &std::env::temp_dir())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("service_tokens.elastic/fleet-server/b.hash: not a service token hash"),
        "{e}"
    );
    assert!(
        e.contains("service_tokens.elastic/fleet-server/b.privileges: unknown privilege [x]"),
        "{e}"
    );
    assert!(
        e.contains(
            "service_tokens.bad-name: a service token is named namespace/service/token_name"
        ),
        "{e}"
    );
    assert!(
        e.contains("service_tokens.elastic/kibana/c.secret: unknown key"),
        "{e}"
    );
    assert!(!e.contains("service_tokens.elastic/kibana/a"), "{e}");
    let ok = format!(
        "service_tokens:\n  elastic/kibana/a:\n    hash: \"{hash}\"\n    privileges: [manage_oidc]\n"
    );
    let l = oidc_realm::config::load_str(&ok, &std::env::temp_dir()).unwrap();
    assert_eq!(
        l.settings.service_tokens["elastic/kibana/a"].privileges,
        [Privilege::ManageOidc].into_iter().collect()
    );
}

#[actix_web::test]
async fn refresh_reuse_after_the_window_can_refuse_only() {
    for (policy, family_survives) in [
        (RefreshReuse::RevokeFamily, false),
        (RefreshReuse::Refuse, true),
    ] {
        let mut s = settings();
        s.token.refresh_reuse = policy;
        let t = app_with(s);
        let app = t.service().await;
        let (_, _, first) = send(
            &app,
            get_token(json!({"grant_type": "password", "username": ADMIN.0, "password": ADMIN.1})),
        )
        .await;
        let refresh =
            |r: &Value| get_token(json!({"grant_type": "refresh_token", "refresh_token": r}));
        let (s, _, second) = send(&app, refresh(&first["refresh_token"])).await;
        assert_eq!(s, 200);
        t.advance(Duration::from_secs(31));
        let (s, _, b) = send(&app, refresh(&first["refresh_token"])).await;
        assert_eq!(s, 400, "{policy:?}");
        assert_eq!(
            b,
            json!({"error": "invalid_grant", "error_description": "token has already been refreshed more than 30 seconds in the past"})
        );
        let (s, _, _) = send(
            &app,
            authenticate().insert_header(bearer(second["access_token"].as_str().unwrap())),
        )
        .await;
        assert_eq!(s == 200, family_survives, "{policy:?}: status {s}");
        let (s, _, _) = send(&app, refresh(&second["refresh_token"])).await;
        assert_eq!(s == 200, family_survives, "{policy:?}: status {s}");
    }
    let l =
        oidc_realm::config::load_str("token:\n  refresh_reuse: refuse\n", &std::env::temp_dir())
            .unwrap();
    assert_eq!(l.settings.token.refresh_reuse, RefreshReuse::Refuse);
    let e =
        oidc_realm::config::load_str("token:\n  refresh_reuse: ignore\n", &std::env::temp_dir())
            .unwrap_err()
            .to_string();
    assert!(e.contains("Invalid value [ignore] for [token.refresh_reuse]. Allowed values are [revoke_family, refuse]"), "{e}");
}

#[actix_web::test]
async fn compatibility_settings_from_yaml() {
    let l = oidc_realm::config::load_str(
        "compatibility:\n  product_header: false\n  version: 9.0.3\n",
        &std::env::temp_dir(),
    )
    .unwrap();
    assert!(!l.settings.compatibility.product_header);
    assert_eq!(l.settings.compatibility.version, "9.0.3");
    for bad in ["10.0.0", "8.19", "8.x.0", "latest"] {
        let e = oidc_realm::config::load_str(
            &format!("compatibility:\n  version: \"{bad}\"\n"),
            &std::env::temp_dir(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("compatibility.version: Invalid value"),
            "{bad}: {e}"
        );
    }
}

#[actix_web::test]
async fn more_media_type_and_parameter_edges() {
    let t = TestApp::new();
    let app = t.service().await;
    // Not a media type: 400, as Elasticsearch.
    let (s, _, b) = send(
        &app,
        authenticate()
            .insert_header(basic(ADMIN))
            .insert_header(("Accept", "not a media type")),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["type"], "media_type_header_exception");
    assert_eq!(
        b["error"]["caused_by"]["type"],
        "illegal_argument_exception"
    );
    assert_eq!(
        b["error"]["caused_by"]["reason"],
        "invalid media-type [not a media type]"
    );
    // A percent-encoded parameter name is the same parameter.
    let (_, _, b) = send(&app, TestRequest::get().uri("/?filter%5Fpath=tagline")).await;
    assert_eq!(b, json!({"tagline": "You Know, for Search"}));
    // A filter over the bounds is refused, not cut.
    let deep = "a.".repeat(200) + "b";
    let (s, _, b) = send(
        &app,
        TestRequest::get().uri(&format!("/?filter_path={deep}")),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["type"], "illegal_argument_exception");
    // pretty keeps Elasticsearch's field order.
    let (_, raw) = send_raw(
        &app,
        TestRequest::get()
            .uri("/_security/_authenticate?pretty")
            .insert_header(basic(ADMIN)),
    )
    .await;
    let text = std::str::from_utf8(&raw).unwrap();
    let order: Vec<usize> = [
        "\"username\"",
        "\"roles\"",
        "\"full_name\"",
        "\"authentication_type\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
}
