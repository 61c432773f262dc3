//! `wasmesh serve`: a small, real HTTP proxy on loopback that runs a
//! Proxy-Wasm filter chain with the same host as the scenario runner.
//!
//! * Downstream: HTTP/1.1 with keep-alive and HTTP/2 cleartext (prior
//!   knowledge) on one listener; bodies stream through the plugins chunk by
//!   chunk; trailers pass through.
//! * One [`Worker`](crate::chain::Worker) (one VM per plugin) per worker
//!   thread, all sharing one [`HostShared`] (shared data, queues, metrics),
//!   with timers on the real clock, like Envoy's workers.
//! * The router picks a cluster after the request filters ran; upstream
//!   requests, `proxy_http_call` and `proxy_grpc_call` go to the configured
//!   clusters for real, with Envoy's answers for failures and timeouts.
//! * An admin listener with Envoy's `/stats`, `/stats/prometheus`,
//!   `/ready` and `/config_dump`; an access log line per request.
//! * Envoy's flow control ([`flow_control`]), timeouts and limits
//!   ([`limits`], enforced by the [`connection_manager`]).
//! * Graceful shutdown on SIGINT/SIGTERM (or `POST /quitquitquit`), and
//!   live reload of the chain ([`reload`], `--watch`).
//!
//! Files: `connection_manager` (downstream connections and streams),
//! `driver` (a worker thread's chain and its events), `router` (upstream
//! requests), `callout` (HTTP/gRPC callouts), `upstream` (client
//! connections, Envoy's failure answers), `flow_control`, `limits`,
//! `reload`, `config` / `envoy` / `envoy_limits` (configuration), `admin`,
//! `stats`, `access_log`.
//!
//! ```no_run
//! use wasmesh_serve::{ServeConfig, Server};
//! let config = ServeConfig::from_file("serve.yaml".as_ref(), &Default::default()).unwrap();
//! let server = Server::start(config).unwrap();
//! println!("listening on {}", server.listen_addr());
//! server.shutdown();
//! ```
//!
//! See `docs/serve.md` for the configuration and the differences from Envoy.

pub mod access_log;
pub mod admin;
mod callout;
pub mod config;
pub mod connection_manager;
pub mod driver;
pub mod envoy;
mod envoy_cluster;
mod envoy_limits;
mod envoy_route;
pub mod flow_control;
pub mod limits;
pub mod reload;
mod router;
pub mod stats;
pub mod upstream;

pub use config::{Cluster, ServeConfig};

// The host library's modules, under the names the serve modules use
// (`crate::chain::Worker`, ...): serve is a client of `wasmesh`'s public API.
use wasmesh::{abi, chain, headers, host, properties, runtime, scenario, types, FastMap};

use crate::host::{Clock, HostShared};
use crate::runtime::Runtime;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// State shared by every thread of a server.
pub struct Shared {
    pub config: ServeConfig,
    pub host: Arc<HostShared>,
    pub stats: stats::Stats,
    pub tags: stats::TagProducer,
    pub access_log: access_log::AccessLog,
    /// Set when shutdown starts (`/ready` answers DRAINING).
    pub draining: AtomicBool,
}

/// Options that are not part of the configuration file.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Print plugin log lines to stderr.
    pub echo_plugin_logs: bool,
    /// Keep the last N access log entries in memory
    /// ([`ServerHandle::recent_access_log`]); 0: none.
    pub keep_access_log: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            echo_plugin_logs: true,
            keep_access_log: 0,
        }
    }
}

/// The local data plane.
pub struct Server;

impl Server {
    /// Starts the server with plugin logs on stderr.
    pub fn start(config: ServeConfig) -> Result<ServerHandle, String> {
        Self::start_with(config, &ServeOptions::default())
    }

