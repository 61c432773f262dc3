//! Evaluates attributes for one stream, reading each input at most once.
//!
//! The proxy-wasm glue implements [`StreamHost`] over host calls; tests
//! implement it over plain data. Property values arrive in Envoy's encodings
//! (strings raw, integers 8-byte little-endian, booleans one byte,
//! timestamps and durations int64 nanoseconds).

use crate::attribute::{Attribute, Derived, PeerSide, PropKind, Value};
use crate::config::{Compiled, Reporter};
use crate::flags;
use wasmesh_common::identity::{IdentityView, JsonRef};
use wasmesh_common::HeaderMap;

/// What the filter can read about the stream being logged.
pub trait StreamHost {
    /// Request headers (fetched at most once).
    fn request_headers(&mut self) -> &HeaderMap;
    /// Response headers (fetched at most once).
    fn response_headers(&mut self) -> &HeaderMap;
    /// Response trailers (fetched at most once).
    fn response_trailers(&mut self) -> &HeaderMap;
    /// The first value of a request header (names case-insensitive),
    /// borrowed from the stream: the glue answers from the serialized map
    /// without copying it into a [`HeaderMap`].
    fn request_header(&mut self, name: &str) -> Option<&str> {
        self.request_headers().get(name)
    }
    /// The first value of a response header.
    fn response_header(&mut self, name: &str) -> Option<&str> {
        self.response_headers().get(name)
    }
    /// The first value of a response trailer.
    fn response_trailer(&mut self, name: &str) -> Option<&str> {
        self.response_trailers().get(name)
    }
    /// Envoy's `byteSize` of the request headers (names and values).
    fn request_headers_size(&mut self) -> i64 {
        header_bytes(self.request_headers())
    }
    /// Envoy's `byteSize` of the response headers plus the trailers.
    fn response_headers_size(&mut self) -> i64 {
        header_bytes(self.response_headers()) + header_bytes(self.response_trailers())
    }
    /// A property's raw bytes (`proxy_get_property`).
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>>;
    /// The verified identity the JWT filter left in filter state
    /// (`wasmesh.identity`, the JSON of `wasmesh_common::identity::Identity`),
    /// parsed; fetched at most once.
    fn identity(&mut self) -> Option<IdentityView<'_>>;
    /// The clock, in nanoseconds since the epoch.
    fn now_nanos(&mut self) -> u64;
    /// When this filter first saw the stream, if it did.
    fn stream_start_nanos(&self) -> Option<u64>;
    /// Request body bytes this filter saw, if it saw the request body phase.
    fn request_body_bytes(&self) -> Option<u64>;
    /// Response body bytes this filter saw, if it saw the response body phase.
    fn response_body_bytes(&self) -> Option<u64>;
}

/// Decodes a property value.
pub fn decode(bytes: Vec<u8>, kind: PropKind) -> Value {
    let int = |b: &[u8]| -> Option<i64> { Some(i64::from_le_bytes(b.get(..8)?.try_into().ok()?)) };
    match kind {
        PropKind::Str => Value::Str(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        PropKind::Int | PropKind::Duration => int(&bytes).map_or(Value::Missing, Value::Int),
        PropKind::Timestamp => int(&bytes).map_or(Value::Missing, Value::Time),
        PropKind::Bool => bytes
            .first()
            .map_or(Value::Missing, |b| Value::Bool(*b != 0)),
    }
}

/// Slot values a [`Resolver`] keeps: this stream's, and those that cannot
/// change during the VM's life (the node's metadata, the plugin's names),
/// read once per VM. The recorder keeps one from stream to stream, so a
/// request allocates no slot table.
#[derive(Debug, Default)]
pub struct SlotCache {
    memo: Vec<Option<Value>>,
    vm: Vec<Option<Value>>,
}

/// Whether an attribute is the same for every request of the VM: the node
/// (`node.id`, `node.cluster`, `node.metadata...`) and the plugin's own
/// names.
pub fn is_vm_constant(attr: &Attribute) -> bool {
    match attr {
        Attribute::Property(path, _) => matches!(
            path.first().map(String::as_str),
            Some("node" | "plugin_name" | "plugin_root_id" | "plugin_vm_id")
        ),
        _ => false,
    }
}

/// Per-stream attribute evaluation with memoisation by slot.
pub struct Resolver<'a, H: StreamHost> {
    host: &'a mut H,
    cfg: &'a Compiled,
    memo: Vec<Option<Value>>,
    vm: Vec<Option<Value>>,
    /// Whether the key being built already holds the service inputs.
    service_in_key: bool,
    /// Whether the cluster is an Istio cluster name with a host.
    istio_cluster: Option<bool>,
    inflight: i64,
    peer_present: [Option<bool>; 2],
    /// The routed cluster and the service host, read once per stream.
    cluster: Option<Value>,
    service_host: Option<Option<String>>,
    mtls: Option<Value>,
    /// `response.code` (or `:status`) and the response flags (Envoy's and
    /// the fault filter's marks), read once per stream.
    code: Option<Value>,
    flags: Option<u64>,
}

