//! One worker thread: a [`Worker`] (the chain's VMs) driven by real
//! connections. Downstream connections (HTTP/1.1 and HTTP/2 prior
//! knowledge) feed streams into the worker; its events go to the client,
//! to upstream requests and to callouts; answers come back in. Everything
//! runs on the thread's `LocalSet`, so the worker (which is not `Send`) is
//! only touched from this thread, one call at a time.

use super::access_log::Entry;
use super::callout::{callout, StreamKey};
use super::flow_control::Watermark;
use super::limits::LimitStats;
use super::router::upstream_request;
use super::upstream::{self, ChannelBody, Pool};
use super::Shared;
use crate::chain::{StreamEvent, Worker};
use crate::headers::HeaderMap;
use crate::properties::PropertyMap;
use bytes::Bytes;
use http_body::Frame;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::{watch, Notify};
use tokio::task::{spawn_local, AbortHandle};

/// What the client side of a stream receives.
pub enum DownEvent {
    Headers(HeaderMap, bool),
    Data(Bytes, bool),
    Trailers(HeaderMap),
    Reset(String),
}

/// Set when a stream completed (its response went out, or it was reset).
#[derive(Debug, Default)]
pub struct StreamDone {
    flag: Cell<bool>,
    notify: Notify,
}

impl StreamDone {
    pub fn get(&self) -> bool {
        self.flag.get()
    }

    pub fn set(&self) {
        self.flag.set(true);
        self.notify.notify_waiters();
    }

    /// Returns once the stream completed.
    pub async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            if self.flag.get() {
                return;
            }
            n.await;
        }
    }
}

/// The client side of a new stream, as the driver keeps it.
pub struct StreamEnds {
    /// Where the response goes.
    pub down: UnboundedSender<DownEvent>,
    pub done: Rc<StreamDone>,
    /// Request body queued for the upstream.
    pub up_flow: Rc<Watermark>,
    /// Response body queued for the client.
    pub down_flow: Rc<Watermark>,
}

struct StreamRec {
    down: UnboundedSender<DownEvent>,
    up: Option<UnboundedSender<Frame<Bytes>>>,
    up_task: Option<AbortHandle>,
    done: Rc<StreamDone>,
    log: Entry,
    started: Instant,
    reset: bool,
    /// Request body handed to the upstream request, not yet sent.
    up_flow: Rc<Watermark>,
    /// Response body handed to the client, not yet sent.
    down_flow: Rc<Watermark>,
}

struct Inner {
    worker: Worker,
    streams: crate::FastMap<u64, StreamRec>,
    timer_due: Option<i64>,
}

/// The driver new streams of a worker thread go to (replaced on reload).
pub type CurrentDriver = Rc<RefCell<Rc<Driver>>>;

/// The per-thread driver of a worker.
pub struct Driver {
    pub shared: Arc<Shared>,
    inner: RefCell<Inner>,
    pending_resets: RefCell<Vec<u64>>,
    timer_changed: Notify,
    pub(super) pool: RefCell<Pool>,
    pub(super) rr: Cell<usize>,
    rng: Cell<u64>,
    /// Callouts and upstream requests in flight (shutdown waits for them).
    pub outstanding: Cell<usize>,
    /// Downstream connections of this worker thread (shared by the
    /// drivers of successive chains after a reload).
    pub connections: Rc<Cell<usize>>,
    pub idle: Rc<Notify>,
    /// Replaced by a reloaded chain: no new stream comes here; its timers
    /// stop once its plugins were shut down.
    pub retired: Cell<bool>,
    /// Open gRPC streams: the request-body side of each.
    pub(super) grpc_streams: RefCell<crate::FastMap<StreamKey, UnboundedSender<Frame<Bytes>>>>,
}

