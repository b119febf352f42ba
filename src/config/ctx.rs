//! The validation context: the flattened keys, where they sit in the file, and the problems
//! found so far; plus the typed getters every section uses. A getter that finds a bad value
//! records an error (with the key path) and returns `None`, so validation always goes on.

use super::duration::{parse_time, parse_time_or_minus_one};
use super::flatten::{canonical, Leaf};
use super::load::ConfigError;
use crate::secret::Secret;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_norway::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

pub(super) type Location = Option<(usize, usize)>;

pub(super) struct Ctx {
    pub base_dir: PathBuf,
    /// Canonical key → leaf.
    pub leaves: BTreeMap<String, Leaf>,
    /// Raw key path → position, from the line scanner.
    raw_locations: HashMap<Vec<String>, (usize, usize)>,
    /// Canonical key → position of its first occurrence.
    locations: HashMap<String, (usize, usize)>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<(Location, String, String)>,
    /// Secret files read (`${file:path}`), watched for changes by the reloader.
    pub secret_files: Vec<PathBuf>,
}

/// Shorten a value for an error message.
pub(super) fn shown(s: &str) -> String {
    crate::text::Cap {
        max_chars: 120,
        control: None,
        ellipsis: true,
    }
    .apply(s)
}

/// What kind of YAML value this is, for "expected X, found Y".
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Ctx {
    pub fn new(base_dir: PathBuf, raw_locations: HashMap<Vec<String>, (usize, usize)>) -> Self {
        let mut locations = HashMap::new();
        for (raw, loc) in &raw_locations {
            let c = canonical(raw).join(".");
            let e = locations.entry(c).or_insert(*loc);
            if *loc < *e {
                *e = *loc;
            }
        }
        Ctx {
            base_dir,
            leaves: BTreeMap::new(),
            raw_locations,
            locations,
            errors: Vec::new(),
            warnings: Vec::new(),
            secret_files: Vec::new(),
        }
    }

    /// Position of a raw key path (or its nearest located ancestor).
    pub fn raw_location(&self, raw: &[String]) -> Location {
        (1..=raw.len())
            .rev()
            .find_map(|n| self.raw_locations.get(&raw[..n]).copied())
    }

    /// Position of a canonical key (or its nearest located ancestor).
    pub fn location(&self, path: &str) -> Location {
        let mut p = path;
        loop {
            if let Some(l) = self.locations.get(p) {
                return Some(*l);
            }
            if let Some(leaf) = self.leaves.get(p) {
                if let Some(l) = self.raw_location(&leaf.raw) {
                    return Some(l);
                }
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        let location = self.location(path);
        self.errors.push(ConfigError {
            path: path.to_string(),
            message: message.into(),
            location,
        });
    }

    pub fn error_at(&mut self, path: &str, message: impl Into<String>, location: Location) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            message: message.into(),
            location,
        });
    }

    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        let loc = self.location(path);
        self.warnings.push((loc, path.to_string(), message.into()));
    }

    fn has_error(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }

    /// Whether an error was recorded for `prefix` or a key under it.
    pub fn has_error_under(&self, prefix: &str) -> bool {
        let dotted = format!("{prefix}.");
        self.errors
            .iter()
            .any(|e| e.path == prefix || e.path.starts_with(&dotted))
    }

    /// The value at `path`; `None` when absent or null.
    pub fn value(&self, path: &str) -> Option<&Value> {
        self.leaves
            .get(path)
            .map(|l| &l.value)
            .filter(|v| !matches!(v, Value::Null))
    }

    /// Whether any key starts with `prefix.` (or is `prefix`).
    pub fn any_under(&self, prefix: &str) -> bool {
        let dotted = format!("{prefix}.");
        self.leaves
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .any(|(k, l)| (*k == prefix || k.starts_with(&dotted)) && l.value != Value::Null)
    }

    /// Record `message` for a missing key unless an error about this key exists already.
    pub fn missing(&mut self, path: &str, message: impl Into<String>) {
        if !self.has_error(path) {
            self.error(path, message);
        }
    }

    /// "The configuration setting [k] is required" (Elasticsearch's wording), unless an
    /// error about this key was already recorded.
    pub fn required(&mut self, path: &str) {
        if !self.has_error(path) {
            self.error(
                path,
                format!("The configuration setting [{path}] is required"),
            );
        }
    }

    /// A scalar as a string (numbers and booleans are taken as written, as Elasticsearch
    /// settings are strings). Empty strings count as absent.
    pub fn string(&mut self, path: &str) -> Option<String> {
        let v = self.value(path)?.clone();
        let s = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                self.error(path, format!("expected a string, found {}", kind(&other)));
                return None;
            }
        };
        if s.trim().is_empty() {
            None
        } else {
            Some(s)
        }
    }

    pub fn req_string(&mut self, path: &str) -> Option<String> {
        let s = self.string(path);
        if s.is_none() {
            self.required(path);
        }
        s
    }

    pub fn bool(&mut self, path: &str, default: bool) -> Option<bool> {
        let Some(v) = self.value(path).cloned() else {
            return Some(default);
        };
        match v {
            Value::Bool(b) => Some(b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                let shown_v = scalar_text(&other);
                self.error(
                    path,
                    format!(
                        "Failed to parse value [{}] as only [true] or [false] are allowed.",
                        shown(&shown_v)
                    ),
                );
                None
            }
        }
    }

    pub fn int(&mut self, path: &str) -> Option<i64> {
        let v = self.value(path)?.clone();
        let parsed = match &v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                path,
                format!(
                    "Failed to parse value [{}] for setting [{path}]: expected an integer",
                    shown(&scalar_text(&v))
                ),
            );
        }
        parsed
    }

    /// An integer in `min..=max`, default when absent.
    pub fn int_in(&mut self, path: &str, default: i64, min: i64, max: i64) -> Option<i64> {
        if self.value(path).is_none() {
            return Some(default);
        }
        let n = self.int(path)?;
        if n < min || n > max {
            self.error(
                path,
                format!("Failed to parse value [{n}] for setting [{path}]: must be between {min} and {max}"),
            );
            return None;
        }
        Some(n)
    }

    /// A list: a YAML list of scalars, or a comma-separated string. Absent → `None`.
    pub fn list(&mut self, path: &str) -> Option<Vec<String>> {
        let v = self.value(path)?.clone();
        match v {
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.trim().to_string()),
                        Value::Number(n) => out.push(n.to_string()),
                        Value::Bool(b) => out.push(b.to_string()),
                        other => {
                            self.error(
                                path,
                                format!(
                                    "item {i} of the list: expected a string, found {}",
                                    kind(other)
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(out.into_iter().filter(|s| !s.is_empty()).collect())
            }
            Value::String(s) => Some(
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
            ),
            Value::Number(n) => Some(vec![n.to_string()]),
            other => {
                self.error(
                    path,
                    format!(
                        "expected a list or a comma-separated string, found {}",
                        kind(&other)
                    ),
                );
                None
            }
        }
    }

    /// A time value (`90s`), default when absent; `-1` refused.
    pub fn time(&mut self, path: &str, default: Duration) -> Option<Duration> {
        let Some(v) = self.value(path).cloned() else {
            return Some(default);
        };
        let text = scalar_text(&v);
        match parse_time(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(path, time_message(path, &text, &e));
                None
            }
        }
    }

    /// A time value where `-1` means "none"; `default` when absent.
    pub fn time_or_minus_one(
        &mut self,
        path: &str,
        default: Option<Duration>,
    ) -> Option<Option<Duration>> {
        let Some(v) = self.value(path).cloned() else {
            return Some(default);
        };
        let text = scalar_text(&v);
        match parse_time_or_minus_one(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(path, time_message(path, &text, &e));
                None
            }
        }
    }

    pub fn parse_url(&mut self, path: &str, s: &str) -> Option<Url> {
        match Url::parse(s.trim()) {
            Ok(u) if u.cannot_be_a_base() && !matches!(u.scheme(), "urn" | "mailto") => {
                self.error(path, format!("not an absolute URL (\"{}\")", shown(s)));
                None
            }
            Ok(u) => Some(u),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                self.error(path, format!("not an absolute URL (\"{}\")", shown(s)));
                None
            }
            Err(e) => {
                self.error(
                    path,
                    format!(
                        "Invalid value [{}] for [{path}]. Not a valid URI ({e})",
                        shown(s)
                    ),
                );
                None
            }
        }
    }

    /// A URL the server calls: `https`, or plain `http` to a loopback host (with a warning).
    pub fn secure_url(&mut self, path: &str, s: &str) -> Option<Url> {
        let u = self.parse_url(path, s)?;
        check_https(self, path, u)
    }

    /// Resolve a path relative to the config directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p.trim());
        if p.is_absolute() {
            normalize(p)
        } else {
            normalize(&self.base_dir.join(p))
        }
    }

    /// A file that must exist (relative → config dir).
    pub fn existing_file(&mut self, path: &str, file: &str) -> Option<PathBuf> {
        let resolved = self.resolve(file);
        match std::fs::metadata(&resolved) {
            Ok(m) if m.is_file() => Some(resolved),
            Ok(_) => {
                self.error(path, format!("{} is not a file", resolved.display()));
                None
            }
            Err(e) => {
                self.error(
                    path,
                    format!("cannot read file {}: {e}", resolved.display()),
                );
                None
            }
        }
    }

    /// A PEM file holding at least one certificate.
    pub fn pem_certificates(&mut self, path: &str, file: &str) -> Option<PathBuf> {
        let resolved = self.existing_file(path, file)?;
        let mut count = 0usize;
        let iter = match CertificateDer::pem_file_iter(&resolved) {
            Ok(it) => it,
            Err(e) => {
                self.error(path, format!("cannot read {}: {e}", resolved.display()));
                return None;
            }
        };
        for cert in iter {
            if let Err(e) = cert {
                self.error(
                    path,
                    format!("{} is not a valid PEM file: {e}", resolved.display()),
                );
                return None;
            }
            count += 1;
        }
        if count == 0 {
            self.error(
                path,
                format!(
                    "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    resolved.display()
                ),
            );
            return None;
        }
        Some(resolved)
    }

    /// A PEM file holding a private key (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub fn pem_private_key(&mut self, path: &str, file: &str) -> Option<PathBuf> {
        let resolved = self.existing_file(path, file)?;
        match PrivateKeyDer::from_pem_file(&resolved) {
            Ok(_) => Some(resolved),
            Err(e) => {
                let encrypted = std::fs::read_to_string(&resolved)
                    .map(|t| t.contains("ENCRYPTED"))
                    .unwrap_or(false);
                let hint = if encrypted {
                    " (encrypted keys are not supported: decrypt it with `openssl pkey -in KEY -out KEY.plain` and protect the file by permissions)"
                } else {
                    ""
                };
                self.error(
                    path,
                    format!(
                        "{} holds no usable PEM private key: {e}{hint}",
                        resolved.display()
                    ),
                );
                None
            }
        }
    }

    /// A secret: `${env:NAME}`, `${file:path}`, or a literal (accepted with a warning).
    /// Never puts the value in a message.
    pub fn secret(&mut self, path: &str) -> Option<Secret<String>> {
        let v = self.value(path)?.clone();
        let s = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                self.error(
                    path,
                    format!(
                        "expected a string or a secret reference (${{env:NAME}}, ${{file:path}}), found {}",
                        kind(&other)
                    ),
                );
                return None;
            }
        };
        let t = s.trim();
        if let Some(inner) = t.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            if let Some(name) = inner.strip_prefix("env:") {
                let name = name.trim();
                if name.is_empty() || name.contains('=') || name.contains('\0') {
                    self.error(path, "${env:NAME} needs a variable name");
                    return None;
                }
                return match std::env::var(name) {
                    Ok(val) if !val.is_empty() => Some(Secret::new(val)),
                    Ok(_) => {
                        self.error(path, format!("environment variable {name} is empty"));
                        None
                    }
                    Err(std::env::VarError::NotPresent) => {
                        self.error(path, format!("environment variable {name} is not set"));
                        None
                    }
                    Err(std::env::VarError::NotUnicode(_)) => {
                        self.error(
                            path,
                            format!("environment variable {name} is not valid UTF-8"),
                        );
                        None
                    }
                };
            }
            if let Some(file) = inner.strip_prefix("file:") {
                if file.trim().is_empty() {
                    self.error(path, "${file:path} needs a file path");
                    return None;
                }
                let resolved = self.resolve(file);
                self.secret_files.push(resolved.clone());
                return match std::fs::read(&resolved) {
                    Ok(bytes) => {
                        let Ok(mut text) = String::from_utf8(bytes) else {
                            self.error(
                                path,
                                format!("secret file {} is not valid UTF-8", resolved.display()),
                            );
                            return None;
                        };
                        if text.ends_with('\n') {
                            text.pop();
                            if text.ends_with('\r') {
                                text.pop();
                            }
                        }
                        if text.is_empty() {
                            self.error(
                                path,
                                format!("secret file {} is empty", resolved.display()),
                            );
                            return None;
                        }
                        Some(Secret::new(text))
                    }
                    Err(e) => {
                        self.error(
                            path,
                            format!("cannot read secret file {}: {e}", resolved.display()),
                        );
                        None
                    }
                };
            }
            self.error(
                path,
                "unrecognised secret reference; use ${env:NAME} or ${file:path}",
            );
            return None;
        }
        if t.starts_with("${") {
            self.error(
                path,
                "unterminated secret reference; use ${env:NAME} or ${file:path}",
            );
            return None;
        }
        if t.is_empty() {
            self.required(path);
            return None;
        }
        self.warn(
            path,
            "secret given in clear in the YAML file; prefer ${env:NAME} or ${file:path}",
        );
        Some(Secret::new(s))
    }
}