impl<'a, H: StreamHost> Resolver<'a, H> {
    /// A resolver for one stream; `inflight` is the VM's in-flight count.
    pub fn new(host: &'a mut H, cfg: &'a Compiled, inflight: i64) -> Self {
        Self::with_cache(host, cfg, inflight, SlotCache::default())
    }

    /// A resolver whose slot values live in `cache` (this stream's part
    /// cleared first); [`Resolver::into_cache`] gives it back for the next
    /// stream.
    pub fn with_cache(host: &'a mut H, cfg: &'a Compiled, inflight: i64, cache: SlotCache) -> Self {
        let SlotCache { mut memo, mut vm } = cache;
        memo.clear();
        memo.resize(cfg.attributes.len(), None);
        vm.resize(cfg.attributes.len(), None);
        Resolver {
            host,
            cfg,
            memo,
            vm,
            service_in_key: false,
            istio_cluster: None,
            inflight,
            peer_present: [None, None],
            cluster: None,
            service_host: None,
            mtls: None,
            code: None,
            flags: None,
        }
    }

    /// The slot values, for the next stream.
    pub fn into_cache(self) -> SlotCache {
        SlotCache {
            memo: self.memo,
            vm: self.vm,
        }
    }

    /// The value of attribute slot `slot`.
    pub fn slot(&mut self, slot: usize) -> &Value {
        let cfg = self.cfg;
        if is_vm_constant(&cfg.attributes[slot]) {
            if self.vm[slot].is_none() {
                let v = self.eval(&cfg.attributes[slot]);
                self.vm[slot] = Some(v);
            }
            return self.vm[slot].as_ref().unwrap_or(&Value::Missing);
        }
        if self.memo[slot].is_none() {
            let attr = &self.cfg.attributes[slot];
            let v = self.eval(attr);
            self.memo[slot] = Some(v);
        }
        self.memo[slot].as_ref().unwrap_or(&Value::Missing)
    }

    fn prop(&mut self, path: &[&str], kind: PropKind) -> Value {
        match self.host.property(path) {
            Some(b) => decode(b, kind),
            None => Value::Missing,
        }
    }

    fn req_header(&mut self, name: &str) -> Value {
        self.host
            .request_header(name)
            .map_or(Value::Missing, |v| Value::Str(v.to_string()))
    }

    /// `request.url_path`: `:path` without query or fragment.
    fn url_path(&mut self) -> Option<&str> {
        self.host.request_header(":path").map(url_path_of)
    }

    /// `:authority` (or `host` from an HTTP/1.0 client), `""` if neither.
    fn authority(&mut self) -> &str {
        if self.host.request_header(":authority").is_some() {
            return self.host.request_header(":authority").unwrap_or("");
        }
        self.host.request_header("host").unwrap_or("")
    }

