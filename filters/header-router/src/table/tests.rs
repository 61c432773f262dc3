use super::*;
use wasmesh_common::identity::Identity;

fn table(json: &str) -> RouteTable {
    let cfg = RouterConfig::parse(json.as_bytes()).unwrap();
    RouteTable::compile(&cfg).unwrap()
}

fn refuse(json: &str) -> ConfigError {
    match RouterConfig::parse(json.as_bytes()) {
        Err(e) => e,
        Ok(cfg) => RouteTable::compile(&cfg).unwrap_err(),
    }
}

fn req(path: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::from_slice(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "shop.example"),
        (":path", path),
    ]);
    for (k, v) in extra {
        h.add(k, v);
    }
    h
}

const ISSUE_EXAMPLE: &str = r#"{
  "clusterHeader": "x-wasmesh-cluster",
  "routes": [
    {"name": "beta-users",
     "match": [{"headers": {"x-beta": {"exact": "true"}}}, {"claims": {"groups": {"exact": "beta"}}}],
     "route": [{"destination": "reviews-v2"}],
     "headers": {"request": {"set": {"x-variant": "v2"}, "remove": ["x-debug"]}}},
    {"name": "canary",
     "match": [{"uri": {"prefix": "/reviews"}}],
     "route": [{"destination": "reviews-v1", "weight": 90}, {"destination": "reviews-v2", "weight": 10}],
     "stickyBy": {"header": "x-user-id"}},
    {"name": "rewrite", "match": [{"uri": {"prefix": "/old/"}}], "rewrite": {"uri": "/new/"}, "route": [{"destination": "svc"}]}
  ],
  "defaultDestination": "reviews-v1"
}"#;

fn run(t: &RouteTable, h: &HeaderMap) -> (Decision, HeaderMap) {
    let mut rng = Rng::with_seed(1);
    let values = t.header_names().resolve(h);
    let attrs = RequestAttributes {
        header_values: Some(&values),
        ..RequestAttributes::headers_only(h)
    };
    let d = t.decide(&attrs, &mut rng);
    assert_eq!(
        d,
        t.decide(&RequestAttributes::headers_only(h), &mut Rng::with_seed(1))
    );
    let mut out = h.clone();
    t.apply_request(&d, h, &mut out);
    (d, out)
}

#[test]
fn issue_example() {
    let t = table(ISSUE_EXAMPLE);
    assert!(t.needs_identity());
    let (d, out) = run(
        &t,
        &req(
            "/x",
            &[
                ("x-beta", "true"),
                ("x-debug", "1"),
                ("x-wasmesh-cluster", "evil"),
            ],
        ),
    );
    assert_eq!(t.route_name(&d), Some("beta-users"));
    assert_eq!(
        out.get_all("x-wasmesh-cluster").collect::<Vec<_>>(),
        vec!["reviews-v2"]
    );
    assert_eq!(out.get("x-variant"), Some("v2"));
    assert!(!out.contains("x-debug"));
    assert_eq!(
        t.metric_names()[t.metric(&d)],
        "header_router.route.beta-users.reviews-v2"
    );

    let (d, out) = run(&t, &req("/old/a?x=1", &[]));
    assert_eq!(t.route_name(&d), Some("rewrite"));
    assert_eq!(out.path(), "/new/a?x=1");
    assert_eq!(out.get("x-wasmesh-cluster"), Some("svc"));

    let (d, out) = run(&t, &req("/other", &[("x-wasmesh-cluster", "evil")]));
    assert_eq!(
        d,
        Decision::Forward {
            route: None,
            dest: 0,
            path: PathMatch::Prefix(0)
        }
    );
    assert_eq!(
        out.get_all("x-wasmesh-cluster").collect::<Vec<_>>(),
        vec!["reviews-v1"]
    );
    assert_eq!(
        t.metric_names()[t.metric(&d)],
        "header_router.route.default.reviews-v1"
    );
}

#[test]
fn claims_route_with_identity() {
    let t = table(ISSUE_EXAMPLE);
    let mut claims = serde_json::Map::new();
    claims.insert("groups".into(), serde_json::json!(["dev", "beta"]));
    let id = Identity {
        claims,
        ..Default::default()
    }
    .to_json();
    let h = req("/reviews", &[]);
    let attrs = RequestAttributes {
        headers: &h,
        identity: IdentityView::parse(id.as_bytes()),
        source_ip: None,
        header_values: None,
    };
    let d = t.decide(&attrs, &mut Rng::with_seed(1));
    assert_eq!(t.route_name(&d), Some("beta-users"));
}

