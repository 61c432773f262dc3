//! `wasmesh serve` on loopback with real upstreams: routing, callouts, body
//! streaming, HTTP/2, trap containment, upstream failures and timeouts,
//! the admin endpoints, the Envoy bootstrap reader and graceful shutdown.
//!
//! The upstreams are tiny hyper servers in this file that echo what they
//! received (as JSON) and which cluster they are. The `.wasm` artifacts
//! (`probe`, `body_rewrite`) must have been built (`bash scripts/build-wasm.sh`).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmesh::scenario::{workspace_root, RunOptions};
use wasmesh_serve::{ServeConfig, ServeOptions, Server, ServerHandle};

// ----------------------------------------------------------------------
// Upstreams

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).boxed_unsync()
}

fn query(uri: &http::Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// The echo upstream's answer to one request.
async fn echo(
    name: String,
    req: http::Request<Incoming>,
) -> Result<http::Response<BoxBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if let Some(ms) = query(&parts.uri, "delay_ms") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    if path == "/stream" {
        // Echo the request body back frame by frame, as it arrives, then
        // three slow chunks of our own.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
        let mut body = body;
        tokio::spawn(async move {
            while let Some(Ok(f)) = body.frame().await {
                if let Ok(d) = f.into_data() {
                    let _ = tx.send(Ok(Frame::data(d))).await;
                }
            }
            for i in 0..3 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from(format!("|tail-{i}")))))
                    .await;
            }
        });
        let stream = tokio_stream_from(rx);
        let mut r = http::Response::new(StreamBody::new(stream).boxed_unsync());
        r.headers_mut().insert(
            "x-echo-cluster",
            http::HeaderValue::from_str(&name).unwrap(),
        );
        return Ok(r);
    }
    if path == "/trailers" {
        let _ = body.collect().await;
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"with trailers"))),
            Ok(Frame::trailers({
                let mut t = http::HeaderMap::new();
                t.insert("x-upstream-trailer", "yes".parse().unwrap());
                t
            })),
        ];
        let stream = futures_iter(frames);
        return Ok(http::Response::new(StreamBody::new(stream).boxed_unsync()));
    }
    if path.starts_with("/pkg.Echo/") {
        // A gRPC unary echo: answers the request message prefixed with `echo:`.
        let b = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let msg = if b.len() >= 5 { &b[5..] } else { &b[..] };
        let mut out = b"echo:".to_vec();
        out.extend_from_slice(msg);
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(out.len() as u32).to_be_bytes());
        framed.extend_from_slice(&out);
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from(framed))),
            Ok(Frame::trailers({
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", "0".parse().unwrap());
                t
            })),
        ];
        let mut r = http::Response::new(StreamBody::new(futures_iter(frames)).boxed_unsync());
        r.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        return Ok(r);
    }
    let collected = body.collect().await.ok();
    let trailers = collected.as_ref().and_then(|c| c.trailers().cloned());
    let data = collected.map(|c| c.to_bytes()).unwrap_or_default();
    if path == "/jwks" {
        let mut r = http::Response::new(full(r#"{"keys":[{"kty":"oct","kid":"k1"}]}"#));
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        return Ok(r);
    }
    let mut headers = serde_json::Map::new();
    for (k, v) in parts.headers.iter() {
        headers.insert(
            k.as_str().to_string(),
            Value::String(v.to_str().unwrap_or("").to_string()),
        );
    }
    let json = serde_json::json!({
        "cluster": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&data),
        "trailers": trailers.map(|t| t.iter().map(|(k, v)| format!("{}={}", k, v.to_str().unwrap_or(""))).collect::<Vec<_>>()),
    });
    let mut r = http::Response::new(full(json.to_string()));
    r.headers_mut().insert(
        "x-echo-cluster",
        http::HeaderValue::from_str(&name).unwrap(),
    );
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(r)
}

fn futures_iter(
    frames: Vec<Result<Frame<Bytes>, Infallible>>,
) -> IterStream<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>> {
    IterStream(frames.into_iter())
}

fn tokio_stream_from<T>(rx: tokio::sync::mpsc::Receiver<T>) -> RxStream<T> {
    RxStream(rx)
}

/// A `Stream` over an iterator.
struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