    /// Evaluates an attribute without memoisation.
    pub fn eval(&mut self, attr: &Attribute) -> Value {
        use Attribute::*;
        match attr {
            RequestHeader(h) => self.req_header(h),
            ResponseHeader(h) => self
                .host
                .response_header(h)
                .map_or(Value::Missing, |v| Value::Str(v.to_string())),
            ResponseTrailer(h) => self
                .host
                .response_trailer(h)
                .map_or(Value::Missing, |v| Value::Str(v.to_string())),
            Claim(path) => self
                .host
                .identity()
                .and_then(|id| id.claim(path))
                .and_then(claim_string)
                .map_or(Value::Missing, Value::Str),
            AuthPrincipal => {
                let v = self.host.identity().map(|id| id.principal().into_owned());
                non_empty(v)
            }
            AuthAudiences => match self.host.identity() {
                Some(id) => {
                    let aud: Vec<_> = id.audiences().collect();
                    if aud.is_empty() {
                        Value::Missing
                    } else {
                        Value::Str(aud.join(","))
                    }
                }
                None => Value::Missing,
            },
            AuthPresenter => {
                let v = self.host.identity().map(|id| id.azp().into_owned());
                non_empty(v)
            }
            Method => self.req_header(":method"),
            Path => self.req_header(":path"),
            UrlPath => self
                .url_path()
                .map_or(Value::Missing, |p| Value::Str(p.to_string())),
            Host => {
                let a = self.authority();
                if a.is_empty() {
                    Value::Missing
                } else {
                    Value::Str(a.to_string())
                }
            }
            Scheme => self.req_header(":scheme"),
            Query => match self.host.request_header(":path").and_then(query_of) {
                Some(q) => Value::Str(q.to_string()),
                None => Value::Missing,
            },
            UserAgent => self.req_header("user-agent"),
            Referer => self.req_header("referer"),
            RequestId => self.req_header("x-request-id"),
            PathTemplate => Value::Str(self.path_template().to_string()),
            DurationMs => self.duration_ms(),
            RequestSize => Value::Int(self.request_size()),
            RequestTotalSize => match self.prop(&["request", "total_size"], PropKind::Int) {
                Value::Int(n) => Value::Int(n),
                _ => {
                    let h = self.host.request_headers_size();
                    Value::Int(h + self.request_size())
                }
            },
            ResponseSize => Value::Int(self.response_size()),
            ResponseTotalSize => match self.prop(&["response", "total_size"], PropKind::Int) {
                Value::Int(n) => Value::Int(n),
                _ => {
                    let h = self.host.response_headers_size();
                    Value::Int(h + self.response_size())
                }
            },
            Inflight => Value::Int(self.inflight),
            ResponseCode => self.response_code(),
            ResponseCodeClass => match self.response_code() {
                Value::Int(c) if (100..600).contains(&c) => Value::Str(format!("{}xx", c / 100)),
                _ => Value::Missing,
            },
            GrpcStatus => self.grpc_status(),
            ResponseFlags => Value::Str(flags::render_flags(self.flag_bits())),
            Cluster => self.cluster(),
            Peer(side, field) => self.peer(*side, field),
            Property(path, kind) => {
                let p: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
                self.prop(&p, *kind)
            }
            Derived(d) => self.derived(*d),
        }
    }

