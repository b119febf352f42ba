//! Live operations: reloading the configuration and JWKS files while the server runs.
//!
//! - [`reload_from`] validates the whole file with the code `check-config` runs
//!   ([`config::load`] + [`Realms::build_from`](crate::realm::Realms::build_from)) and, when it
//!   is valid, swaps realms, users and secrets as one snapshot
//!   ([`AppState::swap_settings`]). When it is not, the running configuration stays and every
//!   error is logged with its key path and kept for the status API. Settings that cannot
//!   change without a restart keep their running value and are reported as warnings
//!   (`log.level` applies at once).
//! - [`spawn_watcher`] watches (with `notify`) the directories of the config file, of the
//!   secret files it reads and of the realms' JWKS files; watching directories survives
//!   editors that write by rename and Kubernetes ConfigMap symlink swaps. Events are debounced;
//!   what changed is decided by comparing file contents (SHA-256), so an event that changes
//!   nothing reloads nothing. A poll at a slow interval catches what the OS did not report
//!   (network file systems). `SIGHUP` forces a reload of the configuration and every JWKS file.
//! - [`spawn_jwks_refresher`] fetches URL key sets again once `op.jwkset_reload_interval`
//!   has passed.

use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::config::{self, JwksSource, Settings};
use notify::Watcher;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Settings that take effect only at start: `(key, running value, new value)` for each one
/// that differs. The new settings get the running values back.
fn restart_only(running: &Settings, new: &mut Settings) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |key: &str, old: String, newv: String| {
        if old != newv {
            out.push(format!(
                "{key}: changed from [{old}] to [{newv}]; needs a restart to apply (the running value stays)"
            ));
        }
    };
    let tls = |s: &Settings| {
        s.http
            .tls
            .as_ref()
            .map(|t| format!("{}, {}", t.certificate.display(), t.key.display()))
            .unwrap_or_else(|| "none".into())
    };
    check(
        "http.bind",
        running.http.bind.to_string(),
        new.http.bind.to_string(),
    );
    check("http.tls", tls(running), tls(new));
    check(
        "http.max_body",
        running.http.max_body.to_string(),
        new.http.max_body.to_string(),
    );
    check(
        "data.path",
        running.data.path.display().to_string(),
        new.data.path.display().to_string(),
    );
    let backend = |s: &Settings| match &s.data.postgres {
        None => "redb".to_string(),
        Some(p) => format!(
            "postgres (schema {}, pool_size {}, cache_ttl {:?})",
            p.schema, p.pool_size, p.cache_ttl
        ),
    };
    check("data.backend", backend(running), backend(new));
    check(
        "data.cache_size",
        running.data.cache_size.to_string(),
        new.data.cache_size.to_string(),
    );
    check(
        "token.cache_size",
        running.token.cache_size.to_string(),
        new.token.cache_size.to_string(),
    );
    check(
        "log.format",
        format!("{:?}", running.log.format).to_lowercase(),
        format!("{:?}", new.log.format).to_lowercase(),
    );
    let metrics_bind = |s: &Settings| {
        s.metrics
            .bind
            .map_or_else(|| "none".to_string(), |a| a.to_string())
    };
    check("metrics.bind", metrics_bind(running), metrics_bind(new));
    let audit = |s: &Settings| {
        let a = &s.audit;
        let sink = match &a.sink {
            None => "off".to_string(),
            Some(config::AuditSink::Stdout) => "stdout".to_string(),
            Some(config::AuditSink::File(p)) => p.display().to_string(),
        };
        format!("{sink}, max_size {}, max_files {}", a.max_size, a.max_files)
    };
    check("audit", audit(running), audit(new));
    new.audit = running.audit.clone();
    new.http.bind = running.http.bind;
    new.metrics.bind = running.metrics.bind;
    new.http.tls = running.http.tls.clone();
    new.http.max_body = running.http.max_body;
    new.data.path = running.data.path.clone();
    new.data.postgres = running.data.postgres.clone();
    new.data.cache_size = running.data.cache_size;
    new.token.cache_size = running.token.cache_size;
    new.log.format = running.log.format;
    out
}

