//! The bounded smoke run of every fuzz target, part of the test command.
//!
//! Per target: every committed seed (`fuzz/seeds/<target>/`) and crash
//! regression (`fuzz/regressions/<target>/`), then mutations of them from a
//! fixed seed, up to `WASMESH_FUZZ_ITERS` inputs (default 3000) or
//! `WASMESH_FUZZ_SECS` seconds (default 6) — whichever comes first. A panic
//! or failed property is reported with the input, which is also written to
//! `target/fuzz-smoke-failures/` for `scripts/fuzz.sh --replay`.
//! Coverage-guided runs: `scripts/fuzz.sh`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmesh_fuzz::input::SplitMix;
use wasmesh_fuzz::mutate::mutate;
use wasmesh_fuzz::targets::MAX_INPUT;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                if let Ok(b) = std::fs::read(&p) {
                    out.push((p.display().to_string(), b));
                }
            }
        }
    }
    out.sort();
    out
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn save_failure(target: &str, data: &[u8]) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    let dir = fuzz_dir()
        .join("../target/fuzz-smoke-failures")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join(format!("crash-{h:016x}"));
    let _ = std::fs::write(&p, data);
    p
}

fn smoke(name: &str) {
    let target = wasmesh_fuzz::target(name).expect("target exists");
    let seeds = read_dir(&fuzz_dir().join("seeds").join(name));
    let regressions = read_dir(&fuzz_dir().join("regressions").join(name));
    let iters = env_num("WASMESH_FUZZ_ITERS", 3000);
    let budget = Duration::from_secs(env_num("WASMESH_FUZZ_SECS", 6));
    let start = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut execs = 0u64;
    let run_one = |label: &str, data: &[u8], failures: &mut Vec<String>, execs: &mut u64| {
        *execs += 1;
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| (target.run)(data))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let saved = save_failure(name, data);
            failures.push(format!(
                "{label}: {msg}\n    input ({} bytes) saved to {}: {:?}",
                data.len(),
                saved.display(),
                String::from_utf8_lossy(&data[..data.len().min(300)])
            ));
        }
    };
    for (path, data) in seeds.iter().chain(regressions.iter()) {
        run_one(path, data, &mut failures, &mut execs);
    }
    let pool: Vec<Vec<u8>> = seeds
        .iter()
        .chain(regressions.iter())
        .map(|(_, d)| d.clone())
        .collect();
    let mut rng = SplitMix(0x5eed_0000 ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 8);
    let fixed = execs;
    while execs < iters && start.elapsed() < budget && failures.len() < 5 {
        let data = if pool.is_empty() || rng.one_in(8) {
            let n = rng.below(512);
            (0..n).map(|_| rng.next_u64() as u8).collect()
        } else {
            mutate(&mut rng, &pool, MAX_INPUT)
        };
        run_one("mutation", &data, &mut failures, &mut execs);
    }
    eprintln!(
        "fuzz smoke {name}: {execs} executions ({fixed} seeds and regressions, {} mutations) in {:.1}s, {} failures",
        execs - fixed,
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{name}: {} failing inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        !seeds.is_empty(),
        "{name}: no seeds under fuzz/seeds/{name}"
    );
}

macro_rules! smoke_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                smoke(stringify!($name));
            }
        )*
    };
}

smoke_tests!(
    jwt_config,
    jwt_token,
    jwks,
    rbac_config,
    rbac_request,
    router_config,
    router_request,
    fault_config,
    fault_request,
    metrics_config,
    metrics_attribute,
    jose_differential,
    hostcalls,
);

#[test]
fn every_target_has_a_smoke_test_and_seeds() {
    let names = [
        "jwt_config",
        "jwt_token",
        "jwks",
        "rbac_config",
        "rbac_request",
        "router_config",
        "router_request",
        "fault_config",
        "fault_request",
        "metrics_config",
        "metrics_attribute",
        "jose_differential",
        "hostcalls",
    ];
    for t in wasmesh_fuzz::all() {
        assert!(names.contains(&t.name), "{} has no smoke test", t.name);
        assert!(
            fuzz_dir()
                .join("libfuzzer/fuzz_targets")
                .join(format!("{}.rs", t.name))
                .exists(),
            "{} has no libFuzzer wrapper",
            t.name
        );
    }
}

/// The properties can fail: inputs that break them are caught.
#[test]
fn properties_catch_what_they_should() {
    // A forged token (valid HS256 header and payload, signature of another
    // token) must not verify; the target passes on it.
    let t = wasmesh_fuzz::targets::VALID_TOKENS[0];
    let forged = format!("{}.{}", &t[..t.rfind('.').unwrap()], "AAAA");
    wasmesh_fuzz::targets::jwt_token(forged.as_bytes());
    // The valid tokens pass the property (they are in the allow-list).
    for t in wasmesh_fuzz::targets::VALID_TOKENS {
        wasmesh_fuzz::targets::jwt_token(t.as_bytes());
    }
    // A traversal to /admin is denied in every mode (the target asserts it).
    wasmesh_fuzz::targets::rbac_request(b"GET\n/api/../admin/x\napi.example.com");
    wasmesh_fuzz::targets::rbac_request(b"GET\n/%61dmin\napi.example.com");
    // Unmodified valid signatures of every algorithm: both sides accept.
    for alg in 0..8u8 {
        wasmesh_fuzz::jose_diff::run(&[alg, 2, 3, b'a', b'b', b'c', 0]);
    }
}
