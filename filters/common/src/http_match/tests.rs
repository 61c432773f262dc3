use super::*;

fn parse(json: &str) -> Result<Vec<HttpMatchRequest>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(rename = "match")]
        items: Vec<HttpMatchRequest>,
    }
    crate::config::parse_json::<Doc>(format!(r#"{{"match":{json}}}"#).as_bytes()).map(|d| d.items)
}

fn list(json: &str) -> MatchList {
    compile_match_list(&parse(json).unwrap(), &FieldPath::root().field("match")).unwrap()
}

fn err(json: &str) -> ConfigError {
    match parse(json) {
        Err(e) => e,
        Ok(items) => compile_match_list(&items, &FieldPath::root().field("match")).unwrap_err(),
    }
}

fn req(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::from_slice(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "shop.example.com"),
    ]);
    for (k, v) in pairs {
        if k.starts_with(':') {
            h.set(k, v);
        } else {
            h.add(k, v);
        }
    }
    h
}

fn hit(l: &MatchList, h: &HeaderMap) -> Option<usize> {
    l.first_match(&RequestAttributes::headers_only(h))
        .and_then(|m| m.item)
}

fn matches(l: &MatchList, h: &HeaderMap) -> bool {
    l.matches(&RequestAttributes::headers_only(h))
}

#[test]
fn empty_list_matches_everything() {
    let l = list("[]");
    let h = req(&[(":path", "/x")]);
    let m = l.first_match(&RequestAttributes::headers_only(&h)).unwrap();
    assert_eq!(m.item, None);
    assert_eq!(m.path, PathMatch::Prefix(1));
    // An item with no conditions also matches everything.
    assert_eq!(hit(&list("[{}]"), &h), Some(0));
}