    /// Binds the listeners, starts the workers (loading and configuring the
    /// plugins in each) and the admin listener. Fails if a plugin refuses
    /// its configuration or an address cannot be bound.
    pub fn start_with(
        mut config: ServeConfig,
        opts: &ServeOptions,
    ) -> Result<ServerHandle, String> {
        // A configuration built in code gets the same checks as a file.
        config.finish()?;
        let runtime = Runtime::shared()?;
        // Compile each module once before the workers start: starting
        // together they would all miss the runtime's module cache and
        // compile every module each (the demo's five filters took twice the
        // CPU time with two workers).
        for p in &config.chain.plugins {
            runtime.load(&p.wasm)?;
        }
        let host = if opts.echo_plugin_logs {
            HostShared::with_echo(Clock::Real, config.log_level)
        } else {
            HostShared::new(Clock::Real, config.log_level)
        };
        host.set_verify_signature(config.verify_signature);
        // `--seed` replays a run; otherwise a fresh seed per start.
        host.set_seed(config.seed.unwrap_or_else(|| {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
        }));
        for name in config.clusters.keys() {
            host.add_cluster(name);
        }
        for (k, v) in &config.properties {
            host.set_property(k, v.clone());
        }
        let tags = stats::TagProducer::new(&config.stats_tags)?;
        let access_log =
            access_log::AccessLog::open(&config.access_log)?.keep_recent(opts.keep_access_log);
        let listener = std::net::TcpListener::bind(config.listen)
            .map_err(|e| format!("listen {}: {e}", config.listen))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("listen: {e}"))?;
        let listen = listener.local_addr().map_err(|e| e.to_string())?;
        let admin_listener = match config.admin {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).map_err(|e| format!("admin {a}: {e}"))?;
                l.set_nonblocking(true).map_err(|e| format!("admin: {e}"))?;
                Some(l)
            }
            None => None,
        };
        let admin = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        let stats =
            stats::Stats::new(&config.stat_prefix, config.clusters.keys()).with_listener(listen);
        let shared = Arc::new(Shared {
            config,
            host,
            stats,
            tags,
            access_log,
            draining: AtomicBool::new(false),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shutdown_tx = Arc::new(shutdown_tx);
        let (reload_tx, reload_rx) = watch::channel(None);
        let mut handle = ServerHandle {
            listen,
            admin,
            shared: shared.clone(),
            shutdown_tx: shutdown_tx.clone(),
            shutdown_rx: shutdown_rx.clone(),
            admin_stop: None,
            workers: Vec::new(),
            admin_thread: None,
            runtime: runtime.clone(),
            reload_tx,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for id in 0..shared.config.workers {
            let l = listener.try_clone().map_err(|e| format!("listener: {e}"))?;
            let shared = shared.clone();
            let runtime = runtime.clone();
            let ready = ready_tx.clone();
            let rx = shutdown_rx.clone();
            let reloads = reload_rx.clone();
            let t = std::thread::Builder::new()
                .name(format!("wasmesh-worker-{id}"))
                .spawn(move || worker_main(id, shared, runtime, l, ready, rx, reloads))
                .map_err(|e| format!("worker thread: {e}"))?;
            handle.workers.push(t);
        }
        drop(ready_tx);
        drop(listener);
        for _ in 0..shared.config.workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    handle.stop();
                    let logs: Vec<String> = shared
                        .host
                        .logs_since(0)
                        .iter()
                        .map(|l| format!("[{}] {}: {}", l.level.name(), l.plugin, l.message))
                        .collect();
                    return Err(if logs.is_empty() {
                        e
                    } else {
                        format!("{e}\n{}", logs.join("\n"))
                    });
                }
                Err(_) => {
                    handle.stop();
                    return Err("a worker thread exited while starting".into());
                }
            }
        }
        if let Some(l) = admin_listener {
            let (stop_tx, stop_rx) = watch::channel(false);
            handle.admin_stop = Some(stop_tx);
            let shared = shared.clone();
            let quit = shutdown_tx.clone();
            let t = std::thread::Builder::new()
                .name("wasmesh-admin".into())
                .spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, admin::serve(shared, l, quit, stop_rx));
                })
                .map_err(|e| format!("admin thread: {e}"))?;
            handle.admin_thread = Some(t);
        }
        Ok(handle)
    }
}

/// A running server.
pub struct ServerHandle {
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    shared: Arc<Shared>,
    shutdown_tx: Arc<watch::Sender<bool>>,
    shutdown_rx: watch::Receiver<bool>,
    admin_stop: Option<watch::Sender<bool>>,
    workers: Vec<JoinHandle<()>>,
    admin_thread: Option<JoinHandle<()>>,
    runtime: Arc<Runtime>,
    reload_tx: watch::Sender<Option<Arc<reload::Reload>>>,
}

impl ServerHandle {
    /// Replaces the plugins of the chain (routes and clusters stay): the
    /// modules are compiled and the chain started once on a trial worker;
    /// if that works every worker thread switches to it for new streams,
    /// streams in flight finish on the old chain. On an error the old
    /// chain keeps serving (`wasmesh.reload.update_rejected`).
    pub fn reload(&self, plugins: Vec<crate::chain::PluginConfig>) -> Result<(), String> {
        let stats = &self.shared.stats.reload;
        reload::ReloadStats::inc(&stats.update_attempt);
        let r = self.try_reload(plugins);
        reload::ReloadStats::inc(if r.is_ok() {
            &stats.update_success
        } else {
            &stats.update_rejected
        });
        r
    }

