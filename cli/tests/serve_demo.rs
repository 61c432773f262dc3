//! The demo's tour (`wasmesh demo`, `scripts/demo.sh`) run in-process: the
//! embedded identity provider and upstreams, `wasmesh serve` with the five
//! filters of `examples/demo/serve.yaml`, and every step checked.

use wasmesh_cli::demo::{Demo, DemoOptions, TourReport};

fn tour() -> TourReport {
    let opts = DemoOptions {
        wasm_dir: Some(wasmesh::scenario::default_wasm_dir()),
        ..Default::default()
    };
    let demo = Demo::start(&opts).unwrap_or_else(|e| panic!("demo: {e}"));
    let report = demo.tour();
    demo.shutdown();
    report
}

#[test]
fn the_demo_tour_gives_what_the_readme_shows() {
    let r = tour();
    assert!(r.passed(), "{r}");
    // The tour checks itself; these assertions pin what it must check, so a
    // weakened tour fails here.
    let step = |name: &str| {
        r.step(name)
            .unwrap_or_else(|| panic!("no step `{name}`\n{r}"))
            .clone()
    };
    let s = step("no token");
    assert_eq!((s.status, s.decided_by.as_str()), (401, "jwt-authn"), "{r}");
    assert_eq!(s.details, "jwt_authn_access_denied{Jwt_is_missing}");
    let s = step("valid token");
    assert_eq!((s.status, s.cluster.as_str()), (200, "reviews-v1"), "{r}");
    assert!(s.seen.contains("x-user: alice"), "{r}");
    assert!(!s.seen.contains("authorization"), "token forwarded: {r}");
    let s = step("beta group");
    assert_eq!((s.status, s.cluster.as_str()), (200, "reviews-v2"), "{r}");
    assert!(s.seen.contains("x-user: bob"), "{r}");
    let s = step("non-admin on /admin");
    assert_eq!((s.status, s.decided_by.as_str()), (403, "rbac"), "{r}");
    let s = step("admin on /admin");
    assert_eq!((s.status, s.cluster.as_str()), (200, "reviews-v1"), "{r}");
    let s = step("chaos: delay");
    assert_eq!(s.status, 200, "{r}");
    assert!(s.duration.as_millis() >= 500, "{r}");
    let s = step("chaos: abort");
    assert_eq!(
        (s.status, s.decided_by.as_str(), s.details.as_str()),
        (503, "fault-injection", "fault_filter_abort"),
        "{r}"
    );
    let s = step("forged identity headers");
    assert!(s.seen.contains("x-user: alice"), "{r}");
    assert!(!s.seen.contains("x-user: admin"), "{r}");
    let s = step("forged routing header");
    assert_eq!(s.cluster, "reviews-v1", "{r}");
    let s = step("tampered token");
    assert_eq!((s.status, s.decided_by.as_str()), (401, "jwt-authn"), "{r}");
    assert!(r
        .metrics
        .iter()
        .any(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"403\"")));
    assert!(r
        .metrics
        .iter()
        .any(|l| l.starts_with("demo_requests_total{")
            && l.contains("user=\"bob\"")
            && l.contains("cluster=\"reviews-v2\"")));
}
