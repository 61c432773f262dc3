//! Fault percentages, statistically, through the real `fault_injection.wasm`
//! in the harness: 10,000 requests each, within ±2 points.
//!
//! The draws are reproducible: the harness's random sources take a fixed
//! seed, printed by every test (shown when one fails); `WASMESH_SEED=N`
//! replays a run.
//!
//! Needs the `.wasm` built first (`bash scripts/build-wasm.sh`).

use std::path::Path;
use wasmesh::scenario::model::RequestSpec;
use wasmesh::scenario::{Observed, RunOptions, Scenario, Session};

const N: usize = 10_000;

fn session(config: &str) -> Session {
    let yaml = format!(
        "chain:\n  - name: fault\n    wasm: fault_injection\n    config: {config}\nrequests: []\n"
    );
    let mut s = Scenario::from_yaml_str(&yaml, Path::new(".")).expect("scenario");
    let seed = seed();
    // Shown with a failure (libtest prints a failed test's output).
    eprintln!(
        "seed {seed} (replay: WASMESH_SEED={seed} cargo test --profile host --workspace --test {})",
        module_path!()
    );
    s.spec.seed = Some(seed);
    Session::new(&s.spec, &s.base_dir, &RunOptions::default()).expect("chain starts")
}

/// The seed of the harness's random sources: fixed, so that every run draws
/// the same numbers; `WASMESH_SEED=N` replays or explores another.
fn seed() -> u64 {
    std::env::var("WASMESH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_207)
}

fn request(path: &str, headers: &[(&str, &str)]) -> RequestSpec {
    let mut r = RequestSpec {
        path: Some(path.to_string()),
        ..Default::default()
    };
    for (k, v) in headers {
        r.headers.insert((*k).into(), (*v).into());
    }
    r
}

fn send(s: &mut Session, req: &RequestSpec) -> Observed {
    s.request(None, req, Default::default(), None)
        .expect("request")
}

fn elapsed_ms(o: &Observed) -> i64 {
    (o.completed_ns.expect("completed") - o.started_ns) / 1_000_000
}

fn share(count: usize, total: usize) -> f64 {
    100.0 * count as f64 / total as f64
}

fn metric(s: &Session, name: &str) -> i64 {
    s.host.metric(name).map_or(-1, |m| m.value)
}

fn assert_near(what: &str, got: f64, want: f64) {
    eprintln!("{what}: {got:.2}% (configured {want}%)");
    assert!((got - want).abs() <= 2.0, "{what}: {got:.2}% for {want}%");
}

#[test]
fn abort_percentage() {
    let mut s = session(
        r#"{"faults":[{"name":"a","abort":{"httpStatus":503,"percentage":{"value":25}}}]}"#,
    );
    let req = request("/", &[]);
    let aborted = (0..N)
        .filter(|_| send(&mut s, &req).status() == Some(503))
        .count();
    assert_near("abort 25%", share(aborted, N), 25.0);
    assert_eq!(metric(&s, "fault.aborts_injected"), aborted as i64);
    assert_eq!(metric(&s, "fault.active_faults"), 0);
}

#[test]
fn fractional_percentages() {
    let mut s = session(r#"{"faults":[{"abort":{"httpStatus":503,"percentage":{"value":2.5}}}]}"#);
    let req = request("/", &[]);
    let aborted = (0..N)
        .filter(|_| send(&mut s, &req).status() == Some(503))
        .count();
    assert_near("abort 2.5%", share(aborted, N), 2.5);
}

#[test]
fn delay_and_abort_are_independent() {
    // Delay 50%, abort 10%: the abort is drawn after the delay for delayed
    // requests and at once for the others, with the same probability.
    let mut s = session(
        r#"{"faults":[{"delay":{"fixedDelay":"10ms","percentage":{"value":50}},"abort":{"httpStatus":503,"percentage":{"value":10}}}]}"#,
    );
    let req = request("/", &[]);
    let (mut delayed, mut aborted, mut delayed_aborted) = (0, 0, 0);
    for _ in 0..N {
        let o = send(&mut s, &req);
        let d = elapsed_ms(&o) == 10;
        let a = o.status() == Some(503);
        assert!(elapsed_ms(&o) == 0 || d);
        delayed += usize::from(d);
        aborted += usize::from(a);
        delayed_aborted += usize::from(d && a);
    }
    assert_near("delay 50%", share(delayed, N), 50.0);
    assert_near("abort 10%", share(aborted, N), 10.0);
    assert_near("abort among delayed", share(delayed_aborted, delayed), 10.0);
    assert_near(
        "abort among not delayed",
        share(aborted - delayed_aborted, N - delayed),
        10.0,
    );
    assert_eq!(metric(&s, "fault.delays_injected"), delayed as i64);
    assert_eq!(metric(&s, "fault.aborts_injected"), aborted as i64);
    assert_eq!(metric(&s, "fault.active_faults"), 0);
}

#[test]
fn header_percentages_are_capped_by_max_percentage() {
    let mut s = session(r#"{"headerControl":{"enabled":true,"maxPercentage":30}}"#);
    for (asked, want) in [("80", 30.0), ("10", 10.0), ("not-a-number", 30.0)] {
        let req = request(
            "/",
            &[
                ("x-envoy-fault-abort-request", "503"),
                ("x-envoy-fault-abort-request-percentage", asked),
            ],
        );
        let aborted = (0..N)
            .filter(|_| send(&mut s, &req).status() == Some(503))
            .count();
        assert_near(
            &format!("header asks {asked}, cap 30"),
            share(aborted, N),
            want,
        );
    }
    let req = request(
        "/",
        &[
            ("x-envoy-fault-delay-request", "5"),
            ("x-envoy-fault-delay-request-percentage", "100"),
        ],
    );
    let delayed = (0..N)
        .filter(|_| elapsed_ms(&send(&mut s, &req)) == 5)
        .count();
    assert_near("header delay asks 100, cap 30", share(delayed, N), 30.0);
}
