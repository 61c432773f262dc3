//! Remote JWKS through `proxy_http_call`: fetch at start with waiting
//! requests, refresh after `cacheDuration`, retries with backoff, last good
//! keys kept, key rotation on an unknown `kid`, timeouts and resets, and
//! workers sharing one fetch.

mod support;
use support::*;

fn vars() -> Vec<(&'static str, String)> {
    let k1 = Key::rsa(0);
    let k2 = Key::rsa(1);
    let iss = "https://idp.example";
    vec![
        ("JWKS1", jwks(&[k1.jwk("k1", Some("RS256"))])),
        (
            "JWKS12",
            jwks(&[k1.jwk("k1", Some("RS256")), k2.jwk("k2", Some("RS256"))]),
        ),
        ("T1", token(&k1, "RS256", "k1", &claims(iss, ""))),
        ("T2", token(&k2, "RS256", "k2", &claims(iss, ""))),
        ("T3", token(&k2, "RS256", "k3", &claims(iss, ""))),
    ]
}

fn scenario(clusters: &str, provider_extra: &str, steps: &str) -> String {
    let v = vars();
    let refs: Vec<(&str, &str)> = v.iter().map(|(k, s)| (*k, s.as_str())).collect();
    fill(
        &format!(
            r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - {{name: idp, issuer: "https://idp.example", jwksUri: "https://idp.example/.well-known/jwks.json", jwksCluster: idp{provider_extra}}}
      rules: [{{match: {{prefix: /}}, requires: {{provider: idp}}}}]
clusters:
  idp:
    responses:
{clusters}
requests:
{steps}"#
        ),
        &refs,
    )
}

#[test]
fn fetch_at_start_waiting_requests_refresh_and_backoff() {
    run(&scenario(
        r#"      - {status: 200, headers: {content-type: application/json}, body: '{{JWKS1}}', delay_ms: 300}
      - {status: 500, delay_ms: 50}"#,
        ", cacheDuration: 10s, timeout: 2s",
        r#"  - name: the first request waits (body held) for the fetch started with the plugin
    request: {method: POST, path: /, headers: {authorization: "Bearer {{T1}}"}, body_chunks: ["hello ", "world"]}
    expect: {status: 200, elapsed_ms: 300, upstream_body: "hello world", metrics: {jwt_authn.jwks_fetch_success: 1, jwt_authn.jwks_fetch_failed: 0}}
  - name: keys are cached, no new call
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 200, elapsed_ms: 0, http_calls: 0}
  - name: after cacheDuration the keys are refreshed (this refresh fails)
    advance_ms: 10500
    expect:
      http_calls: [{cluster: idp, method: GET, path: /.well-known/jwks.json}]
      metrics: {jwt_authn.jwks_fetch_failed: 1}
      logs_contain: ["JWKS fetch from https://idp.example/.well-known/jwks.json failed with status 500"]
  - name: the last good keys are kept through the failure
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 200, http_calls: 0}
  - name: first retry about 1 s later
    advance_ms: 1000
    expect: {http_calls: 1, metrics: {jwt_authn.jwks_fetch_failed: 2}}
  - name: second retry waits 2 s
    advance_ms: 1700
    expect: {http_calls: 0}
  - name: ... and happens
    advance_ms: 500
    expect: {http_calls: 1, metrics: {jwt_authn.jwks_fetch_failed: 3}}
  - name: third retry waits 4 s
    advance_ms: 3600
    expect: {http_calls: 0}
  - name: ... and happens
    advance_ms: 500
    expect: {http_calls: 1, metrics: {jwt_authn.jwks_fetch_failed: 4}}
"#,
    ));
}

