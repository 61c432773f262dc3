//! One worker thread: a [`Worker`] (the chain's VMs) driven by real
//! connections. Downstream connections (HTTP/1.1 and HTTP/2 prior
//! knowledge) feed streams into the worker; its events go to the client,
//! to upstream requests and to callouts; answers come back in. Everything
//! runs on the thread's `LocalSet`, so the worker (which is not `Send`) is
//! only touched from this thread, one call at a time.

use super::access_log::Entry;
use super::flow_control::Watermark;
use super::limits::LimitStats;
use super::upstream::{self, ChannelBody, Failure, Pool, Sender};
use super::Shared;
use crate::chain::{Callout, GrpcAnswer, StreamEvent, Worker};
use crate::headers::HeaderMap;
use crate::properties::{PropertyMap, Value};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{watch, Notify};
use tokio::task::{spawn_local, AbortHandle};

/// What the client side of a stream receives.
pub enum DownEvent {
    Headers(HeaderMap, bool),
    Data(Bytes, bool),
    Trailers(HeaderMap),
    Reset(String),
}

struct StreamRec {
    down: UnboundedSender<DownEvent>,
    up: Option<UnboundedSender<Frame<Bytes>>>,
    up_task: Option<AbortHandle>,
    done: Rc<Cell<bool>>,
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

/// The per-thread driver of a worker.
pub struct Driver {
    pub shared: Arc<Shared>,
    inner: RefCell<Inner>,
    pending_resets: RefCell<Vec<u64>>,
    timer_changed: Notify,
    pool: RefCell<Pool>,
    rr: Cell<usize>,
    rng: Cell<u64>,
    /// Callouts and upstream requests in flight (shutdown waits for them).
    pub outstanding: Cell<usize>,
    pub connections: Cell<usize>,
    pub idle: Notify,
    /// Open gRPC streams: the request-body side of each.
    grpc_streams: RefCell<crate::FastMap<StreamKey, UnboundedSender<Frame<Bytes>>>>,
}

impl Driver {
    pub fn new(worker: Worker, shared: Arc<Shared>) -> Rc<Driver> {
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
            rng: Cell::new(seed()),
            outstanding: Cell::new(0),
            connections: Cell::new(0),
            idle: Notify::new(),
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
                rec.done.set(true);
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

    fn request_timeout(&self, headers: &HeaderMap, cluster: &str) -> Option<Duration> {
        let c = &self.shared.config;
        if let Some(i) = c.route_index(headers) {
            if let Some(Some(t)) = c.route_timeouts.get(i) {
                return (!t.is_zero()).then_some(*t);
            }
        }
        c.clusters.get(cluster).and_then(|c| c.timeout)
    }

    /// Starts a stream for a client request.
    fn start_stream(
        self: &Rc<Self>,
        headers: HeaderMap,
        end_stream: bool,
        props: PropertyMap,
        down: UnboundedSender<DownEvent>,
        log: Entry,
        done: Rc<Cell<bool>>,
        (up_flow, down_flow): (Rc<Watermark>, Rc<Watermark>),
    ) -> u64 {
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

    fn set_upstream_host(&self, sid: u64, ep: SocketAddr) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            if let Some(r) = inner.streams.get_mut(&sid) {
                r.log.upstream_host = Some(ep.to_string());
            }
        }
    }

