//! Invalid configurations are refused by the real `rbac.wasm`: the plugin
//! does not start (`proxy_on_configure` returns false) and its log line names
//! the offending field. Needs `target/wasm32-wasip1/release/rbac.wasm`
//! (`bash scripts/build-wasm.sh`).

use std::path::Path;
use wasmesh::scenario::{run, RunOptions, Scenario};

/// Runs a scenario that expects the chain with `config` to fail to start
/// with `log` among the plugin's log lines; returns whether it passed and
/// the report.
fn refused_with(config: &serde_json::Value, log: &str) -> (bool, String) {
    let yaml = format!(
        "chain:\n  - name: rbac\n    wasm: rbac\n    config: {config}\nstart:\n  fails: true\n  error_contains: [\"proxy_on_configure returned false\"]\n  logs_contain: [{log}]\n",
        log = serde_json::Value::String(log.to_string())
    );
    let s = Scenario::from_yaml_str(&yaml, Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("scenario parses");
    match run(&s, &RunOptions::default()) {
        Ok(report) => (report.passed(), report.to_string()),
        Err(e) => (false, e),
    }
}

#[test]
fn refused_with_the_field_path() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            serde_json::json!({"policies": [{"name": "p", "rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8", "10.0.0.256/32"]}}]}]}]}),
            "rbac: invalid configuration: policies[0].rules[0].from[0].source.ipBlocks[1]: invalid IP address",
        ),
        (
            serde_json::json!({"policies": [{"name": "p", "rules": [{"when": [{"key": "remote.ip", "notValues": ["2001:db8::/200"]}]}]}]}),
            "rbac: invalid configuration: policies[0].rules[0].when[0].notValues[0]: prefix length 200 too long",
        ),
        (
            serde_json::json!({"policies": [{"name": "p", "action": "CUSTOM"}]}),
            "rbac: invalid configuration: policies[0].action: unknown variant `CUSTOM`, expected one of `ALLOW`, `DENY`, `AUDIT`",
        ),
        (
            serde_json::json!({"policies": [{"name": "ok", "rules": [{}]}, {"name": "p", "rules": [{"when": [{"key": "request.auth.claim[groups]", "values": ["a"]}]}]}]}),
            "rbac: invalid configuration: policies[1].rules[0].when[0].key: unknown key `request.auth.claim[groups]`",
        ),
        (
            serde_json::json!({"policies": [{"name": "p", "rules": [{"when": [{"key": "source.ip", "values": []}]}]}]}),
            "rbac: invalid configuration: policies[0].rules[0].when[0]: at least one of `values` or `notValues` must be set",
        ),
        (
            serde_json::json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {"paths": ["/ok", ""]}}]}]}]}),
            "rbac: invalid configuration: policies[0].rules[0].to[0].operation.paths[1]: empty value not allowed",
        ),
        (
            serde_json::json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {"paths": ["/a/{**}/{*}"]}}]}]}]}),
            "rbac: invalid configuration: policies[0].rules[0].to[0].operation.paths[0]: invalid path template",
        ),
        (
            serde_json::json!({"policies": [{"name": "p", "rules": [{"to": [{"operation": {"methods": ["get"]}}]}]}]}),
            "rbac: invalid configuration: policies[0].rules[0].to[0].operation.methods[0]",
        ),
        (
            serde_json::json!({"policies": [{"name": "p", "rules": [{"from": [{"source": {"principal": ["x"]}}]}]}]}),
            "rbac: invalid configuration: policies[0].rules[0].from[0].source.principal: unknown field `principal`",
        ),
        (
            serde_json::json!({"denyResponse": {"status": 700}}),
            "rbac: invalid configuration: denyResponse.status",
        ),
    ];
    for (config, want) in cases {
        let (ok, report) = refused_with(&config, want);
        assert!(
            ok,
            "config {config}\nexpected the log line: {want}\n{report}"
        );
    }
}

#[test]
fn the_check_can_fail() {
    // A valid configuration starts, so expecting a refusal fails...
    let (ok, _) = refused_with(
        &serde_json::json!({"policies": [{"name": "p", "rules": [{}]}]}),
        "invalid configuration",
    );
    assert!(!ok);
    // ...and a refusal with another message does not satisfy the expectation.
    let (ok, _) = refused_with(
        &serde_json::json!({"policies": [{"name": "p", "action": "NOPE"}]}),
        "policies[1]",
    );
    assert!(!ok);
}

#[test]
fn a_valid_configuration_starts() {
    let yaml = "chain:\n  - name: rbac\n    wasm: rbac\n    config: {policies: [{name: p, rules: [{}]}]}\nrequests:\n  - request: {path: /}\n    expect: {status: 200}\n";
    let s = Scenario::from_yaml_str(yaml, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let report = run(&s, &RunOptions::default()).expect("starts");
    assert!(report.passed(), "{report}");
}
