//! Stat names that carry their labels, Envoy's tag extraction, and the
//! Prometheus text Envoy renders from them.
//!
//! A Proxy-Wasm module can only define metrics by name
//! (`proxy_define_metric(type, name)`), so labels travel inside the name, in
//! the encoding Istio's Wasm stats plugin used:
//!
//! ```text
//! reporter=.=destination;.;response_code=.=200;.;istio_requests_total
//! ```
//!
//! Every label is a `name=.=value;.;` segment, followed by the metric name.
//! Envoy prefixes the names of Wasm-defined metrics with the custom stat
//! namespace `wasmcustom.` ([`wasm_stat_name`]). Its tag extraction
//! (`stats_config.stats_tags`) then applies, for every label, a regex such as
//! `(reporter=\.=(.*?);\.;)`: the first capture group is cut out of the name,
//! the second becomes the tag's value ([`TagProducer`]). What is left,
//! `wasmcustom.istio_requests_total`, loses its registered namespace in the
//! Prometheus output, giving
//! `istio_requests_total{reporter="destination",response_code="200"} 1`
//! ([`render_prometheus`]).
//!
//! [`stats_tags_for_labels`] is the single source of truth for the
//! `stats_tags` entries our names need: the Envoy and Istio manifests and the
//! local data plane's `/stats/prometheus` all use it, so what a user sees
//! locally is what Envoy shows.
//!
//! Everything here is pure Rust: the harness links this module natively.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Separates a label's name from its value inside a stat name.
pub const VALUE_SEPARATOR: &str = "=.=";
/// Ends every label segment inside a stat name.
pub const FIELD_SEPARATOR: &str = ";.;";
/// The custom stat namespace Envoy puts in front of every metric a Wasm
/// module defines; the Prometheus output strips it again.
pub const CUSTOM_STAT_NAMESPACE: &str = "wasmcustom";

/// The Istio standard labels this filter records, in the order Istio's stats
/// plugin writes them. This is also the order of their `stats_tags` entries,
/// and therefore the order of the labels in Envoy's Prometheus output.
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

/// The counter that counts label sets folded into `other` by the cardinality
/// guard; its one label, [`OVERFLOW_LABEL`], names the metric.
pub const OVERFLOW_METRIC: &str = "wasmesh_metrics_label_overflow_total";
/// The label of [`OVERFLOW_METRIC`].
pub const OVERFLOW_LABEL: &str = "metric";

/// Appends one `name=.=value;.;` segment to `buf`.
///
/// The value is made safe for tag extraction: `;` becomes `_` (so a value can
/// never contain or complete a field separator) and a `.` between two `=`
/// becomes `_` (so a value can never contain a value separator, which would
/// let a client smuggle a label of its own into the name).
pub fn push_label(buf: &mut String, name: &str, value: &str) {
    buf.push_str(name);
    buf.push_str(VALUE_SEPARATOR);
    push_sanitized_value(buf, value);
    buf.push_str(FIELD_SEPARATOR);
}

fn push_sanitized_value(buf: &mut String, value: &str) {
    let b = value.as_bytes();
    // Fast path: most values have neither `;` nor `=`.
    if !b.iter().any(|&c| c == b';' || c == b'=') {
        buf.push_str(value);
        return;
    }
    let dangerous = |i: usize| {
        b[i] == b';' || (b[i] == b'.' && i > 0 && b[i - 1] == b'=' && b.get(i + 1) == Some(&b'='))
    };
    // Both replaced characters are ASCII: byte-wise replacement keeps UTF-8.
    let mut out = b.to_vec();
    for (i, c) in out.iter_mut().enumerate() {
        if dangerous(i) {
            *c = b'_';
        }
    }
    buf.push_str(&String::from_utf8_lossy(&out));
}

/// The value as [`push_label`] writes it.
pub fn sanitize_label_value(value: &str) -> Cow<'_, str> {
    let mut s = String::new();
    push_sanitized_value(&mut s, value);
    if s == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(s)
    }
}

/// The stat name for `metric` with `labels` (in order), as this filter passes
/// it to `proxy_define_metric`.
pub fn encode_stat_name(metric: &str, labels: &[(&str, &str)]) -> String {
    let mut s = String::with_capacity(
        metric.len()
            + labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>(),
    );
    for (k, v) in labels {
        push_label(&mut s, k, v);
    }
    s.push_str(metric);
    s
}

/// Splits a name written by [`encode_stat_name`] back into the metric name
/// and its labels. Returns `None` for a malformed name.
pub fn decode_stat_name(name: &str) -> Option<(&str, Vec<(&str, &str)>)> {
    let mut labels = Vec::new();
    let mut rest = name;
    while let Some(end) = rest.find(FIELD_SEPARATOR) {
        let segment = &rest[..end];
        let (k, v) = segment.split_once(VALUE_SEPARATOR)?;
        labels.push((k, v));
        rest = &rest[end + FIELD_SEPARATOR.len()..];
    }
    if rest.contains(VALUE_SEPARATOR) {
        return None;
    }
    Some((rest, labels))
}

/// The full Envoy stat name of a metric a Wasm module defined as `defined`.
pub fn wasm_stat_name(defined: &str) -> String {
    format!("{CUSTOM_STAT_NAMESPACE}.{defined}")
}

/// One `stats_config.stats_tags` entry of an Envoy bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsTag {
    /// `tag_name`: the Prometheus label name.
    pub tag_name: String,
    /// `regex`: the first capture group is removed from the stat name, the
    /// second is the tag's value.
    pub regex: String,
}

