use super::*;
use crate::tags::regex_prefix_token;

fn standard_labels(code: &str) -> Vec<(&'static str, String)> {
    STANDARD_LABELS
        .iter()
        .map(|l| {
            let v = match *l {
                "reporter" => "destination".to_string(),
                "response_code" => code.to_string(),
                "grpc_response_status" => String::new(),
                "response_flags" => "-".to_string(),
                "connection_security_policy" => "none".to_string(),
                "request_protocol" => "http".to_string(),
                _ => "unknown".to_string(),
            };
            (*l, v)
        })
        .collect()
}

#[test]
fn encoding_and_decoding() {
    let n = encode_stat_name("api_requests_total", &[("method", "GET"), ("code", "200")]);
    assert_eq!(n, "method=.=GET;.;code=.=200;.;api_requests_total");
    let (m, labels) = decode_stat_name(&n).unwrap();
    assert_eq!(m, "api_requests_total");
    assert_eq!(labels, vec![("method", "GET"), ("code", "200")]);
    assert_eq!(encode_stat_name("plain", &[]), "plain");
    assert!(decode_stat_name("a=.=b").is_none());
}

#[test]
fn values_cannot_break_or_forge_segments() {
    assert_eq!(sanitize_label_value("a;.;b"), "a_._b");
    assert_eq!(sanitize_label_value("reporter=.=evil"), "reporter=_=evil");
    assert_eq!(sanitize_label_value("=.=.="), "=_=_=");
    assert_eq!(sanitize_label_value("a.b=c"), "a.b=c");
    assert!(matches!(
        sanitize_label_value("/users/{id}"),
        Cow::Borrowed(_)
    ));
    // A forged label in a header value stays a plain value after extraction.
    let name = encode_stat_name("m", &[("plan", "x;.;reporter=.=evil")]);
    let p = TagProducer::for_labels(["plan"]);
    let (rest, tags) = p.produce_tags(&wasm_stat_name(&name));
    assert_eq!(rest, "wasmcustom.m");
    assert_eq!(
        tags,
        vec![("plan".to_string(), "x_._reporter=_=evil".to_string())]
    );
}

#[test]
fn stats_tags_are_istio_style() {
    let t = StatsTag::for_label("reporter");
    assert_eq!(t.regex, r"(?:^|[.;])(reporter=\.=(.*?);\.;)");
    let all = stats_tags_for_labels(["method", "reporter", "method", "tenant"]);
    let names: Vec<_> = all.iter().map(|t| t.tag_name.as_str()).collect();
    assert_eq!(names.len(), STANDARD_LABELS.len() + 3);
    assert_eq!(&names[..2], &["reporter", "source_workload"]);
    assert_eq!(&names[17..], &["metric", "method", "tenant"]);
}

#[test]
fn extraction_follows_envoy() {
    let p = TagProducer::for_labels(["method", "code"]);
    // Labels come out in stats_tags order, not name order.
    let name = wasm_stat_name("code=.=200;.;method=.=GET;.;api_requests_total");
    let (rest, tags) = p.produce_tags(&name);
    assert_eq!(rest, "wasmcustom.api_requests_total");
    assert_eq!(
        tags,
        vec![
            ("method".into(), "GET".into()),
            ("code".into(), "200".into())
        ]
    );
    // Empty values are values.
    let (rest, tags) = p.produce_tags("wasmcustom.method=.=;.;m");
    assert_eq!(rest, "wasmcustom.m");
    assert_eq!(tags, vec![("method".into(), String::new())]);
    // A label without a stats_tags entry stays in the name.
    let (rest, tags) = p.produce_tags("wasmcustom.plan=.=pro;.;m");
    assert_eq!(rest, "wasmcustom.plan=.=pro;.;m");
    assert!(tags.is_empty());
}

