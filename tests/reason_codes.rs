//! Every `reason_code` the server can produce is documented in `docs/errors.md`.
//!
//! The codes are extracted from the sources under `src/` when the test runs, so a code added
//! without documentation fails here. The sources are tokenized (comments, string literals,
//! char literals and lifetimes told apart), items under `#[cfg(test)]` and files named
//! `tests.rs` are left out, and codes are read from these places only:
//!
//! 1. **`fn code(&self) -> &'static str`** (`LoginError`, `IdTokenError`, `OpError`,
//!    `ClaimsError`, `RefreshError`, `JwksError`, ...): every string literal right after a
//!    match arm's `=>`. An arm must be a literal or delegate to another `.code()`; anything
//!    else fails the test (the extractor would not see its codes).
//! 2. **`src/error.rs`, `Self::new(status, kind, code, reason)`**: the third argument when it
//!    is a literal (`validation_failed`, `not_found`, ...). When it is not, it must be a
//!    parameter of one of the constructors listed in [`CODE_CTORS`], whose callers are read
//!    by pattern 3; anything else fails the test.
//! 3. **Calls `ApiError::<ctor>(code, ...)`** of the constructors in [`CODE_CTORS`] (those
//!    whose first parameter is the code): the first argument, when it is a string literal.
//!    Otherwise it must be one of:
//!    - `<expr>.code()`: a code of pattern 1;
//!    - a `const NAME: &str = "..."` (e.g. `TOO_MANY_PENDING_CODE`): its literal;
//!    - a local `let <name> = match ... { ... => "...", ... }` of the same function (e.g.
//!      `bearer_error`'s `code`): the literals after its arms' `=>`;
//!    - a `&'static str` parameter of the calling function (e.g. `oauth_validation(error,
//!      ...)`): then the first argument of every call of that function, which must be a
//!      literal.
//!
//!    Anything else fails the test.
//!
//! The test then asserts that each code appears in backticks in `docs/errors.md`, that the
//! scan found a plausible number of codes (so it cannot pass on an empty scan), and that
//! every code in a reason-code column of a table in `docs/errors.md` or `docs/api.md` is one
//! the code can produce (no stale documentation). `docs/api.md` does not list every code: it
//! links to `docs/errors.md` for them, and a test checks that link and the codes it does name.

// The tokenizer and file list shared with the scan of tests/pitfalls.rs (not `mod common`,
// whose OIDC harness this test does not need).
#[path = "common/rust_src.rs"]
#[allow(dead_code)]
mod rust_src;

use rust_src::{closing, is_ident, is_punct, tokenize, without_test_items, Tok, Token};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Constructors of `ApiError` (in `src/error.rs`) whose first parameter is the reason code.
const CODE_CTORS: &[&str] = &[
    "parse_exception",
    "illegal_argument",
    "security_400",
    "unauthenticated",
    "invalid_token",
    "conflict",
    "too_many_requests",
    "oauth",
    "bad_gateway",
];

/// Fewer codes than this means the extraction is broken, not that the codes went away.
const PLAUSIBLE_MINIMUM: usize = 60;

// -------------------------------------------------------------------------------------------
// The sources

struct Source {
    /// Relative to the crate, for messages.
    path: String,
    toks: Vec<Token>,
    fns: Vec<Fn>,
}

/// A function: its name, the tokens of its parameter list and of its body (indices).
struct Fn {
    name: String,
    params: (usize, usize),
    body: (usize, usize),
}

impl Source {
    fn load(root: &Path, file: &Path) -> Self {
        let text = std::fs::read_to_string(file).unwrap();
        let path = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        Self::parse(&path, &text)
    }