    fn add_received(&self, sid: u64, n: usize) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            if let Some(r) = inner.streams.get_mut(&sid) {
                r.log.bytes_received += n as u64;
            }
        }
    }

    /// A random UUID v4 for `x-request-id`.
    fn request_id(&self) -> String {
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
    fn pick(&self, endpoints: &[SocketAddr]) -> Option<SocketAddr> {
        if endpoints.is_empty() {
            return None;
        }
        let i = self.rr.get();
        self.rr.set(i.wrapping_add(1));
        Some(endpoints[i % endpoints.len()])
    }

    /// Fires due timers until shutdown.
    pub async fn timer_loop(self: Rc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
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

/// A seed that differs per process, thread and start.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u64(std::process::id().into());
    h.finish()
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

// ----------------------------------------------------------------------
// Downstream

/// Per-connection facts.
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub id: u64,
    pub counted: Cell<bool>,
}

/// Serves one downstream connection until it closes or the server drains.
pub async fn serve_connection(
    driver: Rc<Driver>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    id: u64,
) {
    let stats = &driver.shared.stats;
    stats.downstream_cx_total.fetch_add(1, Ordering::Relaxed);
    stats.downstream_cx_active.fetch_add(1, Ordering::Relaxed);
    driver.connections.set(driver.connections.get() + 1);
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let conn = Rc::new(ConnInfo {
        peer,
        local,
        id,
        counted: Cell::new(false),
    });
    let d = driver.clone();
    let svc = hyper::service::service_fn(move |req| {
        let d = d.clone();
        let c = conn.clone();
        async move { handle_request(d, c, req).await }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(upstream::LocalExec);
    let io = hyper_util::rt::TokioIo::new(stream);
    let c = builder.serve_connection(io, svc);
    tokio::pin!(c);
    let draining = *shutdown.borrow();
    if draining {
        c.as_mut().graceful_shutdown();
        let _ = c.await;
    } else {
        tokio::select! {
            _ = c.as_mut() => {}
            _ = shutdown.changed() => {
                c.as_mut().graceful_shutdown();
                let _ = c.await;
            }
        }
    }
    stats.downstream_cx_active.fetch_sub(1, Ordering::Relaxed);
    driver.connections.set(driver.connections.get() - 1);
    driver.idle.notify_waiters();
}

/// An error that makes hyper reset the stream (HTTP/2) or close the
/// connection (HTTP/1.1).
#[derive(Debug)]
pub struct StreamReset(pub String);

impl std::fmt::Display for StreamReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream reset: {}", self.0)
    }
}

impl std::error::Error for StreamReset {}

/// Resets the stream when the client side is dropped before it completed.
struct StreamGuard {
    driver: Rc<Driver>,
    sid: u64,
    done: Rc<Cell<bool>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.done.get() {
            self.driver
                .shared
                .stats
                .downstream_rq_rx_reset
                .fetch_add(1, Ordering::Relaxed);
            self.driver.reset_stream(self.sid);
        }
    }
}

/// The response body sent to the client: the chain's downstream events.
pub struct DownBody {
    rx: UnboundedReceiver<DownEvent>,
    end: bool,
    flow: Rc<Watermark>,
    _guard: Rc<StreamGuard>,
}

