//! The native fuzz targets: the filters' pure cores on arbitrary bytes.
//!
//! Besides "no panic", each target asserts properties that must hold for
//! every input (a failed assertion is a finding, like a crash):
//!
//! * `jwt_token`: a request passes with an identity only with one of the
//!   four published, correctly signed tokens — nothing else verifies;
//! * `rbac_request`: a normalised path is normalised (idempotent, no `//`
//!   when merging, no dot segments) and DENY policies on `/admin`,
//!   `DELETE` and a header deny every spelling the normaliser accepts;
//! * `router_request`: the client's own `x-wasmesh-cluster` never survives,
//!   and the cluster written is one of the configured destinations;
//! * `fault_request`: header-controlled faults stay within `maxPercentage`
//!   and Envoy's status range;
//! * `metrics_attribute`: stat names round-trip through the tag encoding.

use crate::input::{self, Request};
use jwt_authn::authenticator::{Authenticator, CacheStats};
use jwt_authn::config::FilterConfig;
use jwt_authn::jwks::KeySet;
use jwt_authn::jwks_cache::KeyRing;
use jwt_authn::jwt::Jwt;
use jwt_authn::jwt_cache::JwtCache;
use jwt_authn::Decision as JwtDecision;
use std::net::IpAddr;
use std::sync::OnceLock;
use wasmesh_common::http_match::RequestAttributes;
use wasmesh_common::identity::Identity;
use wasmesh_common::sampling::Rng;
use wasmesh_common::HeaderMap;

/// Inputs longer than this are cut (the filters bound their inputs further).
pub const MAX_INPUT: usize = 64 * 1024;

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(&data[..data.len().min(MAX_INPUT)]).into_owned()
}

// ---------------------------------------------------------------------------
// JWT

/// The clock of the JWT targets: just before the RFC 7515 tokens expire.
pub const JWT_NOW: u64 = 1_300_819_000;

/// RFC 7515 A.1 (HS256), A.2 (RS256), A.3 (ES256) and RFC 8037 A.4 (EdDSA)
/// public keys.
pub const JWKS_RFC: &str = concat!(
    r#"{"keys":["#,
    r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"},"#,
    r#"{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"},"#,
    r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},"#,
    r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
    r#"]}"#
);

/// The published tokens that verify against [`JWKS_RFC`] (issuer `joe`,
/// except the RFC 8037 one, which has no claims: it is refused for its
/// payload before the signature).
pub const VALID_TOKENS: [&str; 3] = [
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    concat!(
        "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
        "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
        "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
        "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
        "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
        "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
        "p0igcN_IoypGlUPQGe77Rw"
    ),
    "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
];

/// RFC 8037 A.4: a valid EdDSA signature over a payload that is no claim set.
pub const ED25519_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

thread_local! {
    static JWT_FIXTURE: FilterConfig = {
        let json = format!(
            r#"{{"jwtRules":[
                {{"name":"joe","issuer":"joe","jwks":{JWKS_RFC},
                  "outputClaimToHeaders":[{{"header":"x-root","claim":"http://example.com/is_root"}}],
                  "outputPayloadToHeader":"x-payload"}},
                {{"name":"cookie","issuer":"cookie-issuer","jwks":{JWKS_RFC},"fromCookies":["session"],"fromParams":["tok"]}}
            ]}}"#
        );
        FilterConfig::from_json(json.as_bytes()).expect("fixture configuration")
    };
}

fn jwt_decide(config: &FilterConfig, headers: &HeaderMap, now: u64) -> JwtDecision {
    let ring = KeyRing::new(config);
    let mut cache = JwtCache::new(config.cache_size);
    let mut auth = Authenticator {
        config,
        keys: &ring,
        cache: &mut cache,
        now,
        stats: CacheStats::default(),
    };
    jwt_authn::decide(config, headers, &mut auth)
}

