//! Shared by the `serve_*` test files: a spawned `wasmesh serve` process,
//! an in-process server, deterministic large bodies and small clients.
#![allow(dead_code)]

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmesh::scenario::RunOptions;
use wasmesh_serve::{ServeConfig, ServeOptions, Server, ServerHandle};

pub fn wasm_dir() -> PathBuf {
    wasmesh::scenario::default_wasm_dir()
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("wasmesh-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An in-process server.
pub fn start(yaml: &str) -> ServerHandle {
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
            keep_access_log: 64,
        },
    )
    .unwrap_or_else(|e| panic!("start: {e}"))
}

pub fn stop(server: ServerHandle) {
    std::thread::spawn(move || server.shutdown())
        .join()
        .unwrap();
}

/// The value of a stat of an in-process server.
pub fn stat(server: &ServerHandle, name: &str) -> i64 {
    server
        .stats()
        .iter()
        .find(|s| s.name == name)
        .map(|s| match s.value {
            wasmesh_serve::stats::StatValue::Counter(v) => v as i64,
            wasmesh_serve::stats::StatValue::Gauge(v) => v,
            _ => panic!("{name} is a histogram"),
        })
        .unwrap_or_else(|| panic!("no stat {name}"))
}

/// Runs `f` on a current-thread runtime (the server has its own threads).
pub fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

/// A spawned `wasmesh serve` process.
pub struct Spawned {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    lines_rx: std::sync::mpsc::Receiver<String>,
    _dir: PathBuf,
}

impl Spawned {
    /// Starts `wasmesh serve` on `yaml` (written to a temp file) with
    /// `extra` arguments and waits for its "listening on" line.
    pub fn start(yaml: &str, extra: &[&str]) -> Spawned {
        let dir = temp_dir("serve");
        let file = dir.join("serve.yaml");
        std::fs::write(&file, yaml).unwrap();
        Self::start_file(&file, extra, dir)
    }

    pub fn start_file(file: &Path, extra: &[&str], dir: PathBuf) -> Spawned {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmesh"))
            .arg("serve")
            .arg(file)
            .arg("--wasm-dir")
            .arg(wasm_dir())
            .arg("--quiet")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wasmesh serve");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("listening on http://") => break Some(l),
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        let line = match found {
            Some(l) => l,
            None => {
                let _ = child.kill();
                panic!(
                    "wasmesh serve did not start:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
        };
        let addr = |after: &str| -> Option<SocketAddr> {
            let rest = &line[line.find(after)? + after.len()..];
            let end = rest.find([' ', ',', ')']).unwrap_or(rest.len());
            rest[..end].parse().ok()
        };
        Spawned {
            listen: addr("listening on http://").expect("listen address"),
            admin: addr("admin on http://"),
            child,
            stderr: lines,
            lines_rx: rx,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| {
                let rest = l.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/pid/status"))
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "wasmesh serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the next stderr line containing `pat` (bounded).
    pub fn wait_line(&self, pat: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines_rx.recv_timeout(left) {
                Ok(l) if l.contains(pat) => return l,
                Ok(_) => continue,
                Err(_) => panic!("no line with `{pat}`; stderr:\n{}", self.stderr_text()),
            }
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

// ----------------------------------------------------------------------
// Large deterministic bodies

/// Byte `i` of every pattern body.
pub fn pattern_chunk(k: u64, len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    for (i, b) in v.iter_mut().enumerate() {
        *b = (k as u8)
            .wrapping_mul(31)
            .wrapping_add((i as u8).wrapping_mul(7));
    }
    Bytes::from(v)
}

/// FNV-1a over a byte stream, fed in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub len: u64,
    pub hash: u64,
}

impl Default for Digest {
    fn default() -> Digest {
        Digest {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Digest {
    pub fn update(&mut self, b: &[u8]) {
        self.len += b.len() as u64;
        let mut h = self.hash;
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        self.hash = h;
    }
}

pub const CHUNK: usize = 64 * 1024;

/// The digest of a pattern body of `total` bytes.
pub fn pattern_digest(total: u64) -> Digest {
    let mut d = Digest::default();
    let mut k = 0;
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        d.update(&pattern_chunk(k, n));
        left -= n as u64;
        k += 1;
    }
    d
}

/// A body of `total` pattern bytes, generated as it is polled.
pub struct PatternBody {
    left: u64,
    k: u64,
}

impl PatternBody {
    pub fn new(total: u64) -> PatternBody {
        PatternBody { left: total, k: 0 }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK as u64) as usize;
        let c = pattern_chunk(self.k, n);
        self.k += 1;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(c))))
    }
    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// Reads a body in bursts: after every `burst` bytes, a pause of `pause`
/// (a moderately slow reader). Returns its digest.
pub async fn slow_read<B>(mut body: B, burst: u64, pause: Duration) -> Digest
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut d = Digest::default();
    let mut since = 0;
    while let Some(f) = body.frame().await {
        let f = f.expect("body frame");
        if let Ok(data) = f.into_data() {
            d.update(&data);
            since += data.len() as u64;
            if since >= burst {
                since = 0;
                tokio::time::sleep(pause).await;
            }
        }
    }
    d
}

// ----------------------------------------------------------------------
// Clients

/// What the client got.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers.get(n).and_then(|v| v.to_str().ok())
    }
}

pub async fn read_reply(resp: http::Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let c = body.collect().await.expect("response body");
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&c.to_bytes()).into_owned(),
    }
}

/// Sends one request on a new connection (HTTP/1.1 or HTTP/2 prior
/// knowledge) and returns the response head (body unread).
pub async fn send<B>(addr: SocketAddr, req: http::Request<B>, h2: bool) -> http::Response<Incoming>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(s);
    if h2 {
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
    }
}

pub fn request<B>(method: &str, path: &str, body: B, h2: bool) -> http::Request<B> {
    let mut b = http::Request::builder().method(method);
    if h2 {
        b = b.uri(format!("http://example.com{path}"));
    } else {
        b = b.uri(path).header("host", "example.com");
    }
    b.body(body).unwrap()
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    read_reply(
        send(
            addr,
            request("GET", path, Full::new(Bytes::new()), false),
            false,
        )
        .await,
    )
    .await
}

// ----------------------------------------------------------------------
// Upstreams

pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

pub fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).boxed_unsync()
}

/// Serves `handler` on a loopback port (HTTP/1.1 and HTTP/2); call inside
/// [`run_local`].
pub async fn upstream<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = http::Response<BoxBody>> + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::task::spawn_local(async move {
        while let Ok((s, _)) = listener.accept().await {
            let h = handler.clone();
            tokio::task::spawn_local(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(LocalExec)
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// Runs hyper's connection tasks on the current `LocalSet`.
#[derive(Clone, Copy)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// Runs `f` inside a `LocalSet` (upstreams use `spawn_local`).
pub fn run_local<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, f);
}