/// A `Stream` over a channel.
struct RxStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for RxStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// A running echo upstream (HTTP/1.1 and HTTP/2 prior knowledge).
struct Upstream {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn upstream(name: &str) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let name = name.to_string();
    tokio::spawn(async move {
        loop {
            let (s, _) = tokio::select! {
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                _ = &mut stop_rx => return,
            };
            let name = name.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| echo(name.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        _stop: stop_tx,
    }
}

/// An upstream that accepts connections and closes them without answering.
async fn closing_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    addr
}

/// A loopback port with nothing listening.
fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

// ----------------------------------------------------------------------
// The server and a client

fn wasm_dir() -> PathBuf {
    wasmesh::scenario::default_wasm_dir()
}

fn start(yaml: &str) -> ServerHandle {
    let opts = RunOptions {
        wasm_dir: Some(wasm_dir()),
        echo_logs: false,
    };
    let config = ServeConfig::from_yaml_str(yaml, Path::new("."), &opts)
        .unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
    Server::start_with(
        config,
        &ServeOptions {
            echo_plugin_logs: false,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("start: {e}"))
}

/// What the client got.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
    trailers: Option<http::HeaderMap>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, n: &str) -> Option<&str> {
        self.headers.get(n).and_then(|v| v.to_str().ok())
    }
}

async fn read_reply(resp: http::Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let c = body.collect().await.expect("response body");
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        trailers: c.trailers().cloned(),
        body: String::from_utf8_lossy(&c.to_bytes()).into_owned(),
    }
}

/// One HTTP/1.1 request on a new connection.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, "", false).await
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    h2: bool,
) -> Reply {
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(s);
    let mut b = http::Request::builder().method(method);
    if h2 {
        b = b.uri(format!("http://example.com{path}"));
    } else {
        b = b.uri(path).header("host", "example.com");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        sender.send_request(req).await.expect("send")
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("handshake");
        tokio::spawn(conn);
        sender.send_request(req).await.expect("send")
    };
    read_reply(resp).await
}

async fn admin_get(server: &ServerHandle, path: &str) -> Reply {
    get(server.admin_addr().expect("admin"), path, &[]).await
}

/// Runs `f` on a runtime for the test's upstreams and clients (the server
/// has its own threads).
fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

fn stop(server: ServerHandle) {
    std::thread::spawn(move || server.shutdown())
        .join()
        .unwrap();
}

// ----------------------------------------------------------------------
// Tests

#[test]
fn routes_by_cluster_header_after_the_filters_ran() {
    run(async {
        let a = upstream("a").await;
        let b = upstream("b").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 2
access_log: off
chain:
  - {{name: probe, wasm: probe}}
routes:
  - {{prefix: /fixed, cluster: a}}
  - {{prefix: /, cluster_header: x-cluster}}
clusters:
  a: {{endpoints: ["{}"]}}
  b: {{endpoints: ["{}"]}}
"#,
            a.addr, b.addr
        ));
        let addr = server.listen_addr();
        let r = get(addr, "/x", &[("x-cluster", "b")]).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["cluster"], "b");
        assert_eq!(r.header("server"), Some("envoy"));
        assert!(r.header("x-envoy-upstream-service-time").is_some());
        // The upstream sees the request as Envoy forwards it.
        let j = r.json();
        assert_eq!(j["headers"]["host"], "example.com");
        assert_eq!(j["headers"]["x-forwarded-proto"], "http");
        // A random UUID v4 when the client sent none (Envoy's connection manager).
        let rid = j["headers"]["x-request-id"].as_str().unwrap().to_string();
        assert_eq!(rid.len(), 36, "{rid}");
        assert_eq!(&rid[14..15], "4", "{rid}");
        let r2 = get(addr, "/x", &[("x-cluster", "b")]).await;
        assert_ne!(r2.json()["headers"]["x-request-id"], rid.as_str());
        let r3 = get(addr, "/x", &[("x-cluster", "b"), ("x-request-id", "mine")]).await;
        assert_eq!(r3.json()["headers"]["x-request-id"], "mine");
        // A plugin rewrites the header: the route is chosen after it ran.
        let r = get(
            addr,
            "/x",
            &[("x-cluster", "b"), ("x-probe", "replace=x-cluster,a")],
        )
        .await;
        assert_eq!(r.json()["cluster"], "a");
        let r = get(addr, "/fixed/1", &[("x-cluster", "b")]).await;
        assert_eq!(r.json()["cluster"], "a");
        // Unknown cluster, or no header: Envoy's 503 (NC).
        let r = get(addr, "/x", &[("x-cluster", "nope")]).await;
        assert_eq!(r.status, 503);
        let r = get(addr, "/x", &[]).await;
        assert_eq!(r.status, 503);
        // Keep-alive: several requests on one connection.
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        for i in 0..5 {
            let req = http::Request::builder()
                .uri(format!("/k{i}"))
                .header("host", "x")
                .header("x-cluster", if i % 2 == 0 { "a" } else { "b" })
                .body(Full::new(Bytes::new()))
                .unwrap();
            let r = read_reply(sender.send_request(req).await.unwrap()).await;
            assert_eq!(r.json()["cluster"], if i % 2 == 0 { "a" } else { "b" });
        }
        stop(server);
    });
}

