//! Role mappings through HTTP: round trips, Elasticsearch's errors, privileges, mappings from
//! the configuration (read-only, reloadable), and persistence across a restart on redb.

mod common;

use actix_web::test::TestRequest;
use common::*;
use oidc_realm::roles::{RoleMapping, UserModel};
use oidc_realm::store::{RedbStore, Store};
use serde_json::{json, Value};
use std::sync::Arc;

const PATH: &str = "/_security/role_mapping";

fn put(name: &str, body: Value) -> TestRequest {
    TestRequest::put()
        .uri(&format!("{PATH}/{name}"))
        .set_json(body)
        .insert_header(basic(ADMIN))
}

fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path).insert_header(basic(ADMIN))
}

fn del(name: &str) -> TestRequest {
    TestRequest::delete()
        .uri(&format!("{PATH}/{name}"))
        .insert_header(basic(ADMIN))
}

fn finance() -> Value {
    json!({
        "enabled": true,
        "roles": ["finance_data"],
        "rules": {"all": [{"field": {"realm.name": "oidc1"}}, {"field": {"groups": "finance-team"}}]},
        "metadata": {"version": 1}
    })
}

fn jwong() -> UserModel {
    UserModel {
        username: "jwong".into(),
        groups: vec!["Finance-Team".into()],
        realm_name: "oidc1".into(),
        ..Default::default()
    }
}

fn error(body: &Value) -> (&str, &str) {
    (
        body["error"]["type"].as_str().unwrap_or(""),
        body["error"]["reason"].as_str().unwrap_or(""),
    )
}

