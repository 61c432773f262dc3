//! Policy decisions, table-driven, through the same pipeline the filter runs.

mod common;

use common::*;
use rbac::authz::Verdict;
use serde_json::json;

#[test]
fn order_deny_then_allow_then_default() {
    let c = config(json!({"policies": [
        {"name": "allow-api", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]},
        {"name": "deny-secret", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/api/secret"]}}]}]},
        {"name": "audit-all", "action": "AUDIT", "rules": [{}]}
    ]}));
    assert_eq!(outcome(&c, &get("/api/items")), "allow[allow-api]");
    assert_eq!(outcome(&c, &get("/api/secret")), "deny[deny-secret]");
    assert_eq!(outcome(&c, &get("/other")), "deny[none]");

    // No ALLOW policy: allowed unless denied.
    let c = config(json!({"policies": [
        {"name": "deny-secret", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/secret"]}}]}]},
        {"name": "audit", "action": "AUDIT", "rules": [{}]}
    ]}));
    assert_eq!(outcome(&c, &get("/anything")), "allow");
    assert_eq!(outcome(&c, &get("/secret")), "deny[deny-secret]");

    // No policies at all.
    assert_eq!(outcome(&config(json!({})), &get("/x")), "allow");
}

#[test]
fn rules_and_empty_policies() {
    // A policy without rules matches nothing: an ALLOW without rules denies all
    // (Istio's allow-nothing), a DENY without rules denies nothing.
    let c = config(json!({"policies": [{"name": "allow-nothing"}]}));
    assert_eq!(outcome(&c, &get("/x")), "deny[none]");
    let c = config(json!({"policies": [{"name": "d", "action": "DENY", "rules": []}]}));
    assert_eq!(outcome(&c, &get("/x")), "allow");
    // `rules: [{}]` matches everything.
    let c = config(json!({"policies": [{"name": "allow-all", "rules": [{}]}]}));
    assert_eq!(outcome(&c, &get("/x")), "allow[allow-all]");
    let c = config(json!({"policies": [{"name": "deny-all", "action": "DENY", "rules": [{}]}]}));
    assert_eq!(outcome(&c, &get("/x")), "deny[deny-all]");
    // Rules are ORed; the first DENY in configuration order is named.
    let c = config(json!({"policies": [
        {"name": "d1", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/a"]}}]}, {"to": [{"operation": {"paths": ["/b"]}}]}]},
        {"name": "d2", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/b"]}}]}]}
    ]}));
    assert_eq!(outcome(&c, &get("/a")), "deny[d1]");
    assert_eq!(outcome(&c, &get("/b")), "deny[d1]");
    assert_eq!(outcome(&c, &get("/c")), "allow");
}

#[test]
fn from_to_when_and_or() {
    let c = one(
        "ALLOW",
        json!({
            "from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}, {"source": {"ipBlocks": ["192.168.0.0/16"]}}],
            "to": [{"operation": {"methods": ["GET"], "paths": ["/r/*"]}}, {"operation": {"methods": ["POST"], "paths": ["/w"]}}],
            "when": [{"key": "request.headers[x-a]", "values": ["1"]}, {"key": "request.headers[x-b]", "values": ["2"]}]
        }),
    );
    let ok = || {
        get("/r/1")
            .peer("10.1.1.1")
            .header("x-a", "1")
            .header("x-b", "2")
    };
    assert!(allowed(&c, &ok()));
    assert!(allowed(&c, &ok().peer("192.168.3.3")), "second source");
    assert!(!allowed(&c, &ok().peer("172.16.0.1")), "no source matches");
    assert!(allowed(&c, &{
        let mut r = ok().method("POST");
        r.path = "/w".into();
        r
    }));
    assert!(
        !allowed(&c, &ok().method("POST")),
        "fields in one operation are ANDed"
    );
    assert!(
        !allowed(&c, &get("/r/1").peer("10.1.1.1").header("x-a", "1")),
        "every when must hold"
    );
}

#[test]
fn source_fields() {
    let td = "spiffe://cluster.local/ns/prod/sa/web";
    let cases: Vec<(serde_json::Value, Req, bool)> = vec![
        (
            json!({"principals": ["cluster.local/ns/prod/sa/web"]}),
            get("/").spiffe(td),
            true,
        ),
        (
            json!({"principals": ["cluster.local/ns/prod/sa/web"]}),
            get("/").spiffe("spiffe://cluster.local/ns/prod/sa/api"),
            false,
        ),
        (
            json!({"principals": ["cluster.local/ns/prod/sa/web"]}),
            get("/"),
            false,
        ),
        (
            json!({"principals": ["cluster.local/ns/prod/*"]}),
            get("/").spiffe(td),
            true,
        ),
        (
            json!({"principals": ["*/sa/web"]}),
            get("/").spiffe(td),
            true,
        ),
        (json!({"principals": ["*"]}), get("/").spiffe(td), true),
        (json!({"principals": ["*"]}), get("/"), false),
        (
            json!({"notPrincipals": ["cluster.local/ns/prod/sa/web"]}),
            get("/").spiffe(td),
            false,
        ),
        (
            json!({"notPrincipals": ["cluster.local/ns/prod/sa/web"]}),
            get("/"),
            true,
        ),
        (json!({"notPrincipals": ["*"]}), get("/"), true),
        (json!({"namespaces": ["prod"]}), get("/").spiffe(td), true),
        (
            json!({"namespaces": ["prod"]}),
            get("/").spiffe("spiffe://cluster.local/ns/dev/sa/web"),
            false,
        ),
        (json!({"namespaces": ["pro*"]}), get("/").spiffe(td), true),
        (json!({"namespaces": ["prod"]}), get("/"), false),
        (json!({"notNamespaces": ["dev"]}), get("/").spiffe(td), true),
        (
            json!({"notNamespaces": ["prod"]}),
            get("/").spiffe(td),
            false,
        ),
        (
            json!({"requestPrincipals": ["https://idp/alice"]}),
            get("/").jwt("https://idp", "alice", json!({})),
            true,
        ),
        (
            json!({"requestPrincipals": ["https://idp/*"]}),
            get("/").jwt("https://idp", "bob", json!({})),
            true,
        ),
        (
            json!({"requestPrincipals": ["https://idp/*"]}),
            get("/").jwt("https://other", "bob", json!({})),
            false,
        ),
        (json!({"requestPrincipals": ["*"]}), get("/"), false),
        (
            json!({"requestPrincipals": ["*"]}),
            get("/").jwt("i", "s", json!({})),
            true,
        ),
        (json!({"notRequestPrincipals": ["*"]}), get("/"), true),
        (
            json!({"notRequestPrincipals": ["*"]}),
            get("/").jwt("i", "s", json!({})),
            false,
        ),
        (
            json!({"ipBlocks": ["10.0.0.0/8"]}),
            get("/").peer("10.2.3.4"),
            true,
        ),
        (
            json!({"ipBlocks": ["10.0.0.0/8"]}),
            get("/").peer("11.2.3.4"),
            false,
        ),
        (
            json!({"ipBlocks": ["10.0.0.7"]}),
            get("/").peer("10.0.0.7"),
            true,
        ),
        (
            json!({"ipBlocks": ["2001:db8::/32"]}),
            get("/").peer("2001:db8:1::9"),
            true,
        ),
        (
            json!({"ipBlocks": ["2001:db8::/32"]}),
            get("/").peer("2001:db9::9"),
            false,
        ),
        (
            json!({"ipBlocks": ["2001:db8::/32"]}),
            get("/").peer("10.0.0.1"),
            false,
        ),
        (
            json!({"ipBlocks": ["10.0.0.0/8"]}),
            get("/").peer("::ffff:10.0.0.1"),
            true,
        ),
        (
            json!({"notIpBlocks": ["10.0.0.0/8"]}),
            get("/").peer("10.0.0.1"),
            false,
        ),
        (
            json!({"notIpBlocks": ["10.0.0.0/8", "2001:db8::/32"]}),
            get("/").peer("8.8.8.8"),
            true,
        ),
    ];
    for (i, (source, req, want)) in cases.into_iter().enumerate() {
        let c = one("ALLOW", json!({"from": [{"source": source.clone()}]}));
        assert_eq!(allowed(&c, &req), want, "case {i}: {source}");
    }
}

#[test]
fn remote_ip_blocks_and_trusted_proxies() {
    let cfg = |n: u32| {
        config(json!({"numTrustedProxies": n, "policies": [
            {"name": "office", "rules": [{"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24", "2001:db8:aa::/48"]}}]}]}
        ]}))
    };
    let via = |xff: &str| get("/").peer("10.0.0.9").header("x-forwarded-for", xff);
    // Default 0: x-forwarded-for is ignored, the peer is the client.
    assert!(!allowed(&cfg(0), &via("203.0.113.5")));
    assert!(allowed(&cfg(0), &get("/").peer("203.0.113.5")));
    // One trusted proxy: the last entry.
    assert!(allowed(&cfg(1), &via("203.0.113.5")));
    assert!(
        allowed(&cfg(1), &via("6.6.6.6, 203.0.113.5")),
        "spoofed left entries are ignored"
    );
    assert!(
        !allowed(&cfg(1), &via("203.0.113.5, 6.6.6.6")),
        "the client cannot pick the entry"
    );
    assert!(allowed(&cfg(1), &via("2001:db8:aa::1")));
    // Two trusted proxies: second from the right.
    assert!(allowed(&cfg(2), &via("203.0.113.5, 10.1.1.1")));
    assert!(!allowed(&cfg(2), &via("10.1.1.1, 203.0.113.5")));
    // Too short a chain: the peer.
    assert!(!allowed(&cfg(2), &via("203.0.113.5")));
    // notRemoteIpBlocks in a DENY.
    let c = config(json!({"numTrustedProxies": 1, "policies": [
        {"name": "outside", "action": "DENY", "rules": [{"from": [{"source": {"notRemoteIpBlocks": ["203.0.113.0/24"]}}]}]}
    ]}));
    assert_eq!(outcome(&c, &via("203.0.113.5")), "allow");
    assert_eq!(outcome(&c, &via("8.8.8.8")), "deny[outside]");
    assert_eq!(outcome(&c, &via("203.0.113.5, 8.8.8.8")), "deny[outside]");
}

