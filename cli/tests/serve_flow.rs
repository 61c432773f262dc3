//! `wasmesh serve` flow control: bounded buffering with watermarks in both
//! directions (a 300 MiB upload to a slow upstream and a 300 MiB download
//! to a slow client keep the proxy's resident memory small and arrive
//! intact, over HTTP/1.1 and HTTP/2), and Envoy's answers to a filter that
//! buffers a body past the limit (413 / 500).

mod serve_support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serve_support::*;
use std::time::Duration;

const BIG: u64 = 300 * 1024 * 1024;
/// The proxy's peak resident memory must stay under this.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// An upstream that reads request bodies slowly and answers their digest
/// (`POST /upload`), or sends `BIG` pattern bytes (`GET /download`).
async fn slow_upstream() -> std::net::SocketAddr {
    upstream(|req: http::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/download" {
            return http::Response::new(PatternBody::new(BIG).boxed_unsync());
        }
        let d = slow_read(req.into_body(), 4 * 1024 * 1024, Duration::from_millis(20)).await;
        http::Response::new(full(format!("{} {:016x}", d.len, d.hash)))
    })
    .await
}

fn serve_yaml(up: std::net::SocketAddr) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
clusters:
  upstream: {{endpoints: ["{up}"], timeout: 0s}}
"#
    )
}

#[test]
fn large_transfers_through_slow_peers_keep_the_proxy_small() {
    run_local(async {
        let up = slow_upstream().await;
        let proxy = Spawned::start(&serve_yaml(up), &[]);
        let base = proxy.status_kib("VmRSS");
        let expected = pattern_digest(BIG);
        for h2 in [false, true] {
            // Upload: the client sends as fast as it can, the upstream reads
            // in bursts.
            let started = std::time::Instant::now();
            let resp = send(
                proxy.listen,
                request("POST", "/upload", PatternBody::new(BIG), h2),
                h2,
            )
            .await;
            let r = read_reply(resp).await;
            assert_eq!(r.status, 200, "upload (h2: {h2}): {r:?}");
            assert_eq!(
                r.body,
                format!("{} {:016x}", expected.len, expected.hash),
                "the upstream received the upload intact (h2: {h2})"
            );
            eprintln!("upload h2={h2}: {:?}", started.elapsed());
            // Download: the upstream sends as fast as it can, the client
            // reads in bursts.
            let started = std::time::Instant::now();
            let resp = send(
                proxy.listen,
                request("GET", "/download", Full::new(Bytes::new()), h2),
                h2,
            )
            .await;
            assert_eq!(resp.status(), 200);
            let d = slow_read(resp.into_body(), 4 * 1024 * 1024, Duration::from_millis(20)).await;
            assert_eq!(
                d, expected,
                "the client received the download intact (h2: {h2})"
            );
            eprintln!("download h2={h2}: {:?}", started.elapsed());
        }
        let peak = proxy.status_kib("VmHWM");
        eprintln!("proxy RSS: {base} KiB at start, peak {peak} KiB");
        assert!(
            peak < RSS_LIMIT_KIB,
            "the proxy's peak RSS was {peak} KiB (at start {base} KiB) for 300 MiB transfers"
        );
    });
}

fn buffering_yaml(up: std::net::SocketAddr, words: &str, limit: u32) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
limits: {{per_connection_buffer_limit_bytes: {limit}}}
chain:
  - {{name: buffer, wasm: body_rewrite, config: "{words}"}}
clusters:
  upstream: {{endpoints: ["{up}"]}}
"#
    )
}

/// The upstream answers `n` bytes for `GET /bytes/<n>` and the request body's
/// length otherwise.
async fn sized_upstream() -> std::net::SocketAddr {
    upstream(|req: http::Request<hyper::body::Incoming>| async move {
        if let Some(n) = req.uri().path().strip_prefix("/bytes/") {
            let n: usize = n.parse().unwrap();
            return http::Response::new(full(vec![b'x'; n]));
        }
        // A request cut short by the proxy's 413 has no length to answer.
        match req.into_body().collect().await {
            Ok(b) => http::Response::new(full(format!("{}", b.to_bytes().len()))),
            Err(_) => http::Response::new(full("cut")),
        }
    })
    .await
}

