//! The JWT-at-scale benchmark (issue 19) once, with one iteration and 200
//! tokens: every token passes on each host, and each measured path is the
//! intended one (the filter's per-path counters). Not a timing test.

use wasmesh_benchmarks::jwt_scale::{cache_memory, markdown, run};
use wasmesh_benchmarks::timing::Timing;

#[test]
fn jwt_scale_runs_once_on_the_intended_paths() {
    wasmesh::scenario::ensure_artifacts().expect("wasm artifacts");
    let (rows, version) = run(&Timing::smoke(), 200, None, &|_| {}).expect("benchmark runs");
    let algs: Vec<&str> = rows.iter().map(|r| r.alg.as_str()).collect();
    assert_eq!(algs, ["RS256", "ES256", "EdDSA"]);
    for r in &rows {
        let native_capable = r.alg != "EdDSA";
        // (native, wasm) signatures during the measured request(s).
        assert_eq!(
            r.paths_native_host,
            if native_capable { (1, 0) } else { (0, 1) },
            "{}: host with verify_signature",
            r.alg
        );
        assert_eq!(r.paths_wasm_host, (0, 1), "{}: host without it", r.alg);
        assert!(r.baseline.is_none());
    }
    let md = markdown(&rows, &version);
    assert!(md.contains("| RS256 |"), "{md}");
    let (per_entry, token_len, entries) = cache_memory(200).expect("cache memory");
    assert_eq!(entries, 180);
    assert!(token_len > 400 && per_entry >= 0.0);
}