#[test]
fn http_call_reaches_a_real_jwks_endpoint_with_envoy_failure_answers() {
    run(async {
        let idp = upstream("idp").await;
        let backend = upstream("backend").await;
        let dead = dead_port();
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: probe, wasm: probe}}
routes:
  - {{prefix: /, cluster: backend}}
clusters:
  backend: {{endpoints: ["{}"]}}
  idp: {{endpoints: ["{}"]}}
  dead: {{endpoints: ["{dead}"]}}
  empty: {{endpoints: []}}
"#,
            backend.addr, idp.addr
        ));
        let addr = server.listen_addr();
        let r = get(addr, "/api", &[("x-probe", "call=idp,/jwks,2000")]).await;
        assert_eq!(r.status, 200, "{r:?}");
        let h = &r.json()["headers"];
        assert_eq!(h["x-r-call"], "OK", "{h}");
        assert_eq!(h["x-r-call-status"], "200", "{h}");
        assert_eq!(
            h["x-r-call-body"], r#"{"keys":[{"kty":"oct","kid":"k1"}]}"#,
            "{h}"
        );
        // Timeout: Envoy's async client hands the router's 504 to the plugin.
        let t0 = Instant::now();
        let r = get(
            addr,
            "/api",
            &[("x-probe", "call=idp,/jwks?delay_ms=3000,150")],
        )
        .await;
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let h = &r.json()["headers"];
        assert_eq!(h["x-r-call-status"], "504", "{h}");
        assert_eq!(h["x-r-call-body"], "upstream request timeout", "{h}");
        // Connection refused, and a cluster without endpoints.
        let r = get(addr, "/api", &[("x-probe", "call=dead,/jwks,2000")]).await;
        let h = &r.json()["headers"];
        assert_eq!(h["x-r-call-status"], "503", "{h}");
        assert_eq!(
            h["x-r-call-body"],
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        );
        let r = get(addr, "/api", &[("x-probe", "call=empty,/jwks,2000")]).await;
        let h = &r.json()["headers"];
        assert_eq!(h["x-r-call-status"], "503", "{h}");
        assert_eq!(h["x-r-call-body"], "no healthy upstream");
        // An unknown cluster is refused by the host call itself.
        let r = get(addr, "/api", &[("x-probe", "call=nope,/jwks,2000")]).await;
        assert_eq!(r.json()["headers"]["x-r-call"], "BAD_ARGUMENT");
        // Callouts count as upstream requests of their cluster.
        let stats = server.stats();
        let idp_total = stats
            .iter()
            .find(|s| s.name == "cluster.idp.upstream_rq_total")
            .unwrap();
        assert_eq!(idp_total.value, wasmesh_serve::stats::StatValue::Counter(2));
        stop(server);
    });
}

