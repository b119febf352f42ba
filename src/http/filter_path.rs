//! Elasticsearch's `filter_path` response filtering.
//!
//! A comma-separated list of dotted paths. In a path, `*` matches any run of characters
//! within one field name, `**` matches any number of levels (including none), and `\.` is a
//! literal dot. A path starting with `-` excludes. Includes apply first, then excludes; arrays
//! are transparent (the filter applies to each element); a scalar is kept only if a whole
//! include path reached it; objects and arrays that includes leave empty are dropped (an
//! exclude leaves an emptied object in place), and when nothing matches the answer is `{}`.
//! Like Elasticsearch, odd values are not refused: blank entries are skipped and a path that
//! can never match simply matches nothing. Beyond Elasticsearch, a filter is bounded (at most
//! [`MAX_PATHS`] paths of at most [`MAX_SEGMENTS`] segments); a larger one is refused (400),
//! never cut silently.

use serde_json::{Map, Value};

/// Most paths in a filter, and most segments in a path: bounds the work a request can ask for.
pub const MAX_PATHS: usize = 1024;
pub const MAX_SEGMENTS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`
    AnyDepth,
    /// A name, possibly with `*` wildcards.
    Name(String),
}

impl Segment {
    fn matches(&self, key: &str) -> bool {
        match self {
            Segment::AnyDepth => true,
            Segment::Name(p) => crate::glob::matches(p, key),
        }
    }
}

type Path = Vec<Segment>;

/// A parsed `filter_path`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterPath {
    include: Vec<Path>,
    exclude: Vec<Path>,
}

fn split_path(p: &str) -> Result<Path, String> {
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                cur.push('.');
                chars.next();
            }
            '.' => segs.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    segs.push(cur);
    if segs.len() > MAX_SEGMENTS {
        return Err(format!(
            "a filter_path path has more than {MAX_SEGMENTS} segments"
        ));
    }
    let mut path: Path = Vec::new();
    for s in segs {
        let seg = if s == "**" {
            Segment::AnyDepth
        } else {
            Segment::Name(s)
        };
        // `**.**` is `**`.
        if !(seg == Segment::AnyDepth && path.last() == Some(&Segment::AnyDepth)) {
            path.push(seg);
        }
    }
    Ok(path)
}

impl FilterPath {
    /// Parse a `filter_path` value; `Err` (a message for a 400) only when it is over the
    /// bounds.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut f = FilterPath::default();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.strip_prefix('-') {
                Some(rest) if !rest.trim().is_empty() => f.exclude.push(split_path(rest.trim())?),
                Some(_) => {}
                None => f.include.push(split_path(entry)?),
            }
            f.check()?;
        }
        Ok(f)
    }

    fn check(&self) -> Result<(), String> {
        if self.include.len() + self.exclude.len() > MAX_PATHS {
            return Err(format!("filter_path has more than {MAX_PATHS} paths"));
        }
        Ok(())
    }

    /// Both filters' paths (several `filter_path` parameters).
    pub fn merge(mut self, other: FilterPath) -> Result<Self, String> {
        self.include.extend(other.include);
        self.exclude.extend(other.exclude);
        self.check()?;
        Ok(self)
    }

    /// Filter a response body.
    pub fn apply(&self, value: Value) -> Value {
        let mut v = value;
        if !self.include.is_empty() {
            let paths: Vec<&[Segment]> = self.include.iter().map(Vec::as_slice).collect();
            v = include(v, &paths).unwrap_or_else(|| Value::Object(Map::new()));
        }
        if !self.exclude.is_empty() {
            let paths: Vec<&[Segment]> = self.exclude.iter().map(Vec::as_slice).collect();
            v = exclude(v, &paths).unwrap_or_else(|| Value::Object(Map::new()));
        }
        v
    }
}

/// The paths that remain after descending into field `key`. An empty remainder means the
/// field is matched whole.
fn advance<'a>(paths: &[&'a [Segment]], key: &str) -> Vec<&'a [Segment]> {
    let mut next = Vec::new();
    for p in paths {
        push_advanced(p, key, &mut next);
    }
    // Several `**` can reach the same remainder: keep one of each, so the work stays
    // bounded by the number of distinct remainders.
    next.sort_by_key(|p| (p.as_ptr() as usize, p.len()));
    next.dedup_by_key(|p| (p.as_ptr() as usize, p.len()));
    next
}

fn push_advanced<'a>(p: &'a [Segment], key: &str, next: &mut Vec<&'a [Segment]>) {
    match p.first() {
        None => {}
        Some(Segment::AnyDepth) => {
            // `**` consumes this level and stays, or matches no level at all.
            if p.len() == 1 {
                next.push(&p[1..]);
            } else {
                next.push(p);
                push_advanced(&p[1..], key, next);
            }
        }
        Some(seg) if seg.matches(key) => next.push(&p[1..]),
        Some(_) => {}
    }
}

fn include(v: Value, paths: &[&[Segment]]) -> Option<Value> {
    if paths.iter().any(|p| p.is_empty()) {
        return Some(v);
    }
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, child) in map {
                let next = advance(paths, &k);
                if next.is_empty() {
                    continue;
                }
                if let Some(c) = include(child, &next) {
                    out.insert(k, c);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let out: Vec<Value> = items
                .into_iter()
                .filter_map(|i| include(i, paths))
                .collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => None,
    }
}

fn exclude(v: Value, paths: &[&[Segment]]) -> Option<Value> {
    if paths.iter().any(|p| p.is_empty()) {
        return None;
    }
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, child) in map {
                let next = advance(paths, &k);
                if next.is_empty() {
                    out.insert(k, child);
                } else if let Some(c) = exclude(child, &next) {
                    out.insert(k, c);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(
            items
                .into_iter()
                .filter_map(|i| exclude(i, paths))
                .collect(),
        )),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token() -> Value {
        json!({
            "access_token": "a", "type": "Bearer", "expires_in": 1200, "refresh_token": "r",
            "authentication": {
                "username": "jwong", "roles": ["x", "y"],
                "authentication_realm": {"name": "oidc1", "type": "oidc"},
                "lookup_realm": {"name": "oidc1", "type": "oidc"},
                "metadata": {"oidc(sub)": "00u1", "a.b": 1}
            }
        })
    }

    fn f(s: &str, v: Value) -> Value {
        FilterPath::parse(s).unwrap().apply(v)
    }

    #[test]
    fn includes() {
        assert_eq!(f("access_token", token()), json!({"access_token": "a"}));
        assert_eq!(
            f("access_token,expires_in", token()),
            json!({"access_token": "a", "expires_in": 1200})
        );
        assert_eq!(
            f("authentication.username", token()),
            json!({"authentication": {"username": "jwong"}})
        );
        assert_eq!(
            f("authentication.*_realm.name", token()),
            json!({"authentication": {"authentication_realm": {"name": "oidc1"}, "lookup_realm": {"name": "oidc1"}}})
        );
        assert_eq!(
            f("**.name", token()),
            json!({"authentication": {"authentication_realm": {"name": "oidc1"}, "lookup_realm": {"name": "oidc1"}}})
        );
        assert_eq!(
            f("authentication.roles", token())["authentication"]["roles"],
            json!(["x", "y"])
        );
        assert_eq!(
            f(r"authentication.metadata.a\.b", token()),
            json!({"authentication": {"metadata": {"a.b": 1}}})
        );
        assert_eq!(f("nothing", token()), json!({}));
        assert_eq!(f("*", token()), token());
        assert_eq!(f("**", token()), token());
    }

    #[test]
    fn arrays_are_transparent() {
        let v = json!({"profiles": [{"uid": "u1", "data": {}}, {"uid": "u2", "data": {}}], "n": [1, 2]});
        assert_eq!(
            f("profiles.uid", v.clone()),
            json!({"profiles": [{"uid": "u1"}, {"uid": "u2"}]})
        );
        assert_eq!(f("n", v.clone())["n"], json!([1, 2]));
        assert_eq!(f("n.x", v), json!({}));
    }

    #[test]
    fn excludes_after_includes() {
        assert_eq!(
            f("-authentication", token()),
            json!({"access_token": "a", "type": "Bearer", "expires_in": 1200, "refresh_token": "r"})
        );
        assert_eq!(
            f("authentication,-authentication.metadata,-**.type", token()),
            json!({"authentication": {"username": "jwong", "roles": ["x", "y"], "authentication_realm": {"name": "oidc1"}, "lookup_realm": {"name": "oidc1"}}})
        );
    }

    #[test]
    fn odd_values_match_nothing_and_never_fail() {
        for odd in [
            "", ",", " , ", "-", "..", ".", "a..b", "***", "\\", "-.", "**.**.**",
        ] {
            let _ = f(odd, token());
        }
        assert_eq!(f("", token()), token());
        assert_eq!(f("..", token()), json!({}));
        // Up to the bounds: a deep path that matches nothing, many paths.
        let deep = "a.".repeat(MAX_SEGMENTS - 1) + "keep";
        assert_eq!(f(&deep, token()), json!({}));
        let many = "x,".repeat(MAX_PATHS);
        assert_eq!(f(&many, token()), json!({}));
        let stars = "**.".repeat(MAX_SEGMENTS - 1) + "name";
        assert_eq!(f(&stars, token()), f("**.name", token()));
    }

    #[test]
    fn filters_over_the_bounds_are_refused_not_cut() {
        let deep = "a.".repeat(MAX_SEGMENTS) + "keep";
        assert!(FilterPath::parse(&deep).unwrap_err().contains("segments"));
        let many = "x,".repeat(MAX_PATHS + 1);
        assert!(FilterPath::parse(&many).unwrap_err().contains("paths"));
        let half = "x,".repeat(MAX_PATHS / 2 + 1);
        let a = FilterPath::parse(&half).unwrap();
        let b = FilterPath::parse(&half).unwrap();
        assert!(a.merge(b).is_err());
    }
}
