//! The proof table: (rule, user) → match for every operator and value kind, nesting, the
//! placement rules of `except`, and the examples of Elasticsearch's documentation; then
//! mapping bodies and the mapper.

use super::*;
use serde_json::json;

fn user(username: &str) -> UserModel {
    UserModel {
        username: username.into(),
        dn: None,
        groups: Vec::new(),
        metadata: Map::new(),
        realm_name: "oidc1".into(),
    }
}

fn jwong() -> UserModel {
    let mut metadata = Map::new();
    metadata.insert("oidc(email)".into(), json!("james.wong@staff.example.com"));
    metadata.insert("oidc(email_verified)".into(), json!(true));
    metadata.insert("oidc(level)".into(), json!(3));
    metadata.insert("oidc(score)".into(), json!(2.5));
    metadata.insert("oidc(amr)".into(), json!(["pwd", "otp"]));
    metadata.insert("oidc(nothing)".into(), json!(null));
    metadata.insert("department".into(), json!("engineering"));
    UserModel {
        username: "jwong".into(),
        dn: Some("CN=James Wong,OU=People,DC=Example,DC=com".into()),
        groups: vec![
            "Finance-Team".into(),
            "cn=admins,dc=example,dc=com".into(),
            "ops".into(),
        ],
        metadata,
        realm_name: "oidc1".into(),
    }
}

fn matches(rules: &Value, u: &UserModel) -> bool {
    let rule = rules::parse(rules, "rules").unwrap_or_else(|e| panic!("{rules}: {e}"));
    rule.matches(&Subject::new(u))
}

