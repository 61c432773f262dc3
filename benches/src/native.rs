//! The same filter cores compiled natively, driven with the same requests.
//!
//! Each driver does per request what the filter's proxy-wasm glue does
//! around its core, minus the host calls: build the header map from the
//! request's pairs (the glue reads them from the host), read the
//! properties it needs (identity read with `IdentityView`, as the glue
//! does), decide, and apply the decision's header edits to a map. Metric
//! updates go to a sink that only counts. So the wasm/native ratio is the
//! cost of wasm execution plus the ABI (host calls, copies across linear
//! memory), on the same decision code.

use crate::cases::{Case, Req};
use serde_json::Value;
use std::hint::black_box;
use wasmesh_common::HeaderMap;

/// The harness's virtual clock at start (Unix seconds).
pub const NOW: u64 = 1_700_000_000;

/// A native filter: returns whether the request continues upstream.
pub type NativeFilter = Box<dyn FnMut(&[(String, String)], &mut Ctx) -> Result<bool, String>>;

/// What one request carries through the chain: its properties and the
/// identity a JWT filter earlier in the chain stored (filter state).
pub struct Ctx<'a> {
    pub props: &'a Props,
    pub identity: Option<String>,
}

impl Ctx<'_> {
    /// The `wasmesh.identity` property: filter state, else the request's.
    pub fn identity_json(&self) -> Option<&str> {
        self.identity
            .as_deref()
            .or_else(|| self.props.str(wasmesh_common::identity::IDENTITY_PROPERTY))
    }
}

/// Properties of one request (dotted names).
#[derive(Debug, Clone, Default)]
pub struct Props(pub Vec<(String, Value)>);

impl Props {
    pub fn str(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_str())
    }
    pub fn value(&self, k: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v)
    }
}

/// A native chain for a case.
pub struct NativeChain {
    filters: Vec<NativeFilter>,
    inputs: Vec<(Vec<(String, String)>, Props)>,
    next: usize,
}

impl NativeChain {
    /// Builds the native drivers of `case`'s plugins. Plugins without a
    /// native core (the pass-through) are skipped.
    pub fn new(case: &Case) -> Result<NativeChain, String> {
        let node = Props(case.props.clone());
        let mut filters = Vec::new();
        for p in &case.plugins {
            let bytes = p.config.to_string().into_bytes();
            let f = match p.wasm.as_str() {
                "jwt_authn" => jwt(&bytes)?,
                "rbac" => rbac(&bytes)?,
                "header_router" => router(&bytes)?,
                "fault_injection" => fault(&bytes)?,
                "custom_metrics" => metrics(&bytes, &node)?,
                other => return Err(format!("no native core for `{other}`")),
            };
            filters.push(f);
        }
        let inputs = (0..case.requests.len())
            .map(|i| (case.requests[i].pairs(), Props(case.props_of(i))))
            .collect();
        Ok(NativeChain {
            filters,
            inputs,
            next: 0,
        })
    }

