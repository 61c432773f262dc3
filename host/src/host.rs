//! State shared by every VM of a host, across workers: the clock, shared data
//! and queues (per `vm_id`), metrics, the log, and the names of the clusters
//! that `proxy_http_call` may target. Everything here is thread-safe so that
//! `wasmesh serve` can run one VM per worker thread, like Envoy.

use crate::types::{LogLevel, MetricKind, Status};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The host's clock: virtual (tests control it) or real.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Nanoseconds since the epoch, advanced by the scenario runner.
    Virtual(Arc<AtomicI64>),
    /// The system clock.
    Real,
}

impl Clock {
    /// A virtual clock starting at `unix_seconds`.
    pub fn virtual_at(unix_seconds: i64) -> Clock {
        Clock::Virtual(Arc::new(AtomicI64::new(
            unix_seconds.saturating_mul(1_000_000_000),
        )))
    }
    /// Wall-clock time, ns since the Unix epoch.
    pub fn now_ns(&self) -> i64 {
        match self {
            Clock::Virtual(t) => t.load(Ordering::SeqCst),
            Clock::Real => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0),
        }
    }
    /// Monotonic time, ns (for a virtual clock the same as `now_ns`).
    pub fn monotonic_ns(&self) -> i64 {
        match self {
            Clock::Virtual(t) => t.load(Ordering::SeqCst),
            Clock::Real => {
                static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
                START
                    .get_or_init(std::time::Instant::now)
                    .elapsed()
                    .as_nanos() as i64
            }
        }
    }
    /// Moves a virtual clock to `ns` (never backwards). No effect on a real clock.
    pub fn set_ns(&self, ns: i64) {
        if let Clock::Virtual(t) = self {
            t.fetch_max(ns, Ordering::SeqCst);
        }
    }
}

/// One log line emitted by a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub seq: u64,
    pub level: LogLevel,
    /// Name of the plugin whose context logged (empty for VM-level output).
    pub plugin: String,
    pub message: String,
}

/// A metric as the host keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    /// Counter or gauge value.
    pub value: i64,
    /// Histogram: number of samples.
    pub count: u64,
    /// Histogram: sum of samples.
    pub sum: u64,
    /// Histogram: samples per bucket of [`HISTOGRAM_BUCKETS`] (last = overflow).
    pub buckets: Vec<u64>,
}

/// Envoy's default histogram bucket bounds.
pub const HISTOGRAM_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Undelivered `proxy_on_queue_ready` notifications the host keeps at most
/// (see [`HostShared::enqueue`]).
pub const MAX_PENDING_QUEUE_NOTIFICATIONS: usize = 4096;

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Vec<u8>>,
    /// (VM instance id, context id) to notify with `proxy_on_queue_ready`.
    owner: Option<(u64, u32)>,
}

#[derive(Debug, Default)]
struct Queues {
    by_name: HashMap<(String, Vec<u8>), u32>,
    queues: HashMap<u32, Queue>,
    next: u32,
}

/// A queue-ready notification for a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueReady {
    pub vm_instance: u64,
    pub context_id: u32,
    pub queue_id: u32,
}

/// Shared data per vm_id: key -> (value, CAS token).
type SharedData = HashMap<String, HashMap<Vec<u8>, (Vec<u8>, u32)>>;
/// Metric name and kind -> index into the metric list.
type MetricIndex = HashMap<(String, MetricKind), usize>;

/// Host-wide shared state.
#[derive(Debug)]
pub struct HostShared {
    pub clock: Clock,
    /// Level below which plugin log lines are dropped (and what
    /// `proxy_get_log_level` returns).
    pub log_level: LogLevel,
    /// Echo log lines to stderr as they happen.
    pub echo_logs: bool,
    clusters: Mutex<HashSet<String>>,
    shared_data: Mutex<SharedData>,
    next_cas: AtomicU32,
    queues: Mutex<Queues>,
    notifications: Mutex<Vec<QueueReady>>,
    /// Number of queued notifications (checked without taking the lock).
    pending_notifications: std::sync::atomic::AtomicUsize,
    metrics: Mutex<(MetricIndex, Vec<Metric>)>,
    logs: Mutex<(VecDeque<LogLine>, u64)>,
    next_vm_instance: AtomicU64,
    properties: std::sync::RwLock<crate::properties::PropertyMap>,
    /// What the foreign function `verify_signature` does
    /// ([`crate::abi::foreign::VerifySignatureMode`]).
    verify_signature: std::sync::atomic::AtomicU8,
    /// Seed of every random source of this host's VMs and workers (see
    /// [`HostShared::set_seed`]).
    seed: AtomicU64,
}

