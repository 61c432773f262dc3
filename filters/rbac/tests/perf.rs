//! Per-request cost of 100 policies of 5 rules each, through the real
//! `rbac.wasm` in the harness (budget: 5 µs over an empty chain), and of the
//! native decision core. Needs `target/wasm32-wasip1/release/rbac.wasm`.
//!
//! The request is built to be expensive: every rule's source and host match,
//! so each rule is evaluated down to its paths before failing, and no policy
//! matches (all 500 rules are tried).

use serde_json::{json, Value};
use std::path::Path;
use wasmesh::bench::bench;
use wasmesh::scenario::{RunOptions, Scenario};

fn big_config() -> Value {
    let mut policies = Vec::new();
    for p in 0..100 {
        let action = match p % 10 {
            0..=3 => "DENY",
            9 => "AUDIT",
            _ => "ALLOW",
        };
        let rules: Vec<Value> = (0..5)
            .map(|r| {
                json!({
                    "from": [{"source": {
                        "principals": ["cluster.local/ns/prod/*", format!("cluster.local/ns/team{p}/sa/svc{r}")],
                        "notIpBlocks": ["192.0.2.0/24", "2001:db8:bad::/48"]
                    }}],
                    "to": [{"operation": {
                        "hosts": ["*.example.com", "example.com"],
                        "methods": ["GET", "POST", "PUT"],
                        "paths": [format!("/svc{p}/r{r}/*"), format!("/svc{p}/v{r}/{{*}}/items"), format!("/exact/{p}/{r}")]
                    }}],
                    "when": [{"key": "request.headers[x-tenant]", "values": [format!("tenant-{r}"), "shared"]}]
                })
            })
            .collect();
        policies.push(json!({"name": format!("policy-{p}"), "action": action, "rules": rules}));
    }
    json!({"policies": policies})
}

fn scenario() -> Scenario {
    let yaml = format!(
        r#"
chain:
  - name: rbac
    wasm: rbac
    config: {config}
properties:
  source.address: "10.1.2.3:40000"
  connection.uri_san_peer_certificate: spiffe://cluster.local/ns/prod/sa/web
requests:
  - name: 500 rules evaluated, none matches
    request:
      method: GET
      path: /svc42/other/thing
      authority: api.example.com
      headers: {{x-tenant: tenant-1, user-agent: bench, accept: "*/*"}}
    expect: {{status: 403}}
"#,
        config = big_config()
    );
    Scenario::from_yaml_str(&yaml, Path::new(env!("CARGO_MANIFEST_DIR"))).expect("scenario")
}

#[test]
fn hundred_policies_of_five_rules_within_budget() {
    let s = scenario();
    // Correctness first: the scenario's expectation (403) holds.
    let report = wasmesh::scenario::run(&s, &RunOptions::default()).expect("runs");
    assert!(report.passed(), "{report}");

    let figures = bench(&s, &RunOptions::default(), 2000, 7, true).expect("bench");
    let step = &figures.steps[0];
    let base = step.baseline_ns.expect("baseline");
    // The fastest run is the least disturbed by other work on the machine.
    let best = step.runs_ns.iter().copied().fold(f64::INFINITY, f64::min);
    let cost_best = best - base;
    let cost_median = step.median_ns - base;
    eprintln!(
        "rbac 100x5: median {:.0} ns, best {:.0} ns, empty chain {:.0} ns => filter cost median {:.0} ns, best {:.0} ns",
        step.median_ns, best, base, cost_median, cost_best
    );
    assert!(
        cost_best <= 5000.0,
        "filter cost {cost_best:.0} ns > 5 µs\n{figures}"
    );
}

#[test]
fn native_core_cost() {
    use rbac::authz::{authorize, Connection, Verdict};
    use rbac::config::Config;
    let config = Config::from_json(big_config().to_string().as_bytes()).unwrap();
    let headers = wasmesh_common::HeaderMap::from_slice(&[
        (":method", "GET"),
        (":path", "/svc42/other/thing"),
        (":authority", "api.example.com"),
        ("x-tenant", "tenant-1"),
    ]);
    let conn = Connection {
        peer_ip: Some("10.1.2.3".parse().unwrap()),
        peer_uri: Some("spiffe://cluster.local/ns/prod/sa/web".into()),
        ..Default::default()
    };
    let n = 2000;
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        match authorize(&config, &headers, b"/svc42/other/thing", &conn) {
            Verdict::Checked { decision, .. } => assert!(!decision.enforced.allowed),
            v => panic!("{v:?}"),
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    eprintln!("native core, 100x5 policies: {ns:.0} ns/request");
}