/// The keys named by [`restart_only`]'s messages (`key: changed from ...`), for the audit
/// trail (which never carries values).
fn restart_keys(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m.split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

/// What a reload that panicked reports (the panic's own message, which may quote a
/// configuration value, goes only to standard error).
const PANIC_MESSAGE: &str = "internal error: the reload panicked (a bug in oidc-realm; the panic message is on standard error, please report it); the running configuration stays";

/// Reload the configuration from `path`: validate it all, and swap it in if valid.
/// Returns the new generation, or every error (the running configuration stays).
/// Why a reload was refused (the running configuration stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// The file does not load or validate: every problem with its key path.
    Config(config::ConfigErrors),
    /// It validates, but realms cannot be built from it (HTTP clients, JWKS files).
    Realms(crate::realm::RealmBuildErrors),
    /// Loading panicked (a bug); the panic's message is on standard error only.
    Panicked,
}

impl ReloadError {
    /// One line per problem, as the log and the status API show them.
    pub fn messages(&self) -> Vec<String> {
        match self {
            ReloadError::Config(errors) => errors.0.iter().map(ToString::to_string).collect(),
            ReloadError::Realms(errors) => errors.iter().map(ToString::to_string).collect(),
            ReloadError::Panicked => vec![PANIC_MESSAGE.to_string()],
        }
    }
}

pub fn reload_from(state: &AppState, path: &Path) -> Result<u64, ReloadError> {
    let log = state.reload_log();
    let _serial = log.serialise();
    let now = state.clock.now_millis();
    // A panic while loading, validating or building (a bug) is a failed reload like any
    // other, and the watcher keeps going. The running configuration stays: the new one is
    // stored only at the end of `swap_settings`, once its realms are built.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(test)]
        tests::maybe_panic(path);
        match config::load(path) {
            Err(errors) => Err(ReloadError::Config(errors)),
            Ok(loaded) => {
                let files = loaded.files;
                let mut settings = loaded.settings;
                let mut warnings = loaded.warnings;
                let restart = restart_only(&state.runtime().settings, &mut settings);
                warnings.extend(restart.iter().cloned());
                state
                    .swap_settings(settings, warnings.clone())
                    .map(|generation| (generation, files, warnings, restart))
                    .map_err(ReloadError::Realms)
            }
        }
    }));
    let result = attempt.unwrap_or(Err(ReloadError::Panicked));
    let mut info = log.lock();
    info.config_path = Some(path.to_path_buf());
    info.last_attempt_at = Some(now);
    match result {
        Ok((generation, files, warnings, restart)) => {
            crate::logging::set_level(&state.runtime().settings.log.level);
            info.secret_files = files;
            info.last_ok = Some(true);
            info.last_error = None;
            info.reloads_ok += 1;
            state.metrics.reload(true);
            for w in &restart {
                tracing::warn!("config reload: {w}");
            }
            state.audit.emit(
                None,
                AuditEvent::ConfigReloaded {
                    outcome: Outcome::Success,
                    generation: Some(generation),
                    error_count: 0,
                    restart_required: restart_keys(&restart),
                },
            );
            tracing::info!(
                generation,
                warnings = warnings.len(),
                "configuration reloaded from {}",
                path.display()
            );
            Ok(generation)
        }
        Err(error) => {
            let errors = error.messages();
            for e in &errors {
                tracing::error!("config reload: {e}");
            }
            tracing::error!(
                "configuration reload from {} refused ({} problem(s)); the running configuration stays",
                path.display(),
                errors.len()
            );
            state.audit.emit(
                None,
                AuditEvent::ConfigReloaded {
                    outcome: Outcome::Failure,
                    generation: None,
                    error_count: errors.len(),
                    restart_required: Vec::new(),
                },
            );
            info.record_failure(now, errors);
            state.metrics.reload(false);
            Err(error)
        }
    }
}

/// The periodic refresh of URL key sets, once (the refresher task calls this).
pub async fn refresh_jwks(state: &AppState) -> usize {
    let rt = state.runtime();
    rt.realms.refresh_jwks(state.clock.now_millis()).await
}