#[test]
fn uri_kinds_follow_envoy() {
    let prefix = list(r#"[{"uri":{"prefix":"/reviews"}}]"#);
    assert!(matches(&prefix, &req(&[(":path", "/reviews/1?x=1")])));
    assert!(matches(&prefix, &req(&[(":path", "/reviewsX")])));
    assert!(!matches(&prefix, &req(&[(":path", "/Reviews")])));
    // Exact and regex compare the path without its query string.
    let exact = list(r#"[{"uri":{"exact":"/a"}}]"#);
    assert!(matches(&exact, &req(&[(":path", "/a?b=1")])));
    assert!(!matches(&exact, &req(&[(":path", "/a/")])));
    let regex = list(r#"[{"uri":{"regex":"/v[0-9]+/.*"}}]"#);
    assert!(matches(&regex, &req(&[(":path", "/v2/users?x=/y")])));
    assert!(!matches(&regex, &req(&[(":path", "/x/v2/users")])));
}

#[test]
fn ignore_uri_case_applies_to_exact_and_prefix_only() {
    let l = list(r#"[{"uri":{"prefix":"/API"},"ignoreUriCase":true}]"#);
    assert!(matches(&l, &req(&[(":path", "/api/x")])));
    let l = list(r#"[{"uri":{"exact":"/Login"},"ignoreUriCase":true}]"#);
    assert!(matches(&l, &req(&[(":path", "/LOGIN")])));
    let l = list(r#"[{"uri":{"regex":"/abc"},"ignoreUriCase":true}]"#);
    assert!(!matches(&l, &req(&[(":path", "/ABC")])));
    assert!(matches(&l, &req(&[(":path", "/abc")])));
}

#[test]
fn method_authority_scheme() {
    let l = list(
        r#"[{"method":{"exact":"POST"},"authority":{"prefix":"shop."},"scheme":{"exact":"https"}}]"#,
    );
    assert!(matches(
        &l,
        &req(&[(":method", "POST"), (":scheme", "https")])
    ));
    assert!(!matches(
        &l,
        &req(&[(":method", "GET"), (":scheme", "https")])
    ));
    assert!(!matches(&l, &req(&[(":method", "POST")])));
    assert!(!matches(
        &l,
        &req(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "api.x")
        ])
    ));
    // HTTP/1.0 without :authority falls back to host.
    let mut h = HeaderMap::from_slice(&[
        (":method", "POST"),
        (":scheme", "https"),
        ("host", "shop.a"),
    ]);
    assert!(matches(&l, &h));
    h.remove("host");
    assert!(!matches(&l, &h));
}

#[test]
fn headers_present_value_and_multi() {
    let l = list(r#"[{"headers":{"X-Beta":{"exact":"true"},"x-tenant":{}}}]"#);
    assert!(matches(&l, &req(&[("x-beta", "true"), ("x-tenant", "")])));
    assert!(!matches(&l, &req(&[("x-beta", "true")])));
    assert!(!matches(&l, &req(&[("x-beta", "TRUE"), ("x-tenant", "a")])));
    // Istio's `regex: "*"` is a presence match.
    let l = list(r#"[{"headers":{"x-a":{"regex":"*"}}}]"#);
    assert!(matches(&l, &req(&[("x-a", "anything")])));
    // Several values are joined with a comma, as Envoy does.
    let l = list(r#"[{"headers":{"x-a":{"exact":"1,2"}}}]"#);
    assert!(matches(&l, &req(&[("x-a", "1"), ("x-a", "2")])));
    assert!(!matches(&l, &req(&[("x-a", "1")])));
}

#[test]
fn without_headers_treat_missing_as_empty() {
    let l = list(r#"[{"withoutHeaders":{"x-canary":{"exact":"off"}}}]"#);
    assert!(matches(&l, &req(&[])));
    assert!(matches(&l, &req(&[("x-canary", "on")])));
    assert!(!matches(&l, &req(&[("x-canary", "off")])));
    let l = list(r#"[{"withoutHeaders":{"x-debug":{}}}]"#);
    assert!(matches(&l, &req(&[])));
    assert!(!matches(&l, &req(&[("x-debug", "")])));
    let l = list(r#"[{"withoutHeaders":{"x-a":{"exact":""}}}]"#);
    assert!(!matches(&l, &req(&[])));
}

#[test]
fn query_params_raw_first_value() {
    let l = list(r#"[{"queryParams":{"v":{"exact":"2"},"debug":{}}}]"#);
    assert!(matches(&l, &req(&[(":path", "/x?debug&v=2&v=3")])));
    assert!(!matches(&l, &req(&[(":path", "/x?v=3&v=2&debug")])));
    assert!(!matches(&l, &req(&[(":path", "/x?v=2")])));
    assert!(!matches(&l, &req(&[(":path", "/x")])));
    let l = list(r#"[{"queryParams":{"q":{"exact":"a%20b"}}}]"#);
    assert!(matches(&l, &req(&[(":path", "/s?q=a%20b")])));
    let l = list(r#"[{"queryParams":{"flag":{"exact":""}}}]"#);
    assert!(matches(&l, &req(&[(":path", "/s?flag")])));
    let l = list(r#"[{"queryParams":{"id":{"regex":"[0-9]+"}}}]"#);
    assert!(matches(&l, &req(&[(":path", "/s?id=42")])));
    assert!(!matches(&l, &req(&[(":path", "/s?id=4x")])));
}

/// The identity as the JWT filter stores it.
fn identity(claims: serde_json::Value) -> String {
    crate::identity::Identity {
        provider: "idp".into(),
        iss: "https://idp".into(),
        sub: "alice".into(),
        principal: "https://idp/alice".into(),
        claims: claims.as_object().unwrap().clone(),
        ..Default::default()
    }
    .to_json()
}

#[test]
fn claims_nested_lists_and_scalars() {
    let id = identity(serde_json::json!({
        "groups": ["dev", "beta"], "realm": {"roles": ["admin"], "level": 3}, "email_verified": true
    }));
    let h = req(&[]);
    let at = |json: &str, identity: Option<&String>| {
        list(json).matches(&RequestAttributes {
            headers: &h,
            identity: identity.map(|b| IdentityView::parse(b.as_bytes()).unwrap()),
            source_ip: None,
            header_values: None,
        })
    };
    assert!(at(r#"[{"claims":{"groups":{"exact":"beta"}}}]"#, Some(&id)));
    assert!(!at(r#"[{"claims":{"groups":{"exact":"ops"}}}]"#, Some(&id)));
    assert!(at(
        r#"[{"claims":{"realm.roles":{"exact":"admin"}}}]"#,
        Some(&id)
    ));
    assert!(at(
        r#"[{"claims":{"realm.level":{"exact":"3"}}}]"#,
        Some(&id)
    ));
    assert!(at(
        r#"[{"claims":{"email_verified":{"exact":"true"}}}]"#,
        Some(&id)
    ));
    assert!(at(r#"[{"claims":{"realm":{}}}]"#, Some(&id)));
    assert!(!at(r#"[{"claims":{"missing":{}}}]"#, Some(&id)));
    assert!(!at(r#"[{"claims":{"groups":{"exact":"beta"}}}]"#, None));
    assert!(list(r#"[{"claims":{"groups":{}}}]"#).needs_identity());
}

#[test]
fn source_ip_blocks() {
    let l = list(r#"[{"sourceIp":["10.0.0.0/8","2001:db8::/32"]}]"#);
    assert!(l.needs_source_ip());
    let h = req(&[]);
    let with = |ip: Option<&str>| {
        l.matches(&RequestAttributes {
            headers: &h,
            identity: None,
            source_ip: ip.map(|s| s.parse().unwrap()),
            header_values: None,
        })
    };
    assert!(with(Some("10.1.2.3")));
    assert!(with(Some("2001:db8::1")));
    assert!(!with(Some("192.168.0.1")));
    assert!(!with(None));
}

#[test]
fn items_are_ored_and_first_wins() {
    let l = list(r#"[{"headers":{"x-a":{}}},{"uri":{"prefix":"/b"}},{"uri":{"prefix":"/"}}]"#);
    assert_eq!(hit(&l, &req(&[(":path", "/b"), ("x-a", "1")])), Some(0));
    assert_eq!(hit(&l, &req(&[(":path", "/b")])), Some(1));
    assert_eq!(hit(&l, &req(&[(":path", "/c")])), Some(2));
    assert_eq!(hit(&l, &req(&[(":path", "*")])), None);
}

#[test]
fn path_match_for_rewrites() {
    let l = list(r#"[{"uri":{"prefix":"/old/"}},{"uri":{"exact":"/x"}},{"headers":{"x-a":{}}}]"#);
    let at = |path: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![(":path", path)];
        pairs.extend_from_slice(extra);
        let h = req(&pairs);
        l.first_match(&RequestAttributes::headers_only(&h))
            .unwrap()
            .path
    };
    assert_eq!(at("/old/a", &[]), PathMatch::Prefix(5));
    assert_eq!(at("/x?q", &[]), PathMatch::Whole);
    assert_eq!(at("/z", &[("x-a", "1")]), PathMatch::Prefix(1));
}

#[test]
fn errors_name_the_field() {
    let e = err(r#"[{}, {"headers":{"x-a":{"regex":"(bad"}}}]"#);
    assert_eq!(e.path, "match[1].headers.x-a.regex");
    let e = err(r#"[{"uri":{}}]"#);
    assert_eq!(e.path, "match[0].uri");
    let e = err(r#"[{"sourceIp":["10.0.0.0/8","10.0.0.1/8"]}]"#);
    assert_eq!(e.path, "match[0].sourceIp[1]");
    let e = err(r#"[{"headers":{"bad name":{}}}]"#);
    assert_eq!(e.path, "match[0].headers.bad name");
    let e = err(r#"[{"claims":{"a..b":{}}}]"#);
    assert_eq!(e.path, "match[0].claims.a..b");
    let e = err(r#"[{"method":{"exact":"GET","prefix":"G"}}]"#);
    assert_eq!(e.path, "match[0].method");
    let huge = format!(r#"[{{"uri":{{"regex":"{}"}}}}]"#, "(a{1000}){1000}");
    assert_eq!(err(&huge).path, "match[0].uri.regex");
    let e = err(r#"[{"sourceLabels":{}}]"#);
    assert_eq!(e.path, "match[0].sourceLabels");
    assert!(e.message.contains("unknown field"), "{e}");
    assert_eq!(
        err(r#"[{"headers":{"x":{"exact":1}}}]"#).path,
        "match[0].headers.x.exact"
    );
    assert_eq!(
        err(r#"[{"ignoreUriCase":"yes"}]"#).path,
        "match[0].ignoreUriCase"
    );
    assert_eq!(err(r#"{"uri":{}}"#).path, "match");
}

#[test]
fn repeated_keys_are_refused() {
    let e = err(r#"[{"uri":{"exact":"/a"},"uri":{"prefix":"/"}}]"#);
    assert_eq!(e.to_string(), "match[0]: duplicate field `uri`");
    let e = err(r#"[{"headers":{"x-a":{"exact":"1"},"x-a":{"exact":"2"}}}]"#);
    assert_eq!(e.to_string(), "match[0].headers: duplicate key `x-a`");
    let e = err(r#"[{"claims":{"role":{},"role":{"exact":"admin"}}}]"#);
    assert_eq!(e.to_string(), "match[0].claims: duplicate key `role`");
    let e = err(r#"[{"uri":{"exact":"/a","exact":"/b"}}]"#);
    assert_eq!(e.to_string(), "match[0].uri: duplicate field `exact`");
    assert!(
        parse(r#"[{"name":null,"headers":null,"ignoreUriCase":null,"sourceIp":null}]"#).is_ok()
    );
}

#[test]
fn fast_regexes_agree_with_regex_lite() {
    use crate::matcher::Regex;
    use crate::sampling::Rng;
    let patterns = [
        "/api/v[0-9]+/t49/[a-z]+",
        "abc",
        "a*",
        "a+b?c*",
        "x.y",
        ".*",
        ".+/x",
        "[^/]+/[^/]*",
        "\\d{3}-\\d{2,4}",
        "[a-f0-9]{8}",
        "a{2,}b{0,2}",
        "a{0}b",
        "v[12]\\.[0-9]+",
        "[]a]+",
        "[a-]x",
        "[\\w.-]+@[\\w.-]+",
        "\\s*x\\S?",
        "^ab$",
        "a*?b+?",
        "[^a-c]*z",
        "(a|b)",
        "a|b",
        "\\bx",
        "[[:alpha:]]",
        "é+",
    ];
    let alphabet = b"abcxyz/.-_019 \n@eVv2t4[]";
    let mut rng = Rng::with_seed(5);
    for p in patterns {
        let slow = Regex::full_match(p, false).unwrap();
        let Some(fast) = fast_regex::FastRegex::new(p) else {
            assert!(
                ["(a|b)", "a|b", "\\bx", "[[:alpha:]]", "é+"].contains(&p),
                "{p} should be fast"
            );
            continue;
        };
        let mut inputs: Vec<String> = vec![
            String::new(),
            "/api/v2/t49/items".into(),
            "/api/v/t49/x".into(),
            "123-4567".into(),
            "deadbeef".into(),
            "v1.22".into(),
            "a@b.c".into(),
            "aab".into(),
            "ab".into(),
            "xzy".into(),
        ];
        for _ in 0..3000 {
            let len = rng.below(12) as usize;
            inputs.push(
                (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len() as u32) as usize] as char)
                    .collect(),
            );
        }
        for input in inputs {
            assert_eq!(
                fast.full_match(input.as_bytes()),
                slow.is_match(&input),
                "{p:?} on {input:?}"
            );
        }
    }
}

#[test]
fn regex_literal_prefixes() {
    assert_eq!(
        literal_prefix("/api/v[0-9]+/t49/[a-z]+").as_deref(),
        Some("/api/v")
    );
    assert_eq!(literal_prefix("^/api/.*").as_deref(), Some("/api/"));
    assert_eq!(literal_prefix("abc*").as_deref(), Some("ab"));
    assert_eq!(literal_prefix("ab+").as_deref(), Some("ab"));
    assert_eq!(literal_prefix("a{2}b"), None);
    assert_eq!(literal_prefix("/x\\.y").as_deref(), Some("/x"));
    assert_eq!(literal_prefix("(?i)abc"), None);
    assert_eq!(literal_prefix("ab|cd"), None);
    assert_eq!(literal_prefix("/(a|b)"), None);
    assert_eq!(literal_prefix(".*"), None);
    // The prefilter never changes a result.
    let l = list(r#"[{"uri":{"regex":"/api/v[0-9]+/.*"}}]"#);
    assert!(matches(&l, &req(&[(":path", "/api/v2/x")])));
    assert!(!matches(&l, &req(&[(":path", "/api/x")])));
    assert!(!matches(&l, &req(&[(":path", "/static/x")])));
}

#[test]
fn interned_header_values_give_the_same_answers() {
    let mut names = HeaderNames::default();
    let items = parse(
        r#"[{"headers":{"x-a":{"exact":"1"}},"withoutHeaders":{"x-b":{}}},
            {"authority":{"exact":"shop.example.com"},"headers":{"x-a":{"regex":"[0-9]+"}}},
            {"uri":{"regex":"/q/[a-z]+"},"queryParams":{"v":{"exact":"2"}}},
            {"uri":{"prefix":"/p?x"}}]"#,
    )
    .unwrap();
    let l = compile_match_list_with(&items, &FieldPath::root(), &mut names).unwrap();
    assert_eq!(names.len(), 4); // x-a, x-b, :authority, :path
                                // A single item with an exact header condition is checked first.
    let one =
        parse(r#"[{"uri":{"prefix":"/"},"headers":{"X-A":{"exact":"1"},"x-b":{}}}]"#).unwrap();
    let quick = compile_match_list_with(&one, &FieldPath::root(), &mut names).unwrap();
    assert_eq!(quick.quick.as_ref().map(|(_, v)| v.as_str()), Some("1"));
    for pairs in [
        vec![(":path", "/q/abc?v=2")],
        vec![(":path", "/q/abc?v=3")],
        vec![(":path", "/q/ab1?v=2")],
        vec![(":path", "/p?x=1")],
        vec![("x-a", "1")],
        vec![("x-a", "1"), ("x-b", "")],
        vec![("x-a", "22")],
        vec![("x-a", "1"), ("x-a", "2")],
        vec![],
    ] {
        let h = req(&pairs);
        let values = names.resolve(&h);
        let fast = RequestAttributes {
            header_values: Some(&values),
            ..RequestAttributes::headers_only(&h)
        };
        assert_eq!(
            l.first_match(&fast),
            l.first_match(&RequestAttributes::headers_only(&h)),
            "{pairs:?}"
        );
        assert_eq!(
            quick.first_match(&fast),
            quick.first_match(&RequestAttributes::headers_only(&h)),
            "{pairs:?}"
        );
    }
}

#[test]
fn cheap_conditions_first() {
    let items =
        parse(r#"[{"uri":{"regex":"/a.*"},"headers":{"x-b":{"exact":"1"},"x-c":{}}}]"#).unwrap();
    let c = items[0].compile(&FieldPath::root()).unwrap();
    let costs: Vec<u8> = c.conds.iter().map(|(c, _)| *c).collect();
    assert_eq!(costs, vec![0, 1, 4]);
}