#[test]
fn sticky_header_is_consistent_and_missing_key_is_random() {
    let t = table(ISSUE_EXAMPLE);
    let mut rng = Rng::with_seed(3);
    let mut v2 = 0;
    for u in 0..2000 {
        let user = format!("user-{u}");
        let h = req("/reviews/1", &[("x-user-id", &user)]);
        let a = t.decide(&RequestAttributes::headers_only(&h), &mut rng);
        for _ in 0..3 {
            assert_eq!(a, t.decide(&RequestAttributes::headers_only(&h), &mut rng));
        }
        v2 += usize::from(t.cluster(&a) == Some("reviews-v2"));
    }
    assert!((120..290).contains(&v2), "{v2}");
    // Without the key each request is drawn at random: both destinations appear.
    let h = req("/reviews/1", &[]);
    let seen: HashSet<_> = (0..500)
        .map(|_| {
            t.cluster(&t.decide(&RequestAttributes::headers_only(&h), &mut rng))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(seen.len(), 2);
}

#[test]
fn sticky_by_cookie_claim_and_source_ip() {
    let base = r#"{"routes":[{"route":[{"destination":"a","weight":50},{"destination":"b","weight":50}],"stickyBy":STICKY}]}"#;
    let mut rng = Rng::with_seed(9);
    let t = table(&base.replace("STICKY", r#"{"cookie":"session"}"#));
    let pick =
        |t: &RouteTable, h: &HeaderMap, id: Option<&String>, ip: Option<&str>, rng: &mut Rng| {
            let attrs = RequestAttributes {
                headers: h,
                identity: id.and_then(|b| IdentityView::parse(b.as_bytes())),
                source_ip: ip.map(|s| s.parse().unwrap()),
                header_values: None,
            };
            t.cluster(&t.decide(&attrs, rng)).unwrap().to_string()
        };
    let mut clusters = HashSet::new();
    for s in 0..64 {
        let h = req("/", &[("cookie", &format!("a=1; session=s{s}"))]);
        let first = pick(&t, &h, None, None, &mut rng);
        assert_eq!(first, pick(&t, &h, None, None, &mut rng));
        clusters.insert(first);
    }
    assert_eq!(clusters.len(), 2);

    let t = table(&base.replace("STICKY", r#"{"claim":"org.id"}"#));
    assert!(t.needs_identity());
    let mut claims = serde_json::Map::new();
    claims.insert("org".into(), serde_json::json!({"id": 42}));
    let id = Identity {
        claims,
        ..Default::default()
    }
    .to_json();
    let h = req("/", &[]);
    let first = pick(&t, &h, Some(&id), None, &mut rng);
    for _ in 0..20 {
        assert_eq!(first, pick(&t, &h, Some(&id), None, &mut rng));
    }

    let t = table(&base.replace("STICKY", r#"{"sourceIp":true}"#));
    assert!(t.needs_source_ip());
    let first = pick(&t, &h, None, Some("10.1.2.3"), &mut rng);
    for _ in 0..20 {
        assert_eq!(first, pick(&t, &h, None, Some("10.1.2.3"), &mut rng));
        assert_eq!(first, pick(&t, &h, None, Some("::ffff:10.1.2.3"), &mut rng));
    }
}

#[test]
fn first_match_wins() {
    let t = table(
        r#"{"routes":[
          {"name":"a","match":[{"uri":{"prefix":"/api"}}],"route":[{"destination":"one"}]},
          {"name":"b","match":[{"uri":{"prefix":"/api/v2"}}],"route":[{"destination":"two"}]},
          {"name":"c","route":[{"destination":"three"}]}]}"#,
    );
    let (d, _) = run(&t, &req("/api/v2/x", &[]));
    assert_eq!(t.route_name(&d), Some("a"));
    let (d, _) = run(&t, &req("/other", &[]));
    assert_eq!(t.route_name(&d), Some("c"));
}

#[test]
fn no_route_strips_the_client_header() {
    let t =
        table(r#"{"routes":[{"match":[{"uri":{"prefix":"/a"}}],"route":[{"destination":"x"}]}]}"#);
    let h = req("/b", &[("x-wasmesh-cluster", "admin-backend")]);
    let (d, out) = run(&t, &h);
    assert_eq!(d, Decision::NoRoute);
    assert!(!out.contains("x-wasmesh-cluster"));
    assert_eq!(t.metric_names()[t.metric(&d)], NO_ROUTE_METRIC);
    let mut out = req("/b", &[]);
    assert!(!t.apply_request(&d, &req("/b", &[]), &mut out));
}

#[test]
fn rewrites_and_destination_headers() {
    let t = table(
        r#"{"clusterHeader":"x-route-to","routes":[
          {"name":"exact","match":[{"uri":{"exact":"/login"}}],"rewrite":{"uri":"/auth/login","authority":"auth.internal"},
           "route":[{"destination":"auth"}]},
          {"name":"hdr","match":[{"headers":{"x-a":{}}}],"rewrite":{"uri":"/v2/"},
           "headers":{"request":{"add":{"x-tag":"route"}},"response":{"set":{"x-served-by":"router"}}},
           "route":[{"destination":"svc","headers":{"request":{"set":{"x-dest":"svc","host":"svc.local"}},
                                                    "response":{"add":{"x-dest":"svc"}}}}]}]}"#,
    );
    let (d, out) = run(&t, &req("/login?next=/", &[]));
    assert_eq!(t.route_name(&d), Some("exact"));
    assert_eq!(out.path(), "/auth/login?next=/");
    assert_eq!(out.authority(), "auth.internal");
    assert_eq!(out.get("x-route-to"), Some("auth"));

    let (d, out) = run(&t, &req("/items/1", &[("x-a", "")]));
    assert_eq!(out.path(), "/v2/items/1");
    assert_eq!(out.get("x-tag"), Some("route"));
    assert_eq!(out.get("x-dest"), Some("svc"));
    assert_eq!(out.authority(), "svc.local");
    assert!(t.has_response_ops(&d));
    let mut resp = HeaderMap::from_slice(&[(":status", "200")]);
    t.apply_response(&d, &mut resp);
    assert_eq!(resp.get("x-served-by"), Some("router"));
    assert_eq!(resp.get("x-dest"), Some("svc"));
}

#[test]
fn direct_responses_and_redirects() {
    let t = table(
        r#"{"routes":[
          {"name":"gone","match":[{"uri":{"prefix":"/gone"}}],"directResponse":{"status":410,"body":{"string":"gone"}},
           "headers":{"response":{"set":{"x-why":"retired"}}}},
          {"name":"bin","match":[{"uri":{"prefix":"/bin"}}],"directResponse":{"status":200,"body":{"bytes":"aGk="}}},
          {"name":"moved","match":[{"uri":{"prefix":"/old"}}],"redirect":{"uri":"/new","redirectCode":308}}]}"#,
    );
    let h = req("/gone/1", &[]);
    let (d, _) = run(&t, &h);
    let lr = t.local_response(&d, &h).unwrap();
    assert_eq!(
        (lr.status, lr.body, lr.details),
        (410, &b"gone"[..], "direct_response")
    );
    assert_eq!(
        lr.headers,
        vec![("x-why".to_string(), "retired".to_string())]
    );
    assert_eq!(
        t.metric_names()[t.metric(&d)],
        "header_router.route.gone.direct_response"
    );
    let h = req("/bin", &[]);
    let (d, _) = run(&t, &h);
    assert_eq!(t.local_response(&d, &h).unwrap().body, b"hi");
    let h = req("/old?a=1", &[]);
    let (d, _) = run(&t, &h);
    let lr = t.local_response(&d, &h).unwrap();
    assert_eq!(lr.status, 308);
    assert_eq!(
        lr.headers,
        vec![(
            "location".to_string(),
            "http://shop.example/new?a=1".to_string()
        )]
    );
    assert_eq!(
        t.metric_names()[t.metric(&d)],
        "header_router.route.moved.redirect"
    );
}

#[test]
fn metric_names_are_defined_once() {
    let t = table(ISSUE_EXAMPLE);
    assert_eq!(
        t.metric_names(),
        [
            "header_router.no_route",
            "header_router.route.beta-users.reviews-v2",
            "header_router.route.canary.reviews-v1",
            "header_router.route.canary.reviews-v2",
            "header_router.route.rewrite.svc",
            "header_router.route.default.reviews-v1",
        ]
    );
}

#[test]
fn invalid_configurations_name_the_field() {
    let cases = [
        (r#"{"routes":[{"name":"a"}]}"#, "routes[0]"),
        (
            r#"{"routes":[{"route":[{"destination":"a"}],"redirect":{"uri":"/"}}]}"#,
            "routes[0]",
        ),
        (
            r#"{"routes":[{"name":"a.b","route":[{"destination":"a"}]}]}"#,
            "routes[0].name",
        ),
        (
            r#"{"routes":[{"name":"default","route":[{"destination":"a"}]}]}"#,
            "routes[0].name",
        ),
        (
            r#"{"routes":[{"name":"a","route":[{"destination":"x"}]},{"name":"a","route":[{"destination":"y"}]}]}"#,
            "routes[1].name",
        ),
        (
            r#"{"routes":[{"route":[{"destination":"a","weight":0},{"destination":"b"}]}]}"#,
            "routes[0].route",
        ),
        (
            r#"{"routes":[{"route":[{"destination":"a"},{"destination":"a","weight":1}]}]}"#,
            "routes[0].route[1].destination",
        ),
        (
            r#"{"routes":[{"route":[{"destination":"has space"}]}]}"#,
            "routes[0].route[0].destination",
        ),
        (
            r#"{"routes":[{"match":[{"uri":{"regex":"(a"}}],"route":[{"destination":"a"}]}]}"#,
            "routes[0].match[0].uri.regex",
        ),
        (
            r#"{"routes":[{"match":[{},{"headers":{"x":{"regex":"(a{1000}){1000}"}}}],"route":[{"destination":"a"}]}]}"#,
            "routes[0].match[1].headers.x.regex",
        ),
        (
            r#"{"routes":[{"directResponse":{"status":700}}]}"#,
            "routes[0].directResponse.status",
        ),
        (
            r#"{"routes":[{"directResponse":{"status":200,"body":{"bytes":"*"}}}]}"#,
            "routes[0].directResponse.body.bytes",
        ),
        (
            r#"{"routes":[{"directResponse":{"status":200},"rewrite":{"uri":"/"}}]}"#,
            "routes[0].rewrite",
        ),
        (
            r#"{"routes":[{"route":[{"destination":"a"}],"stickyBy":{}}]}"#,
            "routes[0].stickyBy",
        ),
        (
            r#"{"routes":[{"route":[{"destination":"a"}],"stickyBy":{"header":"a","cookie":"b"}}]}"#,
            "routes[0].stickyBy",
        ),
        (
            r#"{"routes":[{"route":[{"destination":"a"}],"headers":{"request":{"set":{"x-wasmesh-cluster":"b"}}}}]}"#,
            "routes[0].headers.request.set.x-wasmesh-cluster",
        ),
        (
            r#"{"routes":[{"route":[{"destination":"a","weight":2000000},{"destination":"b","weight":1}]}]}"#,
            "routes[0].route[0].weight",
        ),
        (r#"{"clusterHeader":":authority"}"#, "clusterHeader"),
        (r#"{"defaultDestination":""}"#, "defaultDestination"),
        (
            r#"{"routes":[{"route":[{"destination":"a"}],"bogus":1}]}"#,
            "routes[0].bogus",
        ),
        (
            r#"{"routes":[{"redirect":{"redirectCode":301}}]}"#,
            "routes[0].redirect",
        ),
    ];
    for (json, path) in cases {
        let e = refuse(json);
        assert_eq!(e.path, path, "{json}: {e}");
    }
}

#[test]
fn empty_configuration_routes_nothing() {
    let t = table("");
    assert_eq!(t.cluster_header(), "x-wasmesh-cluster");
    let (d, _) = run(&t, &req("/", &[]));
    assert_eq!(d, Decision::NoRoute);
}

mod example_config {
    use super::super::*;

    /// `examples/header-router/config.json` stays a valid configuration.
    #[test]
    fn example_config_compiles() {
        let text = include_str!("../../../../examples/header-router/config.json");
        let t = RouteTable::compile(&RouterConfig::parse(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(t.len(), 5);
    }
}
