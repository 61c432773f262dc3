//! Envoy's Prometheus text (`/stats/prometheus`): metric names, label
//! escaping, histograms with Envoy's default buckets, and the rendering of
//! a set of stats through a [`TagProducer`].

use crate::{TagProducer, CUSTOM_STAT_NAMESPACE};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Envoy's Prometheus name sanitiser: every character outside
/// `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize_prometheus_name(name: &str) -> String {
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

/// Envoy's Prometheus label-value escaping: `\` → `\\`, newline → `\n`,
/// `"` → `\"`.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '\n', '"']) {
        return Cow::Borrowed(value);
    }
    let mut s = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '"' => s.push_str("\\\""),
            c => s.push(c),
        }
    }
    Cow::Owned(s)
}

/// Envoy's `PrometheusStatsFormatter::metricName`: a name in a registered
/// custom namespace (`wasmcustom.`) loses the namespace and must then not
/// start with a digit (else the metric is not exported: `None`); any other
/// name gets the `envoy_` prefix.
pub fn prometheus_metric_name(tag_extracted_name: &str) -> Option<String> {
    let custom_prefix = format!("{CUSTOM_STAT_NAMESPACE}.");
    match tag_extracted_name.strip_prefix(&custom_prefix) {
        Some(stripped) => {
            let s = sanitize_prometheus_name(stripped);
            if s.is_empty() || s.as_bytes()[0].is_ascii_digit() {
                None
            } else {
                Some(s)
            }
        }
        None => Some(format!(
            "envoy_{}",
            sanitize_prometheus_name(tag_extracted_name)
        )),
    }
}

/// Envoy's default histogram bucket bounds (`stats_config` without
/// `histogram_bucket_settings`).
pub const DEFAULT_HISTOGRAM_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The samples of one histogram, kept as Envoy's Prometheus output needs
/// them: how many samples fall at or below each default bucket bound, their
/// sum and their count. Unlike Envoy's log-linear approximation, counts and
/// sum are exact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramData {
    /// Samples `<= DEFAULT_HISTOGRAM_BUCKETS[i]` (not cumulative across
    /// buckets: each sample is counted in the first bucket it fits).
    bucket_counts: [u64; 19],
    /// Sum of all samples.
    pub sum: u64,
    /// Number of samples.
    pub count: u64,
}

impl HistogramData {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// A histogram from per-bucket sample counts (one count per
    /// [`DEFAULT_HISTOGRAM_BUCKETS`] bound, not cumulative; a trailing
    /// overflow count is ignored), the sum and the count — the form the
    /// harness keeps.
    pub fn from_bucket_counts(per_bucket: &[u64], sum: u64, count: u64) -> Self {
        let mut bucket_counts = [0u64; 19];
        for (dst, src) in bucket_counts.iter_mut().zip(per_bucket) {
            *dst = *src;
        }
        HistogramData {
            bucket_counts,
            sum,
            count,
        }
    }

    /// Records one sample (`proxy_record_metric` on a histogram).
    pub fn record(&mut self, value: u64) {
        self.sum = self.sum.saturating_add(value);
        self.count += 1;
        let v = value as f64;
        if let Some(i) = DEFAULT_HISTOGRAM_BUCKETS.iter().position(|b| v <= *b) {
            self.bucket_counts[i] += 1;
        }
    }

    /// Cumulative counts per bucket bound, as Prometheus `le` buckets.
    pub fn cumulative_buckets(&self) -> [u64; 19] {
        let mut out = [0u64; 19];
        let mut acc = 0;
        for (i, c) in self.bucket_counts.iter().enumerate() {
            acc += c;
            out[i] = acc;
        }
        out
    }
}

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram.
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE` word.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// The value of one stat.
#[derive(Debug, Clone, Copy)]
pub enum StatValue<'a> {
    /// A counter's value.
    Counter(u64),
    /// A gauge's value.
    Gauge(i64),
    /// A histogram's samples.
    Histogram(&'a HistogramData),
}

impl StatValue<'_> {
    fn kind(&self) -> MetricKind {
        match self {
            StatValue::Counter(_) => MetricKind::Counter,
            StatValue::Gauge(_) => MetricKind::Gauge,
            StatValue::Histogram(_) => MetricKind::Histogram,
        }
    }
}

/// One stat to render: its full Envoy name (for a Wasm metric,
/// [`wasm_stat_name`] of the name the module defined) and its value.
#[derive(Debug, Clone, Copy)]
pub struct Stat<'a> {
    /// Full Envoy stat name.
    pub name: &'a str,
    /// Value.
    pub value: StatValue<'a>,
}

/// Envoy's `/stats/prometheus` text for `stats`, with tags extracted by
/// `producer`.
///
/// As Envoy renders it: counters, then gauges, then histograms; within each
/// kind one group per tag-extracted name (in byte order), introduced by
/// `# TYPE <name> <kind>`; inside a group the stats ordered by their full
/// names (`.`-separated tokens compared in turn); every line is
/// `name{labels} value` (`{}` when there are no labels); histograms as
/// `_bucket{..,le="<bound>"}` lines for Envoy's default bounds and `+Inf`,
/// then `_sum` and `_count`.
pub fn render_prometheus(stats: &[Stat<'_>], producer: &TagProducer) -> String {
    struct Item<'a> {
        name: &'a str,
        tags: Vec<(String, String)>,
        value: StatValue<'a>,
    }
    let mut groups: [BTreeMap<String, Vec<Item<'_>>>; 3] = Default::default();
    for s in stats {
        let (extracted, tags) = producer.produce_tags(s.name);
        let idx = s.value.kind() as usize;
        groups[idx].entry(extracted).or_default().push(Item {
            name: s.name,
            tags,
            value: s.value,
        });
    }
    let mut out = String::new();
    for (kind_idx, kind_groups) in groups.iter_mut().enumerate() {
        for (extracted, items) in kind_groups.iter_mut() {
            let Some(name) = prometheus_metric_name(extracted) else {
                continue;
            };
            items.sort_by(|a, b| stat_name_cmp(a.name, b.name));
            let kind = [
                MetricKind::Counter,
                MetricKind::Gauge,
                MetricKind::Histogram,
            ][kind_idx];
            let _ = writeln!(out, "# TYPE {name} {}", kind.prometheus_type());
            for it in items.iter() {
                let tags = formatted_tags(&it.tags);
                match it.value {
                    StatValue::Counter(v) => {
                        let _ = writeln!(out, "{name}{{{tags}}} {v}");
                    }
                    StatValue::Gauge(v) => {
                        let _ = writeln!(out, "{name}{{{tags}}} {v}");
                    }
                    StatValue::Histogram(h) => render_histogram(&mut out, &name, &tags, h),
                }
            }
        }
    }
    out
}

fn render_histogram(out: &mut String, name: &str, tags: &str, h: &HistogramData) {
    let hist_tags = if tags.is_empty() {
        String::new()
    } else {
        format!("{tags},")
    };
    for (bound, count) in DEFAULT_HISTOGRAM_BUCKETS.iter().zip(h.cumulative_buckets()) {
        let _ = writeln!(out, "{name}_bucket{{{hist_tags}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{hist_tags}le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{tags}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{tags}}} {}", h.count);
}

fn formatted_tags(tags: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{}=\"{}\"",
            sanitize_prometheus_name(k),
            escape_label_value(v)
        );
    }
    s
}

/// Envoy's `SymbolTable::lessThan`: names compared token by token (`.`
/// separated).
fn stat_name_cmp(a: &str, b: &str) -> Ordering {
    a.split('.').cmp(b.split('.'))
}
