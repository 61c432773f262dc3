//! Upstream connections of one worker: a small pool of HTTP/1.1 and HTTP/2
//! (prior knowledge) client connections per endpoint, the request body type
//! fed by the filter chain, header conversions, and Envoy's answers for
//! upstream failures.

use crate::headers::HeaderMap;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Body of a request sent upstream: frames pushed by the filter chain.
pub struct ChannelBody {
    rx: Option<UnboundedReceiver<Frame<Bytes>>>,
    /// The body is known to be empty (headers-only request).
    empty: bool,
    /// The stream's watermark buffer: data taken from here leaves it.
    flow: Option<std::rc::Rc<super::flow_control::Watermark>>,
}

impl ChannelBody {
    pub fn new(rx: UnboundedReceiver<Frame<Bytes>>) -> ChannelBody {
        ChannelBody {
            rx: Some(rx),
            empty: false,
            flow: None,
        }
    }
    /// Data polled from this body leaves `flow` (the request body of an
    /// upstream request).
    pub fn with_flow(mut self, flow: std::rc::Rc<super::flow_control::Watermark>) -> ChannelBody {
        self.flow = Some(flow);
        self
    }
    pub fn empty() -> ChannelBody {
        ChannelBody {
            rx: None,
            empty: true,
            flow: None,
        }
    }
    /// A body of one chunk (callouts).
    pub fn full(data: Vec<u8>, trailers: Option<http::HeaderMap>) -> ChannelBody {
        if data.is_empty() && trailers.is_none() {
            return ChannelBody::empty();
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if !data.is_empty() {
            let _ = tx.send(Frame::data(Bytes::from(data)));
        }
        if let Some(t) = trailers {
            let _ = tx.send(Frame::trailers(t));
        }
        ChannelBody::new(rx)
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(f)) => {
                if let (Some(flow), Some(d)) = (&self.flow, f.data_ref()) {
                    flow.sub(d.len());
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(None) => {
                self.rx = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.empty
    }

    fn size_hint(&self) -> SizeHint {
        if self.empty {
            SizeHint::with_exact(0)
        } else {
            SizeHint::default()
        }
    }
}

/// A client connection able to send one request.
pub enum Sender {
    H1(http1::SendRequest<ChannelBody>),
    H2(http2::SendRequest<ChannelBody>),
}

impl Sender {
    pub async fn send(
        &mut self,
        req: http::Request<ChannelBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

/// Why no connection could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    Failure,
    Timeout,
}

/// Executor for HTTP/2 connection tasks on the worker's `LocalSet`.
#[derive(Clone, Copy, Debug)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// Idle HTTP/1.1 connections and shared HTTP/2 connections per endpoint.
#[derive(Default)]
pub struct Pool {
    idle: HashMap<SocketAddr, Vec<http1::SendRequest<ChannelBody>>>,
    h2: HashMap<SocketAddr, http2::SendRequest<ChannelBody>>,
}

/// Most idle HTTP/1.1 connections kept per endpoint.
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

impl Pool {
    /// An idle HTTP/1.1 connection, or a live HTTP/2 one.
    pub fn take(&mut self, ep: SocketAddr, h2: bool) -> Option<Sender> {
        if h2 {
            let s = self.h2.get(&ep)?;
            if s.is_closed() {
                self.h2.remove(&ep);
                return None;
            }
            return Some(Sender::H2(s.clone()));
        }
        let list = self.idle.get_mut(&ep)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(Sender::H1(s));
            }
        }
        None
    }

    /// Returns a connection after its exchange completed.
    pub fn put(&mut self, ep: SocketAddr, s: Sender) {
        if s.is_closed() {
            return;
        }
        match s {
            Sender::H1(s) => {
                let list = self.idle.entry(ep).or_default();
                if list.len() < MAX_IDLE_PER_ENDPOINT {
                    list.push(s);
                }
            }
            Sender::H2(s) => {
                self.h2.entry(ep).or_insert(s);
            }
        }
    }

    /// Registers a fresh HTTP/2 connection for sharing.
    pub fn add_h2(&mut self, ep: SocketAddr, s: &http2::SendRequest<ChannelBody>) {
        self.h2.insert(ep, s.clone());
    }
}

/// Opens a connection to `ep` within `timeout`.
pub async fn connect(ep: SocketAddr, h2: bool, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(ep)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(_)) => return Err(ConnectError::Failure),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(stream);
    if h2 {
        let (sender, conn) = http2::Builder::new(LocalExec)
            .handshake(io)
            .await
            .map_err(|_| ConnectError::Failure)?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|_| ConnectError::Failure)?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        Ok(Sender::H1(sender))
    }
}

