//! The benchmark cases: chains, configurations and requests. Each case is
//! run through the real `.wasm` files in the harness and through the same
//! filter cores compiled natively.
//!
//! Configurations are the filters' examples (`examples/<filter>/config.json`),
//! the issues' benchmark configurations (`filters/*/bench/*.yaml`) and
//! generated ones for scaling.

use crate::keys::{self, Keys};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// An example configuration, `examples/<dir>/config.json`.
pub fn example_config(dir: &str) -> Value {
    let p = root().join("examples").join(dir).join("config.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One plugin of a chain.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// Plugin name.
    pub name: String,
    /// Artifact name (`rbac`) or path relative to `benches/`.
    pub wasm: String,
    /// Plugin configuration.
    pub config: Value,
}

impl Plugin {
    pub fn new(name: &str, wasm: &str, config: Value) -> Plugin {
        Plugin {
            name: name.into(),
            wasm: wasm.into(),
            config,
        }
    }
}

/// One request.
#[derive(Debug, Clone, Default)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub authority: String,
    /// Headers after the pseudo-headers.
    pub headers: Vec<(String, String)>,
    /// Properties of this request (on top of the case's).
    pub props: Vec<(String, Value)>,
}

impl Req {
    pub fn get(path: &str) -> Req {
        Req {
            method: "GET".into(),
            path: path.into(),
            authority: "api.example.com".into(),
            ..Default::default()
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn prop(mut self, k: &str, v: Value) -> Req {
        self.props.push((k.into(), v));
        self
    }
    /// The header pairs as the host hands them to a filter (pseudo-headers
    /// first, as the harness sends them).
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (":method".to_string(), self.method.clone()),
            (":scheme".to_string(), "http".to_string()),
            (":authority".to_string(), self.authority.clone()),
            (":path".to_string(), self.path.clone()),
        ];
        v.extend(self.headers.iter().cloned());
        v
    }
}

/// A benchmark case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short id (used in tables).
    pub id: String,
    /// What it measures.
    pub title: String,
    pub plugins: Vec<Plugin>,
    /// Properties of every request (connection, node metadata).
    pub props: Vec<(String, Value)>,
    /// Harness routes (`routes:` of a scenario), if any.
    pub routes: Option<Value>,
    /// The requests, sent in turn.
    pub requests: Vec<Req>,
    /// Status every request must get (checked before measuring).
    pub expect_status: u32,
}

impl Case {
    /// The scenario (JSON is YAML) running this case; `chain` replaces the plugins.
    pub fn scenario_text(&self, chain: &[Plugin]) -> String {
        let mut props = serde_json::Map::new();
        for (k, v) in &self.props {
            props.insert(k.clone(), v.clone());
        }
        let requests: Vec<Value> = self
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut headers = serde_json::Map::new();
                for (k, v) in &r.headers {
                    headers.insert(k.clone(), Value::String(v.clone()));
                }
                let mut p = serde_json::Map::new();
                for (k, v) in &r.props {
                    p.insert(k.clone(), v.clone());
                }
                json!({"name": format!("request {i}"),
                       "request": {"method": r.method, "path": r.path, "authority": r.authority, "headers": headers},
                       "properties": p})
            })
            .collect();
        let chain: Vec<Value> = chain
            .iter()
            .map(|p| json!({"name": p.name, "wasm": p.wasm, "config": p.config}))
            .collect();
        let mut s = json!({
            "chain": chain,
            "properties": props,
            "upstream": {"status": 200, "body": "ok"},
            "requests": requests,
        });
        if let Some(r) = &self.routes {
            s["routes"] = r.clone();
        }
        s.to_string()
    }

    /// All properties of request `i`, later entries overriding.
    pub fn props_of(&self, i: usize) -> Vec<(String, Value)> {
        let mut v = self.props.clone();
        v.extend(self.requests[i].props.iter().cloned());
        v
    }
}

/// A pass-through plugin: the floor a wasm plugin costs (ABI calls,
/// context create/delete) when it does nothing.
pub fn passthrough(n: usize) -> Vec<Plugin> {
    (0..n)
        .map(|i| Plugin::new(&format!("noop{i}"), "wat/passthrough.wat", Value::Null))
        .collect()
}

/// The identity the JWT filter stores for the benchmark token.
pub fn identity_json(groups: &[&str]) -> String {
    json!({"provider": "idp", "iss": keys::ISSUER, "sub": "alice", "aud": ["orders"],
           "principal": format!("{}/alice", keys::ISSUER),
           "claims": {"iss": keys::ISSUER, "sub": "alice", "aud": "orders", "groups": groups, "tenant": "acme"}})
    .to_string()
}