/// Most log lines kept in memory (oldest dropped first).
pub const MAX_LOG_LINES: usize = 100_000;

impl HostShared {
    pub fn new(clock: Clock, log_level: LogLevel) -> Arc<HostShared> {
        Arc::new(HostShared {
            clock,
            log_level,
            echo_logs: false,
            clusters: Mutex::new(HashSet::new()),
            shared_data: Mutex::new(HashMap::new()),
            next_cas: AtomicU32::new(1),
            queues: Mutex::new(Queues {
                next: 1,
                ..Default::default()
            }),
            notifications: Mutex::new(Vec::new()),
            pending_notifications: std::sync::atomic::AtomicUsize::new(0),
            metrics: Mutex::new((HashMap::new(), Vec::new())),
            logs: Mutex::new((VecDeque::new(), 0)),
            next_vm_instance: AtomicU64::new(1),
            properties: std::sync::RwLock::new(Default::default()),
            verify_signature: std::sync::atomic::AtomicU8::new(0),
            seed: AtomicU64::new(0),
        })
    }

    /// The seed of the random sources: `proxy_get_random`-style draws of the
    /// VMs created from now on and the workers' weighted route picks derive
    /// from it (and from the VM id / worker number), so a run with the same
    /// seed and the same inputs draws the same numbers. 0 unless set, so
    /// that every run of a test is the same; scenarios set it (`seed:`,
    /// default [`crate::scenario::DEFAULT_SEED`]), `wasmesh serve`
    /// sets a random one unless `--seed` is given.
    pub fn seed(&self) -> u64 {
        self.seed.load(Ordering::Relaxed)
    }

    /// Sets the seed; affects VMs and workers created afterwards.
    pub fn set_seed(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
    }

    /// Like [`HostShared::new`] but printing log lines to stderr too.
    pub fn with_echo(clock: Clock, log_level: LogLevel) -> Arc<HostShared> {
        let mut h = HostShared::new(clock, log_level);
        Arc::get_mut(&mut h).expect("fresh").echo_logs = true;
        h
    }

    /// Sets what the foreign function `verify_signature` does (default:
    /// Envoy's behaviour with OpenSSL; `Off`: a host without it).
    pub fn set_verify_signature(&self, mode: crate::abi::foreign::VerifySignatureMode) {
        self.verify_signature.store(mode.to_u8(), Ordering::Relaxed);
    }

    /// What the foreign function `verify_signature` does.
    pub fn verify_signature_mode(&self) -> crate::abi::foreign::VerifySignatureMode {
        crate::abi::foreign::VerifySignatureMode::from_u8(
            self.verify_signature.load(Ordering::Relaxed),
        )
    }

    /// A fresh id for a VM instance.
    pub fn next_vm_instance(&self) -> u64 {
        self.next_vm_instance.fetch_add(1, Ordering::Relaxed)
    }

    // ---- host-level properties (node metadata and defaults) -------------

    /// Sets a host-level property (e.g. `node.metadata.NAMESPACE`), visible
    /// from root and stream contexts.
    pub fn set_property(&self, path: &str, value: crate::properties::Value) {
        self.properties
            .write()
            .expect("lock")
            .insert(path.to_string(), value);
    }

    /// A host-level property by dotted path, or the map of those below it.
    pub fn property(&self, path: &str) -> Option<crate::properties::Value> {
        let g = self.properties.read().expect("lock");
        g.get(path)
            .cloned()
            .or_else(|| crate::properties::subtree(&g, path))
    }

    // ---- clusters -------------------------------------------------------

    /// Declares a cluster that `proxy_http_call` may target.
    pub fn add_cluster(&self, name: &str) {
        self.clusters.lock().expect("lock").insert(name.to_string());
    }

    /// Whether `name` is a known cluster.
    pub fn has_cluster(&self, name: &str) -> bool {
        self.clusters.lock().expect("lock").contains(name)
    }

    // ---- logging --------------------------------------------------------

    /// Records a log line (dropped if below the host's level).
    pub fn log(&self, level: LogLevel, plugin: &str, message: &str) {
        if level < self.log_level {
            return;
        }
        let mut g = self.logs.lock().expect("lock");
        g.1 += 1;
        let line = LogLine {
            seq: g.1,
            level,
            plugin: plugin.to_string(),
            message: message.to_string(),
        };
        if self.echo_logs {
            eprintln!("[{}] wasm log {}: {}", level.name(), plugin, message);
        }
        g.0.push_back(line);
        if g.0.len() > MAX_LOG_LINES {
            g.0.pop_front();
        }
    }

