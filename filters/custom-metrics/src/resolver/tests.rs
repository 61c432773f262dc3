use super::*;
use crate::attribute;
use crate::config::NodeInfo;
use std::collections::HashMap;
use wasmesh_common::identity::Identity;

/// A stream made of plain data.
#[derive(Default)]
pub struct FakeStream {
    pub req: HeaderMap,
    pub resp: HeaderMap,
    pub trailers: HeaderMap,
    pub props: HashMap<String, Vec<u8>>,
    /// The identity as stored in filter state.
    pub identity: Option<String>,
    pub now: u64,
    pub start: Option<u64>,
    pub req_body: Option<u64>,
    pub resp_body: Option<u64>,
    pub property_reads: usize,
    /// Every property path read, in order.
    pub read_paths: Vec<String>,
}

impl FakeStream {
    pub fn get(path: &str) -> FakeStream {
        FakeStream {
            req: HeaderMap::from_slice(&[
                (":method", "GET"),
                (":path", path),
                (":authority", "api.example.com:8080"),
                (":scheme", "http"),
            ]),
            resp: HeaderMap::from_slice(&[(":status", "200")]),
            now: 1_700_000_000_000_000_000,
            ..Default::default()
        }
    }
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.props.insert(k.into(), v.as_bytes().to_vec());
        self
    }
    pub fn int(mut self, k: &str, v: i64) -> Self {
        self.props.insert(k.into(), v.to_le_bytes().to_vec());
        self
    }
    pub fn boolean(mut self, k: &str, v: bool) -> Self {
        self.props.insert(k.into(), vec![u8::from(v)]);
        self
    }
}

impl StreamHost for FakeStream {
    fn request_headers(&mut self) -> &HeaderMap {
        &self.req
    }
    fn response_headers(&mut self) -> &HeaderMap {
        &self.resp
    }
    fn response_trailers(&mut self) -> &HeaderMap {
        &self.trailers
    }
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        self.property_reads += 1;
        self.read_paths.push(path.join("."));
        self.props.get(&path.join(".")).cloned()
    }
    fn identity(&mut self) -> Option<IdentityView<'_>> {
        IdentityView::parse(self.identity.as_deref()?.as_bytes())
    }
    fn now_nanos(&mut self) -> u64 {
        self.now
    }
    fn stream_start_nanos(&self) -> Option<u64> {
        self.start
    }
    fn request_body_bytes(&self) -> Option<u64> {
        self.req_body
    }
    fn response_body_bytes(&self) -> Option<u64> {
        self.resp_body
    }
}

fn cfg(json: &str) -> Compiled {
    Compiled::from_json(json.as_bytes(), NodeInfo::default()).unwrap()
}

/// The identity as the JWT filter stores it.
pub fn identity_json(id: Identity) -> String {
    id.to_json()
}

fn eval(s: &mut FakeStream, c: &Compiled, expr: &str) -> Value {
    let a = attribute::parse(expr).unwrap();
    Resolver::new(s, c, 3).eval(&a)
}

