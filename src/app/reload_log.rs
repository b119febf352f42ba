//! What the reloader (`crate::reload`) records, kept in the state for the status API.

use crate::clock::UnixMillis;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A failed reload: when, and every error with its key path.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    pub at: UnixMillis,
    pub errors: Vec<String>,
}

/// What the reloader knows, for the status API.
#[derive(Debug, Clone, Default)]
pub struct ReloadInfo {
    /// The config file reloads read (set by `serve` or the first reload).
    pub config_path: Option<PathBuf>,
    /// Secret files the running configuration was read from.
    pub secret_files: Vec<PathBuf>,
    /// The last reload attempt and whether it succeeded.
    pub last_attempt_at: Option<UnixMillis>,
    pub last_ok: Option<bool>,
    /// The last failed reload; cleared when a later reload succeeds.
    pub last_error: Option<ReloadFailure>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

impl ReloadInfo {
    /// A failed attempt at `at`: kept as the last error for the status API.
    pub(crate) fn record_failure(&mut self, at: UnixMillis, errors: Vec<String>) {
        self.last_attempt_at = Some(at);
        self.last_ok = Some(false);
        self.reloads_failed += 1;
        self.last_error = Some(ReloadFailure { at, errors });
    }
}

/// Reload bookkeeping (written by `crate::reload`, read by the status API).
#[derive(Debug, Default)]
pub struct ReloadLog {
    info: Mutex<ReloadInfo>,
    /// Serialises reloads (watcher, `SIGHUP`, tests).
    serial: Mutex<()>,
}

impl ReloadLog {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ReloadInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hold while reloading: reloads (watcher, `SIGHUP`, tests) run one at a time.
    pub(crate) fn serialise(&self) -> std::sync::MutexGuard<'_, ()> {
        self.serial.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of what is known.
    pub fn info(&self) -> ReloadInfo {
        self.lock().clone()
    }

    /// Record the file the running configuration came from (at start).
    pub fn set_source(&self, path: &Path, secret_files: Vec<PathBuf>) {
        let mut i = self.lock();
        i.config_path = Some(path.to_path_buf());
        i.secret_files = secret_files;
    }
}
