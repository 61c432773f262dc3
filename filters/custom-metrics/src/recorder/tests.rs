use super::*;
use crate::config::NodeInfo;
use crate::resolver::tests::FakeStream;
use crate::tags::decode_stat_name;

/// Records what the filter asked for, like Envoy's stats store.
#[derive(Default)]
struct FakeSink {
    names: Vec<(MetricKind, String)>,
    values: HashMap<u32, i64>,
    samples: HashMap<u32, Vec<u64>>,
}

impl MetricSink for FakeSink {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        if let Some(i) = self.names.iter().position(|(_, n)| n == name) {
            return Some(i as u32);
        }
        self.names.push((kind, name.to_string()));
        Some(self.names.len() as u32 - 1)
    }
    fn increment(&mut self, id: u32, delta: i64) {
        *self.values.entry(id).or_default() += delta;
    }
    fn record(&mut self, id: u32, value: u64) {
        match self.names[id as usize].0 {
            MetricKind::Histogram => self.samples.entry(id).or_default().push(value),
            _ => {
                self.values.insert(id, value as i64);
            }
        }
    }
}

impl FakeSink {
    fn id(&self, name: &str) -> u32 {
        self.names
            .iter()
            .position(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("{name} not defined; have {:#?}", self.names)) as u32
    }
    fn value(&self, name: &str) -> i64 {
        self.values.get(&self.id(name)).copied().unwrap_or(0)
    }
    fn samples(&self, name: &str) -> Vec<u64> {
        self.samples
            .get(&self.id(name))
            .cloned()
            .unwrap_or_default()
    }
    fn named(&self, metric: &str) -> Vec<&str> {
        self.names
            .iter()
            .map(|(_, n)| n.as_str())
            .filter(|n| decode_stat_name(n).map(|(m, _)| m) == Some(metric))
            .collect()
    }
}

fn cfg(json: &str) -> Compiled {
    Compiled::from_json(json.as_bytes(), NodeInfo::default()).unwrap()
}

fn run(r: &mut Recorder, c: &Compiled, sink: &mut FakeSink, s: &mut FakeStream) -> Option<String> {
    let started = r.on_request_start(c, s, sink);
    r.on_log(c, s, sink, &started)
}

const STD_200: &str = "reporter=.=destination;.;source_workload=.=unknown;.;source_workload_namespace=.=unknown;.;\
source_principal=.=unknown;.;source_app=.=unknown;.;source_version=.=unknown;.;destination_workload=.=unknown;.;\
destination_workload_namespace=.=unknown;.;destination_principal=.=unknown;.;destination_service=.=api.example.com;.;\
destination_service_name=.=api.example.com;.;destination_service_namespace=.=unknown;.;request_protocol=.=http;.;\
response_code=.=200;.;grpc_response_status=.=;.;response_flags=.=-;.;connection_security_policy=.=unknown;.;";

#[test]
fn standard_metrics_defined_once_and_recorded() {
    let c = cfg("{}");
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    for _ in 0..3 {
        let mut s = FakeStream::get("/")
            .int("request.duration", 25_000_000)
            .int("request.total_size", 300)
            .int("response.total_size", 700);
        run(&mut r, &c, &mut sink, &mut s);
    }
    assert_eq!(sink.names.len(), 4, "{:#?}", sink.names);
    assert_eq!(sink.value(&format!("{STD_200}istio_requests_total")), 3);
    assert_eq!(
        sink.samples(&format!("{STD_200}istio_request_duration_milliseconds")),
        vec![25, 25, 25]
    );
    assert_eq!(
        sink.samples(&format!("{STD_200}istio_request_bytes")),
        vec![300; 3]
    );
    assert_eq!(
        sink.samples(&format!("{STD_200}istio_response_bytes")),
        vec![700; 3]
    );
}

