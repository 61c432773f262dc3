//! `wasmesh demo`: the whole suite on real HTTP traffic, in one process.
//!
//! [`Demo::start`] starts
//!
//! * an embedded **identity provider** on the `idp` cluster: it generates an
//!   Ed25519 key pair at start, serves the public key as a JWKS
//!   (`/.well-known/jwks.json`) and issues demo tokens (`/token/<user>`) for
//!   `alice` (group `users`), `bob` (groups `users`, `beta`) and `carol`
//!   (groups `users`, `admin`);
//! * an embedded **echo upstream** per other cluster (`reviews-v1`,
//!   `reviews-v2`): it answers with JSON naming its cluster and the method,
//!   path and headers it received;
//! * `wasmesh serve` ([`Server::start_with`]) with the configuration of
//!   `examples/demo/serve.yaml`: jwt-authn → rbac → header-router →
//!   fault-injection → custom-metrics.
//!
//! [`Demo::tour`] then sends a fixed series of requests with a real HTTP
//! client and checks each answer: status, which filter decided (from the
//! access log entry of the request), which cluster answered and the headers
//! the upstream saw; finally it reads `/stats/prometheus` from the admin
//! listener. The [`TourReport`] prints as a table.

use super::access_log::Entry;
use super::config::ServeConfig;
pub use super::demo_tour::{tour_steps, Step, StepSpec, TourReport, SEEN_HEADERS};
use super::{ServeOptions, Server, ServerHandle};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The issuer of the demo tokens (`jwtRules[].issuer` in the demo config).
pub const ISSUER: &str = "https://idp.wasmesh.demo";
/// The audience of the demo tokens.
pub const AUDIENCE: &str = "reviews";
/// The cluster the identity provider listens on.
pub const IDP_CLUSTER: &str = "idp";
/// The `host` the tour sends (gives Istio's `destination_service` labels).
pub const HOST: &str = "reviews.demo.svc.cluster.local";
const KID: &str = "demo-1";

/// The demo users: name and groups.
pub const USERS: &[(&str, &[&str])] = &[
    ("alice", &["users"]),
    ("bob", &["users", "beta"]),
    ("carol", &["users", "admin"]),
];

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The serve configuration (default `examples/demo/serve.yaml`).
    pub config: PathBuf,
    /// Directory of the `.wasm` artifacts.
    pub wasm_dir: Option<PathBuf>,
    /// Bind everything on free ports instead of the configuration's.
    pub any_ports: bool,
    /// Print plugin log lines on stderr.
    pub echo_plugin_logs: bool,
    /// Start only the identity provider: the other clusters are real
    /// services already listening on their endpoints (benchmarks).
    pub idp_only: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        let root = crate::scenario::workspace_root().unwrap_or_else(|| PathBuf::from("."));
        DemoOptions {
            config: root.join("examples/demo/serve.yaml"),
            wasm_dir: None,
            any_ports: true,
            echo_plugin_logs: false,
            idp_only: false,
        }
    }
}

/// The identity provider's key and tokens.
pub struct Idp {
    key: ed25519_compact::KeyPair,
    tokens: BTreeMap<String, String>,
}

pub(super) fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        let chars = c.len() + 1;
        for i in 0..chars {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut seed).is_ok() {
            return seed;
        }
    }
    // No /dev/urandom: the standard library's randomly keyed hasher.
    use std::hash::{BuildHasher, Hasher};
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

impl Idp {
    /// A fresh key pair and a token per demo user, valid for 24 hours.
    pub fn generate() -> Idp {
        let key = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(random_seed()));
        let mut idp = Idp {
            key,
            tokens: BTreeMap::new(),
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        for (user, groups) in USERS {
            let claims = json!({
                "iss": ISSUER, "sub": user, "aud": AUDIENCE,
                "iat": now, "exp": now + 24 * 3600, "groups": groups,
            });
            let t = idp.sign(&claims);
            idp.tokens.insert(user.to_string(), t);
        }
        idp
    }

    /// A signed token (EdDSA) with these claims.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": KID});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.key.sk.sign(input.as_bytes(), None);
        format!("{input}.{}", b64url(sig.as_ref()))
    }

    /// The demo token of `user`.
    pub fn token(&self, user: &str) -> Option<&str> {
        self.tokens.get(user).map(|s| s.as_str())
    }

    /// The public key set.
    pub fn jwks(&self) -> String {
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": KID,
            "x": b64url(self.key.pk.as_ref()),
        }]})
        .to_string()
    }
}