    fn try_reload(&self, plugins: Vec<crate::chain::PluginConfig>) -> Result<(), String> {
        let mut chain = self.shared.config.chain.clone();
        chain.plugins = plugins;
        for p in &chain.plugins {
            self.runtime.load(&p.wasm)?;
        }
        // A trial start: the module instantiates and the plugins accept
        // their configuration.
        crate::chain::Worker::new(
            4095,
            self.runtime.clone(),
            self.shared.host.clone(),
            chain.clone(),
        )?;
        let (tx, rx) = std::sync::mpsc::channel();
        let _ = self.reload_tx.send(Some(Arc::new(reload::Reload {
            chain,
            acks: std::sync::Mutex::new(tx),
        })));
        let mut errors = Vec::new();
        for _ in 0..self.workers.len() {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("a worker did not answer".into()),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// One `--watch` poll: applies a changed configuration or module.
    fn apply_changes(&self, w: &mut reload::Watcher) {
        let new = match w.poll() {
            Ok(None) => return,
            Ok(Some(c)) => c,
            Err(e) => {
                let stats = &self.shared.stats.reload;
                reload::ReloadStats::inc(&stats.update_attempt);
                reload::ReloadStats::inc(&stats.update_rejected);
                eprintln!("wasmesh serve: update rejected (the running chain stays): {e}");
                return;
            }
        };
        if w.unapplied(&new) {
            eprintln!(
                "wasmesh serve: warning: only `chain` is reloaded; other changes need a restart"
            );
        }
        let n = new.chain.plugins.len();
        match self.reload(new.chain.plugins.clone()) {
            Ok(()) => {
                eprintln!("wasmesh serve: reloaded the chain ({n} plugin(s))");
                w.config.chain.plugins = new.chain.plugins;
            }
            Err(e) => {
                eprintln!("wasmesh serve: update rejected (the running chain stays): {e}")
            }
        }
    }

    /// The bound address of the HTTP listener.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The bound address of the admin listener, if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The shared host (metrics, logs, shared data).
    pub fn host(&self) -> &Arc<HostShared> {
        &self.shared.host
    }

    /// The effective configuration.
    pub fn config(&self) -> &ServeConfig {
        &self.shared.config
    }

    /// The last access log entries, oldest first (only with
    /// [`ServeOptions::keep_access_log`]).
    pub fn recent_access_log(&self) -> Vec<access_log::Entry> {
        self.shared.access_log.recent()
    }

    /// The server's stats with Envoy's names.
    pub fn stats(&self) -> Vec<stats::StatEntry> {
        self.shared.stats.snapshot(&self.shared.host)
    }

    /// Drains in-flight requests (up to the drain timeout), shuts the
    /// plugins down and stops every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Blocks until SIGINT, SIGTERM or `POST /quitquitquit`, then shuts
    /// down gracefully.
    pub fn wait(self) {
        self.wait_watching(None);
    }

    /// [`ServerHandle::wait`], applying changes to the configuration file
    /// and its modules as they happen (`--watch`).
    pub fn wait_watching(mut self, mut watcher: Option<reload::Watcher>) {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let mut rx = self.shutdown_rx.clone();
            let this = &self;
            rt.block_on(async move {
                let term = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                let poll = async {
                    let Some(w) = watcher.as_mut() else {
                        return std::future::pending::<()>().await;
                    };
                    loop {
                        tokio::time::sleep(reload::POLL_INTERVAL).await;
                        this.apply_changes(w);
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => eprintln!("wasmesh serve: SIGINT, draining"),
                    _ = term => eprintln!("wasmesh serve: SIGTERM, draining"),
                    _ = rx.wait_for(|v| *v) => eprintln!("wasmesh serve: quit requested, draining"),
                    _ = poll => {}
                }
            });
        }
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.draining.store(true, Ordering::Relaxed);
        let _ = self.shutdown_tx.send(true);
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
        if let Some(s) = self.admin_stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.admin_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn worker_main(
    id: usize,
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
    listener: std::net::TcpListener,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    shutdown: watch::Receiver<bool>,
    mut reloads: watch::Receiver<Option<Arc<reload::Reload>>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("worker {id}: runtime: {e}")));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let worker = match crate::chain::Worker::new(
            id,
            runtime.clone(),
            shared.host.clone(),
            shared.config.chain.clone(),
        ) {
            Ok(mut w) => {
                w.set_buffer_limit(shared.config.limits.buffer_limit());
                w
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("worker {id}: listener: {e}")));
                return;
            }
        };
        let driver = driver::Driver::new(worker, shared.clone());
        // Callouts and timers set up while configuring.
        driver.with(|_| ());
        let _ = ready.send(Ok(()));
        tokio::task::spawn_local(driver.clone().timer_loop(shutdown.clone()));
        let current: driver::CurrentDriver = Rc::new(RefCell::new(driver));
        {
            // Reloads: a new chain for new streams; the old one retires
            // once its streams finished.
            let current = current.clone();
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            tokio::task::spawn_local(async move {
                while reloads.changed().await.is_ok() {
                    let Some(r) = reloads.borrow_and_update().clone() else {
                        continue;
                    };
                    let res = crate::chain::Worker::new(
                        id,
                        runtime.clone(),
                        shared.host.clone(),
                        r.chain.clone(),
                    )
                    .map(|mut w| {
                        w.set_buffer_limit(shared.config.limits.buffer_limit());
                        let new = current.borrow().successor(w);
                        new.with(|_| ());
                        tokio::task::spawn_local(new.clone().timer_loop(shutdown.clone()));
                        let old = current.replace(new);
                        tokio::task::spawn_local(old.retire());
                    });
                    let acks = r.acks.lock().map(|a| a.clone());
                    if let Ok(acks) = acks {
                        let _ = acks.send(res);
                    }
                }
            });
        }
        let mut sd = shutdown.clone();
        let mut conn_id = (id as u64) << 40;
        loop {
            if *sd.borrow() {
                break;
            }
            tokio::select! {
                a = listener.accept() => match a {
                    Ok((s, peer)) => {
                        if !connection_manager::admit(&shared) {
                            drop(s);
                            continue;
                        }
                        conn_id += 1;
                        tokio::task::spawn_local(connection_manager::serve_connection(
                            current.clone(),
                            s,
                            peer,
                            shutdown.clone(),
                            conn_id,
                        ));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
                r = sd.changed() => {
                    if r.is_err() {
                        break;
                    }
                }
            }
        }
        drop(listener);
        let driver = current.borrow().clone();
        let deadline = tokio::time::Instant::now() + shared.config.drain_timeout;
        while driver.connections.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = driver.idle.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        driver.shutdown_plugins(Duration::from_secs(1)).await;
    });
}