    /// Runs the next request through the chain; whether it went through.
    pub fn request(&mut self) -> Result<bool, String> {
        let (pairs, props) = &self.inputs[self.next];
        self.next = (self.next + 1) % self.inputs.len();
        let mut ctx = Ctx {
            props,
            identity: None,
        };
        for f in self.filters.iter_mut() {
            if !f(pairs, &mut ctx)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs `n` requests.
    #[inline(never)]
    pub fn run(&mut self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            black_box(self.request()?);
        }
        Ok(())
    }

    /// Checks that every request goes through (or not) as expected.
    pub fn check(&mut self, through: bool) -> Result<(), String> {
        for i in 0..self.inputs.len() {
            let got = self.request()?;
            if got != through {
                return Err(format!(
                    "native: request {i} {} (expected {})",
                    if got { "went through" } else { "was stopped" },
                    if through { "through" } else { "stopped" }
                ));
            }
        }
        Ok(())
    }
}

fn map(pairs: &[(String, String)]) -> HeaderMap {
    HeaderMap::from_pairs(pairs.to_vec())
}

/// The stored identity's bytes (read with `IdentityView`, as the filters do).
fn identity(ctx: &Ctx) -> Option<Vec<u8>> {
    ctx.identity_json().map(|j| j.as_bytes().to_vec())
}

fn source_ip(props: &Props) -> Option<std::net::IpAddr> {
    props
        .str("source.address")
        .and_then(wasmesh_common::cidr::parse_address_ip)
}

fn jwt(bytes: &[u8]) -> Result<NativeFilter, String> {
    use jwt_authn::authenticator::{Authenticator, CacheStats};
    use jwt_authn::config::FilterConfig;
    use jwt_authn::jwks_cache::KeyRing;
    use jwt_authn::jwt_cache::JwtCache;
    let config = FilterConfig::from_json(bytes).map_err(|e| e.to_string())?;
    let ring = KeyRing::new(&config);
    let mut cache = JwtCache::new(config.cache_size);
    Ok(Box::new(move |pairs, ctx| {
        let mut h = map(pairs);
        for op in jwt_authn::output::sanitize(&config, &h) {
            apply_jwt_op(&mut h, &op);
        }
        let mut auth = Authenticator {
            config: &config,
            keys: &ring,
            cache: &mut cache,
            now: NOW,
            stats: CacheStats::default(),
        };
        let d = jwt_authn::decide(&config, &h, &mut auth);
        Ok(match d {
            jwt_authn::Decision::Allow { ops, identity } => {
                for op in &ops {
                    apply_jwt_op(&mut h, op);
                }
                black_box(&h);
                if identity.is_some() {
                    ctx.identity = identity;
                }
                true
            }
            jwt_authn::Decision::CorsBypass => true,
            jwt_authn::Decision::Deny(s) => {
                black_box(s);
                false
            }
            jwt_authn::Decision::Wait => false,
        })
    }))
}

fn apply_jwt_op(h: &mut HeaderMap, op: &jwt_authn::output::HeaderOp) {
    use jwt_authn::output::HeaderOp;
    match op {
        HeaderOp::Remove(n) => h.remove(n),
        HeaderOp::Add(n, v) => h.add(n, v),
        HeaderOp::Set(n, v) => h.set(n, v),
    }
}

fn rbac(bytes: &[u8]) -> Result<NativeFilter, String> {
    use rbac::authz::{authorize, Connection, Verdict};
    let config = rbac::config::Config::from_json(bytes).map_err(|e| e.to_string())?;
    Ok(Box::new(move |pairs, ctx| {
        let m = map(pairs);
        let headers = rbac::headers::Headers::from_map(&m);
        let conn = Connection {
            peer_ip: source_ip(ctx.props),
            peer_uri: ctx
                .props
                .str("connection.uri_san_peer_certificate")
                .map(str::to_string),
            identity: identity(ctx),
            ..Default::default()
        };
        Ok(
            match authorize(&config, &headers, m.path().as_bytes(), &conn) {
                Verdict::Checked { decision, .. } => decision.enforced.allowed,
                _ => false,
            },
        )
    }))
}

fn router(bytes: &[u8]) -> Result<NativeFilter, String> {
    use header_router::{RouteTable, RouterConfig};
    use wasmesh_common::http_match::RequestAttributes;
    let table = RouteTable::compile(&RouterConfig::parse(bytes).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut rng = wasmesh_common::sampling::Rng::with_seed(1);
    Ok(Box::new(move |pairs, ctx| {
        let m = map(pairs);
        let ident = if table.needs_identity() {
            identity(ctx)
        } else {
            None
        };
        let values = table.header_names().resolve(&m);
        let attrs = RequestAttributes {
            headers: &m,
            identity: ident
                .as_deref()
                .and_then(wasmesh_common::identity::IdentityView::parse),
            source_ip: if table.needs_source_ip() {
                source_ip(ctx.props)
            } else {
                None
            },
            header_values: Some(&values),
        };
        let d = table.decide(&attrs, &mut rng);
        if let Some(r) = table.local_response(&d, &m) {
            black_box(r);
            return Ok(false);
        }
        let mut out = m.clone();
        table.apply_request(&d, &m, &mut out);
        black_box(out);
        Ok(true)
    }))
}

fn fault(bytes: &[u8]) -> Result<NativeFilter, String> {
    use fault_injection::{FaultConfig, FaultPolicy};
    use wasmesh_common::http_match::RequestAttributes;
    let policy = FaultPolicy::compile(&FaultConfig::parse(bytes).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    Ok(Box::new(move |pairs, ctx| {
        let m = map(pairs);
        let ident = if policy.needs_identity() {
            identity(ctx)
        } else {
            None
        };
        let values = policy.header_names().resolve(&m);
        let attrs = RequestAttributes {
            headers: &m,
            identity: ident
                .as_deref()
                .and_then(wasmesh_common::identity::IdentityView::parse),
            source_ip: if policy.needs_source_ip() {
                source_ip(ctx.props)
            } else {
                None
            },
            header_values: Some(&values),
        };
        // The benchmarks only send requests no fault matches.
        Ok(black_box(policy.plan(&attrs)).is_none())
    }))
}

struct NullSink(u64);
impl custom_metrics::recorder::MetricSink for NullSink {
    fn define(&mut self, _kind: custom_metrics::tags::MetricKind, _name: &str) -> Option<u32> {
        self.0 += 1;
        Some(self.0 as u32)
    }
    fn increment(&mut self, id: u32, delta: i64) {
        self.0 = self.0.wrapping_add(u64::from(id) ^ delta as u64);
    }
    fn record(&mut self, id: u32, value: u64) {
        self.0 = self.0.wrapping_add(u64::from(id) ^ value);
    }
}

struct MetricsHost<'a> {
    req: HeaderMap,
    resp: &'a HeaderMap,
    trailers: &'a HeaderMap,
    props: &'a Props,
    identity_json: Option<&'a str>,
}

impl custom_metrics::resolver::StreamHost for MetricsHost<'_> {
    fn request_headers(&mut self) -> &HeaderMap {
        &self.req
    }
    fn response_headers(&mut self) -> &HeaderMap {
        self.resp
    }
    fn response_trailers(&mut self) -> &HeaderMap {
        self.trailers
    }
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        let int = |v: i64| Some(v.to_le_bytes().to_vec());
        match path {
            ["response", "code"] => return int(200),
            ["response", "flags"] => return int(0),
            ["request", "duration"] => return int(12_000_000),
            ["request", "total_size"] | ["response", "total_size"] | ["response", "size"] => {
                return int(300)
            }
            ["xds", "cluster_name"] => {
                return Some(b"inbound|9080||reviews.prod.svc.cluster.local".to_vec())
            }
            _ => {}
        }
        let name = path.join(".");
        match self.props.value(&name)? {
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Bool(b) => Some(vec![u8::from(*b)]),
            Value::Number(n) => n.as_i64().map(|i| i.to_le_bytes().to_vec()),
            _ => None,
        }
    }
    fn identity(&mut self) -> Option<wasmesh_common::identity::IdentityView<'_>> {
        wasmesh_common::identity::IdentityView::parse(self.identity_json?.as_bytes())
    }
    fn now_nanos(&mut self) -> u64 {
        NOW * 1_000_000_000
    }
    fn stream_start_nanos(&self) -> Option<u64> {
        Some(NOW * 1_000_000_000 - 12_000_000)
    }
    fn request_body_bytes(&self) -> Option<u64> {
        None
    }
    fn response_body_bytes(&self) -> Option<u64> {
        Some(2)
    }
}

