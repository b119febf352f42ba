//! `role_mappings` and `role_mapping_files`: role mappings kept in the configuration, in the
//! API's body shape (written in YAML). They bypass the flat-key machinery (their rules are
//! free-form): [`take`] removes them from the document before it is flattened, and
//! [`role_mappings`] compiles each one, reporting errors with their key path
//! (`role_mappings.<name>.rules.all[0].field`).

use super::ctx::Ctx;
use crate::roles::{MappingError, RoleMapping};
use serde_norway::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

pub(super) const INLINE: &str = "role_mappings";
pub(super) const FILES: &str = "role_mapping_files";

/// The raw `role_mappings` entries (`(name, value)`, including the flat
/// `role_mappings.<name>:` form) and `role_mapping_files`, removed from the document.
pub(super) struct Raw {
    inline: Vec<(String, Value)>,
    inline_problems: Vec<(String, String)>,
    files: Option<Value>,
}

pub(super) fn take(doc: &mut Value) -> Raw {
    let mut raw = Raw {
        inline: Vec::new(),
        inline_problems: Vec::new(),
        files: None,
    };
    let Value::Mapping(top) = doc else {
        return raw;
    };
    let keys: Vec<Value> = top.keys().cloned().collect();
    for k in keys {
        let Some(key) = k.as_str().map(str::to_string) else {
            continue;
        };
        if key == FILES {
            raw.files = top.remove(&k);
        } else if key == INLINE {
            match top.remove(&k) {
                Some(Value::Mapping(m)) => {
                    for (name, v) in m {
                        match super::flatten::key_string(&name) {
                            Some(n) => raw.inline.push((n, v)),
                            None => raw
                                .inline_problems
                                .push((INLINE.into(), "mapping names must be strings".into())),
                        }
                    }
                }
                Some(Value::Null) | None => {}
                Some(_) => raw.inline_problems.push((
                    INLINE.into(),
                    "expected a mapping of role-mapping name → mapping".into(),
                )),
            }
        } else if let Some(name) = key.strip_prefix("role_mappings.") {
            if let Some(v) = top.remove(&k) {
                raw.inline.push((name.to_string(), v));
            }
        }
    }
    raw
}

/// Compile every configured mapping; errors go to `ctx` with their key paths.
pub(super) fn role_mappings(ctx: &mut Ctx, raw: Raw) -> Vec<Arc<RoleMapping>> {
    for (path, msg) in raw.inline_problems {
        ctx.error(&path, msg);
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, v) in raw.inline {
        let path = format!("{INLINE}.{name}");
        compile_one(ctx, &name, &v, &path, &path, None, &mut seen, &mut out);
    }
    let files: Vec<(String, String)> = match raw.files {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![(FILES.to_string(), s)],
        Some(Value::Sequence(items)) => {
            let mut files = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("{FILES}[{i}]");
                match item {
                    Value::String(s) => files.push((path, s)),
                    _ => ctx.error(&path, "expected a file path"),
                }
            }
            files
        }
        Some(_) => {
            ctx.error(FILES, "expected a list of file paths");
            Vec::new()
        }
    };
    for (path, file) in files {
        let Some(resolved) = ctx.existing_file(&path, &file) else {
            continue;
        };
        let shown = resolved.display().to_string();
        // Watched by the reloader, like secret files.
        ctx.secret_files.push(resolved.clone());
        let text = match std::fs::read_to_string(&resolved) {
            Ok(t) => t,
            Err(e) => {
                ctx.error(&path, format!("cannot read {shown}: {e}"));
                continue;
            }
        };
        let mut doc: Value = match serde_norway::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                ctx.error(&path, format!("{shown}: YAML syntax error: {e}"));
                continue;
            }
        };
        if let Err(e) = doc.apply_merge() {
            ctx.error(&path, format!("{shown}: YAML merge key (<<) error: {e}"));
            continue;
        }
        match doc {
            Value::Mapping(m) => {
                for (name, v) in m {
                    let Some(name) = super::flatten::key_string(&name) else {
                        ctx.error(&path, format!("{shown}: mapping names must be strings"));
                        continue;
                    };
                    compile_one(
                        ctx,
                        &name,
                        &v,
                        &path,
                        &name,
                        Some(&shown),
                        &mut seen,
                        &mut out,
                    );
                }
            }
            Value::Null => {}
            _ => ctx.error(
                &path,
                format!("{shown}: expected a mapping of role-mapping name → mapping"),
            ),
        }
    }
    out
}