/// The periodic refresh of `op.discovery` provider metadata, once (with the JWKS refresh).
/// When a realm's metadata changed, the running configuration is rebuilt with it (a new
/// generation; realms keep their key sets when their JWKS URL is unchanged). Returns how
/// many realms changed.
pub async fn refresh_discovery(state: &AppState) -> usize {
    let rt = state.runtime();
    let changed = rt.realms.refresh_discovery(state.clock.now_millis()).await;
    if changed.is_empty() {
        return 0;
    }
    let log = state.reload_log();
    let _serial = log.serialise();
    // A reload may have run meanwhile: apply to what runs now.
    let rt = state.runtime();
    let mut settings = (*rt.settings).clone();
    let mut warnings = rt.warnings.clone();
    let mut n = 0;
    for (name, md) in &changed {
        let Some(realm) = settings.realms.iter_mut().find(|r| &r.name == name) else {
            continue;
        };
        match crate::realm::discovery::apply(realm, md) {
            Ok(w) => {
                for w in &w {
                    tracing::warn!(realm = %name, "{w}");
                }
                warnings.extend(w);
                n += 1;
            }
            Err(e) => {
                tracing::warn!(realm = %name, code = e.code(), "refreshed provider metadata not applied: {e}")
            }
        }
    }
    if n == 0 {
        return 0;
    }
    match state.swap_settings(settings, warnings) {
        Ok(generation) => {
            tracing::info!(generation, "provider metadata applied");
            n
        }
        Err(errors) => {
            for e in errors.iter() {
                tracing::warn!("provider metadata not applied: {e}");
            }
            0
        }
    }
}

/// Run [`refresh_jwks`] every `tick` (the due check uses the injected clock).
pub fn spawn_jwks_refresher(state: Arc<AppState>, tick: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(tick);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            refresh_jwks(&state).await;
            refresh_discovery(&state).await;
        }
    })
}

/// How the watcher behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time after the last file event before acting.
    pub debounce: Duration,
    /// Act at the latest this long after the first event of a burst.
    pub max_delay: Duration,
    /// Compare file contents this often even without events (0 = never).
    pub poll: Duration,
    /// Reload on `SIGHUP` (Unix).
    pub sighup: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(150),
            max_delay: Duration::from_millis(750),
            poll: Duration::from_secs(10),
            sighup: true,
        }
    }
}

/// The running watcher; dropping it stops watching.
#[derive(Debug)]
pub struct WatcherHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatcherHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// SHA-256 of a file's content (following symlinks); `None` if it cannot be read.
fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|b| crate::crypto::sha256(&[&b]))
}

/// The files a reload depends on: the config file and its secret files (→ config reload),
/// and JWKS files by realm (→ key reload).
struct Watched {
    config: Vec<PathBuf>,
    jwks: Vec<(String, PathBuf)>,
}

fn watched(state: &AppState, config_path: &Path) -> Watched {
    let mut config = vec![config_path.to_path_buf()];
    config.extend(state.reload_log().info().secret_files);
    let jwks = state
        .runtime()
        .realms
        .iter()
        .filter_map(|r| match r.keys().source() {
            JwksSource::File(p) => Some((r.name().to_string(), p.clone())),
            JwksSource::Url(_) => None,
        })
        .collect();
    Watched { config, jwks }
}

