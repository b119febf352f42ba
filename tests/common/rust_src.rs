//! Reading this crate's Rust sources in tests: a small tokenizer (enough to tell code from
//! comments and literals), the removal of `#[cfg(test)]` items, and the list of source files.
//! Used by the source scans of tests/reason_codes.rs (reason codes) and tests/pitfalls.rs
//! (constant-time comparisons).

use std::path::{Path, PathBuf};

/// The tokenizer's one-character punctuation, as `&'static str`.
const ONE_CHAR: &str = "!#$%&()*+,-./:;<=>?@[\\]^`{|}~";

fn punct_str(ch: char) -> &'static str {
    match ONE_CHAR.find(ch) {
        Some(i) => &ONE_CHAR[i..i + 1],
        None => "\u{fffd}",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// A string literal's text, escapes kept as written (byte, C and raw strings too).
    Str(String),
    /// A char or byte literal.
    Char,
    Lifetime(String),
    Num,
    /// One punctuation character; [`glue`] joins adjacent ones into operators.
    Punct(&'static str),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    /// The index of its first character in the source (adjacency, for [`glue`]).
    pub pos: usize,
}

/// The tokens of `src`: comments dropped, literals told from code, one token per
/// punctuation character.
pub fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        let start = i;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            let (s, next, lines) = quoted(&c, i + 1);
            out.push(Token {
                tok: Tok::Str(s),
                line: start_line,
                pos: start,
            });
            line += lines;
            i = next;
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                // An escaped char literal: '\n', '\'', '\u{1b}'.
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push(Token {
                    tok: Tok::Char,
                    line: start_line,
                    pos: start,
                });
            } else if at(i + 2) == '\'' {
                i += 3;
                out.push(Token {
                    tok: Tok::Char,
                    line: start_line,
                    pos: start,
                });
            } else {
                let mut j = i + 1;
                while j < c.len() && (c[j].is_alphanumeric() || c[j] == '_') {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Lifetime(c[i + 1..j].iter().collect()),
                    line: start_line,
                    pos: start,
                });
                i = j;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let mut j = i;
            while j < c.len() && (c[j].is_alphanumeric() || c[j] == '_') {
                j += 1;
            }
            let word: String = c[i..j].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr") && matches!(at(j), '"' | '#');
            let raw = raw && {
                // `r#ident` is a raw identifier, `r#"..."#` a raw string.
                let mut k = j;
                while at(k) == '#' {
                    k += 1;
                }
                at(k) == '"'
            };
            if raw {
                let mut hashes = 0;
                let mut k = j;
                while at(k) == '#' {
                    hashes += 1;
                    k += 1;
                }
                k += 1; // the opening quote
                let body_start = k;
                loop {
                    if k >= c.len() {
                        break;
                    }
                    if c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                        break;
                    }
                    if c[k] == '\n' {
                        line += 1;
                    }
                    k += 1;
                }
                out.push(Token {
                    tok: Tok::Str(c[body_start..k.min(c.len())].iter().collect()),
                    line: start_line,
                    pos: start,
                });
                i = k + 1 + hashes;
            } else if matches!(word.as_str(), "b" | "c") && at(j) == '"' {
                let (s, next, lines) = quoted(&c, j + 1);
                out.push(Token {
                    tok: Tok::Str(s),
                    line: start_line,
                    pos: start,
                });
                line += lines;
                i = next;
            } else if word == "b" && at(j) == '\'' {
                // A byte literal: b'x', b'\n'.
                let mut k = j + 1;
                if at(k) == '\\' {
                    k += 1;
                }
                k += 1;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                out.push(Token {
                    tok: Tok::Char,
                    line: start_line,
                    pos: start,
                });
                i = k + 1;
            } else {
                if word == "r" && at(j) == '#' {
                    // A raw identifier: skip the `#`.
                    i = j + 1;
                    continue;
                }
                out.push(Token {
                    tok: Tok::Ident(word),
                    line: start_line,
                    pos: start,
                });
                i = j;
            }
        } else if ch.is_ascii_digit() {
            let mut j = i;
            while j < c.len()
                && (c[j].is_alphanumeric()
                    || c[j] == '_'
                    || (c[j] == '.' && at(j + 1).is_ascii_digit()))
            {
                j += 1;
            }
            out.push(Token {
                tok: Tok::Num,
                line: start_line,
                pos: start,
            });
            i = j;
        } else {
            out.push(Token {
                tok: Tok::Punct(punct_str(ch)),
                line: start_line,
                pos: start,
            });
            i += 1;
        }
    }
    out
}