#[test]
fn rule_table() {
    let j = jwong();
    let plain = user("plain");
    let esadmin02 = user("esadmin02");
    let mut terminated = jwong();
    terminated
        .metadata
        .insert("terminated_date".into(), json!("2024-01-01"));
    #[rustfmt::skip]
    let table: Vec<(Value, &UserModel, bool)> = vec![
        // --- field: username (case-sensitive) ---
        (json!({"field": {"username": "jwong"}}), &j, true),
        (json!({"field": {"username": "JWONG"}}), &j, false),
        (json!({"field": {"username": "jw*"}}), &j, true),
        (json!({"field": {"username": "JW*"}}), &j, false),
        (json!({"field": {"username": "*"}}), &j, true),
        (json!({"field": {"username": "jw?ng*"}}), &j, true),
        (json!({"field": {"username": "jw?ng"}}), &j, false), // ? without * is literal
        (json!({"field": {"username": "/j.*g/"}}), &j, true),
        (json!({"field": {"username": "/J.*G/"}}), &j, false),
        (json!({"field": {"username": "/wong/"}}), &j, false), // whole value
        (json!({"field": {"username": ["a", "b", "jwong"]}}), &j, true),
        (json!({"field": {"username": ["a", "b"]}}), &j, false),
        (json!({"field": {"username": []}}), &j, false),
        (json!({"field": {"username": null}}), &j, false),
        (json!({"field": {"username": 1}}), &j, false),
        (json!({"field": {"username": true}}), &j, false),
        // --- field: realm.name ---
        (json!({"field": {"realm.name": "oidc1"}}), &j, true),
        (json!({"field": {"realm.name": "OIDC1"}}), &j, false),
        (json!({"field": {"realm.name": "oidc*"}}), &j, true),
        (json!({"field": {"realm.name": "saml1"}}), &j, false),
        // --- field: groups (case-insensitive, DN-aware, any value) ---
        (json!({"field": {"groups": "finance-team"}}), &j, true),
        (json!({"field": {"groups": "FINANCE-TEAM"}}), &j, true),
        (json!({"field": {"groups": "Finance-Team"}}), &j, true),
        (json!({"field": {"groups": "finance"}}), &j, false),
        (json!({"field": {"groups": "fin*"}}), &j, true),
        (json!({"field": {"groups": "FIN*"}}), &j, true),
        (json!({"field": {"groups": "/fin.*team/"}}), &j, true),
        (json!({"field": {"groups": "CN=Admins, DC=Example, DC=Com"}}), &j, true),
        (json!({"field": {"groups": "*,dc=example,dc=com"}}), &j, true),
        (json!({"field": {"groups": "*,dc=other,dc=com"}}), &j, false),
        (json!({"field": {"groups": ["x", "ops"]}}), &j, true),
        (json!({"field": {"groups": null}}), &j, false),
        (json!({"field": {"groups": null}}), &plain, false), // empty list: nothing matches
        (json!({"field": {"groups": "*"}}), &plain, false),
        (json!({"field": {"groups": 1}}), &j, false),
        // --- field: dn (case-insensitive, DN equality, sub-trees) ---
        (json!({"field": {"dn": "cn=james wong,ou=people,dc=example,dc=com"}}), &j, true),
        (json!({"field": {"dn": "CN=James Wong, OU=People, DC=example, DC=com"}}), &j, true),
        (json!({"field": {"dn": "cn=james wong,ou=people,dc=example"}}), &j, false),
        (json!({"field": {"dn": "*,ou=people,dc=example,dc=com"}}), &j, true),
        (json!({"field": {"dn": "*,OU=People,DC=Example,DC=Com"}}), &j, true),
        (json!({"field": {"dn": "*, ou=people, dc=example, dc=com"}}), &j, true), // via DN parse
        (json!({"field": {"dn": "*,ou=admin,dc=example,dc=com"}}), &j, false),
        (json!({"field": {"dn": "cn=james*"}}), &j, true),
        (json!({"field": {"dn": "/cn=james wong,.*/"}}), &j, true),
        (json!({"field": {"dn": null}}), &j, false),
        (json!({"field": {"dn": null}}), &plain, true), // absent dn is null
        (json!({"field": {"dn": "*"}}), &plain, false),
        // --- field: metadata.* (case-sensitive, typed) ---
        (json!({"field": {"metadata.oidc(email)": "*@staff.example.com"}}), &j, true),
        (json!({"field": {"metadata.oidc(email)": "*@STAFF.example.com"}}), &j, false),
        (json!({"field": {"metadata.oidc(email_verified)": true}}), &j, true),
        (json!({"field": {"metadata.oidc(email_verified)": false}}), &j, false),
        (json!({"field": {"metadata.oidc(email_verified)": "true"}}), &j, false),
        (json!({"field": {"metadata.oidc(level)": 3}}), &j, true),
        (json!({"field": {"metadata.oidc(level)": 3.7}}), &j, true), // rule numbers truncate
        (json!({"field": {"metadata.oidc(level)": "3"}}), &j, false),
        (json!({"field": {"metadata.oidc(score)": 2}}), &j, false), // 2.5 != 2
        (json!({"field": {"metadata.oidc(amr)": "otp"}}), &j, true), // any element
        (json!({"field": {"metadata.oidc(amr)": ["x", "pwd"]}}), &j, true),
        (json!({"field": {"metadata.oidc(amr)": "o*"}}), &j, true),
        (json!({"field": {"metadata.oidc(amr)": "sms"}}), &j, false),
        (json!({"field": {"metadata.oidc(nothing)": null}}), &j, true),
        (json!({"field": {"metadata.oidc(missing)": null}}), &j, true),
        (json!({"field": {"metadata.oidc(missing)": "*"}}), &j, false),
        (json!({"field": {"metadata.department": "engineering"}}), &j, true),
        // --- unknown field names: absent ---
        (json!({"field": {"name": null}}), &j, true),
        (json!({"field": {"name": "*"}}), &j, false),
        // --- any / all / except ---
        (json!({"any": []}), &j, false),
        (json!({"all": []}), &j, true),
        (json!({"any": [{"field": {"username": "x"}}, {"field": {"groups": "ops"}}]}), &j, true),
        (json!({"any": [{"field": {"username": "x"}}, {"field": {"groups": "y"}}]}), &j, false),
        (json!({"all": [{"field": {"username": "jwong"}}, {"field": {"groups": "ops"}}]}), &j, true),
        (json!({"all": [{"field": {"username": "jwong"}}, {"field": {"groups": "y"}}]}), &j, false),
        (json!({"all": [{"field": {"username": "jwong"}}, {"except": {"field": {"groups": "ops"}}}]}), &j, false),
        (json!({"all": [{"field": {"username": "jwong"}}, {"except": {"field": {"groups": "y"}}}]}), &j, true),
        (json!({"all": [{"except": {"any": [{"field": {"groups": "y"}}, {"field": {"username": "z"}}]}}]}), &j, true),
        (json!({"all": [{"except": {"all": [{"field": {"groups": "ops"}}, {"except": {"field": {"username": "z"}}}]}}]}), &j, false),
        // --- nesting to depth ---
        (json!({"any": [{"all": [{"any": [{"all": [{"field": {"username": "jwong"}}, {"except": {"field": {"dn": null}}}]}]}]}]}), &j, true),
        (json!({"any": [{"all": [{"any": [{"all": [{"field": {"username": "jwong"}}, {"except": {"field": {"dn": null}}}]}]}]}]}), &plain, false),
        // --- Elasticsearch documentation examples ---
        // Realm-wide role: everybody.
        (json!({"field": {"username": "*"}}), &plain, true),
        // A list of users.
        (json!({"field": {"username": ["esadmin01", "esadmin02"]}}), &esadmin02, true),
        // Every user of a realm.
        (json!({"field": {"realm.name": "oidc1"}}), &plain, true),
        // A user or a group.
        (json!({"any": [{"field": {"username": "esadmin"}}, {"field": {"groups": "cn=admins,dc=example,dc=com"}}]}), &j, true),
        // A DN sub-tree, and the same within one realm.
        (json!({"field": {"dn": "*,ou=people,dc=example,dc=com"}}), &j, true),
        (json!({"all": [{"field": {"dn": "*,ou=people,dc=example,dc=com"}}, {"field": {"realm.name": "ldap1"}}]}), &j, false),
        // The documentation's complex rule: admins by DN or name, in a group, not terminated.
        (json!({"all": [
            {"any": [{"field": {"dn": "*,ou=people,dc=example,dc=com"}}, {"field": {"username": ["es-admin", "es-system"]}}]},
            {"field": {"groups": "cn=admins,dc=example,dc=com"}},
            {"except": {"field": {"metadata.terminated_date": null}}}
        ]}), &j, false),
        (json!({"all": [
            {"any": [{"field": {"dn": "*,ou=people,dc=example,dc=com"}}, {"field": {"username": ["es-admin", "es-system"]}}]},
            {"field": {"groups": "cn=admins,dc=example,dc=com"}},
            {"except": {"field": {"metadata.terminated_date": null}}}
        ]}), &terminated, true),
        // Metadata match.
        (json!({"field": {"metadata.department": "engineering"}}), &plain, false),
    ];
    for (rules, u, expect) in &table {
        assert_eq!(matches(rules, u), *expect, "{rules} for {}", u.username);
    }
}