#[test]
fn a_label_is_not_found_inside_a_longer_one() {
    let p = TagProducer::for_labels(["code", "version"]);
    let name = wasm_stat_name(&encode_stat_name(
        "m",
        &[
            ("response_code", "200"),
            ("source_version", "v1"),
            ("code", "201"),
        ],
    ));
    let (rest, tags) = p.produce_tags(&name);
    assert_eq!(rest, "wasmcustom.m");
    let t: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        t,
        vec![
            ("source_version", "v1"),
            ("response_code", "200"),
            ("code", "201")
        ]
    );
    // Istio's unanchored form would have taken `code` from response_code.
    let istio = TagProducer::new(&[StatsTag {
        tag_name: "code".into(),
        regex: r"(code=\.=(.*?);\.;)".into(),
    }])
    .unwrap();
    assert_eq!(istio.produce_tags(&name).1[0].1, "200");
    // At the very start of a name (no namespace) it is found too.
    assert_eq!(
        p.produce_tags("code=.=7;.;m").1,
        vec![("code".to_string(), "7".to_string())]
    );
}

#[test]
fn extraction_prefix_tokens_and_duplicates() {
    let p = TagProducer::new(&[
        StatsTag {
            tag_name: "cluster_name".into(),
            regex: r"^cluster\.((.*?)\.)".into(),
        },
        StatsTag {
            tag_name: "response_code".into(),
            regex: r"(response_code=\.=(.+?);\.;)".into(),
        },
        StatsTag {
            tag_name: "response_code".into(),
            regex: r"_rq(_(\d{3}))$".into(),
        },
    ])
    .unwrap();
    let (rest, tags) = p.produce_tags("cluster.backend.upstream_rq_503");
    assert_eq!(rest, "cluster.upstream_rq");
    // Unprefixed extractors first, then the `cluster` ones.
    assert_eq!(
        tags,
        vec![
            ("response_code".into(), "503".into()),
            ("cluster_name".into(), "backend".into())
        ]
    );
    // The first matching extractor of a name wins.
    let (rest, tags) = p.produce_tags("x.response_code=.=200;.;y_rq_404");
    assert_eq!(rest, "x.y_rq_404");
    assert_eq!(tags, vec![("response_code".into(), "200".into())]);
    assert_eq!(
        regex_prefix_token(r"^cluster\.((.*?)\.)").as_deref(),
        Some("cluster")
    );
    assert_eq!(
        regex_prefix_token(r"^listener(?=\.).*?"),
        Some("listener".into())
    );
    assert_eq!(regex_prefix_token(r"(reporter=\.=(.*?);\.;)"), None);
    assert!(TagProducer::new(&[StatsTag {
        tag_name: "x".into(),
        regex: "abc".into()
    }])
    .is_err());
    assert!(TagProducer::new(&[StatsTag {
        tag_name: "x".into(),
        regex: "(a".into()
    }])
    .is_err());
}