/// Directories to watch for `files`: each file's directory, and the directory of the file it
/// resolves to through symlinks.
fn dirs_of<'a>(files: impl Iterator<Item = &'a PathBuf>) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for f in files {
        if let Some(d) = f.parent() {
            dirs.insert(d.to_path_buf());
        }
        if let Ok(real) = std::fs::canonicalize(f) {
            if let Some(d) = real.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

struct Loop {
    state: Arc<AppState>,
    config_path: PathBuf,
    digests: BTreeMap<PathBuf, Option<[u8; 32]>>,
    dirs: BTreeSet<PathBuf>,
}

impl Loop {
    /// [`Self::check`], surviving a panic in it (a bug, e.g. while reading a JWKS file): it is
    /// logged and recorded as a failed reload, and watching goes on.
    fn check_guarded(&mut self, watcher: &mut Option<notify::RecommendedWatcher>, force: bool) {
        let run =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.check(watcher, force)));
        if run.is_err() {
            tracing::error!(
                "config watcher: {PANIC_MESSAGE}; still watching {}",
                self.config_path.display()
            );
            let now = self.state.clock.now_millis();
            self.state
                .reload_log()
                .lock()
                .record_failure(now, vec![PANIC_MESSAGE.to_string()]);
        }
    }

    /// Compare contents, reload what changed (everything when `force`), re-arm the watches.
    fn check(&mut self, watcher: &mut Option<notify::RecommendedWatcher>, force: bool) {
        let w = watched(&self.state, &self.config_path);
        let changed = |p: &PathBuf, digests: &mut BTreeMap<PathBuf, Option<[u8; 32]>>| {
            let d = digest(p);
            let old = digests.insert(p.clone(), d);
            old != Some(d)
        };
        let mut config_changed = false;
        for p in &w.config {
            config_changed |= changed(p, &mut self.digests);
        }
        if config_changed || force {
            if force {
                tracing::info!("SIGHUP: reloading the configuration");
            }
            let _ = reload_from(&self.state, &self.config_path);
        }
        // JWKS files, of the configuration now running (a reload may have added some).
        let w = watched(&self.state, &self.config_path);
        let now = self.state.clock.now_millis();
        let rt = self.state.runtime();
        for (realm, p) in &w.jwks {
            let c = changed(p, &mut self.digests);
            if c || force {
                if let Some(r) = rt.realms.iter().find(|r| r.name() == realm) {
                    let _ = r.keys().reload_file(realm, now);
                }
            }
        }
        // Secret files of the reloaded configuration, so the next edit is seen.
        for p in &w.config {
            self.digests.entry(p.clone()).or_insert_with(|| digest(p));
        }
        let Some(watcher) = watcher.as_mut() else {
            return;
        };
        let dirs = dirs_of(w.config.iter().chain(w.jwks.iter().map(|(_, p)| p)));
        for d in self.dirs.difference(&dirs) {
            let _ = watcher.unwatch(d);
        }
        for d in dirs.difference(&self.dirs) {
            if let Err(e) = watcher.watch(d, notify::RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}", d.display());
            }
        }
        self.dirs = dirs;
    }
}

