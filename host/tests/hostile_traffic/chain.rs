//! The five-filter chain (jwt_authn → rbac → header_router →
//! fault_injection → custom_metrics, the real release `.wasm` files) on a
//! harness worker, and a small driver that runs one request to completion:
//! the upstream answers 200, callouts are answered, timers fire on a
//! virtual clock. Shared by the hostile-traffic and soak tests.

use super::fixtures;
use std::sync::Arc;
use wasmesh::chain::{ChainConfig, PluginConfig, Route, RouteAction, StreamEvent};
use wasmesh::headers::HeaderMap;
use wasmesh::host::{Clock, HostShared};
use wasmesh::properties::{PropertyMap, Value};
use wasmesh::types::LogLevel;
use wasmesh::{Runtime, Worker};

/// Plugin names, in chain order.
pub const PLUGINS: [&str; 5] = ["authn", "rbac", "router", "fault", "metrics"];

/// Clusters the router may pick (plus `web`, the default route's).
pub const CLUSTERS: [&str; 4] = ["web", "reviews-v1", "reviews-v2", "maintenance"];

fn authn_config() -> String {
    serde_json::json!({
        "jwtRules": [{
            "name": "idp",
            "issuer": "https://idp.example.com",
            "jwks": fixtures::JWKS,
            "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}],
        }]
    })
    .to_string()
}

