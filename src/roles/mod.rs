//! Role mappings (spec §5): which roles a user who logged in through a realm gets.
//!
//! A mapping is stored and shown in Elasticsearch's API shape (`enabled`, `roles` or
//! `role_templates`, `rules`, `metadata`) and compiled once — when it is read from the
//! configuration, written through the API or loaded from the store — into a
//! [`RoleMapping`]. A [`RoleMapper`] is an immutable snapshot of every compiled mapping (the
//! configuration's and the API's); the application swaps a new one in whenever either set
//! changes, so a login never parses or compiles anything.
//!
//! - [`rules`]: the rule language and its parser.
//! - [`matcher`]: rule values, wildcards, Lucene regular expressions, DNs.
//! - [`template`]: the Mustache subset of role templates.
//! - `service::role_mappings` holds the live snapshot and API writes (outside this module).

pub mod matcher;
pub mod rules;
pub mod template;

use rules::{Rule, RuleError, Subject};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use template::{Format, RoleTemplate};

/// The user as role mappings see it (Elasticsearch's `UserRoleMapper.UserData`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserModel {
    pub username: String,
    /// Absent unless the realm maps `claims.dn`.
    pub dn: Option<String>,
    pub groups: Vec<String>,
    /// Flat keys, e.g. `oidc(email)`; rules name them `metadata.oidc(email)`.
    pub metadata: Map<String, Value>,
    pub realm_name: String,
}

impl UserModel {
    /// The variables of role templates: Elasticsearch's flat model keys (`username`, `dn`,
    /// `groups`, `realm.name`, `metadata.<key>`), plus `realm` and `metadata` as objects so
    /// that dotted lookups work either way.
    pub fn template_model(&self) -> Value {
        let mut m = Map::new();
        m.insert("username".into(), json!(self.username));
        m.insert("dn".into(), json!(self.dn));
        m.insert("groups".into(), json!(self.groups));
        m.insert("realm.name".into(), json!(self.realm_name));
        m.insert("realm".into(), json!({ "name": self.realm_name }));
        for (k, v) in &self.metadata {
            m.insert(format!("metadata.{k}"), v.clone());
        }
        m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        Value::Object(m)
    }
}

/// Where a mapping comes from. Shown by `GET` as the extra top-level field `"source"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The configuration (`role_mappings` or a `role_mapping_files` file): read-only through
    /// the API.
    File,
    /// Written through the API, kept in the store.
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
        }
    }
}

/// Why a mapping body is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingError {
    /// Elasticsearch's `parse_exception`; `path` is where in the body (empty: the body).
    Parse { path: String, message: String },
    /// Elasticsearch's request validation (`action_request_validation_exception`), every
    /// problem.
    Validation(Vec<String>),
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingError::Parse { path, message } if path.is_empty() => f.write_str(message),
            MappingError::Parse { path, message } => write!(f, "{message} (at [{path}])"),
            MappingError::Validation(m) => f.write_str(&m.join("; ")),
        }
    }
}

impl std::error::Error for MappingError {}

impl From<RuleError> for MappingError {
    fn from(e: RuleError) -> Self {
        MappingError::Parse {
            path: e.path,
            message: e.message,
        }
    }
}

/// One role template as written, and compiled.
#[derive(Debug, Clone)]
struct TemplateDef {
    /// The script object as JSON text (Elasticsearch echoes it as a string).
    script: String,
    compiled: RoleTemplate,
}

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct RoleMapping {
    pub name: String,
    pub enabled: bool,
    pub roles: Vec<String>,
    templates: Vec<TemplateDef>,
    rules_json: Value,
    pub rules: Rule,
    pub metadata: Map<String, Value>,
}

