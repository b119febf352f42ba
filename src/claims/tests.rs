use super::*;
use regex::Regex;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn rule(claim: &str, pattern: Option<&str>) -> ClaimRule {
    ClaimRule {
        claim: claim.into(),
        pattern: pattern.map(|p| Regex::new(p).unwrap()),
    }
}

fn settings(principal: ClaimRule) -> ClaimSettings {
    ClaimSettings {
        principal,
        groups: None,
        name: None,
        mail: None,
        dn: None,
    }
}

fn full_settings() -> ClaimSettings {
    ClaimSettings {
        principal: rule("sub", None),
        groups: Some(rule("groups", None)),
        name: Some(rule("name", None)),
        mail: Some(rule("email", None)),
        dn: Some(rule("dn", None)),
    }
}

fn principal_of(claims: Value, settings: &ClaimSettings) -> Result<String, ClaimsError> {
    map_claims(&obj(claims), settings, false).map(|u| u.principal)
}

// ---------------------------------------------------------------------------------------------
// claims.*

#[test]
fn maps_all_fields() {
    let claims = json!({
        "sub": "jwong",
        "groups": ["finance", "hr"],
        "name": "James Wong",
        "email": "james.wong@staff.example.com",
        "dn": "CN=James Wong,OU=staff,DC=example,DC=com"
    });
    let u = map_claims(&obj(claims), &full_settings(), true).unwrap();
    assert_eq!(u.principal, "jwong");
    assert_eq!(u.groups, vec!["finance", "hr"]);
    assert_eq!(u.name.as_deref(), Some("James Wong"));
    assert_eq!(u.mail.as_deref(), Some("james.wong@staff.example.com"));
    assert_eq!(
        u.dn.as_deref(),
        Some("CN=James Wong,OU=staff,DC=example,DC=com")
    );
}

#[test]
fn absent_and_null_claims_give_no_value() {
    let u = map_claims(
        &obj(json!({"sub": "a", "name": null})),
        &full_settings(),
        false,
    )
    .unwrap();
    assert!(u.groups.is_empty());
    assert_eq!(u.name, None);
    assert_eq!(u.mail, None);
    assert_eq!(u.dn, None);
}

#[test]
fn unconfigured_claims_are_not_mapped() {
    let u = map_claims(
        &obj(json!({"sub": "a", "groups": ["g"], "name": "n"})),
        &settings(rule("sub", None)),
        false,
    )
    .unwrap();
    assert!(u.groups.is_empty());
    assert_eq!(u.name, None);
}

#[test]
fn uri_claim_names_are_top_level_keys() {
    let mut s = settings(rule("sub", None));
    s.groups = Some(rule("http://example.info/claims/groups", None));
    let u = map_claims(
        &obj(json!({"sub": "a", "http://example.info/claims/groups": ["x", "y"]})),
        &s,
        false,
    )
    .unwrap();
    assert_eq!(u.groups, vec!["x", "y"]);
    // No nested paths: `address.country` is a top-level key, not a path.
    let mut s = settings(rule("sub", None));
    s.name = Some(rule("address.country", None));
    let u = map_claims(
        &obj(json!({"sub": "a", "address": {"country": "NZ"}})),
        &s,
        false,
    )
    .unwrap();
    assert_eq!(u.name, None);
}

#[test]
fn numbers_and_booleans_map_as_text() {
    let mut s = settings(rule("uid", None));
    s.groups = Some(rule("groups", None));
    s.name = Some(rule("flag", None));
    let u = map_claims(
        &obj(json!({"uid": 1001, "groups": [7, true, "g", 1.5], "flag": false})),
        &s,
        false,
    )
    .unwrap();
    assert_eq!(u.principal, "1001");
    assert_eq!(u.groups, vec!["7", "true", "g", "1.5"]);
    assert_eq!(u.name.as_deref(), Some("false"));
}