fn mesh_props() -> Vec<(String, Value)> {
    vec![
        ("source.address".into(), json!("10.1.2.3:40000")),
        (
            "connection.uri_san_peer_certificate".into(),
            json!("spiffe://cluster.local/ns/prod/sa/web"),
        ),
        (
            "connection.uri_san_local_certificate".into(),
            json!("spiffe://cluster.local/ns/prod/sa/reviews"),
        ),
        ("connection.mtls".into(), json!(true)),
        ("node.metadata.WORKLOAD_NAME".into(), json!("reviews-v1")),
        ("node.metadata.NAMESPACE".into(), json!("prod")),
        ("node.metadata.LABELS.app".into(), json!("reviews")),
        ("node.metadata.LABELS.version".into(), json!("v1")),
    ]
}

fn mesh_routes() -> Value {
    json!([{"prefix": "/", "cluster": "inbound|9080||reviews.prod.svc.cluster.local"}])
}

/// The token of the representative requests (example HS256 key).
pub fn example_token() -> String {
    keys::example_token(&keys::claims(
        json!({"groups": ["readers"], "tenant": "acme"}),
    ))
}

/// The five filters on their example configurations, in chain order.
pub fn example_plugins() -> Vec<Plugin> {
    vec![
        Plugin::new("jwt", "jwt_authn", example_config("jwt-authn")),
        Plugin::new("rbac", "rbac", example_config("rbac")),
        Plugin::new("router", "header_router", example_config("header-router")),
        Plugin::new(
            "fault",
            "fault_injection",
            example_config("fault-injection"),
        ),
        Plugin::new(
            "metrics",
            "custom_metrics",
            example_config("custom-metrics"),
        ),
    ]
}

fn case(id: &str, title: &str, plugins: Vec<Plugin>, requests: Vec<Req>, expect: u32) -> Case {
    Case {
        id: id.into(),
        title: title.into(),
        plugins,
        props: mesh_props(),
        routes: Some(mesh_routes()),
        requests,
        expect_status: expect,
    }
}

/// Per-filter cases on the example configurations, then the issues'
/// benchmark configurations, then the full chain.
pub fn filter_cases() -> Vec<Case> {
    let ex = example_plugins();
    let token = example_token();
    let ident = identity_json(&["readers"]);
    let mut v = vec![
        case(
            "jwt-authn",
            "jwt-authn, example config: GET /orders with a cached HS256 token (claims to headers, identity stored)",
            vec![ex[0].clone()],
            vec![Req::get("/orders").header("authorization", &format!("Bearer {token}"))],
            200,
        ),
        case(
            "rbac",
            "rbac, example config (7 policies): GET /api/books allowed for a verified reader",
            vec![ex[1].clone()],
            vec![Req::get("/api/books").prop("wasmesh.identity", json!(ident))],
            200,
        ),
        case(
            "header-router",
            "header-router, example config: GET /reviews/1 with a sticky 90/10 split",
            vec![ex[2].clone()],
            vec![Req::get("/reviews/1").header("x-user-id", "user-7")],
            200,
        ),
        case(
            "fault-injection",
            "fault-injection, example config: a request no fault matches",
            vec![ex[3].clone()],
            vec![Req::get("/api/v2/items")
                .header("user-agent", "curl/8.0")
                .header("x-request-id", "0b7e5d0e-6f1c-4a0c-9a57-7b1b2b5a6c11")],
            200,
        ),
        case(
            "custom-metrics",
            "custom-metrics, example config: standard metrics, 3 user metrics, access log",
            vec![ex[4].clone()],
            vec![Req::get("/users/42")
                .header("x-plan", "pro")
                .prop("wasmesh.identity", json!(ident))],
            200,
        ),
        case(
            "custom-metrics-3x6",
            "custom-metrics, issue 7 config: standard metrics + 3 user metrics of 6 labels",
            vec![Plugin::new("metrics", "custom_metrics", metrics_3x6(None))],
            vec![Req::get("/users/42")
                .header("x-plan", "pro")
                .header("x-tenant", "acme")
                .header("user-agent", "bench")],
            200,
        ),
    ];
    v.push(full_chain_case());
    v
}

/// The five filters chained on their example configurations: a reader with
/// a (cached) token reads the catalogue.
pub fn full_chain_case() -> Case {
    case(
        "full-chain",
        "full chain jwt → rbac → router → fault → metrics (example configs): GET /api/books with a cached token",
        example_plugins(),
        vec![Req::get("/api/books")
            .header("authorization", &format!("Bearer {}", example_token()))
            .header("x-plan", "pro")
            .header("user-agent", "bench")],
        200,
    )
}