    /// The matching `pathTemplates` entry (or `other`), borrowed from the
    /// configuration.
    fn path_template(&mut self) -> &'a str {
        let cfg = self.cfg;
        let path = self.url_path().unwrap_or("");
        cfg.templates.template_for(path)
    }

    /// Envoy's response flags plus the fault filter's marks, read once.
    fn flag_bits(&mut self) -> u64 {
        if let Some(b) = self.flags {
            return b;
        }
        let bits = match self.prop(&["response", "flags"], PropKind::Int) {
            Value::Int(b) => b as u64,
            _ => 0,
        };
        let marks = match self.prop(&["wasmesh.fault"], PropKind::Str) {
            Value::Str(s) => flags::parse_flags(&s),
            _ => 0,
        };
        self.flags = Some(bits | marks);
        bits | marks
    }

    fn duration_ms(&mut self) -> Value {
        if let Value::Int(ns) = self.prop(&["request", "duration"], PropKind::Duration) {
            return Value::Int(ns.max(0) / 1_000_000);
        }
        let now = self.host.now_nanos() as i64;
        if let Value::Time(start) = self.prop(&["request", "time"], PropKind::Timestamp) {
            return Value::Int(now.saturating_sub(start).max(0) / 1_000_000);
        }
        match self.host.stream_start_nanos() {
            Some(start) => Value::Int(now.saturating_sub(start as i64).max(0) / 1_000_000),
            None => Value::Missing,
        }
    }

    fn request_size(&mut self) -> i64 {
        if let Value::Int(n) = self.prop(&["request", "size"], PropKind::Int) {
            return n;
        }
        if let Some(n) = content_length(self.host.request_header("content-length")) {
            return n;
        }
        self.host.request_body_bytes().unwrap_or(0) as i64
    }

    fn response_size(&mut self) -> i64 {
        if let Value::Int(n) = self.prop(&["response", "size"], PropKind::Int) {
            return n;
        }
        match self.host.response_body_bytes() {
            Some(n) if n > 0 => n as i64,
            _ => content_length(self.host.response_header("content-length")).unwrap_or(0),
        }
    }

    /// `response.code`, else `:status`; read once per stream.
    fn response_code(&mut self) -> Value {
        if let Some(c) = &self.code {
            return c.clone();
        }
        let c = match self.prop(&["response", "code"], PropKind::Int) {
            Value::Int(c) if c > 0 => Value::Int(c),
            _ => match self
                .host
                .response_header(":status")
                .and_then(|s| s.trim().parse::<i64>().ok())
            {
                Some(c) => Value::Int(c),
                None => Value::Missing,
            },
        };
        self.code = Some(c.clone());
        c
    }

    /// Envoy's `hasGrpcContentType`: `application/grpc` exactly or
    /// `application/grpc+<codec>` (gRPC-Web is not gRPC).
    fn is_grpc(&mut self) -> bool {
        self.host
            .request_header("content-type")
            .and_then(|c| c.strip_prefix("application/grpc"))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
    }

    fn grpc_status(&mut self) -> Value {
        if let Value::Int(s) = self.prop(&["response", "grpc_status"], PropKind::Int) {
            return Value::Int(s);
        }
        let parse = |v: Option<&str>| v.and_then(|s| s.trim().parse::<i64>().ok());
        if let Some(s) = parse(self.host.response_trailer("grpc-status")) {
            return Value::Int(s);
        }
        if let Some(s) = parse(self.host.response_header("grpc-status")) {
            return Value::Int(s);
        }
        if self.is_grpc() {
            if let Value::Int(code) = self.response_code() {
                if code != 200 {
                    return Value::Int(flags::http_to_grpc_status(code));
                }
            }
        }
        Value::Missing
    }

    fn cluster(&mut self) -> Value {
        self.cluster_ref().clone()
    }

    /// The routed cluster, read once per stream, borrowed.
    fn cluster_ref(&mut self) -> &Value {
        if self.cluster.is_none() {
            let c = self.read_cluster();
            self.cluster = Some(c);
        }
        self.cluster.as_ref().unwrap_or(&Value::Missing)
    }

    fn read_cluster(&mut self) -> Value {
        for path in [&["xds", "cluster_name"][..], &["cluster_name"][..]] {
            if let Value::Str(s) = self.prop(path, PropKind::Str) {
                if !s.is_empty() {
                    return Value::Str(s);
                }
            }
        }
        let cfg = self.cfg;
        self.req_header(&cfg.cluster_header)
    }

    fn peer(&mut self, side: PeerSide, field: &str) -> Value {
        let idx = side as usize;
        // Without Istio's metadata exchange there is no peer object at all:
        // probe its `workload` once and skip every other field.
        if self.peer_present[idx].is_none() {
            let w = self.prop(&[side.property(), "workload"], PropKind::Str);
            let present = !matches!(w, Value::Missing);
            self.peer_present[idx] = Some(present);
            if !present {
                return Value::Missing;
            }
            if field == "workload" {
                return w;
            }
        }
        if self.peer_present[idx] == Some(false) {
            return Value::Missing;
        }
        self.prop(&[side.property(), field], PropKind::Str)
    }

    fn mtls(&mut self) -> Value {
        if let Some(v) = &self.mtls {
            return v.clone();
        }
        let v = self.prop(&["connection", "mtls"], PropKind::Bool);
        self.mtls = Some(v.clone());
        v
    }

    /// The service host: an Istio cluster name's host, else the authority
    /// without port.
    fn service_host(&mut self) -> Option<String> {
        if let Some(h) = &self.service_host {
            return h.clone();
        }
        let h = self.read_service_host();
        self.service_host = Some(h.clone());
        h
    }

    fn read_service_host(&mut self) -> Option<String> {
        if let Value::Str(c) = self.cluster_ref() {
            if let Some(h) = istio_cluster_host(c) {
                return Some(h.to_string());
            }
        }
        let host = strip_port(self.authority());
        (!host.is_empty()).then(|| host.to_string())
    }

    /// Starts a new key (see [`Resolver::push_key`]).
    pub fn begin_key(&mut self) {
        self.service_in_key = false;
    }

    /// Appends to `out` what decides the label value of slot `slot` — the
    /// raw inputs rather than the value where that saves work (a status code
    /// instead of its label, the flag bits instead of their names, the
    /// cluster instead of the service host and name), borrowed from the
    /// stream: the label-set cache key. The encoding depends only on the
    /// slot's attribute, so equal keys always mean equal label values.
    pub fn push_key(&mut self, slot: usize, out: &mut Vec<u8>) {
        use Attribute::*;
        let cfg = self.cfg;
        match &cfg.attributes[slot] {
            RequestHeader(h) => push_opt_str(out, self.host.request_header(h)),
            Method => push_opt_str(out, self.host.request_header(":method")),
            Path => push_opt_str(out, self.host.request_header(":path")),
            Scheme => push_opt_str(out, self.host.request_header(":scheme")),
            UserAgent => push_opt_str(out, self.host.request_header("user-agent")),
            Referer => push_opt_str(out, self.host.request_header("referer")),
            RequestId => push_opt_str(out, self.host.request_header("x-request-id")),
            UrlPath => {
                let p = self.url_path();
                push_opt_str(out, p)
            }
            PathTemplate => {
                let t = self.path_template();
                push_opt_str(out, Some(t))
            }
            Cluster => {
                let c = self.cluster_ref();
                push_value_key(out, c)
            }
            ResponseCode => push_value_key(out, &self.response_code()),
            ResponseFlags => {
                out.push(5);
                out.extend_from_slice(&self.flag_bits().to_le_bytes());
            }
            Derived(d) => match d {
                self::Derived::Protocol => out.extend_from_slice(&[6, u8::from(self.is_grpc())]),
                self::Derived::CodeLabel => push_value_key(out, &self.response_code()),
                self::Derived::GrpcLabel => {
                    if self.is_grpc() {
                        push_value_key(out, &self.grpc_status())
                    } else {
                        out.push(7)
                    }
                }
                self::Derived::SecurityPolicy => push_value_key(out, &self.mtls()),
                self::Derived::DestinationService | self::Derived::DestinationServiceName => {
                    self.push_service_key(out)
                }
                self::Derived::DestinationServiceNamespace
                    if cfg.reporter == Reporter::Destination =>
                {
                    self.push_service_key(out)
                }
                _ => push_value_key(out, self.slot(slot)),
            },
            _ => push_value_key(out, self.slot(slot)),
        }
    }

    /// The inputs of the service host: the cluster, and the authority when
    /// the cluster is not an Istio cluster name with a host. Written once
    /// per key: the service's host, name and namespace labels all follow
    /// from them.
    fn push_service_key(&mut self, out: &mut Vec<u8>) {
        if self.service_in_key {
            return;
        }
        self.service_in_key = true;
        let istio = match self.istio_cluster {
            Some(b) => b,
            None => {
                let b = match self.cluster_ref() {
                    Value::Str(c) => istio_cluster_host(c).is_some(),
                    _ => false,
                };
                self.istio_cluster = Some(b);
                b
            }
        };
        push_value_key(out, self.cluster_ref());
        if !istio {
            let a = self.authority();
            push_opt_str(out, Some(a));
        }
    }

    fn derived(&mut self, d: Derived) -> Value {
        match d {
            Derived::Protocol => Value::Str(if self.is_grpc() { "grpc" } else { "http" }.into()),
            // Istio writes 0 when there was no response (the client went away
            // first).
            Derived::CodeLabel => match self.response_code() {
                Value::Int(c) => Value::Int(c),
                _ => Value::Int(0),
            },
            Derived::GrpcLabel => {
                if self.is_grpc() {
                    match self.grpc_status() {
                        Value::Int(s) => Value::Str(s.to_string()),
                        _ => Value::Str(String::new()),
                    }
                } else {
                    Value::Str(String::new())
                }
            }
            Derived::DestinationService => self.service_host().map_or(Value::Missing, Value::Str),
            Derived::DestinationServiceName => match self.service_host() {
                Some(h) => match split_k8s_host(&h) {
                    Some((name, _)) => Value::Str(name.to_string()),
                    None => Value::Str(h),
                },
                None => Value::Missing,
            },
            Derived::DestinationServiceNamespace => {
                if let Some(h) = self.service_host() {
                    if let Some((_, ns)) = split_k8s_host(&h) {
                        return Value::Str(ns.to_string());
                    }
                }
                match self.cfg.reporter {
                    Reporter::Destination if !self.cfg.node.namespace.is_empty() => {
                        Value::Str(self.cfg.node.namespace.clone())
                    }
                    Reporter::Destination => Value::Missing,
                    Reporter::Source => self.peer(PeerSide::Upstream, "namespace"),
                }
            }
            Derived::SecurityPolicy => match self.mtls() {
                Value::Bool(true) => Value::Str("mutual_tls".into()),
                Value::Bool(false) => Value::Str("none".into()),
                _ => Value::Missing,
            },
            // Principals are mTLS identities: without mutual TLS there is no
            // peer certificate, and Istio writes `unknown`; skipping the
            // certificate reads saves two property calls per plain-text
            // request.
            Derived::PeerPrincipal | Derived::LocalPrincipal => {
                if self.mtls() == Value::Bool(false) {
                    return Value::Missing;
                }
                let field = if d == Derived::PeerPrincipal {
                    "uri_san_peer_certificate"
                } else {
                    "uri_san_local_certificate"
                };
                self.prop(&["connection", field], PropKind::Str)
            }
        }
    }
}