/// The jwt_authn configuration: parse, compile, decide one request.
pub fn jwt_config(data: &[u8]) {
    let Ok(config) = FilterConfig::from_json(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    let h = HeaderMap::from_slice(&[
        (":method", "GET"),
        (":path", "/api?access_token=x.y.z"),
        (":authority", "api"),
        (":scheme", "https"),
        ("authorization", &format!("Bearer {}", VALID_TOKENS[0])),
        ("cookie", "session=a.b.c"),
    ]);
    let _ = jwt_decide(&config, &h, JWT_NOW);
}

/// A token (the input, as the `Authorization` bearer, as the
/// `access_token` parameter and as a cookie) through parsing, the fixed key
/// set and the whole decision.
pub fn jwt_token(data: &[u8]) {
    let token = text(data);
    if let Ok(jwt) = Jwt::parse(&token) {
        let _ = jwt.check_time(JWT_NOW, 60);
        let _ = jwt.check_time(u64::MAX, u64::MAX);
        let _ = jwt.check_time(0, 0);
        if let Ok(keys) = KeySet::from_json(JWKS_RFC.as_bytes()) {
            if keys.verify(&jwt, &token).is_ok() {
                let t = token.trim();
                assert!(
                    VALID_TOKENS.contains(&t) || t == ED25519_TOKEN,
                    "a token nobody signed verified: {token:?}"
                );
            }
        }
    }
    let header_value = format!("Bearer {token}");
    let path = format!("/p?tok={}&access_token=1", token.replace(['&', '#'], ""));
    let cookie = format!("session={}", token.replace(';', ""));
    let sets: [Vec<(&str, &str)>; 3] = [
        vec![("authorization", header_value.as_str())],
        vec![(":path", path.as_str())],
        vec![("cookie", cookie.as_str())],
    ];
    for extra in sets {
        let mut pairs = vec![
            (":method", "GET"),
            (":authority", "api"),
            (":scheme", "https"),
        ];
        if !extra.iter().any(|(k, _)| *k == ":path") {
            pairs.push((":path", "/p"));
        }
        pairs.extend(extra);
        let h = HeaderMap::from_slice(&pairs);
        let decision = JWT_FIXTURE.with(|config| jwt_decide(config, &h, JWT_NOW));
        if let JwtDecision::Allow {
            identity: Some(id),
            ops,
        } = decision
        {
            let candidates = [token.trim(), token.as_str()];
            assert!(
                candidates.iter().any(|t| VALID_TOKENS.contains(t)),
                "allowed with identity {id} for a token nobody signed: {token:?}"
            );
            let _ = ops;
        }
    }
}

/// A JWKS document: parse, then try every published token against it.
pub fn jwks(data: &[u8]) {
    let Ok(keys) = KeySet::from_json(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    for t in VALID_TOKENS.iter().chain(std::iter::once(&ED25519_TOKEN)) {
        if let Ok(jwt) = Jwt::parse(t) {
            let _ = keys.verify(&jwt, t);
        }
    }
    let _ = keys.has_kid("k1");
}

// ---------------------------------------------------------------------------
// RBAC

fn rbac_request_for(req: &Request) -> rbac::authz::Connection {
    rbac::authz::Connection {
        peer_ip: Some(IpAddr::from([192, 168, 1, 1])),
        destination_ip: Some(IpAddr::from([10, 0, 0, 2])),
        destination_port: Some(8443),
        sni: Some("api.example.com".into()),
        peer_uri: req
            .headers
            .get("x-test-peer")
            .map(|p| format!("spiffe://{p}")),
        identity: req.headers.get("x-test-sub").map(|sub| {
            Identity {
                provider: "idp".into(),
                iss: "https://idp".into(),
                sub: sub.into(),
                aud: vec!["api".into()],
                azp: String::new(),
                principal: format!("https://idp/{sub}"),
                claims: obj(serde_json::json!({"groups": ["readers", sub]})),
            }
            .to_json()
            .into_bytes()
        }),
    }
}

/// The rbac configuration: parse, compile, authorise a few requests.
pub fn rbac_config(data: &[u8]) {
    let Ok(config) = rbac::config::Config::from_json(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    for raw in [
        "GET\n/api/items?x=1\napi.example.com\nx-forwarded-for: 10.1.1.1, 8.8.8.8",
        "DELETE\n/admin/../admin/%2e%2e/x\nAPI.example.com:8443\nx-role: reader\nx-role: admin",
    ] {
        let req = input::request(raw.as_bytes());
        let conn = rbac_request_for(&req);
        let headers = rbac::headers::Headers::from_map(&req.headers);
        let _ = rbac::authz::authorize(&config, &headers, &req.raw_path, &conn);
    }
}

fn rbac_fixtures() -> &'static [rbac::config::Config; 3] {
    static C: OnceLock<[rbac::config::Config; 3]> = OnceLock::new();
    C.get_or_init(|| {
        let make = |mode: &str| {
            let json = format!(
                r#"{{"pathNormalization":"{mode}","numTrustedProxies":1,"policies":[
                {{"name":"deny-admin","action":"DENY","rules":[{{"to":[{{"operation":{{"paths":["/admin","/admin/*"]}}}}]}}]}},
                {{"name":"deny-delete","action":"DENY","rules":[{{"to":[{{"operation":{{"methods":["DELETE"]}}}}]}}]}},
                {{"name":"deny-header","action":"DENY","rules":[{{"when":[{{"key":"request.headers[x-block]","values":["yes"]}}]}}]}},
                {{"name":"audit","action":"AUDIT","rules":[{{"to":[{{"operation":{{"methods":["POST"]}}}}]}}]}},
                {{"name":"allow-api","action":"ALLOW","rules":[
                  {{"to":[{{"operation":{{"paths":["/api/*","/public/{{*}}/x/{{**}}"],"hosts":["api.example.com"],"notPorts":["22"]}}}}]}},
                  {{"from":[{{"source":{{"remoteIpBlocks":["10.0.0.0/8"],"notPrincipals":["cluster.local/ns/evil/sa/*"]}}}}]}},
                  {{"from":[{{"source":{{"requestPrincipals":["https://idp/*"]}}}}],"when":[{{"key":"request.auth.claims[groups]","values":["readers"]}},{{"key":"connection.sni","values":["*.example.com"]}}]}}
                ]}},
                {{"name":"dry","action":"DENY","dryRun":true,"rules":[{{"to":[{{"operation":{{"paths":["*.php"]}}}}]}}]}}
            ]}}"#
            );
            rbac::config::Config::from_json(json.as_bytes()).expect("fixture configuration")
        };
        [
            make("BASE"),
            make("MERGE_SLASHES"),
            make("DECODE_AND_MERGE_SLASHES"),
        ]
    })
}