impl Driver {
    pub fn new(worker: Worker, shared: Arc<Shared>) -> Rc<Driver> {
        // The host's seed (`wasmesh serve --seed`; random otherwise), per worker.
        let seed = shared.host.seed()
            ^ 0x2545_f491_4f6c_dd1d
            ^ (worker.id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Rc::new(Driver {
            shared,
            inner: RefCell::new(Inner {
                worker,
                streams: Default::default(),
                timer_due: None,
            }),
            pending_resets: RefCell::new(Vec::new()),
            timer_changed: Notify::new(),
            pool: RefCell::new(Pool::default()),
            rr: Cell::new(0),
            rng: Cell::new(seed),
            outstanding: Cell::new(0),
            connections: Rc::new(Cell::new(0)),
            idle: Rc::new(Notify::new()),
            retired: Cell::new(false),
            grpc_streams: RefCell::new(Default::default()),
        })
    }

    /// Runs `f` on the worker, then dispatches what it produced.
    pub fn with<R>(self: &Rc<Self>, f: impl FnOnce(&mut Worker) -> R) -> R {
        let mut inner = self.inner.borrow_mut();
        let resets = std::mem::take(&mut *self.pending_resets.borrow_mut());
        for sid in resets {
            inner.worker.downstream_reset(sid);
        }
        let r = f(&mut inner.worker);
        self.pump(&mut inner);
        r
    }

    /// The client went away: reset the stream (now, or at the next call if
    /// the worker is busy).
    pub fn reset_stream(self: &Rc<Self>, sid: u64) {
        if self.inner.try_borrow_mut().is_ok() {
            self.with(|w| w.downstream_reset(sid));
        } else {
            self.pending_resets.borrow_mut().push(sid);
        }
    }

    fn pump(self: &Rc<Self>, inner: &mut Inner) {
        for c in inner.worker.take_callouts() {
            let d = self.clone();
            let busy = Outstanding::new(self);
            spawn_local(async move {
                let _busy = busy;
                callout(&d, c).await;
            });
        }
        for sid in inner.worker.take_dirty() {
            let info = if inner.worker.is_active(sid) {
                None
            } else {
                inner.worker.stream_info(sid)
            };
            let events = inner.worker.take_events(sid);
            for e in events {
                self.on_event(inner, sid, e, info.as_ref());
            }
        }
        let due = inner.worker.next_timer_ns();
        if due != inner.timer_due {
            inner.timer_due = due;
            self.timer_changed.notify_one();
        }
    }

    fn on_event(
        self: &Rc<Self>,
        inner: &mut Inner,
        sid: u64,
        e: StreamEvent,
        info: Option<&crate::chain::StreamInfo>,
    ) {
        let Some(rec) = inner.streams.get_mut(&sid) else {
            return;
        };
        match e {
            StreamEvent::UpstreamHeaders {
                headers,
                end_stream,
                cluster,
            } => {
                rec.log.upstream_cluster = Some(cluster.clone());
                if rec.log.request_id.is_none() {
                    rec.log.request_id = headers.get_str("x-request-id");
                }
                let timeout = self.request_timeout(&headers, &cluster);
                let body = if end_stream {
                    ChannelBody::empty()
                } else {
                    let (tx, rx) = unbounded_channel();
                    rec.up = Some(tx);
                    ChannelBody::new(rx).with_flow(rec.up_flow.clone())
                };
                let d = self.clone();
                let busy = Outstanding::new(self);
                let down = rec.down_flow.clone();
                let h = spawn_local(async move {
                    let _busy = busy;
                    upstream_request(&d, sid, headers, body, cluster, timeout, down).await;
                });
                rec.up_task = Some(h.abort_handle());
            }
            StreamEvent::UpstreamData { data, end_stream } => {
                if let Some(tx) = &rec.up {
                    if !data.is_empty() {
                        rec.up_flow.add(data.len());
                        let _ = tx.send(Frame::data(Bytes::from(data)));
                    }
                }
                if end_stream {
                    rec.up = None;
                }
            }
            StreamEvent::UpstreamTrailers(t) => {
                if let Some(tx) = rec.up.take() {
                    let _ = tx.send(Frame::trailers(upstream::to_http_headers(&t)));
                }
            }
            StreamEvent::DownstreamHeaders {
                headers,
                end_stream,
            } => {
                rec.log.status = headers
                    .get_str(":status")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                rec.log.upstream_service_time = headers.get_str("x-envoy-upstream-service-time");
                let _ = rec.down.send(DownEvent::Headers(headers, end_stream));
            }
            StreamEvent::DownstreamData { data, end_stream } => {
                rec.log.bytes_sent += data.len() as u64;
                rec.down_flow.add(data.len());
                let _ = rec
                    .down
                    .send(DownEvent::Data(Bytes::from(data), end_stream));
            }
            StreamEvent::DownstreamTrailers(t) => {
                let _ = rec.down.send(DownEvent::Trailers(t));
            }
            StreamEvent::Reset(reason) => {
                rec.reset = true;
                let _ = rec.down.send(DownEvent::Reset(reason));
            }
            StreamEvent::Complete => {
                let Some(mut rec) = inner.streams.remove(&sid) else {
                    return;
                };
                rec.done.set();
                if let Some(h) = rec.up_task.take() {
                    h.abort();
                }
                rec.up_flow.close();
                rec.down_flow.close();
                self.complete(rec, info);
            }
        }
    }

    fn complete(&self, mut rec: StreamRec, info: Option<&crate::chain::StreamInfo>) {
        let stats = &self.shared.stats;
        stats.downstream_rq_active.fetch_sub(1, Ordering::Relaxed);
        match info.and_then(|i| i.code_details.as_deref()) {
            Some("request_payload_too_large") => {
                LimitStats::inc(&stats.limits.downstream_rq_too_large)
            }
            Some("response_payload_too_large") => LimitStats::inc(&stats.limits.rs_too_large),
            _ => {}
        }
        if rec.reset && rec.log.status == 0 {
            stats.downstream_rq_tx_reset.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.record_downstream_code(rec.log.status);
        }
        let mut flags = 0;
        if let Some(i) = info {
            rec.log.local_reply_by = i.local_reply_by.clone();
            rec.log.details = i.code_details.clone();
            if i.upstream_cluster.is_some() {
                rec.log.upstream_cluster = i.upstream_cluster.clone();
            }
            flags = i.response_flags;
            if i.code_details.as_deref() == Some("wasm_fail_stream") {
                stats.wasm_failed_streams.fetch_add(1, Ordering::Relaxed);
            }
        }
        rec.log.flags = upstream::response_flags_string(flags);
        rec.log.duration_ms = rec.started.elapsed().as_millis() as u64;
        if self.shared.access_log.enabled() {
            self.shared.access_log.write(&rec.log);
        }
    }

    pub(super) fn request_timeout(&self, headers: &HeaderMap, cluster: &str) -> Option<Duration> {
        let c = &self.shared.config;
        if let Some(i) = c.route_index(headers) {
            if let Some(Some(t)) = c.route_timeouts.get(i) {
                return (!t.is_zero()).then_some(*t);
            }
        }
        c.clusters.get(cluster).and_then(|c| c.timeout)
    }

    /// Starts a stream for a client request.
    pub(super) fn start_stream(
        self: &Rc<Self>,
        headers: HeaderMap,
        end_stream: bool,
        props: PropertyMap,
        log: Entry,
        ends: StreamEnds,
    ) -> u64 {
        let StreamEnds {
            down,
            done,
            up_flow,
            down_flow,
        } = ends;
        let stats = &self.shared.stats;
        stats.downstream_rq_total.fetch_add(1, Ordering::Relaxed);
        stats.downstream_rq_active.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.borrow_mut();
        let resets = std::mem::take(&mut *self.pending_resets.borrow_mut());
        for sid in resets {
            inner.worker.downstream_reset(sid);
        }
        // Register the stream before the chain runs: its events are
        // dispatched by the pump below.
        let sid = inner.worker.start_stream(headers, end_stream, props);
        inner.streams.insert(
            sid,
            StreamRec {
                down,
                up: None,
                up_task: None,
                done,
                log,
                started: Instant::now(),
                reset: false,
                up_flow,
                down_flow,
            },
        );
        self.pump(&mut inner);
        sid
    }

    pub(super) fn set_upstream_host(&self, sid: u64, ep: SocketAddr) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            if let Some(r) = inner.streams.get_mut(&sid) {
                r.log.upstream_host = Some(ep.to_string());
            }
        }
    }

    pub(super) fn add_received(&self, sid: u64, n: usize) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            if let Some(r) = inner.streams.get_mut(&sid) {
                r.log.bytes_received += n as u64;
            }
        }
    }

    /// A random UUID v4 for `x-request-id`.
    pub(super) fn request_id(&self) -> String {
        let next = || {
            // wyrand
            let s = self.rng.get().wrapping_add(0xa076_1d64_78bd_642f);
            self.rng.set(s);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            ((t >> 64) as u64) ^ (t as u64)
        };
        let (a, b) = (next(), next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            a as u16 & 0xfff,
            (b >> 48) as u16 & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// Round-robin endpoint of a cluster.
    pub(super) fn pick(&self, endpoints: &[SocketAddr]) -> Option<SocketAddr> {
        if endpoints.is_empty() {
            return None;
        }
        let i = self.rr.get();
        self.rr.set(i.wrapping_add(1));
        Some(endpoints[i % endpoints.len()])
    }

    /// The driver of a reloaded chain on the same thread: it shares the
    /// thread's connection count.
    pub fn successor(self: &Rc<Self>, worker: Worker) -> Rc<Driver> {
        let d = Driver::new(worker, self.shared.clone());
        let mut n =
            Rc::try_unwrap(d).unwrap_or_else(|_| unreachable!("a new driver is not shared"));
        n.connections = self.connections.clone();
        n.idle = self.idle.clone();
        Rc::new(n)
    }

    /// Streams in flight on this driver's chain.
    pub fn active_streams(&self) -> usize {
        self.inner.borrow().streams.len()
    }

    /// Fires due timers until shutdown (or until the driver was retired).
    pub async fn timer_loop(self: Rc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if self.retired.get() {
                return;
            }
            let due = self.inner.borrow().worker.next_timer_ns();
            let now = self.shared.host.clock.now_ns();
            match due {
                Some(t) if t <= now => {
                    self.with(|w| w.fire_timers());
                    tokio::task::yield_now().await;
                    continue;
                }
                Some(t) => {
                    let wait = Duration::from_nanos((t - now) as u64);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.timer_changed.notified() => {}
                        _ = shutdown.changed() => return,
                    }
                }
                None => {
                    tokio::select! {
                        _ = self.timer_changed.notified() => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    /// A reload replaced this chain: once its last stream and callout
    /// finished, its plugins are shut down and its timers stop.
    pub async fn retire(self: Rc<Self>) {
        while self.active_streams() > 0 || self.outstanding.get() > 0 {
            tokio::select! {
                _ = self.idle.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        self.shutdown_plugins(Duration::from_secs(1)).await;
        self.retired.set(true);
        self.timer_changed.notify_one();
    }

    /// Plugin shutdown, then a short wait for callouts it started.
    pub async fn shutdown_plugins(self: &Rc<Self>, wait: Duration) {
        self.with(|w| w.shutdown());
        let deadline = tokio::time::Instant::now() + wait;
        while self.outstanding.get() > 0 {
            tokio::select! {
                _ = self.idle.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
}

/// Counts a callout or upstream request in flight until dropped (also
/// when its task is aborted).
struct Outstanding(Rc<Driver>);

impl Outstanding {
    fn new(d: &Rc<Driver>) -> Outstanding {
        d.outstanding.set(d.outstanding.get() + 1);
        Outstanding(d.clone())
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.set(self.0.outstanding.get() - 1);
        self.0.idle.notify_waiters();
    }
}