type Resp = http::Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: String) -> Resp {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn idp_answer(idp: &Idp, req: &http::Request<hyper::body::Incoming>) -> Resp {
    let path = req.uri().path();
    if path == "/.well-known/jwks.json" {
        return reply(200, "application/json", idp.jwks());
    }
    if let Some(user) = path.strip_prefix("/token/") {
        if let Some(t) = idp.token(user) {
            return reply(200, "text/plain", format!("{t}\n"));
        }
    }
    reply(404, "text/plain", "not found\n".into())
}

fn echo_answer(cluster: &str, req: &http::Request<hyper::body::Incoming>) -> Resp {
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    let body = json!({
        "cluster": cluster,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    });
    let mut r = reply(200, "application/json", format!("{body:#}\n"));
    if let Ok(v) = http::HeaderValue::from_str(cluster) {
        r.headers_mut().insert("x-demo-upstream", v);
    }
    r
}

/// The embedded upstreams and identity provider, on one thread.
struct Backends {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backends {
    /// `listeners`: (cluster, bound listener); the `idp` cluster gets the
    /// identity provider, every other one an echo upstream.
    fn start(
        listeners: Vec<(String, std::net::TcpListener)>,
        idp: Arc<Idp>,
    ) -> Result<Backends, String> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wasmesh-demo-backends".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    for (cluster, l) in listeners {
                        let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                            continue;
                        };
                        let idp = idp.clone();
                        tokio::spawn(async move {
                            loop {
                                let Ok((s, _)) = l.accept().await else {
                                    tokio::time::sleep(Duration::from_millis(5)).await;
                                    continue;
                                };
                                let cluster = cluster.clone();
                                let idp = idp.clone();
                                tokio::spawn(async move {
                                    let svc = hyper::service::service_fn(
                                        move |req: http::Request<hyper::body::Incoming>| {
                                            let r = if cluster == IDP_CLUSTER {
                                                idp_answer(&idp, &req)
                                            } else {
                                                echo_answer(&cluster, &req)
                                            };
                                            async move {
                                                let _ = req.into_body().collect().await;
                                                Ok::<_, Infallible>(r)
                                            }
                                        },
                                    );
                                    let _ = hyper_util::server::conn::auto::Builder::new(
                                        TokioExecutor::new(),
                                    )
                                    .serve_connection(TokioIo::new(s), svc)
                                    .await;
                                });
                            }
                        });
                    }
                    let _ = rx.await;
                });
            })
            .map_err(|e| format!("demo backends: {e}"))?;
        Ok(Backends {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running demo: identity provider, upstreams and the proxy.
pub struct Demo {
    server: Option<ServerHandle>,
    backends: Backends,
    idp: Arc<Idp>,
    idp_addr: SocketAddr,
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("{addr}: {e}"))?;
    Ok(l)
}

impl Demo {
    /// Starts the identity provider and the upstreams on the configuration's
    /// cluster endpoints (or on free ports, rewriting the clusters), then the
    /// proxy.
    pub fn start(opts: &DemoOptions) -> Result<Demo, String> {
        let run = crate::scenario::RunOptions {
            wasm_dir: opts.wasm_dir.clone(),
            echo_logs: false,
        };
        let mut config = ServeConfig::from_file(&opts.config, &run)?;
        if !config.clusters.contains_key(IDP_CLUSTER) {
            return Err(format!(
                "{}: the demo needs a cluster `{IDP_CLUSTER}` for its identity provider",
                opts.config.display()
            ));
        }
        let idp = Arc::new(Idp::generate());
        let mut listeners = Vec::new();
        let mut idp_addr = None;
        for (name, cluster) in config.clusters.iter_mut() {
            if opts.idp_only && name != IDP_CLUSTER {
                continue;
            }
            let want = if opts.any_ports {
                SocketAddr::from(([127, 0, 0, 1], 0))
            } else {
                *cluster.endpoints.first().ok_or_else(|| {
                    format!("cluster `{name}` has no endpoint for the demo to listen on")
                })?
            };
            let l = bind(want).map_err(|e| format!("cluster `{name}`: {e}"))?;
            let addr = l.local_addr().map_err(|e| e.to_string())?;
            cluster.endpoints = vec![addr];
            if name == IDP_CLUSTER {
                idp_addr = Some(addr);
            }
            listeners.push((name.clone(), l));
        }
        if opts.any_ports {
            config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
            if config.admin.is_some() {
                config.admin = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            }
        } else if config.admin.is_none() {
            return Err("the demo needs an `admin` listener for /stats/prometheus".into());
        }
        if config.admin.is_none() {
            config.admin = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        let backends = Backends::start(listeners, idp.clone())?;
        let server = Server::start_with(
            config,
            &ServeOptions {
                echo_plugin_logs: opts.echo_plugin_logs,
                // The tour reads the entries; a benchmark does not.
                keep_access_log: if opts.idp_only { 0 } else { 1024 },
            },
        )?;
        Ok(Demo {
            server: Some(server),
            backends,
            idp,
            idp_addr: idp_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        })
    }

    fn server(&self) -> &ServerHandle {
        // Only `wait`/`shutdown` take it, and they consume the demo.
        self.server.as_ref().expect("running")
    }

    /// The proxy's listener.
    pub fn listen_addr(&self) -> SocketAddr {
        self.server().listen_addr()
    }

    /// The proxy's admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.server().admin_addr().unwrap_or(self.listen_addr())
    }

    /// The identity provider's address.
    pub fn idp_addr(&self) -> SocketAddr {
        self.idp_addr
    }

    /// The identity provider (tokens, signing).
    pub fn idp(&self) -> &Idp {
        &self.idp
    }

    /// The running server.
    pub fn handle(&self) -> &ServerHandle {
        self.server()
    }

    /// Sends the tour's requests and checks every answer.
    pub fn tour(&self) -> TourReport {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                return TourReport {
                    steps: Vec::new(),
                    metrics: Vec::new(),
                    problems: vec![format!("runtime: {e}")],
                }
            }
        };
        rt.block_on(self.tour_async())
    }

    async fn tour_async(&self) -> TourReport {
        let mut steps = Vec::new();
        for (i, spec) in tour_steps(&self.idp).into_iter().enumerate() {
            steps.push(self.run_step(i + 1, spec).await);
        }
        let (metrics, problems) = self.check_metrics().await;
        TourReport {
            steps,
            metrics,
            problems,
        }
    }

    async fn run_step(&self, n: usize, spec: StepSpec) -> Step {
        let request_id = format!("demo-{n}-{}", std::process::id());
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), HOST.into()),
            ("x-request-id".into(), request_id.clone()),
        ];
        if let Some(t) = &spec.token {
            headers.push(("authorization".into(), format!("Bearer {t}")));
        }
        for (k, v) in &spec.headers {
            headers.push((k.to_string(), v.to_string()));
        }
        let started = Instant::now();
        let result = http_get(self.listen_addr(), spec.path, &headers).await;
        let elapsed = started.elapsed();
        let mut step = Step {
            name: spec.name.to_string(),
            request: spec.describe(),
            status: 0,
            decided_by: "-".into(),
            details: "-".into(),
            flags: "-".into(),
            cluster: "-".into(),
            seen: "-".into(),
            duration: elapsed,
            problems: Vec::new(),
        };
        let (status, body) = match result {
            Ok(r) => r,
            Err(e) => {
                step.problems.push(format!("request failed: {e}"));
                return step;
            }
        };
        step.status = status;
        let upstream: Option<Value> = serde_json::from_str::<Value>(&body)
            .ok()
            .filter(|v| v.get("cluster").is_some());
        if let Some(u) = &upstream {
            step.cluster = u["cluster"].as_str().unwrap_or("-").to_string();
            let seen: Vec<String> = SEEN_HEADERS
                .iter()
                .filter_map(|h| u["headers"][*h].as_str().map(|v| format!("{h}: {v}")))
                .collect();
            step.seen = if seen.is_empty() {
                "(none)".into()
            } else {
                seen.join("; ")
            };
        }
        if let Some(e) = self.access_log_entry(&request_id).await {
            step.details = e.details.clone().unwrap_or_else(|| "-".into());
            step.flags = e.flags.clone();
            step.decided_by = match (&e.local_reply_by, e.details.as_deref()) {
                (Some(p), _) if !p.is_empty() => p.clone(),
                (_, Some("via_upstream")) => "upstream".into(),
                (_, Some(d)) => format!("proxy ({d})"),
                _ => "-".into(),
            };
        } else {
            step.problems.push("no access log entry".into());
        }
        // The checks.
        if status != spec.status {
            step.problems
                .push(format!("status {status}, expected {}", spec.status));
        }
        if step.decided_by != spec.decided_by {
            step.problems.push(format!(
                "decided by {}, expected {}",
                step.decided_by, spec.decided_by
            ));
        }
        if let Some(d) = spec.details_prefix {
            if !step.details.starts_with(d) {
                step.problems
                    .push(format!("details {}, expected {d}...", step.details));
            }
        }
        match (spec.cluster, &upstream) {
            (Some(c), Some(_)) if step.cluster != c => step
                .problems
                .push(format!("answered by {}, expected {c}", step.cluster)),
            (Some(c), None) => step
                .problems
                .push(format!("no upstream answered, expected {c}")),
            (None, Some(_)) => step
                .problems
                .push(format!("reached {}, expected a local reply", step.cluster)),
            _ => {}
        }
        if let Some(u) = &upstream {
            for (h, want) in &spec.seen {
                let got = u["headers"][*h].as_str();
                if got != *want {
                    step.problems.push(format!(
                        "upstream saw {h}: {}, expected {}",
                        got.unwrap_or("(absent)"),
                        want.unwrap_or("(absent)")
                    ));
                }
            }
        }
        if let Some(min) = spec.min_duration {
            if elapsed < min {
                step.problems.push(format!(
                    "took {} ms, expected at least {} ms",
                    elapsed.as_millis(),
                    min.as_millis()
                ));
            }
        }
        step
    }

    /// The access log entry of a request (written when its stream ends,
    /// which may be just after the client got the response).
    async fn access_log_entry(&self, request_id: &str) -> Option<Entry> {
        for _ in 0..100 {
            let found = self
                .server()
                .recent_access_log()
                .into_iter()
                .rev()
                .find(|e| e.request_id.as_deref() == Some(request_id));
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    async fn check_metrics(&self) -> (Vec<String>, Vec<String>) {
        let wanted: &[(&str, &[&str])] = &[
            ("istio_requests_total{", &["response_code=\"200\""]),
            ("istio_requests_total{", &["response_code=\"401\""]),
            ("istio_requests_total{", &["response_code=\"403\""]),
            (
                "istio_requests_total{",
                &["response_code=\"503\"", "response_flags=\"FI\""],
            ),
            (
                "istio_requests_total{",
                &["response_code=\"200\"", "response_flags=\"DI\""],
            ),
            (
                "demo_requests_total{",
                &["cluster=\"reviews-v1\"", "code=\"200\"", "user=\"alice\""],
            ),
            (
                "demo_requests_total{",
                &["cluster=\"reviews-v2\"", "code=\"200\"", "user=\"bob\""],
            ),
            ("demo_requests_total{", &["code=\"403\"", "user=\"alice\""]),
        ];
        let mut problems = Vec::new();
        let mut lines = Vec::new();
        // Metrics are recorded when each stream ends: wait for the last ones.
        for attempt in 0..50 {
            problems.clear();
            lines.clear();
            match http_get(self.admin_addr(), "/stats/prometheus", &[]).await {
                Ok((200, text)) => {
                    lines = text
                        .lines()
                        .filter(|l| {
                            l.starts_with("istio_requests_total{")
                                || l.starts_with("demo_requests_total{")
                        })
                        .map(str::to_string)
                        .collect();
                    for (metric, labels) in wanted {
                        if !lines
                            .iter()
                            .any(|l| l.starts_with(metric) && labels.iter().all(|x| l.contains(x)))
                        {
                            problems.push(format!(
                                "no {}...}} series with {}",
                                metric.trim_end_matches('{'),
                                labels.join(",")
                            ));
                        }
                    }
                }
                Ok((s, _)) => problems.push(format!("/stats/prometheus answered {s}")),
                Err(e) => problems.push(format!("/stats/prometheus: {e}")),
            }
            if problems.is_empty() || attempt == 49 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (lines, problems)
    }

    /// Ready-to-paste shell commands with the real tokens and ports.
    pub fn curl_commands(&self) -> String {
        let proxy = self.listen_addr();
        let admin = self.admin_addr();
        let t = |u: &str| self.idp.token(u).unwrap_or("").to_string();
        format!(
            "\
# Demo tokens (valid 24 h; also at http://{idp}/token/<user>):
export ALICE='{a}'
export BOB='{b}'
export CAROL='{c}'

curl -i http://{proxy}/reviews/1                                          # 401: no token (jwt-authn)
curl -i -H \"authorization: Bearer $ALICE\" http://{proxy}/reviews/1        # 200 from reviews-v1, x-user: alice
curl -i -H \"authorization: Bearer $BOB\" http://{proxy}/reviews/1          # 200 from reviews-v2 (beta group)
curl -i -H \"authorization: Bearer $ALICE\" -H 'x-beta: true' http://{proxy}/reviews/1   # opt-in header: reviews-v2
curl -i -H \"authorization: Bearer $ALICE\" http://{proxy}/admin            # 403 (rbac)
curl -i -H \"authorization: Bearer $CAROL\" http://{proxy}/admin            # 200 (admin group)
curl -i -H \"authorization: Bearer $ALICE\" -H 'x-chaos: delay' http://{proxy}/reviews/1 # 500 ms later (fault-injection)
curl -i -H \"authorization: Bearer $ALICE\" -H 'x-chaos: abort' http://{proxy}/reviews/1 # 503 fault filter abort
curl -i -H \"authorization: Bearer $ALICE\" -H 'x-user: admin' http://{proxy}/reviews/1  # upstream sees x-user: alice
curl -s http://{admin}/stats/prometheus | grep -E '^(istio_requests_total|demo_requests_total)'
curl -s http://{admin}/stats | grep -E '^wasmcustom\\.(jwt_authn|rbac|header_router|fault)\\.'
curl -s http://{admin}/config_dump
curl -s http://{idp}/.well-known/jwks.json
",
            idp = self.idp_addr,
            a = t("alice"),
            b = t("bob"),
            c = t("carol"),
        )
    }

    /// Blocks until SIGINT/SIGTERM (or `POST /quitquitquit`), then stops.
    pub fn wait(mut self) {
        if let Some(s) = self.server.take() {
            s.wait();
        }
        self.backends.stop();
    }

    /// Stops the proxy, then the upstreams and the identity provider.
    pub fn shutdown(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        self.backends.stop();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        self.backends.stop();
    }
}

/// One HTTP/1.1 GET on a new connection: status and body.
async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> Result<(u16, String), String> {
    let s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut b = http::Request::builder().method("GET").uri(path);
    if !headers.iter().any(|(k, _)| k == "host") {
        b = b.header("host", addr.to_string());
    }
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The `wasmesh demo` command: runs the tour and prints it; with `keep`,
/// then leaves everything running (on the configuration's ports) and prints
/// `curl` commands until Ctrl-C. Returns whether the tour passed.
///
/// `tour: false` skips the tour (with `keep`: just run the demo's servers).
pub fn run_cli(mut opts: DemoOptions, keep: bool, tour: bool) -> Result<bool, String> {
    opts.any_ports = !keep;
    println!(
        "wasmesh demo: starting the identity provider, the upstreams and wasmesh serve ({})",
        opts.config.display()
    );
    let demo = Demo::start(&opts)?;
    let cfg = demo.handle().config();
    let chain: Vec<&str> = cfg.chain.plugins.iter().map(|p| p.name.as_str()).collect();
    println!(
        "wasmesh serve on http://{} (admin http://{}), chain: {}",
        demo.listen_addr(),
        demo.admin_addr(),
        chain.join(" -> ")
    );
    let clusters: Vec<String> = cfg
        .clusters
        .iter()
        .map(|(n, c)| {
            let role = if n == IDP_CLUSTER {
                "identity provider"
            } else if opts.idp_only {
                "external"
            } else {
                "echo upstream"
            };
            let ep = c
                .endpoints
                .first()
                .map(|e| e.to_string())
                .unwrap_or_default();
            format!("{n} = {role} on {ep}")
        })
        .collect();
    println!("clusters: {}\n", clusters.join(", "));
    let mut passed = true;
    if tour {
        let report = demo.tour();
        print!("{report}");
        passed = report.passed();
    }
    if keep {
        println!("\nEverything keeps running. Try it (Ctrl-C to stop):\n");
        println!("{}", demo.curl_commands());
        demo.wait();
    } else {
        demo.shutdown();
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_without_padding() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(b"foob"), "Zm9vYg");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn tokens_verify_with_the_published_key() {
        let idp = Idp::generate();
        let t = idp.token("bob").unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let jwks: Value = serde_json::from_str(&idp.jwks()).unwrap();
        assert_eq!(jwks["keys"][0]["x"], b64url(idp.key.pk.as_ref()));
        let sig = ed25519_compact::Signature::from_slice(&decode(parts[2])).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(idp.key.pk.verify(input.as_bytes(), &sig).is_ok());
        let claims: Value = serde_json::from_slice(&decode(parts[1])).unwrap();
        assert_eq!(claims["groups"], json!(["users", "beta"]));
        assert_eq!(claims["iss"], ISSUER);
        // A second start has another key.
        assert_ne!(Idp::generate().jwks(), idp.jwks());
    }

    fn decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes() {
            bits = bits << 6 | val(c) as u32;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        out
    }
}