/// A request through validation, path normalisation and the fixed policies
/// in each normalisation mode, with the security properties above.
pub fn rbac_request(data: &[u8]) {
    use rbac::authz::Verdict;
    use rbac::path::{normalize, PathNormalization};
    let req = input::request(&data[..data.len().min(MAX_INPUT)]);
    let conn = rbac_request_for(&req);
    let headers = rbac::headers::Headers::from_map(&req.headers);
    let modes = [
        PathNormalization::Base,
        PathNormalization::MergeSlashes,
        PathNormalization::DecodeAndMergeSlashes,
    ];
    for (config, mode) in rbac_fixtures().iter().zip(modes) {
        let verdict = rbac::authz::authorize(config, &headers, &req.raw_path, &conn);
        let Verdict::Checked { path, decision } = verdict else {
            continue;
        };
        let method = req.headers.method();
        if method == "CONNECT" && path.path.is_empty() {
            continue;
        }
        let p: &str = &path.path;
        if p == "*" {
            // The asterisk form (`OPTIONS *`, also with a query): kept as is.
            continue;
        }
        assert!(p.starts_with('/'), "normalised path {p:?} is not absolute");
        if mode != PathNormalization::Base {
            assert!(!p.contains("//"), "{mode:?}: {p:?} keeps `//`");
        }
        assert!(
            !p.split('/').any(|s| s == "." || s == ".."),
            "{mode:?}: {p:?} keeps a dot segment"
        );
        let forwarded = path.forwarded();
        let again = normalize(forwarded.as_bytes(), mode)
            .unwrap_or_else(|e| panic!("{mode:?}: normalised {p:?} is refused: {e}"));
        assert_eq!(&*again.path, p, "{mode:?}: normalisation is not idempotent");
        let allowed = decision.enforced.allowed;
        if p == "/admin" || p.starts_with("/admin/") {
            assert!(!allowed, "{mode:?}: {p:?} passed the /admin deny");
        }
        if method == "DELETE" {
            assert!(!allowed, "DELETE passed the method deny");
        }
        let blocks: Vec<&str> = req.headers.get_all("x-block").collect();
        if blocks.first() == Some(&"yes") || blocks.last() == Some(&"yes") {
            assert!(!allowed, "x-block: yes passed the header deny");
        }
    }
}

// ---------------------------------------------------------------------------
// Header router

