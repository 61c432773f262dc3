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

mod prometheus;
mod tags;
#[cfg(test)]
mod tests;

pub use prometheus::*;
pub use tags::TagProducer;

use std::borrow::Cow;

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
