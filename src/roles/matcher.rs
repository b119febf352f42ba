//! Rule values and how they match user values (spec §5.2): exact strings, `*`/`?` wildcards,
//! `/.../` Lucene-style regular expressions, numbers, booleans and `null`; the case rules of
//! `dn` and `groups` (case-insensitive, plus X.500 DN equality and `*,<dn>` sub-trees).
//!
//! # Lucene regular expressions
//!
//! Elasticsearch compiles `/.../` with Lucene's `RegExp` (whole-value match, no anchors). We
//! translate that syntax to the `regex` crate, anchored as `^(?s:...)$`:
//!
//! | Lucene | Meaning | Translation |
//! |---|---|---|
//! | `.` | any character (newline too) | `.` under `(?s)` |
//! | `?` `*` `+` `{n}` `{n,}` `{n,m}` | repetition | the same |
//! | `\|` `( )` | alternation, grouping | `\|`, `(?: )` |
//! | `[abc]` `[a-z]` `[^a-z]` | character classes | the same (members escaped) |
//! | `"text"` | literal text | escaped |
//! | `\c` | the character `c` literally | escaped |
//! | `\d \D \s \S \w \W` | ASCII classes (Lucene 9) | `[0-9]`, `[ \t\n\x0B\f\r]`, `[a-zA-Z0-9_]` and negations |
//! | `@` | any string | `.*` |
//! | `^` `$` `>` `]` `}` (outside classes) | literal characters | escaped |
//!
//! Refused when the mapping is written (never at login): `~` (complement), `&`
//! (intersection), `<n-m>` (numeric intervals), `#` (the empty language), and anything the
//! translated expression cannot compile (e.g. a leading quantifier `/*a/`, which Lucene reads
//! as a literal `*`: escape it as `\*`). Compiled automata larger than [`REGEX_SIZE_LIMIT`]
//! are refused too.

use regex::{Regex, RegexBuilder};
use serde_json::Value;

/// The largest compiled regular expression accepted in a rule.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled rule value.
#[derive(Debug, Clone)]
pub enum RuleValue {
    Null,
    Bool(bool),
    /// Rule numbers are 64-bit integers (fractions truncated), as in Elasticsearch.
    Number(i64),
    /// A string without `*` that is not `/regex/`: equality.
    Exact {
        text: String,
        /// For `dn`/`groups`: lower-cased form and DN form, computed once.
        lower: String,
        dn: Option<Dn>,
    },
    /// A wildcard or regular expression: whole-value match.
    Pattern {
        text: String,
        matcher: Pattern,
        /// `*,<dn>` with no other `*`: the DN whose descendants match (for `dn`/`groups`).
        subtree: Option<Dn>,
        /// Whether lower-/upper-cased user values can match (see `Pattern::case_forms`).
        try_lower: bool,
        try_upper: bool,
    },
}

/// A compiled wildcard or regular expression, with fast paths for the common wildcard shapes.
#[derive(Debug, Clone)]
pub enum Pattern {
    Any,
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

impl Pattern {
    /// Whether a lower-cased (`.0`) or upper-cased (`.1`) value can match at all: a literal
    /// with an upper-case letter never matches a lower-cased value, and vice versa. Lets the
    /// DN predicate skip forms that cannot match.
    fn case_forms(&self) -> (bool, bool) {
        match self {
            // ASCII only: then case mapping provably cannot bring the letter back.
            Pattern::Prefix(p) | Pattern::Suffix(p) | Pattern::Contains(p) if p.is_ascii() => (
                !p.chars().any(char::is_uppercase),
                !p.chars().any(char::is_lowercase),
            ),
            _ => (true, true),
        }
    }

    #[inline]
    pub fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => s.starts_with(p.as_str()),
            Pattern::Suffix(p) => s.ends_with(p.as_str()),
            Pattern::Contains(p) => s.contains(p.as_str()),
            Pattern::Regex(r) => r.is_match(s),
        }
    }
}

/// Whether Elasticsearch reads this string as a Lucene regular expression.
pub fn is_lucene_regex(s: &str) -> bool {
    s.len() > 1 && s.starts_with('/') && s.ends_with('/')
}

