//! Live reload (`wasmesh serve --watch`): what xDS gives an Envoy, for the
//! edit-build-try loop of a filter author.
//!
//! The watcher polls the modification times of the configuration file and
//! of every plugin's `.wasm`. On a change it reads the configuration again,
//! compiles the modules and starts the new chain once on a trial worker
//! (`proxy_on_vm_start` / `proxy_on_configure` must succeed); then every
//! worker thread builds the new chain: new streams use it, streams in
//! flight finish on the old one, whose plugins are shut down once its last
//! stream ended. A configuration or module that fails to load leaves the
//! old chain serving, with a log line and `wasmesh.reload.update_rejected`
//! (as Envoy keeps its last good configuration when an update is
//! rejected). Only the `chain` is reloaded; other changes need a restart
//! (a warning says so).

use super::config::ServeConfig;
use crate::chain::ChainConfig;
use crate::scenario::RunOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// How often `--watch` looks at the files.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A new chain for the worker threads, and where each acknowledges it.
pub struct Reload {
    pub chain: ChainConfig,
    pub acks: std::sync::Mutex<std::sync::mpsc::Sender<Result<(), String>>>,
}

/// Envoy's `update_attempt` / `update_success` / `update_rejected`, for
/// the chain (`wasmesh.reload.*`).
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub update_attempt: AtomicU64,
    pub update_success: AtomicU64,
    pub update_rejected: AtomicU64,
}

impl ReloadStats {
    pub fn entries(&self) -> [(&'static str, &AtomicU64); 3] {
        [
            ("wasmesh.reload.update_attempt", &self.update_attempt),
            ("wasmesh.reload.update_success", &self.update_success),
            ("wasmesh.reload.update_rejected", &self.update_rejected),
        ]
    }

    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The files a configuration depends on, with their modification times.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot(Vec<(PathBuf, Option<SystemTime>)>);

impl Snapshot {
    pub fn take(config_path: &Path, config: &ServeConfig) -> Snapshot {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut files = vec![(config_path.to_path_buf(), mtime(config_path))];
        for p in &config.chain.plugins {
            files.push((p.wasm.clone(), mtime(&p.wasm)));
        }
        Snapshot(files)
    }
}

/// Watches a configuration file and its modules.
pub struct Watcher {
    pub path: PathBuf,
    pub opts: RunOptions,
    pub config: ServeConfig,
    pub snapshot: Snapshot,
}

impl Watcher {
    pub fn new(path: &Path, opts: RunOptions, config: ServeConfig) -> Watcher {
        let snapshot = Snapshot::take(path, &config);
        Watcher {
            path: path.to_path_buf(),
            opts,
            config,
            snapshot,
        }
    }

    /// If a file changed: the new configuration to apply (`Ok(None)`: no
    /// change). A configuration that does not parse is an error.
    pub fn poll(&mut self) -> Result<Option<ServeConfig>, String> {
        let now = Snapshot::take(&self.path, &self.config);
        if now == self.snapshot {
            return Ok(None);
        }
        self.snapshot = now;
        let new = ServeConfig::from_file(&self.path, &self.opts)?;
        // The modules the new configuration names are watched from now on.
        self.snapshot = Snapshot::take(&self.path, &new);
        Ok(Some(new))
    }

    /// Parts of `new` other than the chain that differ from the running
    /// configuration (not applied).
    pub fn unapplied(&self, new: &ServeConfig) -> bool {
        let strip = |c: &ServeConfig| {
            let mut j = c.to_json();
            if let Some(o) = j.as_object_mut() {
                o.remove("chain");
            }
            j
        };
        strip(&self.config) != strip(new)
    }
}
