use super::*;

fn err(json: &str) -> ConfigError {
    match Config::from_json(json.as_bytes()) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e,
    }
}

#[test]
fn nulls_read_as_absent() {
    let c = Config::from_json(
        br#"{"policies":[{"name":"p","action":null,"dryRun":null,"rules":[{"from":null,"to":[{"operation":{"paths":["/a"],"hosts":null}}],"when":null}]}],
            "denyResponse":{"status":null,"body":null,"headers":null},"pathNormalization":null,"numTrustedProxies":null,"dryRunHeader":null}"#,
    )
    .unwrap();
    assert_eq!(c.deny.status, 403);
    assert_eq!(c.num_trusted_proxies, 0);
    assert_eq!(c.path_normalization, PathNormalization::MergeSlashes);
    assert!(Config::from_json(b"").is_ok());
    assert!(Config::from_json(br#"{"denyResponse":null}"#).is_ok());
    let e = err(r#"{"numTrustedProxies":65}"#);
    assert_eq!(
        e.to_string(),
        "numTrustedProxies: invalid value: integer `65`, expected at most 64"
    );
    let e = err(r#"{"numTrustedProxies":-1}"#);
    assert!(e.message.contains("expected a non-negative integer"), "{e}");
    let e = err(r#"{"numTrustedProxies":1.5}"#);
    assert!(e.message.contains("invalid type: floating point"), "{e}");
    let e = err(r#"{"policies":[{"rules":[]}]}"#);
    assert_eq!(e.to_string(), "policies[0]: missing field `name`");
    let e = err(r#"{"policies":[{"name":"p","rules":[{"when":[{"values":["a"]}]}]}]}"#);
    assert_eq!(
        e.to_string(),
        "policies[0].rules[0].when[0]: missing field `key`"
    );
    let e = err(r#"{"policies":[3]}"#);
    assert_eq!(
        e.to_string(),
        "policies[0]: invalid type: integer `3`, expected a map"
    );
}

#[test]
fn example_from_the_issue_compiles() {
    let json = r#"{
      "policies": [
        {"name": "deny-admin", "action": "DENY",
         "rules": [{"to": [{"operation": {"paths": ["/admin", "/admin/*"]}}]}]},
        {"name": "readers", "action": "ALLOW",
         "rules": [{
           "from": [{"source": {"requestPrincipals": ["https://idp.example.com/*"], "namespaces": ["prod"]}}],
           "to":   [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/api/*"], "hosts": ["api.example.com"]}}],
           "when": [{"key": "request.auth.claims[groups]", "values": ["readers"]}]
         }]},
        {"name": "audit-writes", "action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
        {"name": "try-new", "action": "ALLOW", "dryRun": true, "rules": [{}]}
      ],
      "denyResponse": {"status": 403, "body": "RBAC: access denied", "headers": {}}
    }"#;
    let c = Config::from_json(json.as_bytes()).unwrap();
    assert_eq!(c.engine.policies().len(), 4);
    let n = c.engine.needs();
    assert!(n.identity && n.peer_uri && n.host);
    assert!(!n.peer_ip && !n.remote_ip && !n.sni && !n.destination_port);
    assert_eq!(c.deny.status, 403);
    assert_eq!(c.path_normalization, PathNormalization::MergeSlashes);
}

#[test]
fn empty_config_is_allow_all() {
    let c = Config::from_json(b"").unwrap();
    assert!(c.engine.policies().is_empty());
    assert_eq!(c.deny.body, "RBAC: access denied");
    assert_eq!(c.dry_run_header, None);
}

#[test]
fn refused_with_field_paths() {
    let cases: &[(&str, &str, &str)] = &[
        // bad CIDR
        (
            r#"{"policies":[{"name":"a","rules":[{"from":[{"source":{"ipBlocks":["10.0.0.0/8","10.0.0.300"]}}]}]}]}"#,
            "policies[0].rules[0].from[0].source.ipBlocks[1]",
            "invalid IP address",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"from":[{"source":{"notRemoteIpBlocks":["2001:db8::/129"]}}]}]}]}"#,
            "policies[0].rules[0].from[0].source.notRemoteIpBlocks[0]",
            "prefix length",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"when":[{"key":"source.ip","values":["nope"]}]}]}]}"#,
            "policies[0].rules[0].when[0].values[0]",
            "invalid IP address",
        ),
        // unknown action
        (
            r#"{"policies":[{"name":"a","action":"CUSTOM"}]}"#,
            "policies[0].action",
            "unknown variant `CUSTOM`",
        ),
        (
            r#"{"policies":[{"name":"a","action":"allow"}]}"#,
            "policies[0].action",
            "unknown variant `allow`",
        ),
        // unknown key
        (
            r#"{"policies":[{"name":"a","rules":[{},{"when":[{"key":"request.header[x]","values":["v"]}]}]}]}"#,
            "policies[0].rules[1].when[0].key",
            "unknown key `request.header[x]`",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"when":[{"key":"experimental.envoy.filters.x[y]","values":["v"]}]}]}]}"#,
            "policies[0].rules[0].when[0].key",
            "unknown key",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"when":[{"key":"request.headers[]","values":["v"]}]}]}]}"#,
            "policies[0].rules[0].when[0].key",
            "bad key",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"when":[{"key":"request.auth.claims","values":["v"]}]}]}]}"#,
            "policies[0].rules[0].when[0].key",
            "bad key",
        ),
        // empty values
        (
            r#"{"policies":[{"name":"a","rules":[{"when":[{"key":"source.ip","values":[]}]}]}]}"#,
            "policies[0].rules[0].when[0]",
            "at least one of `values` or `notValues`",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"when":[{"key":"request.headers[x]","values":["ok",""]}]}]}]}"#,
            "policies[0].rules[0].when[0].values[1]",
            "empty value",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{"operation":{"paths":[""]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation.paths[0]",
            "empty value",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"from":[]}]}]}"#,
            "policies[0].rules[0].from",
            "must not be empty",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{}]}]}]}"#,
            "policies[0].rules[0].to[0].operation",
            "must be set",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"from":[{"source":{}}]}]}]}"#,
            "policies[0].rules[0].from[0].source",
            "must not be empty",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{"operation":{"paths":[]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation",
            "must not be empty",
        ),
        // ports
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{"operation":{"ports":["80","http"]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation.ports[1]",
            "bad port",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"when":[{"key":"destination.port","notValues":["65536"]}]}]}]}"#,
            "policies[0].rules[0].when[0].notValues[0]",
            "bad port",
        ),
        // methods
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{"operation":{"methods":["get"]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation.methods[0]",
            "upper-case",
        ),
        // templates and stars
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{"operation":{"notPaths":["/a/{**}/{*}"]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation.notPaths[0]",
            "invalid path template",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{"operation":{"paths":["/api/*/admin"]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation.paths[0]",
            "only allowed",
        ),
        (
            r#"{"policies":[{"name":"a","rules":[{"to":[{"operation":{"hosts":["api.*.com"]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation.hosts[0]",
            "only allowed",
        ),
        // unknown fields
        (
            r#"{"policies":[{"name":"a","rules":[{"from":[{"source":{"serviceAccounts":["x"]}}]}]}]}"#,
            "policies[0].rules[0].from[0].source.serviceAccounts",
            "unknown field `serviceAccounts`",
        ),
        (
            r#"{"policies":[],"bogus":1}"#,
            "bogus",
            "unknown field `bogus`",
        ),
        // names
        (
            r#"{"policies":[{"name":""}]}"#,
            "policies[0].name",
            "must not be empty",
        ),
        (
            r#"{"policies":[{"name":"a"},{"name":"b"},{"name":"a"}]}"#,
            "policies[2].name",
            "duplicate",
        ),
        // A repeated key never silently keeps one of its values (a DENY
        // that became an ALLOW).
        (
            r#"{"policies":[{"name":"p","action":"DENY","action":"ALLOW","rules":[{}]}]}"#,
            "policies[0]",
            "duplicate field `action`",
        ),
        (
            r#"{"policies":[],"policies":[{"name":"p"}]}"#,
            "",
            "duplicate field `policies`",
        ),
        (
            r#"{"policies":[{"name":"p","rules":[{"to":[{"operation":{"paths":["/a"],"paths":["/b"]}}]}]}]}"#,
            "policies[0].rules[0].to[0].operation",
            "duplicate field `paths`",
        ),
        (
            r#"{"denyResponse":{"headers":{"location":"/a","location":"/b"}}}"#,
            "denyResponse.headers",
            "duplicate key `location`",
        ),
        (
            r#"{"policies":[{"name":"a b"}]}"#,
            "policies[0].name",
            "whitespace",
        ),
        // deny response and settings
        (
            r#"{"denyResponse":{"status":99}}"#,
            "denyResponse.status",
            "not an HTTP status",
        ),
        (
            r#"{"denyResponse":{"headers":{"bad header":"x"}}}"#,
            "denyResponse.headers.bad header",
            "not a valid header name",
        ),
        (
            r#"{"denyResponse":{"headers":{"x-a":"a\r\nb"}}}"#,
            "denyResponse.headers.x-a",
            "CR, LF",
        ),
        (
            r#"{"dryRunHeader":"x y"}"#,
            "dryRunHeader",
            "not a valid header name",
        ),
        (
            r#"{"pathNormalization":"NONE"}"#,
            "pathNormalization",
            "unknown variant `NONE`",
        ),
        (
            r#"{"numTrustedProxies":-1}"#,
            "numTrustedProxies",
            "invalid value",
        ),
    ];
    for (json, path, msg) in cases {
        let e = err(json);
        assert_eq!(e.path, *path, "{json}: {e}");
        assert!(e.message.contains(msg), "{json}: {e}");
    }
}

#[test]
fn every_when_key_compiles() {
    let keys = [
        ("request.headers[x-user]", "alice"),
        ("source.ip", "10.0.0.0/8"),
        ("remote.ip", "2001:db8::/32"),
        ("source.namespace", "prod"),
        ("source.principal", "cluster.local/ns/prod/sa/web"),
        ("request.auth.principal", "https://idp/alice"),
        ("request.auth.audiences", "api"),
        ("request.auth.presenter", "web-app"),
        ("request.auth.claims[groups]", "readers"),
        ("request.auth.claims[realm_access][roles]", "admin"),
        ("destination.ip", "10.0.0.1"),
        ("destination.port", "8080"),
        ("connection.sni", "*.example.com"),
    ];
    for (key, value) in keys {
        let json = format!(
            r#"{{"policies":[{{"name":"p","rules":[{{"when":[{{"key":"{key}","values":["{value}"],"notValues":["{value}"]}}]}}]}}]}}"#
        );
        let c = Config::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(c.engine.policies()[0].rules[0].when.len(), 2, "{key}");
    }
}