fn parse_error(name: &str, path: impl Into<String>, what: impl fmt::Display) -> MappingError {
    MappingError::Parse {
        path: path.into(),
        message: format!("failed to parse role-mapping [{name}]. {what}"),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl RoleMapping {
    /// Parse and compile an API body. `prefix` is where the body sits, for error paths: `""`
    /// for an API body, `role_mappings.<name>` in the configuration.
    pub fn parse(name: &str, body: &Value, prefix: &str) -> Result<RoleMapping, MappingError> {
        let Value::Object(obj) = body else {
            return Err(parse_error(
                name,
                prefix,
                format!(
                    "expected an object but found [{}] instead",
                    rules::token(body)
                ),
            ));
        };
        let mut enabled = None;
        let mut roles: Option<Vec<String>> = None;
        let mut templates: Option<Vec<TemplateDef>> = None;
        let mut rules_json = None;
        let mut metadata = Map::new();
        for (key, v) in obj {
            let path = join(prefix, key);
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "enabled" => match v {
                    Value::Bool(b) => enabled = Some(*b),
                    _ => {
                        return Err(parse_error(
                            name,
                            path,
                            format!(
                                "field [enabled] must be a boolean but found [{}]",
                                rules::token(v)
                            ),
                        ))
                    }
                },
                "roles" => {
                    let Value::Array(items) = v else {
                        return Err(parse_error(
                            name,
                            path,
                            format!(
                                "field [roles] must be an array of strings but found [{}]",
                                rules::token(v)
                            ),
                        ));
                    };
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            Value::String(s) => out.push(s.clone()),
                            other => {
                                return Err(parse_error(
                                    name,
                                    format!("{path}[{i}]"),
                                    format!(
                                        "field [roles] must be an array of strings but found [{}]",
                                        rules::token(other)
                                    ),
                                ))
                            }
                        }
                    }
                    roles = Some(out);
                }
                "role_templates" => {
                    let Value::Array(items) = v else {
                        return Err(parse_error(
                            name,
                            path,
                            format!(
                                "field [role_templates] must be an array of objects but found [{}]",
                                rules::token(v)
                            ),
                        ));
                    };
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        out.push(parse_template(name, item, &format!("{path}[{i}]"))?);
                    }
                    templates = Some(out);
                }
                // Parsed where it stands, as Elasticsearch's object parser does.
                "rules" => rules_json = Some((v, rules::parse(v, &path)?)),
                "metadata" => match v {
                    Value::Object(m) => metadata = m.clone(),
                    _ => {
                        return Err(parse_error(
                            name,
                            path,
                            format!(
                                "field [metadata] must be an object but found [{}]",
                                rules::token(v)
                            ),
                        ))
                    }
                },
                other => return Err(parse_error(name, path, format!("unknown field [{other}]"))),
            }
        }
        // Elasticsearch's builder checks, in its order.
        if roles.is_none() && templates.is_none() {
            return Err(parse_error(name, prefix, "missing field [roles]"));
        }
        let Some((rules_json, rules)) = rules_json else {
            return Err(parse_error(name, prefix, "missing field [rules]"));
        };
        let Some(enabled) = enabled else {
            return Err(parse_error(name, prefix, "missing field [enabled]"));
        };
        let roles = roles.unwrap_or_default();
        let templates = templates.unwrap_or_default();
        // Then its request validation, every problem at once.
        let mut problems = Vec::new();
        if roles.is_empty() && templates.is_empty() {
            problems.push("role-mapping roles or role-templates are missing".to_string());
        }
        if !roles.is_empty() && !templates.is_empty() {
            problems.push("role-mapping cannot have both roles and role-templates".to_string());
        }
        if metadata.keys().any(|k| k.starts_with('_')) {
            problems.push("metadata keys may not start with [_]".to_string());
        }
        if !problems.is_empty() {
            return Err(MappingError::Validation(problems));
        }
        Ok(RoleMapping {
            name: name.to_string(),
            enabled,
            roles,
            templates,
            rules_json: rules_json.clone(),
            rules,
            metadata,
        })
    }

    /// Elasticsearch's `GET` form: `roles`/`role_templates` only when non-empty, templates as
    /// `{"template": "<script JSON>", "format": ...}`, `metadata` always.
    pub fn to_es_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("enabled".into(), json!(self.enabled));
        if !self.roles.is_empty() {
            m.insert("roles".into(), json!(self.roles));
        }
        if !self.templates.is_empty() {
            let t: Vec<Value> = self
                .templates
                .iter()
                .map(|t| json!({"template": t.script, "format": t.compiled.format().as_str()}))
                .collect();
            m.insert("role_templates".into(), Value::Array(t));
        }
        m.insert("rules".into(), self.rules_json.clone());
        m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        Value::Object(m)
    }

    /// The roles this mapping grants `subject` (none if disabled or the rules do not match).
    /// `model` builds the template variables on first use.
    fn grant(&self, subject: &Subject<'_>, model: &mut Option<Value>, out: &mut BTreeSet<String>) {
        if !self.enabled || !self.rules.matches(subject) {
            return;
        }
        out.extend(self.roles.iter().cloned());
        for t in &self.templates {
            let model = model.get_or_insert_with(|| subject.user.template_model());
            match t.compiled.roles(model) {
                Ok(names) => out.extend(names),
                Err(e) => tracing::warn!(
                    mapping = %self.name,
                    user = %subject.user.username,
                    "role template gave no roles: {e}"
                ),
            }
        }
    }
}