#[test]
fn failed_first_fetch_fails_waiting_requests_then_recovers() {
    run(&scenario(
        r#"      - {status: 503, delay_ms: 100}
      - {reset: true, delay_ms: 100}
      - {status: 200, body: '{{JWKS1}}', delay_ms: 100}"#,
        "",
        r#"  - name: waits for the first fetch, which fails
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect:
      status: 401
      body: Jwks remote fetch is failed
      response_headers: {www-authenticate: 'Bearer realm="http://example.com/", error="invalid_token"'}
      elapsed_ms: 100
      metrics: {jwt_authn.jwks_fetch_failed: 1, jwt_authn.denied.jwks_fetch_failed: 1}
  - name: while backing off, requests fail at once
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 401, body: Jwks remote fetch is failed, elapsed_ms: 0}
  - name: the retry is reset
    advance_ms: 1500
    expect: {http_calls: 1, metrics: {jwt_authn.jwks_fetch_failed: 2}, logs_contain: ["reset or timeout"]}
  - name: the next retry succeeds
    advance_ms: 2500
    expect: {http_calls: 1, metrics: {jwt_authn.jwks_fetch_success: 1}}
  - name: now tokens verify
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 200}
"#,
    ));
}

#[test]
fn timeout_fails_waiting_request() {
    run(&scenario(
        r#"      - {status: 200, body: '{{JWKS1}}', delay_ms: 5000}"#,
        ", timeout: 1s",
        r#"  - name: the fetch times out after 1 s; the waiting request fails then
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 401, body: Jwks remote fetch is failed, elapsed_ms: 1000, metrics: {jwt_authn.jwks_fetch_failed: 1}}
"#,
    ));
}

#[test]
fn unknown_kid_refetches_at_most_once_per_interval() {
    run(&scenario(
        r#"      - {status: 200, body: '{{JWKS1}}'}
      - {status: 200, body: '{{JWKS12}}', delay_ms: 20}"#,
        ", cacheDuration: 3600s",
        r#"  - name: keys fetched at start
    advance_ms: 100
    expect: {metrics: {jwt_authn.jwks_fetch_success: 1}}
  - name: a new kid right after a fetch is refused without a refetch
    request: {path: /, headers: {authorization: "Bearer {{T2}}"}}
    expect: {status: 401, body: "Jwks doesn't have key to match kid or alg from Jwt", http_calls: 0}
  - name: 30 s later an unknown kid triggers a refetch and the request waits for it
    advance_ms: 30000
    request: {path: /, headers: {authorization: "Bearer {{T2}}"}}
    expect: {status: 200, http_calls: 1, elapsed_ms: {min: 20, max: 300}, metrics: {jwt_authn.jwks_fetch_success: 2}}
  - name: the old key still works
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 200, http_calls: 0}
  - name: another unknown kid within the interval gets no refetch
    advance_ms: 5000
    request: {path: /, headers: {authorization: "Bearer {{T3}}"}}
    expect: {status: 401, body: "Jwks doesn't have key to match kid or alg from Jwt", http_calls: 0}
"#,
    ));
}

#[test]
fn workers_share_one_fetch() {
    let v = vars();
    let refs: Vec<(&str, &str)> = v.iter().map(|(k, s)| (*k, s.as_str())).collect();
    run(&fill(
        r#"
workers: 2
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules: [{name: idp, issuer: "https://idp.example", jwksUri: "https://idp.example/keys", jwksCluster: idp, cacheDuration: 60s}]
clusters:
  idp:
    responses: [{status: 200, body: '{{JWKS1}}', delay_ms: 100}]
requests:
  - name: worker 0 waits for the shared fetch
    worker: 0
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 200}
  - name: worker 1 uses the same keys
    worker: 1
    advance_ms: 300
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 200, http_calls: 0, metrics: {jwt_authn.jwks_fetch_success: 1}}
  - name: one refresh for both workers
    advance_ms: 61000
    expect: {http_calls: 1, metrics: {jwt_authn.jwks_fetch_success: 2}}
  - name: both still verify
    worker: 1
    request: {path: /, headers: {authorization: "Bearer {{T1}}"}}
    expect: {status: 200, http_calls: 0}
"#,
        &refs,
    ));
}