    fn parse(path: &str, text: &str) -> Self {
        let toks = without_test_items(tokenize(text));
        let mut fns = Vec::new();
        for i in 0..toks.len().saturating_sub(2) {
            if !is_ident(&toks[i], "fn") {
                continue;
            }
            let Tok::Ident(name) = &toks[i + 1].tok else {
                continue;
            };
            // Generic parameters come before the parameter list.
            let Some(open) = (i + 2..toks.len()).find(|&k| is_punct(&toks[k], '(')) else {
                continue;
            };
            let close = closing(&toks, open);
            let mut k = close + 1;
            while k < toks.len() && !is_punct(&toks[k], '{') && !is_punct(&toks[k], ';') {
                k += 1;
            }
            if k < toks.len() && is_punct(&toks[k], '{') {
                fns.push(Fn {
                    name: name.clone(),
                    params: (open, close),
                    body: (k, closing(&toks, k)),
                });
            }
        }
        Source {
            path: path.to_string(),
            toks,
            fns,
        }
    }

    fn line(&self, i: usize) -> String {
        format!("{}:{}", self.path, self.toks[i].line)
    }

    /// The innermost function whose body holds token `i`.
    fn enclosing_fn(&self, i: usize) -> Option<&Fn> {
        self.fns
            .iter()
            .filter(|f| f.body.0 < i && i < f.body.1)
            .min_by_key(|f| f.body.1 - f.body.0)
    }

    /// Whether `f` has a parameter `name: &str` / `name: &'static str`.
    fn has_str_param(&self, f: &Fn, name: &str) -> bool {
        let p = &self.toks[f.params.0..=f.params.1];
        p.windows(4).any(|w| {
            is_ident(&w[0], name)
                && is_punct(&w[1], ':')
                && is_punct(&w[2], '&')
                && (is_ident(&w[3], "str") || matches!(&w[3].tok, Tok::Lifetime(_)))
        })
    }

