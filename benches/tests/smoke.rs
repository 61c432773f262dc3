//! Runs every benchmark once with one iteration (smoke mode): proves they
//! run and that each measured path is the intended one (statuses and native
//! outcomes are checked before measuring). Not a timing test.

use wasmesh_benchmarks::report::{run, Mode, Options};

#[test]
fn every_benchmark_runs_once() {
    wasmesh::scenario::ensure_artifacts().expect("wasm artifacts");
    // jose_bench.wasm (signature verification inside wasm) is built by
    // scripts/build-wasm.sh with the filters; the test never builds it.
    let path = wasmesh_benchmarks::crypto::jose_bench_path();
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/build-wasm.sh` first (the test command does)",
        path.display()
    );
    let r = run(&Options {
        mode: Mode::Smoke,
        command: "smoke".into(),
        serve_output: None,
        serve_note: Some("not measured (smoke)".into()),
        progress: false,
        callgrind: Vec::new(),
    })
    .expect("benchmarks run");
    assert_eq!(
        r.cases.len(),
        7,
        "five filters, the issue 7 config, the chain"
    );
    assert_eq!(r.jwt.len(), 5, "five algorithms");
    assert!(
        r.crypto.iter().all(|c| c.wasm.is_some()),
        "verification inside wasm measured"
    );
    assert_eq!(r.sizes.len(), 5);
    assert_eq!(r.start.len(), 5);
    assert_eq!(r.memory.len(), 5, "one VM per filter in the chain");
    let md = r.markdown();
    for section in [
        "## Targets",
        "## Per filter and full chain",
        "## JWT per algorithm",
        "## Scaling",
        "## `.wasm` sizes",
        "## VM cold start",
        "## Linear memory per VM",
        "## Local data plane",
    ] {
        assert!(md.contains(section), "report lacks {section}:\n{md}");
    }
    assert_eq!(r.targets().len(), 8);
}
