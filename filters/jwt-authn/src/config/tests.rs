use super::*;

const KEY: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;

fn jwks() -> String {
    format!(r#"{{"keys":[{KEY}]}}"#)
}

fn err(json: &str) -> String {
    FilterConfig::from_json(json.as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn full_example_compiles() {
    let json = format!(
        r#"{{
      "jwtRules": [
        {{"name": "idp", "issuer": "https://idp.example.com", "audiences": ["api"],
          "jwksUri": "https://idp.example.com/keys?x=1", "timeout": "2s", "cacheDuration": "300s",
          "fromHeaders": [{{"name": "X-Token", "prefix": "Bearer "}}], "fromParams": ["access_token"],
          "fromCookies": ["session"], "forwardOriginalToken": true, "outputPayloadToHeader": "x-jwt-payload",
          "outputClaimToHeaders": [{{"header": "x-user", "claim": "sub"}}, {{"header": "x-org", "claim": "org.id"}}],
          "clockSkewSeconds": 30, "requireExpiration": true, "maxLifetime": "86400s"}},
        {{"issuer": "b", "jwks": {}}},
        {{"issuer": "c", "jwks": {{"keys":[{KEY}]}}}}
      ],
      "rules": [
        {{"match": {{"prefix": "/healthz"}}}},
        {{"match": {{"prefix": "/api"}}, "requires": {{"provider": "idp"}}}},
        {{"match": {{"prefix": "/either"}}, "requires": {{"anyOf": [{{"provider": "b"}}, {{"provider": "c"}}]}}}},
        {{"match": {{"prefix": "/both"}}, "requires": {{"allOf": [{{"provider": "b"}}, {{"provider": "c"}}]}}}},
        {{"match": {{"prefix": "/optional"}}, "requires": {{"anyOf": [{{"provider": "idp"}}, {{"allowMissing": true}}]}}}},
        {{"match": {{"path": "/lenient"}}, "requires": {{"allowMissingOrFailed": true}}}}
      ],
      "cacheSize": 10
    }}"#,
        serde_json::to_string(&jwks()).unwrap()
    );
    let c = FilterConfig::from_json(json.as_bytes()).unwrap();
    assert_eq!(c.providers.len(), 3);
    assert_eq!(c.providers[1].name, "b");
    assert_eq!(c.rules.len(), 6);
    assert!(!c.istio_mode);
    assert_eq!(c.cache_size, 10);
    let p = &c.providers[0];
    assert_eq!(p.clock_skew, 30);
    assert_eq!(p.max_lifetime, Some(86400));
    assert_eq!(
        p.claim_headers[1],
        (
            "x-org".to_string(),
            vec!["org".to_string(), "id".to_string()]
        )
    );
    assert_eq!(c.output_headers, vec!["x-jwt-payload", "x-user", "x-org"]);
    match &p.keys {
        KeySource::Remote(r) => {
            assert_eq!(r.cluster, "outbound|443||idp.example.com");
            assert_eq!(r.authority, "idp.example.com");
            assert_eq!(r.path, "/keys?x=1");
            assert_eq!(r.timeout, Duration::from_secs(2));
            assert_eq!(r.cache_duration, Duration::from_secs(300));
        }
        other => panic!("{other:?}"),
    }
    // Providers b and c share the default locations.
    assert_eq!(c.providers[1].locations, c.providers[2].locations);
    // x-token, access_token (shared with b and c), session, Authorization.
    assert_eq!(c.extractor.locations.len(), 4);
}

#[test]
fn defaults_and_istio_mode() {
    let c = FilterConfig::from_json(
        format!(r#"{{"jwtRules":[{{"issuer":"i","jwks":{}}}]}}"#, jwks()).as_bytes(),
    )
    .unwrap();
    assert!(c.istio_mode);
    assert_eq!(c.cache_size, DEFAULT_CACHE_SIZE);
    assert!(c.bypass_cors_preflight);
    assert_eq!(c.providers[0].name, "i");
    assert_eq!(c.providers[0].clock_skew, 60);
    assert_eq!(c.providers[0].max_lifetime, None);
    assert_eq!(c.rules.len(), 1);
    let empty = FilterConfig::from_json(b"").unwrap();
    assert!(empty.providers.is_empty());
    assert!(empty.rules[0].requirement.is_none());
}

#[test]
fn remote_cluster_defaults() {
    let c =
        FilterConfig::from_json(br#"{"jwtRules":[{"issuer":"i","jwksUri":"http://keys:8080"}]}"#)
            .unwrap();
    match &c.providers[0].keys {
        KeySource::Remote(r) => {
            assert_eq!(r.cluster, "outbound|8080||keys");
            assert_eq!(r.path, "/");
            assert_eq!(r.timeout, DEFAULT_TIMEOUT);
            assert_eq!(r.cache_duration, DEFAULT_CACHE_DURATION);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_name_the_field() {
    let j = jwks();
    let j = serde_json::to_string(&j).unwrap();
    assert!(err(r#"{"bogus":1}"#).contains("unknown field `bogus`, expected one of `jwtRules`"));
    assert!(
        err(r#"{"jwtRules":[{"issuer":"i","audiences":["a",3],"jwks":"{}"}]}"#)
            .starts_with("jwtRules[0].audiences[1]: invalid type")
    );
    assert!(
        err(r#"{"jwtRules":[{"issuer":"i","jwks":"{}","colour":1}]}"#)
            .starts_with("jwtRules[0].colour: unknown field `colour`")
    );
    assert_eq!(
        err(r#"{"jwtRules":[{"jwks":"{}"}]}"#),
        "jwtRules[0].issuer: is required"
    );
    assert_eq!(
        err(r#"{"jwtRules":[{"issuer":"i"}]}"#),
        "jwtRules[0]: one of `jwks` or `jwksUri` is required"
    );
    assert_eq!(
        err(&format!(
            r#"{{"jwtRules":[{{"issuer":"i","jwks":{j},"jwksUri":"https://x/k"}}]}}"#
        )),
        "jwtRules[0]: only one of `jwks` and `jwksUri` may be set"
    );
    assert_eq!(
        err(r#"{"jwtRules":[{"issuer":"i","jwks":"not json"}]}"#),
        "jwtRules[0].jwks: Jwks is an invalid JSON"
    );
    assert!(
        err(r#"{"jwtRules":[{"issuer":"i","jwks":{"keys":[{"kty":"RSA"}]}}]}"#)
            .starts_with("jwtRules[0].jwks: Jwks doesn't have any valid public key")
    );
    assert!(
        err(r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/k","timeout":"5"}]}"#)
            .starts_with("jwtRules[0].timeout: invalid duration")
    );
    assert!(
        err(r#"{"jwtRules":[{"issuer":"i","jwksUri":"https://x/k","cacheDuration":"soon"}]}"#)
            .starts_with("jwtRules[0].cacheDuration:")
    );
    assert!(err(&format!(
        r#"{{"jwtRules":[{{"issuer":"i","jwks":{j},"maxLifetime":"-1s"}}]}}"#
    ))
    .starts_with("jwtRules[0].maxLifetime:"));
    assert!(
        err(r#"{"jwtRules":[{"issuer":"i","jwksUri":"ftp://x/k"}]}"#)
            .starts_with("jwtRules[0].jwksUri:")
    );
    assert!(err(&format!(
        r#"{{"jwtRules":[{{"issuer":"i","jwks":{j},"timeout":"1s"}}]}}"#
    ))
    .starts_with("jwtRules[0].timeout: only applies"));
    assert!(err(&format!(
        r#"{{"jwtRules":[{{"issuer":"i","jwks":{j},"fromHeaders":[{{"name":"bad header"}}]}}]}}"#
    ))
    .starts_with("jwtRules[0].fromHeaders[0].name:"));
    assert!(err(&format!(r#"{{"jwtRules":[{{"issuer":"i","jwks":{j},"outputClaimToHeaders":[{{"header":"x","claim":"a..b"}}]}}]}}"#)).starts_with("jwtRules[0].outputClaimToHeaders[0].claim:"));
    assert!(err(&format!(
        r#"{{"jwtRules":[{{"issuer":"i","jwks":{j}}},{{"issuer":"i","jwks":{j}}}]}}"#
    ))
    .starts_with("jwtRules[1].issuer: duplicate provider name"));
    assert_eq!(
        err(&format!(
            r#"{{"jwtRules":[{{"issuer":"i","jwks":{j}}}],"rules":[{{"match":{{"prefix":"/"}},"requires":{{"provider":"nope"}}}}]}}"#
        )),
        "rules[0].requires.provider: unknown provider `nope`"
    );
    assert!(err(&format!(
        r#"{{"jwtRules":[{{"issuer":"i","jwks":{j}}}],"rules":[{{"match":{{}}}}]}}"#
    ))
    .starts_with("rules[0].match:"));
    assert!(err(r#"{"cacheSize":1000000}"#).starts_with("cacheSize:"));
}

#[test]
fn repeated_keys_are_refused() {
    let k = jwks();
    assert_eq!(
        err(&format!(
            r#"{{"jwtRules":[{{"issuer":"a","issuer":"b","jwks":{k}}}]}}"#
        )),
        "jwtRules[0]: duplicate field `issuer`"
    );
    assert_eq!(
        err(&format!(
            r#"{{"jwtRules":[{{"issuer":"a","jwks":{k}}}],"rules":[{{"match":{{"prefix":"/"}},"requires":{{"provider":"a","provider":"b"}}}}]}}"#
        )),
        "rules[0].requires: duplicate field `provider`"
    );
    assert_eq!(
        err(r#"{"jwtRules":[{"issuer":"a","jwks":{"keys":[{"kty":"oct","k":"AA","k":"BB"}]}}]}"#),
        "jwtRules[0].jwks.keys[0]: duplicate key `k`"
    );
    assert_eq!(
        err(
            r#"{"jwtRules":[{"issuer":"a","outputClaimToHeaders":[{"header":"x","claim":"sub","claim":"iss"}]}]}"#
        ),
        "jwtRules[0].outputClaimToHeaders[0]: duplicate field `claim`"
    );
}

#[test]
fn nulls_and_empty_documents_read_as_absent() {
    for doc in ["", " ", "null", "{}"] {
        let c = FilterConfig::from_json(doc.as_bytes()).unwrap();
        assert!(c.providers.is_empty() && c.istio_mode, "{doc}");
    }
    let c = FilterConfig::from_json(
        format!(
            r#"{{"jwtRules":[{{"issuer":"a","jwks":{},"audiences":null,"fromHeaders":null,"forwardOriginalToken":null,"name":null}}],
               "rules":null,"cacheSize":null,"bypassCorsPreflight":null}}"#,
            jwks()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(c.providers[0].name, "a");
    assert_eq!(c.cache_size, DEFAULT_CACHE_SIZE);
    assert!(err("[]")
        .starts_with("configuration: invalid type: sequence, expected struct JwtAuthnConfig"));
    assert_eq!(
        err(r#"{"jwtRules":[{"fromHeaders":[{"prefix":"Bearer "}]}]}"#),
        "jwtRules[0].fromHeaders[0]: missing field `name`"
    );
}

#[test]
fn audiences_are_sanitized() {
    let a = Audiences::new(&["https://api.example.com/".into(), "bar".into()]);
    assert!(a.allows(&["api.example.com".into()]));
    assert!(a.allows(&["http://api.example.com".into()]));
    assert!(a.allows(&["x".into(), "bar/".into()]));
    assert!(!a.allows(&["baz".into()]));
    assert!(!a.allows(&[]));
    assert!(Audiences::new(&[]).allows(&[]));
}