#[test]
fn operation_fields() {
    let cases: Vec<(serde_json::Value, Req, bool)> = vec![
        (json!({"hosts": ["api.example.com"]}), get("/"), true),
        (
            json!({"hosts": ["api.example.com"]}),
            get("/").host("API.Example.COM"),
            true,
        ),
        (
            json!({"hosts": ["api.example.com"]}),
            get("/").host("api.example.com:8443"),
            true,
        ),
        (
            json!({"hosts": ["api.example.com"]}),
            get("/").host("api.example.com."),
            true,
        ),
        (
            json!({"hosts": ["api.example.com"]}),
            get("/").host("api.example.org"),
            false,
        ),
        (
            json!({"hosts": ["api.example.com:8443"]}),
            get("/").host("api.example.com:8443"),
            true,
        ),
        (
            json!({"hosts": ["api.example.com:8443"]}),
            get("/").host("api.example.com"),
            false,
        ),
        (
            json!({"hosts": ["*.example.com"]}),
            get("/").host("a.example.com:80"),
            true,
        ),
        (
            json!({"hosts": ["*.example.com"]}),
            get("/").host("example.com"),
            false,
        ),
        (
            json!({"hosts": ["api.*"]}),
            get("/").host("api.example.com"),
            true,
        ),
        (json!({"hosts": ["*"]}), get("/").host("x"), true),
        (
            json!({"notHosts": ["admin.example.com"]}),
            get("/").host("ADMIN.example.com:443"),
            false,
        ),
        (
            json!({"notHosts": ["admin.example.com"]}),
            get("/").host("api.example.com"),
            true,
        ),
        (json!({"ports": ["8080"]}), get("/").port(8080), true),
        (json!({"ports": ["8080"]}), get("/").port(9090), false),
        (json!({"notPorts": ["8080"]}), get("/").port(9090), true),
        (json!({"methods": ["GET", "HEAD"]}), get("/"), true),
        (
            json!({"methods": ["GET", "HEAD"]}),
            get("/").method("POST"),
            false,
        ),
        (json!({"methods": ["*"]}), get("/").method("PATCH"), true),
        (
            json!({"notMethods": ["DELETE"]}),
            get("/").method("DELETE"),
            false,
        ),
        (json!({"paths": ["/api"]}), get("/api"), true),
        (json!({"paths": ["/api"]}), get("/api/"), false),
        (json!({"paths": ["/api"]}), get("/api?x=1"), true),
        (json!({"paths": ["/api/*"]}), get("/api/x/y"), true),
        (json!({"paths": ["/api/*"]}), get("/api"), false),
        (json!({"paths": ["*.png"]}), get("/img/a.png"), true),
        (json!({"paths": ["*"]}), get("/"), true),
        (
            json!({"paths": ["/api/{*}/items"]}),
            get("/api/v1/items"),
            true,
        ),
        (
            json!({"paths": ["/api/{*}/items"]}),
            get("/api/v1/x/items"),
            false,
        ),
        (json!({"paths": ["/api/{**}"]}), get("/api/a/b/c"), true),
        (json!({"paths": ["/api/{**}"]}), get("/api"), false),
        (json!({"notPaths": ["/health"]}), get("/health"), false),
        (json!({"notPaths": ["/health"]}), get("/x"), true),
    ];
    for (i, (op, req, want)) in cases.into_iter().enumerate() {
        let c = one("ALLOW", json!({"to": [{"operation": op.clone()}]}));
        assert_eq!(allowed(&c, &req), want, "case {i}: {op}");
    }
}