#[test]
fn prometheus_names() {
    assert_eq!(
        prometheus_metric_name("wasmcustom.istio_requests_total").as_deref(),
        Some("istio_requests_total")
    );
    assert_eq!(prometheus_metric_name("wasmcustom.9lives"), None);
    assert_eq!(
        prometheus_metric_name("http.ingress.downstream_rq_total").as_deref(),
        Some("envoy_http_ingress_downstream_rq_total")
    );
    assert_eq!(
        prometheus_metric_name("wasmcustom.plan=.=pro;.;m").as_deref(),
        Some("plan___pro___m")
    );
    assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn histogram_buckets_are_exact_and_cumulative() {
    let mut h = HistogramData::new();
    for v in [50, 20, 30, 70, 100, 5000, 200, 0, 1, 4_000_000] {
        h.record(v);
    }
    assert_eq!(h.count, 10);
    assert_eq!(h.sum, 4_005_471);
    let c = h.cumulative_buckets();
    assert_eq!(c[0], 1); // le 0.5: 0
    assert_eq!(c[1], 2); // le 1: 0, 1
    assert_eq!(c[4], 3); // le 25: +20
    assert_eq!(c[5], 5); // le 50: +30, 50
    assert_eq!(c[6], 7); // le 100: +70, 100
    assert_eq!(c[18], 9); // le 3600000: all but 4000000
    let mut per = [0u64; 20];
    per[0] = 1;
    per[1] = 1;
    per[19] = 1;
    let back = HistogramData::from_bucket_counts(&per, 4_000_001, 3);
    assert_eq!(back.cumulative_buckets()[1], 2);
    assert_eq!(back.cumulative_buckets()[18], 2);
}

#[test]
fn prometheus_text_exact_lines() {
    let labels = standard_labels("200");
    let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let std_name = wasm_stat_name(&encode_stat_name("istio_requests_total", &refs));
    let labels404 = standard_labels("404");
    let refs404: Vec<(&str, &str)> = labels404.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let std_name404 = wasm_stat_name(&encode_stat_name("istio_requests_total", &refs404));
    let api_get = wasm_stat_name(&encode_stat_name(
        "api_requests_total",
        &[("method", "GET"), ("tenant", "acme")],
    ));
    let api_post = wasm_stat_name(&encode_stat_name(
        "api_requests_total",
        &[("method", "POST"), ("tenant", "acme")],
    ));
    let inflight = wasm_stat_name("inflight");
    let lat = wasm_stat_name(&encode_stat_name("api_latency_ms", &[("method", "GET")]));
    let mut h = HistogramData::new();
    h.record(3);
    h.record(120);
    let stats = vec![
        Stat {
            name: &api_post,
            value: StatValue::Counter(1),
        },
        Stat {
            name: &lat,
            value: StatValue::Histogram(&h),
        },
        Stat {
            name: &std_name404,
            value: StatValue::Counter(1),
        },
        Stat {
            name: &inflight,
            value: StatValue::Gauge(2),
        },
        Stat {
            name: &api_get,
            value: StatValue::Counter(3),
        },
        Stat {
            name: &std_name,
            value: StatValue::Counter(7),
        },
    ];
    let p = TagProducer::for_labels(["method", "tenant"]);
    let text = render_prometheus(&stats, &p);
    let std = |code: &str| {
        format!(
            "reporter=\"destination\",source_workload=\"unknown\",source_workload_namespace=\"unknown\",\
source_principal=\"unknown\",source_app=\"unknown\",source_version=\"unknown\",destination_workload=\"unknown\",\
destination_workload_namespace=\"unknown\",destination_principal=\"unknown\",destination_service=\"unknown\",\
destination_service_name=\"unknown\",destination_service_namespace=\"unknown\",request_protocol=\"http\",\
response_code=\"{code}\",grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"none\""
        )
    };
    let mut expected = String::new();
    expected.push_str("# TYPE api_requests_total counter\n");
    expected.push_str("api_requests_total{method=\"GET\",tenant=\"acme\"} 3\n");
    expected.push_str("api_requests_total{method=\"POST\",tenant=\"acme\"} 1\n");
    expected.push_str("# TYPE istio_requests_total counter\n");
    expected.push_str(&format!("istio_requests_total{{{}}} 7\n", std("200")));
    expected.push_str(&format!("istio_requests_total{{{}}} 1\n", std("404")));
    expected.push_str("# TYPE inflight gauge\ninflight{} 2\n");
    expected.push_str("# TYPE api_latency_ms histogram\n");
    for (le, n) in [
        ("0.5", 0),
        ("1", 0),
        ("5", 1),
        ("10", 1),
        ("25", 1),
        ("50", 1),
        ("100", 1),
        ("250", 2),
        ("500", 2),
        ("1000", 2),
        ("2500", 2),
        ("5000", 2),
        ("10000", 2),
        ("30000", 2),
        ("60000", 2),
        ("300000", 2),
        ("600000", 2),
        ("1800000", 2),
        ("3600000", 2),
        ("+Inf", 2),
    ] {
        expected.push_str(&format!(
            "api_latency_ms_bucket{{method=\"GET\",le=\"{le}\"}} {n}\n"
        ));
    }
    expected.push_str("api_latency_ms_sum{method=\"GET\"} 123\n");
    expected.push_str("api_latency_ms_count{method=\"GET\"} 2\n");
    assert_eq!(text, expected);
}

#[test]
fn histogram_without_tags() {
    let mut h = HistogramData::new();
    h.record(7);
    let p = TagProducer::for_labels([]);
    let text = render_prometheus(
        &[Stat {
            name: "wasmcustom.sizes",
            value: StatValue::Histogram(&h),
        }],
        &p,
    );
    assert!(text.starts_with("# TYPE sizes histogram\nsizes_bucket{le=\"0.5\"} 0\n"));
    assert!(text.ends_with("sizes_bucket{le=\"+Inf\"} 1\nsizes_sum{} 7\nsizes_count{} 1\n"));
}
