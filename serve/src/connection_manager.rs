//! The HTTP connection manager: downstream connections (HTTP/1.1 and
//! HTTP/2 prior knowledge) and their streams, with Envoy's limits —
//! codec limits (`max_request_headers_kb`, `max_headers_count`,
//! `max_concurrent_streams`), connection timers (`idle_timeout`,
//! `max_connection_duration`, `request_headers_timeout`), stream timers
//! (`request_timeout`, `stream_idle_timeout`), the premature-reset limit
//! against HTTP/2 rapid reset (CVE-2023-44487) and the overload manager's
//! global connection limit. Each stream feeds the worker through the
//! [`Driver`]; its body flows through [`Watermark`] buffers.

use super::access_log::Entry;
use super::driver::{CurrentDriver, DownEvent, Driver, StreamDone, StreamEnds};
use super::flow_control::Watermark;
use super::limits::LimitStats;
use super::upstream;
use super::Shared;
use crate::headers::HeaderMap;
use crate::properties::{PropertyMap, Value};
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::cell::Cell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::{watch, Notify};
use tokio::task::{spawn_local, AbortHandle};

/// Envoy's `StreamIdleTimeout` response flag (`SI`).
pub const STREAM_IDLE_TIMEOUT_FLAG: u64 = 0x10000;

/// The overload manager's global downstream connection limit: counts an
/// accepted connection, or refuses it (the caller closes it) when
/// `max_downstream_connections` are open (`downstream_global_cx_overflow`).
pub fn admit(shared: &Shared) -> bool {
    let stats = &shared.stats;
    if let Some(max) = shared.config.limits.max_downstream_connections {
        let active = stats.downstream_cx_active.fetch_add(1, Ordering::Relaxed);
        if active < 0 || active as u64 >= max {
            stats.downstream_cx_active.fetch_sub(1, Ordering::Relaxed);
            LimitStats::inc(&stats.limits.downstream_global_cx_overflow);
            return false;
        }
    } else {
        stats.downstream_cx_active.fetch_add(1, Ordering::Relaxed);
    }
    stats.downstream_cx_total.fetch_add(1, Ordering::Relaxed);
    true
}

/// Per-connection state.
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub id: u64,
    pub counted: Cell<bool>,
    /// Streams open on this connection.
    active: Cell<usize>,
    /// A stream started or ended (the idle timer restarts).
    activity: Notify,
    /// Streams closed, and those the client reset before
    /// `premature_reset_min_stream_lifetime` (Envoy's premature resets).
    closed: Cell<u64>,
    premature: Cell<u64>,
    /// Close the connection now (too many premature resets).
    abort: Notify,
}