#[test]
fn standard_labels_from_istio_inputs() {
    let node = NodeInfo {
        workload: "reviews-v1".into(),
        namespace: "prod".into(),
        app: "reviews".into(),
        version: "v1".into(),
    };
    let c = Compiled::from_json(b"{}", node).unwrap();
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    let mut s = FakeStream::get("/")
        .str("downstream_peer.workload", "productpage-v1")
        .str("downstream_peer.namespace", "prod")
        .str("downstream_peer.app", "productpage")
        .str("downstream_peer.version", "v1")
        .str(
            "connection.uri_san_peer_certificate",
            "spiffe://cluster.local/ns/prod/sa/productpage",
        )
        .str(
            "connection.uri_san_local_certificate",
            "spiffe://cluster.local/ns/prod/sa/reviews",
        )
        .boolean("connection.mtls", true)
        .str(
            "xds.cluster_name",
            "inbound|9080||reviews.prod.svc.cluster.local",
        )
        .int("response.code", 503)
        .int("response.flags", 0x20)
        .str("wasmesh.fault", "FI");
    s.req.add("content-type", "application/grpc");
    run(&mut r, &c, &mut sink, &mut s);
    let name = sink.named("istio_requests_total")[0].to_string();
    let (_, labels) = decode_stat_name(&name).unwrap();
    let got: Vec<(&str, &str)> = labels;
    assert_eq!(
        got,
        vec![
            ("reporter", "destination"),
            ("source_workload", "productpage-v1"),
            ("source_workload_namespace", "prod"),
            (
                "source_principal",
                "spiffe://cluster.local/ns/prod/sa/productpage"
            ),
            ("source_app", "productpage"),
            ("source_version", "v1"),
            ("destination_workload", "reviews-v1"),
            ("destination_workload_namespace", "prod"),
            (
                "destination_principal",
                "spiffe://cluster.local/ns/prod/sa/reviews"
            ),
            ("destination_service", "reviews.prod.svc.cluster.local"),
            ("destination_service_name", "reviews"),
            ("destination_service_namespace", "prod"),
            ("request_protocol", "grpc"),
            ("response_code", "503"),
            ("grpc_response_status", "14"),
            ("response_flags", "UF,FI"),
            ("connection_security_policy", "mutual_tls"),
        ]
    );
}

#[test]
fn user_metrics_of_each_type() {
    let c = cfg(
        r#"{"standardMetrics": false, "pathTemplates": ["/users/{id}"],
            "metrics": [
              {"name": "api_requests_total", "type": "COUNTER",
               "dimensions": {"method": "request.method", "route": "request.path_template", "plan": "request.headers[x-plan]"}},
              {"name": "api_bytes_total", "type": "COUNTER", "value": "response.size"},
              {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms", "dimensions": {"method": "request.method"}},
              {"name": "last_request_size", "type": "GAUGE", "value": "request.size"},
              {"name": "inflight", "type": "GAUGE", "value": "inflight", "dimensions": {"method": "request.method"}},
              {"name": "concurrency", "type": "HISTOGRAM", "value": "inflight"}
            ]}"#,
    );
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    let mut a = FakeStream::get("/users/1")
        .int("request.duration", 5_000_000)
        .int("response.size", 10);
    a.req.add("x-plan", "pro");
    a.req.add("content-length", "4");
    let mut b = FakeStream::get("/users/2")
        .int("request.duration", 9_000_000)
        .int("response.size", 30);
    let mut post = FakeStream::get("/nope").int("request.duration", 1_000_000);
    post.req.set(":method", "POST");
    // a and b overlap: b starts before a ends.
    let sa = r.on_request_start(&c, &mut a, &mut sink);
    let sb = r.on_request_start(&c, &mut b, &mut sink);
    assert_eq!(sink.value("method=.=GET;.;inflight"), 2);
    assert_eq!(r.inflight(), 2);
    r.on_log(&c, &mut a, &mut sink, &sa);
    assert_eq!(sink.value("method=.=GET;.;inflight"), 1);
    r.on_log(&c, &mut b, &mut sink, &sb);
    run(&mut r, &c, &mut sink, &mut post);
    assert_eq!(sink.value("method=.=GET;.;inflight"), 0);
    assert_eq!(sink.value("method=.=POST;.;inflight"), 0);
    assert_eq!(r.inflight(), 0);

    assert_eq!(
        sink.value("method=.=GET;.;plan=.=pro;.;route=.=/users/{id};.;api_requests_total"),
        1
    );
    assert_eq!(
        sink.value("method=.=GET;.;plan=.=unknown;.;route=.=/users/{id};.;api_requests_total"),
        1
    );
    assert_eq!(
        sink.value("method=.=POST;.;plan=.=unknown;.;route=.=other;.;api_requests_total"),
        1
    );
    assert_eq!(sink.value("api_bytes_total"), 40);
    assert_eq!(sink.samples("method=.=GET;.;api_latency_ms"), vec![5, 9]);
    assert_eq!(sink.samples("method=.=POST;.;api_latency_ms"), vec![1]);
    // The last stream's value wins (POST without body: 0).
    assert_eq!(sink.value("last_request_size"), 0);
    // In flight when each stream ended: a saw 2, b 1, post 1.
    assert_eq!(sink.samples("concurrency"), vec![2, 1, 1]);
}