#[test]
fn grpc_callout_to_a_real_http2_upstream() {
    run(async {
        let grpc = upstream("grpc").await;
        let backend = upstream("backend").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: probe, wasm: probe}}
routes:
  - {{prefix: /, cluster: backend}}
clusters:
  backend: {{endpoints: ["{}"]}}
  grpc: {{endpoints: ["{}"], http2: true}}
"#,
            backend.addr, grpc.addr
        ));
        let r = get(
            server.listen_addr(),
            "/",
            &[("x-probe", "grpc=grpc,pkg.Echo,Say,2000,hello")],
        )
        .await;
        let h = &r.json()["headers"];
        assert_eq!(h["x-r-grpc"], "OK", "{h}");
        assert_eq!(h["x-r-grpc-status"], "0", "{h}");
        assert_eq!(h["x-r-grpc-body"], "echo:hello", "{h}");
        // A gRPC stream: the message goes up, the answer's initial metadata,
        // message, trailing metadata and close come back as they arrive (the
        // request stays paused meanwhile, so its context is there to see them).
        let addr = server.listen_addr();
        let paused = tokio::spawn(async move {
            get(
                addr,
                "/",
                &[(
                    "x-probe",
                    "grpcstream=grpc,pkg.Echo,Stream;grpcsend=hi,end;pause",
                )],
            )
            .await
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let want = [
            "initial-metadata",
            "message 7: echo:hi",
            "trailing-metadata",
            "close 0: 0",
        ];
        loop {
            let logs: Vec<String> = server
                .host()
                .logs_since(0)
                .iter()
                .map(|l| l.message.clone())
                .filter(|m| m.starts_with("grpc-stream"))
                .collect();
            if want.iter().all(|w| logs.iter().any(|l| l.contains(w))) {
                break;
            }
            assert!(Instant::now() < deadline, "gRPC stream callbacks: {logs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        paused.abort();
        // Let the runtime drop the client connection before draining.
        let _ = paused.await;
        stop(server);
    });
}

#[test]
fn bodies_stream_through_a_body_modifying_plugin_chunk_by_chunk() {
    run(async {
        let up = upstream("up").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: rewrite, wasm: body_rewrite, config: "request response"}}
clusters:
  upstream: {{endpoints: ["{}"]}}
"#,
            up.addr
        ));
        // The client sends three chunks with pauses; the upstream echoes each
        // chunk as it arrives and then sends three slow chunks of its own.
        let s = tokio::net::TcpStream::connect(server.listen_addr())
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        let req = http::Request::builder()
            .method("POST")
            .uri("/stream")
            .header("host", "x")
            .body(StreamBody::new(RxStream(rx)))
            .unwrap();
        let resp_fut = tokio::spawn(async move { sender.send_request(req).await.unwrap() });
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        let resp = resp_fut.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["x-body-rewrite-request-chunks"]
                .to_str()
                .unwrap(),
            "1",
            "the response started after the first request chunk"
        );
        let mut body = resp.into_body();
        // The first chunk comes back (upper-cased twice over is still upper
        // case) before the client sent the rest: real streaming both ways.
        let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("first chunk in time")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(&first[..], b"ABC");
        // Each further chunk is sent once the previous one came back.
        let mut rest = Vec::new();
        let mut frames = 1;
        for chunk in [&b"-def"[..], &b"-ghi"[..]] {
            tx.send(Ok(Frame::data(Bytes::from_static(chunk))))
                .await
                .unwrap();
            let echoed = chunk.to_ascii_uppercase();
            while !rest.ends_with(&echoed) {
                let f = tokio::time::timeout(Duration::from_secs(5), body.frame())
                    .await
                    .expect("chunk echoed in time")
                    .expect("a frame")
                    .unwrap();
                if let Ok(d) = f.into_data() {
                    frames += 1;
                    rest.extend_from_slice(&d);
                }
            }
        }
        drop(tx);
        while let Some(f) = body.frame().await {
            let f = f.unwrap();
            if let Ok(d) = f.into_data() {
                frames += 1;
                rest.extend_from_slice(&d);
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&rest),
            "-DEF-GHI|TAIL-0|TAIL-1|TAIL-2"
        );
        assert!(frames >= 4, "response arrived in {frames} frame(s)");
        // The plugin saw the bodies in several callbacks (metrics).
        let m = |n: &str| server.host().metric(n).map(|m| m.value).unwrap_or(-1);
        assert!(
            m("body_rewrite.request_chunks") >= 3,
            "{}",
            m("body_rewrite.request_chunks")
        );
        assert!(
            m("body_rewrite.response_chunks") >= 4,
            "{}",
            m("body_rewrite.response_chunks")
        );
        assert_eq!(m("body_rewrite.request_bytes"), 11);
        assert_eq!(m("body_rewrite.response_bytes"), 11 + 21);
        stop(server);
    });
}

#[test]
fn buffering_plugin_pauses_and_resumes_the_body() {
    run(async {
        let up = upstream("up").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: rewrite, wasm: body_rewrite, config: "buffer-request buffer-response"}}
clusters:
  upstream: {{endpoints: ["{}"]}}
"#,
            up.addr
        ));
        let r = request(
            server.listen_addr(),
            "POST",
            "/echo",
            &[],
            "hello body",
            false,
        )
        .await;
        assert_eq!(r.status, 200);
        // The request body reached the upstream in upper case; the response
        // (JSON) was upper-cased whole.
        assert!(r.body.contains(r#""BODY":"HELLO BODY""#), "{}", r.body);
        stop(server);
    });
}