/// Serves one downstream connection (already counted by [`admit`]) until
/// it closes, a connection timer drains it, or the server drains.
pub async fn serve_connection(
    current: CurrentDriver,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    id: u64,
) {
    let driver = current.borrow().clone();
    let stats = &driver.shared.stats;
    let limits = &driver.shared.config.limits;
    driver.connections.set(driver.connections.get() + 1);
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let conn = Rc::new(ConnInfo {
        peer,
        local,
        id,
        counted: Cell::new(false),
        active: Cell::new(0),
        activity: Notify::new(),
        closed: Cell::new(0),
        premature: Cell::new(0),
        abort: Notify::new(),
    });
    let c = conn.clone();
    let svc = hyper::service::service_fn(move |req| {
        // Each stream runs on the chain current when it starts.
        let d = current.borrow().clone();
        let c = c.clone();
        async move { handle_request(d, c, req).await }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(upstream::LocalExec);
    let headers_bytes = limits.max_request_headers_kb as usize * 1024;
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.request_headers_timeout)
        .max_headers(limits.max_headers_count as usize)
        // The read buffer bounds the request head (431 past it) and how
        // much is read ahead of the body's consumer.
        .max_buf_size(headers_bytes.max(8192));
    let window = (limits.per_connection_buffer_limit_bytes).clamp(65_535, i32::MAX as u32);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(headers_bytes as u32)
        .initial_stream_window_size(window)
        .initial_connection_window_size(window);
    let io = hyper_util::rt::TokioIo::new(stream);
    let c = builder.serve_connection(io, svc);
    tokio::pin!(c);
    let mut draining = *shutdown.borrow();
    if draining {
        c.as_mut().graceful_shutdown();
    }
    let max_duration = limits
        .max_connection_duration
        .map(|d| tokio::time::Instant::now() + d);
    let idle = limits.idle_timeout;
    loop {
        tokio::select! {
            r = c.as_mut() => {
                if let Err(e) = r {
                    let timeout = e
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(|e| e.is_timeout());
                    if timeout {
                        LimitStats::inc(&stats.limits.downstream_rq_header_timeout);
                    }
                }
                break;
            }
            _ = conn.abort.notified() => break,
            _ = shutdown.changed(), if !draining => {
                draining = true;
                c.as_mut().graceful_shutdown();
            }
            _ = idle_expired(&conn, idle.unwrap_or_default()), if !draining && idle.is_some() => {
                LimitStats::inc(&stats.limits.downstream_cx_idle_timeout);
                draining = true;
                c.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(max_duration.unwrap_or_else(tokio::time::Instant::now)),
                if !draining && max_duration.is_some() => {
                LimitStats::inc(&stats.limits.downstream_cx_max_duration_reached);
                draining = true;
                c.as_mut().graceful_shutdown();
            }
        }
    }
    stats.downstream_cx_active.fetch_sub(1, Ordering::Relaxed);
    driver.connections.set(driver.connections.get() - 1);
    driver.idle.notify_waiters();
}

/// Returns once the connection had no stream for `idle`.
async fn idle_expired(conn: &ConnInfo, idle: Duration) {
    loop {
        let changed = conn.activity.notified();
        if conn.active.get() == 0 {
            tokio::select! {
                _ = tokio::time::sleep(idle) => return,
                _ = changed => {}
            }
        } else {
            changed.await;
        }
    }
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

/// One stream's client side: resets the stream when dropped before it
/// completed, keeps its timers and the connection's accounting.
struct StreamGuard {
    driver: Rc<Driver>,
    conn: Rc<ConnInfo>,
    sid: u64,
    done: Rc<StreamDone>,
    started: Instant,
    /// Last body byte read from or written to the client.
    last_activity: Cell<Instant>,
    /// The request was received (or the response started): the request
    /// timer is disarmed.
    request_complete: Cell<bool>,
    timers: Cell<Option<AbortHandle>>,
}

impl StreamGuard {
    fn touch(&self) {
        self.last_activity.set(Instant::now());
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(t) = self.timers.take() {
            t.abort();
        }
        let conn = &self.conn;
        conn.active.set(conn.active.get() - 1);
        conn.closed.set(conn.closed.get() + 1);
        conn.activity.notify_waiters();
        if !self.done.get() {
            let shared = &self.driver.shared;
            shared
                .stats
                .downstream_rq_rx_reset
                .fetch_add(1, Ordering::Relaxed);
            let limits = &shared.config.limits;
            if self.started.elapsed() < limits.premature_reset_min_stream_lifetime {
                conn.premature.set(conn.premature.get() + 1);
            }
            self.driver.reset_stream(self.sid);
        }
        // Envoy's ConnectionManagerImpl::maybeDrainDueToPrematureResets:
        // once `premature_reset_total_stream_count` streams closed on the
        // connection, at least half of them reset prematurely closes it.
        let limit = self
            .driver
            .shared
            .config
            .limits
            .premature_reset_total_stream_count;
        let (closed, premature) = (conn.closed.get(), conn.premature.get());
        if premature > 0 && closed >= limit && premature * 2 >= closed {
            LimitStats::inc(
                &self
                    .driver
                    .shared
                    .stats
                    .limits
                    .downstream_rq_too_many_premature_resets,
            );
            conn.abort.notify_one();
        }
    }
}

/// The stream timers: `request_timeout` (until the request is received or
/// the response starts) and `stream_idle_timeout` (no body byte either
/// way). Envoy answers 408 (`request timeout` / `stream timeout`), or
/// resets the stream once the response headers went out.
async fn stream_timers(g: Weak<StreamGuard>, request: Option<Duration>, idle: Option<Duration>) {
    loop {
        let Some(s) = g.upgrade() else { return };
        if s.done.get() {
            return;
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        if let Some(t) = request {
            if !s.request_complete.get() {
                let due = s.started + t;
                if now >= due {
                    let stats = &s.driver.shared.stats;
                    LimitStats::inc(&stats.limits.downstream_rq_timeout);
                    let sid = s.sid;
                    s.driver.with(|w| {
                        w.upstream_failure(
                            sid,
                            408,
                            "request timeout",
                            "request_overall_timeout",
                            0,
                        )
                    });
                    return;
                }
                next = Some(due);
            }
        }
        if let Some(t) = idle {
            let due = s.last_activity.get() + t;
            if now >= due {
                let stats = &s.driver.shared.stats;
                LimitStats::inc(&stats.limits.downstream_rq_idle_timeout);
                let sid = s.sid;
                s.driver.with(|w| {
                    w.upstream_failure(
                        sid,
                        408,
                        "stream timeout",
                        "stream_idle_timeout",
                        STREAM_IDLE_TIMEOUT_FLAG,
                    )
                });
                return;
            }
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        drop(s);
        match next {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => return,
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
                    self._guard.touch();
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
    conn.active.set(conn.active.get() + 1);
    conn.activity.notify_waiters();
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
    let done = Rc::new(StreamDone::default());
    let limit = driver.shared.config.limits.buffer_limit();
    let up_flow = Rc::new(Watermark::new(limit));
    let down_flow = Rc::new(Watermark::new(limit));
    let sid = driver.start_stream(
        headers,
        eos,
        props,
        log,
        StreamEnds {
            down: tx,
            done: done.clone(),
            up_flow: up_flow.clone(),
            down_flow: down_flow.clone(),
        },
    );
    let now = Instant::now();
    let guard = Rc::new(StreamGuard {
        driver: driver.clone(),
        conn: conn.clone(),
        sid,
        done,
        started: now,
        last_activity: Cell::new(now),
        request_complete: Cell::new(eos),
        timers: Cell::new(None),
    });
    let limits = &driver.shared.config.limits;
    if limits.request_timeout.is_some() || limits.stream_idle_timeout.is_some() {
        let t = spawn_local(stream_timers(
            Rc::downgrade(&guard),
            limits.request_timeout,
            limits.stream_idle_timeout,
        ));
        guard.timers.set(Some(t.abort_handle()));
    }
    if !eos {
        let d = driver.clone();
        let g = guard.clone();
        spawn_local(async move {
            read_request_body(&d, sid, body, &up_flow, &g).await;
            g.request_complete.set(true);
            drop(g);
        });
    }
    let first = rx.recv().await;
    let (h, end) = match first {
        Some(DownEvent::Headers(h, end)) => {
            guard.request_complete.set(true);
            guard.touch();
            (h, end)
        }
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
    guard: &StreamGuard,
) {
    let stats = &driver.shared.stats.limits;
    loop {
        // A stream answered before its request arrived in full (a local
        // reply, an early response) stops reading it: for HTTP/1.1 the
        // connection closes after the response, as Envoy's does.
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = guard.done.wait() => return,
        };
        match frame {
            Some(Ok(f)) => match f.into_data() {
                Ok(data) => {
                    let eos = body.is_end_stream();
                    guard.touch();
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
                        flow.wait_for_drain(|| guard.done.get()).await;
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
