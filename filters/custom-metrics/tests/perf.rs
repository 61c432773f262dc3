//! The benchmark configuration — Istio's standard metrics plus 3
//! user metrics with 6 labels each — through the real `custom_metrics.wasm`
//! in the harness and through the native core, checked by counting, not by
//! timing: the bench scenario's expectations hold, the 7 metrics are defined
//! once, and every request makes the same number of metric updates (the label
//! cache does not grow the work). What it costs per request is measured by
//! the benchmarks (`benches/`, case `custom-metrics-3x6`, figures in
//! BENCHMARKS.md; issue 7 asks for 3 µs), never as a pass/fail test. Needs the
//! `.wasm` artifacts.

use custom_metrics::config::{Compiled, NodeInfo};
use custom_metrics::recorder::{MetricSink, Recorder};
use custom_metrics::tags::MetricKind;
use std::path::Path;
use wasmesh::scenario::{RunOptions, Scenario};

fn bench_scenario() -> Scenario {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    Scenario::from_file(&dir.join("bench/standard_plus_3x6.yaml")).expect("bench scenario")
}

#[test]
fn standard_plus_three_user_metrics_of_six_labels() {
    // The bench scenario with an expectation on its request.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join("bench/standard_plus_3x6.yaml")).expect("bench");
    let text = text.replacen(
        "headers: {x-plan: pro, x-tenant: acme, user-agent: bench}",
        "headers: {x-plan: pro, x-tenant: acme, user-agent: bench}\n    repeat: 3\n    expect: {status: 200}",
        1,
    );
    assert!(
        text.contains("repeat: 3"),
        "the bench scenario's request changed"
    );
    let s = Scenario::from_yaml_str(&text, &dir.join("bench")).expect("scenario");
    let report = wasmesh::scenario::run(&s, &RunOptions::default()).expect("runs");
    assert!(report.passed(), "{report}");
}

/// Counts what the recorder asks of the host: definitions and updates.
#[derive(Default)]
struct CountingSink {
    defined: u32,
    updates: u64,
}
impl MetricSink for CountingSink {
    fn define(&mut self, _kind: MetricKind, _name: &str) -> Option<u32> {
        self.defined += 1;
        Some(self.defined)
    }
    fn increment(&mut self, _id: u32, _delta: i64) {
        self.updates += 1;
    }
    fn record(&mut self, _id: u32, _value: u64) {
        self.updates += 1;
    }
}

/// The decision core alone (label sets, cache, samples) with a host that
/// answers from memory.
#[test]
fn native_core_work_per_request() {
    use custom_metrics::resolver::StreamHost;
    use wasmesh_common::HeaderMap;

    struct Host {
        req: HeaderMap,
        resp: HeaderMap,
        trailers: HeaderMap,
    }
    impl StreamHost for Host {
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
            let v: &[u8] = match path {
                ["xds", "cluster_name"] => b"inbound|9080||reviews.prod.svc.cluster.local",
                ["connection", "mtls"] => &[1],
                ["connection", "uri_san_peer_certificate"] => {
                    b"spiffe://cluster.local/ns/prod/sa/productpage"
                }
                ["connection", "uri_san_local_certificate"] => {
                    b"spiffe://cluster.local/ns/prod/sa/reviews"
                }
                ["response", "code"] => return Some(200i64.to_le_bytes().to_vec()),
                ["response", "flags"] => return Some(0i64.to_le_bytes().to_vec()),
                ["request", "duration"] => return Some(12_000_000i64.to_le_bytes().to_vec()),
                ["request", "total_size"] | ["response", "total_size"] | ["response", "size"] => {
                    return Some(300i64.to_le_bytes().to_vec())
                }
                _ => return None,
            };
            Some(v.to_vec())
        }
        fn identity(&mut self) -> Option<wasmesh_common::identity::IdentityView<'_>> {
            None
        }
        fn now_nanos(&mut self) -> u64 {
            1_700_000_000_000_000_000
        }
        fn stream_start_nanos(&self) -> Option<u64> {
            None
        }
        fn request_body_bytes(&self) -> Option<u64> {
            None
        }
        fn response_body_bytes(&self) -> Option<u64> {
            None
        }
    }

    let s = bench_scenario();
    let config = wasmesh::scenario::yaml_to_json(s.spec.chain[0].config.as_ref().expect("config"))
        .expect("json");
    let cfg =
        Compiled::from_json(config.to_string().as_bytes(), NodeInfo::default()).expect("config");
    let mut recorder = Recorder::new(&cfg);
    let mut sink = CountingSink::default();
    let mut host = Host {
        req: HeaderMap::from_slice(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", "/users/42"),
            ("x-plan", "pro"),
            ("x-tenant", "acme"),
            ("user-agent", "bench"),
            ("x-request-id", "5b0f8b2e-1c2d-4e6f-8a9b-0c1d2e3f4a5b"),
        ]),
        resp: HeaderMap::from_slice(&[(":status", "200"), ("content-length", "2")]),
        trailers: HeaderMap::new(),
    };
    let mut per_request = Vec::new();
    for _ in 0..50 {
        let before = sink.updates;
        let started = recorder.on_request_start(&cfg, &mut host, &mut sink);
        recorder.on_log(&cfg, &mut host, &mut sink, &started);
        per_request.push(sink.updates - before);
    }
    assert_eq!(sink.defined, 7, "7 metrics, each defined once");
    assert!(per_request[0] >= 7, "every metric updated: {per_request:?}");
    assert!(
        per_request.iter().all(|&n| n == per_request[0]),
        "the same work for every request: {per_request:?}"
    );
}