/// Compile one mapping. `key` is the config key errors are reported under; `body_path` the
/// prefix of paths inside the mapping (and `file` the file it came from, if any).
#[allow(clippy::too_many_arguments)]
fn compile_one(
    ctx: &mut Ctx,
    name: &str,
    v: &Value,
    key: &str,
    body_path: &str,
    file: Option<&str>,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Arc<RoleMapping>>,
) {
    let report = |ctx: &mut Ctx, inner: &str, msg: String| match file {
        None => ctx.error(if inner.is_empty() { key } else { inner }, msg),
        Some(f) => {
            let at = if inner.is_empty() { body_path } else { inner };
            ctx.error(key, format!("{f}: {at}: {msg}"))
        }
    };
    if name.is_empty() {
        report(ctx, "", "a role mapping name may not be empty".into());
        return;
    }
    if !seen.insert(name.to_string()) {
        report(
            ctx,
            "",
            format!("role mapping [{name}] is defined more than once (role_mappings and role_mapping_files share one namespace)"),
        );
        return;
    }
    let json = match serde_json::to_value(v) {
        Ok(j) => j,
        Err(e) => {
            report(ctx, "", format!("cannot read as JSON: {e}"));
            return;
        }
    };
    match RoleMapping::parse(name, &json, body_path) {
        Ok(m) => out.push(Arc::new(m)),
        Err(MappingError::Parse { path, message }) => report(ctx, &path, message),
        Err(MappingError::Validation(messages)) => {
            for m in messages {
                report(ctx, "", m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;
    use crate::roles::UserModel;

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oidc-realm-rm-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn inline_and_file_mappings_compile() {
        let d = dir();
        std::fs::write(
            d.join("mappings.yml"),
            "admins:\n  enabled: true\n  roles: [superuser]\n  rules:\n    field: {groups: admins}\n",
        )
        .unwrap();
        let yaml = r#"
role_mappings:
  everyone:
    enabled: true
    roles: [user]
    rules: {field: {realm.name: oidc1}}
    metadata: {version: 1}
role_mappings.templated:
  enabled: true
  role_templates:
    - template: {source: "_user_{{username}}"}
  rules:
    all:
      - field: {username: "*"}
      - except: {field: {dn: "*,ou=guests,dc=example,dc=com"}}
role_mapping_files: [mappings.yml]
"#;
        let loaded = load_str(yaml, &d).unwrap();
        let names: Vec<&str> = loaded
            .settings
            .role_mappings
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["everyone", "templated", "admins"]);
        let mapper = crate::roles::RoleMapper::new(loaded.settings.role_mappings.clone(), vec![]);
        let user = UserModel {
            username: "u".into(),
            groups: vec!["Admins".into()],
            realm_name: "oidc1".into(),
            ..Default::default()
        };
        assert_eq!(mapper.roles_for(&user), ["_user_u", "superuser", "user"]);
    }

    #[test]
    fn errors_carry_key_paths() {
        let d = dir();
        std::fs::write(
            d.join("bad.yml"),
            "x:\n  enabled: true\n  roles: [a]\n  rules: {any: [{except: {field: {username: a}}}]}\n",
        )
        .unwrap();
        let yaml = r#"
role_mappings:
  a:
    enabled: true
    roles: [r]
    rules:
      all:
        - field: {username: a}
        - field: {username: a, groups: b}
  b:
    roles: [r]
    rules: {field: {username: "/[a/"}}
  b2:
    roles: [r]
    rules: {field: {username: a}}
  c:
    enabled: true
    roles: []
    rules: {field: {username: a}}
  x:
    enabled: true
    roles: [r]
    rules: {field: {username: a}}
role_mapping_files: [bad.yml, missing.yml]
"#;
        let errors = load_str(yaml, &d).unwrap_err().0;
        let shown: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        let has = |s: &str| shown.iter().any(|e| e.contains(s));
        assert!(has("role_mappings.a.rules.all[1].field: failed to parse rules expression. object [field] contains multiple fields"), "{shown:#?}");
        // Rules are parsed where they stand (as in Elasticsearch), before the missing-field checks.
        assert!(has("role_mappings.b.rules.field.username: failed to parse rules expression. invalid regular expression [/[a/]"), "{shown:#?}");
        assert!(
            has("role_mappings.b2: failed to parse role-mapping [b2]. missing field [enabled]"),
            "{shown:#?}"
        );
        assert!(
            has("role_mappings.c: role-mapping roles or role-templates are missing"),
            "{shown:#?}"
        );
        assert!(
            has("role_mapping_files[0]: ")
                && has("bad.yml: x: role mapping [x] is defined more than once"),
            "{shown:#?}"
        );
        assert!(has("role_mapping_files[1]: cannot read file"), "{shown:#?}");
        // Located in the file.
        let a = errors
            .iter()
            .find(|e| e.path.starts_with("role_mappings.a."))
            .unwrap();
        assert_eq!(a.location.map(|l| l.0), Some(6));
    }
}
