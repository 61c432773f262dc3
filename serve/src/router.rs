//! The router: upstream requests to the clusters (a connection from the
//! pool, Envoy's answers for failures and timeouts) with flow control on
//! the response body.

use super::driver::Driver;
use super::flow_control::Watermark;
use super::upstream::{self, ChannelBody, Failure, Sender};
use crate::headers::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) enum Outcome {
    Response(Box<(http::Response<Incoming>, Sender, SocketAddr)>),
    Failed(Failure),
}

/// Gets a connection and sends the request; a reused HTTP/1.1 connection
/// that turns out closed is replaced once when the request has no body.
pub(super) async fn exchange(
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

pub(super) async fn upstream_request(
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

pub(super) struct ActiveGuard<'a>(pub(super) Option<&'a super::stats::ClusterStats>);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.upstream_rq_active.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Returns a connection whose exchange is complete to the pool.
pub(super) fn give_back(driver: &Rc<Driver>, ep: SocketAddr, sender: Option<Sender>) {
    if let Some(s) = sender {
        driver.pool.borrow_mut().put(ep, s);
    }
}

pub(super) fn fail(driver: &Rc<Driver>, sid: u64, f: Failure) {
    let (status, body, details, flag) = f.envoy_answer();
    driver.with(|w| w.upstream_failure(sid, status, body, details, flag));
}