/// A fixed route table covering every match kind and action.
pub const ROUTER_FIXTURE: &str = r#"{
  "clusterHeader": "x-wasmesh-cluster",
  "routes": [
    {"name": "beta", "match": [{"headers": {"x-beta": {"exact": "true"}}}, {"claims": {"groups": {"exact": "beta"}}}],
     "route": [{"destination": "reviews-v2"}], "headers": {"request": {"set": {"x-variant": "v2"}, "remove": ["x-debug"]}}},
    {"name": "canary", "match": [{"uri": {"prefix": "/reviews"}}],
     "route": [{"destination": "reviews-v1", "weight": 90}, {"destination": "reviews-v2", "weight": 10}],
     "stickyBy": {"header": "x-user-id"}},
    {"name": "cookie", "match": [{"uri": {"regex": "/c/[a-z]+/(x|y)+"}, "method": {"exact": "GET"}}],
     "route": [{"destination": "a", "weight": 1}, {"destination": "b", "weight": 2}], "stickyBy": {"cookie": "session"}},
    {"name": "src", "match": [{"sourceIp": ["10.0.0.0/8"], "queryParams": {"v": {"prefix": "2"}}}],
     "route": [{"destination": "a", "weight": 5}, {"destination": "b", "weight": 5}], "stickyBy": {"sourceIp": true}},
    {"name": "rewrite", "match": [{"uri": {"prefix": "/old/"}, "ignoreUriCase": true}], "rewrite": {"uri": "/new/", "authority": "svc.internal"}, "route": [{"destination": "svc"}]},
    {"name": "retired", "match": [{"uri": {"prefix": "/v1/"}}], "directResponse": {"status": 410, "body": {"string": "v1 is retired"}}},
    {"name": "moved", "match": [{"uri": {"exact": "/shop"}}, {"authority": {"suffix": ".old"}}], "redirect": {"authority": "shop.example.com", "scheme": "https", "port": 8443, "redirectCode": 308}}
  ],
  "defaultDestination": "reviews-v1"
}"#;

const ROUTER_CLUSTERS: [&str; 5] = ["reviews-v1", "reviews-v2", "a", "b", "svc"];

fn router_table(json: &[u8]) -> Option<header_router::RouteTable> {
    let cfg = header_router::RouterConfig::parse(json).ok()?;
    header_router::RouteTable::compile(&cfg).ok()
}

fn router_fixture() -> &'static header_router::RouteTable {
    static T: OnceLock<header_router::RouteTable> = OnceLock::new();
    T.get_or_init(|| router_table(ROUTER_FIXTURE.as_bytes()).expect("fixture table"))
}

/// The identity as the JWT filter stores it.
fn identity_for(req: &HeaderMap) -> Option<String> {
    req.get("x-test-groups").map(|g| {
        Identity {
            provider: "idp".into(),
            iss: "https://idp".into(),
            sub: "alice".into(),
            aud: vec![],
            azp: String::new(),
            principal: "https://idp/alice".into(),
            claims: obj(serde_json::json!({"groups": g, "sub": "alice", "n": {"m": [1, g]}})),
        }
        .to_json()
    })
}

fn route_once(table: &header_router::RouteTable, req: &Request, seed: u64) -> Option<String> {
    let identity = identity_for(&req.headers);
    let names = table.header_names();
    let values = names.resolve(&req.headers);
    let attrs = RequestAttributes {
        headers: &req.headers,
        identity: identity
            .as_deref()
            .and_then(|j| wasmesh_common::identity::IdentityView::parse(j.as_bytes())),
        source_ip: req
            .headers
            .get("x-test-source")
            .and_then(|s| s.parse().ok()),
        header_values: Some(&values),
    };
    let mut rng = Rng::with_seed(seed);
    let d = table.decide(&attrs, &mut rng);
    let _ = table.metric(&d);
    let _ = table.route_name(&d);
    let mut out = req.headers.clone();
    table.apply_request(&d, &req.headers, &mut out);
    table.apply_response(&d, &mut out);
    let _ = table.has_response_ops(&d);
    if let Some(local) = table.local_response(&d, &req.headers) {
        let _ = format!("{local:?}");
    }
    let written: Vec<&str> = out.get_all(table.cluster_header()).collect();
    assert!(written.len() <= 1, "several cluster headers: {written:?}");
    if let Some(c) = table.cluster(&d) {
        assert_eq!(written, [c], "cluster header does not carry the decision");
    }
    written.first().map(|s| s.to_string())
}