fn parse_template(name: &str, v: &Value, path: &str) -> Result<TemplateDef, MappingError> {
    let Value::Object(obj) = v else {
        return Err(parse_error(
            name,
            path,
            format!(
                "a role template must be an object but found [{}]",
                rules::token(v)
            ),
        ));
    };
    let mut format = Format::String;
    let mut script = None;
    for (key, value) in obj {
        let here = format!("{path}.{key}");
        match key.as_str() {
            "format" => {
                format = match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("string") => Format::String,
                    Some("json") => Format::Json,
                    _ => {
                        return Err(parse_error(
                            name,
                            here,
                            "role template [format] must be [string] or [json]",
                        ))
                    }
                }
            }
            "template" => script = Some((value, here)),
            other => {
                return Err(parse_error(
                    name,
                    here,
                    format!("unknown field [{other}] in role template"),
                ))
            }
        }
    }
    let Some((script, here)) = script else {
        return Err(parse_error(
            name,
            path,
            "role template is missing field [template]",
        ));
    };
    // `"template": "<script JSON>"` (as GET echoes it) or `"template": {script}`.
    let parsed;
    let script_obj = match script {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| {
                parse_error(
                    name,
                    here.clone(),
                    "role template [template] as a string must hold a script object in JSON, e.g. {\"source\":\"{{username}}\"}",
                )
            })?;
            &parsed
        }
        v => v,
    };
    let Value::Object(sobj) = script_obj else {
        return Err(parse_error(
            name,
            here,
            format!(
                "role template [template] must be an object but found [{}]",
                rules::token(script_obj)
            ),
        ));
    };
    let mut source = None;
    let mut params = Map::new();
    for (key, value) in sobj {
        let at = format!("{here}.{key}");
        match (key.as_str(), value) {
            ("source", Value::String(s)) => source = Some(s.clone()),
            // Elasticsearch turns an object source into its JSON text.
            ("source", Value::Object(_)) => source = Some(value.to_string()),
            ("lang", Value::String(l)) if l == "mustache" => {}
            ("lang", _) => {
                return Err(parse_error(
                    name,
                    at,
                    "role templates support only [lang] [mustache]",
                ))
            }
            ("params", Value::Object(p)) => params = p.clone(),
            ("options", Value::Object(_)) => {}
            ("id", _) => {
                return Err(parse_error(
                    name,
                    at,
                    "stored scripts are not supported in role templates; give [source]",
                ))
            }
            (k, v) => {
                return Err(parse_error(
                    name,
                    at,
                    format!(
                        "unexpected field [{k}] of type [{}] in role template script",
                        rules::token(v)
                    ),
                ))
            }
        }
    }
    let Some(source) = source else {
        return Err(parse_error(
            name,
            here,
            "role template script is missing [source]",
        ));
    };
    let compiled = RoleTemplate::new(&source, format, params)
        .map_err(|e| parse_error(name, format!("{here}.source"), e))?;
    Ok(TemplateDef {
        script: script_obj.to_string(),
        compiled,
    })
}

