//! Turning the YAML tree into canonical dotted keys.
//!
//! Every map key is split on `.` (so `rp.client_id: x` and `rp: {client_id: x}` give the same
//! key), except a user name directly under `users` (user names may contain dots). Then the
//! Elasticsearch prefixes are rewritten: `xpack.security.authc.realms.oidc.<name>.<key>` →
//! `realms.<name>.<key>`, `xpack.security.authc.token.timeout` → `token.timeout`.
//!
//! `serde_norway::Value` carries no positions, so [`scan_key_lines`] finds the line of each
//! block-mapping key with a small line scanner (best effort: flow mappings and keys inside
//! sequences get the position of their nearest block-mapping ancestor).

use serde_norway::Value;
use std::collections::HashMap;

/// One leaf of the YAML tree: a scalar, a sequence, or null/empty map.
#[derive(Debug, Clone)]
pub(super) struct Leaf {
    /// Canonical key path, e.g. `realms.oidc1.rp.client_id`.
    pub path: String,
    /// Canonical segments (a user name is one segment even if it contains dots).
    pub segs: Vec<String>,
    pub value: Value,
    /// The map keys as written, for locating the line.
    pub raw: Vec<String>,
}

/// The Elasticsearch prefix of OIDC realm settings.
pub(super) const ES_REALM_PREFIX: [&str; 5] = ["xpack", "security", "authc", "realms", "oidc"];

/// Canonical segments of a raw key path.
pub(super) fn canonical(raw: &[String]) -> Vec<String> {
    let mut segs: Vec<String> = Vec::new();
    for k in raw {
        if segs.len() == 1 && (segs[0] == "users" || segs[0] == "service_tokens") {
            segs.push(k.clone());
        } else {
            segs.extend(k.split('.').map(str::to_string));
        }
    }
    if segs.len() > ES_REALM_PREFIX.len() && segs.iter().zip(ES_REALM_PREFIX).all(|(a, b)| a == b) {
        let mut out = vec!["realms".to_string()];
        out.extend(segs.drain(ES_REALM_PREFIX.len()..));
        return out;
    }
    if segs.len() == 5 && segs[..4] == ["xpack", "security", "authc", "token"] {
        return vec!["token".into(), segs[4].clone()];
    }
    segs
}

/// A YAML map key as a string (`1: x` is the key `1`).
pub(super) fn key_string(k: &Value) -> Option<String> {
    match k {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Flatten a document into leaves. Keys that are not scalars are reported in `bad_keys`
/// (as the raw path of their parent).
pub(super) fn flatten(doc: &Value, leaves: &mut Vec<Leaf>, bad_keys: &mut Vec<Vec<String>>) {
    let mut raw = Vec::new();
    walk(doc, &mut raw, leaves, bad_keys);
}

fn walk(v: &Value, raw: &mut Vec<String>, leaves: &mut Vec<Leaf>, bad: &mut Vec<Vec<String>>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, child) in m {
                let Some(k) = key_string(k) else {
                    bad.push(raw.clone());
                    continue;
                };
                raw.push(k);
                walk(child, raw, leaves, bad);
                raw.pop();
            }
        }
        Value::Mapping(_) => push_leaf(Value::Null, raw, leaves),
        Value::Tagged(t) if matches!(t.value, Value::Mapping(_)) => {
            walk(&t.value, raw, leaves, bad)
        }
        other => push_leaf(other.clone(), raw, leaves),
    }
}

fn push_leaf(value: Value, raw: &[String], leaves: &mut Vec<Leaf>) {
    if raw.is_empty() {
        // A document that is a bare scalar; reported by the caller.
        return;
    }
    let segs = canonical(raw);
    leaves.push(Leaf {
        path: segs.join("."),
        segs,
        value,
        raw: raw.to_vec(),
    });
}

/// Lines (1-based line, column) of block-mapping keys, by raw key path.
pub(super) fn scan_key_lines(text: &str) -> HashMap<Vec<String>, (usize, usize)> {
    let mut out = HashMap::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    // While inside a block scalar (`|`, `>`), lines indented more than this are text.
    let mut block_scalar_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if let Some(bi) = block_scalar_indent {
            if content.trim().is_empty() || indent > bi {
                continue;
            }
            block_scalar_indent = None;
        }
        if content.is_empty()
            || content.starts_with('#')
            || content.starts_with("---")
            || content.starts_with("...")
        {
            continue;
        }
        if content.starts_with("- ") || content == "-" {
            // Sequence items: not keys we locate; keep the stack.
            continue;
        }
        let Some((key, rest)) = split_key(content) else {
            continue;
        };
        while stack.last().is_some_and(|(ind, _)| *ind >= indent) {
            stack.pop();
        }
        stack.push((indent, key));
        let path: Vec<String> = stack.iter().map(|(_, k)| k.clone()).collect();
        out.entry(path).or_insert((i + 1, indent + 1));
        let rest = rest.trim();
        let rest = rest.split(" #").next().unwrap_or("").trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            block_scalar_indent = Some(indent);
        }
    }
    out
}

/// `key: rest` → (`key`, `rest`), handling quoted keys. `None` if the line is not a key line.
fn split_key(content: &str) -> Option<(String, &str)> {
    let first = content.chars().next()?;
    if first == '"' || first == '\'' {
        let end = content[1..].find(first)? + 1;
        let key = content[1..end].to_string();
        let after = content[end + 1..].trim_start();
        let rest = after.strip_prefix(':')?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        return Some((key, rest));
    }
    if matches!(
        first,
        '{' | '[' | '&' | '*' | '!' | '|' | '>' | '%' | '@' | '`'
    ) {
        return None;
    }
    let bytes = content.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
        if b == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            return Some((content[..i].trim_end().to_string(), &content[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn canonical_splits_and_rewrites_prefixes() {
        assert_eq!(
            canonical(&s(&["realms", "oidc1", "rp.client_id"])).join("."),
            "realms.oidc1.rp.client_id"
        );
        assert_eq!(
            canonical(&s(&["xpack.security.authc.realms.oidc.oidc1.rp.client_id"])).join("."),
            "realms.oidc1.rp.client_id"
        );
        assert_eq!(
            canonical(&s(&[
                "xpack",
                "security",
                "authc",
                "realms",
                "oidc",
                "oidc1",
                "rp",
                "client_id"
            ]))
            .join("."),
            "realms.oidc1.rp.client_id"
        );
        assert_eq!(
            canonical(&s(&["xpack.security.authc.token.timeout"])).join("."),
            "token.timeout"
        );
        // user names keep their dots
        assert_eq!(
            canonical(&s(&["users", "john.doe", "password_hash"])),
            s(&["users", "john.doe", "password_hash"])
        );
    }

    #[test]
    fn scanner_finds_nested_and_flat_keys() {
        let text = "\
# comment
http:
  bind: 127.0.0.1:1  # trailing
realms:
  oidc1:
    rp.client_id: x
    'op': { issuer: y }
    note: |
      fake: key
    order: 1
";
        let m = scan_key_lines(text);
        assert_eq!(m[&s(&["http", "bind"])], (3, 3));
        assert_eq!(m[&s(&["realms", "oidc1", "rp.client_id"])], (6, 5));
        assert_eq!(m[&s(&["realms", "oidc1", "op"])], (7, 5));
        assert_eq!(m[&s(&["realms", "oidc1", "order"])], (10, 5));
        assert!(!m.contains_key(&s(&["realms", "oidc1", "note", "fake"])));
    }
}
