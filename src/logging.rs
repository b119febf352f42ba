//! The process's log output: `log.format: human` (one line per event) or `json` (one JSON
//! object per line).
//!
//! Many logged values come from requests or from the OpenID Provider (a principal from a
//! claim the user may choose, a role-mapping name from a URL, a header). In the human format
//! every field value and every message is written with control characters escaped (`\n`,
//! `\r`, `\u{1b}`, ...), so no value can end its line, forge another event or send terminal
//! escape sequences; the JSON format escapes them by construction. This is done here, once,
//! for every event, rather than at each call site.

use crate::config::LogFormat;
use std::fmt::Write as _;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;

/// `text` with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`, ...).
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Write one field of a human-format event: `name=value` (the message bare), control
/// characters escaped.
fn write_field(
    w: &mut Writer<'_>,
    field: &tracing::field::Field,
    value: &dyn std::fmt::Debug,
) -> std::fmt::Result {
    let text = format!("{value:?}");
    let text = escape_controls(&text);
    if field.name() == "message" {
        w.write_str(&text)
    } else {
        write!(w, "{}={text}", field.name())
    }
}

/// The filter of the running subscriber, replaceable on reload (`log.level`).
type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

static FILTER: std::sync::OnceLock<FilterHandle> = std::sync::OnceLock::new();

fn filter_for(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// A subscriber for `format`, filtered by `level` (or `RUST_LOG`), writing to `writer`;
/// `ansi`: colour the human format's own parts (timestamps, levels), for a terminal. Returns
/// the handle that replaces the filter.
fn builder<W>(
    format: LogFormat,
    level: &str,
    writer: W,
    ansi: bool,
) -> (Box<dyn tracing::Subscriber + Send + Sync>, FilterHandle)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter_for(level));
    let registry = tracing_subscriber::registry().with(filter);
    let base = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = match format {
        LogFormat::Json => Box::new(registry.with(base.json())),
        LogFormat::Human => Box::new(registry.with(
            base.fmt_fields(tracing_subscriber::fmt::format::debug_fn(write_field).delimited(" ")),
        )),
    };
    (subscriber, handle)
}

/// Install the process's subscriber (once; later calls do nothing).
pub fn init(format: LogFormat, level: &str) {
    use std::io::IsTerminal;
    let ansi = std::io::stdout().is_terminal();
    let (subscriber, handle) = builder(format, level, std::io::stdout, ansi);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Apply a new `log.level` (after a reload). `RUST_LOG`, when set, keeps winning, as at
/// start. Does nothing before [`init`] (tests, tools).
pub fn set_level(level: &str) {
    if let Some(handle) = FILTER.get() {
        if let Err(e) = handle.reload(filter_for(level)) {
            tracing::warn!(error = %e, "log.level could not be changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Buf {
        type Writer = Buf;
        fn make_writer(&'w self) -> Buf {
            self.clone()
        }
    }

    /// Log one event whose fields and message carry `evil`; return the output.
    fn emit(format: LogFormat, evil: &str) -> String {
        let buf = Buf::default();
        let (sub, _) = builder(format, "info", buf.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                target: "audit",
                principal = %evil,
                mapping = evil,
                debug = ?evil,
                "login of {evil}"
            );
        });
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    const FORGED: &str = "jwong\n2026-12-02T00:00:00Z  INFO audit: event=\"login\" principal=admin";

    #[test]
    fn a_value_cannot_forge_a_human_log_line() {
        for evil in [
            FORGED,
            "jwong\r2026-12-02T00:00:00Z  INFO forged",
            "jwong\u{1b}[2K\u{1b}[1Gforged",
            "tab\there\u{7f}\u{85}\u{2028}",
        ] {
            let out = emit(LogFormat::Human, evil);
            assert_eq!(out.matches('\n').count(), 1, "{out:?}");
            assert!(out.ends_with('\n'));
            assert!(!out.contains('\r') && !out.contains('\u{1b}'), "{out:?}");
            assert!(
                !out.trim_end()
                    .chars()
                    .any(|c| c.is_control() && c != '\u{2028}'),
                "{out:?}"
            );
        }
        let out = emit(LogFormat::Human, FORGED);
        assert!(out.contains("principal=jwong\\n2026"), "{out}");
        assert!(out.contains("login of jwong\\n2026"), "{out}");
    }

    #[test]
    fn json_lines_stay_one_object_each() {
        let out = emit(LogFormat::Json, FORGED);
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["fields"]["principal"], FORGED);
    }

    #[test]
    fn the_level_can_change_while_running() {
        let buf = Buf::default();
        let (sub, handle) = builder(LogFormat::Human, "warn", buf.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::info!("hidden at warn");
            handle.reload(filter_for("info")).unwrap();
            tracing::info!("shown at info");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("hidden at warn"), "{out}");
        assert!(out.contains("shown at info"), "{out}");
    }

    #[test]
    fn escaping_leaves_plain_text_alone() {
        assert!(matches!(
            escape_controls("plain ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(escape_controls("a\nb\u{1b}"), "a\\nb\\u{1b}");
    }
}