#[test]
fn arrays_drop_nulls_and_single_valued_fields_take_the_first() {
    let mut s = settings(rule("sub", None));
    s.mail = Some(rule("emails", None));
    s.groups = Some(rule("groups", None));
    let u = map_claims(
        &obj(json!({
            "sub": ["first", "second"],
            "emails": [null, "a@example.org", "b@example.org"],
            "groups": [null, "g1", null]
        })),
        &s,
        false,
    )
    .unwrap();
    assert_eq!(u.principal, "first");
    assert_eq!(u.mail.as_deref(), Some("a@example.org"));
    assert_eq!(u.groups, vec!["g1"]);
}

#[test]
fn groups_are_deduplicated_in_order_of_first_appearance() {
    let mut s = settings(rule("sub", None));
    s.groups = Some(rule("groups", None));
    let u = map_claims(
        &obj(json!({"sub": "a", "groups": ["b", "a", "b", "c", "a", ""]})),
        &s,
        false,
    )
    .unwrap();
    assert_eq!(u.groups, vec!["b", "a", "c"]);
    // A single string is one group.
    let u = map_claims(&obj(json!({"sub": "a", "groups": "solo"})), &s, false).unwrap();
    assert_eq!(u.groups, vec!["solo"]);
}

#[test]
fn an_object_claim_is_an_error_naming_setting_and_claim() {
    let mut s = settings(rule("sub", None));
    s.groups = Some(rule("groups", None));
    let e = map_claims(
        &obj(json!({"sub": "a", "groups": {"secret-value": 1}})),
        &s,
        false,
    )
    .unwrap_err();
    assert_eq!(e.code(), "claim_value_unsupported");
    assert_eq!(
        e.to_string(),
        "claims.groups: claim [groups] is an object; expected a string or an array of strings"
    );
    assert!(!e.to_string().contains("secret-value"));

    let e = principal_of(json!({"sub": {"x": 1}}), &settings(rule("sub", None))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "claims.principal: claim [sub] is an object; expected a string or an array of strings"
    );
}

#[test]
fn nested_arrays_and_object_elements_are_errors() {
    let mut s = settings(rule("sub", None));
    s.name = Some(rule("n", None));
    let e = map_claims(&obj(json!({"sub": "a", "n": ["x", ["y"]]})), &s, false).unwrap_err();
    assert_eq!(
        e,
        ClaimsError::UnsupportedValue {
            setting: "claims.name",
            claim: "n".into(),
            found: "contains a nested array"
        }
    );
    let e = map_claims(&obj(json!({"sub": "a", "n": [{"y": 1}]})), &s, false).unwrap_err();
    assert!(e
        .to_string()
        .contains("claims.name: claim [n] contains an object"));
    // Even when the error is in a value the first-value rule would not reach.
    let e = map_claims(&obj(json!({"sub": "a", "n": ["ok", {"y": 1}]})), &s, false).unwrap_err();
    assert_eq!(e.code(), "claim_value_unsupported");
}

#[test]
fn missing_principal_is_an_error_naming_the_claim() {
    let s = settings(rule("preferred_username", None));
    for claims in [
        json!({"sub": "a"}),
        json!({"preferred_username": null}),
        json!({"preferred_username": []}),
        json!({"preferred_username": [null]}),
        json!({"preferred_username": ""}),
    ] {
        let e = principal_of(claims.clone(), &s).unwrap_err();
        assert_eq!(
            e,
            ClaimsError::PrincipalMissing {
                claim: "preferred_username".into(),
                pattern: false
            },
            "{claims}"
        );
        assert_eq!(e.code(), "principal_missing");
        assert!(e.to_string().contains("[preferred_username]"));
    }
}

// ---------------------------------------------------------------------------------------------
// claim_patterns.*

const STAFF_ANCHORED: &str = r"^([^@]+)@staff\.example\.com$";
const STAFF_UNANCHORED: &str = r"([^@]+)@staff\.example\.com";

#[test]
fn principal_pattern_extracts_group_one() {
    let s = settings(rule("email", Some(STAFF_ANCHORED)));
    assert_eq!(
        principal_of(json!({"email": "james.wong@staff.example.com"}), &s).unwrap(),
        "james.wong"
    );
}

