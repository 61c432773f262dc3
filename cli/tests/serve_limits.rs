//! `wasmesh serve`'s connection manager limits with Envoy's answers: each
//! timeout and limit fires (short configured values) with Envoy's status,
//! body, response code details, response flag and stat; HTTP/2 rapid reset
//! (CVE-2023-44487) closes the abusive connection while others are served;
//! past the global connection limit new connections are refused and open
//! ones keep working.

mod serve_support;

use serve_support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `/slow` answers after 2 s, anything else at once.
async fn test_upstream() -> SocketAddr {
    upstream(|req: http::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let _ = http_body_util::BodyExt::collect(req.into_body()).await;
        http::Response::new(full("ok"))
    })
    .await
}

fn server(up: SocketAddr, limits: &str) -> wasmesh_serve::ServerHandle {
    start(&format!(
        r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
limits: {{{limits}}}
clusters:
  upstream: {{endpoints: ["{up}"]}}
"#
    ))
}

/// Reads until the peer closes (EOF or reset); returns what was read.
/// Panics if it stays open past `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!(
                "the connection stayed open; read so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn head(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[test]
fn request_headers_timeout_closes_the_connection() {
    run_local(async {
        let up = test_upstream().await;
        let server = server(up, "request_headers_timeout: 300ms");
        let mut s = TcpStream::connect(server.listen_addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        let started = Instant::now();
        read_until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(
            stat(&server, "http.ingress_http.downstream_rq_header_timeout"),
            1
        );
        // Complete headers in time are served.
        assert_eq!(get(server.listen_addr(), "/").await.status, 200);
        stop(server);
    });
}

#[test]
fn request_timeout_answers_408() {
    run_local(async {
        let up = test_upstream().await;
        let server = server(up, "request_timeout: 300ms");
        let mut s = TcpStream::connect(server.listen_addr()).await.unwrap();
        // Announces 100 bytes, sends 10.
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let raw = head(&read_until_closed(&mut s, Duration::from_secs(10)).await);
        assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
        assert!(raw.ends_with("request timeout"), "{raw}");
        let log = server.recent_access_log();
        let e = log.iter().find(|e| e.status == 408).expect("logged");
        assert_eq!(e.details.as_deref(), Some("request_overall_timeout"));
        assert_eq!(stat(&server, "http.ingress_http.downstream_rq_timeout"), 1);
        stop(server);
    });
}

#[test]
fn stream_idle_timeout_answers_408_with_si() {
    run_local(async {
        let up = test_upstream().await;
        let server = server(up, "stream_idle_timeout: 300ms");
        let mut s = TcpStream::connect(server.listen_addr()).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let raw = head(&read_until_closed(&mut s, Duration::from_secs(10)).await);
        assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
        assert!(raw.ends_with("stream timeout"), "{raw}");
        let log = server.recent_access_log();
        let e = log.iter().find(|e| e.status == 408).expect("logged");
        assert_eq!(e.details.as_deref(), Some("stream_idle_timeout"));
        assert_eq!(e.flags, "SI");
        assert_eq!(
            stat(&server, "http.ingress_http.downstream_rq_idle_timeout"),
            1
        );
        // A request that keeps flowing is not cut.
        assert_eq!(get(server.listen_addr(), "/").await.status, 200);
        stop(server);
    });
}

#[test]
fn idle_timeout_and_max_connection_duration_close_connections() {
    run_local(async {
        let up = test_upstream().await;
        for (limits, stat_name) in [
            ("idle_timeout: 300ms", "downstream_cx_idle_timeout"),
            (
                "max_connection_duration: 300ms",
                "downstream_cx_max_duration_reached",
            ),
        ] {
            let server = server(up, limits);
            let mut s = TcpStream::connect(server.listen_addr()).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let started = Instant::now();
            let raw = head(&read_until_closed(&mut s, Duration::from_secs(10)).await);
            assert!(raw.starts_with("HTTP/1.1 200"), "{limits}: {raw}");
            assert!(started.elapsed() >= Duration::from_millis(250), "{limits}");
            assert_eq!(
                stat(&server, &format!("http.ingress_http.{stat_name}")),
                1,
                "{limits}"
            );
            stop(server);
        }
    });
}

#[test]
fn header_limits_answer_431() {
    run_local(async {
        let up = test_upstream().await;
        let server = server(up, "max_request_headers_kb: 16, max_headers_count: 10");
        let addr = server.listen_addr();
        let send_raw = |req: String| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            head(&read_until_closed(&mut s, Duration::from_secs(10)).await)
        };
        let big = format!(
            "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
            "a".repeat(20 * 1024)
        );
        let r = send_raw(big).await;
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");
        let many: String = (0..20).map(|i| format!("x-h{i}: v\r\n")).collect();
        let r = send_raw(format!(
            "GET / HTTP/1.1\r\nhost: x\r\n{many}connection: close\r\n\r\n"
        ))
        .await;
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");
        let few: String = (0..5).map(|i| format!("x-h{i}: v\r\n")).collect();
        let r = send_raw(format!(
            "GET / HTTP/1.1\r\nhost: x\r\n{few}connection: close\r\n\r\n"
        ))
        .await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        stop(server);
    });
}

