//! Stats of the local data plane: Envoy's request counters (under Envoy's
//! names), the metrics plugins define (in Envoy's `wasmcustom.` namespace),
//! Envoy's tag extraction, and the `/stats` and `/stats/prometheus` text.
//!
//! Tag extraction follows Envoy's `TagProducerImpl`: every extractor runs on
//! the full stat name; the first capture group of a match is cut out of the
//! name, the second (or the first) is the tag value; extractors whose regex
//! starts with a literal `^token\.` only run on names whose first token is
//! `token`. Envoy's default extractors for the stats this server emits
//! (`envoy.cluster_name`, `envoy.http_conn_manager_prefix`,
//! `envoy.response_code`, `envoy.response_code_class`) always apply, as with
//! Envoy's `use_all_default_tags: true`.
//!
//! The Prometheus rendering mirrors Envoy's `PrometheusStatsFormatter`:
//! counters, then gauges, then histograms; one `# TYPE` line per
//! tag-extracted name; names in the `wasmcustom.` namespace lose it, any
//! other name gets the `envoy_` prefix; everything outside `[a-zA-Z0-9_]`
//! becomes `_`.

use super::config::{StatsTagSpec, StatsTags};
use crate::host::{HostShared, Metric, HISTOGRAM_BUCKETS};
use crate::types::MetricKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// The namespace Envoy gives metrics defined by Wasm modules.
pub const CUSTOM_STAT_NAMESPACE: &str = "wasmcustom";

/// Istio's standard labels, in the order of Istio's `stats_tags`.
pub const STANDARD_LABELS: [&str; 17] = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

const VALUE_SEPARATOR: &str = "=.=";
const FIELD_SEPARATOR: &str = ";.;";

/// Counters of one upstream cluster.
#[derive(Debug)]
pub struct ClusterStats {
    pub upstream_rq_total: AtomicU64,
    pub upstream_rq_completed: AtomicU64,
    pub upstream_rq_timeout: AtomicU64,
    pub upstream_cx_total: AtomicU64,
    pub upstream_cx_connect_fail: AtomicU64,
    pub upstream_cx_connect_timeout: AtomicU64,
    pub upstream_rq_pending_failure_eject: AtomicU64,
    pub upstream_cx_none_healthy: AtomicU64,
    pub upstream_rq_active: AtomicI64,
    /// Per status code 100..=599.
    codes: Vec<AtomicU64>,
}