    /// Sequence number of the latest log line.
    pub fn log_seq(&self) -> u64 {
        self.logs.lock().expect("lock").1
    }

    /// Log lines after sequence number `after`.
    pub fn logs_since(&self, after: u64) -> Vec<LogLine> {
        let g = self.logs.lock().expect("lock");
        g.0.iter().filter(|l| l.seq > after).cloned().collect()
    }

    // ---- shared data ----------------------------------------------------

    /// `proxy_get_shared_data`: value and CAS token.
    pub fn get_shared_data(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        let g = self.shared_data.lock().expect("lock");
        g.get(vm_id).and_then(|m| m.get(key)).cloned()
    }

    /// `proxy_set_shared_data` with Envoy's CAS rule: a non-zero `cas` must
    /// match the current token of an existing key.
    pub fn set_shared_data(&self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Status {
        let mut g = self.shared_data.lock().expect("lock");
        let map = g.entry(vm_id.to_string()).or_default();
        let next = self.next_cas();
        match map.get_mut(key) {
            Some(entry) => {
                if cas != 0 && cas != entry.1 {
                    return Status::CasMismatch;
                }
                *entry = (value.to_vec(), next);
            }
            None => {
                map.insert(key.to_vec(), (value.to_vec(), next));
            }
        }
        Status::Ok
    }

    fn next_cas(&self) -> u32 {
        loop {
            let c = self.next_cas.fetch_add(1, Ordering::Relaxed);
            if c != 0 {
                return c;
            }
        }
    }

    // ---- queues ---------------------------------------------------------

    /// `proxy_register_shared_queue`: creates or reopens a queue; the caller's
    /// (VM, root context) becomes the one notified of new items.
    pub fn register_queue(
        &self,
        vm_id: &str,
        name: &[u8],
        vm_instance: u64,
        context_id: u32,
    ) -> u32 {
        let mut g = self.queues.lock().expect("lock");
        let key = (vm_id.to_string(), name.to_vec());
        let token = match g.by_name.get(&key) {
            Some(t) => *t,
            None => {
                let t = g.next;
                g.next = g.next.wrapping_add(1).max(1);
                g.by_name.insert(key, t);
                t
            }
        };
        g.queues.entry(token).or_default().owner = Some((vm_instance, context_id));
        token
    }

    /// `proxy_resolve_shared_queue`.
    pub fn resolve_queue(&self, vm_id: &str, name: &[u8]) -> Option<u32> {
        let g = self.queues.lock().expect("lock");
        g.by_name.get(&(vm_id.to_string(), name.to_vec())).copied()
    }

    /// `proxy_enqueue_shared_queue`; notifies the owner after the current call.
    pub fn enqueue(&self, token: u32, value: &[u8]) -> Status {
        let owner = {
            let mut g = self.queues.lock().expect("lock");
            let Some(q) = g.queues.get_mut(&token) else {
                return Status::NotFound;
            };
            q.items.push_back(value.to_vec());
            q.owner
        };
        if let Some((vm_instance, context_id)) = owner {
            let mut notes = self.notifications.lock().expect("lock");
            // Envoy posts one `proxy_on_queue_ready` per enqueue. A module
            // that enqueues from its own `proxy_on_queue_ready` would make
            // that list grow geometrically (found by the hostcalls fuzz
            // target: gigabytes in seconds); beyond this many undelivered
            // notifications, further ones are dropped — the items stay in
            // the queue and the consumer still sees them on its next call.
            if notes.len() < MAX_PENDING_QUEUE_NOTIFICATIONS {
                notes.push(QueueReady {
                    vm_instance,
                    context_id,
                    queue_id: token,
                });
                self.pending_notifications.fetch_add(1, Ordering::SeqCst);
            }
        }
        Status::Ok
    }

    /// `proxy_dequeue_shared_queue`.
    pub fn dequeue(&self, token: u32) -> Result<Vec<u8>, Status> {
        let mut g = self.queues.lock().expect("lock");
        let q = g.queues.get_mut(&token).ok_or(Status::NotFound)?;
        q.items.pop_front().ok_or(Status::Empty)
    }

    /// Puts back notifications taken but not delivered (in front, so they
    /// keep their order).
    pub fn requeue_notifications(&self, notes: Vec<QueueReady>) {
        if notes.is_empty() {
            return;
        }
        let mut g = self.notifications.lock().expect("lock");
        let later = std::mem::replace(&mut *g, notes);
        g.extend(later);
        self.pending_notifications.store(g.len(), Ordering::SeqCst);
    }

    /// Takes the pending queue-ready notifications for the given VMs.
    pub fn take_notifications(&self, vm_instances: &[u64]) -> Vec<QueueReady> {
        if !self.has_notifications() {
            return Vec::new();
        }
        let mut g = self.notifications.lock().expect("lock");
        let (mine, rest): (Vec<_>, Vec<_>) = g
            .drain(..)
            .partition(|n| vm_instances.contains(&n.vm_instance));
        *g = rest;
        self.pending_notifications.store(g.len(), Ordering::SeqCst);
        mine
    }

    /// Whether any queue-ready notification waits (a cheap check).
    pub fn has_notifications(&self) -> bool {
        self.pending_notifications.load(Ordering::SeqCst) > 0
    }

    // ---- metrics --------------------------------------------------------

    /// Defines (or finds) a metric; the same name and kind is the same stat,
    /// whichever VM defines it, as in Envoy's stats scope.
    pub fn define_metric(&self, kind: MetricKind, name: &str) -> usize {
        let mut g = self.metrics.lock().expect("lock");
        if let Some(i) = g.0.get(&(name.to_string(), kind)) {
            return *i;
        }
        let i = g.1.len();
        g.1.push(Metric {
            name: name.to_string(),
            kind,
            value: 0,
            count: 0,
            sum: 0,
            buckets: if kind == MetricKind::Histogram {
                vec![0; HISTOGRAM_BUCKETS.len() + 1]
            } else {
                Vec::new()
            },
        });
        g.0.insert((name.to_string(), kind), i);
        i
    }

    /// Applies `f` to metric `index`.
    pub fn with_metric<R>(&self, index: usize, f: impl FnOnce(&mut Metric) -> R) -> Option<R> {
        let mut g = self.metrics.lock().expect("lock");
        g.1.get_mut(index).map(f)
    }

    /// A snapshot of every metric.
    pub fn metrics(&self) -> Vec<Metric> {
        self.metrics.lock().expect("lock").1.clone()
    }

    /// The metric called `name` (any kind; counters first).
    pub fn metric(&self, name: &str) -> Option<Metric> {
        let g = self.metrics.lock().expect("lock");
        [
            MetricKind::Counter,
            MetricKind::Gauge,
            MetricKind::Histogram,
        ]
        .iter()
        .find_map(|k| g.0.get(&(name.to_string(), *k)).map(|i| g.1[*i].clone()))
    }
}

/// Records a histogram sample into its buckets.
pub fn record_histogram(m: &mut Metric, value: u64) {
    m.count += 1;
    m.sum = m.sum.saturating_add(value);
    let idx = HISTOGRAM_BUCKETS
        .iter()
        .position(|b| (value as f64) <= *b)
        .unwrap_or(HISTOGRAM_BUCKETS.len());
    if let Some(b) = m.buckets.get_mut(idx) {
        *b += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_cas() {
        let h = HostShared::new(Clock::virtual_at(0), LogLevel::Info);
        assert!(h.get_shared_data("vm", b"k").is_none());
        assert_eq!(h.set_shared_data("vm", b"k", b"v1", 0), Status::Ok);
        let (v, cas) = h.get_shared_data("vm", b"k").unwrap();
        assert_eq!(v, b"v1");
        assert_eq!(
            h.set_shared_data("vm", b"k", b"v2", cas + 100),
            Status::CasMismatch
        );
        assert_eq!(h.set_shared_data("vm", b"k", b"v2", cas), Status::Ok);
        assert_eq!(
            h.set_shared_data("vm", b"k", b"v3", cas),
            Status::CasMismatch
        );
        assert!(h.get_shared_data("other", b"k").is_none());
    }

    #[test]
    fn queues() {
        let h = HostShared::new(Clock::virtual_at(0), LogLevel::Info);
        let t = h.register_queue("vm", b"q", 7, 1);
        assert_eq!(h.resolve_queue("vm", b"q"), Some(t));
        assert_eq!(h.resolve_queue("vm", b"nope"), None);
        assert_eq!(h.dequeue(t), Err(Status::Empty));
        assert_eq!(h.enqueue(t, b"a"), Status::Ok);
        assert_eq!(h.enqueue(999, b"a"), Status::NotFound);
        assert_eq!(
            h.take_notifications(&[7]),
            vec![QueueReady {
                vm_instance: 7,
                context_id: 1,
                queue_id: t
            }]
        );
        assert_eq!(h.dequeue(t), Ok(b"a".to_vec()));
        assert_eq!(h.register_queue("vm", b"q", 8, 2), t);
    }
}
