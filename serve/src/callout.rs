//! Callouts: `proxy_http_call`, `proxy_grpc_call` and `proxy_grpc_stream`
//! to the configured clusters, with Envoy's answers for failures.

use super::driver::Driver;
use super::router::{exchange, give_back, ActiveGuard, Outcome};
use super::upstream::{self, ChannelBody, Failure};
use crate::chain::{Callout, GrpcAnswer};
use crate::headers::HeaderMap;
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc::unbounded_channel;

pub(super) async fn callout(driver: &Rc<Driver>, c: Callout) {
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
pub(super) type StreamKey = (usize, u64, u32);

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