#[test]
fn a_filter_buffering_a_request_body_past_the_limit_gets_413() {
    run_local(async {
        let up = sized_upstream().await;
        let server = start(&buffering_yaml(up, "buffer-request", 64 * 1024));
        let addr = server.listen_addr();
        for h2 in [false, true] {
            // Under the limit: buffered, then sent on.
            let small = Full::new(Bytes::from(vec![b'a'; 60 * 1024]));
            let r = read_reply(send(addr, request("POST", "/", small, h2), h2).await).await;
            assert_eq!((r.status, r.body.as_str()), (200, "61440"), "h2: {h2}");
            // Past it: Envoy's 413.
            let big = Full::new(Bytes::from(vec![b'a'; 256 * 1024]));
            let r = read_reply(send(addr, request("POST", "/", big, h2), h2).await).await;
            assert_eq!(r.status, 413, "h2: {h2}: {r:?}");
            assert_eq!(r.body, "Payload Too Large");
            assert_eq!(r.header("content-type"), Some("text/plain"));
        }
        let log = server.recent_access_log();
        let too_large: Vec<_> = log.iter().filter(|e| e.status == 413).collect();
        assert_eq!(too_large.len(), 2);
        for e in too_large {
            assert_eq!(e.details.as_deref(), Some("request_payload_too_large"));
        }
        assert_eq!(
            stat(&server, "http.ingress_http.downstream_rq_too_large"),
            2
        );
        stop(server);
    });
}

#[test]
fn a_filter_holding_a_response_body_past_the_limit_gets_500_or_a_reset() {
    run_local(async {
        let up = sized_upstream().await;
        // The probe pauses in the response headers: the body is held for
        // it, and past the limit Envoy answers 500 (no header went out yet).
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
limits: {{per_connection_buffer_limit_bytes: 65536}}
chain:
  - {{name: probe, wasm: probe}}
clusters:
  upstream: {{endpoints: ["{up}"]}}
"#
        ));
        let addr = server.listen_addr();
        let paused = |path: &str| {
            let mut r = request("GET", path, Full::new(Bytes::new()), false);
            r.headers_mut()
                .insert("x-probe-resp", http::HeaderValue::from_static("pause"));
            r
        };
        let r = read_reply(send(addr, paused("/bytes/300000"), false).await).await;
        assert_eq!(r.status, 500, "{r:?}");
        assert_eq!(r.body, "Internal Server Error");
        let log = server.recent_access_log();
        let e = log.iter().find(|e| e.status == 500).expect("logged");
        assert_eq!(e.details.as_deref(), Some("response_payload_too_large"));
        assert_eq!(stat(&server, "http.ingress_http.rs_too_large"), 1);
        stop(server);

        // body_rewrite lets the response headers go and buffers the body:
        // past the limit Envoy can only reset the stream.
        let server = start(&buffering_yaml(up, "buffer-response", 64 * 1024));
        let addr = server.listen_addr();
        let r = get(addr, "/bytes/1000").await;
        assert_eq!((r.status, r.body.len()), (200, 1000));
        let resp = send(
            addr,
            request("GET", "/bytes/300000", Full::new(Bytes::new()), false),
            false,
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.into_body().collect().await.is_err(),
            "the body is cut short by the reset"
        );
        let log = server.recent_access_log();
        let e = log.last().expect("logged");
        assert_eq!(e.details.as_deref(), Some("response_payload_too_large"));
        assert_eq!(stat(&server, "http.ingress_http.rs_too_large"), 1);
        stop(server);
    });
}