impl Body for DownBody {
    type Data = Bytes;
    type Error = StreamReset;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamReset>>> {
        loop {
            if self.end {
                return Poll::Ready(None);
            }
            let ev = match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.end = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(e)) => e,
            };
            match ev {
                DownEvent::Data(b, eos) => {
                    self.flow.sub(b.len());
                    if eos {
                        self.end = true;
                    }
                    if b.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                DownEvent::Trailers(t) => {
                    self.end = true;
                    return Poll::Ready(Some(Ok(Frame::trailers(upstream::to_http_headers(&t)))));
                }
                DownEvent::Reset(r) => {
                    self.end = true;
                    return Poll::Ready(Some(Err(StreamReset(r))));
                }
                DownEvent::Headers(..) => continue,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end
    }
}

fn protocol_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

async fn handle_request(
    driver: Rc<Driver>,
    conn: Rc<ConnInfo>,
    req: http::Request<Incoming>,
) -> Result<http::Response<DownBody>, StreamReset> {
    let (parts, body) = req.into_parts();
    let h2 = parts.version == http::Version::HTTP_2;
    let stats = &driver.shared.stats;
    if h2 {
        stats
            .downstream_rq_http2_total
            .fetch_add(1, Ordering::Relaxed);
    } else {
        stats
            .downstream_rq_http1_total
            .fetch_add(1, Ordering::Relaxed);
    }
    if !conn.counted.replace(true) {
        if h2 {
            stats
                .downstream_cx_http2_total
                .fetch_add(1, Ordering::Relaxed);
        } else {
            stats
                .downstream_cx_http1_total
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    let protocol = protocol_name(parts.version);
    let mut headers = HeaderMap::new();
    headers.add(b":method", parts.method.as_str().as_bytes());
    headers.add(b":scheme", b"http");
    let authority = if h2 {
        parts.uri.authority().map(|a| a.as_str().to_string())
    } else {
        parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(a) = &authority {
        headers.add(b":authority", a.as_bytes());
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    headers.add(b":path", path.as_bytes());
    for (k, v) in parts.headers.iter() {
        let name = k.as_str().as_bytes();
        if name == b"host" || upstream::is_hop_by_hop(name) {
            continue;
        }
        if name == b"te" && v.as_bytes() != b"trailers" {
            continue;
        }
        headers.add(name, v.as_bytes());
    }
    if headers.get(b"x-forwarded-proto").is_none() {
        headers.add(b"x-forwarded-proto", b"http");
    }
    if headers.get(b"x-request-id").is_none() {
        // Envoy's connection manager generates a random UUID (v4).
        headers.add(b"x-request-id", driver.request_id().as_bytes());
    }
    let log = Entry {
        start: Some(SystemTime::now()),
        method: parts.method.as_str().to_string(),
        path: path.clone(),
        protocol,
        forwarded_for: headers.get_str("x-forwarded-for"),
        user_agent: headers.get_str("user-agent"),
        request_id: headers.get_str("x-request-id"),
        authority,
        ..Default::default()
    };
    let mut props = PropertyMap::new();
    props.insert(
        "source.address".into(),
        Value::String(conn.peer.to_string()),
    );
    props.insert(
        "destination.address".into(),
        Value::String(conn.local.to_string()),
    );
    props.insert("connection.id".into(), Value::Uint(conn.id));
    props.insert(
        "request.protocol".into(),
        Value::String(protocol.to_string()),
    );
    let eos = body.is_end_stream();
    let (tx, mut rx) = unbounded_channel();
    let done = Rc::new(Cell::new(false));
    let limit = driver.shared.config.limits.buffer_limit();
    let up_flow = Rc::new(Watermark::new(limit));
    let down_flow = Rc::new(Watermark::new(limit));
    let sid = driver.start_stream(
        headers,
        eos,
        props,
        tx,
        log,
        done.clone(),
        (up_flow.clone(), down_flow.clone()),
    );
    let guard = Rc::new(StreamGuard {
        driver: driver.clone(),
        sid,
        done,
    });
    if !eos {
        let d = driver.clone();
        let g = guard.clone();
        spawn_local(async move {
            read_request_body(&d, sid, body, &up_flow, &g.done).await;
            drop(g);
        });
    }
    let first = rx.recv().await;
    let (h, end) = match first {
        Some(DownEvent::Headers(h, end)) => (h, end),
        Some(DownEvent::Reset(r)) => return Err(StreamReset(r)),
        _ => return Err(StreamReset("no response".into())),
    };
    let status = h
        .get_str(":status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .unwrap_or(http::StatusCode::BAD_GATEWAY);
    let mut resp = http::Response::new(DownBody {
        rx,
        end,
        flow: down_flow,
        _guard: guard,
    });
    *resp.status_mut() = status;
    let out = resp.headers_mut();
    for (k, v) in h.entries() {
        if k.first() == Some(&b':') || upstream::is_hop_by_hop(k) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_bytes(v),
        ) {
            out.append(n, v);
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&driver.shared.config.server_name) {
        out.insert(http::header::SERVER, v);
    }
    Ok(resp)
}

async fn read_request_body(
    driver: &Rc<Driver>,
    sid: u64,
    mut body: Incoming,
    flow: &Watermark,
    done: &Cell<bool>,
) {
    let stats = &driver.shared.stats.limits;
    loop {
        match body.frame().await {
            Some(Ok(f)) => match f.into_data() {
                Ok(data) => {
                    let eos = body.is_end_stream();
                    driver.add_received(sid, data.len());
                    driver.with(|w| w.downstream_data(sid, data.to_vec(), eos));
                    if eos {
                        return;
                    }
                    // Above the high watermark: stop reading the client
                    // until the upstream took half of it (Envoy's
                    // readDisable on the downstream connection).
                    if flow.above_high() {
                        LimitStats::inc(&stats.downstream_flow_control_paused_reading_total);
                        flow.wait_for_drain(|| done.get()).await;
                        LimitStats::inc(&stats.downstream_flow_control_resumed_reading_total);
                    }
                }
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        let t = upstream::from_http_headers(&t);
                        driver.with(|w| w.downstream_trailers(sid, t));
                    }
                    return;
                }
            },
            Some(Err(_)) => {
                driver.reset_stream(sid);
                return;
            }
            None => {
                driver.with(|w| w.downstream_data(sid, Vec::new(), true));
                return;
            }
        }
    }
}

// ----------------------------------------------------------------------
// Upstream

enum Outcome {
    Response(Box<(http::Response<Incoming>, Sender, SocketAddr)>),
    Failed(Failure),
}

/// Gets a connection and sends the request; a reused HTTP/1.1 connection
/// that turns out closed is replaced once when the request has no body.
async fn exchange(
    driver: &Rc<Driver>,
    cluster: &super::config::Cluster,
    headers: &HeaderMap,
    mut body: Option<ChannelBody>,
    h2: bool,
) -> Outcome {
    let stats = driver.shared.stats.cluster(&cluster.name);
    let Some(ep) = driver.pick(&cluster.endpoints) else {
        if let Some(s) = stats {
            s.upstream_cx_none_healthy.fetch_add(1, Ordering::Relaxed);
        }
        return Outcome::Failed(Failure::NoHealthyUpstream);
    };
    let retry_ok = body.as_ref().is_some_and(|b| b.is_end_stream());
    for attempt in 0..2 {
        let pooled = driver.pool.borrow_mut().take(ep, h2);
        let (mut sender, reused) = match pooled {
            Some(s) => (s, true),
            None => {
                if let Some(s) = stats {
                    s.upstream_cx_total.fetch_add(1, Ordering::Relaxed);
                }
                match upstream::connect(ep, h2, cluster.connect_timeout).await {
                    Ok(s) => {
                        if let (Sender::H2(h), true) = (&s, h2) {
                            driver.pool.borrow_mut().add_h2(ep, h);
                        }
                        (s, false)
                    }
                    Err(e) => {
                        if let Some(s) = stats {
                            s.upstream_cx_connect_fail.fetch_add(1, Ordering::Relaxed);
                            if e == upstream::ConnectError::Timeout {
                                s.upstream_cx_connect_timeout
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        return Outcome::Failed(match e {
                            upstream::ConnectError::Timeout => Failure::ConnectTimeout,
                            upstream::ConnectError::Failure => Failure::ConnectFailure,
                        });
                    }
                }
            }
        };
        if !upstream::ready(&mut sender).await {
            if reused && attempt == 0 {
                continue;
            }
            return Outcome::Failed(Failure::Reset);
        }
        let b = if retry_ok {
            ChannelBody::empty()
        } else {
            match body.take() {
                Some(b) => b,
                None => return Outcome::Failed(Failure::Reset),
            }
        };
        let req = match upstream::build_request(headers, h2, b) {
            Ok(r) => r,
            Err(_) => return Outcome::Failed(Failure::Reset),
        };
        match sender.send(req).await {
            Ok(resp) => return Outcome::Response(Box::new((resp, sender, ep))),
            Err(e) => {
                if reused && retry_ok && attempt == 0 && (e.is_canceled() || e.is_closed()) {
                    continue;
                }
                return Outcome::Failed(Failure::Reset);
            }
        }
    }
    Outcome::Failed(Failure::Reset)
}

async fn upstream_request(
    driver: &Rc<Driver>,
    sid: u64,
    headers: HeaderMap,
    body: ChannelBody,
    cluster_name: String,
    timeout: Option<Duration>,
    down_flow: Rc<Watermark>,
) {
    let shared = driver.shared.clone();
    let Some(cluster) = shared.config.clusters.get(&cluster_name) else {
        fail(driver, sid, Failure::NoHealthyUpstream);
        return;
    };
    let stats = shared.stats.cluster(&cluster_name);
    if let Some(s) = stats {
        s.upstream_rq_total.fetch_add(1, Ordering::Relaxed);
        s.upstream_rq_active.fetch_add(1, Ordering::Relaxed);
    }
    let _active = ActiveGuard(stats);
    let start = tokio::time::Instant::now();
    let deadline = timeout.map(|t| start + t);
    let ex = exchange(driver, cluster, &headers, Some(body), cluster.http2);
    let outcome = match deadline {
        Some(d) => match tokio::time::timeout_at(d, ex).await {
            Ok(o) => o,
            Err(_) => Outcome::Failed(Failure::Timeout),
        },
        None => ex.await,
    };
    let (resp, sender, ep) = match outcome {
        Outcome::Response(b) => *b,
        Outcome::Failed(f) => {
            if f == Failure::Timeout {
                if let Some(s) = stats {
                    s.upstream_rq_timeout.fetch_add(1, Ordering::Relaxed);
                }
            }
            fail(driver, sid, f);
            return;
        }
    };
    driver.set_upstream_host(sid, ep);
    let (parts, mut body) = resp.into_parts();
    if let Some(s) = stats {
        s.record_code(parts.status.as_u16());
    }
    let mut h = upstream::response_headers(&parts);
    h.add(
        b"x-envoy-upstream-service-time",
        start.elapsed().as_millis().to_string().as_bytes(),
    );
    let mut sender = Some(sender);
    let end = body.is_end_stream();
    if end {
        give_back(driver, ep, sender.take());
    }
    driver.with(|w| w.upstream_headers(sid, h, end));
    if end {
        return;
    }
    loop {
        let next = body.frame();
        let frame = match deadline {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(f) => f,
                Err(_) => {
                    if let Some(s) = stats {
                        s.upstream_rq_timeout.fetch_add(1, Ordering::Relaxed);
                    }
                    fail(driver, sid, Failure::Timeout);
                    return;
                }
            },
            None => next.await,
        };
        match frame {
            Some(Ok(f)) => match f.into_data() {
                Ok(data) => {
                    let eos = body.is_end_stream();
                    if eos {
                        give_back(driver, ep, sender.take());
                    }
                    driver.with(|w| w.upstream_data(sid, data.to_vec(), eos));
                    if eos {
                        return;
                    }
                    // The client is slower: stop reading the upstream until
                    // it took half of what is queued.
                    if down_flow.above_high() {
                        if let Some(s) = stats {
                            s.upstream_flow_control_paused_reading_total
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        let wait = down_flow.wait_for_drain(|| false);
                        match deadline {
                            Some(d) => {
                                if tokio::time::timeout_at(d, wait).await.is_err() {
                                    if let Some(s) = stats {
                                        s.upstream_rq_timeout.fetch_add(1, Ordering::Relaxed);
                                    }
                                    fail(driver, sid, Failure::Timeout);
                                    return;
                                }
                            }
                            None => {
                                wait.await;
                            }
                        }
                        if let Some(s) = stats {
                            s.upstream_flow_control_resumed_reading_total
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(f) => {
                    give_back(driver, ep, sender.take());
                    if let Ok(t) = f.into_trailers() {
                        let t = upstream::from_http_headers(&t);
                        driver.with(|w| w.upstream_trailers(sid, t));
                    }
                    return;
                }
            },
            Some(Err(_)) => {
                fail(driver, sid, Failure::Reset);
                return;
            }
            None => {
                give_back(driver, ep, sender.take());
                driver.with(|w| w.upstream_data(sid, Vec::new(), true));
                return;
            }
        }
    }
}

struct ActiveGuard<'a>(Option<&'a super::stats::ClusterStats>);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.upstream_rq_active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Returns a connection whose exchange is complete to the pool.
fn give_back(driver: &Rc<Driver>, ep: SocketAddr, sender: Option<Sender>) {
    if let Some(s) = sender {
        driver.pool.borrow_mut().put(ep, s);
    }
}

fn fail(driver: &Rc<Driver>, sid: u64, f: Failure) {
    let (status, body, details, flag) = f.envoy_answer();
    driver.with(|w| w.upstream_failure(sid, status, body, details, flag));
}

// ----------------------------------------------------------------------
// Callouts

async fn callout(driver: &Rc<Driver>, c: Callout) {
    match &c.call.grpc {
        Some((service, method)) => {
            if c.call.grpc_stream {
                if !service.is_empty() || !method.is_empty() {
                    grpc_stream(driver, &c, service, method).await;
                } else {
                    grpc_stream_send(driver, &c);
                }
                return;
            }
            let a = grpc_callout(driver, &c, service, method).await;
            driver.with(|w| w.deliver_grpc(&c, a));
        }
        None => {
            let a = http_callout(driver, &c).await;
            driver.with(|w| w.deliver_http(&c, a));
        }
    }
}

/// Runs one exchange for a callout and reads the whole answer.
async fn callout_exchange(
    driver: &Rc<Driver>,
    cluster_name: &str,
    headers: HeaderMap,
    body: ChannelBody,
    timeout_ms: u32,
    h2: Option<bool>,
) -> Result<Option<crate::chain::CalloutResponse>, Failure> {
    let shared = driver.shared.clone();
    let Some(cluster) = shared.config.clusters.get(cluster_name) else {
        return Err(Failure::NoHealthyUpstream);
    };
    let stats = shared.stats.cluster(cluster_name);
    if let Some(s) = stats {
        s.upstream_rq_total.fetch_add(1, Ordering::Relaxed);
        s.upstream_rq_active.fetch_add(1, Ordering::Relaxed);
    }
    let _active = ActiveGuard(stats);
    let h2 = h2.unwrap_or(cluster.http2);
    let work = async {
        let (resp, sender, ep) = match exchange(driver, cluster, &headers, Some(body), h2).await {
            Outcome::Response(b) => *b,
            Outcome::Failed(f) => return Err(f),
        };
        let (parts, body) = resp.into_parts();
        if let Some(s) = stats {
            s.record_code(parts.status.as_u16());
        }
        let h = upstream::response_headers(&parts);
        match body.collect().await {
            Ok(c) => {
                let trailers = c.trailers().map(upstream::from_http_headers);
                let data = c.to_bytes().to_vec();
                give_back(driver, ep, Some(sender));
                Ok(Some(crate::chain::CalloutResponse {
                    headers: h,
                    body: data,
                    trailers: trailers.unwrap_or_default(),
                }))
            }
            // Reset after the response started: Envoy's onFailure.
            Err(_) => Ok(None),
        }
    };
    if timeout_ms == 0 {
        return work.await;
    }
    match tokio::time::timeout(Duration::from_millis(u64::from(timeout_ms)), work).await {
        Ok(r) => r,
        Err(_) => {
            if let Some(s) = stats {
                s.upstream_rq_timeout.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Timeout)
        }
    }
}

async fn http_callout(driver: &Rc<Driver>, c: &Callout) -> Option<crate::chain::CalloutResponse> {
    let headers = HeaderMap::from_pairs(c.call.headers.iter().map(|(k, v)| (k, v)));
    let trailers = if c.call.trailers.is_empty() {
        None
    } else {
        Some(upstream::to_http_headers(&HeaderMap::from_pairs(
            c.call.trailers.iter().map(|(k, v)| (k, v)),
        )))
    };
    let body = ChannelBody::full(c.call.body.clone(), trailers);
    match callout_exchange(
        driver,
        &c.call.cluster,
        headers,
        body,
        c.call.timeout_ms,
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(f) => Some(f.callout_answer()),
    }
}

async fn grpc_callout(driver: &Rc<Driver>, c: &Callout, service: &str, method: &str) -> GrpcAnswer {
    let mut headers = HeaderMap::new();
    headers.add(b":method", b"POST");
    headers.add(b":scheme", b"http");
    headers.add(b":authority", c.call.cluster.as_bytes());
    headers.add(b":path", format!("/{service}/{method}").as_bytes());
    headers.add(b"content-type", b"application/grpc");
    headers.add(b"te", b"trailers");
    if c.call.timeout_ms > 0 {
        headers.add(
            b"grpc-timeout",
            format!("{}m", c.call.timeout_ms).as_bytes(),
        );
    }
    for (k, v) in &c.call.headers {
        if k.first() != Some(&b':') {
            headers.add(k, v);
        }
    }
    let mut framed = Vec::with_capacity(5 + c.call.body.len());
    framed.push(0);
    framed.extend_from_slice(&(c.call.body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&c.call.body);
    let body = ChannelBody::full(framed, None);
    let failed = |f: Failure| GrpcAnswer {
        status: f.grpc_status(),
        status_message: f.envoy_answer().1.to_string(),
        close: true,
        ..Default::default()
    };
    let r = callout_exchange(
        driver,
        &c.call.cluster,
        headers,
        body,
        c.call.timeout_ms,
        Some(true),
    )
    .await;
    let r = match r {
        Ok(Some(r)) => r,
        Ok(None) => return failed(Failure::Reset),
        Err(f) => return failed(f),
    };
    let http_status: u32 = r
        .headers
        .get_str(":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let source = if r.trailers.get(b"grpc-status").is_some() {
        &r.trailers
    } else {
        &r.headers
    };
    let status = match source.get_str("grpc-status").and_then(|s| s.parse().ok()) {
        Some(s) => s,
        None if http_status != 200 => crate::chain::http_to_grpc_status(http_status),
        None => 2,
    };
    let status_message = source
        .get_str("grpc-message")
        .map(|m| percent_decode(&m))
        .unwrap_or_default();
    let message = (r.body.len() >= 5).then(|| {
        let n = u32::from_be_bytes([r.body[1], r.body[2], r.body[3], r.body[4]]) as usize;
        r.body[5..(5 + n).min(r.body.len())].to_vec()
    });
    let mut initial = HeaderMap::new();
    for (k, v) in r.headers.entries() {
        if k.first() != Some(&b':') {
            initial.add(k, v);
        }
    }
    GrpcAnswer {
        initial_metadata: Some(initial),
        message,
        trailing_metadata: Some(r.trailers.clone()),
        status,
        status_message,
        close: true,
    }
}

fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + msg.len());
    framed.push(0);
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(msg);
    Bytes::from(framed)
}

/// A gRPC stream across VM reloads: (VM, generation, token).
type StreamKey = (usize, u64, u32);

fn stream_key(c: &Callout) -> StreamKey {
    (c.id.vm, c.id.generation, c.id.token)
}

/// `proxy_grpc_send` on an open stream: one framed message; `end_stream`
/// closes the request side.
fn grpc_stream_send(driver: &Rc<Driver>, c: &Callout) {
    let key = stream_key(c);
    let end = c.call.trailers.iter().any(|(k, _)| k == b"end_stream");
    let mut streams = driver.grpc_streams.borrow_mut();
    if let Some(tx) = streams.get(&key) {
        let _ = tx.send(Frame::data(grpc_frame(&c.call.body)));
    }
    if end {
        streams.remove(&key);
    }
}

/// A gRPC stream (`proxy_grpc_stream`) to an HTTP/2 cluster: messages the
/// module sends go up as they come; initial metadata, each message,
/// trailing metadata and the close are delivered as they arrive.
async fn grpc_stream(driver: &Rc<Driver>, c: &Callout, service: &str, method: &str) {
    let key = stream_key(c);
    let close = |status: u32, message: &str| GrpcAnswer {
        status,
        status_message: message.to_string(),
        close: true,
        ..Default::default()
    };
    let shared = driver.shared.clone();
    let Some(cluster) = shared.config.clusters.get(&c.call.cluster) else {
        let a = close(14, Failure::NoHealthyUpstream.envoy_answer().1);
        driver.with(|w| w.deliver_grpc(c, a));
        return;
    };
    let mut headers = HeaderMap::new();
    headers.add(b":method", b"POST");
    headers.add(b":scheme", b"http");
    headers.add(b":authority", c.call.cluster.as_bytes());
    headers.add(b":path", format!("/{service}/{method}").as_bytes());
    headers.add(b"content-type", b"application/grpc");
    headers.add(b"te", b"trailers");
    for (k, v) in &c.call.headers {
        if k.first() != Some(&b':') {
            headers.add(k, v);
        }
    }
    let (tx, rx) = unbounded_channel();
    driver.grpc_streams.borrow_mut().insert(key, tx);
    if let Some(s) = shared.stats.cluster(&cluster.name) {
        s.upstream_rq_total.fetch_add(1, Ordering::Relaxed);
    }
    let outcome = exchange(driver, cluster, &headers, Some(ChannelBody::new(rx)), true).await;
    let (resp, sender, ep) = match outcome {
        Outcome::Response(b) => *b,
        Outcome::Failed(f) => {
            driver.grpc_streams.borrow_mut().remove(&key);
            let a = close(f.grpc_status(), f.envoy_answer().1);
            driver.with(|w| w.deliver_grpc(c, a));
            return;
        }
    };
    let (parts, mut body) = resp.into_parts();
    let mut initial = HeaderMap::new();
    for (k, v) in parts.headers.iter() {
        initial.add(k.as_str().as_bytes(), v.as_bytes());
    }
    let trailers_only = initial.get(b"grpc-status").is_some();
    if !trailers_only {
        let a = GrpcAnswer {
            initial_metadata: Some(initial.clone()),
            ..Default::default()
        };
        driver.with(|w| w.deliver_grpc(c, a));
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut trailing = if trailers_only { Some(initial) } else { None };
    while trailing.is_none() {
        match body.frame().await {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => {
                    buf.extend_from_slice(&d);
                    while buf.len() >= 5 {
                        let n = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                        if buf.len() < 5 + n {
                            break;
                        }
                        let msg = buf[5..5 + n].to_vec();
                        buf.drain(..5 + n);
                        let a = GrpcAnswer {
                            message: Some(msg),
                            ..Default::default()
                        };
                        driver.with(|w| w.deliver_grpc(c, a));
                    }
                }
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        trailing = Some(upstream::from_http_headers(&t));
                    }
                }
            },
            Some(Err(_)) | None => break,
        }
    }
    driver.grpc_streams.borrow_mut().remove(&key);
    give_back(driver, ep, Some(sender));
    let a = match trailing {
        Some(t) => {
            let status = t
                .get_str("grpc-status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(2);
            let message = t
                .get_str("grpc-message")
                .map(|m| percent_decode(&m))
                .unwrap_or_default();
            GrpcAnswer {
                trailing_metadata: Some(t),
                status,
                status_message: message,
                close: true,
                ..Default::default()
            }
        }
        None => close(
            14,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        ),
    };
    driver.with(|w| w.deliver_grpc(c, a));
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