/// Remove `.` and `..` components lexically (`/etc/app/config/../data` → `/etc/app/data`),
/// so paths in logs and errors read as the operator expects.
pub(super) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A scalar as text for messages and parsing.
pub(super) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => format!("<{}>", kind(other)),
    }
}

fn time_message(path: &str, text: &str, e: &super::duration::TimeError) -> String {
    format!(
        "failed to parse setting [{path}] with value [{}] as a time value: {e}",
        shown(text)
    )
}

/// Whether a URL's host is loopback (`127.0.0.0/8`, `[::1]`, `localhost`).
pub(super) fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn check_https(ctx: &mut Ctx, path: &str, u: Url) -> Option<Url> {
    match u.scheme() {
        "https" => Some(u),
        "http" if is_loopback(&u) => {
            ctx.warn(
                path,
                format!(
                    "plain http accepted only because {} is a loopback host (development); use https in production",
                    u.host_str().unwrap_or_default()
                ),
            );
            Some(u)
        }
        "http" => {
            ctx.error(
                path,
                "The [http] protocol is not supported as it is insecure. Use [https] instead (plain http is allowed only for loopback hosts 127.0.0.1, [::1], localhost)",
            );
            None
        }
        other => {
            ctx.error(
                path,
                format!("unsupported URL scheme [{other}]; use an https URL"),
            );
            None
        }
    }
}