impl StatsTag {
    /// The entry that extracts `label` from names written by [`push_label`]:
    /// `(?:^|[.;])(label=\.=(.*?);\.;)`.
    ///
    /// Istio's bootstrap writes `(label=\.=(.*?);\.;)`, which also matches
    /// inside a longer label ending in `_label` (`code` inside
    /// `response_code=.=200;.;`, `version` inside `source_version`). The
    /// label here must start the name, or follow the namespace's `.` or the
    /// previous segment's `;`; that character is outside the first capture
    /// group, so Envoy does not remove it.
    pub fn for_label(label: &str) -> StatsTag {
        StatsTag {
            tag_name: label.to_string(),
            regex: format!("(?:^|[.;])({label}=\\.=(.*?);\\.;)"),
        }
    }
}

/// The `stats_tags` entries for the standard labels and the overflow counter.
pub fn standard_stats_tags() -> Vec<StatsTag> {
    stats_tags_for_labels(std::iter::empty())
}

/// The `stats_tags` entries our names need: the standard labels, the
/// overflow counter's label, then every other label in `labels` (first
/// occurrence order, duplicates dropped). Label order in Envoy's Prometheus
/// output follows this list.
pub fn stats_tags_for_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<StatsTag> {
    let mut names: Vec<&str> = STANDARD_LABELS.to_vec();
    names.push(OVERFLOW_LABEL);
    for l in labels {
        if !names.contains(&l) {
            names.push(l);
        }
    }
    names.into_iter().map(StatsTag::for_label).collect()
}

/// One compiled tag extractor (Envoy's `TagExtractorStdRegexImpl`).
#[derive(Debug, Clone)]
struct TagExtractor {
    name: String,
    regex: regex_lite::Regex,
}

/// Envoy's tag producer: the configured `stats_tags` applied to a stat name.
///
/// As in Envoy (`TagProducerImpl::produceTags`), every extractor runs on the
/// original name; extractors whose regex starts with a literal `^token\.`
/// only run on names whose first `.`-separated token is `token` and come after
/// the others; the first capture group of a match is removed from the name and
/// the second (or the first, if there is no second) is the value; when several
/// extractors share a tag name, only the first that matches produces the tag.
/// The tags are returned in that order, which is the label order of the
/// Prometheus output.
#[derive(Debug, Clone)]
pub struct TagProducer {
    without_prefix: Vec<TagExtractor>,
    with_prefix: Vec<(String, TagExtractor)>,
}

impl TagProducer {
    /// Compiles `tags`. Fails on a regex this implementation cannot run
    /// (e.g. look-ahead, which Envoy's `std::regex` supports) or one without a
    /// capture group.
    pub fn new(tags: &[StatsTag]) -> Result<TagProducer, String> {
        let mut p = TagProducer {
            without_prefix: Vec::new(),
            with_prefix: Vec::new(),
        };
        for t in tags {
            let regex = regex_lite::Regex::new(&t.regex)
                .map_err(|e| format!("stats tag `{}`: regex `{}`: {e}", t.tag_name, t.regex))?;
            if regex.captures_len() < 2 {
                return Err(format!(
                    "stats tag `{}`: regex `{}` has no capture group",
                    t.tag_name, t.regex
                ));
            }
            let ex = TagExtractor {
                name: t.tag_name.clone(),
                regex,
            };
            match regex_prefix_token(&t.regex) {
                Some(tok) => p.with_prefix.push((tok, ex)),
                None => p.without_prefix.push(ex),
            }
        }
        Ok(p)
    }

    /// The producer for [`standard_stats_tags`] plus `labels`.
    pub fn for_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> TagProducer {
        // Our own regexes always compile.
        TagProducer::new(&stats_tags_for_labels(labels)).unwrap_or(TagProducer {
            without_prefix: Vec::new(),
            with_prefix: Vec::new(),
        })
    }

    /// The tag-extracted name and the tags of `stat_name` (a full Envoy stat
    /// name, e.g. `wasmcustom.reporter=.=destination;.;istio_requests_total`).
    pub fn produce_tags(&self, stat_name: &str) -> (String, Vec<(String, String)>) {
        let mut tags: Vec<(String, String)> = Vec::new();
        let mut remove: Vec<(usize, usize)> = Vec::new();
        let first_token = stat_name.split_once('.').map(|(t, _)| t);
        let prefixed = self
            .with_prefix
            .iter()
            .filter(|(tok, _)| Some(tok.as_str()) == first_token)
            .map(|(_, ex)| ex);
        for ex in self.without_prefix.iter().chain(prefixed) {
            if tags.iter().any(|(n, _)| *n == ex.name) {
                continue;
            }
            let Some(caps) = ex.regex.captures(stat_name) else {
                continue;
            };
            let Some(removed) = caps.get(1) else {
                continue;
            };
            let value = caps.get(2).unwrap_or(removed);
            tags.push((ex.name.clone(), value.as_str().to_string()));
            remove.push((removed.start(), removed.end()));
        }
        (remove_intervals(stat_name, &mut remove), tags)
    }
}

/// Envoy's `TagExtractorImplBase::extractRegexPrefix`: `^token\.` (or
/// `^token(?=\.)`, or `^token$`) gives `token`.
fn regex_prefix_token(regex: &str) -> Option<String> {
    let rest = regex.strip_prefix('^')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let after = &rest[end..];
    let ok = after.starts_with("\\.") || after.starts_with("(?=\\.)") || after == "$";
    ok.then(|| rest[..end].to_string())
}

fn remove_intervals(s: &str, intervals: &mut [(usize, usize)]) -> String {
    if intervals.is_empty() {
        return s.to_string();
    }
    intervals.sort_unstable();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for &(start, end) in intervals.iter() {
        if start > pos {
            out.push_str(&s[pos..start]);
        }
        pos = pos.max(end);
    }
    if pos < s.len() {
        out.push_str(&s[pos..]);
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