#[test]
fn principal_pattern_mismatch_fails_without_showing_values() {
    let s = settings(rule("email", Some(STAFF_ANCHORED)));
    let e = principal_of(json!({"email": "x@other.com"}), &s).unwrap_err();
    assert_eq!(
        e,
        ClaimsError::PrincipalMissing {
            claim: "email".into(),
            pattern: true
        }
    );
    let shown = e.to_string();
    assert!(shown.contains("claim_patterns.principal"), "{shown}");
    assert!(shown.contains("[email]"), "{shown}");
    assert!(!shown.contains("other.com"), "{shown}");
}

#[test]
fn anchoring_matters_because_patterns_are_searched() {
    // Why the config warns about unanchored patterns: find semantics.
    let evil = json!({"email": "admin@staff.example.com.attacker.net"});
    let anchored = settings(rule("email", Some(STAFF_ANCHORED)));
    assert_eq!(
        principal_of(evil.clone(), &anchored).unwrap_err().code(),
        "principal_missing"
    );
    let unanchored = settings(rule("email", Some(STAFF_UNANCHORED)));
    assert_eq!(principal_of(evil, &unanchored).unwrap(), "admin");
    // Search, not whole-match: a match in the middle of the value counts.
    let s = settings(rule("upn", Some(r"user=(\w+)")));
    assert_eq!(
        principal_of(json!({"upn": "prefix user=bob; suffix"}), &s).unwrap(),
        "bob"
    );
}

#[test]
fn principal_pattern_takes_the_first_matching_value() {
    let s = settings(rule("emails", Some(STAFF_ANCHORED)));
    assert_eq!(
        principal_of(
            json!({"emails": ["x@other.com", "jane@staff.example.com", "joe@staff.example.com"]}),
            &s
        )
        .unwrap(),
        "jane"
    );
}

#[test]
fn empty_or_absent_group_one_drops_the_value() {
    // Group 1 empty.
    let s = settings(rule("email", Some(r"^([^@]*)@staff\.example\.com$")));
    assert_eq!(
        principal_of(json!({"email": "@staff.example.com"}), &s)
            .unwrap_err()
            .code(),
        "principal_missing"
    );
    // Group 1 did not participate.
    let s = settings(rule("email", Some(r"^(?:(admin)|user)@x$")));
    assert_eq!(
        principal_of(json!({"email": "user@x"}), &s)
            .unwrap_err()
            .code(),
        "principal_missing"
    );
    assert_eq!(
        principal_of(json!({"email": "admin@x"}), &s).unwrap(),
        "admin"
    );
}

#[test]
fn groups_pattern_filters_and_extracts() {
    let mut s = settings(rule("sub", None));
    s.groups = Some(rule(
        "groups",
        Some(r"^CN=([^,]+),OU=groups,DC=example,DC=com$"),
    ));
    let u = map_claims(
        &obj(json!({
            "sub": "a",
            "groups": [
                "CN=finance,OU=groups,DC=example,DC=com",
                "CN=ignored,OU=other,DC=example,DC=com",
                "plain",
                "CN=hr,OU=groups,DC=example,DC=com",
                "CN=finance,OU=groups,DC=example,DC=com"
            ]
        })),
        &s,
        false,
    )
    .unwrap();
    assert_eq!(u.groups, vec!["finance", "hr"]);
    // Nothing matches: no groups, not an error.
    let u = map_claims(&obj(json!({"sub": "a", "groups": ["x"]})), &s, false).unwrap();
    assert!(u.groups.is_empty());
}

#[test]
fn name_mail_dn_patterns_first_match_or_absent() {
    let mut s = settings(rule("sub", None));
    s.name = Some(rule("name", Some(r"^Dr\. (.+)$")));
    s.mail = Some(rule("emails", Some(r"^(.+@example\.org)$")));
    s.dn = Some(rule("dn", Some(r"^(CN=.+)$")));
    let u = map_claims(
        &obj(json!({
            "sub": "a",
            "name": "Mr. Smith",
            "emails": ["x@other.org", "a@example.org", "b@example.org"],
            "dn": "CN=a,DC=x"
        })),
        &s,
        false,
    )
    .unwrap();
    assert_eq!(u.name, None);
    assert_eq!(u.mail.as_deref(), Some("a@example.org"));
    assert_eq!(u.dn.as_deref(), Some("CN=a,DC=x"));
}