/// A string literal's text (escapes kept as written), the index after its closing quote, and
/// how many newlines it spans.
fn quoted(c: &[char], mut i: usize) -> (String, usize, usize) {
    let start = i;
    let mut lines = 0;
    while i < c.len() && c[i] != '"' {
        if c[i] == '\\' {
            i += 1;
        }
        if c.get(i) == Some(&'\n') {
            lines += 1;
        }
        i += 1;
    }
    (c[start..i.min(c.len())].iter().collect(), i + 1, lines)
}

/// Whether `t` is the single punctuation character `p`.
pub fn is_punct(t: &Token, p: char) -> bool {
    matches!(t.tok, Tok::Punct(s) if s.len() == 1 && s.as_bytes()[0] == p as u8)
}

pub fn is_ident(t: &Token, name: &str) -> bool {
    matches!(&t.tok, Tok::Ident(w) if w == name)
}

/// The index of the bracket closing the one at `open` (`(`/`)`, `[`/`]`, `{`/`}`).
pub fn closing(toks: &[Token], open: usize) -> usize {
    let (o, c) = match toks[open].tok {
        Tok::Punct("(") => ('(', ')'),
        Tok::Punct("[") => ('[', ']'),
        Tok::Punct("{") => ('{', '}'),
        ref t => panic!("not an opening bracket: {t:?}"),
    };
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if is_punct(t, o) {
            depth += 1;
        } else if is_punct(t, c) {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    toks.len() - 1
}

/// The tokens without the items under `#[cfg(test)]`.
pub fn without_test_items(toks: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        let cfg_test = toks.len() > i + 6
            && is_punct(&toks[i], '#')
            && is_punct(&toks[i + 1], '[')
            && is_ident(&toks[i + 2], "cfg")
            && is_punct(&toks[i + 3], '(')
            && is_ident(&toks[i + 4], "test")
            && is_punct(&toks[i + 5], ')')
            && is_punct(&toks[i + 6], ']');
        if !cfg_test {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        // Skip the item: up to a `;` or through the first `{...}` block, whichever comes first
        // outside brackets.
        let mut j = i + 7;
        loop {
            if j >= toks.len() {
                break;
            }
            match toks[j].tok {
                Tok::Punct(";") => {
                    j += 1;
                    break;
                }
                Tok::Punct("{") => {
                    j = closing(&toks, j) + 1;
                    break;
                }
                Tok::Punct("(" | "[") => j = closing(&toks, j) + 1,
                _ => j += 1,
            }
        }
        i = j;
    }
    out
}

/// The operators [`glue`] forms, longest first.
pub const OPERATORS: [&str; 46] = [
    "..=", "...", "<<=", ">>=", "==", "!=", "&&", "||", "::", "=>", "->", "<=", ">=", "..", "+=",
    "-=", "*=", "/=", "%=", "^=", "&=", "|=", "<<", ">>", "=", "!", "&", "|", "<", ">", "(", ")",
    "[", "]", "{", "}", ",", ";", ".", ":", "?", "#", "+", "-", "*", "/",
];

/// The tokens with adjacent punctuation joined into the [`OPERATORS`] (the first of the list
/// that matches, so the longest); a punctuation character that starts none of them (`@`, `$`,
/// `~`, a lone `%` or `^`, ...) is dropped.
pub fn glue(toks: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if !matches!(toks[i].tok, Tok::Punct(_)) {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        let matched = OPERATORS.iter().find(|op| {
            op.chars().enumerate().all(|(k, oc)| {
                toks.get(i + k)
                    .is_some_and(|t| is_punct(t, oc) && t.pos == toks[i].pos + k)
            })
        });
        match matched {
            Some(op) => {
                out.push(Token {
                    tok: Tok::Punct(op),
                    line: toks[i].line,
                    pos: toks[i].pos,
                });
                i += op.len();
            }
            None => i += 1,
        }
    }
    out
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// Files that are `#[cfg(test)] mod name;` of another of `files` (path, text): test code.
pub fn test_module_files(files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (path, src) in files {
        let toks = tokenize(src);
        for w in toks.windows(10) {
            let names: Vec<String> = w
                .iter()
                .map(|t| match &t.tok {
                    Tok::Ident(s) => s.clone(),
                    Tok::Punct(p) => p.to_string(),
                    _ => String::new(),
                })
                .collect();
            if names[..7] == ["#", "[", "cfg", "(", "test", ")", "]"]
                && names[7] == "mod"
                && names[9] == ";"
            {
                let dir = path.parent().unwrap();
                let stem = path.file_stem().unwrap().to_string_lossy();
                let base = if stem == "mod" || stem == "lib" {
                    dir.to_path_buf()
                } else {
                    dir.join(&*stem)
                };
                out.push(base.join(format!("{}.rs", names[8])));
            }
        }
    }
    out
}
