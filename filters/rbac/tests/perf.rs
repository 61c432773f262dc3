//! 100 policies of 5 rules each, through the real `rbac.wasm` in the harness
//! and through the native decision core: the decisions are right. Not timed:
//! what this configuration costs per request is measured by the benchmarks
//! (`benches/`, cases `rbac-{n}x5`, figures in BENCHMARKS.md), never as a
//! pass/fail test. Needs `target/wasm32-wasip1/release/rbac.wasm`.
//!
//! The requests are built to be expensive: every rule's source and host
//! match, so each rule is evaluated down to its paths before failing, and no
//! policy matches (all 500 rules are tried), or only the very last one.

use serde_json::{json, Value};
use std::path::Path;
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

/// The bench scenario with `plugin` (YAML for one chain entry): one request
/// rbac denies (no ALLOW policy matches; the denial is logged) and one it
/// allows with its very last ALLOW rule. With `expect`, the statuses rbac
/// gives are checked.
fn scenario(plugin: &str, expect: bool) -> Scenario {
    let (deny, allow) = if expect {
        ("\n    expect: {status: 403}", "\n    expect: {status: 200}")
    } else {
        ("", "")
    };
    let yaml = format!(
        r#"
chain:
{plugin}
properties:
  source.address: "10.1.2.3:40000"
  connection.uri_san_peer_certificate: spiffe://cluster.local/ns/prod/sa/web
requests:
  - name: 500 rules, none matches
    request:
      method: GET
      path: /svc42/other/thing
      authority: api.example.com
      headers: {{x-tenant: tenant-1, user-agent: bench, accept: "*/*"}}{deny}
  - name: 500 rules, allowed by the last rule of the last ALLOW policy
    request:
      method: GET
      path: /svc98/r4/items
      authority: api.example.com
      headers: {{x-tenant: tenant-4, user-agent: bench, accept: "*/*"}}{allow}
"#
    );
    Scenario::from_yaml_str(&yaml, Path::new(env!("CARGO_MANIFEST_DIR"))).expect("scenario")
}

fn rbac_plugin() -> String {
    format!(
        "  - name: rbac\n    wasm: rbac\n    config: {}\n",
        big_config()
    )
}

#[test]
fn hundred_policies_of_five_rules_decide() {
    let s = scenario(&rbac_plugin(), true);
    let report = wasmesh::scenario::run(&s, &RunOptions::default()).expect("runs");
    assert!(report.passed(), "{report}");
}

#[test]
fn native_core_decides() {
    use rbac::authz::{authorize, Connection, Verdict};
    use rbac::config::Config;
    let config = Config::from_json(big_config().to_string().as_bytes()).unwrap();
    let conn = Connection {
        peer_ip: Some("10.1.2.3".parse().unwrap()),
        peer_uri: Some("spiffe://cluster.local/ns/prod/sa/web".into()),
        ..Default::default()
    };
    for (path, tenant, allowed) in [
        ("/svc42/other/thing", "tenant-1", false),
        ("/svc98/r4/items", "tenant-4", true),
    ] {
        let map = wasmesh_common::HeaderMap::from_slice(&[
            (":method", "GET"),
            (":path", path),
            (":authority", "api.example.com"),
            ("x-tenant", tenant),
        ]);
        let headers = rbac::headers::Headers::from_map(&map);
        match authorize(&config, &headers, path.as_bytes(), &conn) {
            Verdict::Checked { decision, .. } => {
                assert_eq!(decision.enforced.allowed, allowed, "{path}")
            }
            v => panic!("{v:?}"),
        }
    }
}