#[test]
fn when_keys() {
    let td = "spiffe://cluster.local/ns/prod/sa/web";
    let id = |r: Req| {
        r.jwt(
            "https://idp",
            "alice",
            json!({"groups": ["readers", "dev"], "aud": ["api", "web"], "azp": "spa",
                   "realm": {"roles": ["admin"], "level": 3}, "verified": true, "tier": "gold"}),
        )
    };
    let cases: Vec<(&str, serde_json::Value, Req, bool)> = vec![
        (
            "request.headers[x-user]",
            json!({"values": ["alice"]}),
            get("/").header("x-user", "alice"),
            true,
        ),
        (
            "request.headers[x-user]",
            json!({"values": ["alice"]}),
            get("/").header("X-User", "alice"),
            true,
        ),
        (
            "request.headers[x-user]",
            json!({"values": ["alice"]}),
            get("/").header("x-user", "bob"),
            false,
        ),
        (
            "request.headers[x-user]",
            json!({"values": ["ali*"]}),
            get("/").header("x-user", "alicia"),
            true,
        ),
        (
            "request.headers[x-user]",
            json!({"values": ["*"]}),
            get("/").header("x-user", ""),
            true,
        ),
        (
            "request.headers[x-user]",
            json!({"values": ["*"]}),
            get("/"),
            false,
        ),
        (
            "request.headers[x-user]",
            json!({"notValues": ["bob"]}),
            get("/"),
            true,
        ),
        (
            "request.headers[x-user]",
            json!({"notValues": ["bob"]}),
            get("/").header("x-user", "bob"),
            false,
        ),
        (
            "source.ip",
            json!({"values": ["10.0.0.0/8"]}),
            get("/").peer("10.9.9.9"),
            true,
        ),
        (
            "source.ip",
            json!({"values": ["2001:db8::1"]}),
            get("/").peer("2001:db8::1"),
            true,
        ),
        (
            "source.ip",
            json!({"notValues": ["10.0.0.0/8"]}),
            get("/").peer("10.9.9.9"),
            false,
        ),
        (
            "remote.ip",
            json!({"values": ["10.0.0.0/8"]}),
            get("/").peer("10.9.9.9"),
            true,
        ),
        (
            "source.namespace",
            json!({"values": ["prod"]}),
            get("/").spiffe(td),
            true,
        ),
        (
            "source.namespace",
            json!({"notValues": ["prod"]}),
            get("/").spiffe(td),
            false,
        ),
        (
            "source.principal",
            json!({"values": ["cluster.local/ns/prod/sa/web"]}),
            get("/").spiffe(td),
            true,
        ),
        (
            "source.principal",
            json!({"values": ["cluster.local/ns/prod/sa/api"]}),
            get("/").spiffe(td),
            false,
        ),
        (
            "request.auth.principal",
            json!({"values": ["https://idp/alice"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.principal",
            json!({"values": ["https://idp/bob"]}),
            id(get("/")),
            false,
        ),
        (
            "request.auth.audiences",
            json!({"values": ["web"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.audiences",
            json!({"values": ["other"]}),
            id(get("/")),
            false,
        ),
        (
            "request.auth.presenter",
            json!({"values": ["spa"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.presenter",
            json!({"values": ["*"]}),
            get("/").jwt("i", "s", json!({})),
            false,
        ),
        (
            "request.auth.claims[groups]",
            json!({"values": ["readers"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.claims[groups]",
            json!({"values": ["admins"]}),
            id(get("/")),
            false,
        ),
        (
            "request.auth.claims[groups]",
            json!({"notValues": ["dev"]}),
            id(get("/")),
            false,
        ),
        (
            "request.auth.claims[tier]",
            json!({"values": ["gold"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.claims[realm][roles]",
            json!({"values": ["admin"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.claims[realm][level]",
            json!({"values": ["3"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.claims[verified]",
            json!({"values": ["true"]}),
            id(get("/")),
            true,
        ),
        (
            "request.auth.claims[realm][missing]",
            json!({"values": ["*"]}),
            id(get("/")),
            false,
        ),
        (
            "request.auth.claims[groups]",
            json!({"values": ["readers"]}),
            get("/"),
            false,
        ),
        (
            "destination.ip",
            json!({"values": ["10.0.0.1"]}),
            get("/").dest("10.0.0.1"),
            true,
        ),
        (
            "destination.ip",
            json!({"values": ["fd00::/8"]}),
            get("/").dest("fd00::5"),
            true,
        ),
        (
            "destination.ip",
            json!({"values": ["10.0.0.1"]}),
            get("/").dest("10.0.0.2"),
            false,
        ),
        (
            "destination.port",
            json!({"values": ["443"]}),
            get("/").port(443),
            true,
        ),
        (
            "destination.port",
            json!({"notValues": ["443"]}),
            get("/").port(443),
            false,
        ),
        (
            "connection.sni",
            json!({"values": ["*.example.com"]}),
            get("/").sni("api.example.com"),
            true,
        ),
        (
            "connection.sni",
            json!({"values": ["*.example.com"]}),
            get("/"),
            false,
        ),
    ];
    for (i, (key, vals, req, want)) in cases.into_iter().enumerate() {
        let mut cond = vals.clone();
        cond["key"] = json!(key);
        let c = one("ALLOW", json!({"when": [cond]}));
        assert_eq!(allowed(&c, &req), want, "case {i}: {key} {vals}");
    }
}

#[test]
fn missing_connection_attributes_fail_safe() {
    // The host did not report the port: a DENY about ports matches, an ALLOW does not.
    let deny = one("DENY", json!({"to": [{"operation": {"ports": ["8080"]}}]}));
    assert_eq!(outcome(&deny, &get("/")), "deny[p]");
    assert_eq!(outcome(&deny, &get("/").port(9090)), "allow");
    let allow = one("ALLOW", json!({"to": [{"operation": {"ports": ["8080"]}}]}));
    assert_eq!(outcome(&allow, &get("/")), "deny[none]");
    let allow_not = one(
        "ALLOW",
        json!({"to": [{"operation": {"notPorts": ["8080"]}}]}),
    );
    assert_eq!(outcome(&allow_not, &get("/")), "deny[none]");
    let deny_ip = one(
        "DENY",
        json!({"from": [{"source": {"notIpBlocks": ["10.0.0.0/8"]}}]}),
    );
    assert_eq!(outcome(&deny_ip, &get("/")), "deny[p]");
}

#[test]
fn dry_run_is_reported_not_enforced() {
    let c = config(json!({"policies": [
        {"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]},
        {"name": "try-deny-beta", "action": "DENY", "dryRun": true, "rules": [{"to": [{"operation": {"paths": ["/beta"]}}]}]},
        {"name": "try-allow-api", "action": "ALLOW", "dryRun": true, "rules": [{"to": [{"operation": {"paths": ["/api/*"]}}]}]}
    ]}));
    let shadow = |path: &str| match verdict(&c, &get(path)) {
        Verdict::Checked { decision, .. } => (
            decision.enforced.allowed,
            decision.shadow.map(|s| {
                (
                    s.allowed,
                    s.by.map(|m| c.engine.policies()[m.policy].name().to_string()),
                )
            }),
        ),
        v => panic!("{v:?}"),
    };
    assert_eq!(
        shadow("/beta"),
        (true, Some((false, Some("try-deny-beta".into()))))
    );
    assert_eq!(
        shadow("/api/x"),
        (true, Some((true, Some("try-allow-api".into()))))
    );
    assert_eq!(
        shadow("/other"),
        (true, Some((false, None))),
        "enforcing the dry-run ALLOW would deny"
    );
    assert_eq!(
        shadow("/admin"),
        (false, Some((false, Some("deny-admin".into()))))
    );

    // Without dry-run policies there is no shadow result.
    let c = one("DENY", json!({}));
    match verdict(&c, &get("/")) {
        Verdict::Checked { decision, .. } => assert_eq!(decision.shadow, None),
        v => panic!("{v:?}"),
    }
}

#[test]
fn audit_marks_only() {
    let c = config(json!({"policies": [
        {"name": "audit-writes", "action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST", "PUT"]}}]}]},
        {"name": "audit-all", "action": "AUDIT", "rules": [{}]}
    ]}));
    for (method, first) in [("POST", "audit-writes"), ("GET", "audit-all")] {
        match verdict(&c, &get("/").method(method)) {
            Verdict::Checked { decision, .. } => {
                assert!(decision.enforced.allowed);
                let a = decision.audit.expect("audited");
                assert_eq!(c.engine.policies()[a.policy].name(), first);
            }
            v => panic!("{v:?}"),
        }
    }
}

#[test]
fn per_policy_matches_are_all_reported() {
    let c = config(json!({"policies": [
        {"name": "a", "action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/x"]}}]}, {}]},
        {"name": "b", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/y"]}}]}]},
        {"name": "c", "action": "AUDIT", "rules": [{}]}
    ]}));
    match verdict(&c, &get("/z")) {
        Verdict::Checked { decision, .. } => {
            let m: Vec<(usize, usize)> = decision
                .matched
                .iter()
                .map(|m| (m.policy, m.rule))
                .collect();
            assert_eq!(m, vec![(0, 1), (2, 0)]);
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn bad_requests() {
    let c = config(json!({}));
    for (method, path) in [
        ("get", "/"),
        ("", "/"),
        ("G ET", "/"),
        ("GET", "/a%2Fb"),
        ("GET", "/a%00"),
        ("GET", "/a%zz"),
        ("GET", "relative"),
        ("GET", ""),
        ("GET", "/a b"),
    ] {
        let r = get(path).method(method);
        assert_eq!(outcome(&c, &r), "400", "{method} {path:?}");
    }
    let mut dup = get("/");
    dup.headers.push((":path".into(), "/admin".into()));
    assert_eq!(outcome(&c, &dup), "400", "two :path headers");
    let mut dup = get("/");
    dup.headers.push((":method".into(), "GET".into()));
    assert_eq!(outcome(&c, &dup), "400", "two :method headers");
    // CONNECT has no path.
    let r = get("").method("CONNECT");
    let h = {
        let mut pairs: Vec<(String, String)> = vec![
            (":method".into(), "CONNECT".into()),
            (":authority".into(), "x:443".into()),
        ];
        pairs.extend(r.headers.clone());
        wasmesh_common::HeaderMap::from_pairs(pairs)
    };
    assert!(matches!(
        rbac::authz::authorize(&c, &rbac::headers::Headers::from_map(&h), b"", &r.conn),
        Verdict::Checked { .. }
    ));
}

#[test]
fn forwarded_path_is_the_normalised_one() {
    let c = config(json!({}));
    for (raw, fwd) in [
        ("/a/../b?x=1", "/b?x=1"),
        ("//a//b", "/a/b"),
        ("/%61pi", "/api"),
        ("/a\\b", "/a/b"),
        ("/a#frag", "/a"),
        ("/same?q", "/same?q"),
    ] {
        match verdict(&c, &get(raw)) {
            Verdict::Checked { path, .. } => assert_eq!(path.forwarded(), fwd, "{raw}"),
            v => panic!("{raw}: {v:?}"),
        }
    }
    let base = config(json!({"pathNormalization": "BASE"}));
    match verdict(&base, &get("//a")) {
        Verdict::Checked { path, .. } => assert_eq!(path.forwarded(), "//a"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn arbitrary_input_never_panics() {
    use wasmesh_common::sampling::Rng;
    let c = config(json!({
        "numTrustedProxies": 2,
        "policies": [
            {"name": "d", "action": "DENY", "rules": [{
                "to": [{"operation": {"paths": ["/a/{*}/b", "/x/{**}", "*.png", "/p*"], "hosts": ["*.example.com"], "notMethods": ["GET"]}}],
                "when": [{"key": "request.headers[x-h]", "notValues": ["v*"]}, {"key": "remote.ip", "values": ["10.0.0.0/8", "::/0"]}]
            }]},
            {"name": "a", "rules": [{"from": [{"source": {"principals": ["*"], "namespaces": ["n*"], "requestPrincipals": ["*/s"]}}],
                                     "when": [{"key": "request.auth.claims[a][b]", "values": ["1"]}]}]},
            {"name": "t", "action": "AUDIT", "dryRun": true, "rules": [{}]}
        ]
    }));
    let pieces: &[&[u8]] = &[
        b"/",
        b".",
        b"..",
        b"%",
        b"%2",
        b"%2e",
        b"%2F",
        b"%5c",
        b"%00",
        b"\\",
        b"a",
        b"?",
        b"#",
        b";",
        b" ",
        b"\xff",
        b"\xc3\xa9",
        b"{*}",
        b"*",
        b"//",
        b"\x00",
        b"\x7f",
    ];
    let mut rng = Rng::with_seed(7);
    for _ in 0..20_000 {
        let mut path = Vec::new();
        for _ in 0..rng.below(12) {
            path.extend_from_slice(pieces[rng.below(pieces.len() as u32) as usize]);
        }
        let text = String::from_utf8_lossy(&path).into_owned();
        let mut r = get(&text)
            .host(["A.example.com:1", "", "[::1]:x", "x.", "\u{e9}"][rng.below(5) as usize])
            .header("x-h", ["v1", "w", ""][rng.below(3) as usize])
            .header(
                "x-forwarded-for",
                ["1.2.3.4, ::1", "junk", "", "10.0.0.1"][rng.below(4) as usize],
            );
        if rng.below(2) == 0 {
            r = r
                .header("x-h", "again")
                .spiffe("spiffe://td/ns/n1/sa/s")
                .peer("10.1.1.1");
        }
        if rng.below(2) == 0 {
            r = r.jwt("i", "s", json!({"a": {"b": [1, "1", null, {"x": 1}]}}));
        }
        let map = r.header_map();
        let headers = rbac::headers::Headers::from_map(&map);
        let _ = rbac::authz::authorize(&c, &headers, &path, &r.conn);
        // The same bytes as a serialized header map.
        let _ = rbac::headers::Headers::parse(&path);
    }
}