/// The `wasmesh serve` command.
pub fn run_cli(
    config_path: &std::path::Path,
    wasm_dir: Option<std::path::PathBuf>,
    overrides: CliOverrides,
) -> Result<(), String> {
    let opts = crate::scenario::RunOptions {
        wasm_dir,
        echo_logs: false,
    };
    let mut config = ServeConfig::from_file(config_path, &opts)?;
    let watcher = overrides
        .watch
        .then(|| reload::Watcher::new(config_path, opts.clone(), config.clone()));
    if let Some(l) = overrides.listen {
        config.listen = config::parse_address(&l).map_err(|e| format!("--listen: {e}"))?;
    }
    if let Some(a) = overrides.admin {
        config.admin = Some(config::parse_address(&a).map_err(|e| format!("--admin: {e}"))?);
    }
    if let Some(w) = overrides.workers {
        if w == 0 {
            return Err("--workers: must be at least 1".into());
        }
        config.workers = w;
    }
    if let Some(a) = overrides.access_log {
        config.access_log = config::parse_access_log(&a);
    }
    if overrides.seed.is_some() {
        config.seed = overrides.seed;
    }
    for w in &config.warnings {
        eprintln!("wasmesh serve: warning: {w}");
    }
    let handle = Server::start_with(
        config,
        &ServeOptions {
            echo_plugin_logs: !overrides.quiet,
            ..Default::default()
        },
    )?;
    eprintln!(
        "wasmesh serve: listening on http://{} ({} worker(s), {} plugin(s)){}",
        handle.listen_addr(),
        handle.config().workers,
        handle.config().chain.plugins.len(),
        handle
            .admin_addr()
            .map(|a| format!(", admin on http://{a}"))
            .unwrap_or_default()
    );
    if watcher.is_some() {
        eprintln!(
            "wasmesh serve: watching {} and its modules",
            config_path.display()
        );
    }
    handle.wait_watching(watcher);
    eprintln!("wasmesh serve: stopped");
    Ok(())
}

/// Command-line settings that override the file.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub listen: Option<String>,
    pub admin: Option<String>,
    pub workers: Option<usize>,
    pub access_log: Option<String>,
    pub quiet: bool,
    /// `--seed`: reproducible random draws.
    pub seed: Option<u64>,
    /// Reload the chain when the file or a module changes (`--watch`).
    pub watch: bool,
}