#[test]
fn except_placement() {
    for (rules, within) in [
        (json!({"except": {"field": {"username": "x"}}}), "rules"),
        (
            json!({"any": [{"except": {"field": {"username": "x"}}}]}),
            "any",
        ),
        (
            json!({"all": [{"except": {"except": {"field": {"username": "x"}}}}]}),
            "except",
        ),
        (
            json!({"all": [{"all": [{"any": [{"except": {"field": {"username": "x"}}}]}]}]}),
            "any",
        ),
    ] {
        let e = rules::parse(&rules, "rules").unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "failed to parse rules expression. field [except] is not allowed within [{within}]"
            ),
            "{rules}"
        );
    }
    // Directly inside `all`, at any depth, is fine.
    rules::parse(
        &json!({"any": [{"all": [{"except": {"field": {"username": "x"}}}]}]}),
        "rules",
    )
    .unwrap();
}

fn mapping(body: Value) -> Result<RoleMapping, MappingError> {
    RoleMapping::parse("m", &body, "")
}

fn parse_message(e: MappingError) -> (String, String) {
    match e {
        MappingError::Parse { path, message } => (path, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn mapping_bodies() {
    let ok = mapping(json!({
        "enabled": true,
        "roles": ["finance_data"],
        "rules": {"all": [{"field": {"realm.name": "oidc1"}}, {"field": {"groups": "finance-team"}}]},
        "metadata": {"version": 1}
    }))
    .unwrap();
    assert_eq!(
        ok.to_es_json(),
        json!({
            "enabled": true,
            "roles": ["finance_data"],
            "rules": {"all": [{"field": {"realm.name": "oidc1"}}, {"field": {"groups": "finance-team"}}]},
            "metadata": {"version": 1}
        })
    );
    let t = mapping(json!({
        "enabled": false,
        "role_templates": [
            {"template": {"source": "_user_{{username}}"}},
            {"template": "{\"source\":\"{{#tojson}}groups{{/tojson}}\"}", "format": "json"}
        ],
        "rules": {"field": {"username": "*"}}
    }))
    .unwrap();
    assert_eq!(
        t.to_es_json(),
        json!({
            "enabled": false,
            "role_templates": [
                {"template": "{\"source\":\"_user_{{username}}\"}", "format": "string"},
                {"template": "{\"source\":\"{{#tojson}}groups{{/tojson}}\"}", "format": "json"}
            ],
            "rules": {"field": {"username": "*"}},
            "metadata": {}
        })
    );
    // The echoed form parses back to the same.
    let again = RoleMapping::parse("m", &t.to_es_json(), "").unwrap();
    assert_eq!(again.to_es_json(), t.to_es_json());

    let rules = json!({"field": {"username": "*"}});
    let cases = [
        (json!({"roles": ["a"], "rules": rules}), "", "failed to parse role-mapping [m]. missing field [enabled]"),
        (json!({"enabled": true, "rules": rules}), "", "failed to parse role-mapping [m]. missing field [roles]"),
        (json!({"enabled": true, "roles": ["a"]}), "", "failed to parse role-mapping [m]. missing field [rules]"),
        (json!({"enabled": "yes", "roles": ["a"], "rules": rules}), "enabled", "failed to parse role-mapping [m]. field [enabled] must be a boolean but found [VALUE_STRING]"),
        (json!({"enabled": true, "roles": ["a", 1], "rules": rules}), "roles[1]", "failed to parse role-mapping [m]. field [roles] must be an array of strings but found [VALUE_NUMBER]"),
        (json!({"enabled": true, "roles": ["a"], "rules": rules, "extra": 1}), "extra", "failed to parse role-mapping [m]. unknown field [extra]"),
        (json!({"enabled": true, "roles": ["a"], "rules": rules, "metadata": []}), "metadata", "failed to parse role-mapping [m]. field [metadata] must be an object but found [START_ARRAY]"),
        (json!({"enabled": true, "roles": ["a"], "rules": {"all": [{"field": {"username": "a"}}, {"field": {"a": 1, "b": 2}}]}}), "rules.all[1].field", "failed to parse rules expression. object [field] contains multiple fields"),
        (json!({"enabled": true, "role_templates": [{"format": "json"}], "rules": rules}), "role_templates[0]", "failed to parse role-mapping [m]. role template is missing field [template]"),
        (json!({"enabled": true, "role_templates": [{"template": {"source": "x"}, "format": "yaml"}], "rules": rules}), "role_templates[0].format", "failed to parse role-mapping [m]. role template [format] must be [string] or [json]"),
        (json!({"enabled": true, "role_templates": [{"template": {"source": "{{#x}}{{/x}}"}}], "rules": rules}), "role_templates[0].template.source", "failed to parse role-mapping [m]. section {{#x}} is not supported in role templates (only {{#tojson}} and {{#join}})"),
        (json!({"enabled": true, "role_templates": [{"template": "{{username}}"}], "rules": rules}), "role_templates[0].template", "failed to parse role-mapping [m]. role template [template] as a string must hold a script object in JSON, e.g. {\"source\":\"{{username}}\"}"),
        (json!({"enabled": true, "role_templates": [{"template": {"id": "stored"}}], "rules": rules}), "role_templates[0].template.id", "failed to parse role-mapping [m]. stored scripts are not supported in role templates; give [source]"),
        (json!({"enabled": true, "role_templates": [{"template": {"source": "x", "lang": "painless"}}], "rules": rules}), "role_templates[0].template.lang", "failed to parse role-mapping [m]. role templates support only [lang] [mustache]"),
        (json!([]), "", "failed to parse role-mapping [m]. expected an object but found [START_ARRAY] instead"),
    ];
    for (body, path, message) in cases {
        let (p, m) = parse_message(mapping(body.clone()).unwrap_err());
        assert_eq!((p.as_str(), m.as_str()), (path, message), "{body}");
    }
    let validation = [
        (
            json!({"enabled": true, "roles": [], "rules": rules}),
            vec!["role-mapping roles or role-templates are missing"],
        ),
        (
            json!({"enabled": true, "roles": [], "role_templates": [], "rules": rules}),
            vec!["role-mapping roles or role-templates are missing"],
        ),
        (
            json!({"enabled": true, "roles": ["a"], "role_templates": [{"template": {"source": "b"}}], "rules": rules, "metadata": {"_x": 1}}),
            vec![
                "role-mapping cannot have both roles and role-templates",
                "metadata keys may not start with [_]",
            ],
        ),
    ];
    for (body, expect) in validation {
        assert_eq!(
            mapping(body.clone()).unwrap_err(),
            MappingError::Validation(expect.iter().map(|s| s.to_string()).collect()),
            "{body}"
        );
    }
    // Config paths carry their prefix.
    let e = RoleMapping::parse(
        "admins",
        &json!({"enabled": true, "roles": ["a"], "rules": {"all": [{"except": {"except": {}}}]}}),
        "role_mappings.admins",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to parse rules expression. field [except] is not allowed within [except] (at [role_mappings.admins.rules.all[0].except.except])"
    );
}

fn compiled(name: &str, body: Value) -> Arc<RoleMapping> {
    Arc::new(RoleMapping::parse(name, &body, "").unwrap())
}

#[test]
fn mapper_unions_sorted_roles_of_enabled_matching_mappings() {
    let file = vec![compiled(
        "everyone",
        json!({"enabled": true, "roles": ["user", "b-role"], "rules": {"field": {"realm.name": "oidc1"}}}),
    )];
    let api = vec![
        compiled(
            "finance",
            json!({"enabled": true, "roles": ["finance_data", "user"], "rules": {"field": {"groups": "finance-team"}}}),
        ),
        compiled(
            "off",
            json!({"enabled": false, "roles": ["disabled"], "rules": {"field": {"username": "*"}}}),
        ),
        compiled(
            "other-realm",
            json!({"enabled": true, "roles": ["saml"], "rules": {"field": {"realm.name": "saml1"}}}),
        ),
        compiled(
            "templates",
            json!({"enabled": true, "role_templates": [
            {"template": {"source": "_user_{{username}}"}},
            {"template": {"source": "{{#tojson}}groups{{/tojson}}"}, "format": "json"},
            {"template": {"source": "{{dn}}"}},
            {"template": {"source": "{{username}}"}, "format": "json"}
        ], "rules": {"field": {"username": "jwong"}}}),
        ),
        // Same name as a file mapping: shadowed.
        compiled(
            "everyone",
            json!({"enabled": true, "roles": ["shadowed"], "rules": {"field": {"username": "*"}}}),
        ),
    ];
    let mapper = RoleMapper::new(file, api);
    assert_eq!(mapper.len(), 5);
    assert_eq!(mapper.all().len(), 5);
    assert!(mapper.is_file("everyone"));
    assert_eq!(mapper.get("everyone").unwrap().1, Source::File);
    assert_eq!(mapper.get("off").unwrap().1, Source::Api);
    assert_eq!(
        mapper.roles_for(&jwong()),
        [
            "CN=James Wong,OU=People,DC=Example,DC=com",
            "Finance-Team",
            "_user_jwong",
            "b-role",
            "cn=admins,dc=example,dc=com",
            "finance_data",
            "ops",
            "user"
        ]
    );
    assert_eq!(mapper.roles_for(&user("plain")), ["b-role", "user"]);
    let mut saml = user("x");
    saml.realm_name = "saml1".into();
    assert_eq!(mapper.roles_for(&saml), ["saml"]);
    // Swapping the configuration's mappings keeps the API's.
    let swapped = mapper.with_file(Vec::new());
    assert!(!swapped.is_file("everyone"));
    assert_eq!(swapped.roles_for(&user("plain")), ["shadowed"]);
    assert_eq!(
        RoleMapper::default().roles_for(&jwong()),
        Vec::<String>::new()
    );
}