impl RuleValue {
    /// Compile a rule string. Errors are messages for the client.
    pub fn string(s: &str) -> Result<RuleValue, String> {
        if is_lucene_regex(s) {
            let inner = &s[1..s.len() - 1];
            let translated = lucene_to_regex(inner)
                .map_err(|e| format!("invalid regular expression [{s}]: {e}"))?;
            let re = build_regex(&translated)
                .map_err(|e| format!("invalid regular expression [{s}]: {e}"))?;
            return Ok(RuleValue::Pattern {
                text: s.to_string(),
                matcher: Pattern::Regex(re),
                subtree: None,
                try_lower: true,
                try_upper: true,
            });
        }
        if s.contains('*') {
            let subtree = s
                .strip_prefix("*,")
                .filter(|rest| !rest.contains('*'))
                .and_then(Dn::parse);
            let matcher = compile_wildcard(s)?;
            let (try_lower, try_upper) = matcher.case_forms();
            return Ok(RuleValue::Pattern {
                text: s.to_string(),
                matcher,
                subtree,
                try_lower,
                try_upper,
            });
        }
        Ok(RuleValue::Exact {
            text: s.to_string(),
            lower: s.to_lowercase(),
            dn: Dn::parse(s),
        })
    }

    /// Match a plain (case-sensitive) user value: `username`, `realm.name`, `metadata.*`.
    /// `None` is an absent field. An array matches if any element does.
    pub fn matches_json(&self, v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => matches!(self, RuleValue::Null),
            Some(Value::Bool(b)) => matches!(self, RuleValue::Bool(r) if r == b),
            Some(Value::Number(n)) => match self {
                RuleValue::Number(r) => number_equals(n, *r),
                _ => false,
            },
            Some(Value::String(s)) => self.matches_str(s),
            Some(Value::Array(a)) => a.iter().any(|x| self.matches_json(Some(x))),
            // Elasticsearch cannot model objects; they match nothing.
            Some(Value::Object(_)) => false,
        }
    }

    /// Match a case-sensitive string.
    #[inline]
    pub fn matches_str(&self, s: &str) -> bool {
        match self {
            RuleValue::Exact { text, .. } => text == s,
            RuleValue::Pattern { matcher, .. } => matcher.is_match(s),
            _ => false,
        }
    }

    /// Match a `dn` or group value (Elasticsearch's `DistinguishedNamePredicate`).
    pub fn matches_dn(&self, u: &DnValue) -> bool {
        match self {
            RuleValue::Pattern {
                matcher,
                subtree,
                try_lower,
                try_upper,
                ..
            } => {
                // The forms Elasticsearch tries, in its order, skipping repeats and forms
                // that cannot match.
                matcher.is_match(&u.text)
                    || u.normalized.as_deref().is_some_and(|n| {
                        n != u.text && (n != u.lower || !try_lower) && matcher.is_match(n)
                    })
                    || (*try_lower && u.lower_differs && matcher.is_match(&u.lower))
                    || (*try_upper && u.upper_differs && matcher.is_match(&u.upper))
                    || match (&u.dn, subtree) {
                        (Some(dn), Some(sub)) => dn.is_descendant_of(sub),
                        _ => false,
                    }
            }
            RuleValue::Exact { lower, dn, .. } => {
                if *lower == u.lower {
                    return true;
                }
                match (&u.dn, dn) {
                    (None, _) => false,
                    (Some(user_dn), Some(rule_dn)) => user_dn == rule_dn,
                    (Some(_), None) => u.normalized.as_deref() == Some(lower.as_str()),
                }
            }
            _ => false,
        }
    }
}

/// Elasticsearch's `numberEquals`: a fractional user value compares as a double, otherwise
/// as a 64-bit integer.
fn number_equals(user: &serde_json::Number, rule: i64) -> bool {
    if let Some(i) = user.as_i64() {
        return i == rule;
    }
    if user.is_f64() {
        return user.as_f64() == Some(rule as f64);
    }
    // A u64 above i64::MAX equals no rule number.
    false
}

fn build_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "the expression is too large".to_string(),
            // The syntax error's own text points into the *translated* pattern; keep its
            // last line, which says what is wrong.
            e => e
                .to_string()
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("syntax error")
                .trim()
                .to_string(),
        })
}