    /// The arguments of the call whose `(` is at `open`, split at top-level commas.
    fn args(&self, open: usize) -> Vec<&[Token]> {
        let close = closing(&self.toks, open);
        let mut args = Vec::new();
        let mut start = open + 1;
        let mut k = open + 1;
        while k < close {
            match self.toks[k].tok {
                Tok::Punct("(" | "[" | "{") => {
                    k = closing(&self.toks, k) + 1;
                    continue;
                }
                Tok::Punct(",") => {
                    args.push(&self.toks[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
            k += 1;
        }
        if start < close {
            args.push(&self.toks[start..close]);
        }
        args
    }
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    rust_src::rust_files(&root.join("src"))
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|f| Source::load(root, f))
        .collect()
}

// -------------------------------------------------------------------------------------------
// The extraction

/// Every code, with where it was found (for messages).
#[derive(Default)]
struct Codes {
    found: BTreeMap<String, String>,
    /// What the extractor could not resolve: each one fails the test.
    unresolved: Vec<String>,
}

impl Codes {
    fn add(&mut self, code: &str, at: String) {
        self.found.entry(code.to_string()).or_insert(at);
    }
}

/// Literals right after `=>` in tokens `from..to`; arms that are neither a literal nor a
/// `.code()` delegation are reported.
fn arm_literals(src: &Source, from: usize, to: usize, what: &str, codes: &mut Codes) {
    let t = &src.toks;
    for k in from..to {
        if !(is_punct(&t[k], '=') && is_punct(&t[k + 1], '>')) {
            continue;
        }
        let arm = k + 2;
        match &t[arm].tok {
            Tok::Str(s) => codes.add(s, src.line(arm)),
            _ => {
                // `<path>.code()` up to the arm's end.
                let end = (arm..to)
                    .find(|&e| is_punct(&t[e], ',') || e == to - 1)
                    .unwrap_or(to);
                let arm_toks = &t[arm..end];
                let delegates = arm_toks.len() >= 4
                    && arm_toks.windows(4).any(|w| {
                        is_punct(&w[0], '.')
                            && is_ident(&w[1], "code")
                            && is_punct(&w[2], '(')
                            && is_punct(&w[3], ')')
                    });
                if !delegates {
                    codes.unresolved.push(format!(
                        "{}: an arm of {what} is neither a string literal nor a `.code()` delegation",
                        src.line(arm)
                    ));
                }
            }
        }
    }
}

fn extract(srcs: &[Source]) -> Codes {
    let mut codes = Codes::default();

    // `const NAME: &str = "...";` / `&'static str`, anywhere.
    let mut consts: BTreeMap<String, (String, String)> = BTreeMap::new();
    for src in srcs {
        let t = &src.toks;
        for i in 0..t.len().saturating_sub(7) {
            if !is_ident(&t[i], "const") {
                continue;
            }
            let Tok::Ident(name) = &t[i + 1].tok else {
                continue;
            };
            if !(is_punct(&t[i + 2], ':') && is_punct(&t[i + 3], '&')) {
                continue;
            }
            let mut k = i + 4;
            if matches!(t[k].tok, Tok::Lifetime(_)) {
                k += 1;
            }
            if is_ident(&t[k], "str") && is_punct(&t[k + 1], '=') {
                if let Tok::Str(s) = &t[k + 2].tok {
                    consts.insert(name.clone(), (s.clone(), src.line(k + 2)));
                }
            }
        }
    }

    // Pattern 1: `fn code(&self) -> &'static str`.
    for src in srcs {
        for f in src.fns.iter().filter(|f| f.name == "code") {
            let t = &src.toks;
            let sig = &t[f.params.1 + 1..f.body.0];
            let returns_static_str = sig.len() == 5
                && is_punct(&sig[0], '-')
                && is_punct(&sig[1], '>')
                && is_punct(&sig[2], '&')
                && sig[3].tok == Tok::Lifetime("static".into())
                && is_ident(&sig[4], "str");
            if !returns_static_str {
                continue;
            }
            let body = &t[f.body.0 + 1..f.body.1];
            let has_arms = body
                .windows(2)
                .any(|w| is_punct(&w[0], '=') && is_punct(&w[1], '>'));
            if has_arms {
                arm_literals(
                    src,
                    f.body.0 + 1,
                    f.body.1,
                    &format!("fn code in {}", src.path),
                    &mut codes,
                );
            } else {
                for (k, tok) in body.iter().enumerate() {
                    if let Tok::Str(s) = &tok.tok {
                        codes.add(s, src.line(f.body.0 + 1 + k));
                    }
                }
            }
        }
    }

    // Forwarders found by pattern 3 (functions that pass a parameter on as the code).
    let mut forwarders: BTreeSet<String> = BTreeSet::new();

    for src in srcs {
        let t = &src.toks;
        let in_error_rs = src.path.ends_with("src/error.rs");
        for i in 0..t.len().saturating_sub(4) {
            // Pattern 2: `Self::new(status, kind, code, reason)` in src/error.rs.
            if in_error_rs
                && is_ident(&t[i], "Self")
                && is_punct(&t[i + 1], ':')
                && is_punct(&t[i + 2], ':')
                && is_ident(&t[i + 3], "new")
                && is_punct(&t[i + 4], '(')
            {
                let args = src.args(i + 4);
                let enclosing = src.enclosing_fn(i);
                match args.get(2) {
                    Some(
                        [Token {
                            tok: Tok::Str(s), ..
                        }],
                    ) => codes.add(s, src.line(i)),
                    Some(
                        [Token {
                            tok: Tok::Ident(p), ..
                        }],
                    ) if enclosing.is_some_and(|f| {
                        CODE_CTORS.contains(&f.name.as_str()) && src.has_str_param(f, p)
                    }) => {}
                    _ => codes.unresolved.push(format!(
                        "{}: `Self::new` in {} passes a code that is neither a literal nor a \
                         parameter of a constructor listed in CODE_CTORS",
                        src.line(i),
                        enclosing.map_or("?", |f| f.name.as_str())
                    )),
                }
            }

            // Pattern 3: `ApiError::<ctor>(code, ...)` (and `Self::<ctor>(` in src/error.rs).
            let is_type = is_ident(&t[i], "ApiError") || (in_error_rs && is_ident(&t[i], "Self"));
            if !(is_type && is_punct(&t[i + 1], ':') && is_punct(&t[i + 2], ':')) {
                continue;
            }
            let Tok::Ident(ctor) = &t[i + 3].tok else {
                continue;
            };
            if !CODE_CTORS.contains(&ctor.as_str()) || !is_punct(&t[i + 4], '(') {
                continue;
            }
            let args = src.args(i + 4);
            let Some(first) = args.first() else {
                codes.unresolved.push(format!(
                    "{}: ApiError::{ctor} without arguments",
                    src.line(i)
                ));
                continue;
            };
            match first {
                [Token {
                    tok: Tok::Str(s), ..
                }] => codes.add(s, src.line(i)),
                [.., a, b, c, d]
                    if is_punct(a, '.')
                        && is_ident(b, "code")
                        && is_punct(c, '(')
                        && is_punct(d, ')') => {}
                [Token {
                    tok: Tok::Ident(name),
                    ..
                }] => {
                    if let Some((value, at)) = consts.get(name) {
                        codes.add(value, at.clone());
                        continue;
                    }
                    let Some(f) = src.enclosing_fn(i) else {
                        codes.unresolved.push(format!(
                            "{}: ApiError::{ctor}({name}, ..) outside a function",
                            src.line(i)
                        ));
                        continue;
                    };
                    // `let <name> = match ... { arms }` in the same function, before the call.
                    let local_match = (f.body.0..i).rev().find(|&k| {
                        is_ident(&t[k], "let")
                            && is_ident(&t[k + 1], name)
                            && is_punct(&t[k + 2], '=')
                            && is_ident(&t[k + 3], "match")
                    });
                    if let Some(k) = local_match {
                        let Some(open) = (k + 4..i).find(|&o| is_punct(&t[o], '{')) else {
                            continue;
                        };
                        let close = closing(t, open);
                        arm_literals(
                            src,
                            open + 1,
                            close,
                            &format!("`let {name} = match` in fn {}", f.name),
                            &mut codes,
                        );
                    } else if src.has_str_param(f, name) {
                        if !(in_error_rs && CODE_CTORS.contains(&f.name.as_str())) {
                            forwarders.insert(f.name.clone());
                        }
                    } else {
                        codes.unresolved.push(format!(
                            "{}: ApiError::{ctor}({name}, ..): `{name}` is not a const, a local \
                             `let {name} = match`, nor a `&str` parameter of fn {}",
                            src.line(i),
                            f.name
                        ));
                    }
                }
                other => codes.unresolved.push(format!(
                    "{}: ApiError::{ctor} with a code expression the extractor does not \
                     understand ({} tokens)",
                    src.line(i),
                    other.len()
                )),
            }
        }
    }

    // Pattern 3, forwarders: the first argument of every call of such a function.
    for name in &forwarders {
        let mut calls = 0;
        for src in srcs {
            let t = &src.toks;
            for i in 1..t.len().saturating_sub(1) {
                if !(is_ident(&t[i], name) && is_punct(&t[i + 1], '(')) || is_ident(&t[i - 1], "fn")
                {
                    continue;
                }
                calls += 1;
                match src.args(i + 1).first() {
                    Some(
                        [Token {
                            tok: Tok::Str(s), ..
                        }],
                    ) => codes.add(s, src.line(i)),
                    _ => codes.unresolved.push(format!(
                        "{}: {name}(..) passes a code that is not a string literal",
                        src.line(i)
                    )),
                }
            }
        }
        if calls == 0 {
            codes
                .unresolved
                .push(format!("fn {name} forwards a code but is never called"));
        }
    }
    codes
}

// -------------------------------------------------------------------------------------------
// The documentation

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every text between single backticks.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .collect()
}

/// The backticked words of each reason-code column of each Markdown table: a column whose
/// header starts with `Code` or mentions `reason_code`. Returns (line number, word).
fn documented_in_code_columns(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut columns: Vec<usize> = Vec::new();
    let mut in_table = false;
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            columns.clear();
            continue;
        }
        let cells: Vec<&str> = split_row(line);
        if !in_table {
            in_table = true;
            columns = cells
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    let c = c.trim();
                    c.starts_with("Code") || c.contains("reason_code")
                })
                .map(|(i, _)| i)
                .collect();
            continue;
        }
        if cells
            .iter()
            .all(|c| c.trim().chars().all(|ch| "-: ".contains(ch)))
        {
            continue; // the separator row
        }
        for &col in &columns {
            if let Some(cell) = cells.get(col) {
                for word in backticked(cell) {
                    out.push((n + 1, word));
                }
            }
        }
    }
    out
}

