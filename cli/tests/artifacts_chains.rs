//! The manifests as filter chains: the five plugin configurations of
//! `manifests/envoy/envoy.yaml` and of `manifests/istio/` run together in the
//! harness, in the order Envoy and Istio put them, with the JWKS endpoint
//! answering the demo identity provider's key set and requests carrying the
//! demo tokens (`manifests/envoy/demo-idp/`). What `docs/deploy.md` says
//! each request gets is what these tests check.

use std::path::{Path, PathBuf};
use wasmesh::properties::PropertyMap;
use wasmesh::scenario::Observed;
use wasmesh::scenario::{ensure_artifacts, workspace_root, RunOptions, Scenario, Session};
use wasmesh_cli::validate::{targets_from_file, Target};

/// 2026-06-01: after the demo tokens' `iat`, after `expired.jwt`'s `exp`.
const NOW: i64 = 1_780_272_000;

fn root() -> PathBuf {
    workspace_root().expect("workspace root")
}

fn token(name: &str) -> String {
    std::fs::read_to_string(
        root()
            .join("manifests/envoy/demo-idp")
            .join(format!("{name}.jwt")),
    )
    .unwrap()
    .trim()
    .to_string()
}

fn jwks() -> String {
    std::fs::read_to_string(root().join("manifests/envoy/demo-idp/.well-known/jwks.json")).unwrap()
}

/// A scenario whose chain is `targets` (in order), with `routes` and the
/// JWKS answered on `jwks_cluster`.
fn session(targets: &[Target], routes: serde_yaml::Value, jwks_cluster: &str) -> Session {
    let chain: Vec<serde_yaml::Value> = targets
        .iter()
        .map(|t| {
            let mut m = serde_yaml::Mapping::new();
            m.insert(
                "name".into(),
                t.wasm
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .as_ref()
                    .into(),
            );
            m.insert("root_id".into(), t.root_id.clone().into());
            m.insert("wasm".into(), t.wasm.display().to_string().into());
            m.insert(
                "config".into(),
                String::from_utf8(t.configuration.clone()).unwrap().into(),
            );
            serde_yaml::Value::Mapping(m)
        })
        .collect();
    let mut clusters = serde_yaml::Mapping::new();
    clusters.insert(
        jwks_cluster.into(),
        serde_yaml::to_value(serde_json::json!({"responses": [
            {"status": 200, "headers": {"content-type": "application/json"}, "body": jwks()}
        ]}))
        .unwrap(),
    );
    let doc = serde_yaml::to_value(serde_json::json!({"now": NOW})).unwrap();
    let mut doc = doc.as_mapping().unwrap().clone();
    doc.insert("chain".into(), serde_yaml::Value::Sequence(chain));
    doc.insert("clusters".into(), serde_yaml::Value::Mapping(clusters));
    doc.insert("routes".into(), routes);
    let text = serde_yaml::to_string(&doc).unwrap();
    let s = Scenario::from_yaml_str(&text, Path::new(".")).expect("scenario");
    Session::new(&s.spec, &s.base_dir, &RunOptions::default()).expect("chain starts")
}

fn get(s: &mut Session, method: &str, path: &str, headers: &[(&str, &str)]) -> Observed {
    let mut h = serde_yaml::Mapping::new();
    for (k, v) in headers {
        h.insert((*k).into(), (*v).into());
    }
    let req = wasmesh::scenario::model::RequestSpec {
        method: Some(method.into()),
        path: Some(path.into()),
        authority: Some("api.example.com".into()),
        headers: h,
        ..Default::default()
    };
    s.request(None, &req, PropertyMap::new(), None)
        .expect("request")
}

fn body(o: &Observed) -> String {
    String::from_utf8_lossy(&o.response_body).into_owned()
}

fn upstream_header(o: &Observed, name: &str) -> Option<String> {
    o.upstream_headers.as_ref().and_then(|h| h.get_str(name))
}