/// Compile a Lucene wildcard (`*` any run, `?` one character, `\` escapes the next one;
/// whole-value match).
pub fn compile_wildcard(p: &str) -> Result<Pattern, String> {
    if p == "*" {
        return Ok(Pattern::Any);
    }
    if !p.contains(['?', '\\']) {
        let inner = p.trim_matches('*');
        if !inner.contains('*') {
            let (lead, trail) = (p.starts_with('*'), p.ends_with('*'));
            match (lead, trail) {
                (true, true) => return Ok(Pattern::Contains(inner.to_string())),
                (false, true) => return Ok(Pattern::Prefix(inner.to_string())),
                (true, false) => return Ok(Pattern::Suffix(inner.to_string())),
                (false, false) => {}
            }
        }
    }
    let mut out = String::from("^(?s:");
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => push_literal(&mut out, chars.next().unwrap_or('\\')),
            c => push_literal(&mut out, c),
        }
    }
    out.push_str(")$");
    build_regex(&out)
        .map(Pattern::Regex)
        .map_err(|e| format!("invalid wildcard [{p}]: {e}"))
}

fn push_literal(out: &mut String, c: char) {
    if c.is_alphanumeric() || c == ' ' || c == '_' {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:X}}}", c as u32));
    }
}

const DIGIT: &str = "0-9";
const SPACE: &str = " \\t\\n\\x0B\\f\\r";
const WORD: &str = "a-zA-Z0-9_";

/// Translate a Lucene `RegExp` (without its slashes) into `regex` syntax, anchored.
pub fn lucene_to_regex(src: &str) -> Result<String, String> {
    let mut out = String::from("^(?s:");
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                let Some(&n) = chars.get(i) else {
                    return Err("the expression ends with an unfinished escape `\\`".into());
                };
                i += 1;
                match n {
                    'd' => out.push_str(&format!("[{DIGIT}]")),
                    'D' => out.push_str(&format!("[^{DIGIT}]")),
                    's' => out.push_str(&format!("[{SPACE}]")),
                    'S' => out.push_str(&format!("[^{SPACE}]")),
                    'w' => out.push_str(&format!("[{WORD}]")),
                    'W' => out.push_str(&format!("[^{WORD}]")),
                    n => push_literal(&mut out, n),
                }
            }
            '"' => {
                let Some(end) = chars[i..].iter().position(|&x| x == '"') else {
                    return Err("unterminated string literal `\"`".into());
                };
                for &x in &chars[i..i + end] {
                    push_literal(&mut out, x);
                }
                i += end + 1;
            }
            '.' => out.push('.'),
            '@' => out.push_str(".*"),
            '(' => out.push_str("(?:"),
            ')' | '|' | '*' | '+' | '?' => out.push(c),
            '{' => {
                let Some(end) = chars[i..].iter().position(|&x| x == '}') else {
                    return Err("unterminated repetition `{`".into());
                };
                let body: String = chars[i..i + end].iter().collect();
                let valid = {
                    let mut parts = body.splitn(2, ',');
                    let min = parts.next().unwrap_or("");
                    let max = parts.next();
                    !min.is_empty()
                        && min.chars().all(|d| d.is_ascii_digit())
                        && max.is_none_or(|m| m.chars().all(|d| d.is_ascii_digit()))
                };
                if !valid {
                    return Err(format!("invalid repetition `{{{body}}}`"));
                }
                out.push('{');
                out.push_str(&body);
                out.push('}');
                i += end + 1;
            }
            '[' => {
                i = class(&chars, i, &mut out)?;
            }
            '~' => return Err("the complement operator `~` is not supported".into()),
            '&' => return Err("the intersection operator `&` is not supported".into()),
            '<' => return Err("numeric intervals `<n-m>` are not supported".into()),
            '#' => return Err("the empty language `#` is not supported".into()),
            c => push_literal(&mut out, c),
        }
    }
    out.push_str(")$");
    Ok(out)
}

/// A character class starting after `[` at `i`; returns the index after `]`.
fn class(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut members = 0;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unterminated character class `[`".into());
        };
        i += 1;
        match c {
            ']' if members > 0 => break,
            ']' => return Err("empty character class `[]`".into()),
            '\\' => {
                let Some(&n) = chars.get(i) else {
                    return Err("the expression ends with an unfinished escape `\\`".into());
                };
                i += 1;
                match n {
                    'd' => out.push_str(DIGIT),
                    's' => out.push_str(SPACE),
                    'w' => out.push_str(WORD),
                    n => push_literal(out, n),
                }
            }
            '-' if members > 0 && chars.get(i).is_some_and(|&n| n != ']') => out.push('-'),
            c => push_literal(out, c),
        }
        members += 1;
    }
    out.push(']');
    Ok(i)
}

