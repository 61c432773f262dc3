//! `wasmesh-benchmarks --run-case ... --host-calls` counts host calls by
//! name (issue 15's "host calls per request"): a filter that reads its
//! request makes some, a pass-through plugin none.

use std::process::Command;

fn host_calls(case: &str) -> Vec<(String, f64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmesh-benchmarks"))
        .args(["--run-case", case, "4", "--host-calls"])
        .output()
        .expect("run wasmesh-benchmarks");
    assert!(
        out.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (n, c) = l.rsplit_once(' ').expect("`name calls` line");
            (n.to_string(), c.parse().expect("calls per request"))
        })
        .collect()
}

#[test]
fn a_filter_makes_counted_host_calls_a_pass_through_plugin_none() {
    let calls = host_calls("fault-injection");
    assert!(
        calls
            .iter()
            .any(|(n, c)| n.starts_with("env.proxy_") && *c >= 1.0),
        "fault-injection reads its request through host calls: {calls:?}"
    );
    assert_eq!(host_calls("fault-injection:passthrough-2"), vec![]);
}
