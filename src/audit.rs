//! The audit trail: one JSON object per line on a sink of its own (`audit.path`: a file,
//! rotated by size, or `stdout`), off unless configured.
//!
//! [`Audit`] is the handle the state holds (no global: every `AppState` builds its own from
//! `audit.*`). [`Audit::emit`] never touches the disk: it serialises the event and hands
//! the line to a bounded queue read by one writer thread. When the queue is full the event is
//! dropped and counted; the next line written carries `"dropped": <n>` (events lost since the
//! line before it), and [`Audit::dropped`] is the running total. A flood of events therefore
//! costs the request path one serialisation and a `try_send`, never a wait on I/O.
//!
//! Every line has `@timestamp` (the state's injected clock), `type: "audit"`, `event`, the
//! request's `correlation_id` and `client_address` (from the request context set by the HTTP
//! middleware, [`in_request`]), and `caller_user` / `caller_realm` when the caller is known.
//! Values that come from users or the OpenID Provider are [`Capped`] in length; JSON escapes
//! control characters, so no value can forge a line. No event type has a field for a token,
//! an authorization code, a nonce, a state, a password or a secret: there is nowhere to put
//! one (see `docs/security.md`).

use crate::clock::SharedClock;
use crate::config::{AuditSettings, AuditSink};
use crate::model::UserRecord;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Lines waiting for the writer at most; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 8192;

/// The longest a value from a user or the OpenID Provider is written, in characters (`…`
/// marks a cut).
pub const MAX_VALUE_CHARS: usize = 256;

tokio::task_local! {
    /// The client address of the request being served (set by the HTTP middleware).
    static CLIENT_ADDRESS: Option<IpAddr>;
}

/// Run `fut` as the handling of a request from `client`: audit events emitted within carry
/// its address.
pub async fn in_request<F: std::future::Future>(client: Option<IpAddr>, fut: F) -> F::Output {
    CLIENT_ADDRESS.scope(client, fut).await
}

fn client_address() -> Option<IpAddr> {
    CLIENT_ADDRESS.try_with(|a| *a).ok().flatten()
}

/// A value from outside (a user name, a realm or mapping name from a request, a claim),
/// shortened to [`MAX_VALUE_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Capped(String);

impl Capped {
    pub fn new(s: &str) -> Self {
        Capped(
            crate::text::Cap {
                max_chars: MAX_VALUE_CHARS,
                control: None,
                ellipsis: true,
            }
            .apply(s),
        )
    }
}

impl From<&str> for Capped {
    fn from(s: &str) -> Self {
        Capped::new(s)
    }
}

impl From<&String> for Capped {
    fn from(s: &String) -> Self {
        Capped::new(s)
    }
}

/// How an authentication was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `POST /_security/oidc/authenticate`: a user's OpenID Connect login.
    Oidc,
    /// The `password` grant of `POST /_security/oauth2/token`.
    PasswordGrant,
    /// The `client_credentials` grant (the caller's own token).
    ClientCredentials,
    /// The `refresh_token` grant (a refused refresh token).
    RefreshToken,
    /// The credentials of a request (`Authorization`: Basic, bearer or service token).
    Request,
}

/// What a `config_reloaded` event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