#[test]
fn http2_prior_knowledge_and_trailers() {
    run(async {
        let up = upstream("up").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: probe, wasm: probe}}
clusters:
  upstream: {{endpoints: ["{}"], http2: true}}
"#,
            up.addr
        ));
        let addr = server.listen_addr();
        let r = request(
            addr,
            "GET",
            "/h2",
            &[("x-probe", "prop=request.protocol")],
            "",
            true,
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        let j = r.json();
        assert_eq!(j["headers"]["x-r-prop-request.protocol"], "HTTP/2");
        assert_eq!(
            j["version"], "HTTP/2.0",
            "the cluster speaks HTTP/2 upstream"
        );
        let r = request(addr, "GET", "/trailers", &[], "", true).await;
        assert_eq!(r.body, "with trailers");
        assert_eq!(
            r.trailers
                .as_ref()
                .and_then(|t| t.get("x-upstream-trailer"))
                .map(|v| v.to_str().unwrap()),
            Some("yes"),
            "{r:?}"
        );
        // Several concurrent streams on one HTTP/2 connection.
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut tasks = Vec::new();
        for i in 0..10 {
            let mut sender = sender.clone();
            tasks.push(tokio::spawn(async move {
                let req = http::Request::builder()
                    .uri(format!("http://x/c{i}?delay_ms=50"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                read_reply(sender.send_request(req).await.unwrap()).await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r.json()["path"], format!("/c{i}?delay_ms=50"));
        }
        stop(server);
    });
}

#[test]
fn trapping_plugin_is_contained_per_failure_policy() {
    run(async {
        let up = upstream("up").await;
        for (policy, after) in [
            ("fail_closed", 503),
            ("fail_reload", 200),
            ("fail_open", 200),
        ] {
            let server = start(&format!(
                r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: probe, wasm: probe, failure_policy: {policy}}}
clusters:
  upstream: {{endpoints: ["{}"]}}
"#,
                up.addr
            ));
            let addr = server.listen_addr();
            let r = get(addr, "/", &[("x-probe", "trap")]).await;
            let want = if policy == "fail_open" { 200 } else { 503 };
            assert_eq!(r.status, want, "{policy}: {r:?}");
            // The process survives; later requests follow the policy.
            for _ in 0..2 {
                let r = get(addr, "/", &[]).await;
                assert_eq!(r.status, after, "{policy} after the trap: {r:?}");
            }
            let failed = server
                .stats()
                .into_iter()
                .find(|s| s.name == "wasmesh.wasm_failed_streams")
                .unwrap();
            if policy != "fail_open" {
                assert_ne!(failed.value, wasmesh_serve::stats::StatValue::Counter(0));
            }
            stop(server);
        }
    });
}

#[test]
fn upstream_failures_and_timeouts_get_envoys_answers() {
    run(async {
        let up = upstream("up").await;
        let closing = closing_upstream().await;
        let dead = dead_port();
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: probe, wasm: probe}}
routes:
  - {{prefix: /empty, cluster: empty}}
  - {{prefix: /dead, cluster: dead}}
  - {{prefix: /closing, cluster: closing}}
  - {{prefix: /slow-route, cluster: up, timeout: 100ms}}
  - {{prefix: /, cluster: up}}
clusters:
  up: {{endpoints: ["{}"], timeout: 300ms}}
  empty: {{endpoints: []}}
  dead: {{endpoints: ["{dead}"]}}
  closing: {{endpoints: ["{closing}"]}}
"#,
            up.addr
        ));
        let addr = server.listen_addr();
        let r = get(addr, "/empty", &[]).await;
        assert_eq!((r.status, r.body.as_str()), (503, "no healthy upstream"));
        let r = get(addr, "/dead", &[]).await;
        assert_eq!(r.status, 503);
        assert_eq!(
            r.body,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        );
        let r = get(addr, "/closing", &[]).await;
        assert_eq!(r.status, 503);
        assert_eq!(
            r.body,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
        );
        let t0 = Instant::now();
        let r = get(addr, "/slow?delay_ms=2000", &[]).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (504, "upstream request timeout")
        );
        assert!(t0.elapsed() < Duration::from_millis(1500));
        let r = get(addr, "/slow-route?delay_ms=1000", &[]).await;
        assert_eq!(r.status, 504);
        // The failure reply passes the response filters, as Envoy's router
        // replies do: the probe sees it in its response-headers callback.
        let r = get(addr, "/dead", &[("x-probe-resp", "get=:status")]).await;
        assert_eq!(r.header("x-r-get-status"), Some("503"), "{r:?}");
        let stats = server.stats();
        let v = |n: &str| {
            stats
                .iter()
                .find(|s| s.name == n)
                .map(|s| s.value.clone())
                .unwrap_or_else(|| panic!("no stat {n}"))
        };
        use wasmesh_serve::stats::StatValue::Counter;
        assert_eq!(v("cluster.up.upstream_rq_timeout"), Counter(2));
        assert_eq!(v("cluster.dead.upstream_cx_connect_fail"), Counter(2));
        assert_eq!(v("http.ingress_http.downstream_rq_5xx"), Counter(6));
        stop(server);
    });
}