/// Waits until an HTTP/1.1 connection can take a request.
pub async fn ready(s: &mut Sender) -> bool {
    match s {
        Sender::H1(h) => h.ready().await.is_ok(),
        Sender::H2(h) => h.ready().await.is_ok(),
    }
}

/// Connection-specific headers a proxy never forwards.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
    )
}

/// Builds the request to send to `ep` from the chain's request headers
/// (pseudo-headers become the request line; `:authority` the `host`
/// header for HTTP/1.1 or the URI authority for HTTP/2).
pub fn build_request(
    headers: &HeaderMap,
    h2: bool,
    body: ChannelBody,
) -> Result<http::Request<ChannelBody>, String> {
    let method = headers.get(b":method").unwrap_or(b"GET");
    let path = headers.get(b":path").unwrap_or(b"/");
    let authority = headers.get(b":authority").unwrap_or(b"");
    let scheme = headers.get(b":scheme").unwrap_or(b"http");
    let method = http::Method::from_bytes(method).map_err(|e| format!("method: {e}"))?;
    let uri = if h2 && !authority.is_empty() {
        let mut s = Vec::with_capacity(scheme.len() + 3 + authority.len() + path.len());
        s.extend_from_slice(scheme);
        s.extend_from_slice(b"://");
        s.extend_from_slice(authority);
        s.extend_from_slice(path);
        http::Uri::try_from(s).map_err(|e| format!("uri: {e}"))?
    } else {
        http::Uri::try_from(path).map_err(|e| format!("path: {e}"))?
    };
    let mut req = http::Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = if h2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    let h = req.headers_mut();
    if !h2 && !authority.is_empty() {
        if let Ok(v) = http::HeaderValue::from_bytes(authority) {
            h.insert(http::header::HOST, v);
        }
    }
    for (k, v) in headers.entries() {
        if k.first() == Some(&b':') || is_hop_by_hop(k) || k == b"host" {
            continue;
        }
        if h2 && k == b"te" && v != b"trailers" {
            continue;
        }
        // Envoy answers `100 Continue` itself and does not forward the expectation.
        if k == b"expect" && v.eq_ignore_ascii_case(b"100-continue") {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_bytes(v),
        ) else {
            continue;
        };
        h.append(name, value);
    }
    Ok(req)
}

/// Headers of an upstream response as the chain sees them (`:status` first).
pub fn response_headers(parts: &http::response::Parts) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.add(b":status", parts.status.as_str().as_bytes());
    for (k, v) in parts.headers.iter() {
        if is_hop_by_hop(k.as_str().as_bytes()) {
            continue;
        }
        h.add(k.as_str().as_bytes(), v.as_bytes());
    }
    h
}

/// A chain header map (no pseudo-headers) as `http` headers.
pub fn to_http_headers(m: &HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for (k, v) in m.entries() {
        if k.first() == Some(&b':') {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_bytes(v),
        ) {
            out.append(n, v);
        }
    }
    out
}

/// `http` headers as a chain header map.
pub fn from_http_headers(h: &http::HeaderMap) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in h.iter() {
        m.add(k.as_str().as_bytes(), v.as_bytes());
    }
    m
}