/// One audited event, with the fields of its own (the common ones are added by
/// [`Audit::emit`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A user authenticated and got tokens: an OIDC login, a password grant, a
    /// client_credentials grant.
    AuthenticationSuccess {
        method: Method,
        /// The user's realm (an OIDC realm, `default_file`, ...).
        realm: Capped,
        principal: Capped,
        /// The roles the user got (OIDC: from the role mappings).
        roles: Vec<Capped>,
    },
    /// An authentication was refused (401); `reason_code` is the API's.
    AuthenticationFailed {
        method: Method,
        reason_code: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        realm: Option<Capped>,
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<Capped>,
    },
    /// A refresh token was exchanged for a new pair.
    TokenRefreshed { realm: Capped, principal: Capped },
    /// A refresh token was used again after its 30 s window and refused.
    RefreshReuseDetected {
        /// Whether every token of its login was invalidated (`token.refresh_reuse`).
        family_revoked: bool,
    },
    /// Tokens were invalidated: `target` is `access_token`, `refresh_token`, `owner` (by
    /// realm and/or user name) or `oidc_logout`.
    TokensInvalidated {
        target: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        realm: Option<Capped>,
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<Capped>,
        invalidated: u64,
        previously_invalidated: u64,
    },
    /// A role mapping was written (`put`, `created` says whether it is new) or deleted
    /// (`delete`, `found` says whether it existed) through the API.
    RoleMappingChanged {
        operation: &'static str,
        name: Capped,
        #[serde(skip_serializing_if = "Option::is_none")]
        created: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        found: Option<bool>,
    },
    /// A configuration reload was applied (`generation` is the new one) or refused
    /// (`error_count` problems; the messages are in the log and the status API).
    ConfigReloaded {
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        generation: Option<u64>,
        error_count: usize,
        /// Restart-only keys that changed and kept their running value.
        restart_required: Vec<String>,
    },
    /// An authenticated caller lacks the privilege for `action` (403, reason code
    /// `action_unauthorized`); `granted_by` are the privileges that would allow it.
    AccessDenied {
        action: &'static str,
        granted_by: Vec<&'static str>,
    },
    /// A request refused by a limit (429): `limit` is `requests_per_caller`,
    /// `requests_per_address`, `password_checks` or `pending_logins` (the label of
    /// `oidc_realm_rate_limited_total`).
    RateLimited {
        limit: &'static str,
        retry_after_secs: u64,
    },
    /// A user's grant at a connection was stored (after `_callback`); `realm`/`principal`
    /// name the user (for a shared connection: `_shared`).
    ConnectionGrantCreated {
        connection: Capped,
        realm: Capped,
        principal: Capped,
    },
    /// A grant's access token was refreshed at the service.
    ConnectionGrantRefreshed {
        connection: Capped,
        realm: Capped,
        principal: Capped,
    },
    /// The service refused a refresh (or the grant has no refresh token): the grant was
    /// removed and the user must authorize again (`authorization_required`).
    ConnectionRefreshFailed {
        connection: Capped,
        realm: Capped,
        principal: Capped,
        reason: Capped,
    },
    /// A grant was removed (`_grant`, or a forced connection delete); `at_service` says
    /// whether the service's revocation endpoint confirmed it.
    ConnectionGrantRevoked {
        connection: Capped,
        realm: Capped,
        principal: Capped,
        at_service: bool,
    },
    /// A connection was defined (`put`) or deleted (`delete`, with the grants revoked).
    ConnectionChanged {
        operation: &'static str,
        name: Capped,
        #[serde(skip_serializing_if = "Option::is_none")]
        created: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        revoked_grants: Option<usize>,
    },
}

impl AuditEvent {
    /// The `event` name.
    pub fn name(&self) -> &'static str {
        match self {
            AuditEvent::AuthenticationSuccess { .. } => "authentication_success",
            AuditEvent::AuthenticationFailed { .. } => "authentication_failed",
            AuditEvent::TokenRefreshed { .. } => "token_refreshed",
            AuditEvent::RefreshReuseDetected { .. } => "refresh_reuse_detected",
            AuditEvent::TokensInvalidated { .. } => "tokens_invalidated",
            AuditEvent::RoleMappingChanged { .. } => "role_mapping_changed",
            AuditEvent::ConfigReloaded { .. } => "config_reloaded",
            AuditEvent::AccessDenied { .. } => "access_denied",
            AuditEvent::RateLimited { .. } => "rate_limited",
            AuditEvent::ConnectionGrantCreated { .. } => "connection_grant_created",
            AuditEvent::ConnectionGrantRefreshed { .. } => "connection_grant_refreshed",
            AuditEvent::ConnectionRefreshFailed { .. } => "connection_refresh_failed",
            AuditEvent::ConnectionGrantRevoked { .. } => "connection_grant_revoked",
            AuditEvent::ConnectionChanged { .. } => "connection_changed",
        }
    }
}

/// Who made the request: a user name within its realm.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub user: &'a str,
    pub realm: &'a str,
}