// ----------------------------------------------------------------------
// HTTP/2 by hand

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HEADERS (END_STREAM | END_HEADERS) for `GET <path>`: HPACK static
/// `:method GET`, `:scheme http`, literal `:path`, literal `:authority`.
fn get_headers(stream: u32, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 0x01, b'x']);
    frame(1, 0x5, stream, &block)
}

fn rst_stream(stream: u32) -> Vec<u8> {
    frame(3, 0, stream, &8u32.to_be_bytes()) // CANCEL
}

/// Reads one frame: (type, flags, stream, payload).
async fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).await.ok()?;
    let n = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
    let mut p = vec![0u8; n];
    s.read_exact(&mut p).await.ok()?;
    let stream = u32::from_be_bytes([h[5] & 0x7f, h[6], h[7], h[8]]);
    Some((h[3], h[4], stream, p))
}

async fn h2_connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&frame(4, 0, 0, &[])).await.unwrap();
    s
}

#[test]
fn http2_max_concurrent_streams_refuses_extra_streams() {
    run_local(async {
        let up = test_upstream().await;
        let server = server(up, "max_concurrent_streams: 1");
        let mut s = h2_connect(server.listen_addr()).await;
        // The server's SETTINGS advertise the limit.
        let (kind, _, _, p) = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
            .await
            .unwrap()
            .expect("SETTINGS");
        assert_eq!(kind, 4);
        let advertised = p
            .chunks(6)
            .find(|c| c[..2] == [0, 3])
            .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]));
        assert_eq!(advertised, Some(1));
        s.write_all(&frame(4, 1, 0, &[])).await.unwrap(); // SETTINGS ack
        s.write_all(&get_headers(1, "/slow")).await.unwrap();
        s.write_all(&get_headers(3, "/slow")).await.unwrap();
        // Stream 3 is refused (RST_STREAM REFUSED_STREAM), stream 1 answered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let (mut refused, mut answered) = (false, false);
        while !(refused && answered) {
            let f = tokio::time::timeout_at(deadline, read_frame(&mut s))
                .await
                .expect("frames in time")
                .expect("connection open");
            match f {
                (3, _, 3, p) => {
                    assert_eq!(u32::from_be_bytes([p[0], p[1], p[2], p[3]]), 7);
                    refused = true;
                }
                (1, _, 1, _) => answered = true,
                _ => {}
            }
        }
        stop(server);
    });
}

#[test]
fn http2_rapid_reset_closes_the_abusive_connection_only() {
    run_local(async {
        let up = test_upstream().await;
        let server = server(up, "premature_reset_total_stream_count: 50");
        let addr = server.listen_addr();
        let mut s = h2_connect(addr).await;
        let started = Instant::now();
        let mut sent = 0u32;
        // Open and cancel streams in a loop until the server hangs up.
        for i in 0..5000u32 {
            let id = 2 * i + 1;
            let mut b = get_headers(id, "/slow");
            b.extend(rst_stream(id));
            if s.write_all(&b).await.is_err() {
                break;
            }
            sent += 1;
            if i % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // Drain whatever the server sent until it closes the connection.
        let mut goaway = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, read_frame(&mut s)).await {
                Err(_) => panic!("the abusive connection stayed open"),
                Ok(None) => break,
                Ok(Some((7, ..))) => goaway = true,
                Ok(Some(_)) => {}
            }
        }
        let premature = stat(
            &server,
            "http.ingress_http.downstream_rq_too_many_premature_resets",
        );
        eprintln!(
            "rapid reset: {sent} streams written in {:?}; GOAWAY: {goaway}; \
             downstream_rq_too_many_premature_resets: {premature}",
            started.elapsed()
        );
        assert!(sent < 5000, "the server kept accepting streams");
        // A well-behaved client on another connection is served.
        let r = get(addr, "/").await;
        assert_eq!(r.status, 200);
        stop(server);
    });
}