/// An upstream failure as Envoy's router reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The cluster has no endpoints (`UH`).
    NoHealthyUpstream,
    /// The TCP connection failed (`UF`).
    ConnectFailure,
    /// The TCP connection timed out (`UF`).
    ConnectTimeout,
    /// The connection was closed or reset before the response (`UC`).
    Reset,
    /// The request timeout fired (`UT`).
    Timeout,
}

impl Failure {
    /// (status, body, response code details, response flag).
    pub fn envoy_answer(self) -> (u32, &'static str, &'static str, u64) {
        use crate::chain::response_flags as f;
        match self {
            Failure::NoHealthyUpstream => (
                503,
                "no healthy upstream",
                "no_healthy_upstream",
                f::NO_HEALTHY_UPSTREAM,
            ),
            Failure::ConnectFailure => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                "upstream_reset_before_response_started{connection_failure}",
                f::UPSTREAM_CONNECTION_FAILURE,
            ),
            Failure::ConnectTimeout => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection timeout",
                "upstream_reset_before_response_started{connection_timeout}",
                f::UPSTREAM_CONNECTION_FAILURE,
            ),
            Failure::Reset => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                "upstream_reset_before_response_started{connection_termination}",
                UPSTREAM_CONNECTION_TERMINATION,
            ),
            Failure::Timeout => (
                504,
                "upstream request timeout",
                "upstream_response_timeout",
                f::UPSTREAM_REQUEST_TIMEOUT,
            ),
        }
    }

    /// The answer an HTTP callout gets for this failure (Envoy's async
    /// client receives the router's local reply as a normal response).
    pub fn callout_answer(self) -> crate::chain::CalloutResponse {
        let (status, body, _, _) = self.envoy_answer();
        let mut h = HeaderMap::new();
        h.add(b":status", status.to_string().as_bytes());
        h.add(b"content-length", body.len().to_string().as_bytes());
        h.add(b"content-type", b"text/plain");
        crate::chain::CalloutResponse {
            headers: h,
            body: body.as_bytes().to_vec(),
            trailers: HeaderMap::new(),
        }
    }

    /// gRPC status for a gRPC callout (Envoy's `httpToGrpcStatus`, and
    /// DEADLINE_EXCEEDED for a timeout).
    pub fn grpc_status(self) -> u32 {
        match self {
            Failure::Timeout => 4,
            _ => 14,
        }
    }
}

/// Envoy's `UC` response flag.
pub const UPSTREAM_CONNECTION_TERMINATION: u64 = 0x40;

/// Envoy's short names of response flags, in Envoy's order.
pub fn response_flags_string(flags: u64) -> String {
    const NAMES: [(u64, &str); 11] = [
        (0x2, "UH"),
        (0x4, "UT"),
        (0x8, "LR"),
        (0x20, "UF"),
        (0x40, "UC"),
        (0x100, "NR"),
        (0x200, "DI"),
        (0x400, "FI"),
        (0x4000, "DC"),
        (0x10000, "SI"),
        (0x1000000, "NC"),
    ];
    let s: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_conversion() {
        let h = HeaderMap::from_pairs([
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", "/a?b=1"),
            ("connection", "close"),
            ("x-a", "1"),
            ("x-a", "2"),
        ]);
        let r = build_request(&h, false, ChannelBody::empty()).unwrap();
        assert_eq!(r.method(), "POST");
        assert_eq!(r.uri(), "/a?b=1");
        assert_eq!(r.headers()["host"], "example.com");
        assert!(r.headers().get("connection").is_none());
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        let r = build_request(&h, true, ChannelBody::empty()).unwrap();
        assert_eq!(r.uri(), "http://example.com/a?b=1");
        assert!(r.headers().get("host").is_none());
    }

    #[test]
    fn flags() {
        assert_eq!(response_flags_string(0), "-");
        assert_eq!(response_flags_string(0x2 | 0x20), "UH,UF");
    }
}
