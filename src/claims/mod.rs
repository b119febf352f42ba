//! Claim mapping: validated ID-token claims (merged with UserInfo) → the user's principal,
//! groups, name, mail, dn and metadata, under the realm's `claims.*` and `claim_patterns.*`.
//! Pure functions, no I/O.
//!
//! Errors name settings and claims, never claim values: they go to logs.

use crate::config::{ClaimRule, ClaimSettings};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// Claims never copied into user metadata: the date claims (as in Elasticsearch) and the
/// synthetic raw ID token.
const METADATA_EXCLUDED: [&str; 4] = ["exp", "iat", "nbf", "id_token_hint"];

/// The most top-level claims a login may carry (ID token and UserInfo merged). Real providers
/// send tens; the bound keeps a provider (or a UserInfo endpoint answering up to 1 MiB) from
/// making every token record carry thousands of metadata entries. Checked before any mapping.
pub const MAX_CLAIMS: usize = 500;

/// Longest claim name shown in an error.
const MAX_NAME_IN_ERROR: usize = 100;

/// The user built from the claims.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedUser {
    /// `claims.principal` (after `claim_patterns.principal`); never empty.
    pub principal: String,
    /// `claims.groups`: every value, deduplicated, in order of first appearance.
    pub groups: Vec<String>,
    /// `claims.name` → `full_name`.
    pub name: Option<String>,
    /// `claims.mail` → `email`.
    pub mail: Option<String>,
    /// `claims.dn`.
    pub dn: Option<String>,
    /// `oidc(<claim>)` → value, when `populate_user_metadata` is true; else empty.
    pub metadata: Map<String, Value>,
}

/// Why the claims could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimsError {
    /// A claim named by `claims.<x>` has a value that cannot be mapped (an object, or an
    /// array holding an array or object).
    UnsupportedValue {
        setting: &'static str,
        claim: String,
        found: &'static str,
    },
    /// No principal: the claim is absent, null, empty, or no value matched
    /// `claim_patterns.principal`.
    PrincipalMissing { claim: String, pattern: bool },
    /// ID token and UserInfo disagree on a claim's type (OIDC Core §5.3.2 merge).
    MergeConflict {
        claim: String,
        id_token: &'static str,
        userinfo: &'static str,
    },
    /// More top-level claims than [`MAX_CLAIMS`].
    TooMany { count: usize },
}

impl ClaimsError {
    /// A stable snake_case code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            ClaimsError::UnsupportedValue { .. } => "claim_value_unsupported",
            ClaimsError::PrincipalMissing { .. } => "principal_missing",
            ClaimsError::MergeConflict { .. } => "userinfo_merge_conflict",
            ClaimsError::TooMany { .. } => "too_many_claims",
        }
    }
}

impl fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimsError::UnsupportedValue {
                setting,
                claim,
                found,
            } => write!(
                f,
                "{setting}: claim [{claim}] {found}; expected a string or an array of strings"
            ),
            ClaimsError::PrincipalMissing {
                claim,
                pattern: false,
            } => write!(
                f,
                "claims.principal: claim [{claim}] is missing, null or empty; cannot determine the principal"
            ),
            ClaimsError::PrincipalMissing {
                claim,
                pattern: true,
            } => write!(
                f,
                "claims.principal: no value of claim [{claim}] matched claim_patterns.principal (or the match's group 1 was empty); cannot determine the principal"
            ),
            ClaimsError::MergeConflict {
                claim,
                id_token,
                userinfo,
            } => write!(
                f,
                "Error merging ID token and userinfo claim value for claim [{claim}]. Cannot merge [{id_token}] with [{userinfo}]"
            ),
            ClaimsError::TooMany { count } => write!(
                f,
                "the login carries {count} claims (ID token and UserInfo together); at most {MAX_CLAIMS} are accepted"
            ),
        }
    }
}

impl std::error::Error for ClaimsError {}

/// Map claims to a user under the realm's `claims.*` / `claim_patterns.*`.
///
/// - A claim value may be a string, number or boolean (their text), or an array of those
///   (nulls dropped). Absent or null → no value. An object, or an array holding an array or
///   object → [`ClaimsError::UnsupportedValue`].
/// - With a pattern, it is searched in each value (find, not whole-match) and group 1 is the
///   result; values that do not match or whose group 1 is empty are dropped.
/// - Principal, name, mail and dn take the first value; groups keep all (deduplicated).
pub fn map_claims(
    claims: &Map<String, Value>,
    settings: &ClaimSettings,
    populate_user_metadata: bool,
) -> Result<MappedUser, ClaimsError> {
    if claims.len() > MAX_CLAIMS {
        return Err(ClaimsError::TooMany {
            count: claims.len(),
        });
    }
    let principal_values = rule_values(claims, &settings.principal, "claims.principal")?;
    let principal = match principal_values.into_iter().next() {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err(ClaimsError::PrincipalMissing {
                claim: shown_name(&settings.principal.claim),
                pattern: settings.principal.pattern.is_some(),
            })
        }
    };

    let groups = match &settings.groups {
        None => Vec::new(),
        Some(rule) => {
            let mut seen = HashSet::new();
            rule_values(claims, rule, "claims.groups")?
                .into_iter()
                .filter(|g| !g.is_empty() && seen.insert(g.clone()))
                .collect()
        }
    };
    let name = first_value(claims, settings.name.as_ref(), "claims.name")?;
    let mail = first_value(claims, settings.mail.as_ref(), "claims.mail")?;
    let dn = first_value(claims, settings.dn.as_ref(), "claims.dn")?;
    let metadata = if populate_user_metadata {
        metadata(claims)
    } else {
        Map::new()
    };
    Ok(MappedUser {
        principal,
        groups,
        name,
        mail,
        dn,
        metadata,
    })
}