#[test]
fn request_attributes() {
    let c = cfg(r#"{"pathTemplates":["/users/{id}"]}"#);
    let mut s = FakeStream::get("/users/42?x=1");
    s.req.add("x-plan", "pro");
    assert_eq!(eval(&mut s, &c, "request.method"), Value::Str("GET".into()));
    assert_eq!(
        eval(&mut s, &c, "request.url_path"),
        Value::Str("/users/42".into())
    );
    assert_eq!(eval(&mut s, &c, "request.query"), Value::Str("x=1".into()));
    assert_eq!(
        eval(&mut s, &c, "request.headers[x-plan]"),
        Value::Str("pro".into())
    );
    assert_eq!(eval(&mut s, &c, "request.headers[x-none]"), Value::Missing);
    assert_eq!(
        eval(&mut s, &c, "request.path_template"),
        Value::Str("/users/{id}".into())
    );
    let mut s = FakeStream::get("/other");
    assert_eq!(
        eval(&mut s, &c, "request.path_template"),
        Value::Str("other".into())
    );
    assert_eq!(eval(&mut s, &c, "inflight"), Value::Int(3));
}

#[test]
fn response_and_properties() {
    let c = cfg("{}");
    let mut s = FakeStream::get("/")
        .int("response.code", 503)
        .int("response.flags", 0x2)
        .str("wasmesh.fault", "FI")
        .int("source.port", 40000)
        .boolean("connection.mtls", true);
    assert_eq!(eval(&mut s, &c, "response.code"), Value::Int(503));
    assert_eq!(
        eval(&mut s, &c, "response.code_class"),
        Value::Str("5xx".into())
    );
    assert_eq!(
        eval(&mut s, &c, "response.flags"),
        Value::Str("UH,FI".into())
    );
    assert_eq!(eval(&mut s, &c, "source.port"), Value::Int(40000));
    assert_eq!(eval(&mut s, &c, "connection.mtls"), Value::Bool(true));
    assert_eq!(eval(&mut s, &c, "source.address"), Value::Missing);
    // Without the property, :status.
    let mut s = FakeStream::get("/");
    assert_eq!(eval(&mut s, &c, "response.code"), Value::Int(200));
    assert_eq!(eval(&mut s, &c, "response.flags"), Value::Str("-".into()));
}

#[test]
fn computed_values_and_fallbacks() {
    let c = cfg("{}");
    let mut s = FakeStream::get("/").int("request.duration", 12_500_000);
    assert_eq!(eval(&mut s, &c, "request.duration_ms"), Value::Int(12));
    let mut s = FakeStream::get("/");
    s.props.insert(
        "request.time".into(),
        (s.now as i64 - 40_000_000).to_le_bytes().to_vec(),
    );
    assert_eq!(eval(&mut s, &c, "request.duration_ms"), Value::Int(40));
    let mut s = FakeStream::get("/");
    s.start = Some(s.now - 7_000_000);
    assert_eq!(eval(&mut s, &c, "request.duration_ms"), Value::Int(7));
    let mut s = FakeStream::get("/");
    assert_eq!(eval(&mut s, &c, "request.duration_ms"), Value::Missing);

    // Sizes: property, else content-length / counted bytes; totals add headers.
    let mut s = FakeStream::get("/")
        .int("request.size", 10)
        .int("response.total_size", 99);
    assert_eq!(eval(&mut s, &c, "request.size"), Value::Int(10));
    assert_eq!(eval(&mut s, &c, "response.total_size"), Value::Int(99));
    let mut s = FakeStream::get("/");
    s.req.add("content-length", "5");
    s.resp_body = Some(11);
    let hdr = header_bytes(&s.req);
    assert_eq!(eval(&mut s, &c, "request.size"), Value::Int(5));
    assert_eq!(eval(&mut s, &c, "request.total_size"), Value::Int(hdr + 5));
    assert_eq!(eval(&mut s, &c, "response.size"), Value::Int(11));
    assert_eq!(
        eval(&mut s, &c, "response.total_size"),
        Value::Int(":status".len() as i64 + 3 + 11)
    );
}

#[test]
fn claims() {
    let c = cfg("{}");
    let mut s = FakeStream::get("/");
    assert_eq!(
        eval(&mut s, &c, "request.auth.claims[tenant]"),
        Value::Missing
    );
    let mut claims = serde_json::Map::new();
    claims.insert("tenant".into(), serde_json::json!("acme"));
    claims.insert("groups".into(), serde_json::json!(["a", "b"]));
    claims.insert("realm".into(), serde_json::json!({"role": "admin"}));
    s.identity = Some(identity_json(Identity {
        provider: "idp".into(),
        iss: "https://idp".into(),
        sub: "alice".into(),
        aud: vec!["api".into()],
        azp: String::new(),
        principal: "https://idp/alice".into(),
        claims,
    }));
    assert_eq!(
        eval(&mut s, &c, "request.auth.claims[tenant]"),
        Value::Str("acme".into())
    );
    assert_eq!(
        eval(&mut s, &c, "request.auth.claims[groups]"),
        Value::Str("a,b".into())
    );
    assert_eq!(
        eval(&mut s, &c, "request.auth.claims[realm][role]"),
        Value::Str("admin".into())
    );
    assert_eq!(
        eval(&mut s, &c, "request.auth.claims[realm]"),
        Value::Missing
    );
    assert_eq!(
        eval(&mut s, &c, "request.auth.principal"),
        Value::Str("https://idp/alice".into())
    );
    assert_eq!(eval(&mut s, &c, "request.auth.presenter"), Value::Missing);
}

#[test]
fn cluster_and_service() {
    let c = cfg("{}");
    let d = |s: &mut FakeStream, d: Derived| Resolver::new(s, &c, 0).eval(&Attribute::Derived(d));
    let mut s = FakeStream::get("/").str(
        "xds.cluster_name",
        "outbound|9080||reviews.prod.svc.cluster.local",
    );
    assert_eq!(
        d(&mut s, Derived::DestinationService),
        Value::Str("reviews.prod.svc.cluster.local".into())
    );
    assert_eq!(
        d(&mut s, Derived::DestinationServiceName),
        Value::Str("reviews".into())
    );
    assert_eq!(
        d(&mut s, Derived::DestinationServiceNamespace),
        Value::Str("prod".into())
    );
    // Plain Envoy cluster: the authority is the service.
    let mut s = FakeStream::get("/").str("cluster_name", "backend");
    assert_eq!(
        eval(&mut s, &c, "xds.cluster_name"),
        Value::Str("backend".into())
    );
    assert_eq!(
        d(&mut s, Derived::DestinationService),
        Value::Str("api.example.com".into())
    );
    assert_eq!(
        d(&mut s, Derived::DestinationServiceName),
        Value::Str("api.example.com".into())
    );
    assert_eq!(
        d(&mut s, Derived::DestinationServiceNamespace),
        Value::Missing
    );
    // The header router's header as last resort.
    let mut s = FakeStream::get("/");
    s.req.add("x-wasmesh-cluster", "v2");
    assert_eq!(eval(&mut s, &c, "cluster_name"), Value::Str("v2".into()));
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("host"), "host");
}