/// The cells of a table row (`|` inside backticks does not split).
fn split_row(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut start = 0;
    let mut in_code = false;
    for (i, ch) in inner.char_indices() {
        match ch {
            '`' => in_code = !in_code,
            '|' if !in_code => {
                cells.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cells.push(&inner[start..]);
    cells
}

// -------------------------------------------------------------------------------------------
// The tests

#[test]
fn the_extraction_is_complete_and_plausible() {
    let codes = extract(&sources());
    assert!(
        codes.unresolved.is_empty(),
        "the reason-code extractor cannot follow these; give the code as a literal, or \
         extend tests/reason_codes.rs:\n{}",
        codes.unresolved.join("\n")
    );
    assert!(
        codes.found.len() > PLAUSIBLE_MINIMUM,
        "only {} reason codes found in src/: the extraction is broken: {:?}",
        codes.found.len(),
        codes.found.keys().collect::<Vec<_>>()
    );
    // Spot checks, one per pattern.
    for code in [
        "nonce_mismatch",          // 1: LoginError / IdTokenError
        "refresh_token_reused",    // 1: RefreshError
        "store_unavailable",       // 2: ApiError::unavailable
        "credentials_missing",     // 3: literal
        "too_many_pending_logins", // 3: const
        "token_expired",           // 3: local `let code = match`
        "invalid_request",         // 3: forwarded by oauth_validation
    ] {
        assert!(
            codes.found.contains_key(code),
            "{code} was not extracted; found {:?}",
            codes.found.keys().collect::<Vec<_>>()
        );
    }
    // Nothing from test code.
    assert!(
        !codes.found.contains_key("x"),
        "a test's code was extracted"
    );
}

#[test]
fn every_reason_code_is_documented_in_docs_errors_md() {
    let codes = extract(&sources());
    let documented = backticked(&doc("errors.md"));
    let missing: Vec<String> = codes
        .found
        .iter()
        .filter(|(code, _)| !documented.contains(*code))
        .map(|(code, at)| format!("`{code}` (from {at})"))
        .collect();
    assert!(
        missing.is_empty(),
        "reason codes the server can produce but docs/errors.md does not document \
         (add each, in backticks, with its status, type, meaning and what to check):\n{}",
        missing.join("\n")
    );
}

/// docs/api.md, the API reference, does not repeat the code table: it sends the reader to
/// docs/errors.md, whose completeness the test above enforces. So what is checked here is
/// that the pointer is there (a link to errors.md next to the words "every `reason_code`")
/// and that the codes api.md names on its own, in its "codes worth knowing" paragraph, are
/// codes the server can produce (its table columns are checked by the test below).
#[test]
fn docs_api_md_points_to_the_complete_code_table_and_names_only_real_codes() {
    let codes = extract(&sources());
    let api = doc("api.md");
    let pointer = api
        .split("\n\n")
        .find(|p| p.contains("Every `reason_code`"))
        .expect("docs/api.md: the paragraph that points to the list of every reason code");
    assert!(
        pointer.contains("](errors.md)"),
        "docs/api.md no longer links the complete list: {pointer}"
    );
    let named: Vec<String> = backticked(pointer)
        .into_iter()
        // Not codes: the field names and the header the paragraph also mentions.
        .filter(|w| !["reason_code", "error.type", "Retry-After"].contains(&w.as_str()))
        .collect();
    assert!(named.len() >= 15, "{named:?}");
    let unknown: Vec<&String> = named
        .iter()
        .filter(|w| !codes.found.contains_key(*w))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/api.md names reason codes the server cannot produce: {unknown:?}"
    );
}

#[test]
fn documented_reason_codes_exist() {
    let codes = extract(&sources());
    for name in ["errors.md", "api.md"] {
        let text = doc(name);
        let rows = documented_in_code_columns(&text);
        if name == "errors.md" {
            assert!(
                rows.len() > PLAUSIBLE_MINIMUM,
                "docs/errors.md has only {} codes in `Code` columns",
                rows.len()
            );
        }
        let stale: Vec<String> = rows
            .iter()
            .filter(|(_, word)| !codes.found.contains_key(word))
            .map(|(line, word)| format!("docs/{name}:{line}: `{word}`"))
            .collect();
        assert!(
            stale.is_empty(),
            "documented as reason codes, but the server cannot produce them:\n{}",
            stale.join("\n")
        );
    }
}

#[test]
fn the_tokenizer_tells_code_from_comments_and_literals() {
    let src = r####"
        // fn code(&self) -> &'static str { match self { A => "in_a_comment" } }
        /* ApiError::oauth("in_a_block_comment", "") /* nested */ */
        fn f<'a>(x: &'a str) -> char { let _ = r#"ApiError::oauth("in_a_raw_string")"#; '"' }
        #[cfg(test)]
        mod tests { fn code(&self) -> &'static str { match self { A => "in_a_test" } } }
        fn code(&self) -> &'static str { match self { A => "real", B(e) => e.code() } }
    "####;
    let toks = without_test_items(tokenize(src));
    let strs: Vec<&str> = toks
        .iter()
        .filter_map(|t| match &t.tok {
            Tok::Str(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(strs, [r#"ApiError::oauth("in_a_raw_string")"#, "real"]);
    assert!(toks.iter().any(|t| t.tok == Tok::Lifetime("a".into())));
}

#[test]
fn the_extractor_follows_each_pattern_and_reports_what_it_cannot() {
    let error_rs = r#"
        impl ApiError {
            fn new(status: u16, kind: &'static str, code: &'static str, reason: String) -> Self {
                todo!()
            }
            pub fn fixed() -> Self { Self::new(500, "exception", "fixed_code", String::new()) }
            pub fn oauth(error: &'static str, d: &str) -> Self { Self::new(400, error, error, d.into()) }
            pub fn rogue(c: &'static str) -> Self { Self::new(400, "x", c, String::new()) }
        }
        #[cfg(test)]
        mod tests { fn t() { ApiError::oauth("from_a_test", ""); } }
    "#;
    let handlers = r#"
        const LIMIT_CODE: &str = "from_a_const";
        impl E {
            pub fn code(&self) -> &'static str {
                match self { E::A => "from_fn_code", E::B(f) => f.code() }
            }
        }
        fn a() -> ApiError { ApiError::oauth("from_a_literal", "") }
        fn b() -> ApiError { ApiError::too_many_requests(LIMIT_CODE, "", 1) }
        fn c(e: E) -> ApiError {
            let code = match e { E::A => "from_a_local_match", _ => "other_local" };
            ApiError::invalid_token(code, "")
        }
        fn fwd(error: &'static str) -> ApiError { ApiError::oauth(error, "") }
        fn d() -> ApiError { fwd("from_a_forwarder") }
        fn e(x: E) -> ApiError { ApiError::unauthenticated(x.code(), "") }
        fn f(s: String) -> ApiError { ApiError::conflict(s.as_str(), "") }
    "#;
    let srcs = [
        Source::parse("src/error.rs", error_rs),
        Source::parse("src/http/handlers.rs", handlers),
    ];
    let codes = extract(&srcs);
    let found: Vec<&str> = codes.found.keys().map(String::as_str).collect();
    assert_eq!(
        found,
        [
            "fixed_code",
            "from_a_const",
            "from_a_forwarder",
            "from_a_literal",
            "from_a_local_match",
            "from_fn_code",
            "other_local"
        ]
    );
    assert_eq!(codes.unresolved.len(), 2, "{:?}", codes.unresolved);
    assert!(
        codes.unresolved[0].contains("rogue"),
        "{}",
        codes.unresolved[0]
    );
    assert!(
        codes.unresolved[1].contains("ApiError::conflict"),
        "{}",
        codes.unresolved[1]
    );
}
