//! The rule language (spec §5.2): `any`, `all`, `field`, `except`, parsed from JSON with
//! Elasticsearch's error messages, each error also naming its path inside the body
//! (`rules.all[1].field`).

use super::matcher::{DnValue, RuleValue};
use serde_json::Value;
use std::fmt;

/// A rule that does not parse: Elasticsearch's message and where in the body it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// e.g. `rules.all[1].field`.
    pub path: String,
    /// e.g. `failed to parse rules expression. object [field] contains multiple fields`.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at [{}])", self.message, self.path)
    }
}

impl std::error::Error for RuleError {}

/// A user field a rule can test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldName {
    Username,
    Dn,
    Groups,
    RealmName,
    /// `metadata.<key>`: the flat metadata key, e.g. `oidc(email)`.
    Metadata(String),
    /// Any other name: Elasticsearch accepts it and treats the field as absent.
    Other(String),
}

impl FieldName {
    pub fn parse(name: &str) -> FieldName {
        match name {
            "username" => FieldName::Username,
            "dn" => FieldName::Dn,
            "groups" => FieldName::Groups,
            "realm.name" => FieldName::RealmName,
            _ => match name.strip_prefix("metadata.") {
                Some(k) => FieldName::Metadata(k.to_string()),
                None => FieldName::Other(name.to_string()),
            },
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// True when any member is (empty: false).
    Any(Vec<Rule>),
    /// True when every member is (empty: true).
    All(Vec<Rule>),
    /// True when the field matches any of the values.
    Field {
        field: FieldName,
        values: Vec<RuleValue>,
    },
    /// Negation; only ever a direct member of `All`.
    Except(Box<Rule>),
}

/// The user as the rules see it: `dn` and groups prepared once per login in every form the
/// DN predicate needs.
#[derive(Debug)]
pub struct Subject<'a> {
    pub user: &'a super::UserModel,
    pub dn: Option<DnValue>,
    pub groups: Vec<DnValue>,
}

impl<'a> Subject<'a> {
    pub fn new(user: &'a super::UserModel) -> Self {
        Subject {
            user,
            dn: user.dn.as_deref().map(DnValue::new),
            groups: user.groups.iter().map(|g| DnValue::new(g)).collect(),
        }
    }
}

impl Rule {
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Rule::Any(rules) => rules.iter().any(|r| r.matches(s)),
            Rule::All(rules) => rules.iter().all(|r| r.matches(s)),
            Rule::Except(r) => !r.matches(s),
            Rule::Field { field, values } => {
                let u = s.user;
                match field {
                    FieldName::Username => values.iter().any(|v| v.matches_str(&u.username)),
                    FieldName::RealmName => values.iter().any(|v| v.matches_str(&u.realm_name)),
                    FieldName::Dn => match &s.dn {
                        Some(dn) => values.iter().any(|v| v.matches_dn(dn)),
                        None => values.iter().any(|v| matches!(v, RuleValue::Null)),
                    },
                    FieldName::Groups => s
                        .groups
                        .iter()
                        .any(|g| values.iter().any(|v| v.matches_dn(g))),
                    FieldName::Metadata(k) => {
                        let m = u.metadata.get(k);
                        values.iter().any(|v| v.matches_json(m))
                    }
                    FieldName::Other(_) => values.iter().any(|v| matches!(v, RuleValue::Null)),
                }
            }
        }
    }
}

const PREFIX: &str = "failed to parse rules expression.";

fn err(path: &str, message: String) -> RuleError {
    RuleError {
        path: path.to_string(),
        message: format!("{PREFIX} {message}"),
    }
}

/// Jackson's token name for a JSON value, as Elasticsearch's messages show it.
pub fn token(v: &Value) -> &'static str {
    match v {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// Parse the `rules` object of a mapping. `path` is where it sits (`rules`, or
/// `role_mappings.<name>.rules` in the configuration).
pub fn parse(v: &Value, path: &str) -> Result<Rule, RuleError> {
    parse_object("rules", v, path, false)
}

fn single<'a>(
    object_name: &str,
    v: &'a Value,
    path: &str,
    expected: impl FnOnce() -> String,
) -> Result<(&'a String, &'a Value), RuleError> {
    let Value::Object(map) = v else {
        return Err(err(path, expected()));
    };
    let mut it = map.iter();
    let Some(first) = it.next() else {
        return Err(err(
            path,
            format!("object [{object_name}] does not contain any fields"),
        ));
    };
    if it.next().is_some() {
        return Err(err(
            path,
            format!("object [{object_name}] contains multiple fields"),
        ));
    }
    Ok(first)
}