#[test]
fn cardinality_guard_folds_and_counts() {
    let c = cfg(r#"{"maxLabelValues": 2, "metrics": [
             {"name": "by_user", "type": "COUNTER", "dimensions": {"reporter": "request.method", "user": "request.headers[x-user]"}}]}"#);
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    for u in ["a", "b", "a", "c", "d", "b", "c"] {
        let mut s = FakeStream::get("/");
        s.req.add("x-user", u);
        run(&mut r, &c, &mut sink, &mut s);
    }
    assert_eq!(sink.value("reporter=.=GET;.;user=.=a;.;by_user"), 2);
    assert_eq!(sink.value("reporter=.=GET;.;user=.=b;.;by_user"), 2);
    assert_eq!(sink.value("reporter=.=other;.;user=.=other;.;by_user"), 3);
    assert_eq!(
        sink.value("metric=.=by_user;.;wasmesh_metrics_label_overflow_total"),
        3
    );
    assert_eq!(sink.named("by_user").len(), 3);
    // Standard metrics: one label set, no overflow.
    assert_eq!(r.admitted(), vec![1, 2]);
    // Folding keeps static labels: standard metrics over the limit keep
    // their reporter.
    let c = cfg(r#"{"maxLabelValues": 1}"#);
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    for code in [200, 404] {
        let mut s = FakeStream::get("/").int("response.code", code);
        run(&mut r, &c, &mut sink, &mut s);
    }
    let folded = sink.named("istio_requests_total")[1].to_string();
    assert!(
        folded.starts_with("reporter=.=destination;.;source_workload=.=other;.;"),
        "{folded}"
    );
    assert_eq!(
        sink.value("metric=.=istio_request_bytes;.;wasmesh_metrics_label_overflow_total"),
        1
    );
}

#[test]
fn access_log_line_is_json() {
    let c = cfg(r#"{"standardMetrics": false, "accessLog": {"fields": {
            "method": "request.method", "code": "response.code", "plan": "request.headers[x-plan]",
            "mtls": "connection.mtls", "start": "request.time", "ua": "request.useragent"}}}"#);
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    let mut s = FakeStream::get("/")
        .boolean("connection.mtls", false)
        .int("request.time", 1_700_000_000_000_000_000);
    s.req.add("user-agent", "curl \"8\"");
    let line = run(&mut r, &c, &mut sink, &mut s).unwrap();
    assert_eq!(
        line,
        r#"{"method":"GET","code":200,"plan":null,"mtls":false,"start":"2023-11-14T22:13:20.000Z","ua":"curl \"8\""}"#
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["code"], 200);
}

#[test]
fn no_response_is_response_code_0() {
    let c = cfg("{}");
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    let mut s = FakeStream::get("/").int("response.flags", 0x4000);
    s.resp = wasmesh_common::HeaderMap::new();
    run(&mut r, &c, &mut sink, &mut s);
    let name = sink.named("istio_requests_total")[0].to_string();
    assert!(name.contains(";.;response_code=.=0;.;"), "{name}");
    assert!(name.contains(";.;response_flags=.=DC;.;"), "{name}");
}

/// The issue 7 benchmark configuration: standard metrics and three
/// user metrics of six labels.
const BENCH_3X6: &str = r#"{"pathTemplates": ["/users/{id}"], "metrics": [
    {"name": "api_requests_total", "type": "COUNTER", "dimensions": {"method": "request.method",
     "code": "response.code", "route": "request.path_template", "plan": "request.headers[x-plan]",
     "tenant": "request.headers[x-tenant]", "cluster": "xds.cluster_name"}},
    {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms", "dimensions": {"method": "request.method",
     "code": "response.code", "route": "request.path_template", "plan": "request.headers[x-plan]",
     "tenant": "request.headers[x-tenant]", "cluster": "xds.cluster_name"}},
    {"name": "api_response_bytes", "type": "HISTOGRAM", "value": "response.size", "dimensions": {"method": "request.method",
     "code": "response.code", "route": "request.path_template", "plan": "request.headers[x-plan]",
     "tenant": "request.headers[x-tenant]", "cluster": "xds.cluster_name"}},
    {"name": "by_node", "type": "COUNTER", "dimensions": {"node": "node.metadata.CLUSTER_ID"}}]}"#;