/// An immutable snapshot of every compiled mapping: the configuration's (read-only through
/// the API) and the API's. A configuration mapping shadows an API mapping of the same name.
#[derive(Debug, Default)]
pub struct RoleMapper {
    file: BTreeMap<String, Arc<RoleMapping>>,
    api: BTreeMap<String, Arc<RoleMapping>>,
    /// Enabled mappings to evaluate, in name order.
    active: Vec<Arc<RoleMapping>>,
}

impl RoleMapper {
    pub fn new(file: Vec<Arc<RoleMapping>>, api: Vec<Arc<RoleMapping>>) -> RoleMapper {
        let file: BTreeMap<_, _> = file.into_iter().map(|m| (m.name.clone(), m)).collect();
        // Every API mapping is kept (a shadowed one reappears when the configuration drops
        // its namesake), but only the unshadowed ones are evaluated and shown.
        let api: BTreeMap<_, _> = api.into_iter().map(|m| (m.name.clone(), m)).collect();
        for name in api.keys().filter(|n| file.contains_key(*n)) {
            tracing::warn!(
                mapping = %name,
                "a role mapping stored through the API has the name of a configuration mapping; the configuration's is used"
            );
        }
        let mut active: Vec<Arc<RoleMapping>> = file
            .values()
            .chain(api.values().filter(|m| !file.contains_key(&m.name)))
            .filter(|m| m.enabled)
            .cloned()
            .collect();
        active.sort_by(|a, b| a.name.cmp(&b.name));
        RoleMapper { file, api, active }
    }

    /// The same API mappings with other configuration mappings (configuration reload).
    pub fn with_file(&self, file: Vec<Arc<RoleMapping>>) -> RoleMapper {
        RoleMapper::new(file, self.api.values().cloned().collect())
    }

    /// The same configuration mappings with other API mappings.
    pub fn with_api(&self, api: Vec<Arc<RoleMapping>>) -> RoleMapper {
        RoleMapper::new(self.file.values().cloned().collect(), api)
    }

    /// The sorted, de-duplicated union of the roles of every enabled mapping whose rules
    /// match.
    pub fn roles_for(&self, user: &UserModel) -> Vec<String> {
        if self.active.is_empty() {
            return Vec::new();
        }
        let subject = Subject::new(user);
        let mut model = None;
        let mut out = BTreeSet::new();
        for m in &self.active {
            m.grant(&subject, &mut model, &mut out);
        }
        out.into_iter().collect()
    }

    /// Whether `name` is a configuration mapping.
    pub fn is_file(&self, name: &str) -> bool {
        self.file.contains_key(name)
    }

    /// One mapping by name.
    pub fn get(&self, name: &str) -> Option<(&RoleMapping, Source)> {
        self.file
            .get(name)
            .map(|m| (&**m, Source::File))
            .or_else(|| self.api.get(name).map(|m| (&**m, Source::Api)))
    }

    /// Every mapping, in name order.
    pub fn all(&self) -> Vec<(&RoleMapping, Source)> {
        let mut v: Vec<_> = self
            .file
            .values()
            .map(|m| (&**m, Source::File))
            .chain(
                self.api
                    .values()
                    .filter(|m| !self.file.contains_key(&m.name))
                    .map(|m| (&**m, Source::Api)),
            )
            .collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// How many mappings are shown (configuration mappings and unshadowed API mappings).
    pub fn len(&self) -> usize {
        self.file.len()
            + self
                .api
                .keys()
                .filter(|n| !self.file.contains_key(*n))
                .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
