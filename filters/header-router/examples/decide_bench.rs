//! Native cost of a routing decision with 50 routes (header + regex each):
//! `cargo run --profile host -p header-router --example decide_bench`.
//! The `.wasm` cost in the harness is measured with `wasmesh bench`
//! (see `bench/`).

use header_router::{RouteTable, RouterConfig};
use std::time::Instant;

fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
use wasmesh_common::http_match::RequestAttributes;
use wasmesh_common::sampling::Rng;
use wasmesh_common::HeaderMap;

fn main() {
    let routes: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"name":"r{i}","match":[{{"headers":{{"x-tenant":{{"exact":"tenant-{i}"}}}},"uri":{{"regex":"/api/v[0-9]+/t{i}/[a-z]+"}}}}],"route":[{{"destination":"c{i}"}}]}}"#
            )
        })
        .collect();
    let cfg = format!(r#"{{"routes":[{}]}}"#, routes.join(","));
    let table = RouteTable::compile(&RouterConfig::parse(cfg.as_bytes()).unwrap()).unwrap();
    let headers = HeaderMap::from_slice(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "shop.example.com"),
        (":path", "/api/v2/t49/items"),
        ("x-tenant", "tenant-49"),
        ("x-env", "prod"),
        ("user-agent", "curl/8.0"),
        ("accept", "*/*"),
        ("x-request-id", "0b7e5d0e-6f1c-4a0c-9a57-7b1b2b5a6c11"),
    ]);
    let re = wasmesh_common::matcher::Regex::full_match("/api/v[0-9]+/t49/[a-z]+", false).unwrap();
    let t = Instant::now();
    for _ in 0..100_000 {
        assert!(re.is_match("/api/v2/t49/items"));
    }
    println!(
        "one regex-lite match: {:.0} ns",
        t.elapsed().as_nanos() as f64 / 100_000.0
    );
    let t = Instant::now();
    let mut found = 0;
    for i in 0..100_000 {
        found += usize::from(
            headers
                .get(if i % 2 == 0 { "x-tenant" } else { "x-missing" })
                .is_some(),
        );
    }
    println!(
        "one header lookup: {:.0} ns ({found})",
        t.elapsed().as_nanos() as f64 / 100_000.0
    );
    {
        use wasmesh_common::http_match::{compile_match_list, HttpMatchRequest};
        use wasmesh_common::FieldPath;
        let items: Vec<HttpMatchRequest> =
            wasmesh_common::parse_json(br#"[{"headers":{"x-tenant":{"exact":"tenant-3"}}}]"#)
                .unwrap();
        let ml = compile_match_list(&items, &FieldPath::root()).unwrap();
        let t = Instant::now();
        let mut c = 0;
        for _ in 0..1_000_000 {
            c += usize::from(ml.matches(&RequestAttributes::headers_only(&headers)));
        }
        println!(
            "one header match list (miss): {:.1} ns ({c})",
            t.elapsed().as_nanos() as f64 / 1e6
        );
        let t = Instant::now();
        for _ in 0..1_000_000 {
            c += usize::from(
                ml.first_match(&RequestAttributes::headers_only(&headers))
                    .is_some(),
            );
        }
        println!(
            "first_match (miss): {:.1} ns ({c})",
            t.elapsed().as_nanos() as f64 / 1e6
        );
    }
    let mut rng = Rng::with_seed(1);
    let n = 200_000;
    let c0 = cpu_ns();
    let t = Instant::now();
    let mut hits = 0;
    for _ in 0..n {
        let values = table.header_names().resolve(&headers);
        let attrs = RequestAttributes {
            header_values: Some(&values),
            ..RequestAttributes::headers_only(&headers)
        };
        let d = table.decide(&attrs, &mut rng);
        hits += usize::from(table.cluster(&d) == Some("c49"));
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(hits, n);
    println!(
        "decide, 50 routes (header + regex), last matches: {ns:.0} ns wall, {:.0} ns cpu",
        (cpu_ns() - c0) as f64 / n as f64
    );
    let static_headers = HeaderMap::from_slice(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "shop.example.com"),
        (":path", "/static/app.js"),
        ("x-tenant", "nobody"),
        ("x-env", "prod"),
        ("user-agent", "curl/8.0"),
        ("accept", "*/*"),
    ]);
    for (label, m) in [
        (
            "a-prefix",
            r#"{"headers":{"x-env":{"exact":"prod"}},"uri":{"prefix":"/api/v"}}"#,
        ),
        (
            "c-regex",
            r#"{"headers":{"x-env":{"exact":"prod"}},"uri":{"regex":"/api/v[0-9]+/tN/[a-z]+"}}"#,
        ),
        ("d-uri-only", r#"{"uri":{"prefix":"/api/v"}}"#),
    ] {
        let cfg = format!(
            r#"{{"routes":[{}]}}"#,
            (0..50)
                .map(|i| format!(
                    r#"{{"match":[{}],"route":[{{"destination":"c{i}"}}]}}"#,
                    m.replace("tN", &format!("t{i}"))
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let table = RouteTable::compile(&RouterConfig::parse(cfg.as_bytes()).unwrap()).unwrap();
        let c0 = cpu_ns();
        for _ in 0..n {
            let values = table.header_names().resolve(&static_headers);
            let attrs = RequestAttributes {
                header_values: Some(&values),
                ..RequestAttributes::headers_only(&static_headers)
            };
            let d = table.decide(&attrs, &mut rng);
            assert!(table.cluster(&d).is_none());
        }
        println!(
            "{label} (no match): {:.0} ns cpu",
            (cpu_ns() - c0) as f64 / n as f64
        );
    }
    for (label, cfg) in [
        ("50 routes x-env + regex, none", format!(r#"{{"routes":[{}]}}"#, (0..50).map(|i| format!(r#"{{"match":[{{"headers":{{"x-env":{{"exact":"prod"}}}},"uri":{{"regex":"/api/v[0-9]+/t{i}/[a-z]+"}}}}],"route":[{{"destination":"c{i}"}}]}},"#)).collect::<String>() + r#"{"route":[{"destination":"fallback"}]}"#)),
        ("1 route header+regex", r#"{"routes":[{"match":[{"headers":{"x-tenant":{"exact":"tenant-49"}},"uri":{"regex":"/api/v[0-9]+/t49/[a-z]+"}}],"route":[{"destination":"c49"}]}]}"#.to_string()),
        ("50 routes header only", format!(r#"{{"routes":[{}]}}"#, (0..50).map(|i| format!(r#"{{"match":[{{"headers":{{"x-tenant":{{"exact":"tenant-{i}"}}}}}}],"route":[{{"destination":"c{i}"}}]}}"#)).collect::<Vec<_>>().join(","))),
    ] {
        let table = RouteTable::compile(&RouterConfig::parse(cfg.as_bytes()).unwrap()).unwrap();
        let c0 = cpu_ns();
        let t = Instant::now();
        for _ in 0..n {
            let values = table.header_names().resolve(&headers);
            let attrs = RequestAttributes {
                header_values: Some(&values),
                ..RequestAttributes::headers_only(&headers)
            };
            let d = table.decide(&attrs, &mut rng);
            assert!(table.cluster(&d).is_some());
        }
        println!("{label}: {:.0} ns wall, {:.0} ns cpu", t.elapsed().as_nanos() as f64 / n as f64, (cpu_ns() - c0) as f64 / n as f64);
    }
}