fn metrics(bytes: &[u8], node: &Props) -> Result<NativeFilter, String> {
    use custom_metrics::config::{Compiled, NodeInfo};
    use custom_metrics::recorder::Recorder;
    let s = |k: &str| node.str(k).unwrap_or_default().to_string();
    let info = NodeInfo {
        workload: s("node.metadata.WORKLOAD_NAME"),
        namespace: s("node.metadata.NAMESPACE"),
        app: s("node.metadata.LABELS.app"),
        version: s("node.metadata.LABELS.version"),
    };
    let cfg = Compiled::from_json(bytes, info).map_err(|e| e.to_string())?;
    let mut recorder = Recorder::new(&cfg);
    let mut sink = NullSink(0);
    let resp = HeaderMap::from_slice(&[(":status", "200"), ("content-length", "2")]);
    let trailers = HeaderMap::new();
    Ok(Box::new(move |pairs, ctx| {
        let mut host = MetricsHost {
            req: map(pairs),
            resp: &resp,
            trailers: &trailers,
            props: ctx.props,
            identity_json: ctx.identity_json(),
        };
        let started = recorder.on_request_start(&cfg, &mut host, &mut sink);
        black_box(recorder.on_log(&cfg, &mut host, &mut sink, &started));
        Ok(true)
    }))
}

/// A request's pairs (for callers outside this module).
pub fn pairs(r: &Req) -> Vec<(String, String)> {
    r.pairs()
}
