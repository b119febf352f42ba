//! Role templates (spec §5.3): a small Mustache subset over the user model.
//!
//! Why hand-written: Elasticsearch's templates need its `{{#tojson}}name{{/tojson}}` (and
//! `{{#join}}`) lambdas and lookups over dynamic JSON with flat dotted keys
//! (`{{metadata.oidc(email)}}`). The crates checked do not fit: `mustache` (0.9.0, last
//! release 2019, unmaintained, no lambdas over the context), `ramhorns` (MPL-2.0, typed
//! `#[derive(Content)]` structs, no lambdas). The subset below is small and fully tested.
//!
//! Supported:
//! - `{{name}}`: the value, JSON-string-escaped (Elasticsearch's default content type for
//!   templates is JSON, so `"` becomes `\"`); `{{{name}}}` and `{{& name}}`: unescaped.
//! - `{{#tojson}}name{{/tojson}}`: the value as JSON (e.g. `["a","b"]` for `groups`).
//! - `{{#join}}name{{/join}}`: an array's elements joined with `,`.
//! - `{{! comment}}`.
//! - Names: `username`, `dn`, `groups`, `realm.name`, `metadata.<key>` (the flat keys
//!   Elasticsearch's model has), script `params`, and dotted paths into objects.
//!
//! Values render as: strings as they are, numbers and booleans as written, `null`/absent as
//! the empty string, arrays and objects as JSON. Other sections (`{{#x}}`, `{{^x}}`),
//! partials (`{{>x}}`) and delimiter changes (`{{=<% %>=}}`) are refused when the mapping is
//! written.

use serde_json::{Map, Value};

/// How the rendered text becomes role names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The text is one role name.
    String,
    /// The text is a JSON string or array of strings (nulls dropped).
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::String => "string",
            Format::Json => "json",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var { name: String, escape: bool },
    ToJson(String),
    Join(String),
}

/// A compiled role template.
#[derive(Debug, Clone)]
pub struct RoleTemplate {
    parts: Vec<Part>,
    format: Format,
    /// Script `params`: extra variables (the user model wins on a clash).
    params: Map<String, Value>,
}

impl RoleTemplate {
    pub fn new(source: &str, format: Format, params: Map<String, Value>) -> Result<Self, String> {
        Ok(RoleTemplate {
            parts: compile(source)?,
            format,
            params,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The script's `params`.
    pub fn params(&self) -> &Map<String, Value> {
        &self.params
    }

    /// Render against `model` (see [`super::UserModel::template_model`]) and turn the text into
    /// role names; empty names are dropped.
    pub fn roles(&self, model: &Value) -> Result<Vec<String>, String> {
        let text = self.render(model);
        let names = match self.format {
            Format::String => vec![text],
            Format::Json => json_roles(&text)?,
        };
        Ok(names.into_iter().filter(|n| !n.is_empty()).collect())
    }

    pub fn render(&self, model: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var { name, escape } => {
                    let text = display(self.lookup(model, name));
                    if *escape {
                        let quoted = Value::String(text).to_string();
                        out.push_str(&quoted[1..quoted.len() - 1]);
                    } else {
                        out.push_str(&text);
                    }
                }
                Part::ToJson(name) => {
                    out.push_str(&self.lookup(model, name).unwrap_or(&Value::Null).to_string())
                }
                Part::Join(name) => match self.lookup(model, name) {
                    Some(Value::Array(items)) => {
                        let items: Vec<String> = items.iter().map(|i| display(Some(i))).collect();
                        out.push_str(&items.join(","));
                    }
                    v => out.push_str(&display(v)),
                },
            }
        }
        out
    }

    fn lookup<'a>(&'a self, model: &'a Value, name: &str) -> Option<&'a Value> {
        resolve(model, name).or_else(|| {
            self.params
                .get(name)
                .or_else(|| resolve_map(&self.params, name))
        })
    }
}

fn display(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// A name against an object: the whole name as a key first (the model's flat keys such as
/// `realm.name` and `metadata.oidc(email)`), then split at each `.` from the left.
fn resolve<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => resolve_map(m, name),
        _ => None,
    }
}

fn resolve_map<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = m.get(name) {
        return Some(v);
    }
    for (i, _) in name.match_indices('.') {
        if let Some(child) = m.get(&name[..i]) {
            if let Some(found) = resolve(child, &name[i + 1..]) {
                return Some(found);
            }
        }
    }
    None
}

fn json_roles(text: &str) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| {
        format!("Roles template must generate a string or an array of strings, but the output is not JSON: {e}")
    })?;
    match v {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .filter(|i| !i.is_null())
            .map(|i| match i {
                Value::String(s) => Ok(s),
                other => Err(format!(
                    "Roles array may only contain strings but found [{}] [{other}]",
                    super::rules::token(&other)
                )),
            })
            .collect(),
        other => Err(format!(
            "Roles template must generate a string or an array of strings, but found [{}]",
            super::rules::token(&other)
        )),
    }
}