const RBAC: &str = r#"{
  "policies": [
    {"name": "need-token", "action": "DENY",
     "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}], "to": [{"operation": {"paths": ["/api/*", "/admin/*"]}}]}]},
    {"name": "no-debug", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/debug", "/debug/*"]}}]}]},
    {"name": "no-delete", "action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]},
    {"name": "readers", "rules": [{
      "from": [{"source": {"requestPrincipals": ["https://idp.example.com/*"]}}],
      "to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/api/*"]}}],
      "when": [{"key": "request.auth.claims[groups]", "values": ["readers"]},
               {"key": "request.auth.audiences", "values": ["orders-api"]}]}]},
    {"name": "writers", "rules": [{
      "to": [{"operation": {"methods": ["POST"], "paths": ["/api/*"]}}],
      "when": [{"key": "request.auth.claims[groups]", "values": ["writers"]}]}]},
    {"name": "admins", "rules": [{
      "to": [{"operation": {"paths": ["/admin/*"]}}],
      "when": [{"key": "request.auth.principal", "values": ["https://idp.example.com/alice"]}]}]},
    {"name": "public", "rules": [{"to": [{"operation": {"paths": ["/", "/public/*", "/reviews/*", "/old/*"]}}]}]},
    {"name": "audit-posts", "action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]}
  ]
}"#;

const ROUTER: &str = r#"{
  "routes": [
    {"name": "beta", "match": [{"headers": {"x-beta": {"exact": "true"}}}, {"claims": {"groups": {"exact": "writers"}}}],
     "route": [{"destination": "reviews-v2"}], "headers": {"request": {"set": {"x-variant": "v2"}, "remove": ["x-debug"]}}},
    {"name": "canary", "match": [{"uri": {"prefix": "/reviews"}}],
     "route": [{"destination": "reviews-v1", "weight": 90}, {"destination": "reviews-v2", "weight": 10}],
     "stickyBy": {"header": "x-user-id"}},
    {"name": "rewrite", "match": [{"uri": {"prefix": "/old/"}}], "rewrite": {"uri": "/public/"}, "route": [{"destination": "web"}]},
    {"name": "retired", "match": [{"uri": {"prefix": "/public/v1/"}}], "directResponse": {"status": 410, "body": {"string": "v1 is retired"}}},
    {"name": "moved", "match": [{"uri": {"exact": "/public/shop"}}], "redirect": {"authority": "shop.example.com", "redirectCode": 302}}
  ],
  "defaultDestination": "web"
}"#;

const FAULT: &str = r#"{
  "faults": [
    {"name": "flaky", "match": [{"uri": {"prefix": "/api/flaky"}}], "abort": {"httpStatus": 503, "percentage": {"value": 50}}},
    {"name": "slow", "match": [{"headers": {"x-chaos": {"exact": "slow"}}}], "delay": {"fixedDelay": "150ms"}}
  ],
  "headerControl": {"enabled": true, "maxPercentage": 100},
  "maxActiveFaults": 50
}"#;

const METRICS: &str = r#"{
  "standardMetrics": true,
  "reporter": "destination",
  "metrics": [
    {"name": "api_requests_total", "type": "COUNTER",
     "dimensions": {"method": "request.method", "code": "response.code", "route": "request.path_template",
                    "user": "request.auth.claims[sub]", "plan": "request.headers[x-plan]"}},
    {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms", "dimensions": {"method": "request.method"}}
  ],
  "pathTemplates": ["/api/{thing}", "/admin/{thing}"],
  "maxLabelValues": 100
}"#;

/// Statuses each plugin may answer with locally in this chain
/// (`fault` honours `x-envoy-fault-abort-request`: any of Envoy's [200, 600)).
pub fn allowed_local(plugin: &str, status: u32) -> bool {
    match plugin {
        "authn" => matches!(status, 401 | 403),
        "rbac" => matches!(status, 400 | 403),
        "router" => matches!(status, 410 | 302),
        "fault" => (200..600).contains(&status),
        _ => false,
    }
}

/// The chain's configuration (release artifacts of this workspace).
pub fn config() -> ChainConfig {
    wasmesh::scenario::ensure_artifacts().expect("build the .wasm artifacts");
    let dir = wasmesh::scenario::default_wasm_dir();
    let wasm = |n: &str| dir.join(format!("{n}.wasm"));
    let plugins = vec![
        PluginConfig::new("authn", wasm("jwt_authn"), authn_config().into_bytes()),
        PluginConfig::new("rbac", wasm("rbac"), RBAC.as_bytes().to_vec()),
        PluginConfig::new("router", wasm("header_router"), ROUTER.as_bytes().to_vec()),
        PluginConfig::new("fault", wasm("fault_injection"), FAULT.as_bytes().to_vec()),
        PluginConfig::new(
            "metrics",
            wasm("custom_metrics"),
            METRICS.as_bytes().to_vec(),
        ),
    ];
    ChainConfig {
        plugins,
        routes: vec![
            Route {
                name: "by-header".into(),
                prefix: Some("/".into()),
                headers: vec![("x-wasmesh-cluster".into(), None)],
                action: RouteAction::ClusterHeader("x-wasmesh-cluster".into()),
                ..Default::default()
            },
            Route {
                name: "default".into(),
                prefix: Some("/".into()),
                action: RouteAction::Cluster("web".into()),
                ..Default::default()
            },
        ],
        upstream_clusters: Vec::new(),
    }
}

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct Req {
    /// Headers in order, pseudo-headers included, as raw bytes.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Body chunks (empty: headers only).
    pub body: Vec<Vec<u8>>,
}

impl Req {
    /// `method path` to `api.example.com`.
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            headers: vec![
                (b":method".to_vec(), method.as_bytes().to_vec()),
                (b":scheme".to_vec(), b"https".to_vec()),
                (b":authority".to_vec(), b"api.example.com".to_vec()),
                (b":path".to_vec(), path.as_bytes().to_vec()),
            ],
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers
            .push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        self
    }

    /// A short description for failure messages (long values cut).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let names = [
            ("ALICE", fixtures::ALICE),
            ("BOB", fixtures::BOB),
            ("CAROL", fixtures::CAROL),
            ("FORGED", fixtures::FORGED),
            ("WRONG_KEY", fixtures::WRONG_KEY),
        ];
        for (k, v) in &self.headers {
            if let Some((n, _)) = names.iter().find(|(_, t)| v.ends_with(t.as_bytes())) {
                s.push_str(&format!(
                    "{}: {}<{n}>\n",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(
                        &v[..v.len() - names.iter().find(|x| x.0 == *n).map_or(0, |x| x.1.len())]
                    )
                ));
                continue;
            }
            let v = String::from_utf8_lossy(&v[..v.len().min(80)]).into_owned();
            s.push_str(&format!(
                "{}: {v}{}\n",
                String::from_utf8_lossy(k),
                if v.len() >= 80 { "…" } else { "" }
            ));
        }
        let total: usize = self.body.iter().map(Vec::len).sum();
        s.push_str(&format!("body: {} chunks, {total} bytes", self.body.len()));
        s
    }
}

/// What happened to a request.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Option<u32>,
    /// `grpc-status` of the response headers (a local reply to a gRPC
    /// request is `:status 200` with a non-zero `grpc-status`, as in Envoy).
    pub grpc_status: Option<String>,
    pub reached_upstream: bool,
    pub upstream_headers: Option<HeaderMap>,
    pub upstream_cluster: Option<String>,
    pub local_reply_by: Option<String>,
    pub details: Option<String>,
    pub reset: bool,
    pub complete: bool,
}

impl Outcome {
    /// The request was refused before the upstream (any local reply or reset).
    pub fn denied(&self) -> bool {
        !self.reached_upstream
    }
}

/// A worker with the chain and its host on a virtual clock.
pub struct Chain {
    pub worker: Worker,
    pub host: Arc<HostShared>,
    pub props: PropertyMap,
}

impl Chain {
    /// Starts the chain.
    pub fn new() -> Chain {
        Chain::with_config(config())
    }

    /// Starts a given chain configuration.
    pub fn with_config(config: ChainConfig) -> Chain {
        let host = HostShared::new(Clock::virtual_at(fixtures::NOW), LogLevel::Warn);
        let runtime = Runtime::shared().expect("runtime");
        let worker = Worker::new(0, runtime, host.clone(), config).expect("chain starts");
        let mut props = PropertyMap::new();
        props.insert(
            "source.address".into(),
            Value::String("10.1.2.3:40000".into()),
        );
        props.insert(
            "destination.address".into(),
            Value::String("10.0.0.2:8443".into()),
        );
        props.insert("destination.port".into(), Value::Int(8443));
        Chain {
            worker,
            host,
            props,
        }
    }

    /// Sends a request and runs it to completion (the upstream answers 200
    /// with a small body; delays run on the virtual clock).
    pub fn send(&mut self, req: &Req) -> Outcome {
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            headers.add(k, v);
        }
        let w = &mut self.worker;
        let sid = w.start_stream(headers, req.body.is_empty(), self.props.clone());
        let n = req.body.len();
        for (i, c) in req.body.iter().enumerate() {
            w.downstream_data(sid, c.clone(), i + 1 == n);
        }
        let mut out = Outcome::default();
        let mut request_complete = false;
        let mut upstream_answered = false;
        for _ in 0..10_000 {
            // The info first: the last `take_events` forgets a finished stream.
            let info = w.stream_info(sid);
            let events = w.take_events(sid);
            if !events.is_empty() {
                if let Some(info) = info {
                    out.local_reply_by = info.local_reply_by.or(out.local_reply_by.take());
                    out.details = info.code_details.or(out.details.take());
                    out.upstream_cluster = info.upstream_cluster.or(out.upstream_cluster.take());
                }
            }
            let mut progressed = !events.is_empty();
            for e in events {
                match e {
                    StreamEvent::UpstreamHeaders {
                        headers,
                        end_stream,
                        cluster,
                    } => {
                        out.reached_upstream = true;
                        out.upstream_headers = Some(headers);
                        out.upstream_cluster = Some(cluster);
                        request_complete = end_stream;
                    }
                    StreamEvent::UpstreamData { end_stream, .. } => {
                        request_complete |= end_stream;
                    }
                    StreamEvent::UpstreamTrailers(_) => request_complete = true,
                    StreamEvent::DownstreamHeaders { headers, .. } => {
                        out.status = headers
                            .get(b":status")
                            .and_then(|s| std::str::from_utf8(s).ok())
                            .and_then(|s| s.parse().ok());
                        out.grpc_status = headers.get_str("grpc-status");
                    }
                    StreamEvent::Reset(_) => out.reset = true,
                    StreamEvent::Complete => out.complete = true,
                    _ => {}
                }
            }
            if out.complete || !w.is_active(sid) {
                break;
            }
            if out.reached_upstream && request_complete && !upstream_answered {
                upstream_answered = true;
                let mut h = HeaderMap::new();
                h.add(b":status", b"200");
                h.add(b"content-type", b"text/plain");
                w.upstream_headers(sid, h, false);
                w.upstream_data(sid, b"ok".to_vec(), true);
                continue;
            }
            if !progressed {
                for c in w.take_callouts() {
                    // Nothing in this chain calls out (inline keys); a
                    // callout fails like an unreachable cluster.
                    w.deliver_http(&c, None);
                    progressed = true;
                }
            }
            if !progressed {
                match w.next_timer_ns() {
                    Some(t) => {
                        let now = self.host.clock.now_ns();
                        self.host.clock.set_ns(t.max(now));
                        w.fire_timers();
                    }
                    None => break,
                }
            }
        }
        if w.is_active(sid) {
            // Left paused: the client gives up (a finding for the caller).
            w.downstream_reset(sid);
            let _ = w.take_events(sid);
            out.complete = false;
        }
        let _ = w.take_dirty();
        out
    }

    /// Whether any plugin's VM failed (trapped).
    pub fn failed_plugins(&self) -> Vec<&'static str> {
        PLUGINS
            .iter()
            .copied()
            .filter(|p| self.worker.plugin_failed(p))
            .collect()
    }
}

/// Resident set size of this process, bytes (Linux), if known.
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
