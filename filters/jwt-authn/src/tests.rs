//! Core tests across modules: rules, requirement trees, outputs, cache, with
//! HS256 tokens signed here.

use crate::authenticator::{Authenticator, CacheStats, KeyStore, Verified};
use crate::config::FilterConfig;
use crate::jwks_cache::{KeyRing, KeysView};
use crate::jwt::base64url_encode;
use crate::jwt_cache::JwtCache;
use crate::output::HeaderOp;
use crate::status::Status;
use crate::{decide, Decision};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmesh_common::identity::IdentityView;
use wasmesh_common::HeaderMap;

const NOW: u64 = 1_700_000_000;

fn secret(name: &str) -> Vec<u8> {
    format!("secret-of-{name}-0123456789abcdef").into_bytes()
}

fn jwks(name: &str, kid: &str) -> String {
    format!(
        r#"{{"keys":[{{"kty":"oct","kid":"{kid}","k":"{}"}}]}}"#,
        base64url_encode(&secret(name))
    )
}

fn sign(name: &str, kid: &str, payload: &str) -> String {
    let header =
        base64url_encode(format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"JWT"}}"#).as_bytes());
    let payload = base64url_encode(payload.as_bytes());
    let input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret(name)).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", base64url_encode(&mac.finalize().into_bytes()))
}

fn tok(name: &str, iss: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    sign(
        name,
        "k1",
        &format!(
            r#"{{"iss":"{iss}","sub":"alice","exp":{}{sep}{extra}}}"#,
            NOW + 3600
        ),
    )
}

fn rule(name: &str, iss: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"name":"{name}","issuer":"{iss}","jwks":{}{sep}{extra}}}"#,
        serde_json::to_string(&jwks(name, "k1")).unwrap()
    )
}

struct Env {
    config: FilterConfig,
    ring: KeyRing,
    cache: JwtCache<Verified>,
    now: u64,
    stats: CacheStats,
}

impl Env {
    fn new(json: &str) -> Env {
        let config = FilterConfig::from_json(json.as_bytes()).unwrap();
        let ring = KeyRing::new(&config);
        let cache = JwtCache::new(config.cache_size);
        Env {
            config,
            ring,
            cache,
            now: NOW,
            stats: CacheStats::default(),
        }
    }

    fn decide(&mut self, headers: &[(&str, &str)]) -> Decision {
        let mut h = vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "api"),
        ];
        h.extend_from_slice(headers);
        let headers = HeaderMap::from_slice(&h);
        let mut auth = Authenticator {
            config: &self.config,
            keys: &self.ring,
            cache: &mut self.cache,
            now: self.now,
            stats: CacheStats::default(),
        };
        let d = decide(&self.config, &headers, &mut auth);
        self.stats = auth.stats;
        d
    }

    fn status(&mut self, headers: &[(&str, &str)]) -> Option<Status> {
        match self.decide(headers) {
            Decision::Deny(s) => Some(s),
            Decision::Allow { .. } | Decision::CorsBypass => None,
            Decision::Wait => panic!("unexpected wait"),
        }
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn two_providers(rules: &str) -> Env {
    Env::new(&format!(
        r#"{{"jwtRules":[{},{}],"rules":{rules}}}"#,
        rule("a", "https://a", ""),
        rule("b", "https://b", r#""fromHeaders":[{"name":"x-b"}]"#)
    ))
}

#[test]
fn istio_mode_without_rules() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{}]}}"#,
        rule("a", "https://a", "")
    ));
    // No token: passes without identity.
    assert_eq!(
        e.decide(&[(":path", "/")]),
        Decision::Allow {
            ops: vec![],
            identity: None
        }
    );
    // A valid token: passes with identity, token removed.
    let t = tok("a", "https://a", "");
    match e.decide(&[(":path", "/"), ("authorization", &bearer(&t))]) {
        Decision::Allow { ops, identity } => {
            assert_eq!(ops, vec![HeaderOp::Remove("authorization".into())]);
            let json = identity.unwrap();
            let id = IdentityView::parse(json.as_bytes()).unwrap();
            assert_eq!(
                (id.provider(), id.iss(), id.sub()),
                ("a".into(), "https://a".into(), "alice".into())
            );
            assert_eq!(id.principal(), "https://a/alice");
        }
        other => panic!("{other:?}"),
    }
    // A token from an unknown issuer: refused.
    let other = tok("a", "https://evil", "");
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", &bearer(&other))]),
        Some(Status::JwtUnknownIssuer)
    );
    // A bad token: refused.
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", "Bearer x.y.z")]),
        Some(Status::JwtHeaderParseErrorBadBase64)
    );
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", "Bearer bm9wZQ.e30.c2ln")]),
        Some(Status::JwtHeaderParseErrorBadJson)
    );
    let expired = sign(
        "a",
        "k1",
        &format!(r#"{{"iss":"https://a","exp":{}}}"#, NOW - 61),
    );
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", &bearer(&expired))]),
        Some(Status::JwtExpired)
    );
    // Token in the query parameter: removed from the path.
    match e.decide(&[(":path", &format!("/x?a=1&access_token={t}"))]) {
        Decision::Allow { ops, .. } => {
            assert_eq!(ops, vec![HeaderOp::Set(":path".into(), "/x?a=1".into())])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn istio_mode_attributes_tokens_by_issuer() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{},{}]}}"#,
        rule("a", "https://a", ""),
        rule("b", "https://b", "")
    ));
    let tb = tok("b", "https://b", "");
    match e.decide(&[(":path", "/"), ("authorization", &bearer(&tb))]) {
        Decision::Allow { identity, .. } => {
            assert!(identity.unwrap().contains(r#""provider":"b""#))
        }
        other => panic!("{other:?}"),
    }
    // Signed with a's key but claiming b's issuer: b's key refuses it.
    let forged = tok("a", "https://b", "");
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", &bearer(&forged))]),
        Some(Status::JwtVerificationFail)
    );
}