#[test]
fn patterns_apply_to_number_text() {
    let s = settings(rule("employee", Some(r"^(\d{4})\d*$")));
    assert_eq!(
        principal_of(json!({"employee": 123456}), &s).unwrap(),
        "1234"
    );
}

// ---------------------------------------------------------------------------------------------
// Metadata

#[test]
fn metadata_has_scalars_and_scalar_arrays_only() {
    let claims = json!({
        "sub": "u1",
        "email_verified": true,
        "age": 42,
        "ratio": 0.5,
        "groups": ["a", "b"],
        "mixed": ["a", 1, false],
        "empty": [],
        "address": {"country": "NZ"},
        "nested": [["x"]],
        "objs": [{"a": 1}],
        "nothing": null,
        "exp": 1, "iat": 2, "nbf": 3,
        "auth_time": 4,
        "id_token_hint": "eyJ..."
    });
    let u = map_claims(&obj(claims), &settings(rule("sub", None)), true).unwrap();
    let expected = obj(json!({
        "oidc(sub)": "u1",
        "oidc(email_verified)": true,
        "oidc(age)": 42,
        "oidc(ratio)": 0.5,
        "oidc(groups)": ["a", "b"],
        "oidc(mixed)": ["a", 1, false],
        "oidc(empty)": [],
        "oidc(auth_time)": 4
    }));
    assert_eq!(u.metadata, expected);
}

#[test]
fn metadata_is_empty_when_not_populated() {
    let u = map_claims(
        &obj(json!({"sub": "u1", "email": "a@b"})),
        &settings(rule("sub", None)),
        false,
    )
    .unwrap();
    assert!(u.metadata.is_empty());
}

// ---------------------------------------------------------------------------------------------
// UserInfo merge

fn merge(id: Value, ui: Value) -> Result<Value, ClaimsError> {
    merge_userinfo(&obj(id), obj(ui)).map(Value::Object)
}

#[test]
fn userinfo_only_claims_are_added() {
    assert_eq!(
        merge(
            json!({"sub": "u1"}),
            json!({"sub": "u1", "email": "a@b", "groups": ["g"]})
        )
        .unwrap(),
        json!({"sub": "u1", "email": "a@b", "groups": ["g"]})
    );
}

#[test]
fn same_type_scalars_keep_the_id_token_value() {
    assert_eq!(
        merge(
            json!({"sub": "u1", "name": "ID Name", "age": 1, "ok": true}),
            json!({"sub": "u2", "name": "UI Name", "age": 2.5, "ok": false})
        )
        .unwrap(),
        json!({"sub": "u1", "name": "ID Name", "age": 1, "ok": true})
    );
}

#[test]
fn arrays_concatenate_and_keep_duplicates() {
    assert_eq!(
        merge(json!({"groups": ["a", "b"]}), json!({"groups": ["b", "c"]})).unwrap(),
        json!({"groups": ["a", "b", "b", "c"]})
    );
    // A UserInfo scalar is appended to an ID-token array.
    assert_eq!(
        merge(json!({"groups": ["a"]}), json!({"groups": "z"})).unwrap(),
        json!({"groups": ["a", "z"]})
    );
    assert_eq!(
        merge(json!({"groups": ["a"]}), json!({"groups": 5})).unwrap(),
        json!({"groups": ["a", 5]})
    );
}

#[test]
fn objects_merge_recursively() {
    assert_eq!(
        merge(
            json!({"address": {"country": "NZ", "lines": ["1 Main St"], "geo": {"lat": 1}}}),
            json!({"address": {"country": "AU", "locality": "Auckland", "lines": ["Apt 2"], "geo": {"lon": 2}}})
        )
        .unwrap(),
        json!({"address": {
            "country": "NZ",
            "locality": "Auckland",
            "lines": ["1 Main St", "Apt 2"],
            "geo": {"lat": 1, "lon": 2}
        }})
    );
}