fn parse_object(
    object_name: &str,
    v: &Value,
    path: &str,
    allow_except: bool,
) -> Result<Rule, RuleError> {
    let (key, value) = single(object_name, v, path, || {
        format!(
            "expected [{object_name}] to be an object but found [{}] instead",
            token(v)
        )
    })?;
    let here = format!("{path}.{key}");
    match key.as_str() {
        "any" | "all" => {
            let Value::Array(items) = value else {
                return Err(err(&here, format!("field [{key}] requires an array")));
            };
            let members = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_object(key, item, &format!("{here}[{i}]"), key == "all"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if key == "any" {
                Rule::Any(members)
            } else {
                Rule::All(members)
            })
        }
        "field" => parse_field(value, &here),
        "except" if allow_except => {
            if !value.is_object() {
                return Err(err(
                    &here,
                    format!("expected an object but found [{}] instead", token(value)),
                ));
            }
            Ok(Rule::Except(Box::new(parse_object(
                "except", value, &here, false,
            )?)))
        }
        "except" => Err(err(
            &here,
            format!("field [except] is not allowed within [{object_name}]"),
        )),
        other => Err(err(
            &here,
            format!("field [{other}] is not recognised in object [{object_name}]"),
        )),
    }
}

fn parse_field(v: &Value, path: &str) -> Result<Rule, RuleError> {
    let (name, value) = single("field", v, path, || {
        format!("expected an object but found [{}] instead", token(v))
    })?;
    let here = format!("{path}.{name}");
    let values = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| parse_value(x, &format!("{here}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        x => vec![parse_value(x, &here)?],
    };
    Ok(Rule::Field {
        field: FieldName::parse(name),
        values,
    })
}

fn parse_value(v: &Value, path: &str) -> Result<RuleValue, RuleError> {
    match v {
        Value::Null => Ok(RuleValue::Null),
        Value::Bool(b) => Ok(RuleValue::Bool(*b)),
        Value::Number(n) => Ok(RuleValue::Number(match n.as_i64() {
            Some(i) => i,
            // Jackson's longValue(): fractions truncated, out-of-range values saturate here.
            None => n.as_f64().map(|f| f as i64).unwrap_or(i64::MAX),
        })),
        Value::String(s) => RuleValue::string(s).map_err(|m| err(path, m)),
        other => Err(err(
            path,
            format!(
                "expected a field value but found [{}] instead",
                token(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(v: Value) -> RuleError {
        parse(&v, "rules").unwrap_err()
    }

    #[test]
    fn parse_errors_name_the_path() {
        let cases = [
            (
                json!({"all": [{"field": {"username": "a"}}, {"field": {"a": 1, "b": 2}}]}),
                "rules.all[1].field",
                "object [field] contains multiple fields",
            ),
            (
                json!({"except": {"field": {"username": "a"}}}),
                "rules.except",
                "field [except] is not allowed within [rules]",
            ),
            (
                json!({"any": [{"except": {"field": {"username": "a"}}}]}),
                "rules.any[0].except",
                "field [except] is not allowed within [any]",
            ),
            (
                json!({"all": [{"except": {"except": {"field": {"username": "a"}}}}]}),
                "rules.all[0].except.except",
                "field [except] is not allowed within [except]",
            ),
            (
                json!({"all": [{"any": [{"except": {"field": {"dn": "x"}}}]}]}),
                "rules.all[0].any[0].except",
                "field [except] is not allowed within [any]",
            ),
            (
                json!({"all": [{"except": "x"}]}),
                "rules.all[0].except",
                "expected an object but found [VALUE_STRING] instead",
            ),
            (
                json!({"field": {"username": "a"}, "any": []}),
                "rules",
                "object [rules] contains multiple fields",
            ),
            (
                json!({}),
                "rules",
                "object [rules] does not contain any fields",
            ),
            (
                json!([]),
                "rules",
                "expected [rules] to be an object but found [START_ARRAY] instead",
            ),
            (
                json!({"some": []}),
                "rules.some",
                "field [some] is not recognised in object [rules]",
            ),
            (
                json!({"any": {"field": {"username": "a"}}}),
                "rules.any",
                "field [any] requires an array",
            ),
            (
                json!({"all": ["x"]}),
                "rules.all[0]",
                "expected [all] to be an object but found [VALUE_STRING] instead",
            ),
            (
                json!({"field": {}}),
                "rules.field",
                "object [field] does not contain any fields",
            ),
            (
                json!({"field": "username"}),
                "rules.field",
                "expected an object but found [VALUE_STRING] instead",
            ),
            (
                json!({"field": {"username": {"a": 1}}}),
                "rules.field.username",
                "expected a field value but found [START_OBJECT] instead",
            ),
            (
                json!({"field": {"groups": ["a", ["b"]]}}),
                "rules.field.groups[1]",
                "expected a field value but found [START_ARRAY] instead",
            ),
            (
                json!({"field": {"groups": ["a", "/[a/"]}}),
                "rules.field.groups[1]",
                "invalid regular expression [/[a/]: unterminated character class `[`",
            ),
        ];
        for (rules, path, message) in cases {
            let e = error(rules.clone());
            assert_eq!(e.path, path, "{rules}");
            assert_eq!(e.message, format!("{PREFIX} {message}"), "{rules}");
        }
        assert_eq!(
            error(json!({"except": {}})).to_string(),
            "failed to parse rules expression. field [except] is not allowed within [rules] (at [rules.except])"
        );
    }

    #[test]
    fn numbers_are_truncated_to_integers() {
        let r = parse(&json!({"field": {"metadata.n": 2.9}}), "rules").unwrap();
        assert!(matches!(
            r,
            Rule::Field { ref values, .. } if matches!(values[0], RuleValue::Number(2))
        ));
    }
}