#[test]
fn admin_endpoints_like_envoys() {
    run(async {
        let up = upstream("up").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
workers: 2
access_log: off
properties:
  node.metadata.NAMESPACE: demo
chain:
  - {{name: probe, wasm: probe}}
clusters:
  upstream: {{endpoints: ["{}"]}}
"#,
            up.addr
        ));
        let addr = server.listen_addr();
        let name = "reporter=.=destination%3B.%3Bresponse_code=.=200%3B.%3Bprobe_requests_total";
        let cmd = format!("mdef=counter,{name};minc={name},1;prop=node.metadata.NAMESPACE");
        for _ in 0..3 {
            let r = get(addr, "/", &[("x-probe", &cmd)]).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.json()["headers"]["x-r-prop-node.metadata.namespace"],
                "demo"
            );
        }
        let r = admin_get(&server, "/ready").await;
        assert_eq!((r.status, r.body.as_str()), (200, "LIVE\n"));
        let r = admin_get(&server, "/stats").await;
        assert!(
            r.body
                .contains("http.ingress_http.downstream_rq_total: 3\n"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("cluster.upstream.upstream_rq_200: 3\n"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("wasmcustom.reporter=.=destination;.;response_code=.=200;.;probe_requests_total: 3\n"),
            "{}",
            r.body
        );
        let r = admin_get(&server, "/stats?filter=downstream_rq_2xx").await;
        assert_eq!(r.body, "http.ingress_http.downstream_rq_2xx: 3\n");
        let r = admin_get(&server, "/stats/prometheus").await;
        assert!(
            r.body.contains("# TYPE probe_requests_total counter\nprobe_requests_total{reporter=\"destination\",response_code=\"200\"} 3\n"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"ingress_http\"} 3\n"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("envoy_cluster_upstream_rq{envoy_response_code=\"200\",envoy_cluster_name=\"upstream\"} 3\n"),
            "{}",
            r.body
        );
        let r = admin_get(&server, "/config_dump").await;
        let j = r.json();
        assert_eq!(j["workers"], 2);
        assert_eq!(j["chain"][0]["name"], "probe");
        assert_eq!(
            j["clusters"]["upstream"]["endpoints"][0],
            up.addr.to_string()
        );
        assert_eq!(j["properties"]["node.metadata.NAMESPACE"], "demo");
        let r = admin_get(&server, "/nope").await;
        assert_eq!(r.status, 404);
        // POST /quitquitquit drains the server.
        let r = request(
            server.admin_addr().unwrap(),
            "POST",
            "/quitquitquit",
            &[],
            "",
            false,
        )
        .await;
        assert_eq!(r.status, 200);
        let r = admin_get(&server, "/ready").await;
        assert_eq!((r.status, r.body.as_str()), (503, "DRAINING\n"));
        stop(server);
    });
}

#[test]
fn shutdown_drains_in_flight_requests() {
    run(async {
        let up = upstream("up").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: off
chain:
  - {{name: probe, wasm: probe}}
clusters:
  upstream: {{endpoints: ["{}"]}}
"#,
            up.addr
        ));
        let addr = server.listen_addr();
        let inflight = tokio::spawn(async move { get(addr, "/slow?delay_ms=400", &[]).await });
        // Shut down once the request has reached the upstream (the
        // cluster's upstream_rq_active gauge), not after a guessed delay.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.stats().iter().any(|e| {
            e.name.ends_with("upstream_rq_active")
                && matches!(e.value, wasmesh_serve::stats::StatValue::Gauge(v) if v > 0)
        }) {
            assert!(
                Instant::now() < deadline,
                "the request never reached the upstream"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let stopper = std::thread::spawn(move || server.shutdown());
        let r = inflight.await.unwrap();
        assert_eq!(r.status, 200, "the in-flight request completed: {r:?}");
        stopper.join().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the listener is closed after shutdown"
        );
    });
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn bootstrap_text(file: &str, ports: &[(&str, SocketAddr)]) -> String {
    let mut t = std::fs::read_to_string(data_dir().join(file)).unwrap();
    for (k, a) in ports {
        t = t.replace(&format!("${{{k}}}"), &a.port().to_string());
    }
    t
}

