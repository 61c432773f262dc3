//! Token locations, requirement forms, outputs and header stripping, the JWT
//! cache and clock skew, through `jwt_authn.wasm`.

mod support;
use support::*;

fn hs(secret: &str) -> Key {
    Key::oct(secret)
}

const A: &str = "secret-of-provider-a-0123456789abcdef";
const B: &str = "secret-of-provider-b-0123456789abcdef";

#[test]
fn token_locations() {
    let a = hs(A);
    let t = token(&a, "HS256", "", &claims("https://a", ""));
    run(&fill(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - {name: default, issuer: "https://a", jwks: '{{JWKS}}'}
        - {name: header, issuer: "https://a", jwks: '{{JWKS}}', fromHeaders: [{name: x-token}, {name: x-auth, prefix: "Token "}]}
        - {name: param, issuer: "https://a", jwks: '{{JWKS}}', fromParams: [jwt]}
        - {name: cookie, issuer: "https://a", jwks: '{{JWKS}}', fromCookies: [session]}
      rules:
        - {match: {prefix: /default}, requires: {provider: default}}
        - {match: {prefix: /header}, requires: {provider: header}}
        - {match: {prefix: /param}, requires: {provider: param}}
        - {match: {prefix: /cookie}, requires: {provider: cookie}}
requests:
  - name: default Authorization Bearer
    request: {path: /default, headers: {authorization: "Bearer {{T}}"}}
    expect: {status: 200, upstream_headers_absent: [authorization]}
  - name: default access_token parameter (removed from the path)
    request: {path: "/default/x?a=1&access_token={{T}}&b=2"}
    expect: {status: 200, upstream_headers: {":path": "/default/x?a=1&b=2"}}
  - name: defaults are replaced when fromHeaders is set
    request: {path: /header, headers: {authorization: "Bearer {{T}}"}}
    expect: {status: 401, body: Jwt is missing, response_headers: {www-authenticate: 'Bearer realm="http://example.com/header"'}}
  - name: custom header without prefix
    request: {path: /header, headers: {x-token: "{{T}}"}}
    expect: {status: 200, upstream_headers_absent: [x-token]}
  - name: custom header with prefix
    request: {path: /header, headers: {x-auth: "Token {{T}}"}}
    expect: {status: 200, upstream_headers_absent: [x-auth]}
  - name: custom header with the wrong prefix
    request: {path: /header, headers: {x-auth: "Bearer {{T}}"}}
    expect: {status: 401, body: Jwt is missing}
  - name: custom parameter
    request: {path: "/param?jwt={{T}}"}
    expect: {status: 200, upstream_headers: {":path": "/param"}}
  - name: the default parameter no longer counts
    request: {path: "/param?access_token={{T}}"}
    expect: {status: 401, body: Jwt is missing}
  - name: cookie (removed, other cookies kept)
    request: {path: /cookie, headers: {cookie: "theme=dark; session={{T}}"}}
    expect: {status: 200, upstream_headers: {cookie: "theme=dark"}}
"#,
        &[("JWKS", &jwks(&[a.jwk("", None)])), ("T", &t)],
    ));
}

