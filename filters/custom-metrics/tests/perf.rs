//! Per-request cost of the benchmark configuration — Istio's standard
//! metrics plus 3 user metrics with 6 labels each — through the real
//! `custom_metrics.wasm` in the harness, against a plugin that does nothing.
//! Times are the test thread's CPU time (best of several runs), so other work
//! on a shared machine does not count. Needs the `.wasm` artifacts.
//!
//! Issue 7 asks for at most 3 µs per request. The figures this test prints
//! are far above that in this harness: the cost is the dozen property reads
//! and seven metric updates per request (each a host call), not the filter's
//! own work (see `native_core_cost`). The bound below guards regressions.

use custom_metrics::config::{Compiled, NodeInfo};
use custom_metrics::recorder::{MetricSink, Recorder};
use custom_metrics::tags::MetricKind;
use std::path::Path;
use wasmesh::scenario::runner::typed_properties;
use wasmesh::scenario::{RunOptions, Scenario, Session};

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

/// This thread's CPU time in ns (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_ns() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call.
    unsafe { clock_gettime(3, &mut t) };
    t.sec as f64 * 1e9 + t.nsec as f64
}

fn bench_scenario() -> Scenario {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    Scenario::from_file(&dir.join("bench/standard_plus_3x6.yaml")).expect("bench scenario")
}

/// The bench scenario with its chain replaced by `plugin` (one YAML entry).
fn with_plugin(plugin: &str) -> Scenario {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(dir.join("bench/standard_plus_3x6.yaml")).expect("bench");
    let start = text.find("chain:\n").expect("chain");
    let end = text.find("routes:\n").expect("routes");
    let yaml = format!("{}chain:\n{plugin}{}", &text[..start], &text[end..]);
    Scenario::from_yaml_str(&yaml, &dir.join("tests")).expect("scenario")
}

/// Best-of-`runs` CPU ns per request of the scenario's first step.
fn cpu_ns_per_request(s: &Scenario, iterations: usize, runs: usize) -> f64 {
    let mut session = Session::new(&s.spec, &s.base_dir, &RunOptions::default()).expect("session");
    let props = typed_properties(&s.spec.properties).expect("properties");
    let step = &s.spec.requests[0];
    let req = step.request.as_ref().expect("request");
    for _ in 0..iterations / 5 {
        session
            .request(None, req, props.clone(), None)
            .expect("request");
    }
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t0 = thread_cpu_ns();
        for _ in 0..iterations {
            session
                .request(None, req, props.clone(), None)
                .expect("request");
        }
        best = best.min((thread_cpu_ns() - t0) / iterations as f64);
    }
    best
}

#[test]
fn standard_plus_three_user_metrics_of_six_labels() {
    let floor = cpu_ns_per_request(
        &with_plugin("  - name: floor\n    wasm: passthrough.wat\n"),
        2000,
        5,
    );
    let idle = cpu_ns_per_request(
        &with_plugin(
            "  - name: metrics\n    wasm: custom_metrics\n    config: {standardMetrics: false}\n",
        ),
        2000,
        5,
    );
    let full = cpu_ns_per_request(&bench_scenario(), 2000, 5);
    let own = full - floor;
    eprintln!(
        "CPU ns/request: pass-through plugin {floor:.0}, custom_metrics with nothing to record {idle:.0}, \
         standard + 3x6 {full:.0} => the filter's own cost {own:.0} ns"
    );
    // Measured at ~31 µs of CPU over the floor on a heavily shared 2-core
    // machine (load ~12); this bound only guards regressions.
    assert!(
        own <= 60_000.0,
        "custom_metrics costs {own:.0} ns per request over a pass-through plugin"
    );
}

struct NullSink(u32);
impl MetricSink for NullSink {
    fn define(&mut self, _kind: MetricKind, _name: &str) -> Option<u32> {
        self.0 += 1;
        Some(self.0)
    }
    fn increment(&mut self, _id: u32, _delta: i64) {}
    fn record(&mut self, _id: u32, _value: u64) {}
}

/// The decision core alone (label sets, cache, samples) with a host that
/// answers from memory.
#[test]
fn native_core_cost() {
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
    let config =
        wasmesh::scenario::runner::yaml_to_json(s.spec.chain[0].config.as_ref().expect("config"))
            .expect("json");
    let cfg =
        Compiled::from_json(config.to_string().as_bytes(), NodeInfo::default()).expect("config");
    let mut recorder = Recorder::new(&cfg);
    let mut sink = NullSink(0);
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
    let n = 20_000;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = thread_cpu_ns();
        for _ in 0..n {
            let started = recorder.on_request_start(&cfg, &mut host, &mut sink);
            recorder.on_log(&cfg, &mut host, &mut sink, &started);
        }
        best = best.min((thread_cpu_ns() - t0) / n as f64);
    }
    assert_eq!(sink.0, 7, "7 metrics, each defined once");
    eprintln!("native core: {best:.0} CPU ns/request");
    assert!(
        best <= 20_000.0,
        "native core costs {best:.0} ns per request"
    );
}