fn mesh_stream(tenant: &str) -> FakeStream {
    let mut s = FakeStream::get("/users/42")
        .str(
            "xds.cluster_name",
            "inbound|9080||reviews.prod.svc.cluster.local",
        )
        .boolean("connection.mtls", true)
        .str(
            "connection.uri_san_peer_certificate",
            "spiffe://cluster.local/ns/prod/sa/web",
        )
        .str(
            "connection.uri_san_local_certificate",
            "spiffe://cluster.local/ns/prod/sa/reviews",
        )
        .str("downstream_peer.workload", "web-v1")
        .str("node.metadata.CLUSTER_ID", "Kubernetes")
        .int("response.code", 200)
        .int("response.flags", 0)
        .int("request.duration", 12_000_000)
        .int("request.total_size", 300)
        .int("response.total_size", 400)
        .int("response.size", 2);
    s.req.add("x-plan", "pro");
    s.req.add("x-tenant", tenant);
    s
}

#[test]
fn each_property_is_read_at_most_once_per_request() {
    let c = cfg(BENCH_3X6);
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    let mut first = mesh_stream("acme");
    run(&mut r, &c, &mut sink, &mut first);
    let mut paths = first.read_paths.clone();
    paths.sort();
    let n = paths.len();
    paths.dedup();
    assert_eq!(
        paths.len(),
        n,
        "a property read twice: {:?}",
        first.read_paths
    );
    assert!(first
        .read_paths
        .contains(&"node.metadata.CLUSTER_ID".to_string()));
    // The node's metadata is read once per VM, not per request; the
    // rest of what the first request read, the second reads again.
    let mut second = mesh_stream("acme");
    run(&mut r, &c, &mut sink, &mut second);
    let mut want = first.read_paths.clone();
    want.retain(|p| p != "node.metadata.CLUSTER_ID");
    assert_eq!(second.read_paths, want);
    // Both recorded on the same series; a new tenant is a new series.
    let series = |sink: &FakeSink| sink.named("api_requests_total").len();
    assert_eq!(series(&sink), 1);
    run(&mut r, &c, &mut sink, &mut mesh_stream("other-co"));
    assert_eq!(series(&sink), 2);
    assert_eq!(
        sink.value(
            "cluster=.=inbound|9080||reviews.prod.svc.cluster.local;.;code=.=200;.;method=.=GET;.;\
plan=.=pro;.;route=.=/users/{id};.;tenant=.=acme;.;api_requests_total"
        ),
        2
    );
    assert_eq!(sink.value("node=.=Kubernetes;.;by_node"), 3);
    // Without mutual TLS the certificates are not read.
    let mut plain = mesh_stream("acme").boolean("connection.mtls", false);
    run(&mut r, &c, &mut sink, &mut plain);
    assert!(!plain.read_paths.iter().any(|p| p.contains("certificate")));
}

#[test]
fn values_with_the_same_stat_name_are_one_label_set() {
    // `a;b` and `a_b` are both written `a_b`: one label set for the
    // cardinality guard, as when the cache was keyed by the stat name.
    let c = cfg(
        r#"{"standardMetrics": false, "maxLabelValues": 2, "metrics": [
             {"name": "m", "type": "COUNTER", "dimensions": {"plan": "request.headers[x-plan]"}}]}"#,
    );
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    for plan in ["a;b", "a_b", "a;b", "a_b", "c", "d", "a;b"] {
        let mut s = FakeStream::get("/");
        s.req.add("x-plan", plan);
        run(&mut r, &c, &mut sink, &mut s);
    }
    assert_eq!(r.admitted(), vec![2]);
    assert_eq!(sink.value("plan=.=a_b;.;m"), 5);
    assert_eq!(sink.value("plan=.=c;.;m"), 1);
    assert_eq!(sink.value("plan=.=other;.;m"), 1);
    assert_eq!(
        sink.value("metric=.=m;.;wasmesh_metrics_label_overflow_total"),
        1
    );
}

#[test]
fn metrics_with_the_same_labels_share_one_lookup() {
    let c = cfg(BENCH_3X6);
    let r = Recorder::new(&c);
    // Standard metrics, the three user metrics, by_node.
    assert_eq!(r.groups.groups.len(), 3);
    assert_eq!(r.admitted().len(), c.groups.len());
}

#[test]
fn label_values_cannot_inject_labels() {
    let c = cfg(r#"{"standardMetrics": false, "metrics": [
             {"name": "m", "type": "COUNTER", "dimensions": {"plan": "request.headers[x-plan]"}}]}"#);
    let mut r = Recorder::new(&c);
    let mut sink = FakeSink::default();
    let mut s = FakeStream::get("/");
    s.req.add("x-plan", "x;.;reporter=.=evil");
    run(&mut r, &c, &mut sink, &mut s);
    assert_eq!(sink.value("plan=.=x_._reporter=_=evil;.;m"), 1);
}
