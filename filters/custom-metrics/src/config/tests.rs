use super::*;

fn compile(json: &str) -> Result<Compiled, ConfigError> {
    Compiled::from_json(json.as_bytes(), NodeInfo::default())
}

fn err(json: &str) -> String {
    compile(json).unwrap_err().to_string()
}

const ISSUE_EXAMPLE: &str = r#"{
  "standardMetrics": true,
  "reporter": "destination",
  "metrics": [
    {"name": "api_requests_total", "type": "COUNTER",
     "dimensions": {"method": "request.method", "code": "response.code", "route": "request.path_template",
                    "tenant": "request.auth.claims[tenant]", "plan": "request.headers[x-plan]"}},
    {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms", "dimensions": {"method": "request.method"}},
    {"name": "inflight", "type": "GAUGE", "value": "inflight"}
  ],
  "pathTemplates": ["/users/{id}", "/orders/{id}/items/{item}"],
  "maxLabelValues": 1000,
  "tagsToRemove": {"istio_requests_total": ["source_principal"]}
}"#;

#[test]
fn issue_example_compiles() {
    let c = compile(ISSUE_EXAMPLE).unwrap();
    // istio_requests_total lost a label, so it has its own group; the
    // three histograms share one.
    assert_eq!(c.groups.len(), 4);
    assert_eq!(c.groups[0].metrics[0].name, "istio_requests_total");
    assert_eq!(c.groups[0].labels.len(), 16);
    assert!(!c.groups[0]
        .labels
        .iter()
        .any(|l| l.name == "source_principal"));
    assert_eq!(c.groups[1].metrics.len(), 3);
    assert_eq!(c.groups[1].labels.len(), 17);
    assert_eq!(c.groups[2].metrics[0].name, "api_requests_total");
    let names: Vec<_> = c.groups[2].labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["code", "method", "plan", "route", "tenant"]);
    assert_eq!(c.inflight_groups.len(), 1);
    assert!(c.uses_inflight());
    let tags: Vec<_> = c.stats_tags().into_iter().map(|t| t.tag_name).collect();
    assert_eq!(
        &tags[17..],
        &["metric", "code", "method", "plan", "route", "tenant"]
    );
    assert!(c.access_log.is_none());
    assert_eq!(c.cluster_header, DEFAULT_CLUSTER_HEADER);
}

#[test]
fn defaults() {
    let c = compile("").unwrap();
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].metrics.len(), 4);
    assert_eq!(c.max_label_values, 1000);
    assert_eq!(c.reporter, Reporter::Destination);
    let c = compile(r#"{"standardMetrics": false}"#).unwrap();
    assert!(c.groups.is_empty());
}

