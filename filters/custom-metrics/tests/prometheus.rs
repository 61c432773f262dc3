//! What Prometheus scrapes: the metrics the real `custom_metrics.wasm`
//! defines in the harness, with Envoy's tag extraction (the `stats_tags` this
//! crate ships) and Envoy's Prometheus text format, compared line by line.
//!
//! Needs the `.wasm` artifacts (`bash scripts/build-wasm.sh`).

use custom_metrics::config::stats_tags_for_config;
use custom_metrics::tags::{self, HistogramData, Stat, StatValue, TagProducer};
use std::path::Path;
use wasmesh::scenario::{typed_properties, yaml_to_json};
use wasmesh::scenario::{RunOptions, Scenario, Session};
use wasmesh::types::MetricKind;

/// Runs every step of `yaml` and renders `/stats/prometheus`.
fn scrape(yaml: &str, config_json: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let s = Scenario::from_yaml_str(yaml, &dir).expect("scenario");
    scrape_scenario(&s, config_json)
}

/// Runs every step of a scenario and renders `/stats/prometheus` with the
/// `stats_tags` of `config_json`.
fn scrape_scenario(s: &Scenario, config_json: &str) -> String {
    let mut session =
        Session::new(&s.spec, &s.base_dir, &RunOptions::default()).expect("chain starts");
    let base = typed_properties(&s.spec.properties).expect("properties");
    for step in &s.spec.requests {
        let mut props = base.clone();
        props.extend(typed_properties(&step.properties).expect("properties"));
        let req = step.request.as_ref().expect("request");
        session
            .request(step.worker, req, props, step.upstream.clone())
            .expect("request runs");
    }
    let metrics = session.host.metrics();
    let names: Vec<String> = metrics
        .iter()
        .map(|m| tags::wasm_stat_name(&m.name))
        .collect();
    let hists: Vec<HistogramData> = metrics
        .iter()
        .map(|m| HistogramData::from_bucket_counts(&m.buckets, m.sum, m.count))
        .collect();
    let stats: Vec<Stat> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| Stat {
            name: &names[i],
            value: match m.kind {
                MetricKind::Counter => StatValue::Counter(m.value as u64),
                MetricKind::Gauge => StatValue::Gauge(m.value),
                MetricKind::Histogram => StatValue::Histogram(&hists[i]),
            },
        })
        .collect();
    let producer =
        TagProducer::new(&stats_tags_for_config(config_json.as_bytes()).expect("config"))
            .expect("stats_tags compile");
    tags::render_prometheus(&stats, &producer)
}

fn buckets(name: &str, labels: &str, cumulative: [u64; 19], sum: u64, count: u64) -> String {
    let bounds = [
        "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
        "30000", "60000", "300000", "600000", "1800000", "3600000",
    ];
    let mut s = String::new();
    for (b, c) in bounds.iter().zip(cumulative) {
        s += &format!("{name}_bucket{{{labels},le=\"{b}\"}} {c}\n");
    }
    s += &format!("{name}_bucket{{{labels},le=\"+Inf\"}} {count}\n");
    s += &format!("{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {count}\n");
    s
}

const USER_CONFIG: &str = r#"{
  "standardMetrics": false,
  "maxLabelValues": 3,
  "pathTemplates": ["/users/{id}", "/orders/{id}/items/{item}"],
  "metrics": [
    {"name": "api_requests_total", "type": "COUNTER",
     "dimensions": {"method": "request.method", "code": "response.code", "route": "request.path_template"}},
    {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms",
     "dimensions": {"method": "request.method"}},
    {"name": "inflight", "type": "GAUGE", "value": "inflight"}
  ]
}"#;