fn first_value(
    claims: &Map<String, Value>,
    rule: Option<&ClaimRule>,
    setting: &'static str,
) -> Result<Option<String>, ClaimsError> {
    match rule {
        None => Ok(None),
        Some(rule) => Ok(rule_values(claims, rule, setting)?.into_iter().next()),
    }
}

/// The values of the rule's claim, after its pattern.
fn rule_values(
    claims: &Map<String, Value>,
    rule: &ClaimRule,
    setting: &'static str,
) -> Result<Vec<String>, ClaimsError> {
    let values = claim_values(claims, &rule.claim, setting)?;
    Ok(match &rule.pattern {
        None => values,
        Some(re) => values
            .iter()
            .filter_map(|v| {
                re.captures(v)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .collect(),
    })
}

/// The raw values of a claim (top-level, or nested when `claim` is a JSON Pointer), as text.
fn claim_values(
    claims: &Map<String, Value>,
    claim: &str,
    setting: &'static str,
) -> Result<Vec<String>, ClaimsError> {
    let unsupported = |found: &'static str| ClaimsError::UnsupportedValue {
        setting,
        claim: shown_name(claim),
        found,
    };
    let found = match crate::config::claim_pointer(claim) {
        Ok(None) => claims.get(claim),
        Ok(Some(path)) => nested(claims, &path)
            .map_err(|()| unsupported("has a member on its path that is not an object"))?,
        // The loader refuses invalid paths; a rule built another way finds nothing.
        Err(_) => None,
    };
    match found {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(_)) => Err(unsupported("is an object")),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Null => {}
                    Value::Array(_) => return Err(unsupported("contains a nested array")),
                    Value::Object(_) => return Err(unsupported("contains an object")),
                    scalar => out.push(scalar_text(scalar)),
                }
            }
            Ok(out)
        }
        Some(scalar) => Ok(vec![scalar_text(scalar)]),
    }
}

/// The value at a nested path (member names, outermost first). `Ok(None)` when a member is
/// absent or null on the way; `Err` when a value on the way is not an object (e.g. a string or
/// an array where the path continues).
fn nested<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Result<Option<&'a Value>, ()> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let mut here = match claims.get(first) {
        None => return Ok(None),
        Some(v) => v,
    };
    for name in rest {
        here = match here {
            Value::Null => return Ok(None),
            Value::Object(members) => match members.get(name) {
                None => return Ok(None),
                Some(v) => v,
            },
            _ => return Err(()),
        };
    }
    Ok(Some(here))
}

/// Text of a string, number or boolean.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// `oidc(<claim>)` for every top-level string, number, boolean and array of those, except
/// `exp`, `iat`, `nbf` and `id_token_hint`. Objects, nulls and arrays holding anything else
/// are left out.
fn metadata(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .filter(|(k, _)| !METADATA_EXCLUDED.contains(&k.as_str()))
        .filter(|(_, v)| match v {
            Value::Array(items) => items.iter().all(is_scalar),
            other => is_scalar(other),
        })
        .map(|(k, v)| (format!("oidc({k})"), v.clone()))
        .collect()
}

/// Merge UserInfo claims into the ID token's (OIDC Core §5.3.2; Elasticsearch's rules):
///
/// - a claim only in UserInfo is added; a null on either side yields the other value;
/// - an ID-token array gets the UserInfo value(s) appended (duplicates kept);
/// - objects merge recursively (an ID-token object with a UserInfo non-object is an error);
/// - scalars of the same JSON type: the ID token wins (all numbers are one type);
/// - `true` vs `"true"` (either way round, exact text) → the boolean;
/// - any other type difference → [`ClaimsError::MergeConflict`] naming the claim.
///
/// The `sub` equality check (OIDC Core §5.3.4) is the caller's.
pub fn merge_userinfo(
    id_token_claims: &Map<String, Value>,
    userinfo: Map<String, Value>,
) -> Result<Map<String, Value>, ClaimsError> {
    let mut merged = id_token_claims.clone();
    merge_into(&mut merged, userinfo, "")?;
    Ok(merged)
}

fn merge_into(
    target: &mut Map<String, Value>,
    source: Map<String, Value>,
    path: &str,
) -> Result<(), ClaimsError> {
    for (key, ui) in source {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(id) = target.get_mut(&key) else {
            target.insert(key, ui);
            continue;
        };
        match (id, ui) {
            (_, Value::Null) => {}
            (id @ Value::Null, ui) => *id = ui,
            (Value::Array(items), Value::Array(more)) => items.extend(more),
            (Value::Array(items), ui) => items.push(ui),
            (Value::Object(obj), Value::Object(more)) => merge_into(obj, more, &here)?,
            (Value::String(_), Value::String(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::Bool(_), Value::Bool(_)) => {}
            (Value::Bool(b), Value::String(s)) if bool_text(*b) == s => {}
            (id @ Value::String(_), Value::Bool(b)) if id.as_str() == Some(bool_text(b)) => {
                *id = Value::Bool(b)
            }
            (id, ui) => {
                return Err(ClaimsError::MergeConflict {
                    claim: shown_name(&here),
                    id_token: kind(id),
                    userinfo: kind(&ui),
                })
            }
        }
    }
    Ok(())
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A claim name made safe for a log line (names may come from the OP).
fn shown_name(name: &str) -> String {
    crate::text::Cap {
        max_chars: MAX_NAME_IN_ERROR,
        control: Some('?'),
        ellipsis: true,
    }
    .apply(name)
}

#[cfg(test)]
mod tests;
