//! JWKS endpoint answering huge bodies: the JWT filter refuses a key set
//! larger than it accepts (1 MiB) as a failed fetch — it fails closed
//! without keys, keeps the last good keys with them — and recovers. (The
//! other endpoint faults are scenario files under
//! `host/scenarios/survival/`; reset, 500, timeout and key rotation on
//! an unknown `kid` are also in `filters/jwt-authn/tests/remote_jwks.rs`.)

use wasmesh::scenario::{run, RunOptions, Scenario};

const HS: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const OCT: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;

/// A valid key set of about `bytes` bytes: the good key and a long padding
/// member (JWKS readers ignore members they do not know).
fn huge_jwks(bytes: usize) -> String {
    let mut s = format!(r#"{{"keys":[{OCT}],"padding":""#);
    let n = bytes.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('a', n));
    s.push_str(r#""}"#);
    s
}

fn run_yaml(yaml: &str) {
    wasmesh::scenario::ensure_artifacts().expect("build the .wasm artifacts");
    let s = Scenario::from_yaml_str(yaml, std::path::Path::new(".")).expect("scenario");
    let report = run(&s, &RunOptions::default()).expect("run");
    assert!(report.passed(), "{report}");
}

#[test]
fn huge_jwks_bodies_are_failed_fetches() {
    let huge = huge_jwks(2 << 20);
    let almost = huge_jwks(900 << 10);
    let yaml = format!(
        r#"
now: 1300819000
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - {{name: idp, issuer: joe, jwksUri: "https://idp.example/keys", jwksCluster: idp, cacheDuration: 20s, timeout: 2s}}
      rules: [{{match: {{prefix: /}}, requires: {{provider: idp}}}}]
clusters:
  idp:
    responses:
      - {{status: 200, body: '{huge}', delay_ms: 20}}
      - {{status: 200, body: '{almost}'}}
      - {{status: 200, body: '{huge}'}}
requests:
  - name: a 2 MiB key set is refused; without keys the request fails closed
    request: {{path: /, headers: {{authorization: "Bearer {HS}"}}}}
    expect: {{status: 401, body: Jwks remote fetch is failed, elapsed_ms: 20, metrics: {{jwt_authn.jwks_fetch_failed: 1}}}}
  - name: the retry (backoff 1 s, on the 200 ms tick) gets a 900 KiB key set, which is accepted
    advance_ms: 1300
    expect: {{http_calls: 1, metrics: {{jwt_authn.jwks_fetch_success: 1}}}}
  - name: tokens verify with it
    request: {{path: /, headers: {{authorization: "Bearer {HS}"}}}}
    expect: {{status: 200}}
  - name: the refresh gets 2 MiB again, a failed fetch
    advance_ms: 20500
    expect: {{http_calls: 1, metrics: {{jwt_authn.jwks_fetch_failed: 2, jwt_authn.jwks_fetch_success: 1}}}}
  - name: the last good keys stay in use
    request: {{path: /, headers: {{authorization: "Bearer {HS}"}}}}
    expect: {{status: 200, elapsed_ms: 0}}
"#
    );
    run_yaml(&yaml);
}