// ---------------------------------------------------------------------------------------------
// Distinguished names

/// A parsed X.500 distinguished name (RFC 4514 string form), normalised: attribute types and
/// values lower-cased, values trimmed with inner whitespace runs collapsed, the attributes of
/// a multi-valued RDN sorted. Two DNs are equal when their normalised forms are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn {
    rdns: Vec<Vec<(String, String)>>,
}

impl Dn {
    /// Parse a DN; `None` if `s` is not one (e.g. a plain group name).
    pub fn parse(s: &str) -> Option<Dn> {
        let chars: Vec<char> = s.chars().collect();
        let mut rdns = Vec::new();
        if s.trim().is_empty() {
            return None;
        }
        let mut i = 0;
        let mut rdn: Vec<(String, String)> = Vec::new();
        loop {
            // attribute type
            let start = i;
            while i < chars.len() && chars[i] != '=' {
                if matches!(chars[i], ',' | ';' | '+' | '\\' | '"') {
                    return None;
                }
                i += 1;
            }
            if i >= chars.len() {
                return None;
            }
            let attr: String = chars[start..i]
                .iter()
                .collect::<String>()
                .trim()
                .to_lowercase();
            if attr.is_empty()
                || !attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return None;
            }
            i += 1; // '='
                    // value
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            let mut bytes: Vec<u8> = Vec::new();
            let mut trailing_plain_spaces = 0usize;
            if chars.get(i) == Some(&'"') {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return None,
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let n = *chars.get(i + 1)?;
                            push_char(&mut bytes, n);
                            i += 2;
                        }
                        Some(&c) => {
                            push_char(&mut bytes, c);
                            i += 1;
                        }
                    }
                }
                while i < chars.len() && chars[i] == ' ' {
                    i += 1;
                }
            } else {
                while let Some(&c) = chars.get(i) {
                    match c {
                        ',' | ';' | '+' => break,
                        '\\' => {
                            let n = *chars.get(i + 1)?;
                            if n.is_ascii_hexdigit() {
                                let m = *chars.get(i + 2)?;
                                let hex: String = [n, m].iter().collect();
                                bytes.push(u8::from_str_radix(&hex, 16).ok()?);
                                i += 3;
                            } else {
                                push_char(&mut bytes, n);
                                i += 2;
                            }
                            trailing_plain_spaces = 0;
                        }
                        '"' => return None,
                        c => {
                            push_char(&mut bytes, c);
                            trailing_plain_spaces = if c == ' ' {
                                trailing_plain_spaces + 1
                            } else {
                                0
                            };
                            i += 1;
                        }
                    }
                }
                bytes.truncate(bytes.len() - trailing_plain_spaces);
            }
            let value = String::from_utf8(bytes).ok()?;
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            rdn.push((attr, value.to_lowercase()));
            match chars.get(i) {
                None => {
                    rdn.sort();
                    rdns.push(std::mem::take(&mut rdn));
                    break;
                }
                Some('+') => i += 1,
                Some(',') | Some(';') => {
                    rdn.sort();
                    rdns.push(std::mem::take(&mut rdn));
                    i += 1;
                }
                Some(_) => return None,
            }
        }
        Some(Dn { rdns })
    }

    /// The normalised string form, e.g. `cn=john,ou=people,dc=example,dc=com`.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        for (n, rdn) in self.rdns.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            for (m, (attr, value)) in rdn.iter().enumerate() {
                if m > 0 {
                    out.push('+');
                }
                out.push_str(attr);
                out.push('=');
                for (k, c) in value.chars().enumerate() {
                    let edge = (k == 0 && (c == '#' || c == ' '))
                        || (k + 1 == value.chars().count() && c == ' ');
                    if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
        }
        out
    }

    /// Whether this DN lies strictly below `ancestor`.
    pub fn is_descendant_of(&self, ancestor: &Dn) -> bool {
        self.rdns.len() > ancestor.rdns.len() && self.rdns.ends_with(&ancestor.rdns)
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// A user's `dn` or one of its groups, in every form the DN predicate tries; computed once per
/// login.
#[derive(Debug, Clone)]
pub struct DnValue {
    pub text: String,
    pub lower: String,
    pub upper: String,
    pub dn: Option<Dn>,
    pub normalized: Option<String>,
    lower_differs: bool,
    upper_differs: bool,
}

impl DnValue {
    pub fn new(s: &str) -> DnValue {
        let dn = Dn::parse(s);
        let lower = s.to_lowercase();
        let upper = s.to_uppercase();
        DnValue {
            lower_differs: lower != s,
            upper_differs: upper != s,
            text: s.to_string(),
            lower,
            upper,
            normalized: dn.as_ref().map(Dn::normalized),
            dn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &str) -> RuleValue {
        RuleValue::string(s).unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(v("*").matches_str("anything"));
        assert!(v("*").matches_str(""));
        assert!(v("ab*").matches_str("abc") && !v("ab*").matches_str("xabc"));
        assert!(v("*bc").matches_str("abc") && !v("*bc").matches_str("abcd"));
        assert!(v("*b*").matches_str("abc") && !v("*b*").matches_str("ac"));
        assert!(v("a*c").matches_str("abbbc") && !v("a*c").matches_str("abbbcd"));
        assert!(v("a?c*").matches_str("abc") && !v("a?c*").matches_str("ac"));
        // `?` without `*` is a literal.
        assert!(v("a?c").matches_str("a?c") && !v("a?c").matches_str("abc"));
        // Escapes.
        assert!(v("a\\*b*").matches_str("a*bc") && !v("a\\*b*").matches_str("axbc"));
        assert!(v("*.example.com").matches_str("x.example.com"));
        assert!(!v("*.example.com").matches_str("xexample.com"));
        assert!(v("a\nb*").matches_str("a\nbc"));
    }

    #[test]
    fn lucene_regexes() {
        let cases: &[(&str, &str, bool)] = &[
            ("/abc/", "abc", true),
            ("/abc/", "xabc", false), // whole value
            ("/a.c/", "a\nc", true),
            ("/ab*c/", "abbbc", true),
            ("/(ab)+/", "ababab", true),
            ("/a{2,3}/", "aaa", true),
            ("/a{2,3}/", "aaaa", false),
            ("/a{2}/", "aa", true),
            ("/a|b/", "b", true),
            ("/[a-c]x/", "bx", true),
            ("/[^a-c]x/", "bx", false),
            ("/[^a-c]x/", "dx", true),
            ("/\"a.b\"/", "a.b", true),
            ("/\"a.b\"/", "axb", false),
            ("/a\\.b/", "a.b", true),
            ("/a\\.b/", "axb", false),
            ("/@/", "anything at all", true),
            ("/admin@/", "adminXYZ", true), // @ is "any string", not a literal
            ("/admin\\@/", "adminXYZ", false),
            ("/admin\\@/", "admin@", true),
            ("/\\d+/", "123", true),
            ("/\\d+/", "12a", false),
            ("/\\w+\\s\\w+/", "ab cd", true),
            ("/^a$/", "^a$", true), // anchors are literals in Lucene
            ("/[a\\]]+/", "a]a", true),
            ("/[-a]+/", "-a", true),
            ("/.*-team/", "finance-team", true),
            ("/.*-team/", "Finance-Teams", false),
            ("/()/", "", true),
        ];
        for (rule, value, expect) in cases {
            assert_eq!(v(rule).matches_str(value), *expect, "{rule} vs {value:?}");
        }
    }

    #[test]
    fn unsupported_regex_syntax_refused() {
        for bad in [
            "/~a/", "/a&b/", "/<1-10>/", "/#/", "/*a/", "/[a/", "/(a/", "/a{x}/", "/\"a/", "/a\\/",
            "/[]/",
        ] {
            let e = RuleValue::string(bad).unwrap_err();
            assert!(e.starts_with("invalid regular expression ["), "{bad}: {e}");
        }
        assert!(RuleValue::string("/(a/")
            .unwrap_err()
            .contains("invalid regular expression [/(a/]"));
        assert!(RuleValue::string("/~a/")
            .unwrap_err()
            .contains("complement"));
        // "/" alone and "//" are not regexes in Elasticsearch (length > 1 needed for "//"? it is
        // a regex matching the empty string).
        assert!(matches!(v("/"), RuleValue::Exact { .. }));
        assert!(v("//").matches_str(""));
    }

    #[test]
    fn scalars() {
        let n = RuleValue::Number(1);
        assert!(n.matches_json(Some(&json!(1))));
        assert!(n.matches_json(Some(&json!(1.0))));
        assert!(!n.matches_json(Some(&json!(1.5))));
        assert!(!n.matches_json(Some(&json!("1"))));
        assert!(!RuleValue::Number(-1).matches_json(Some(&json!(u64::MAX))));
        let t = RuleValue::Bool(true);
        assert!(t.matches_json(Some(&json!(true))));
        assert!(!t.matches_json(Some(&json!("true"))));
        assert!(!v("true").matches_json(Some(&json!(true))));
        assert!(RuleValue::Null.matches_json(None));
        assert!(RuleValue::Null.matches_json(Some(&json!(null))));
        assert!(!RuleValue::Null.matches_json(Some(&json!(""))));
        assert!(!RuleValue::Null.matches_json(Some(&json!([]))));
        assert!(RuleValue::Null.matches_json(Some(&json!(["a", null]))));
        assert!(v("b").matches_json(Some(&json!(["a", "b"]))));
        assert!(!v("b").matches_json(Some(&json!({"x": "b"}))));
        assert!(!v("B").matches_json(Some(&json!("b"))));
        assert!(!n.matches_json(None));
    }

    #[test]
    fn distinguished_names() {
        let a = Dn::parse("CN=John Smith , OU=People,dc=Example,DC=com").unwrap();
        let b = Dn::parse("cn=john  smith,ou=people,dc=example,dc=com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.normalized(), "cn=john smith,ou=people,dc=example,dc=com");
        assert_eq!(
            Dn::parse("cn=a\\,b,o=x").unwrap().normalized(),
            "cn=a\\,b,o=x"
        );
        assert_eq!(
            Dn::parse("cn=\"a,b\",o=x").unwrap(),
            Dn::parse("cn=a\\2Cb,o=x").unwrap()
        );
        assert_eq!(
            Dn::parse("cn=x+uid=1,o=y").unwrap(),
            Dn::parse("UID=1+CN=x,o=y").unwrap()
        );
        for not_dn in ["finance-team", "", "=x", "cn", "cn=a,", "a b=c"] {
            assert!(Dn::parse(not_dn).is_none(), "{not_dn:?}");
        }
        let sub = Dn::parse("ou=people,dc=example,dc=com").unwrap();
        assert!(a.is_descendant_of(&sub));
        assert!(!sub.is_descendant_of(&sub));
    }

    #[test]
    fn dn_predicate() {
        let user = DnValue::new("CN=John Smith,OU=People,DC=Example,DC=com");
        assert!(v("cn=john smith,ou=people,dc=example,dc=com").matches_dn(&user));
        assert!(v("cn=John Smith, ou=People, dc=example, dc=com").matches_dn(&user));
        assert!(!v("cn=jane,ou=people,dc=example,dc=com").matches_dn(&user));
        assert!(v("*,ou=people,dc=example,dc=com").matches_dn(&user));
        assert!(v("*,OU=People, DC=example,DC=com").matches_dn(&user)); // sub-tree via DN
        assert!(!v("*,ou=groups,dc=example,dc=com").matches_dn(&user));
        assert!(v("cn=john*").matches_dn(&user)); // lower-cased form
        assert!(v("CN=JOHN*").matches_dn(&user)); // upper-cased form
        assert!(v("/cn=john smith,.*/").matches_dn(&user));
        assert!(!RuleValue::Number(1).matches_dn(&user));
        let group = DnValue::new("Finance-Team");
        assert!(v("finance-team").matches_dn(&group));
        assert!(v("FINANCE-TEAM").matches_dn(&group));
        assert!(v("finance-*").matches_dn(&group));
        assert!(v("Finance-*").matches_dn(&group));
        assert!(!v("fINANCE-*").matches_dn(&group));
        assert!(v("*-TEAM").matches_dn(&group));
        assert!(v("*-team").matches_dn(&group));
        assert!(v("/FINANCE-T.*/").matches_dn(&group));
        assert!(!v("finance").matches_dn(&group));
    }
}
