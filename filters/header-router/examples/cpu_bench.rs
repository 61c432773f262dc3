//! Per-request cost of a scenario's chain in on-CPU time, for machines too
//! busy for wall-clock figures (`wasmesh bench` measures wall time):
//!
//! ```sh
//! cargo run --profile host -p header-router --example cpu_bench -- \
//!     filters/header-router/bench/fifty-routes.yaml [iterations]
//! ```
//!
//! Each request step runs `iterations` times through the chain and through
//! an empty chain; the CPU time of this thread (`/proc/thread-self/schedstat`,
//! Linux) is read around each loop. The difference is the chain's cost.

use std::path::Path;
use wasmesh::scenario::{RunOptions, Scenario, Session};

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat (Linux) is needed")
}

fn per_request(session: &mut Session, s: &Scenario, step: usize, n: usize) -> f64 {
    let st = &s.spec.requests[step];
    let req = st.request.as_ref().expect("request step");
    let props = wasmesh::scenario::typed_properties(&st.properties).expect("properties");
    for _ in 0..n / 10 {
        session
            .request(st.worker, req, props.clone(), st.upstream.clone())
            .expect("request");
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = cpu_ns();
        for _ in 0..n {
            session
                .request(st.worker, req, props.clone(), st.upstream.clone())
                .expect("request");
        }
        best = best.min((cpu_ns() - t0) as f64 / n as f64);
    }
    best
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: cpu_bench SCENARIO [ITERATIONS]");
    let n: usize = args.next().map_or(5000, |a| a.parse().expect("iterations"));
    let s = Scenario::from_file(Path::new(&path)).expect("scenario");
    let opts = RunOptions::default();
    let mut chain = Session::new(&s.spec, &s.base_dir, &opts).expect("chain starts");
    let mut empty_spec = s.spec.clone();
    empty_spec.chain.clear();
    let mut empty = Session::new(&empty_spec, &s.base_dir, &opts).expect("empty chain");
    println!("{path}: CPU ns/request (best of 5 x {n})");
    for (i, st) in s.spec.requests.iter().enumerate() {
        if st.request.is_none() {
            continue;
        }
        let with = per_request(&mut chain, &s, i, n);
        let without = per_request(&mut empty, &s, i, n);
        println!(
            "  {:<48} {with:>9.0}  (empty chain {without:>7.0}, chain cost {:>7.0})",
            st.name,
            with - without
        );
    }
}