impl<'a> Who<'a> {
    /// The caller `user` (an authenticated caller's user record).
    pub fn of(user: &'a UserRecord) -> Self {
        Who {
            user: &user.username,
            realm: &user.realm.name,
        }
    }
}

/// One line as written.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    event: &'a AuditEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_user: Option<Capped>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_realm: Option<Capped>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_address: Option<String>,
}

/// Why the audit trail could not be opened (at start).
#[derive(Debug, thiserror::Error)]
#[error("audit.path: cannot open {}: {error}", path.display())]
pub struct AuditOpenError {
    pub path: PathBuf,
    pub error: io::Error,
}

enum Msg {
    Line(String),
    /// Answer once every line queued before is written and flushed.
    Flush(SyncSender<()>),
}

#[derive(Debug)]
struct Shared {
    /// Dropped since the last line written (reported in that line's `dropped`).
    pending_drops: AtomicU64,
    /// Dropped in all.
    dropped_total: AtomicU64,
}

#[derive(Debug)]
struct Sender {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    /// The state's clock: every line's `@timestamp`.
    clock: SharedClock,
}

/// The audit trail of one state: cheap to clone (one `Arc`), a no-op when off.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    sender: Option<Arc<Sender>>,
}

impl Audit {
    /// No audit trail (`audit.path` not set).
    pub fn off() -> Self {
        Audit { sender: None }
    }

    /// The audit trail `settings` describe; a file is opened (created `0600`, appended to)
    /// now, so a path that cannot be written stops the start.
    pub fn open(settings: &AuditSettings, clock: SharedClock) -> Result<Self, AuditOpenError> {
        match &settings.sink {
            None => Ok(Self::off()),
            Some(AuditSink::Stdout) => Ok(Self::with_writer(
                Box::new(StdoutSink),
                QUEUE_CAPACITY,
                clock,
            )),
            Some(AuditSink::File(path)) => {
                let sink = FileSink::open(path, settings.max_size, settings.max_files).map_err(
                    |error| AuditOpenError {
                        path: path.clone(),
                        error,
                    },
                )?;
                Ok(Self::with_writer(Box::new(sink), QUEUE_CAPACITY, clock))
            }
        }
    }