/// Watch the configuration (see the module documentation). Needs a Tokio runtime.
pub fn spawn_watcher(
    state: Arc<AppState>,
    config_path: &Path,
    opts: WatchOptions,
) -> Result<WatcherHandle, String> {
    let config_path = std::path::absolute(config_path).unwrap_or_else(|_| config_path.into());
    {
        let log = state.reload_log();
        let mut i = log.lock();
        if i.config_path.is_none() {
            i.config_path = Some(config_path.clone());
        }
    }
    let data_path = state.runtime().settings.data.path.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return;
        }
        // The store's own writes are not configuration changes.
        if !ev.paths.is_empty() && ev.paths.iter().all(|p| p.starts_with(&data_path)) {
            return;
        }
        let _ = tx.send(());
    });
    // Without OS notifications (e.g. inotify limits reached) the poll still sees changes.
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot start the file watcher ({e}); changes are seen by polling every {:?}",
                opts.poll
            );
            None
        }
    };
    let mut lp = Loop {
        state,
        config_path,
        digests: BTreeMap::new(),
        dirs: BTreeSet::new(),
    };
    // Record the current contents without reloading, and arm the watches.
    {
        let w = watched(&lp.state, &lp.config_path);
        for p in w.config.iter().chain(w.jwks.iter().map(|(_, p)| p)) {
            lp.digests.insert(p.clone(), digest(p));
        }
        lp.check_guarded(&mut watcher, false);
    }
    #[cfg(unix)]
    let mut hup = if opts.sighup {
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?,
        )
    } else {
        None
    };
    let task = tokio::spawn(async move {
        let poll = if opts.poll.is_zero() {
            Duration::from_secs(365 * 24 * 3600)
        } else {
            opts.poll
        };
        let mut poll_tick = tokio::time::interval(poll);
        poll_tick.tick().await;
        loop {
            #[cfg(unix)]
            let hup_fut = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_fut = std::future::pending::<Option<()>>();
            let force = tokio::select! {
                ev = rx.recv() => {
                    if ev.is_none() {
                        return;
                    }
                    // Debounce: wait for a quiet period, at most `max_delay`.
                    let deadline = tokio::time::Instant::now() + opts.max_delay;
                    loop {
                        let wait = opts.debounce.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
                        if wait.is_zero() {
                            break;
                        }
                        match tokio::time::timeout(wait, rx.recv()).await {
                            Ok(Some(())) => continue,
                            Ok(None) => return,
                            Err(_) => break,
                        }
                    }
                    false
                }
                _ = poll_tick.tick() => false,
                _ = hup_fut => true,
            };
            lp.check_guarded(&mut watcher, force);
        }
    });
    Ok(WatcherHandle { task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;

    /// Test hook: reloading a configuration file that holds this line panics (in unit tests
    /// only; the library proper has no such hook).
    pub(super) const PANIC_MARKER: &str = "# unit-test hook: panic during this reload";

    pub(super) fn maybe_panic(path: &Path) {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(PANIC_MARKER)) {
            panic!("injected panic (reload test hook)");
        }
    }

    /// A configuration with one user and no realm; `token.timeout` tells versions apart.
    fn config_text(token_timeout: &str, extra: &str) -> String {
        let hash = bcrypt::hash("pw", 4).unwrap();
        format!(
            "{extra}\ntoken:\n  timeout: {token_timeout}\nusers:\n  fac:\n    password_hash: \"{hash}\"\n    privileges: [manage_oidc]\n"
        )
    }

    fn write_by_rename(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp~");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn state_for(path: &Path) -> Arc<AppState> {
        let loaded = config::load(path).unwrap_or_else(|e| panic!("{e}"));
        let state = AppState::new(
            loaded.settings,
            loaded.warnings,
            Arc::new(MemoryStore::new()),
            ManualClock::at(1_790_000_000_000),
        );
        state.reload_log().set_source(path, loaded.files);
        state
    }

    /// Poll `pred` for at most 5 s.
    async fn wait_until(what: &str, pred: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !pred() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_panic_during_a_reload_is_a_failed_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config_text("10m", "")).unwrap();
        let state = state_for(&path);
        std::fs::write(&path, config_text("11m", PANIC_MARKER)).unwrap();
        let error = reload_from(&state, &path).unwrap_err();
        assert_eq!(error, ReloadError::Panicked);
        let errors = error.messages();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("internal error"), "{errors:?}");
        let info = state.reload_log().info();
        assert_eq!(info.last_ok, Some(false));
        assert_eq!(info.reloads_failed, 1);
        assert_eq!(info.last_error.map(|f| f.errors), Some(errors));
        assert_eq!(state.runtime().generation, 1);
        assert_eq!(
            state.runtime().settings.token.timeout,
            Duration::from_secs(600)
        );
        // The next reload works (nothing was left locked or half-swapped).
        std::fs::write(&path, config_text("12m", "")).unwrap();
        assert_eq!(reload_from(&state, &path), Ok(2));
        assert_eq!(
            state.runtime().settings.token.timeout,
            Duration::from_secs(720)
        );
        assert!(state.reload_log().info().last_error.is_none());
    }

    #[tokio::test]
    async fn a_panic_during_a_reload_keeps_the_watcher_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config_text("10m", "")).unwrap();
        let state = state_for(&path);
        let _w = spawn_watcher(
            state.clone(),
            &path,
            WatchOptions {
                debounce: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
                poll: Duration::from_millis(100),
                sighup: false,
            },
        )
        .unwrap();
        write_by_rename(&path, &config_text("11m", PANIC_MARKER));
        wait_until("the failed reload", || {
            state.reload_log().info().reloads_failed == 1
        })
        .await;
        let info = state.reload_log().info();
        assert_eq!(info.last_ok, Some(false));
        let failure = info.last_error.unwrap();
        assert!(
            failure.errors.iter().any(|e| e.contains("internal error")),
            "{:?}",
            failure.errors
        );
        assert_eq!(state.runtime().generation, 1);
        // Still watching: the next edit is applied.
        write_by_rename(&path, &config_text("12m", ""));
        wait_until("the next reload", || state.runtime().generation == 2).await;
        assert_eq!(
            state.runtime().settings.token.timeout,
            Duration::from_secs(720)
        );
        assert!(state.reload_log().info().last_error.is_none());
    }
}