/// Parse a template source into parts.
fn compile(src: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find("}}}")
                .ok_or("unclosed tag `{{{` in role template")?;
            parts.push(Part::Var {
                name: name(&inner[..end])?,
                escape: false,
            });
            rest = &inner[end + 3..];
            continue;
        }
        let end = after
            .find("}}")
            .ok_or("unclosed tag `{{` in role template")?;
        let tag = after[..end].trim();
        rest = &after[end + 2..];
        match tag.chars().next() {
            Some('!') => {}
            Some('&') => parts.push(Part::Var {
                name: name(&tag[1..])?,
                escape: false,
            }),
            Some('#') => {
                let lambda = tag[1..].trim();
                if lambda != "tojson" && lambda != "join" {
                    return Err(format!(
                        "section {{{{#{lambda}}}}} is not supported in role templates (only {{{{#tojson}}}} and {{{{#join}}}})"
                    ));
                }
                let close = format!("{{{{/{lambda}}}}}");
                let end = rest
                    .find(&close)
                    .ok_or_else(|| format!("section {{{{#{lambda}}}}} is not closed by {close}"))?;
                let inner = rest[..end].trim();
                if inner.contains("{{") {
                    return Err(format!(
                        "{{{{#{lambda}}}}} takes a variable name, e.g. {{{{#{lambda}}}}}groups{close}"
                    ));
                }
                let n = name(inner)?;
                parts.push(if lambda == "tojson" {
                    Part::ToJson(n)
                } else {
                    Part::Join(n)
                });
                rest = &rest[end + close.len()..];
            }
            Some(c @ ('^' | '/' | '>' | '=')) => {
                let what = match c {
                    '^' => "inverted sections",
                    '/' => "closing tags without a section",
                    '>' => "partials",
                    _ => "delimiter changes",
                };
                return Err(format!(
                    "{what} ({{{{{tag}}}}}) are not supported in role templates"
                ));
            }
            _ => parts.push(Part::Var {
                name: name(tag)?,
                escape: true,
            }),
        }
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

fn name(s: &str) -> Result<String, String> {
    let n = s.trim();
    if n.is_empty() {
        return Err("empty tag `{{}}` in role template".into());
    }
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> Value {
        json!({
            "username": "jwong",
            "dn": null,
            "groups": ["finance", "ops"],
            "realm.name": "oidc1",
            "realm": {"name": "oidc1"},
            "metadata.oidc(email)": "j@example.com",
            "metadata": {"oidc(email)": "j@example.com", "quote": "a\"b", "n": 3},
        })
    }

    fn roles(src: &str, format: Format) -> Result<Vec<String>, String> {
        RoleTemplate::new(src, format, Map::new())?.roles(&model())
    }

    #[test]
    fn variables_and_lambdas() {
        let s = Format::String;
        assert_eq!(roles("_user_{{username}}", s).unwrap(), ["_user_jwong"]);
        assert_eq!(roles("{{ realm.name }}-x", s).unwrap(), ["oidc1-x"]);
        assert_eq!(
            roles("{{metadata.oidc(email)}}", s).unwrap(),
            ["j@example.com"]
        );
        assert_eq!(roles("{{metadata.n}}", s).unwrap(), ["3"]);
        assert_eq!(roles("{{metadata.quote}}", s).unwrap(), ["a\\\"b"]);
        assert_eq!(roles("{{{metadata.quote}}}", s).unwrap(), ["a\"b"]);
        assert_eq!(roles("{{& metadata.quote}}", s).unwrap(), ["a\"b"]);
        assert_eq!(
            roles("{{#join}}groups{{/join}}", s).unwrap(),
            ["finance,ops"]
        );
        assert_eq!(roles("a{{! note }}b", s).unwrap(), ["ab"]);
        // Empty output: no role.
        assert!(roles("{{dn}}", s).unwrap().is_empty());
        assert!(roles("{{nothing}}", s).unwrap().is_empty());
        let j = Format::Json;
        assert_eq!(
            roles("{{#tojson}}groups{{/tojson}}", j).unwrap(),
            ["finance", "ops"]
        );
        assert_eq!(roles("\"{{username}}\"", j).unwrap(), ["jwong"]);
        assert_eq!(roles("[\"a\", null, \"\"]", j).unwrap(), ["a"]);
        assert_eq!(
            roles("{{#tojson}}metadata.n{{/tojson}}", j).unwrap_err(),
            "Roles template must generate a string or an array of strings, but found [VALUE_NUMBER]"
        );
        assert!(roles("[1]", j)
            .unwrap_err()
            .starts_with("Roles array may only contain strings but found"));
        assert!(roles("{{username}}", j).is_err());
    }

    #[test]
    fn params_are_variables() {
        let mut params = Map::new();
        params.insert("prefix".into(), json!("app-"));
        params.insert("username".into(), json!("shadowed"));
        let t = RoleTemplate::new("{{prefix}}{{username}}", Format::String, params).unwrap();
        assert_eq!(t.roles(&model()).unwrap(), ["app-jwong"]);
    }

    #[test]
    fn unsupported_syntax_refused() {
        for (src, needle) in [
            (
                "{{#groups}}x{{/groups}}",
                "section {{#groups}} is not supported",
            ),
            ("{{^groups}}x{{/groups}}", "inverted sections"),
            ("{{>partial}}", "partials"),
            ("{{=<% %>=}}", "delimiter changes"),
            ("{{username", "unclosed tag"),
            ("{{{username}}", "unclosed tag `{{{`"),
            ("{{}}", "empty tag"),
            ("{{#tojson}}groups", "is not closed"),
            ("{{#tojson}}{{groups}}{{/tojson}}", "takes a variable name"),
        ] {
            let e = RoleTemplate::new(src, Format::String, Map::new()).unwrap_err();
            assert!(e.contains(needle), "{src}: {e}");
        }
    }
}