#[test]
fn boolean_and_its_text_merge_to_the_boolean() {
    assert_eq!(
        merge(
            json!({"email_verified": true}),
            json!({"email_verified": "true"})
        )
        .unwrap(),
        json!({"email_verified": true})
    );
    assert_eq!(
        merge(
            json!({"email_verified": "false"}),
            json!({"email_verified": false})
        )
        .unwrap(),
        json!({"email_verified": false})
    );
    // Different text, or different truth value: a conflict.
    for (id, ui) in [
        (json!(true), json!("TRUE")),
        (json!(true), json!("false")),
        (json!("yes"), json!(true)),
    ] {
        let e = merge(json!({"email_verified": id}), json!({"email_verified": ui})).unwrap_err();
        assert_eq!(e.code(), "userinfo_merge_conflict");
    }
}

#[test]
fn other_type_conflicts_are_errors_naming_the_claim() {
    let cases = [
        (json!("a"), json!(1), "string", "number"),
        (json!(1), json!("1"), "number", "string"),
        (json!("a"), json!(["a"]), "string", "array"),
        (json!({"x": 1}), json!("x"), "object", "string"),
        (json!("x"), json!({"x": 1}), "string", "object"),
        (json!(false), json!(0), "boolean", "number"),
    ];
    for (id, ui, id_kind, ui_kind) in cases {
        let e = merge(json!({"c": id}), json!({"c": ui})).unwrap_err();
        assert_eq!(
            e,
            ClaimsError::MergeConflict {
                claim: "c".into(),
                id_token: id_kind,
                userinfo: ui_kind
            }
        );
        assert_eq!(
            e.to_string(),
            format!("Error merging ID token and userinfo claim value for claim [c]. Cannot merge [{id_kind}] with [{ui_kind}]")
        );
    }
    // Nested: the path is named.
    let e = merge(
        json!({"address": {"country": "NZ"}}),
        json!({"address": {"country": 64}}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ClaimsError::MergeConflict {
            claim: "address.country".into(),
            id_token: "string",
            userinfo: "number"
        }
    );
}

#[test]
fn nulls_yield_the_other_side() {
    assert_eq!(
        merge(
            json!({"name": null, "email": "a@b"}),
            json!({"name": "N", "email": null})
        )
        .unwrap(),
        json!({"name": "N", "email": "a@b"})
    );
}

#[test]
fn merge_then_map() {
    let merged = merge_userinfo(
        &obj(json!({"sub": "u1", "groups": ["a"]})),
        obj(json!({"sub": "u1", "groups": ["b", "a"], "email": "u1@example.org"})),
    )
    .unwrap();
    let u = map_claims(&merged, &full_settings(), true).unwrap();
    assert_eq!(u.groups, vec!["a", "b"]);
    assert_eq!(u.mail.as_deref(), Some("u1@example.org"));
    assert_eq!(u.metadata["oidc(groups)"], json!(["a", "b", "a"]));
}

#[test]
fn error_names_are_cleaned() {
    let e = merge(json!({"a\nb": "x"}), json!({"a\nb": 1})).unwrap_err();
    assert!(e.to_string().contains("[a?b]"), "{e}");
}

#[test]
fn more_claims_than_the_bound_are_refused_before_mapping() {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!("u1"));
    for i in 1..MAX_CLAIMS {
        claims.insert(format!("c{i}"), json!(i));
    }
    assert_eq!(claims.len(), MAX_CLAIMS);
    let s = settings(rule("sub", None));
    assert_eq!(map_claims(&claims, &s, true).unwrap().principal, "u1");
    claims.insert("one_more".into(), json!(true));
    let e = map_claims(&claims, &s, true).unwrap_err();
    assert_eq!(
        e,
        ClaimsError::TooMany {
            count: MAX_CLAIMS + 1
        }
    );
    assert_eq!(e.code(), "too_many_claims");
    assert!(e.to_string().contains("at most 500"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Nested claims (JSON Pointer)

fn keycloak_claims() -> Value {
    json!({
        "sub": "u-1",
        "preferred_username": "jwong",
        "realm_access": {"roles": ["offline_access", "admin"]},
        "resource_access": {
            "my.client": {"roles": ["viewer"]},
            "a/b": {"roles": "slashed"},
            "t~x": {"roles": ["tilde"]}
        },
        "https://example.com/groups": ["ns-group"],
        "email.verified": "dotted",
        "address": {"country": "NZ", "locality": {"x": 1}},
        "flag": "plain"
    })
}

fn groups_of(path: &str, pattern: Option<&str>) -> Result<Vec<String>, ClaimsError> {
    let mut s = settings(rule("sub", None));
    s.groups = Some(rule(path, pattern));
    map_claims(&obj(keycloak_claims()), &s, false).map(|u| u.groups)
}

#[test]
fn nested_paths_reach_members_of_objects() {
    assert_eq!(
        groups_of("/realm_access/roles", None).unwrap(),
        ["offline_access", "admin"]
    );
    // A client id containing a dot is a member name, not a separator.
    assert_eq!(
        groups_of("/resource_access/my.client/roles", None).unwrap(),
        ["viewer"]
    );
    // ~1 is '/', ~0 is '~' (RFC 6901).
    assert_eq!(
        groups_of("/resource_access/a~1b/roles", None).unwrap(),
        ["slashed"]
    );
    assert_eq!(
        groups_of("/resource_access/t~0x/roles", None).unwrap(),
        ["tilde"]
    );
    assert_eq!(groups_of("/address/country", None).unwrap(), ["NZ"]);
    // Patterns apply to the values found.
    assert_eq!(
        groups_of("/realm_access/roles", Some("^adm(.*)$")).unwrap(),
        ["in"]
    );
    // The principal can be nested too.
    let s = settings(rule("/address/country", None));
    assert_eq!(principal_of(keycloak_claims(), &s).unwrap(), "NZ");
}

#[test]
fn names_without_a_leading_slash_stay_top_level_claims() {
    assert_eq!(
        groups_of("https://example.com/groups", None).unwrap(),
        ["ns-group"]
    );
    assert_eq!(groups_of("email.verified", None).unwrap(), ["dotted"]);
    // A dotted name is never split into a path.
    assert!(groups_of("realm_access.roles", None).unwrap().is_empty());
}

#[test]
fn missing_nested_paths_give_no_value() {
    assert!(groups_of("/realm_access/nope", None).unwrap().is_empty());
    assert!(groups_of("/nope/roles", None).unwrap().is_empty());
    let s = settings(rule("/realm_access/nope", None));
    assert_eq!(
        principal_of(keycloak_claims(), &s).unwrap_err().code(),
        "principal_missing"
    );
}

#[test]
fn nested_values_that_are_not_strings_or_arrays_are_refused() {
    // The path ends on an object.
    let e = groups_of("/realm_access", None).unwrap_err();
    assert_eq!(e.code(), "claim_value_unsupported");
    assert!(
        e.to_string().contains("[/realm_access] is an object"),
        "{e}"
    );
    let e = groups_of("/address/locality", None).unwrap_err();
    assert_eq!(e.code(), "claim_value_unsupported");
    // The path continues through a string or an array.
    let e = groups_of("/flag/x", None).unwrap_err();
    assert_eq!(e.code(), "claim_value_unsupported");
    assert!(e.to_string().contains("not an object"), "{e}");
    let e = groups_of("/realm_access/roles/0", None).unwrap_err();
    assert_eq!(e.code(), "claim_value_unsupported");
}

#[test]
fn claim_pointer_syntax() {
    use crate::config::claim_pointer;
    assert_eq!(claim_pointer("groups").unwrap(), None);
    assert_eq!(claim_pointer("https://x/y").unwrap(), None);
    assert_eq!(
        claim_pointer("/a/b~1c/d~0e").unwrap().unwrap(),
        ["a", "b/c", "d~e"]
    );
    for bad in ["/", "/a//b", "/a/", "/a~2", "/a~", "/1/2/3/4/5/6/7/8/9"] {
        assert!(claim_pointer(bad).is_err(), "{bad}");
    }
}