#[test]
fn static_labels_come_from_the_node() {
    let node = NodeInfo {
        workload: "reviews-v1".into(),
        namespace: "default".into(),
        app: "reviews".into(),
        version: "v1".into(),
    };
    let c = Compiled::from_json(br#"{"reporter":"source"}"#, node).unwrap();
    let l = &c.groups[0].labels;
    assert_eq!(l[0].source, LabelSource::Static("source".into()));
    assert_eq!(l[1].source, LabelSource::Static("reviews-v1".into()));
    assert_eq!(l[4].source, LabelSource::Static("reviews".into()));
    assert_eq!(l[16].source, LabelSource::Static("unknown".into()));
    assert!(matches!(l[6].source, LabelSource::Slot(_)));
}

#[test]
fn standard_metric_overrides() {
    let c = compile(
        r#"{"metrics":[{"name":"istio_requests_total","dimensions":{"destination_app":"node.metadata.LABELS[app]","request_protocol":"request.protocol"}}]}"#,
    )
    .unwrap();
    assert_eq!(c.groups.len(), 2);
    let l = &c.groups[0].labels;
    assert_eq!(l.len(), 18);
    assert_eq!(l[17].name, "destination_app");
    let LabelSource::Slot(s) = l[12].source else {
        panic!()
    };
    assert_eq!(
        c.attributes[s],
        Attribute::Property(vec!["request".into(), "protocol".into()], PropKind::Str)
    );
    assert!(
        err(r#"{"metrics":[{"name":"istio_requests_total","type":"GAUGE"}]}"#)
            .starts_with("metrics[0].type: ")
    );
    assert!(
        err(r#"{"metrics":[{"name":"istio_request_bytes","value":"request.size"}]}"#)
            .starts_with("metrics[0].value: ")
    );
    // Without standard metrics, the name is free.
    let c = compile(
        r#"{"standardMetrics":false,"metrics":[{"name":"istio_requests_total","type":"COUNTER"}]}"#,
    )
    .unwrap();
    assert_eq!(c.groups.len(), 1);
}

#[test]
fn invalid_configurations_name_the_field() {
    let cases = [
        (
            r#"{"metrics":[{"name":"a","type":"SUMMARY"}]}"#,
            "metrics[0].type: unknown variant `SUMMARY`",
        ),
        (r#"{"metrics":[{"name":"a"}]}"#, "metrics[0].type: required"),
        (
            r#"{"metrics":[{"name":"a","type":"COUNTER","dimensions":{"x":"request.bogus"}}]}"#,
            "metrics[0].dimensions.x: unknown attribute `request.bogus`",
        ),
        (
            r#"{"metrics":[{"name":"a","type":"COUNTER"},{"name":"b","type":"HISTOGRAM","value":"request.nope"}]}"#,
            "metrics[1].value: unknown attribute `request.nope`",
        ),
        (
            r#"{"metrics":[{"name":"a","type":"HISTOGRAM"}]}"#,
            "metrics[0].value: required",
        ),
        (
            r#"{"metrics":[{"name":"a","type":"HISTOGRAM","value":"request.method"}]}"#,
            "metrics[0].value: `request.method` is not a number",
        ),
        (
            r#"{"pathTemplates":["/a","/b/{"]}"#,
            "pathTemplates[1]: bad template `/b/{`",
        ),
        (
            r#"{"metrics":[{"name":"1a","type":"COUNTER"}]}"#,
            "metrics[0].name: `1a` is not",
        ),
        (
            r#"{"metrics":[{"name":"a","type":"COUNTER"},{"name":"a","type":"COUNTER"}]}"#,
            "metrics[1].name: duplicate metric `a`",
        ),
        (
            r#"{"metrics":[{"name":"a","type":"COUNTER","dimensions":{"le":"request.method"}}]}"#,
            "metrics[0].dimensions.le: `le` is a reserved",
        ),
        (
            r#"{"metrics":[{"name":"a","type":"COUNTER","dimensions":{"x":"request.method","x":"request.path"}}]}"#,
            "metrics[0].dimensions: duplicate key `x`",
        ),
        (r#"{"maxLabelValues":0}"#, "maxLabelValues: must be between"),
        (
            r#"{"tagsToRemove":{"nope":["a"]}}"#,
            "tagsToRemove.nope: unknown metric `nope`",
        ),
        (
            r#"{"tagsToRemove":{"istio_requests_total":["reporter","bogus"]}}"#,
            "tagsToRemove.istio_requests_total[1]: `istio_requests_total` has no label `bogus`",
        ),
        (
            r#"{"reporter":"client"}"#,
            "reporter: unknown variant `client`",
        ),
        (r#"{"bogus":1}"#, "bogus: unknown field `bogus`"),
        (
            r#"{"clusterHeader":"bad header"}"#,
            "clusterHeader: `bad header` is not a valid header name",
        ),
        (
            r#"{"accessLog":{"fields":{"m":"request.nope"}}}"#,
            "accessLog.fields.m: unknown attribute `request.nope`",
        ),
        (
            r#"{"accessLog":{"fields":{}}}"#,
            "accessLog.fields: at least one field",
        ),
        (
            r#"{"metrics":[{"name":"a","type":"COUNTER","dimensions":{"x":3}}]}"#,
            "metrics[0].dimensions.x: invalid type: integer `3`, expected a string",
        ),
        (
            r#"{"metrics":[{"type":"COUNTER"}]}"#,
            "metrics[0]: missing field `name`",
        ),
        (
            r#"{"metrics":[{"name":"a","name":"b","type":"COUNTER"}]}"#,
            "metrics[0]: duplicate field `name`",
        ),
        (
            r#"{"maxLabelValues":-1}"#,
            "maxLabelValues: invalid value: integer `-1`, expected u32",
        ),
        (
            r#"{"maxLabelValues":1.5}"#,
            "maxLabelValues: invalid type: floating point `1.5`, expected u32",
        ),
        (
            r#"{"standardMetrics":"yes"}"#,
            "standardMetrics: invalid type: string \"yes\", expected a boolean",
        ),
        (
            r#"{"metrics":{}}"#,
            "metrics: invalid type: map, expected a sequence",
        ),
        (
            r#"[]"#,
            "configuration: invalid type: sequence, expected struct PluginConfig",
        ),
        (
            r#"{"metrics":[}"#,
            "configuration: expected value at line 1 column 13",
        ),
        (
            r#"{"pathTemplates":["/a", 1]}"#,
            "pathTemplates[1]: invalid type: integer `1`, expected a string",
        ),
        (
            r#"{"tagsToRemove":{"istio_requests_total":"reporter"}}"#,
            "tagsToRemove.istio_requests_total: invalid type: string",
        ),
        (
            r#"{"metrics":[{"name":"wasmesh_metrics_label_overflow_total","type":"COUNTER"}]}"#,
            "metrics[0].name: `wasmesh_metrics_label_overflow_total` is reserved",
        ),
    ];
    for (json, want) in cases {
        let got = err(json);
        assert!(
            got.starts_with(want),
            "{json}\n  got:  {got}\n  want: {want}"
        );
    }
}

#[test]
fn nulls_and_empty_documents() {
    let c = compile("  \n ").unwrap();
    assert_eq!(c.groups.len(), 1);
    let p = PluginConfig::parse(br#"{"clusterHeader": null, "accessLog": null, "metrics": [{"name": "a", "type": null, "value": null}]}"#).unwrap();
    assert_eq!(p.cluster_header, None);
    assert_eq!(p.metrics[0].kind, None);
    // A null where no default applies is a type error, as with serde.
    assert!(err(r#"{"standardMetrics": null}"#).starts_with("standardMetrics: invalid type: null"));
}

#[test]
fn access_log_fields() {
    let c = compile(r#"{"accessLog":{}}"#).unwrap();
    let f = c.access_log.unwrap();
    assert_eq!(f.len(), DEFAULT_ACCESS_LOG_FIELDS.len());
    assert_eq!(f[0].0, "start_time");
    let c = compile(r#"{"accessLog":{"enabled":false}}"#).unwrap();
    assert!(c.access_log.is_none());
    let c =
        compile(r#"{"accessLog":{"fields":{"z":"request.method","a":"response.code"}}}"#).unwrap();
    let keys: Vec<_> = c.access_log.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["z", "a"]);
}

#[test]
fn stats_tags_for_a_document() {
    let t = stats_tags_for_config(ISSUE_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(t.len(), 17 + 1 + 5);
    assert!(stats_tags_for_config(b"{\"x\":1}").is_err());
}