#[test]
fn runs_an_envoy_bootstrap() {
    run(async {
        let v1 = upstream("backend-v1").await;
        let v2 = upstream("backend-v2").await;
        let text = bootstrap_text(
            "envoy-bootstrap.yaml",
            &[("V1_PORT", v1.addr), ("V2_PORT", v2.addr)],
        );
        let opts = RunOptions {
            wasm_dir: Some(wasm_dir()),
            echo_logs: false,
        };
        let mut config = ServeConfig::from_yaml_str(&text, &data_dir(), &opts).unwrap();
        assert_eq!(
            config.access_log,
            wasmesh_serve::config::AccessLogTarget::Stdout
        );
        config.access_log = wasmesh_serve::config::AccessLogTarget::Off;
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("access_log is ignored")),
            "{:?}",
            config.warnings
        );
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("/etc/envoy/probe.wasm does not exist here")),
            "{:?}",
            config.warnings
        );
        let server = Server::start_with(
            config,
            &ServeOptions {
                echo_plugin_logs: false,
                ..Default::default()
            },
        )
        .unwrap();
        let addr = server.listen_addr();
        let r = get(
            addr,
            "/api",
            &[("x-probe", "add-header:replace=x-added,yes")],
        )
        .await;
        assert_eq!(r.json()["cluster"], "backend-v1");
        // Both wasm filters ran, in order.
        let h = &r.json()["headers"];
        assert_eq!(h["x-added"], "yes", "{h}");
        // The configurations are the StringValues.
        let logs: Vec<String> = server
            .host()
            .logs_since(0)
            .iter()
            .map(|l| l.message.clone())
            .collect();
        assert!(
            logs.iter().any(|l| l == "on_vm_start vm-config"),
            "{logs:?}"
        );
        assert!(
            logs.iter().any(|l| l == "on_configure plugin-config"),
            "{logs:?}"
        );
        let r = get(addr, "/api", &[("x-version", "v2")]).await;
        assert_eq!(r.json()["cluster"], "backend-v2");
        let r = get(addr, "/pick", &[("x-target", "backend-v2")]).await;
        assert_eq!(r.json()["cluster"], "backend-v2");
        // stats_tags from the bootstrap are applied.
        let r = get(addr, "/api", &[("x-probe", "probe:mdef=counter,app=.=demo%3B.%3Bboot_total;probe:minc=app=.=demo%3B.%3Bboot_total,1")]).await;
        assert_eq!(r.status, 200);
        // fail_open from the bootstrap: a trap passes (the VM stays failed: later
        // requests skip it).
        let r = get(addr, "/api", &[("x-probe", "probe:trap")]).await;
        assert_eq!(r.status, 200);
        let r = admin_get(&server, "/stats/prometheus").await;
        assert!(
            r.body.contains("boot_total{app=\"demo\"} 1\n"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains(
                "envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"boot_http\"}"
            ),
            "{}",
            r.body
        );
        stop(server);
    });
}

#[test]
fn envoy_bootstrap_refuses_what_it_cannot_run() {
    let opts = RunOptions {
        wasm_dir: Some(wasm_dir()),
        echo_logs: false,
    };
    let template = std::fs::read_to_string(data_dir().join("envoy-bootstrap.yaml")).unwrap();
    let cases = [
        (
            "                  - name: envoy.filters.http.router",
            "                  - name: envoy.filters.http.cors\n                    typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}\n                  - name: envoy.filters.http.router",
            "unsupported HTTP filter `type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors`",
        ),
        ("stats_config:", "dynamic_resources: {}\nstats_config:", "dynamic_resources: not supported"),
        (
            "prefix: \"/pick\"",
            "safe_regex: {regex: \"/a.*\"}",
            "match.safe_regex: not supported",
        ),
        (
            "address: 127.0.0.1\n                      port_value: ${V1_PORT}",
            "address: 10.1.2.3\n                      port_value: 80",
            "10.1.2.3:80 is not a loopback address",
        ),
        (
            "filename: /etc/envoy/probe.wasm",
            "filename: /nowhere/missing.wasm",
            "wasm module `/nowhere/missing.wasm` not found",
        ),
        (
            "runtime: envoy.wasm.runtime.v8",
            "runtime: envoy.wasm.runtime.null",
            "`envoy.wasm.runtime.null` is not supported",
        ),
    ];
    for (from, to, want) in cases {
        assert!(template.contains(from), "fixture lacks {from:?}");
        let text = template
            .replacen(from, to, 1)
            .replace("${V1_PORT}", "1")
            .replace("${V2_PORT}", "2");
        let e = ServeConfig::from_yaml_str(&text, &data_dir(), &opts)
            .err()
            .unwrap_or_else(|| panic!("accepted: {to}"));
        assert!(e.contains(want), "{e}\nwanted: {want}");
    }
}