#[test]
fn grpc() {
    let c = cfg("{}");
    let d = |s: &mut FakeStream, d: Derived| Resolver::new(s, &c, 0).eval(&Attribute::Derived(d));
    let mut s = FakeStream::get("/");
    assert_eq!(d(&mut s, Derived::Protocol), Value::Str("http".into()));
    assert_eq!(d(&mut s, Derived::GrpcLabel), Value::Str(String::new()));
    s.req.add("content-type", "application/grpc-web");
    assert_eq!(d(&mut s, Derived::Protocol), Value::Str("http".into()));
    s.req.set("content-type", "application/grpc+proto");
    s.trailers.add("grpc-status", "5");
    assert_eq!(d(&mut s, Derived::Protocol), Value::Str("grpc".into()));
    assert_eq!(d(&mut s, Derived::GrpcLabel), Value::Str("5".into()));
    let mut s = FakeStream::get("/").int("response.code", 401);
    s.req.add("content-type", "application/grpc");
    assert_eq!(eval(&mut s, &c, "response.grpc_status"), Value::Int(16));
}

#[test]
fn peers_are_probed_once() {
    let c = cfg("{}");
    let mut s = FakeStream::get("/");
    {
        let mut r = Resolver::new(&mut s, &c, 0);
        for f in ["workload", "namespace", "app", "version"] {
            assert_eq!(
                r.eval(&Attribute::Peer(PeerSide::Downstream, f)),
                Value::Missing
            );
        }
    }
    // One probe, then nothing.
    assert_eq!(s.property_reads, 1);
    let mut s = FakeStream::get("/").str("downstream_peer.app", "productpage");
    let mut r = Resolver::new(&mut s, &c, 0);
    assert_eq!(
        r.eval(&Attribute::Peer(PeerSide::Downstream, "workload")),
        Value::Missing
    );
    assert_eq!(
        r.eval(&Attribute::Peer(PeerSide::Downstream, "app")),
        Value::Missing,
        "no workload field: treated as no peer"
    );
}

#[test]
fn security_policy() {
    let c = cfg("{}");
    let d = |s: &mut FakeStream| {
        Resolver::new(s, &c, 0).eval(&Attribute::Derived(Derived::SecurityPolicy))
    };
    assert_eq!(d(&mut FakeStream::get("/")), Value::Missing);
    assert_eq!(
        d(&mut FakeStream::get("/").boolean("connection.mtls", true)),
        Value::Str("mutual_tls".into())
    );
    assert_eq!(
        d(&mut FakeStream::get("/").boolean("connection.mtls", false)),
        Value::Str("none".into())
    );
}