#[test]
fn the_envoy_bootstrap_chain_behaves_as_documented() {
    ensure_artifacts().expect("artifacts");
    let targets = targets_from_file(
        None,
        &root().join("manifests/envoy/envoy.yaml"),
        &RunOptions::default(),
    )
    .unwrap();
    // The bootstrap's route table: the cluster_header route, then the default.
    let routes = serde_yaml::from_str(
        "- {prefix: /, headers: {x-wasmesh-cluster: null}, cluster_header: x-wasmesh-cluster}\n- {prefix: /, cluster: reviews-v1}\n",
    )
    .unwrap();
    let mut s = session(&targets, routes, "idp");
    let alice = format!("Bearer {}", token("alice"));
    let bob = format!("Bearer {}", token("bob"));

    let o = get(&mut s, "GET", "/api/reviews/1", &[]);
    assert_eq!(
        (o.status(), body(&o).as_str()),
        (Some(401), "Jwt is missing")
    );
    let o = get(
        &mut s,
        "GET",
        "/api/reviews/1",
        &[("authorization", &format!("Bearer {}", token("expired")))],
    );
    assert_eq!(
        (o.status(), body(&o).as_str()),
        (Some(401), "Jwt is expired")
    );

    // alice: a reader, on the canary, always the same version.
    let first = get(
        &mut s,
        "GET",
        "/api/reviews/1",
        &[("authorization", &alice)],
    );
    assert_eq!(first.status(), Some(200), "{first:?}");
    let version = first.upstream_cluster.clone().unwrap();
    assert!(
        version == "reviews-v1" || version == "reviews-v2",
        "{version}"
    );
    assert_eq!(upstream_header(&first, "x-user").as_deref(), Some("alice"));
    assert_eq!(upstream_header(&first, "x-tenant").as_deref(), Some("acme"));
    assert_eq!(
        upstream_header(&first, "authorization"),
        None,
        "the token is not forwarded"
    );
    for _ in 0..5 {
        let o = get(
            &mut s,
            "GET",
            "/api/reviews/2",
            &[("authorization", &alice)],
        );
        assert_eq!(o.upstream_cluster.as_deref(), Some(version.as_str()));
    }
    // A client cannot pick the cluster.
    let o = get(
        &mut s,
        "GET",
        "/api/reviews/1",
        &[
            ("authorization", &alice),
            ("x-wasmesh-cluster", "reviews-v3"),
        ],
    );
    assert_eq!(o.upstream_cluster.as_deref(), Some(version.as_str()));
    // Readers cannot write.
    let o = get(&mut s, "POST", "/api/reviews", &[("authorization", &alice)]);
    assert_eq!(
        (o.status(), body(&o).as_str()),
        (Some(403), "RBAC: access denied")
    );

    // bob: a writer and beta tester -> reviews-v3, may POST.
    let o = get(&mut s, "GET", "/api/reviews/1", &[("authorization", &bob)]);
    assert_eq!(o.upstream_cluster.as_deref(), Some("reviews-v3"));
    assert_eq!(upstream_header(&o, "x-variant").as_deref(), Some("beta"));
    let o = get(&mut s, "POST", "/api/reviews", &[("authorization", &bob)]);
    assert_eq!(o.status(), Some(200), "{o:?}");

    // /admin is denied to everyone, /v1 is retired, /healthz is open.
    let o = get(&mut s, "GET", "/admin", &[("authorization", &bob)]);
    assert_eq!(o.status(), Some(403));
    let o = get(&mut s, "GET", "/%61dmin/../admin/", &[]);
    assert_eq!(o.status(), Some(403), "normalised before matching");
    let o = get(&mut s, "GET", "/v1/anything", &[]);
    assert_eq!(
        (o.status(), body(&o).as_str()),
        (Some(410), "API v1 is retired; use /api")
    );
    let o = get(&mut s, "GET", "/healthz", &[]);
    assert_eq!(
        (o.status(), o.upstream_cluster.as_deref()),
        (Some(200), Some("reviews-v1"))
    );

    // Chaos: header-controlled abort, and the configured delay.
    let o = get(
        &mut s,
        "GET",
        "/api/reviews/1",
        &[
            ("authorization", &alice),
            ("x-envoy-fault-abort-request", "503"),
        ],
    );
    assert_eq!(
        (o.status(), body(&o).as_str()),
        (Some(503), "fault filter abort")
    );
    let o = get(
        &mut s,
        "GET",
        "/api/reviews/1",
        &[("authorization", &alice), ("x-chaos", "delay")],
    );
    assert_eq!(o.status(), Some(200));
    assert_eq!(
        o.completed_ns.unwrap() - o.started_ns,
        1_000_000_000,
        "1 s delay"
    );
    // The same request without a token is refused at once, not delayed.
    let o = get(&mut s, "GET", "/api/reviews/1", &[("x-chaos", "delay")]);
    assert_eq!(o.status(), Some(401));
    assert_eq!(o.completed_ns.unwrap() - o.started_ns, 0);

    // Metrics count all of it, with the labels the stats_tags extract.
    let h = s.host.clone();
    let value = |name: &str| h.metric(name).map(|m| m.value).unwrap_or(0);
    let alice_ok = format!(
        "code=.=200;.;method=.=GET;.;route=.=/api/reviews/{{id}};.;tenant=.=acme;.;upstream=.={version};.;api_requests_total"
    );
    assert!(
        value(&alice_ok) >= 7,
        "{:?}",
        h.metrics().iter().map(|m| &m.name).collect::<Vec<_>>()
    );
    // Refused requests are counted with their status (the route's cluster is
    // known before the filters run, as in Envoy).
    assert_eq!(
        value("code=.=401;.;method=.=GET;.;route=.=/api/reviews/{id};.;tenant=.=unknown;.;upstream=.=reviews-v1;.;api_requests_total"),
        3
    );
    assert!(value("jwt_authn.allowed") > 0 && value("rbac.denied") >= 3);
    assert_eq!(value("fault.aborts_injected"), 1);
    assert_eq!(value("fault.delays_injected"), 1);
    assert_eq!(
        value("header_router.route.beta.reviews-v3"),
        2,
        "bob's GET and POST"
    );
}

