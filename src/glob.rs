//! `*` globs (any run of characters; no other metacharacter), as Elasticsearch's
//! `filter_path` and profile `data` keys use them. Matched by simulating the pattern's
//! positions over the text: linear in the text for a given pattern, whatever the stars.

/// The positions of `pattern` reachable after reading `text` (`*`: any run of bytes).
fn states(pattern: &[u8], text: &[u8]) -> Vec<bool> {
    let n = pattern.len();
    let close = |states: &mut Vec<bool>| {
        for i in 0..n {
            if states[i] && pattern[i] == b'*' {
                states[i + 1] = true;
            }
        }
    };
    let mut states = vec![false; n + 1];
    states[0] = true;
    close(&mut states);
    for &c in text {
        let mut next = vec![false; n + 1];
        for i in 0..n {
            if !states[i] {
                continue;
            }
            if pattern[i] == b'*' {
                next[i] = true;
            } else if pattern[i] == c {
                next[i + 1] = true;
            }
        }
        close(&mut next);
        states = next;
        if !states.contains(&true) {
            break;
        }
    }
    states
}

/// Whether `pattern` matches all of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    states(pattern.as_bytes(), text.as_bytes())[pattern.len()]
}

/// Whether `pattern` could match some text starting with `prefix`.
pub fn extends(pattern: &str, prefix: &str) -> bool {
    states(pattern.as_bytes(), prefix.as_bytes())[..pattern.len()].contains(&true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("a*c", "abbbc"));
        assert!(matches("a*c", "ac"));
        assert!(matches("**", ""));
        assert!(!matches("a*c", "acb"));
        assert!(extends("a.b", "a."));
        assert!(!extends("a.b", "a.b."));
        assert!(extends("a*", "a.b.c."));
        assert!(!extends("x*", "a."));
        assert!(!extends("", "a."));
    }

    #[test]
    fn glob_matches_like_elasticsearch() {
        assert!(matches("*", ""));
        assert!(matches("a*c", "abbbc"));
        assert!(matches("*_realm", "lookup_realm"));
        assert!(!matches("a*c", "abd"));
        assert!(matches("**", "x"));
        // Many stars and a near miss: answered quickly, and correctly.
        let evil = format!("{}c", "a*".repeat(50));
        let text = format!("{}b", "a".repeat(60));
        assert!(!matches(&evil, &text));
        assert!(matches(&evil, &format!("{text}c")));
    }
}