#[test]
fn provider_requirement_statuses() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{}],"rules":[{{"match":{{"prefix":"/healthz"}}}},{{"match":{{"prefix":"/api"}},"requires":{{"provider":"a"}}}}]}}"#,
        rule("a", "https://a", r#""audiences":["api"]"#)
    ));
    assert_eq!(e.status(&[(":path", "/healthz")]), None);
    assert_eq!(
        e.status(&[(":path", "/other")]),
        None,
        "no rule: nothing required"
    );
    assert_eq!(e.status(&[(":path", "/api")]), Some(Status::JwtMissed));
    let good = tok("a", "https://a", r#""aud":"api""#);
    assert_eq!(
        e.status(&[(":path", "/api"), ("authorization", &bearer(&good))]),
        None
    );
    let wrong_aud = tok("a", "https://a", r#""aud":["web"]"#);
    assert_eq!(
        e.status(&[(":path", "/api"), ("authorization", &bearer(&wrong_aud))]),
        Some(Status::JwtAudienceNotAllowed)
    );
    let wrong_iss = tok("a", "https://x", r#""aud":"api""#);
    assert_eq!(
        e.status(&[(":path", "/api"), ("authorization", &bearer(&wrong_iss))]),
        Some(Status::JwtUnknownIssuer)
    );
    let not_yet = sign(
        "a",
        "k1",
        &format!(r#"{{"iss":"https://a","aud":"api","nbf":{}}}"#, NOW + 61),
    );
    assert_eq!(
        e.status(&[(":path", "/api"), ("authorization", &bearer(&not_yet))]),
        Some(Status::JwtNotYetValid)
    );
    let other_kid = sign("a", "k2", r#"{"iss":"https://a","aud":"api"}"#);
    assert_eq!(
        e.status(&[(":path", "/api"), ("authorization", &bearer(&other_kid))]),
        Some(Status::JwksKidAlgMismatch)
    );
    let wrong_key = tok("zzz", "https://a", r#""aud":"api""#);
    assert_eq!(
        e.status(&[(":path", "/api"), ("authorization", &bearer(&wrong_key))]),
        Some(Status::JwtVerificationFail)
    );
    // Several tokens at once.
    assert_eq!(
        e.status(&[
            (":path", "/api"),
            ("authorization", &bearer(&good)),
            ("authorization", &bearer(&good))
        ]),
        Some(Status::JwtMultipleTokens)
    );
    assert_eq!(
        e.status(&[
            (":path", &format!("/api?access_token={good}")),
            ("authorization", &bearer(&good))
        ]),
        Some(Status::JwtMultipleTokens)
    );
}

#[test]
fn any_of_all_of_and_allow_forms() {
    let mut e = two_providers(
        r#"[{"match":{"prefix":"/either"},"requires":{"anyOf":[{"provider":"a"},{"provider":"b"}]}},
            {"match":{"prefix":"/both"},"requires":{"allOf":[{"provider":"a"},{"provider":"b"}]}},
            {"match":{"prefix":"/optional"},"requires":{"anyOf":[{"provider":"a"},{"allowMissing":true}]}},
            {"match":{"path":"/lenient"},"requires":{"allowMissingOrFailed":true}},
            {"match":{"prefix":"/aud"},"requires":{"provider":"a","audiences":["special"]}}]"#,
    );
    let ta = tok("a", "https://a", "");
    let tb = tok("b", "https://b", "");
    let ba = bearer(&ta);
    // anyOf
    assert_eq!(
        e.status(&[(":path", "/either"), ("authorization", &ba)]),
        None
    );
    assert_eq!(e.status(&[(":path", "/either"), ("x-b", &tb)]), None);
    assert_eq!(e.status(&[(":path", "/either")]), Some(Status::JwtMissed));
    assert_eq!(
        e.status(&[(":path", "/either"), ("x-b", "garbage")]),
        Some(Status::JwtBadFormat)
    );
    // A token of a's issuer where b looks: unknown issuer for b, missing for a.
    assert_eq!(
        e.status(&[(":path", "/either"), ("x-b", &ta)]),
        Some(Status::JwtUnknownIssuer)
    );
    // allOf
    assert_eq!(
        e.status(&[(":path", "/both"), ("authorization", &ba), ("x-b", &tb)]),
        None
    );
    assert_eq!(
        e.status(&[(":path", "/both"), ("authorization", &ba)]),
        Some(Status::JwtMissed)
    );
    match e.decide(&[(":path", "/both"), ("authorization", &ba), ("x-b", &tb)]) {
        Decision::Allow { ops, identity } => {
            assert_eq!(
                ops,
                vec![
                    HeaderOp::Remove("authorization".into()),
                    HeaderOp::Remove("x-b".into())
                ]
            );
            assert!(
                identity.unwrap().contains(r#""provider":"a""#),
                "first in requirement order"
            );
        }
        other => panic!("{other:?}"),
    }
    // anyOf with allowMissing
    assert_eq!(e.status(&[(":path", "/optional")]), None);
    assert_eq!(
        e.status(&[(":path", "/optional"), ("authorization", &ba)]),
        None
    );
    assert_eq!(
        e.status(&[(":path", "/optional"), ("authorization", "Bearer bad")]),
        Some(Status::JwtBadFormat)
    );
    // The by-pass child only looks at a's locations: b's header is ignored.
    assert_eq!(e.status(&[(":path", "/optional"), ("x-b", "bad")]), None);
    // allowMissingOrFailed
    assert_eq!(
        e.status(&[(":path", "/lenient"), ("authorization", "Bearer bad")]),
        None
    );
    match e.decide(&[(":path", "/lenient"), ("authorization", &ba)]) {
        Decision::Allow { identity, .. } => {
            assert!(identity.is_some(), "verified token still yields identity")
        }
        other => panic!("{other:?}"),
    }
    // provider with audiences override
    assert_eq!(
        e.status(&[(":path", "/aud"), ("authorization", &ba)]),
        Some(Status::JwtAudienceNotAllowed)
    );
    let special = tok("a", "https://a", r#""aud":"special""#);
    assert_eq!(
        e.status(&[(":path", "/aud"), ("authorization", &bearer(&special))]),
        None
    );
}

#[test]
fn outputs_payload_and_claims() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{}]}}"#,
        rule(
            "a",
            "https://a",
            r#""outputPayloadToHeader":"x-jwt-payload","outputClaimToHeaders":[{"header":"x-user","claim":"sub"},{"header":"x-groups","claim":"groups"},{"header":"x-level","claim":"realm.level"},{"header":"x-obj","claim":"realm"},{"header":"x-missing","claim":"nope"},{"header":"x-n","claim":"n"}]"#
        )
    ));
    let t = tok(
        "a",
        "https://a",
        r#""groups":["g1","g2"],"realm":{"level":3},"n":1.5"#,
    );
    let payload = t.split('.').nth(1).unwrap().to_string();
    match e.decide(&[(":path", "/"), ("authorization", &bearer(&t))]) {
        Decision::Allow { ops, .. } => assert_eq!(
            ops,
            vec![
                HeaderOp::Add("x-jwt-payload".into(), payload),
                HeaderOp::Add("x-user".into(), "alice".into()),
                HeaderOp::Add("x-groups".into(), "g1,g2".into()),
                HeaderOp::Add("x-level".into(), "3".into()),
                HeaderOp::Add("x-n".into(), "1.500000".into()),
                HeaderOp::Remove("authorization".into()),
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.config.output_headers.len(), 7);
}

#[test]
fn forward_and_cookie_removal() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{},{}]}}"#,
        rule("a", "https://a", r#""forwardOriginalToken":true"#),
        rule("c", "https://c", r#""fromCookies":["session"]"#)
    ));
    let ta = tok("a", "https://a", "");
    match e.decide(&[(":path", "/"), ("authorization", &bearer(&ta))]) {
        Decision::Allow { ops, identity } => {
            assert!(ops.is_empty());
            assert!(identity.is_some());
        }
        other => panic!("{other:?}"),
    }
    let tc = tok("c", "https://c", "");
    let cookie = format!("a=1; session={tc}; b=2");
    match e.decide(&[(":path", "/"), ("cookie", &cookie)]) {
        Decision::Allow { ops, .. } => assert_eq!(
            ops,
            vec![
                HeaderOp::Remove("cookie".into()),
                HeaderOp::Add("cookie".into(), "a=1; b=2".into())
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cache_hits_skip_verification_but_not_time() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{}],"cacheSize":2}}"#,
        rule("a", "https://a", "")
    ));
    let t = sign(
        "a",
        "k1",
        &format!(r#"{{"iss":"https://a","exp":{}}}"#, NOW + 100),
    );
    let h = bearer(&t);
    assert_eq!(e.status(&[(":path", "/"), ("authorization", &h)]), None);
    assert_eq!((e.stats.hits, e.stats.misses), (0, 1));
    assert_eq!(e.status(&[(":path", "/"), ("authorization", &h)]), None);
    assert_eq!((e.stats.hits, e.stats.misses), (1, 0));
    assert_eq!(e.cache.len(), 1);
    // Past exp (beyond skew): the entry is gone and the token refused.
    e.now = NOW + 161;
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", &h)]),
        Some(Status::JwtExpired)
    );
    assert_eq!(e.cache.len(), 0);
    // Clock skew: valid until exp + 60.
    e.now = NOW + 160;
    assert_eq!(e.status(&[(":path", "/"), ("authorization", &h)]), None);
}