    /// An audit trail writing lines to `sink` from a thread of its own, with at most
    /// `capacity` lines queued.
    fn with_writer(sink: Box<dyn LineSink>, capacity: usize, clock: SharedClock) -> Self {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let shared = Arc::new(Shared {
            pending_drops: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
        });
        let thread_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(rx, sink, &thread_shared));
        let tx = match spawned {
            Ok(_) => tx,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the audit writer thread; audit events are dropped");
                mpsc::sync_channel(0).0
            }
        };
        Audit {
            sender: Some(Arc::new(Sender { tx, shared, clock })),
        }
    }

    /// Whether events are recorded at all.
    pub fn is_on(&self) -> bool {
        self.sender.is_some()
    }

    /// Record `event`, by `caller` when known. Never waits: a full queue drops the event.
    pub fn emit(&self, caller: Option<Who<'_>>, event: AuditEvent) {
        let Some(sender) = &self.sender else { return };
        let line = Line {
            timestamp: crate::clock::iso8601(sender.clock.now_millis()),
            kind: "audit",
            event: &event,
            correlation_id: crate::error::CORRELATION_ID.try_with(|id| id.clone()).ok(),
            caller_user: caller.map(|c| Capped::new(c.user)),
            caller_realm: caller.map(|c| Capped::new(c.realm)),
            client_address: client_address().map(|a| a.to_string()),
        };
        let Ok(text) = serde_json::to_string(&line) else {
            return;
        };
        match sender.tx.try_send(Msg::Line(text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                sender.shared.pending_drops.fetch_add(1, Ordering::Relaxed);
                sender.shared.dropped_total.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Wait until every event emitted before is written and flushed (tests; shutdown).
    pub fn flush(&self) {
        let Some(sender) = &self.sender else { return };
        let (tx, rx) = mpsc::sync_channel(1);
        if sender.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Events dropped because the queue was full (or the writer is gone), since start.
    pub fn dropped(&self) -> u64 {
        self.sender
            .as_ref()
            .map_or(0, |s| s.shared.dropped_total.load(Ordering::Relaxed))
    }
}

/// Where the writer thread puts lines.
trait LineSink: Send {
    /// Write one line (without its newline).
    fn write_line(&mut self, line: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

struct StdoutSink;

impl LineSink for StdoutSink {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        // One `write_all` under the lock: a line never interleaves with a log line.
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        io::stdout().lock().write_all(&buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// A file rotated by size: before a line would take it past `max_size`, `<path>.<i>` becomes
/// `<path>.<i+1>` (the last one is replaced), `<path>` becomes `<path>.1`, and a new
/// `<path>` is started. At most `max_files + 1` files, each at most `max_size` (or one line,
/// when a single line is longer).
struct FileSink {
    path: PathBuf,
    max_size: u64,
    max_files: u32,
    file: Option<BufWriter<File>>,
    size: u64,
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

impl FileSink {
    fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(FileSink {
            path: path.to_path_buf(),
            max_size,
            max_files: max_files.max(1),
            file: Some(BufWriter::new(file)),
            size,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        for i in (1..self.max_files).rev() {
            match std::fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.reopen()
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        self.size = file.metadata()?.len();
        self.file = Some(BufWriter::new(file));
        Ok(())
    }
}

impl LineSink for FileSink {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        let f = self.file.as_mut().ok_or(io::ErrorKind::NotFound)?;
        f.write_all(line)?;
        f.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Log the first write failure and the recovery (not every failed line: that could flood
/// the log in turn).
fn report(r: io::Result<()>, failing: &mut bool) {
    match r {
        Ok(()) => {
            if *failing {
                tracing::warn!("the audit trail is written again");
            }
            *failing = false;
        }
        Err(e) => {
            if !*failing {
                tracing::error!(error = %e, "cannot write the audit trail; events are lost until it recovers");
            }
            *failing = true;
        }
    }
}

/// `line` with `"dropped":n` as its first member.
fn with_dropped(line: &str, n: u64) -> String {
    match line.strip_prefix('{') {
        Some(rest) => format!("{{\"dropped\":{n},{rest}"),
        None => line.to_string(),
    }
}

/// The writer thread: write each line; flush when the queue is empty and when asked. Ends
/// when every handle is dropped.
fn writer(rx: Receiver<Msg>, mut sink: Box<dyn LineSink>, shared: &Shared) {
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(line) => {
                    let drops = shared.pending_drops.swap(0, Ordering::Relaxed);
                    let r = if drops > 0 {
                        sink.write_line(with_dropped(&line, drops).as_bytes())
                    } else {
                        sink.write_line(line.as_bytes())
                    };
                    if r.is_err() {
                        // The line is lost too: counted, and reported by the next line.
                        shared.pending_drops.fetch_add(drops + 1, Ordering::Relaxed);
                        shared.dropped_total.fetch_add(1, Ordering::Relaxed);
                    }
                    report(r, &mut failing);
                }
                Msg::Flush(done) => {
                    report(sink.flush(), &mut failing);
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        report(sink.flush(), &mut failing);
    }
    let _ = sink.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::{Condvar, Mutex};

    /// A sink that records lines; its first write blocks until the gate opens (and says
    /// when it has started waiting).
    struct Gated {
        lines: Arc<Mutex<Vec<String>>>,
        gate: Arc<(Mutex<bool>, Condvar)>,
        entered: Option<SyncSender<()>>,
    }

    impl LineSink for Gated {
        fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
            if let Some(tx) = self.entered.take() {
                let _ = tx.send(());
                let (open, cv) = &*self.gate;
                let mut g = open.lock().unwrap();
                while !*g {
                    g = cv.wait(g).unwrap();
                }
            }
            self.lines
                .lock()
                .unwrap()
                .push(String::from_utf8(line.to_vec()).unwrap());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn event(i: u64) -> AuditEvent {
        AuditEvent::TokensInvalidated {
            target: "owner",
            realm: None,
            username: Some(Capped::new(&format!("user{i}"))),
            invalidated: i,
            previously_invalidated: 0,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (entered_tx, entered_rx) = mpsc::sync_channel(1);
        let sink = Gated {
            lines: lines.clone(),
            gate: gate.clone(),
            entered: Some(entered_tx),
        };
        const CAP: usize = 4;
        let audit = Audit::with_writer(Box::new(sink), CAP, ManualClock::at(0));
        // The writer takes the first line and blocks in its write.
        audit.emit(None, event(0));
        entered_rx.recv().unwrap();
        // CAP lines fill the queue; 5 more are dropped (emit returns at once: were it to
        // wait, this test would never end).
        for i in 1..=(CAP as u64 + 5) {
            audit.emit(None, event(i));
        }
        assert_eq!(audit.dropped(), 5);
        // Open the gate; flush waits for the writer.
        {
            let (open, cv) = &*gate;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        audit.flush();
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), CAP + 1, "{lines:#?}");
        let parsed: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // The first line written after the drops reports them, once.
        assert_eq!(parsed[0].get("dropped"), None);
        assert_eq!(parsed[1]["dropped"], 5, "{lines:#?}");
        assert!(parsed[2..].iter().all(|v| v.get("dropped").is_none()));
        assert_eq!(parsed[1]["invalidated"], 1);
        assert_eq!(audit.dropped(), 5);
    }

    #[test]
    fn lines_have_the_common_fields_and_cap_values() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Gated {
            lines: lines.clone(),
            gate: Arc::new((Mutex::new(true), Condvar::new())),
            entered: None,
        };
        let audit = Audit::with_writer(Box::new(sink), 16, ManualClock::at(1_790_000_000_123));
        let long = format!("evil\n{}", "x".repeat(1000));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(crate::error::CORRELATION_ID.scope(
            "corr-1".to_string(),
            in_request(Some("10.1.2.3".parse().unwrap()), async {
                audit.emit(
                    Some(Who {
                        user: "fac",
                        realm: "default_file",
                    }),
                    AuditEvent::AuthenticationFailed {
                        method: Method::Oidc,
                        reason_code: "nonce_mismatch",
                        realm: Some(Capped::new("oidc1")),
                        principal: Some(Capped::new(&long)),
                    },
                );
            }),
        ));
        audit.emit(None, event(1));
        audit.flush();
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 2);
        assert!(!lines[0].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["@timestamp"], "2026-09-21T14:13:20.123Z");
        assert_eq!(v["type"], "audit");
        assert_eq!(v["event"], "authentication_failed");
        assert_eq!(v["method"], "oidc");
        assert_eq!(v["correlation_id"], "corr-1");
        assert_eq!(v["client_address"], "10.1.2.3");
        assert_eq!(v["caller_user"], "fac");
        assert_eq!(v["caller_realm"], "default_file");
        let p = v["principal"].as_str().unwrap();
        assert!(p.starts_with("evil\nxxx") && p.ends_with('…'), "{p}");
        assert_eq!(p.chars().count(), MAX_VALUE_CHARS + 1);
        // Outside a request: no correlation id, no address, no caller.
        let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        for k in ["correlation_id", "client_address", "caller_user"] {
            assert!(v.get(k).is_none(), "{v}");
        }
    }

    #[test]
    fn a_file_rotates_within_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let settings = AuditSettings {
            sink: Some(AuditSink::File(path.clone())),
            max_size: 1024,
            max_files: 3,
        };
        let audit = Audit::open(&settings, ManualClock::at(0)).unwrap();
        for i in 0..500 {
            audit.emit(None, event(i));
            if i % 64 == 0 {
                audit.flush();
            }
        }
        audit.flush();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
        );
        for n in &names {
            let text = std::fs::read_to_string(dir.path().join(n)).unwrap();
            assert!(text.len() <= 1024, "{n}: {}", text.len());
            assert!(text.ends_with('\n'));
            for l in text.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
            }
        }
        // The newest event is in the current file; the oldest kept in `.3`.
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains("\"invalidated\":499"), "{current}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn off_records_nothing() {
        let audit = Audit::open(&AuditSettings::default(), ManualClock::at(0)).unwrap();
        assert!(!audit.is_on());
        audit.emit(None, event(1));
        audit.flush();
        assert_eq!(audit.dropped(), 0);
    }
}