#[test]
fn serve_example_config_runs() {
    run(async {
        let up = upstream("example").await;
        let root = workspace_root().expect("workspace");
        let opts = RunOptions {
            wasm_dir: Some(wasm_dir()),
            echo_logs: false,
        };
        let mut config =
            ServeConfig::from_file(&root.join("examples/serve/serve.yaml"), &opts).unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin = Some("127.0.0.1:0".parse().unwrap());
        config.access_log = wasmesh_serve::config::AccessLogTarget::Off;
        for c in config.clusters.values_mut() {
            c.endpoints = vec![up.addr];
        }
        let server = Server::start_with(
            config,
            &ServeOptions {
                echo_plugin_logs: false,
                ..Default::default()
            },
        )
        .unwrap();
        let addr = server.listen_addr();
        let r = request(addr, "POST", "/echo", &[], "hello", false).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains(r#""BODY":"HELLO""#), "{}", r.body);
        let r = get(addr, "/", &[("x-probe", "trap")]).await;
        assert_eq!(r.status, 503);
        let r = get(addr, "/", &[]).await;
        assert_eq!(r.status, 200, "fail_reload: the VM was replaced");
        stop(server);
    });
}

#[test]
fn timers_run_on_the_real_clock_and_shared_data_spans_workers() {
    run(async {
        let up = upstream("up").await;
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 2
access_log: off
chain:
  - {{name: probe, wasm: probe}}
clusters:
  upstream: {{endpoints: ["{}"]}}
"#,
            up.addr
        ));
        let addr = server.listen_addr();
        // The stream pauses; the root context's tick resumes it ~150 ms later.
        let t0 = Instant::now();
        let r = get(addr, "/", &[("x-probe", "pausetick=150")]).await;
        let waited = t0.elapsed();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(waited >= Duration::from_millis(140), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        // Concurrent connections (spread over both workers' VMs) increment
        // one shared-data counter with CAS: every increment is seen.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            tasks.push(tokio::spawn(async move {
                get(addr, "/", &[("x-probe", "shincr=hits")]).await
            }));
        }
        let mut seen = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            seen.push(
                r.json()["headers"]["x-r-shincr-hits"]
                    .as_str()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap(),
            );
        }
        seen.sort();
        assert_eq!(seen, (1..=20).collect::<Vec<u32>>());
        stop(server);
    });
}

#[test]
fn access_log_line_per_request() {
    run(async {
        let up = upstream("up").await;
        let dead = dead_port();
        let log =
            std::env::temp_dir().join(format!("wasmesh-serve-access-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let server = start(&format!(
            r#"
listen: 127.0.0.1:0
workers: 1
access_log: {}
chain:
  - {{name: probe, wasm: probe}}
routes:
  - {{prefix: /dead, cluster: dead}}
  - {{prefix: /, cluster: up}}
clusters:
  up: {{endpoints: ["{}"]}}
  dead: {{endpoints: ["{dead}"]}}
"#,
            log.display(),
            up.addr
        ));
        let addr = server.listen_addr();
        get(
            addr,
            "/ok?x=1",
            &[("user-agent", "test-agent"), ("x-request-id", "rid-1")],
        )
        .await;
        get(addr, "/denied", &[("x-probe", "reply=403,no")]).await;
        get(addr, "/dead", &[]).await;
        stop(server);
        let text = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let up_host = up.addr.to_string();
        assert!(
            lines[0].contains("\"GET /ok?x=1 HTTP/1.1\" 200 - 0 ")
                && lines[0].contains(&format!(
                    "\"test-agent\" \"rid-1\" \"example.com\" \"{up_host}\" up via_upstream -"
                )),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("\"GET /denied HTTP/1.1\" 403 - 0 2 ")
                && lines[1].ends_with(" up - probe"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("\"GET /dead HTTP/1.1\" 503 UF ")
                && lines[2].ends_with(
                    " dead upstream_reset_before_response_started{connection_failure} -"
                ),
            "{}",
            lines[2]
        );
    });
}

/// Every Envoy bootstrap under `manifests/envoy/` is read and run: the
/// server starts with its chain (listener and admin moved to free ports) and
/// answers a request. There is at least one (`envoy.yaml`).
#[test]
fn runs_the_envoy_manifests() {
    let root = workspace_root().expect("workspace");
    let dir = root.join("manifests/envoy");
    let rd = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("static_resources")))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no Envoy bootstrap (static_resources) under {}",
        dir.display()
    );
    let opts = RunOptions {
        wasm_dir: Some(wasm_dir()),
        echo_logs: false,
    };
    run(async move {
        for f in files {
            let mut config = ServeConfig::from_file(&f, &opts)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            config.listen = "127.0.0.1:0".parse().unwrap();
            if config.admin.is_some() {
                config.admin = Some("127.0.0.1:0".parse().unwrap());
            }
            config.access_log = wasmesh_serve::config::AccessLogTarget::Off;
            let server = Server::start_with(
                config,
                &ServeOptions {
                    echo_plugin_logs: false,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let r = get(server.listen_addr(), "/", &[]).await;
            assert!(r.status >= 200, "{}: {r:?}", f.display());
            stop(server);
        }
    });
}