/// The header_router configuration: parse, compile, route one request.
pub fn router_config(data: &[u8]) {
    let Some(table) = router_table(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    let req =
        input::request(b"GET\n/reviews/1?v=2\napi\nx-beta: true\nx-user-id: u1\ncookie: session=s");
    let _ = route_once(&table, &req, 1);
}

/// A request through the fixed route table: the client's cluster header is
/// replaced or removed, and only configured clusters are written.
pub fn router_request(data: &[u8]) {
    let req = input::request(&data[..data.len().min(MAX_INPUT)]);
    let table = router_fixture();
    for seed in [1, 2] {
        if let Some(c) = route_once(table, &req, seed) {
            assert!(
                ROUTER_CLUSTERS.contains(&c.as_str()),
                "cluster {c:?} is not a configured destination"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Fault injection

/// A fixed fault policy with header control capped at 50%.
pub const FAULT_FIXTURE: &str = r#"{
  "faults": [
    {"name": "slow", "match": [{"uri": {"prefix": "/reviews"}, "headers": {"x-chaos": {"exact": "on"}}}],
     "delay": {"fixedDelay": "2s", "percentage": {"value": 50}}, "abort": {"httpStatus": 503, "percentage": {"value": 10}}},
    {"name": "grpc", "match": [{"uri": {"prefix": "/pkg.Svc/"}}], "abort": {"grpcStatus": "UNAVAILABLE"}},
    {"name": "users", "match": [{"claims": {"sub": {"prefix": "bad"}}}, {"sourceIp": ["10.0.0.0/8", "::1/128"]}], "delay": {"fixedDelay": "1m30s"}}
  ],
  "headerControl": {"enabled": true, "maxPercentage": 50},
  "maxActiveFaults": 3
}"#;

fn fault_policy(json: &[u8]) -> Option<fault_injection::FaultPolicy> {
    let cfg = fault_injection::FaultConfig::parse(json).ok()?;
    fault_injection::FaultPolicy::compile(&cfg).ok()
}

fn fault_fixture() -> &'static fault_injection::FaultPolicy {
    static P: OnceLock<fault_injection::FaultPolicy> = OnceLock::new();
    P.get_or_init(|| fault_policy(FAULT_FIXTURE.as_bytes()).expect("fixture policy"))
}

fn plan_once(
    policy: &fault_injection::FaultPolicy,
    req: &Request,
) -> Option<fault_injection::policy::Plan> {
    let identity = req.headers.get("x-test-sub").map(|sub| {
        Identity {
            sub: sub.into(),
            claims: obj(serde_json::json!({"sub": sub})),
            ..Default::default()
        }
        .to_json()
    });
    let attrs = RequestAttributes {
        headers: &req.headers,
        identity: identity
            .as_deref()
            .and_then(|j| wasmesh_common::identity::IdentityView::parse(j.as_bytes())),
        source_ip: req
            .headers
            .get("x-test-source")
            .and_then(|s| s.parse().ok()),
        header_values: None,
    };
    policy.plan(&attrs)
}

/// The fault_injection configuration: parse, compile, plan one request.
pub fn fault_config(data: &[u8]) {
    let Some(policy) = fault_policy(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    let _ = policy.max_active_faults();
    let req = input::request(b"GET\n/reviews\napi\nx-chaos: on\nx-envoy-fault-abort-request: 503\nx-envoy-fault-delay-request: 100");
    let _ = plan_once(&policy, &req);
}

/// A request through the fixed fault policy, header control included.
pub fn fault_request(data: &[u8]) {
    let req = input::request(&data[..data.len().min(MAX_INPUT)]);
    let Some(plan) = plan_once(fault_fixture(), &req) else {
        return;
    };
    use fault_injection::policy::{AbortStatus, Source};
    if let Some(a) = &plan.abort {
        assert!(a.ppm <= 1_000_000, "abort share {} ppm", a.ppm);
        match a.status {
            AbortStatus::Http(s) => assert!((200..600).contains(&s), "abort status {s}"),
            AbortStatus::Grpc(g) => assert!(g <= 16, "abort gRPC status {g}"),
        }
        if a.source == Source::Header {
            // Header-controlled faults are capped at maxPercentage (50%).
            assert!(a.ppm <= 500_000, "header abort share {} ppm", a.ppm);
        }
    }
    if let Some(d) = &plan.delay {
        assert!(d.ppm <= 1_000_000, "delay share {} ppm", d.ppm);
        if d.source == Source::Header {
            assert!(d.ppm <= 500_000, "header delay share {} ppm", d.ppm);
        }
    }
    let _ = format!("{plan:?}");
}

// ---------------------------------------------------------------------------
// Custom metrics

/// The custom_metrics configuration: parse and compile.
pub fn metrics_config(data: &[u8]) {
    let node = custom_metrics::config::NodeInfo {
        workload: "reviews-v1".into(),
        namespace: "prod".into(),
        app: "reviews".into(),
        version: "v1".into(),
    };
    if let Ok(c) =
        custom_metrics::config::Compiled::from_json(&data[..data.len().min(MAX_INPUT)], node)
    {
        let _ = c.stats_tags();
    }
}

/// A stream of plain data for the resolver.
struct Stream {
    req: HeaderMap,
    resp: HeaderMap,
    trailers: HeaderMap,
    props: Vec<(String, Vec<u8>)>,
}

impl custom_metrics::resolver::StreamHost for Stream {
    fn request_headers(&mut self) -> &HeaderMap {
        &self.req
    }
    fn response_headers(&mut self) -> &HeaderMap {
        &self.resp
    }
    fn response_trailers(&mut self) -> &HeaderMap {
        &self.trailers
    }
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        let key = path.join(".");
        self.props
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }
    fn identity(&mut self) -> Option<wasmesh_common::identity::IdentityView<'_>> {
        None
    }
    fn now_nanos(&mut self) -> u64 {
        1_700_000_000_000_000_000
    }
    fn stream_start_nanos(&self) -> Option<u64> {
        Some(1_699_999_999_000_000_000)
    }
    fn request_body_bytes(&self) -> Option<u64> {
        Some(12)
    }
    fn response_body_bytes(&self) -> Option<u64> {
        None
    }
}

/// An attribute expression (first line) evaluated on a stream whose request
/// is the rest of the input and whose properties take arbitrary bytes; the
/// label value is put through the stat-name encoding and back.
pub fn metrics_attribute(data: &[u8]) {
    use custom_metrics::tags;
    static CFG: OnceLock<custom_metrics::config::Compiled> = OnceLock::new();
    let cfg = CFG.get_or_init(|| {
        custom_metrics::config::Compiled::from_json(b"{}", Default::default())
            .expect("empty configuration")
    });
    let data = &data[..data.len().min(MAX_INPUT)];
    let (expr, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let expr = String::from_utf8_lossy(expr);
    let req = input::request(rest);
    // Properties get raw bytes from the input (wrong sizes for integers,
    // timestamps and booleans included).
    let raw = rest.get(..rest.len().min(16)).unwrap_or_default().to_vec();
    let props = [
        "source.address",
        "source.port",
        "destination.port",
        "response.code",
        "response.flags",
        "request.time",
        "request.duration",
        "connection.mtls",
        "xds.cluster_name",
        "upstream_peer",
        "downstream_peer",
        "node.metadata.NAMESPACE",
    ]
    .iter()
    .map(|k| (k.to_string(), raw.clone()))
    .collect();
    let mut stream = Stream {
        resp: HeaderMap::from_slice(&[(":status", "200"), ("grpc-status", "14")]),
        trailers: HeaderMap::new(),
        req: req.headers,
        props,
    };
    if let Ok(attr) = custom_metrics::attribute::parse(&expr) {
        let mut r = custom_metrics::resolver::Resolver::new(&mut stream, cfg, 3);
        let v = r.eval(&attr);
        let mut label = String::new();
        v.write_label(&mut label);
        let _ = v.as_i64();
        let value = tags::sanitize_label_value(&label);
        let name = tags::encode_stat_name("m_total", &[("label", &value)]);
        let (metric, labels) = tags::decode_stat_name(&name).expect("own encoding decodes");
        assert_eq!(metric, "m_total");
        assert_eq!(labels, [("label", &*value)], "label value round trip");
    }
    let _ = tags::decode_stat_name(&expr);
    let _ = tags::escape_label_value(&expr);
    let _ = tags::sanitize_prometheus_name(&expr);
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixtures_compile() {
        let cfg = header_router::RouterConfig::parse(super::ROUTER_FIXTURE.as_bytes())
            .unwrap_or_else(|e| panic!("router: {e}"));
        header_router::RouteTable::compile(&cfg).unwrap_or_else(|e| panic!("router: {e}"));
        let cfg = fault_injection::FaultConfig::parse(super::FAULT_FIXTURE.as_bytes())
            .unwrap_or_else(|e| panic!("fault: {e}"));
        fault_injection::FaultPolicy::compile(&cfg).unwrap_or_else(|e| panic!("fault: {e}"));
        let _ = super::rbac_fixtures();
        super::JWT_FIXTURE.with(|_| ());
    }
}
