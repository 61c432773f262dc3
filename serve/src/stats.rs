//! Stats of the local data plane: Envoy's request counters (under Envoy's
//! names), the metrics plugins define (in Envoy's `wasmcustom.` namespace),
//! Envoy's tag extraction, and the `/stats` and `/stats/prometheus` text.
//!
//! Tag extraction (Envoy's `TagProducerImpl`) and the Prometheus rendering
//! (Envoy's `PrometheusStatsFormatter`) are the pure functions of the
//! custom-metrics filter (`wasmesh-stats`). Envoy's default
//! extractors for the stats this server emits (`envoy.cluster_name`,
//! `envoy.http_conn_manager_prefix`, `envoy.response_code`,
//! `envoy.response_code_class`) always apply after the configured ones, as
//! with Envoy's `use_all_default_tags: true`.

use super::config::{StatsTagSpec, StatsTags};
use crate::host::{HostShared, Metric};
use crate::types::MetricKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use wasmesh_stats as tags;

/// The namespace Envoy gives metrics defined by Wasm modules.
pub use wasmesh_stats::CUSTOM_STAT_NAMESPACE;

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
    pub upstream_flow_control_paused_reading_total: AtomicU64,
    pub upstream_flow_control_resumed_reading_total: AtomicU64,
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
            upstream_flow_control_paused_reading_total: AtomicU64::new(0),
            upstream_flow_control_resumed_reading_total: AtomicU64::new(0),
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
    /// Flow control, timeouts and limits.
    pub limits: super::limits::LimitStats,
    /// Live reloads of the chain.
    pub reload: super::reload::ReloadStats,
    /// Envoy's listener stat prefix (`listener.127.0.0.1_10000`).
    pub listener_prefix: String,
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
            limits: Default::default(),
            reload: Default::default(),
            listener_prefix: String::new(),
        }
    }

    /// Sets the listener's stat prefix from its address (Envoy's
    /// `listener.<ip>_<port>`).
    pub fn with_listener(mut self, addr: std::net::SocketAddr) -> Stats {
        self.listener_prefix = format!("listener.{}_{}", addr.ip(), addr.port());
        self
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
        for (name, v) in self.reload.entries() {
            out.push(c(name.to_string(), v));
        }
        for (name, listener, v) in self.limits.entries() {
            let full = if listener {
                format!("{}.{name}", self.listener_prefix)
            } else {
                format!("http.{p}.{name}")
            };
            out.push(c(full, v));
        }
        for (name, s) in &self.clusters {
            let n = |stat: &str| format!("cluster.{name}.{stat}");
            out.push(c(n("upstream_rq_total"), &s.upstream_rq_total));
            out.push(c(
                n("upstream_flow_control_paused_reading_total"),
                &s.upstream_flow_control_paused_reading_total,
            ));
            out.push(c(
                n("upstream_flow_control_resumed_reading_total"),
                &s.upstream_flow_control_resumed_reading_total,
            ));
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

fn to_tag(t: &StatsTagSpec) -> Option<tags::StatsTag> {
    Some(tags::StatsTag {
        tag_name: t.tag_name.clone(),
        regex: t.regex.clone()?,
    })
}

/// Envoy's tag producer for this server: the configured `stats_tags`, then
/// Envoy's defaults (as Envoy orders them). In the `Auto` mode the tags are
/// the Istio standard labels plus every other label found in the names
/// being rendered (what Istio's `extraStatTags` would list).
///
/// Extraction and rendering are the custom-metrics filter's pure functions
/// (`wasmesh-stats`), so the local output matches what the Envoy and
/// Istio manifests produce.
#[derive(Debug)]
pub struct TagProducer {
    configured: Option<tags::TagProducer>,
}

impl TagProducer {
    /// Compiles the tag configuration.
    pub fn new(stats_tags: &StatsTags) -> Result<TagProducer, String> {
        Ok(TagProducer {
            configured: match stats_tags {
                StatsTags::Auto => None,
                StatsTags::Configured(list) => Some(tags::TagProducer::new(&Self::with_defaults(
                    list.iter().filter_map(to_tag).collect(),
                ))?),
            },
        })
    }

    fn with_defaults(mut list: Vec<tags::StatsTag>) -> Vec<tags::StatsTag> {
        list.extend(envoy_default_tags().iter().filter_map(to_tag));
        list
    }

    /// The producer for rendering `stats`.
    fn for_stats(&self, stats: &[StatEntry]) -> std::borrow::Cow<'_, tags::TagProducer> {
        if let Some(p) = &self.configured {
            return std::borrow::Cow::Borrowed(p);
        }
        let mut labels: Vec<&str> = Vec::new();
        for s in stats {
            let Some(defined) = s.name.strip_prefix(&format!("{CUSTOM_STAT_NAMESPACE}.")) else {
                continue;
            };
            if let Some((_, ls)) = tags::decode_stat_name(defined) {
                for (n, _) in ls {
                    if !labels.contains(&n) {
                        labels.push(n);
                    }
                }
            }
        }
        let list = Self::with_defaults(tags::stats_tags_for_labels(labels));
        std::borrow::Cow::Owned(
            tags::TagProducer::new(&list).unwrap_or_else(|_| tags::TagProducer::for_labels([])),
        )
    }

    /// The tag-extracted name and the tags of a full stat name.
    pub fn produce_tags(&self, stat_name: &str) -> (String, Vec<(String, String)>) {
        let entry = StatEntry {
            name: stat_name.to_string(),
            value: StatValue::Counter(0),
        };
        self.for_stats(std::slice::from_ref(&entry))
            .produce_tags(stat_name)
    }
}

/// `/stats/prometheus`.
pub fn render_prometheus(stats: &[StatEntry], producer: &TagProducer) -> String {
    let histograms: Vec<Option<tags::HistogramData>> = stats
        .iter()
        .map(|s| match &s.value {
            StatValue::Histogram {
                buckets,
                sum,
                count,
            } => Some(tags::HistogramData::from_bucket_counts(
                buckets, *sum, *count,
            )),
            _ => None,
        })
        .collect();
    let list: Vec<tags::Stat<'_>> = stats
        .iter()
        .zip(&histograms)
        .map(|(s, h)| tags::Stat {
            name: &s.name,
            value: match (&s.value, h) {
                (StatValue::Counter(v), _) => tags::StatValue::Counter(*v),
                (StatValue::Gauge(v), _) => tags::StatValue::Gauge(*v),
                (_, Some(h)) => tags::StatValue::Histogram(h),
                (_, None) => tags::StatValue::Counter(0),
            },
        })
        .collect();
    tags::render_prometheus(&list, &producer.for_stats(stats))
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
        use crate::host::HISTOGRAM_BUCKETS;
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