#[test]
fn the_istio_plugins_behave_as_documented() {
    ensure_artifacts().expect("artifacts");
    // The WasmPlugins in Istio's order: phase, then descending priority.
    let mut plugins: Vec<(i64, i64, Target)> = Vec::new();
    for f in wasmesh::scenario::discover(&[root().join("manifests/istio")]) {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let d: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            if d["kind"] != "WasmPlugin" {
                continue;
            }
            let phase = match d["spec"]["phase"].as_str() {
                Some("AUTHN") => 1,
                Some("AUTHZ") => 2,
                Some("STATS") => 3,
                _ => 4,
            };
            let prio = -d["spec"]["priority"].as_i64().unwrap_or(0);
            let one = serde_yaml::to_string(&d).unwrap();
            let t = wasmesh_cli::validate::targets_from_bytes(
                None,
                one.as_bytes(),
                &f.display().to_string(),
                Path::new("."),
                &RunOptions::default(),
            )
            .unwrap()
            .remove(0);
            plugins.push((phase, prio, t));
        }
    }
    plugins.sort_by_key(|p| (p.0, p.1));
    let targets: Vec<Target> = plugins.into_iter().map(|p| p.2).collect();
    assert_eq!(targets.len(), 5);
    // The gateway's routes: the EnvoyFilter's cluster_header route first,
    // then the VirtualService (reviews v1).
    let v1 = "outbound|9080|v1|reviews.bookinfo.svc.cluster.local";
    let routes = serde_yaml::from_str(&format!(
        "- {{prefix: /, headers: {{x-wasmesh-cluster: null}}, cluster_header: x-wasmesh-cluster}}\n- {{prefix: /, cluster: '{v1}'}}\n"
    ))
    .unwrap();
    let mut s = session(&targets, routes, "outbound|443||idp.example.com");
    let alice = format!("Bearer {}", token("alice"));
    let bob = format!("Bearer {}", token("bob"));

    let o = get(&mut s, "GET", "/api/reviews/0", &[]);
    assert_eq!(
        (o.status(), body(&o).as_str()),
        (Some(401), "Jwt is missing")
    );
    // The JWKS was fetched through Istio's cluster for the IdP.
    assert!(s
        .calls
        .iter()
        .any(|(c, _, p)| c == "outbound|443||idp.example.com" && p == "/.well-known/jwks.json"));

    let o = get(
        &mut s,
        "GET",
        "/api/reviews/0",
        &[("authorization", &alice)],
    );
    assert_eq!(o.status(), Some(200), "{o:?}");
    let cluster = o.upstream_cluster.clone().unwrap();
    assert!(
        cluster == v1 || cluster == "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
        "{cluster}"
    );
    let path = o
        .upstream_headers
        .as_ref()
        .unwrap()
        .get_str(":path")
        .unwrap();
    assert_eq!(path, "/reviews/0", "rewritten for Bookinfo's reviews");
    let o = get(&mut s, "GET", "/api/reviews/0", &[("authorization", &bob)]);
    assert_eq!(
        o.upstream_cluster.as_deref(),
        Some("outbound|9080|v3|reviews.bookinfo.svc.cluster.local")
    );
    let o = get(
        &mut s,
        "POST",
        "/api/reviews/0",
        &[("authorization", &alice)],
    );
    assert_eq!(o.status(), Some(403));
    let o = get(&mut s, "GET", "/admin", &[]);
    assert_eq!(o.status(), Some(403));
    // No header-controlled faults at the edge.
    let o = get(
        &mut s,
        "GET",
        "/api/reviews/0",
        &[
            ("authorization", &alice),
            ("x-envoy-fault-abort-request", "503"),
        ],
    );
    assert_eq!(o.status(), Some(200));
    let o = get(&mut s, "GET", "/v1/x", &[]);
    assert_eq!(o.status(), Some(410));
    // Istio's telemetry records the standard metrics: this filter does not.
    assert!(s
        .host
        .metrics()
        .iter()
        .all(|m| !m.name.ends_with("istio_requests_total")));
    assert!(s
        .host
        .metrics()
        .iter()
        .any(|m| m.name.contains("tenant=.=globex;.;") && m.name.ends_with("api_requests_total")));
}