#[test]
fn past_the_global_connection_limit_new_connections_are_refused() {
    run_local(async {
        let up = test_upstream().await;
        let server = server(up, "max_downstream_connections: 2");
        let addr = server.listen_addr();
        let mut open = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(head(&buf[..n]).starts_with("HTTP/1.1 200"));
            open.push(s);
        }
        // The third is closed at once.
        let mut third = TcpStream::connect(addr).await.unwrap();
        let _ = third.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let got = read_until_closed(&mut third, Duration::from_secs(10)).await;
        assert!(got.is_empty(), "{}", head(&got));
        assert!(
            stat(
                &server,
                &format!(
                    "listener.127.0.0.1_{}.downstream_global_cx_overflow",
                    addr.port()
                )
            ) >= 1
        );
        // The open ones keep working.
        for s in &mut open {
            s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(head(&buf[..n]).starts_with("HTTP/1.1 200"));
        }
        // Once one closes, a new connection is served again.
        drop(open.pop());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let _ = s
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await;
            let got = read_until_closed(&mut s, Duration::from_secs(10)).await;
            if head(&got).starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(Instant::now() < deadline, "no connection admitted again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop(server);
    });
}

#[test]
fn an_envoy_bootstrap_sets_the_limits() {
    let yaml = r#"
static_resources:
  listeners:
  - name: main
    per_connection_buffer_limit_bytes: 32768
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          request_headers_timeout: 2s
          request_timeout: 30s
          stream_idle_timeout: 0s
          max_request_headers_kb: 96
          common_http_protocol_options:
            idle_timeout: 600s
            max_connection_duration: {seconds: 3600}
            max_headers_count: 50
          http2_protocol_options: {max_concurrent_streams: 64}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{match: {prefix: /}, route: {cluster: upstream}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: upstream
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]
overload_manager:
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 1000
layered_runtime:
  layers:
  - name: static
    static_layer:
      overload.premature_reset_total_stream_count: 200
      overload.premature_reset_min_stream_lifetime_seconds: 2
"#;
    let c = wasmesh_serve::ServeConfig::from_yaml_str(
        yaml,
        std::path::Path::new("."),
        &Default::default(),
    )
    .unwrap();
    let l = &c.limits;
    assert_eq!(l.per_connection_buffer_limit_bytes, 32768);
    assert_eq!(l.request_headers_timeout, Some(Duration::from_secs(2)));
    assert_eq!(l.request_timeout, Some(Duration::from_secs(30)));
    assert_eq!(l.stream_idle_timeout, None);
    assert_eq!(l.max_request_headers_kb, 96);
    assert_eq!(l.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(l.max_connection_duration, Some(Duration::from_secs(3600)));
    assert_eq!(l.max_headers_count, 50);
    assert_eq!(l.max_concurrent_streams, 64);
    assert_eq!(l.max_downstream_connections, Some(1000));
    assert_eq!(l.premature_reset_total_stream_count, 200);
    assert_eq!(
        l.premature_reset_min_stream_lifetime,
        Duration::from_secs(2)
    );
    let dump = c.to_json();
    assert_eq!(dump["limits"]["max_concurrent_streams"], 64);
    assert_eq!(
        dump["limits"]["stream_idle_timeout"],
        serde_json::Value::Null
    );
    assert_eq!(dump["limits"]["request_timeout"], "30s");
    // Envoy's defaults otherwise; a bad value names its field.
    let d = wasmesh_serve::limits::Limits::default();
    assert_eq!(d.stream_idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(d.idle_timeout, Some(Duration::from_secs(3600)));
    assert_eq!((d.max_request_headers_kb, d.max_headers_count), (60, 100));
    assert_eq!(d.per_connection_buffer_limit_bytes, 1024 * 1024);
    let e = wasmesh_serve::ServeConfig::from_yaml_str(
        &yaml.replace("max_request_headers_kb: 96", "max_request_headers_kb: 9000"),
        std::path::Path::new("."),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        e.contains("max_request_headers_kb: must be between 1 and 8192"),
        "{e}"
    );
    let e = wasmesh_serve::ServeConfig::from_yaml_str(
        "limits: {stream_idle_timeout: soon}\nclusters: {upstream: {endpoints: [\"127.0.0.1:1\"]}}",
        std::path::Path::new("."),
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.contains("limits.stream_idle_timeout"), "{e}");
}