#[test]
fn requirement_forms() {
    let (a, b) = (hs(A), hs(B));
    let ta = token(&a, "HS256", "", &claims("https://a", r#""aud":"api""#));
    let tb = token(&b, "HS256", "", &claims("https://b", ""));
    let bad = token(&b, "HS256", "", &claims("https://a", ""));
    run(&fill(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - {name: a, issuer: "https://a", jwks: '{{JA}}'}
        - {name: b, issuer: "https://b", jwks: '{{JB}}', fromHeaders: [{name: x-b}]}
      rules:
        - {match: {prefix: /healthz}}
        - {match: {prefix: /api, methods: [POST]}, requires: {provider: a}}
        - {match: {prefix: /api, headers: [{name: x-tenant, exact: b}]}, requires: {provider: b}}
        - {match: {prefix: /either}, requires: {anyOf: [{provider: a}, {provider: b}]}}
        - {match: {prefix: /both}, requires: {allOf: [{provider: a}, {provider: b}]}}
        - {match: {prefix: /optional}, requires: {anyOf: [{provider: a}, {allowMissing: true}]}}
        - {match: {path: /lenient}, requires: {allowMissingOrFailed: true}}
        - {match: {regex: "/aud/[0-9]+"}, requires: {provider: a, audiences: [other]}}
requests:
  - {name: no rule needed, request: {path: /healthz}, expect: {status: 200}}
  - {name: unmatched path needs nothing, request: {path: /public}, expect: {status: 200}}
  - {name: method condition, request: {method: POST, path: /api}, expect: {status: 401, body: Jwt is missing}}
  - {name: method condition not met, request: {method: GET, path: /api}, expect: {status: 200}}
  - {name: header condition, request: {path: /api, headers: {x-tenant: b, x-b: "{{TB}}"}}, expect: {status: 200, filter_state: {wasmesh.identity: {contains: '"provider":"b"'}}}}
  - {name: anyOf first, request: {path: /either, headers: {authorization: "Bearer {{TA}}"}}, expect: {status: 200}}
  - {name: anyOf second, request: {path: /either, headers: {x-b: "{{TB}}"}}, expect: {status: 200}}
  - {name: anyOf none, request: {path: /either}, expect: {status: 401, body: Jwt is missing}}
  - {name: anyOf wrong signature, request: {path: /either, headers: {authorization: "Bearer {{BAD}}"}}, expect: {status: 401, body: Jwt verification fails}}
  - {name: allOf both, request: {path: /both, headers: {authorization: "Bearer {{TA}}", x-b: "{{TB}}"}}, expect: {status: 200, upstream_headers_absent: [authorization, x-b], filter_state: {wasmesh.identity: {contains: '"provider":"a"'}}}}
  - {name: allOf one missing, request: {path: /both, headers: {x-b: "{{TB}}"}}, expect: {status: 401, body: Jwt is missing}}
  - {name: allowMissing without token, request: {path: /optional}, expect: {status: 200, filter_state: {wasmesh.identity: {absent: true}}}}
  - {name: allowMissing with a good token, request: {path: /optional, headers: {authorization: "Bearer {{TA}}"}}, expect: {status: 200, filter_state: {wasmesh.identity: {contains: '"sub":"alice"'}}}}
  - {name: allowMissing with a bad token, request: {path: /optional, headers: {authorization: "Bearer {{BAD}}"}}, expect: {status: 401, body: Jwt verification fails}}
  - {name: allowMissingOrFailed with a bad token, request: {path: /lenient, headers: {authorization: "Bearer {{BAD}}"}}, expect: {status: 200, filter_state: {wasmesh.identity: {absent: true}}}}
  - {name: allowMissingOrFailed with a good token, request: {path: /lenient, headers: {authorization: "Bearer {{TA}}"}}, expect: {status: 200, filter_state: {wasmesh.identity: {contains: '"provider":"a"'}}}}
  - {name: audiences override, request: {path: /aud/1, headers: {authorization: "Bearer {{TA}}"}}, expect: {status: 403, body: Audiences in Jwt are not allowed, response_code_details: "jwt_authn_access_denied{Audiences_in_Jwt_are_not_allowed}"}}
"#,
        &[
            ("JA", &jwks(&[a.jwk("", None)])),
            ("JB", &jwks(&[b.jwk("", None)])),
            ("TA", &ta),
            ("TB", &tb),
            ("BAD", &bad),
        ],
    ));
}

#[test]
fn istio_semantics_without_rules() {
    let (a, b) = (hs(A), hs(B));
    run(&fill(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - {issuer: "https://a", jwks: '{{JA}}', audiences: [api]}
        - {issuer: "https://b", jwks: '{{JB}}'}
requests:
  - {name: no token passes without identity, request: {path: /}, expect: {status: 200, filter_state: {wasmesh.identity: {absent: true}}, metrics: {jwt_authn.allowed: 1}}}
  - {name: token of a, request: {path: /, headers: {authorization: "Bearer {{TA}}"}}, expect: {status: 200, filter_state: {wasmesh.identity: {contains: '"provider":"https://a"'}}}}
  - {name: token of b, request: {path: /, headers: {authorization: "Bearer {{TB}}"}}, expect: {status: 200, filter_state: {wasmesh.identity: {contains: '"provider":"https://b"'}}}}
  - {name: unknown issuer, request: {path: /, headers: {authorization: "Bearer {{TC}}"}}, expect: {status: 401, body: Jwt issuer is not configured, metrics: {jwt_authn.denied.jwt_unknown_issuer: 1}}}
  - {name: audience of a checked, request: {path: /, headers: {authorization: "Bearer {{TA2}}"}}, expect: {status: 403, body: Audiences in Jwt are not allowed}}
  - name: CORS preflight bypasses
    request: {method: OPTIONS, path: /, headers: {origin: "https://web", access-control-request-method: POST, authorization: "Bearer garbage"}}
    expect: {status: 200, metrics: {jwt_authn.cors_preflight_bypassed: 1}}
"#,
        &[
            ("JA", &jwks(&[a.jwk("", None)])),
            ("JB", &jwks(&[b.jwk("", None)])),
            (
                "TA",
                &token(
                    &a,
                    "HS256",
                    "",
                    &claims("https://a", r#""aud":["x","api"]"#),
                ),
            ),
            (
                "TA2",
                &token(&a, "HS256", "", &claims("https://a", r#""aud":"web""#)),
            ),
            ("TB", &token(&b, "HS256", "", &claims("https://b", ""))),
            ("TC", &token(&b, "HS256", "", &claims("https://c", ""))),
        ],
    ));
}

#[test]
fn outputs_and_header_stripping() {
    let a = hs(A);
    let payload = claims(
        "https://a",
        r#""groups":["dev","ops"],"realm":{"level":3,"name":"main"},"admin":true,"n":2.5"#,
    );
    let t = token(&a, "HS256", "", &payload);
    let p64 = t.split('.').nth(1).unwrap().to_string();
    run(&fill(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - issuer: "https://a"
          jwks: '{{JA}}'
          outputPayloadToHeader: x-jwt-payload
          outputClaimToHeaders:
            - {header: x-user, claim: sub}
            - {header: x-groups, claim: groups}
            - {header: x-level, claim: realm.level}
            - {header: x-admin, claim: admin}
            - {header: x-n, claim: n}
            - {header: x-realm, claim: realm}
            - {header: x-absent, claim: nope}
        - {name: fwd, issuer: "https://a", jwks: '{{JA}}', forwardOriginalToken: true, fromHeaders: [{name: x-fwd}]}
      rules:
        - {match: {prefix: /fwd}, requires: {provider: fwd}}
        - {match: {prefix: /}, requires: {anyOf: [{provider: "https://a"}, {allowMissing: true}]}}
requests:
  - name: payload and claims are output, token removed
    request: {path: /, headers: {authorization: "Bearer {{T}}"}}
    expect:
      status: 200
      upstream_headers: {x-jwt-payload: "{{P}}", x-user: alice, x-groups: "dev,ops", x-level: "3", x-admin: "true", x-n: "2.500000"}
      upstream_headers_absent: [authorization, x-realm, x-absent]
  - name: client copies are replaced by the verified values
    request: {path: /, headers: {authorization: "Bearer {{T}}", x-user: mallory, x-jwt-payload: forged, x-absent: forged}}
    expect: {status: 200, upstream_headers: {x-user: alice, x-jwt-payload: "{{P}}"}, upstream_headers_absent: [x-absent]}
  - name: client copies are removed even without a token
    request: {path: /, headers: {x-user: mallory, x-groups: admin, x-jwt-payload: forged}}
    expect: {status: 200, upstream_headers_absent: [x-user, x-groups, x-jwt-payload]}
  - name: client copies are removed on routes without requirements too
    request: {path: /fwd, headers: {x-fwd: "{{T}}", x-user: mallory}}
    expect: {status: 200, upstream_headers: {x-fwd: "{{T}}"}, upstream_headers_absent: [x-user]}
"#,
        &[("JA", &jwks(&[a.jwk("", None)])), ("T", &t), ("P", &p64)],
    ));
}

#[test]
fn cache_and_clock_skew() {
    let a = hs(A);
    let t = token(
        &a,
        "HS256",
        "",
        &format!(r#"{{"iss":"https://a","sub":"alice","exp":{}}}"#, NOW + 100),
    );
    let future = token(
        &a,
        "HS256",
        "",
        &format!(
            r#"{{"iss":"https://a","nbf":{},"exp":{}}}"#,
            NOW + 90,
            NOW + 1000
        ),
    );
    run(&fill(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules: [{issuer: "https://a", jwks: '{{JA}}'}]
      cacheSize: 2
requests:
  - name: first use verifies (cache miss)
    request: {path: /, headers: {authorization: "Bearer {{T}}"}}
    expect: {status: 200, metrics: {jwt_authn.jwt_cache_miss: 1, jwt_authn.jwt_cache_hit: 0}}
  - name: repeats are cache hits
    repeat: 5
    request: {path: /, headers: {authorization: "Bearer {{T}}"}}
    expect: {status: 200, metrics: {jwt_authn.jwt_cache_miss: 1, jwt_authn.jwt_cache_hit: 5}}
  - name: nbf 90 s ahead is beyond the 60 s skew
    request: {path: /, headers: {authorization: "Bearer {{F}}"}}
    expect: {status: 401, body: Jwt not yet valid}
  - name: 31 s later it is within the skew
    advance_ms: 31000
    request: {path: /, headers: {authorization: "Bearer {{F}}"}}
    expect: {status: 200}
  - name: past exp but within the skew, the cached token is verified again
    advance_ms: 69000
    request: {path: /, headers: {authorization: "Bearer {{T}}"}}
    expect: {status: 200, metrics: {jwt_authn.jwt_cache_miss: 4}}
  - name: past exp plus skew it is expired, cached or not
    advance_ms: 61000
    request: {path: /, headers: {authorization: "Bearer {{T}}"}}
    expect: {status: 401, body: Jwt is expired, response_headers: {www-authenticate: 'Bearer realm="http://example.com/", error="invalid_token"'}}
"#,
        &[("JA", &jwks(&[a.jwk("", None)])), ("T", &t), ("F", &future)],
    ));
}