/// Appends a value to a label-set key: a tag byte, then the value (strings
/// with their length), so that distinct value lists give distinct keys.
pub fn push_value_key(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Missing => out.push(0),
        Value::Str(s) => push_opt_str(out, Some(s)),
        Value::Int(n) => {
            out.push(2);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::Bool(b) => out.extend_from_slice(&[3, u8::from(*b)]),
        Value::Time(t) => {
            out.push(4);
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
}

/// A string (tag 1, length, bytes) or a missing value (tag 0) in a key.
fn push_opt_str(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The host of an Istio cluster name (`inbound|9080||reviews.prod.svc...`:
/// four `|`-separated parts, the last non-empty).
fn istio_cluster_host(cluster: &str) -> Option<&str> {
    let mut it = cluster.split('|');
    let (_, _, _, host) = (it.next()?, it.next()?, it.next()?, it.next()?);
    (it.next().is_none() && !host.is_empty()).then_some(host)
}

/// `:path` without its query string or fragment.
fn url_path_of(p: &str) -> &str {
    &p[..p.find(['?', '#']).unwrap_or(p.len())]
}

/// The query string of a `:path` (after `?`, before `#`), if any.
fn query_of(p: &str) -> Option<&str> {
    let rest = &p[p.find('?')? + 1..];
    Some(&rest[..rest.find('#').unwrap_or(rest.len())])
}

/// A non-empty identity string as a label.
fn non_empty(v: Option<String>) -> Value {
    match v {
        Some(v) if !v.is_empty() => Value::Str(v),
        _ => Value::Missing,
    }
}

/// A claim as a label: a string as is, a number as written, a boolean as
/// `true`/`false`, a list as its scalar elements joined with `,`; objects
/// and nulls are missing.
fn claim_string(v: JsonRef<'_>) -> Option<String> {
    if v.is_array() {
        let parts: Vec<String> = v.scalars().map(|s| s.text().to_string()).collect();
        (!parts.is_empty()).then(|| parts.join(","))
    } else {
        v.scalar().map(|s| s.text().to_string())
    }
}

/// `reviews.default.svc.cluster.local` → (`reviews`, `default`).
fn split_k8s_host(host: &str) -> Option<(&str, &str)> {
    let mut it = host.split('.');
    let name = it.next()?;
    let ns = it.next()?;
    (it.next() == Some("svc") && !name.is_empty() && !ns.is_empty()).then_some((name, ns))
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        // [v6]:port
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn content_length(v: Option<&str>) -> Option<i64> {
    v.and_then(|v| v.trim().parse().ok())
}

/// Envoy's `HeaderMap::byteSize`: names and values of every header.
pub fn header_bytes(h: &HeaderMap) -> i64 {
    h.pairs()
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as i64)
        .sum()
}

#[cfg(test)]
pub(crate) mod tests;