#[test]
fn user_metrics_as_prometheus_scrapes_them() {
    let yaml = format!(
        r#"
chain:
  - name: metrics
    wasm: custom_metrics
    config: '{}'
upstream: {{status: 200, body: ok, delay_ms: 12}}
requests:
  - request: {{path: /users/1}}
  - request: {{path: /users/2}}
    upstream: {{status: 200, body: ok, delay_ms: 30}}
  - request: {{method: POST, path: /orders/7/items/9}}
    upstream: {{status: 201, body: ok, delay_ms: 3}}
  - request: {{method: DELETE, path: /users/1}}
    upstream: {{status: 204, delay_ms: 700}}
  - request: {{path: /nope}}
    upstream: {{status: 404, body: "", delay_ms: 0}}
"#,
        USER_CONFIG.replace('\n', " ")
    );
    let text = scrape(&yaml, USER_CONFIG);
    let mut want = String::new();
    want += "# TYPE api_requests_total counter\n";
    want += "api_requests_total{code=\"200\",method=\"GET\",route=\"/users/{id}\"} 2\n";
    want +=
        "api_requests_total{code=\"201\",method=\"POST\",route=\"/orders/{id}/items/{item}\"} 1\n";
    want += "api_requests_total{code=\"204\",method=\"DELETE\",route=\"/users/{id}\"} 1\n";
    // A fourth label set is over maxLabelValues (3): folded and counted.
    want += "api_requests_total{code=\"other\",method=\"other\",route=\"other\"} 1\n";
    want += "# TYPE wasmesh_metrics_label_overflow_total counter\n";
    want += "wasmesh_metrics_label_overflow_total{metric=\"api_requests_total\"} 1\n";
    want += "# TYPE inflight gauge\ninflight{} 0\n";
    want += "# TYPE api_latency_ms histogram\n";
    want += &buckets(
        "api_latency_ms",
        "method=\"DELETE\"",
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        700,
        1,
    );
    want += &buckets(
        "api_latency_ms",
        "method=\"GET\"",
        [1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
        42,
        3,
    );
    want += &buckets(
        "api_latency_ms",
        "method=\"POST\"",
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        3,
        1,
    );
    assert_eq!(text, want, "\n--- got ---\n{text}\n--- want ---\n{want}");
}

const ISTIO_PROPERTIES: &str = r#"
properties:
  node.metadata.WORKLOAD_NAME: reviews-v1
  node.metadata.NAMESPACE: prod
  node.metadata.LABELS.app: reviews
  node.metadata.LABELS.version: v1
  downstream_peer.workload: productpage-v1
  downstream_peer.namespace: prod
  downstream_peer.app: productpage
  downstream_peer.version: v1
  connection.mtls: true
  connection.uri_san_peer_certificate: spiffe://cluster.local/ns/prod/sa/productpage
  connection.uri_san_local_certificate: spiffe://cluster.local/ns/prod/sa/reviews
"#;

fn istio_labels(code: &str, flags: &str) -> String {
    format!(
        "reporter=\"destination\",source_workload=\"productpage-v1\",source_workload_namespace=\"prod\",\
source_principal=\"spiffe://cluster.local/ns/prod/sa/productpage\",source_app=\"productpage\",source_version=\"v1\",\
destination_workload=\"reviews-v1\",destination_workload_namespace=\"prod\",\
destination_principal=\"spiffe://cluster.local/ns/prod/sa/reviews\",destination_service=\"reviews.prod.svc.cluster.local\",\
destination_service_name=\"reviews\",destination_service_namespace=\"prod\",request_protocol=\"http\",\
response_code=\"{code}\",grpc_response_status=\"\",response_flags=\"{flags}\",connection_security_policy=\"mutual_tls\""
    )
}

#[test]
fn istio_standard_metrics_as_prometheus_scrapes_them() {
    let yaml = format!(
        r#"{ISTIO_PROPERTIES}
chain:
  - name: metrics
    wasm: custom_metrics
    config: {{}}
routes:
  - {{prefix: /, cluster: "inbound|9080||reviews.prod.svc.cluster.local"}}
upstream: {{status: 200, body: ok, delay_ms: 25}}
requests:
  - request: {{path: /reviews/1}}
  - request: {{path: /reviews/2}}
    upstream: {{status: 200, body: ok, delay_ms: 60}}
  - request: {{path: /reviews/3}}
    upstream: {{unreachable: true}}
"#
    );
    let text = scrape(&yaml, "{}");
    let ok = istio_labels("200", "-");
    let uf = istio_labels("503", "UF");
    let mut want = String::new();
    want += "# TYPE istio_requests_total counter\n";
    want += &format!("istio_requests_total{{{ok}}} 2\n");
    want += &format!("istio_requests_total{{{uf}}} 1\n");
    // Histograms, by name: bytes, duration, response bytes. Request: 105
    // bytes of headers each; response: `:status 200` + `content-length 2` +
    // `ok` = 27 bytes; the proxy's own 503 is `:status 503` (10) +
    // `content-length 91` (16) + `content-type text/plain` (22) + 91 bytes of
    // body = 139.
    want += "# TYPE istio_request_bytes histogram\n";
    let at105 = [0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2];
    want += &buckets("istio_request_bytes", &ok, at105, 210, 2);
    let one105 = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    want += &buckets("istio_request_bytes", &uf, one105, 105, 1);
    want += "# TYPE istio_request_duration_milliseconds histogram\n";
    let d = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2];
    want += &buckets("istio_request_duration_milliseconds", &ok, d, 85, 2);
    want += &buckets("istio_request_duration_milliseconds", &uf, [1; 19], 0, 1);
    want += "# TYPE istio_response_bytes histogram\n";
    let r = [0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2];
    want += &buckets("istio_response_bytes", &ok, r, 54, 2);
    let r503 = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
    want += &buckets("istio_response_bytes", &uf, r503, 139, 1);
    assert_eq!(text, want, "\n--- got ---\n{text}\n--- want ---\n{want}");
}

fn example_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/custom-metrics")
}

/// The README's Prometheus output is what the example really produces.
#[test]
fn example_readme_shows_the_real_output() {
    let dir = example_dir();
    let config = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    let s = Scenario::from_file(&dir.join("scenario.yaml")).expect("scenario");
    let text = scrape_scenario(&s, &config);
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let start = readme
        .find("<!-- prometheus:begin -->")
        .expect("begin marker");
    let end = readme.find("<!-- prometheus:end -->").expect("end marker");
    let block = &readme[start..end];
    let body = block
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.rsplit_once("```"))
        .map(|(b, _)| b)
        .expect("a ```text block between the markers");
    assert_eq!(
        body, text,
        "README block differs; the real output is:\n{text}"
    );
}

/// config.json and the example scenario configure the filter the same way.
#[test]
fn example_config_matches_the_scenario() {
    let dir = example_dir();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("config.json")).expect("config.json"),
    )
    .expect("config.json is JSON");
    let s = Scenario::from_file(&dir.join("scenario.yaml")).expect("scenario");
    let plugin = s
        .spec
        .chain
        .iter()
        .find(|p| p.wasm == "custom_metrics")
        .expect("metrics plugin");
    let in_scenario =
        yaml_to_json(plugin.config.as_ref().expect("config")).expect("config as JSON");
    assert_eq!(file, in_scenario);
    custom_metrics::config::Compiled::from_json(file.to_string().as_bytes(), Default::default())
        .expect("the example configuration compiles");
}
