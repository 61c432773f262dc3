//! Runs every benchmark once with one iteration (smoke mode): proves they
//! run and that each measured path is the intended one (statuses and native
//! outcomes are checked before measuring). Not a timing test.

use wasmesh_benchmarks::report::{run, Mode, Options};

#[test]
fn every_benchmark_runs_once() {
    wasmesh::scenario::runner::ensure_artifacts().expect("wasm artifacts");
    // jose_bench.wasm (signature verification inside wasm) is not among the
    // harness's artifacts: build it the same way.
    let path = wasmesh_benchmarks::crypto::jose_bench_path();
    if !path.exists() && std::env::var_os("WASMESH_WASM_DIR").is_none() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .current_dir(wasmesh_benchmarks::cases::root())
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "-p",
                "jose-bench",
            ])
            .status()
            .expect("cargo");
        assert!(st.success(), "building jose-bench failed");
    }
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
