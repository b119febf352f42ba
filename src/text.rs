//! Text shown in messages and logs that may come from outside (configuration values, headers,
//! claim names, provider answers): one capping helper and one error-chain walker.

/// How a value is shortened for a message: at most `max_chars` characters, control characters
/// replaced by `control` (kept when `None`), and `…` appended when something was cut.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub max_chars: usize,
    pub control: Option<char>,
    pub ellipsis: bool,
}

impl Cap {
    /// `s` shortened by this rule.
    pub fn apply(&self, s: &str) -> String {
        let mut chars = s.chars();
        let mut out: String = chars
            .by_ref()
            .take(self.max_chars)
            .map(|c| match self.control {
                Some(r) if c.is_control() => r,
                _ => c,
            })
            .collect();
        if self.ellipsis && chars.next().is_some() {
            out.push('…');
        }
        out
    }
}

/// A header value as it may appear in a message: at most 200 characters, control
/// characters replaced.
pub fn shown_header(v: &str) -> String {
    Cap {
        max_chars: 200,
        control: Some('\u{fffd}'),
        ellipsis: false,
    }
    .apply(v)
}

/// `e` and each of its sources, outermost first.
pub fn error_chain(e: &dyn std::error::Error) -> impl Iterator<Item = &dyn std::error::Error> {
    std::iter::successors(Some(e), |e| e.source())
}

/// `e`'s message followed by each source's, joined with `": "`.
pub fn error_chain_text(e: &dyn std::error::Error) -> String {
    error_chain(e)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_by_characters_replaces_controls_and_marks_the_cut() {
        let c = Cap {
            max_chars: 3,
            control: Some('?'),
            ellipsis: true,
        };
        assert_eq!(c.apply("ab"), "ab");
        assert_eq!(c.apply("abc"), "abc");
        assert_eq!(c.apply("a\nbcd"), "a?b…");
        assert_eq!(c.apply("ééééé"), "ééé…");
        let plain = Cap {
            max_chars: 2,
            control: None,
            ellipsis: false,
        };
        assert_eq!(plain.apply("a\nbc"), "a\n");
    }

    #[test]
    fn the_chain_names_every_source() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "top",
            Some(Box::new(E("middle", Some(Box::new(E("root", None)))))),
        );
        assert_eq!(error_chain_text(&e), "top: middle: root");
        assert_eq!(error_chain(&e).skip(1).count(), 2);
    }
}