#[actix_web::test]
async fn round_trip() {
    let t = TestApp::new();
    let app = t.service().await;
    // Nothing yet.
    assert_eq!(send(&app, get(PATH)).await.2, json!({}));
    let (s, _, b) = send(&app, put("finance", finance())).await;
    assert_eq!((s, b), (200, json!({"role_mapping": {"created": true}})));
    assert_eq!(t.state.roles_for(&jwong()), ["finance_data"]);
    // POST works too, and replaces.
    let mut changed = finance();
    changed["roles"] = json!(["finance_data", "reports"]);
    let (s, _, b) = send(
        &app,
        TestRequest::post()
            .uri(&format!("{PATH}/finance?refresh=wait_for"))
            .set_json(&changed)
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!((s, b), (200, json!({"role_mapping": {"created": false}})));
    assert_eq!(t.state.roles_for(&jwong()), ["finance_data", "reports"]);

    let templates = json!({
        "enabled": true,
        "role_templates": [
            {"template": {"source": "_user_{{username}}"}},
            {"template": {"source": "{{#tojson}}groups{{/tojson}}"}, "format": "json"}
        ],
        "rules": {"field": {"username": "*"}}
    });
    assert_eq!(send(&app, put("templates", templates)).await.0, 200);
    assert_eq!(
        t.state.roles_for(&jwong()),
        ["Finance-Team", "_user_jwong", "finance_data", "reports"]
    );

    let expected_finance = json!({
        "enabled": true,
        "roles": ["finance_data", "reports"],
        "rules": {"all": [{"field": {"realm.name": "oidc1"}}, {"field": {"groups": "finance-team"}}]},
        "metadata": {"version": 1},
        "source": "api"
    });
    let expected_templates = json!({
        "enabled": true,
        "role_templates": [
            {"template": "{\"source\":\"_user_{{username}}\"}", "format": "string"},
            {"template": "{\"source\":\"{{#tojson}}groups{{/tojson}}\"}", "format": "json"}
        ],
        "rules": {"field": {"username": "*"}},
        "metadata": {},
        "source": "api"
    });
    let (s, _, b) = send(&app, get(&format!("{PATH}/finance"))).await;
    assert_eq!((s, b), (200, json!({"finance": expected_finance})));
    let (s, _, b) = send(&app, get(PATH)).await;
    assert_eq!(
        (s, b),
        (
            200,
            json!({"finance": expected_finance, "templates": expected_templates})
        )
    );
    // Comma-separated: those found.
    let (s, _, b) = send(&app, get(&format!("{PATH}/templates,nope"))).await;
    assert_eq!((s, b), (200, json!({"templates": expected_templates})));
    // None found: 404 {}.
    let (s, _, b) = send(&app, get(&format!("{PATH}/nope,other"))).await;
    assert_eq!((s, b), (404, json!({})));
    // The GET form of a mapping can be PUT back (minus our extra "source").
    let mut echoed = expected_templates.clone();
    echoed.as_object_mut().unwrap().remove("source");
    let (s, _, b) = send(&app, put("templates", echoed)).await;
    assert_eq!((s, b), (200, json!({"role_mapping": {"created": false}})));

    let (s, _, b) = send(&app, del("finance")).await;
    assert_eq!((s, b), (200, json!({"found": true})));
    let (s, _, b) = send(&app, del("finance")).await;
    assert_eq!((s, b), (404, json!({"found": false})));
    assert_eq!(t.state.roles_for(&jwong()), ["Finance-Team", "_user_jwong"]);
    // A disabled mapping grants nothing.
    let mut off = finance();
    off["enabled"] = json!(false);
    assert_eq!(send(&app, put("finance", off)).await.0, 200);
    assert_eq!(t.state.roles_for(&jwong()), ["Finance-Team", "_user_jwong"]);
}

#[actix_web::test]
async fn invalid_bodies_get_elasticsearch_errors() {
    let t = TestApp::new();
    let app = t.service().await;
    let rules = json!({"field": {"username": "*"}});
    let cases = [
        (
            json!({"roles": ["a"], "rules": rules}),
            "parse_exception",
            "failed to parse role-mapping [m]. missing field [enabled]".to_string(),
        ),
        (
            json!({"enabled": true, "roles": ["a"], "rules": {"all": [{"field": {"username": "a"}}, {"field": {"a": 1, "b": 2}}]}}),
            "parse_exception",
            "failed to parse rules expression. object [field] contains multiple fields (at [rules.all[1].field])".to_string(),
        ),
        (
            json!({"enabled": true, "roles": ["a"], "rules": {"except": {"field": {"username": "a"}}}}),
            "parse_exception",
            "failed to parse rules expression. field [except] is not allowed within [rules] (at [rules.except])".to_string(),
        ),
        (
            json!({"enabled": true, "roles": ["a"], "rules": {"field": {"groups": "/a&b/"}}}),
            "parse_exception",
            "failed to parse rules expression. invalid regular expression [/a&b/]: the intersection operator `&` is not supported (at [rules.field.groups])".to_string(),
        ),
        (
            json!({"enabled": true, "roles": [], "rules": rules}),
            "action_request_validation_exception",
            "Validation Failed: 1: role-mapping roles or role-templates are missing;".to_string(),
        ),
        (
            json!({"enabled": true, "roles": ["a"], "role_templates": [{"template": {"source": "x"}}], "rules": rules, "metadata": {"_r": 1}}),
            "action_request_validation_exception",
            "Validation Failed: 1: role-mapping cannot have both roles and role-templates;2: metadata keys may not start with [_];".to_string(),
        ),
    ];
    for (body, kind, reason) in cases {
        let (s, _, b) = send(&app, put("m", body.clone())).await;
        assert_eq!(s, 400, "{body}: {b}");
        assert_eq!(error(&b), (kind, reason.as_str()), "{body}");
    }
    // Duplicate keys, at any depth, and malformed JSON.
    for raw in [
        r#"{"enabled": true, "enabled": false, "roles": ["a"], "rules": {"field": {"username": "*"}}}"#,
        r#"{"enabled": true, "roles": ["a"], "rules": {"field": {"username": "*", "username": "x"}}}"#,
        r#"{"enabled": true,"#,
    ] {
        let (s, _, b) = send(
            &app,
            TestRequest::put()
                .uri(&format!("{PATH}/m"))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(raw)
                .insert_header(basic(ADMIN)),
        )
        .await;
        assert_eq!(s, 400, "{raw}: {b}");
        assert_eq!(error(&b).0, "x_content_parse_exception", "{raw}");
    }
    // Not JSON: 406 (as Elasticsearch). Unknown parameter: 400.
    let (s, _, _) = send(
        &app,
        TestRequest::put()
            .uri(&format!("{PATH}/m"))
            .insert_header(("Content-Type", "text/plain"))
            .set_payload("{}")
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(s, 406);
    let (s, _, b) = send(
        &app,
        TestRequest::put()
            .uri(&format!("{PATH}/m?foo=1"))
            .set_json(finance())
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        error(&b).1,
        "request [/_security/role_mapping/m] contains unrecognized parameter: [foo]"
    );
    // Nothing was stored.
    assert_eq!(send(&app, get(PATH)).await.2, json!({}));
}

#[actix_web::test]
async fn privileges() {
    let t = TestApp::new();
    let app = t.service().await;
    let (s, _, b) = send(
        &app,
        TestRequest::put()
            .uri(&format!("{PATH}/m"))
            .set_json(finance())
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(
        error(&b).1,
        "action [cluster:admin/xpack/security/role_mapping/put] is unauthorized for user [facilitator] with effective roles [], this action is granted by the cluster privileges [manage_security,all]"
    );
    let (s, _, b) = send(
        &app,
        TestRequest::get()
            .uri(PATH)
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(
        (s, &b["error"]["reason_code"]),
        (403, &json!("action_unauthorized")),
        "{b}"
    );
    let (s, _, b) = send(
        &app,
        TestRequest::delete()
            .uri(&format!("{PATH}/m"))
            .insert_header(basic(FACILITATOR)),
    )
    .await;
    assert_eq!(
        (s, &b["error"]["reason_code"]),
        (403, &json!("action_unauthorized")),
        "{b}"
    );
    let (s, _, b) = send(&app, TestRequest::get().uri(PATH)).await;
    assert_eq!(
        (s, &b["error"]["reason_code"]),
        (401, &json!("credentials_missing")),
        "{b}"
    );
    let (s, _, b) = send(
        &app,
        TestRequest::patch()
            .uri(&format!("{PATH}/m"))
            .insert_header(basic(ADMIN)),
    )
    .await;
    assert_eq!(
        (s, &b["error"]["reason_code"]),
        (405, &json!("method_not_allowed")),
        "{b}"
    );
}

fn file_mapping(name: &str, role: &str) -> Arc<RoleMapping> {
    Arc::new(
        RoleMapping::parse(
            name,
            &json!({"enabled": true, "roles": [role], "rules": {"field": {"realm.name": "oidc1"}}}),
            &format!("role_mappings.{name}"),
        )
        .unwrap(),
    )
}

#[actix_web::test]
async fn file_mappings_are_read_only_and_reloadable() {
    let mut settings = settings();
    settings.role_mappings = vec![file_mapping("everyone", "user")];
    let t = TestApp::with(
        settings.clone(),
        Arc::new(oidc_realm::store::MemoryStore::new()),
    );
    let app = t.service().await;
    let (s, _, b) = send(&app, get(&format!("{PATH}/everyone"))).await;
    assert_eq!(s, 200);
    assert_eq!(b["everyone"]["source"], "file");
    assert_eq!(b["everyone"]["roles"], json!(["user"]));
    assert_eq!(t.state.roles_for(&jwong()), ["user"]);

    for req in [put("everyone", finance()), del("everyone")] {
        let (s, _, b) = send(&app, req).await;
        assert_eq!(s, 400, "{b}");
        let (kind, reason) = error(&b);
        assert_eq!(kind, "illegal_argument_exception");
        assert!(
            reason.starts_with("role mapping [everyone] is defined in the configuration")
                && reason.contains("read-only through the API"),
            "{reason}"
        );
    }
    assert_eq!(send(&app, put("finance", finance())).await.0, 200);
    assert_eq!(t.state.roles_for(&jwong()), ["finance_data", "user"]);

    // Reload with other file mappings: the API mapping stays.
    settings.role_mappings = vec![file_mapping("staff", "staff")];
    t.state.swap_settings(settings, Vec::new()).unwrap();
    assert_eq!(t.state.roles_for(&jwong()), ["finance_data", "staff"]);
    let (_, _, b) = send(&app, get(PATH)).await;
    let names: Vec<&String> = b.as_object().unwrap().keys().collect();
    assert_eq!(names, ["finance", "staff"]);
    assert_eq!(b["staff"]["source"], "file");
    assert_eq!(b["finance"]["source"], "api");
    // The old file name is free now.
    assert_eq!(send(&app, del("everyone")).await.0, 404);
}

fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(&dir.path().join("data/oidc-realm.redb")).unwrap())
}

#[actix_web::test]
async fn mappings_survive_a_restart_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    {
        let t = TestApp::with_store(open(&dir));
        let app = t.service().await;
        assert_eq!(send(&app, put("finance", finance())).await.0, 200);
        assert_eq!(send(&app, put("gone", finance())).await.0, 200);
        assert_eq!(send(&app, del("gone")).await.0, 200);
    }
    // As `serve` does: load before the first login.
    let t = TestApp::with_store(open(&dir));
    assert!(t.state.roles_for(&jwong()).is_empty());
    assert!(t.state.load_role_mappings().await.unwrap().is_empty());
    assert_eq!(t.state.roles_for(&jwong()), ["finance_data"]);
    let app = t.service().await;
    let (s, _, b) = send(&app, get(PATH)).await;
    assert_eq!(s, 200);
    assert_eq!(b.as_object().unwrap().len(), 1);
    assert_eq!(b["finance"]["roles"], json!(["finance_data"]));
    drop(app);
    drop(t);
    // Without an explicit load, the API loads on first use.
    let t = TestApp::with_store(open(&dir));
    let app = t.service().await;
    let (s, _, b) = send(&app, get(&format!("{PATH}/finance"))).await;
    assert_eq!((s, b["finance"]["source"].clone()), (200, json!("api")));
    assert_eq!(t.state.roles_for(&jwong()), ["finance_data"]);
}