impl ClusterStats {
    fn new() -> ClusterStats {
        ClusterStats {
            upstream_rq_total: AtomicU64::new(0),
            upstream_rq_completed: AtomicU64::new(0),
            upstream_rq_timeout: AtomicU64::new(0),
            upstream_cx_total: AtomicU64::new(0),
            upstream_cx_connect_fail: AtomicU64::new(0),
            upstream_cx_connect_timeout: AtomicU64::new(0),
            upstream_rq_pending_failure_eject: AtomicU64::new(0),
            upstream_cx_none_healthy: AtomicU64::new(0),
            upstream_rq_active: AtomicI64::new(0),
            codes: (0..500).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A response with `code` completed an upstream request.
    pub fn record_code(&self, code: u16) {
        self.upstream_rq_completed.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.codes.get(usize::from(code).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The server's own stats (Envoy's names).
#[derive(Debug)]
pub struct Stats {
    pub prefix: String,
    pub downstream_cx_total: AtomicU64,
    pub downstream_cx_active: AtomicI64,
    pub downstream_cx_http1_total: AtomicU64,
    pub downstream_cx_http2_total: AtomicU64,
    pub downstream_rq_total: AtomicU64,
    pub downstream_rq_http1_total: AtomicU64,
    pub downstream_rq_http2_total: AtomicU64,
    pub downstream_rq_active: AtomicI64,
    pub downstream_rq_completed: AtomicU64,
    pub downstream_rq_rx_reset: AtomicU64,
    pub downstream_rq_tx_reset: AtomicU64,
    /// 1xx..5xx.
    pub downstream_rq_xx: [AtomicU64; 5],
    pub clusters: BTreeMap<String, ClusterStats>,
    /// Plugin failures (`wasm_fail_stream` replies).
    pub wasm_failed_streams: AtomicU64,
}

impl Stats {
    pub fn new<'a>(prefix: &str, clusters: impl IntoIterator<Item = &'a String>) -> Stats {
        Stats {
            prefix: prefix.to_string(),
            downstream_cx_total: AtomicU64::new(0),
            downstream_cx_active: AtomicI64::new(0),
            downstream_cx_http1_total: AtomicU64::new(0),
            downstream_cx_http2_total: AtomicU64::new(0),
            downstream_rq_total: AtomicU64::new(0),
            downstream_rq_http1_total: AtomicU64::new(0),
            downstream_rq_http2_total: AtomicU64::new(0),
            downstream_rq_active: AtomicI64::new(0),
            downstream_rq_completed: AtomicU64::new(0),
            downstream_rq_rx_reset: AtomicU64::new(0),
            downstream_rq_tx_reset: AtomicU64::new(0),
            downstream_rq_xx: Default::default(),
            clusters: clusters
                .into_iter()
                .map(|c| (c.clone(), ClusterStats::new()))
                .collect(),
            wasm_failed_streams: AtomicU64::new(0),
        }
    }

    /// A downstream response with `code` was completed.
    pub fn record_downstream_code(&self, code: u16) {
        self.downstream_rq_completed.fetch_add(1, Ordering::Relaxed);
        if (100..600).contains(&code) {
            self.downstream_rq_xx[usize::from(code / 100) - 1].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterStats> {
        self.clusters.get(name)
    }

    /// Every stat, with Envoy's full names.
    pub fn snapshot(&self, host: &HostShared) -> Vec<StatEntry> {
        let mut out = Vec::new();
        let p = &self.prefix;
        let c = |name: String, v: &AtomicU64| StatEntry {
            name,
            value: StatValue::Counter(v.load(Ordering::Relaxed)),
        };
        let g = |name: String, v: &AtomicI64| StatEntry {
            name,
            value: StatValue::Gauge(v.load(Ordering::Relaxed)),
        };
        out.push(c(
            format!("http.{p}.downstream_cx_total"),
            &self.downstream_cx_total,
        ));
        out.push(g(
            format!("http.{p}.downstream_cx_active"),
            &self.downstream_cx_active,
        ));
        out.push(c(
            format!("http.{p}.downstream_cx_http1_total"),
            &self.downstream_cx_http1_total,
        ));
        out.push(c(
            format!("http.{p}.downstream_cx_http2_total"),
            &self.downstream_cx_http2_total,
        ));
        out.push(c(
            format!("http.{p}.downstream_rq_total"),
            &self.downstream_rq_total,
        ));
        out.push(c(
            format!("http.{p}.downstream_rq_http1_total"),
            &self.downstream_rq_http1_total,
        ));
        out.push(c(
            format!("http.{p}.downstream_rq_http2_total"),
            &self.downstream_rq_http2_total,
        ));
        out.push(g(
            format!("http.{p}.downstream_rq_active"),
            &self.downstream_rq_active,
        ));
        out.push(c(
            format!("http.{p}.downstream_rq_completed"),
            &self.downstream_rq_completed,
        ));
        out.push(c(
            format!("http.{p}.downstream_rq_rx_reset"),
            &self.downstream_rq_rx_reset,
        ));
        out.push(c(
            format!("http.{p}.downstream_rq_tx_reset"),
            &self.downstream_rq_tx_reset,
        ));
        for (i, v) in self.downstream_rq_xx.iter().enumerate() {
            out.push(c(format!("http.{p}.downstream_rq_{}xx", i + 1), v));
        }
        out.push(c(
            "wasmesh.wasm_failed_streams".to_string(),
            &self.wasm_failed_streams,
        ));
        for (name, s) in &self.clusters {
            let n = |stat: &str| format!("cluster.{name}.{stat}");
            out.push(c(n("upstream_rq_total"), &s.upstream_rq_total));
            out.push(c(n("upstream_rq_completed"), &s.upstream_rq_completed));
            out.push(c(n("upstream_rq_timeout"), &s.upstream_rq_timeout));
            out.push(c(n("upstream_cx_total"), &s.upstream_cx_total));
            out.push(c(
                n("upstream_cx_connect_fail"),
                &s.upstream_cx_connect_fail,
            ));
            out.push(c(
                n("upstream_cx_connect_timeout"),
                &s.upstream_cx_connect_timeout,
            ));
            out.push(c(
                n("upstream_cx_none_healthy"),
                &s.upstream_cx_none_healthy,
            ));
            out.push(g(n("upstream_rq_active"), &s.upstream_rq_active));
            let mut classes = [0u64; 5];
            for (i, v) in s.codes.iter().enumerate() {
                let v = v.load(Ordering::Relaxed);
                if v > 0 {
                    let code = i + 100;
                    classes[code / 100 - 1] += v;
                    out.push(StatEntry {
                        name: n(&format!("upstream_rq_{code}")),
                        value: StatValue::Counter(v),
                    });
                }
            }
            for (i, v) in classes.iter().enumerate() {
                if *v > 0 {
                    out.push(StatEntry {
                        name: n(&format!("upstream_rq_{}xx", i + 1)),
                        value: StatValue::Counter(*v),
                    });
                }
            }
        }
        for m in host.metrics() {
            out.push(StatEntry::from_metric(&m));
        }
        out
    }
}

/// A stat's value.
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue {
    Counter(u64),
    Gauge(i64),
    /// Per-bucket counts of [`HISTOGRAM_BUCKETS`] (last = overflow), sum, count.
    Histogram {
        buckets: Vec<u64>,
        sum: u64,
        count: u64,
    },
}

/// One stat with its full Envoy name.
#[derive(Debug, Clone, PartialEq)]
pub struct StatEntry {
    pub name: String,
    pub value: StatValue,
}

impl StatEntry {
    /// A plugin metric, named as Envoy names it (`wasmcustom.<name>`).
    pub fn from_metric(m: &Metric) -> StatEntry {
        StatEntry {
            name: format!("{CUSTOM_STAT_NAMESPACE}.{}", m.name),
            value: match m.kind {
                MetricKind::Counter => StatValue::Counter(m.value.max(0) as u64),
                MetricKind::Gauge => StatValue::Gauge(m.value),
                MetricKind::Histogram => StatValue::Histogram {
                    buckets: m.buckets.clone(),
                    sum: m.sum,
                    count: m.count,
                },
            },
        }
    }
}

/// A tag-extracted name and its tags.
type Tagged = (String, Vec<(String, String)>);

#[derive(Debug, Clone)]
struct Extractor {
    name: String,
    regex: regex_lite::Regex,
}

/// Envoy's tag producer.
#[derive(Debug)]
pub struct TagProducer {
    without_prefix: Vec<Extractor>,
    with_prefix: Vec<(String, Extractor)>,
    fixed: Vec<(String, String)>,
    /// Extract every `name=.=value;.;` label (the `Auto` mode).
    auto_labels: bool,
    /// Caches the tags of names already seen.
    cache: Mutex<std::collections::HashMap<String, Tagged>>,
}

/// Envoy's default tag extractors for the stats this server emits.
pub fn envoy_default_tags() -> Vec<StatsTagSpec> {
    let t = |n: &str, r: &str| StatsTagSpec {
        tag_name: n.into(),
        regex: Some(r.into()),
        fixed_value: None,
    };
    vec![
        t("envoy.cluster_name", r"^cluster\.((.*?)\.)"),
        t("envoy.http_conn_manager_prefix", r"^http\.((.*?)\.)"),
        t("envoy.response_code", r"_rq(_(\d{3}))$"),
        t("envoy.response_code_class", r"_rq_(\d)xx$"),
    ]
}

impl TagProducer {
    /// Compiles the tag configuration (Envoy's defaults come first).
    pub fn new(tags: &StatsTags) -> Result<TagProducer, String> {
        let mut p = TagProducer {
            without_prefix: Vec::new(),
            with_prefix: Vec::new(),
            fixed: Vec::new(),
            auto_labels: matches!(tags, StatsTags::Auto),
            cache: Mutex::new(Default::default()),
        };
        let mut all = envoy_default_tags();
        if let StatsTags::Configured(t) = tags {
            all.extend(t.iter().cloned());
        }
        for t in &all {
            if let Some(v) = &t.fixed_value {
                p.fixed.push((t.tag_name.clone(), v.clone()));
                continue;
            }
            let Some(r) = &t.regex else { continue };
            let regex = regex_lite::Regex::new(r)
                .map_err(|e| format!("stats tag `{}`: regex `{r}`: {e}", t.tag_name))?;
            if regex.captures_len() < 2 {
                return Err(format!(
                    "stats tag `{}`: regex `{r}` has no capture group",
                    t.tag_name
                ));
            }
            let ex = Extractor {
                name: t.tag_name.clone(),
                regex,
            };
            match prefix_token(r) {
                Some(tok) => p.with_prefix.push((tok, ex)),
                None => p.without_prefix.push(ex),
            }
        }
        Ok(p)
    }

    /// The tag-extracted name and the tags of a full stat name.
    pub fn produce_tags(&self, stat_name: &str) -> (String, Vec<(String, String)>) {
        if let Some(hit) = self.cache.lock().expect("lock").get(stat_name) {
            return hit.clone();
        }
        let r = self.compute(stat_name);
        let mut cache = self.cache.lock().expect("lock");
        if cache.len() < 100_000 {
            cache.insert(stat_name.to_string(), r.clone());
        }
        r
    }

    fn compute(&self, stat_name: &str) -> (String, Vec<(String, String)>) {
        let mut tags: Vec<(String, String)> = Vec::new();
        let mut remove: Vec<(usize, usize)> = Vec::new();
        let first = stat_name.split_once('.').map(|(t, _)| t);
        let prefixed = self
            .with_prefix
            .iter()
            .filter(|(tok, _)| Some(tok.as_str()) == first)
            .map(|(_, ex)| ex);
        for ex in self.without_prefix.iter().chain(prefixed) {
            if tags.iter().any(|(n, _)| *n == ex.name) {
                continue;
            }
            let Some(caps) = ex.regex.captures(stat_name) else {
                continue;
            };
            let Some(cut) = caps.get(1) else { continue };
            let value = caps.get(2).unwrap_or(cut);
            tags.push((ex.name.clone(), value.as_str().to_string()));
            remove.push((cut.start(), cut.end()));
        }
        if self.auto_labels {
            let mut found: Vec<(String, String, (usize, usize))> = Vec::new();
            let mut pos = 0;
            while let Some(i) = stat_name[pos..].find(VALUE_SEPARATOR) {
                let sep = pos + i;
                let start = stat_name[..sep].rfind(['.', ';']).map_or(0, |k| k + 1);
                let after = sep + VALUE_SEPARATOR.len();
                let Some(end_rel) = stat_name[after..].find(FIELD_SEPARATOR) else {
                    break;
                };
                let end = after + end_rel + FIELD_SEPARATOR.len();
                let name = &stat_name[start..sep];
                let value = &stat_name[after..after + end_rel];
                if !name.is_empty() && !tags.iter().any(|(n, _)| n == name) {
                    found.push((name.to_string(), value.to_string(), (start, end)));
                }
                pos = end;
            }
            found.sort_by_key(|(n, _, _)| {
                STANDARD_LABELS
                    .iter()
                    .position(|l| l == n)
                    .unwrap_or(STANDARD_LABELS.len())
            });
            for (n, v, cut) in found {
                if tags.iter().any(|(x, _)| *x == n) {
                    continue;
                }
                tags.push((n, v));
                remove.push(cut);
            }
        }
        for (n, v) in &self.fixed {
            if !tags.iter().any(|(x, _)| x == n) {
                tags.push((n.clone(), v.clone()));
            }
        }
        (remove_intervals(stat_name, &mut remove), tags)
    }
}

fn prefix_token(regex: &str) -> Option<String> {
    let rest = regex.strip_prefix('^')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let after = &rest[end..];
    (after.starts_with("\\.") || after.starts_with("(?=\\.)") || after == "$")
        .then(|| rest[..end].to_string())
}

fn remove_intervals(s: &str, iv: &mut [(usize, usize)]) -> String {
    if iv.is_empty() {
        return s.to_string();
    }
    iv.sort_unstable();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for &(a, b) in iv.iter() {
        if a > pos {
            out.push_str(&s[pos..a]);
        }
        pos = pos.max(b);
    }
    if pos < s.len() {
        out.push_str(&s[pos..]);
    }
    out
}

/// Every character outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

/// Envoy's Prometheus metric name for a tag-extracted name.
pub fn prometheus_name(extracted: &str) -> Option<String> {
    match extracted.strip_prefix(&format!("{CUSTOM_STAT_NAMESPACE}.")) {
        Some(s) => {
            let s = sanitize_name(s);
            (!s.is_empty() && !s.as_bytes()[0].is_ascii_digit()).then_some(s)
        }
        None => Some(format!("envoy_{}", sanitize_name(extracted))),
    }
}

fn stat_name_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('.').cmp(b.split('.'))
}

/// `/stats/prometheus`.
pub fn render_prometheus(stats: &[StatEntry], producer: &TagProducer) -> String {
    type Group<'a> = BTreeMap<String, Vec<(&'a StatEntry, Vec<(String, String)>)>>;
    let mut groups: [Group<'_>; 3] = Default::default();
    for s in stats {
        let (extracted, tags) = producer.produce_tags(&s.name);
        let k = match s.value {
            StatValue::Counter(_) => 0,
            StatValue::Gauge(_) => 1,
            StatValue::Histogram { .. } => 2,
        };
        groups[k].entry(extracted).or_default().push((s, tags));
    }
    let mut out = String::new();
    for (k, g) in groups.iter_mut().enumerate() {
        for (extracted, items) in g.iter_mut() {
            let Some(name) = prometheus_name(extracted) else {
                continue;
            };
            items.sort_by(|a, b| stat_name_cmp(&a.0.name, &b.0.name));
            let kind = ["counter", "gauge", "histogram"][k];
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (s, tags) in items.iter() {
                let labels = tags
                    .iter()
                    .map(|(n, v)| format!("{}=\"{}\"", sanitize_name(n), escape_value(v)))
                    .collect::<Vec<_>>()
                    .join(",");
                match &s.value {
                    StatValue::Counter(v) => {
                        let _ = writeln!(out, "{name}{{{labels}}} {v}");
                    }
                    StatValue::Gauge(v) => {
                        let _ = writeln!(out, "{name}{{{labels}}} {v}");
                    }
                    StatValue::Histogram {
                        buckets,
                        sum,
                        count,
                    } => {
                        let sep = if labels.is_empty() { "" } else { "," };
                        let mut acc = 0;
                        for (i, bound) in HISTOGRAM_BUCKETS.iter().enumerate() {
                            acc += buckets.get(i).copied().unwrap_or(0);
                            let _ =
                                writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {acc}");
                        }
                        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
                        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
                        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
                    }
                }
            }
        }
    }
    out
}

/// `/stats`: `name: value` lines sorted by name (histograms as
/// `count`/`sum`), optionally filtered by a regex.
pub fn render_text(stats: &[StatEntry], filter: Option<&regex_lite::Regex>) -> String {
    let mut lines: Vec<(String, String)> = stats
        .iter()
        .filter(|s| filter.is_none_or(|r| r.is_match(&s.name)))
        .map(|s| {
            let v = match &s.value {
                StatValue::Counter(v) => v.to_string(),
                StatValue::Gauge(v) => v.to_string(),
                StatValue::Histogram { sum, count, .. } if *count > 0 => {
                    format!("count={count} sum={sum}")
                }
                StatValue::Histogram { .. } => "No recorded values".to_string(),
            };
            (s.name.clone(), v)
        })
        .collect();
    lines.sort();
    let mut out = String::new();
    for (n, v) in lines {
        let _ = writeln!(out, "{n}: {v}");
    }
    out
}

/// `/stats?format=json`: `{"stats": [{"name":..,"value":..}, ...]}`.
pub fn render_json(stats: &[StatEntry], filter: Option<&regex_lite::Regex>) -> String {
    let mut items: Vec<&StatEntry> = stats
        .iter()
        .filter(|s| filter.is_none_or(|r| r.is_match(&s.name)))
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let list: Vec<serde_json::Value> = items
        .iter()
        .map(|s| match &s.value {
            StatValue::Counter(v) => serde_json::json!({"name": s.name, "value": v}),
            StatValue::Gauge(v) => serde_json::json!({"name": s.name, "value": v}),
            StatValue::Histogram { sum, count, .. } => {
                serde_json::json!({"name": s.name, "histogram": {"count": count, "sum": sum}})
            }
        })
        .collect();
    serde_json::json!({ "stats": list }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(name: &str, v: u64) -> StatEntry {
        StatEntry {
            name: name.into(),
            value: StatValue::Counter(v),
        }
    }

    #[test]
    fn envoy_default_tags_and_names() {
        let p = TagProducer::new(&StatsTags::Configured(vec![])).unwrap();
        assert_eq!(
            p.produce_tags("cluster.backend.upstream_rq_200"),
            (
                "cluster.upstream_rq".to_string(),
                vec![
                    ("envoy.response_code".to_string(), "200".to_string()),
                    ("envoy.cluster_name".to_string(), "backend".to_string())
                ]
            )
        );
        let text = render_prometheus(
            &[
                counter("http.ingress_http.downstream_rq_2xx", 3),
                counter("cluster.a.upstream_rq_total", 1),
            ],
            &p,
        );
        assert!(text.contains("# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"a\"} 1\n"), "{text}");
        assert!(text.contains("envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\",envoy_http_conn_manager_prefix=\"ingress_http\"} 3"), "{text}");
    }

    #[test]
    fn wasm_metrics_with_configured_and_auto_tags() {
        let name = "wasmcustom.reporter=.=destination;.;response_code=.=200;.;istio_requests_total";
        let tags = StatsTags::Configured(vec![StatsTagSpec {
            tag_name: "reporter".into(),
            regex: Some(r"(reporter=\.=(.*?);\.;)".into()),
            fixed_value: None,
        }]);
        let p = TagProducer::new(&tags).unwrap();
        let text = render_prometheus(&[counter(name, 2)], &p);
        // Only `reporter` is configured: the rest stays in the name.
        assert!(
            text.contains("response_code___200___istio_requests_total{reporter=\"destination\"} 2"),
            "{text}"
        );
        let auto = TagProducer::new(&StatsTags::Auto).unwrap();
        let text = render_prometheus(&[counter(name, 2)], &auto);
        assert_eq!(
            text,
            "# TYPE istio_requests_total counter\nistio_requests_total{reporter=\"destination\",response_code=\"200\"} 2\n"
        );
    }

    #[test]
    fn histograms() {
        let p = TagProducer::new(&StatsTags::Auto).unwrap();
        let mut buckets = vec![0; HISTOGRAM_BUCKETS.len() + 1];
        buckets[1] = 2;
        buckets[19] = 1;
        let text = render_prometheus(
            &[StatEntry {
                name: "wasmcustom.lat".into(),
                value: StatValue::Histogram {
                    buckets,
                    sum: 5000002,
                    count: 3,
                },
            }],
            &p,
        );
        assert!(
            text.contains("lat_bucket{le=\"0.5\"} 0\nlat_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("lat_bucket{le=\"3600000\"} 2\nlat_bucket{le=\"+Inf\"} 3\nlat_sum{} 5000002\nlat_count{} 3\n"), "{text}");
    }
}