#[test]
fn lifetime_rules() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{},{}]}}"#,
        rule("a", "https://a", r#""requireExpiration":true"#),
        rule("b", "https://b", r#""maxLifetime":"1h""#)
    ));
    let no_exp = sign("a", "k1", r#"{"iss":"https://a"}"#);
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", &bearer(&no_exp))]),
        Some(Status::JwtVerificationFail)
    );
    let long = sign(
        "b",
        "k1",
        &format!(r#"{{"iss":"https://b","exp":{}}}"#, NOW + 7200),
    );
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", &bearer(&long))]),
        Some(Status::JwtVerificationFail)
    );
    let short = sign(
        "b",
        "k1",
        &format!(r#"{{"iss":"https://b","exp":{}}}"#, NOW + 3599),
    );
    assert_eq!(
        e.status(&[(":path", "/"), ("authorization", &bearer(&short))]),
        None
    );
}

#[test]
fn cors_preflight_bypass() {
    let mut e = Env::new(&format!(
        r#"{{"jwtRules":[{}],"rules":[{{"match":{{"prefix":"/"}},"requires":{{"provider":"a"}}}}]}}"#,
        rule("a", "https://a", "")
    ));
    let pre = [
        (":method", "OPTIONS"),
        (":path", "/"),
        ("origin", "https://web"),
        ("access-control-request-method", "POST"),
    ];
    let headers = HeaderMap::from_slice(&pre);
    let mut auth = Authenticator {
        config: &e.config,
        keys: &e.ring,
        cache: &mut e.cache,
        now: NOW,
        stats: CacheStats::default(),
    };
    assert_eq!(decide(&e.config, &headers, &mut auth), Decision::CorsBypass);
}