/// The issue 7 benchmark configuration (`filters/custom-metrics/bench/standard_plus_3x6.yaml`)
/// with an optional `maxLabelValues`.
pub fn metrics_3x6(max_label_values: Option<u32>) -> Value {
    let dims = json!({
        "method": "request.method", "code": "response.code", "route": "request.path_template",
        "plan": "request.headers[x-plan]", "tenant": "request.headers[x-tenant]", "cluster": "xds.cluster_name"
    });
    let mut c = json!({
        "pathTemplates": ["/users/{id}", "/orders/{id}/items/{item}"],
        "metrics": [
            {"name": "api_requests_total", "type": "COUNTER", "dimensions": dims},
            {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms", "dimensions": dims},
            {"name": "api_response_bytes", "type": "HISTOGRAM", "value": "response.size", "dimensions": dims},
        ]
    });
    if let Some(m) = max_label_values {
        c["maxLabelValues"] = json!(m);
    }
    c
}

/// JWT per algorithm: one provider whose inline JWKS holds an RSA, a P-256,
/// an Ed25519 and an HMAC key; `cold` disables the token cache
/// (`cacheSize: 0`) so that every request parses and verifies its token.
pub fn jwt_algorithm_case(keys: &Keys, alg: &str, cold: bool) -> Case {
    let mut config = json!({
        "jwtRules": [{"name": "idp", "issuer": keys::ISSUER, "audiences": ["orders"], "jwks": keys.jwks()}],
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "idp"}}],
    });
    if cold {
        config["cacheSize"] = json!(0);
    }
    let token = keys.token(alg, &keys::claims(json!({"groups": ["readers"]})));
    case(
        &format!("jwt-{alg}-{}", if cold { "cold" } else { "cached" }),
        &format!(
            "jwt-authn {alg} {}",
            if cold { "cold (cache off)" } else { "cached" }
        ),
        vec![Plugin::new("jwt", "jwt_authn", config)],
        vec![Req::get("/orders").header("authorization", &format!("Bearer {token}"))],
        200,
    )
}

/// RBAC with `n` policies of 5 rules (after `filters/rbac/tests/perf.rs`):
/// every rule has principals, IP blocks, hosts, methods, 3 paths and a
/// header condition. The request is allowed by the last rule of the last
/// ALLOW policy.
pub fn rbac_scaling_case(n: usize) -> Case {
    let mut policies = Vec::new();
    for p in 0..n {
        let action = match p % 10 {
            0..=3 => "DENY",
            9 => "AUDIT",
            _ => "ALLOW",
        };
        let rules: Vec<Value> = (0..5)
            .map(|r| {
                json!({
                    "from": [{"source": {
                        "principals": ["cluster.local/ns/prod/*", format!("cluster.local/ns/team{p}/sa/svc{r}")],
                        "notIpBlocks": ["192.0.2.0/24", "2001:db8:bad::/48"]
                    }}],
                    "to": [{"operation": {
                        "hosts": ["*.example.com", "example.com"],
                        "methods": ["GET", "POST", "PUT"],
                        "paths": [format!("/svc{p}/r{r}/*"), format!("/svc{p}/v{r}/{{*}}/items"), format!("/exact/{p}/{r}")]
                    }}],
                    "when": [{"key": "request.headers[x-tenant]", "values": [format!("tenant-{r}"), "shared"]}]
                })
            })
            .collect();
        policies.push(json!({"name": format!("policy-{p}"), "action": action, "rules": rules}));
    }
    let last_allow = (0..n)
        .rev()
        .find(|p| (4..=8).contains(&(p % 10)))
        .unwrap_or(0);
    case(
        &format!("rbac-{n}x5"),
        &format!("rbac {n} policies × 5 rules, allowed by the last ALLOW policy's last rule"),
        vec![Plugin::new("rbac", "rbac", json!({"policies": policies}))],
        vec![Req::get(&format!("/svc{last_allow}/r4/items"))
            .header("x-tenant", "tenant-4")
            .header("user-agent", "bench")],
        200,
    )
}

/// Router with `n` routes, each a header match and a path regex (as
/// `filters/header-router/bench/fifty-routes.yaml`); the request matches the last.
pub fn router_scaling_case(n: usize) -> Case {
    let routes: Vec<Value> = (0..n)
        .map(|i| {
            json!({"name": format!("r{i}"),
                   "match": [{"headers": {"x-tenant": {"exact": format!("tenant-{i}")}},
                              "uri": {"regex": format!("/api/v[0-9]+/t{i}/[a-z]+")}}],
                   "route": [{"destination": format!("c{i}")}]})
        })
        .collect();
    let last = n - 1;
    case(
        &format!("router-{n}"),
        &format!("header-router {n} routes (header + regex each), the last matches"),
        vec![Plugin::new(
            "router",
            "header_router",
            json!({"clusterHeader": "x-wasmesh-cluster", "routes": routes}),
        )],
        vec![Req::get(&format!("/api/v2/t{last}/items"))
            .header("x-tenant", &format!("tenant-{last}"))
            .header("user-agent", "bench")],
        200,
    )
}

/// custom-metrics (issue 7 config) with `n` distinct `x-tenant` values in
/// turn: `n` label sets per metric.
pub fn metrics_cardinality_case(n: usize) -> Case {
    let requests = (0..n)
        .map(|i| {
            Req::get("/users/42")
                .header("x-plan", "pro")
                .header("x-tenant", &format!("tenant-{i}"))
                .header("user-agent", "bench")
        })
        .collect();
    case(
        &format!("metrics-{n}"),
        &format!("custom-metrics 3×6 labels, {n} distinct tenant values in turn"),
        vec![Plugin::new(
            "metrics",
            "custom_metrics",
            metrics_3x6(Some(100_000)),
        )],
        requests,
        200,
    )
}