struct Pending;
impl KeyStore for Pending {
    fn view(&self, _: usize) -> KeysView {
        KeysView::Pending
    }
    fn want_refetch(&self, _: usize) -> bool {
        false
    }
}

#[test]
fn pending_keys_wait_but_failures_do_not() {
    let config = FilterConfig::from_json(
        format!(r#"{{"jwtRules":[{}],"rules":[{{"match":{{"prefix":"/"}},"requires":{{"allOf":[{{"provider":"a"}},{{"provider":"a","audiences":["x"]}}]}}}}]}}"#, rule("a", "https://a", "")).as_bytes(),
    )
    .unwrap();
    let mut cache = JwtCache::new(10);
    let t = tok("a", "https://a", "");
    let h = bearer(&t);
    let headers = HeaderMap::from_slice(&[(":path", "/"), ("authorization", &h)]);
    let mut auth = Authenticator {
        config: &config,
        keys: &Pending,
        cache: &mut cache,
        now: NOW,
        stats: CacheStats::default(),
    };
    // The second child fails on the audience before keys are needed: no waiting.
    assert_eq!(
        decide(&config, &headers, &mut auth),
        Decision::Deny(Status::JwtAudienceNotAllowed)
    );
    let t2 = tok("a", "https://a", r#""aud":"x""#);
    let h2 = bearer(&t2);
    let headers = HeaderMap::from_slice(&[(":path", "/"), ("authorization", &h2)]);
    assert_eq!(decide(&config, &headers, &mut auth), Decision::Wait);
}
