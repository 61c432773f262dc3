//! The plugin configuration (JSON, camelCase) and its compiled form.

use crate::attribute::{self, Attribute, Derived, PeerSide, PropKind};
use crate::tags::{self, MetricKind, StatsTag, STANDARD_LABELS};
use crate::templates::PathTemplates;
use serde::{Deserialize, Deserializer};
use wasmesh_common::config::{parse_json, UniqueMap};
use wasmesh_common::{ConfigError, FieldPath};

/// Istio's standard request metrics, in the order they are recorded.
pub const STANDARD_METRICS: [(&str, MetricKind); 4] = [
    ("istio_requests_total", MetricKind::Counter),
    ("istio_request_duration_milliseconds", MetricKind::Histogram),
    ("istio_request_bytes", MetricKind::Histogram),
    ("istio_response_bytes", MetricKind::Histogram),
];

/// Default for `maxLabelValues`.
pub const DEFAULT_MAX_LABEL_VALUES: u32 = 1000;
/// Largest accepted `maxLabelValues`.
pub const MAX_MAX_LABEL_VALUES: u32 = 1_000_000;
/// Default for `clusterHeader` (the header router's default).
pub const DEFAULT_CLUSTER_HEADER: &str = "x-wasmesh-cluster";

/// The plugin configuration, as written (JSON, camelCase field names). Read
/// by [`PluginConfig::parse`]: unknown fields are refused and every error
/// names the JSON path of its field, as `wasmesh_common::parse_json` does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PluginConfig {
    /// `standardMetrics`: record Istio's standard metrics
    /// (`istio_requests_total`, `istio_request_duration_milliseconds`,
    /// `istio_request_bytes`, `istio_response_bytes`). Default `true`.
    pub standard_metrics: bool,
    /// `reporter`: which side this proxy reports as: `destination` (the
    /// server's sidecar, inbound; Istio's default for server-side metrics) or
    /// `source` (the client's sidecar or a gateway, outbound). Default
    /// `destination`.
    pub reporter: Reporter,
    /// `metrics`: user-defined metrics. A metric named like a standard metric
    /// adds its `dimensions` to that metric (or overrides a standard label's
    /// expression), as Istio's stats `metrics` overrides do.
    pub metrics: Vec<MetricConfig>,
    /// `pathTemplates`: path templates for `request.path_template`
    /// (`/users/{id}`); a path no template matches is labelled `other`.
    pub path_templates: Vec<String>,
    /// `maxLabelValues`: at most this many distinct label sets per metric
    /// (per VM); further sets fold into `other` and
    /// `wasmesh_metrics_label_overflow_total` counts them. Default 1000.
    pub max_label_values: u32,
    /// `tagsToRemove`: labels to drop from a metric, e.g.
    /// `{"istio_requests_total": ["source_principal"]}`.
    #[serde(deserialize_with = "tags_to_remove")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, Vec<String>>")
    )]
    pub tags_to_remove: Vec<(String, Vec<String>)>,
    /// `clusterHeader`: request header holding the routed cluster when the
    /// proxy does not expose `xds.cluster_name` (the header router's
    /// `clusterHeader`). Default `x-wasmesh-cluster`.
    pub cluster_header: Option<String>,
    /// `accessLog`: a structured JSON access log line at stream end.
    pub access_log: Option<AccessLogConfig>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            standard_metrics: true,
            reporter: Reporter::Destination,
            metrics: Vec::new(),
            path_templates: Vec::new(),
            max_label_values: DEFAULT_MAX_LABEL_VALUES,
            tags_to_remove: Vec::new(),
            cluster_header: None,
            access_log: None,
        }
    }
}

/// Istio's `reporter` label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Reporter {
    /// `destination`: server side (inbound).
    #[default]
    Destination,
    /// `source`: client side (outbound).
    Source,
}

impl Reporter {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Destination => "destination",
            Reporter::Source => "source",
        }
    }
}

/// The type of a user metric (Istio's `MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum MetricType {
    /// `COUNTER`: incremented by `value` (default 1) per request.
    Counter,
    /// `GAUGE`: set to `value` at stream end; with `value: inflight`, the
    /// number of requests in flight.
    Gauge,
    /// `HISTOGRAM`: one sample of `value` per request.
    Histogram,
}

impl MetricType {
    fn kind(self) -> MetricKind {
        match self {
            MetricType::Counter => MetricKind::Counter,
            MetricType::Gauge => MetricKind::Gauge,
            MetricType::Histogram => MetricKind::Histogram,
        }
    }
}

/// One user metric.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MetricConfig {
    /// `name`: the metric name as Prometheus shows it
    /// (`[a-zA-Z_][a-zA-Z0-9_]*`).
    pub name: String,
    /// `type`: `COUNTER`, `GAUGE` or `HISTOGRAM`. Required except when
    /// extending a standard metric.
    #[serde(rename = "type", default)]
    pub kind: Option<MetricType>,
    /// `value`: attribute giving the sample (`request.duration_ms`,
    /// `request.size`, `response.size`, `inflight`, ...). Optional for a
    /// counter (default 1), required for gauges and histograms.
    #[serde(default)]
    pub value: Option<String>,
    /// `dimensions`: label name → attribute expression. Labels are written
    /// into the stat name sorted by name (as Istio does).
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, String>")
    )]
    pub dimensions: OrderedMap,
}

/// The access log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AccessLogConfig {
    /// `enabled`: write the line. Default `true` (the object's presence
    /// enables it).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `fields`: JSON key → attribute expression, in output order. Default:
    /// [`DEFAULT_ACCESS_LOG_FIELDS`].
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<std::collections::BTreeMap<String, String>>")
    )]
    #[serde(default)]
    pub fields: Option<OrderedMap>,
}

/// `accessLog.enabled`'s default.
fn default_true() -> bool {
    true
}

/// The access log fields used when `accessLog.fields` is not given (names as
/// in Envoy's default access log format).
pub const DEFAULT_ACCESS_LOG_FIELDS: [(&str, &str); 14] = [
    ("start_time", "request.time"),
    ("method", "request.method"),
    ("path", "request.path"),
    ("protocol", "request.protocol"),
    ("response_code", "response.code"),
    ("response_flags", "response.flags"),
    ("bytes_received", "request.size"),
    ("bytes_sent", "response.size"),
    ("duration", "request.duration_ms"),
    ("upstream_cluster", "xds.cluster_name"),
    ("authority", "request.host"),
    ("user_agent", "request.useragent"),
    ("request_id", "request.id"),
    ("downstream_remote_address", "source.address"),
];

/// A JSON object of strings in document order (duplicate keys refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedMap(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UniqueMap::<String>::deserialize(d).map(|m| OrderedMap(m.0))
    }
}

/// `tagsToRemove`: metric name → labels, a metric named once.
fn tags_to_remove<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Vec<String>)>, D::Error> {
    UniqueMap::<Vec<String>>::deserialize(d).map(|m| m.0)
}

impl PluginConfig {
    /// Parses a configuration document. An empty (or all-whitespace)
    /// document is `{}`: every default.
    pub fn parse(bytes: &[u8]) -> Result<PluginConfig, ConfigError> {
        parse_json(bytes)
    }
}

/// Local workload facts from the node metadata (Istio's `WORKLOAD_NAME`,
/// `NAMESPACE`, `LABELS`). Empty strings mean unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `node.metadata.WORKLOAD_NAME`.
    pub workload: String,
    /// `node.metadata.NAMESPACE`.
    pub namespace: String,
    /// `node.metadata.LABELS.app` (or `app.kubernetes.io/name`).
    pub app: String,
    /// `node.metadata.LABELS.version` (or `app.kubernetes.io/version`).
    pub version: String,
}

/// Where a label's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSource {
    /// The same for every request of this VM (reporter, node metadata): kept
    /// when the cardinality guard folds a label set.
    Static(String),
    /// An attribute slot of [`Compiled::attributes`].
    Slot(usize),
}

/// One label of a metric group.
#[derive(Debug, Clone)]
pub struct LabelDef {
    /// Label name.
    pub name: String,
    /// Value source.
    pub source: LabelSource,
    /// An empty value is written `unknown` (Istio's standard labels).
    pub unknown_if_empty: bool,
}

/// How a metric's sample is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    /// Always 1 (counters without `value`).
    One,
    /// An attribute slot.
    Slot(usize),
}

/// One metric of a group.
#[derive(Debug, Clone)]
pub struct MetricDef {
    /// Metric name.
    pub name: String,
    /// Kind.
    pub kind: MetricKind,
    /// Sample.
    pub value: ValueSource,
}

/// Metrics that share one label list (and so one label-set cache and one
/// cardinality budget).
#[derive(Debug, Clone)]
pub struct GroupDef {
    /// Labels in name order.
    pub labels: Vec<LabelDef>,
    /// Metrics.
    pub metrics: Vec<MetricDef>,
}

/// The configuration compiled for per-request use.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Distinct attributes read per request (label, value and log slots).
    pub attributes: Vec<Attribute>,
    /// Metric groups recorded at stream end.
    pub groups: Vec<GroupDef>,
    /// `inflight` gauges: labels resolved when the request starts, +1 then,
    /// -1 at stream end.
    pub inflight_groups: Vec<GroupDef>,
    /// Path templates.
    pub templates: PathTemplates,
    /// Cardinality limit per group.
    pub max_label_values: usize,
    /// Header with the routed cluster (fallback for `xds.cluster_name`).
    pub cluster_header: String,
    /// Access log fields (key, slot), when enabled.
    pub access_log: Option<Vec<(String, usize)>>,
    /// Reporter.
    pub reporter: Reporter,
    /// Node facts.
    pub node: NodeInfo,
    /// Every label name used, for [`Compiled::stats_tags`].
    label_names: Vec<String>,
    uses_inflight: bool,
}

impl Compiled {
    /// Parses and compiles a configuration document.
    pub fn from_json(bytes: &[u8], node: NodeInfo) -> Result<Compiled, ConfigError> {
        let cfg = PluginConfig::parse(bytes)?;
        Compiled::new(&cfg, node)
    }

    /// The `stats_tags` entries the metrics of this configuration need.
    pub fn stats_tags(&self) -> Vec<StatsTag> {
        tags::stats_tags_for_labels(self.label_names.iter().map(|s| s.as_str()))
    }

    /// Whether anything reads `inflight`.
    pub fn uses_inflight(&self) -> bool {
        self.uses_inflight
    }

    /// Compiles a parsed configuration.
    pub fn new(cfg: &PluginConfig, node: NodeInfo) -> Result<Compiled, ConfigError> {
        let root = FieldPath::root();
        let templates = PathTemplates::compile(&cfg.path_templates, &root.field("pathTemplates"))?;
        if cfg.max_label_values == 0 || cfg.max_label_values > MAX_MAX_LABEL_VALUES {
            return Err(root.field("maxLabelValues").error(format!(
                "must be between 1 and {MAX_MAX_LABEL_VALUES}, got {}",
                cfg.max_label_values
            )));
        }
        let cluster_header = match &cfg.cluster_header {
            Some(h) => {
                attribute::header_name(h).map_err(|e| root.field("clusterHeader").error(e))?
            }
            None => DEFAULT_CLUSTER_HEADER.to_string(),
        };
        let mut b = Builder::default();

        // Standard metrics: one label list, possibly extended per metric.
        let std_labels = standard_label_sources(cfg.reporter, &node, &mut b);
        let mut std_extra: Vec<Vec<LabelDef>> = vec![std_labels.clone(); STANDARD_METRICS.len()];
        let mut seen_names: Vec<&str> = Vec::new();
        let mut user_groups: Vec<(bool, GroupDef)> = Vec::new();
        let metrics_path = root.field("metrics");
        for (i, m) in cfg.metrics.iter().enumerate() {
            let mp = metrics_path.index(i);
            check_name(&m.name).map_err(|e| mp.field("name").error(e))?;
            if seen_names.contains(&m.name.as_str()) {
                return Err(mp
                    .field("name")
                    .error(format!("duplicate metric `{}`", m.name)));
            }
            seen_names.push(&m.name);
            if m.name == tags::OVERFLOW_METRIC {
                return Err(mp.field("name").error(format!("`{}` is reserved", m.name)));
            }
            let std_index = STANDARD_METRICS.iter().position(|(n, _)| *n == m.name);
            if let (true, Some(si)) = (cfg.standard_metrics, std_index) {
                // Extend or override the standard metric's labels.
                let kind = STANDARD_METRICS[si].1;
                if let Some(t) = m.kind {
                    if t.kind() != kind {
                        return Err(mp.field("type").error(format!(
                            "`{}` is a standard {} and cannot change type",
                            m.name,
                            kind.prometheus_type()
                        )));
                    }
                }
                if m.value.is_some() {
                    return Err(mp.field("value").error(format!(
                        "the value of standard metric `{}` is fixed",
                        m.name
                    )));
                }
                for (label, expr) in &m.dimensions.0 {
                    let lp = mp.field("dimensions").key(label);
                    check_label_name(label).map_err(|e| lp.error(e))?;
                    let attr = attribute::parse(expr).map_err(|e| lp.error(e))?;
                    let slot = b.slot(attr);
                    let labels = &mut std_extra[si];
                    let def = LabelDef {
                        name: label.clone(),
                        source: LabelSource::Slot(slot),
                        unknown_if_empty: false,
                    };
                    match labels.iter_mut().find(|l| l.name == *label) {
                        Some(existing) => *existing = def,
                        None => labels.push(def),
                    }
                }
                continue;
            }
            let Some(t) = m.kind else {
                return Err(mp
                    .field("type")
                    .error("required: COUNTER, GAUGE or HISTOGRAM"));
            };
            let mut labels = Vec::with_capacity(m.dimensions.0.len());
            for (label, expr) in &m.dimensions.0 {
                let lp = mp.field("dimensions").key(label);
                check_label_name(label).map_err(|e| lp.error(e))?;
                let attr = attribute::parse(expr).map_err(|e| lp.error(e))?;
                labels.push(LabelDef {
                    name: label.clone(),
                    source: LabelSource::Slot(b.slot(attr)),
                    unknown_if_empty: false,
                });
            }
            // Label order in the stat name is by name, as Istio sorts its
            // dimensions: a configuration that passed through a protobuf
            // Struct (WasmPlugin.pluginConfig) or a YAML tool may have its
            // keys reordered, and the names must not change with that.
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            let vp = mp.field("value");
            let (value, inflight) = match (&m.value, t) {
                (None, MetricType::Counter) => (ValueSource::One, false),
                (None, _) => return Err(vp.error("required for GAUGE and HISTOGRAM")),
                (Some(expr), _) => {
                    let attr = attribute::parse(expr).map_err(|e| vp.error(e))?;
                    if !attr.is_numeric() {
                        return Err(vp.error(format!("`{expr}` is not a number")));
                    }
                    let inflight = t == MetricType::Gauge && attr == Attribute::Inflight;
                    (ValueSource::Slot(b.slot(attr)), inflight)
                }
            };
            user_groups.push((
                inflight,
                GroupDef {
                    labels,
                    metrics: vec![MetricDef {
                        name: m.name.clone(),
                        kind: t.kind(),
                        value,
                    }],
                },
            ));
        }

        // tagsToRemove.
        let trp = root.field("tagsToRemove");
        for (metric, labels) in &cfg.tags_to_remove {
            let p = trp.key(metric);
            let target: &mut Vec<LabelDef> = if let (true, Some(si)) = (
                cfg.standard_metrics,
                STANDARD_METRICS.iter().position(|(n, _)| n == metric),
            ) {
                &mut std_extra[si]
            } else if let Some((_, g)) = user_groups
                .iter_mut()
                .find(|(_, g)| g.metrics[0].name == *metric)
            {
                &mut g.labels
            } else {
                return Err(p.error(format!("unknown metric `{metric}`")));
            };
            for (j, l) in labels.iter().enumerate() {
                let Some(pos) = target.iter().position(|d| d.name == *l) else {
                    return Err(p.index(j).error(format!("`{metric}` has no label `{l}`")));
                };
                target.remove(pos);
            }
        }

        // Standard metrics with identical label lists share a group.
        let mut groups: Vec<GroupDef> = Vec::new();
        if cfg.standard_metrics {
            for (si, (name, kind)) in STANDARD_METRICS.iter().enumerate() {
                let value = match si {
                    0 => ValueSource::One,
                    1 => ValueSource::Slot(b.slot(Attribute::DurationMs)),
                    2 => ValueSource::Slot(b.slot(Attribute::RequestTotalSize)),
                    _ => ValueSource::Slot(b.slot(Attribute::ResponseTotalSize)),
                };
                let def = MetricDef {
                    name: name.to_string(),
                    kind: *kind,
                    value,
                };
                let labels = &std_extra[si];
                match groups.iter_mut().find(|g| same_labels(&g.labels, labels)) {
                    Some(g) => g.metrics.push(def),
                    None => groups.push(GroupDef {
                        labels: labels.clone(),
                        metrics: vec![def],
                    }),
                }
            }
        }
        let mut inflight_groups = Vec::new();
        for (inflight, g) in user_groups {
            if inflight {
                inflight_groups.push(g);
            } else {
                groups.push(g);
            }
        }

        // Access log.
        let access_log = match &cfg.access_log {
            Some(a) if a.enabled => {
                let ap = root.field("accessLog").field("fields");
                let fields: Vec<(String, String)> = match &a.fields {
                    Some(f) => f.0.clone(),
                    None => DEFAULT_ACCESS_LOG_FIELDS
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                };
                if fields.is_empty() {
                    return Err(ap.error("at least one field is needed"));
                }
                let mut out = Vec::with_capacity(fields.len());
                for (k, expr) in fields {
                    let fp = ap.key(&k);
                    if k.is_empty() {
                        return Err(fp.error("empty field name"));
                    }
                    let attr = attribute::parse(&expr).map_err(|e| fp.error(e))?;
                    out.push((k, b.slot(attr)));
                }
                Some(out)
            }
            _ => None,
        };

        let mut label_names: Vec<String> = Vec::new();
        for g in groups.iter().chain(inflight_groups.iter()) {
            for l in &g.labels {
                if !label_names.contains(&l.name) {
                    label_names.push(l.name.clone());
                }
            }
        }
        let uses_inflight =
            !inflight_groups.is_empty() || b.attributes.contains(&Attribute::Inflight);
        Ok(Compiled {
            uses_inflight,
            attributes: b.attributes,
            groups,
            inflight_groups,
            templates,
            max_label_values: cfg.max_label_values as usize,
            cluster_header,
            access_log,
            reporter: cfg.reporter,
            node,
            label_names,
        })
    }
}

/// The `stats_tags` entries needed by a configuration document (standard
/// labels, the overflow counter's label and every user label), for the
/// manifests and the local data plane.
pub fn stats_tags_for_config(bytes: &[u8]) -> Result<Vec<StatsTag>, ConfigError> {
    Ok(Compiled::from_json(bytes, NodeInfo::default())?.stats_tags())
}

fn same_labels(a: &[LabelDef], b: &[LabelDef]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.source == y.source)
}

#[derive(Default)]
struct Builder {
    attributes: Vec<Attribute>,
}

impl Builder {
    fn slot(&mut self, a: Attribute) -> usize {
        match self.attributes.iter().position(|x| *x == a) {
            Some(i) => i,
            None => {
                self.attributes.push(a);
                self.attributes.len() - 1
            }
        }
    }
}

/// A static label value, made safe for the stat name once.
fn or_unknown(s: &str) -> String {
    if s.is_empty() {
        "unknown".to_string()
    } else {
        tags::sanitize_label_value(s).into_owned()
    }
}

/// Where a standard label comes from.
#[derive(Clone, Copy)]
enum Std {
    Reporter,
    Peer(&'static str),
    Node(fn(&NodeInfo) -> &str),
    Prop(&'static [&'static str]),
    Derived(Derived),
    Code,
    Flags,
    Unknown,
}

const WORKLOAD: fn(&NodeInfo) -> &str = |n| &n.workload;
const NAMESPACE: fn(&NodeInfo) -> &str = |n| &n.namespace;
const APP: fn(&NodeInfo) -> &str = |n| &n.app;
const VERSION: fn(&NodeInfo) -> &str = |n| &n.version;

/// Reporter `destination`: the peer is the client (`downstream_peer`), the
/// local workload is the destination.
const DESTINATION_SOURCES: [Std; 17] = [
    Std::Reporter,
    Std::Peer("workload"),
    Std::Peer("namespace"),
    Std::Derived(Derived::PeerPrincipal),
    Std::Peer("app"),
    Std::Peer("version"),
    Std::Node(WORKLOAD),
    Std::Node(NAMESPACE),
    Std::Derived(Derived::LocalPrincipal),
    Std::Derived(Derived::DestinationService),
    Std::Derived(Derived::DestinationServiceName),
    Std::Derived(Derived::DestinationServiceNamespace),
    Std::Derived(Derived::Protocol),
    Std::Code,
    Std::Derived(Derived::GrpcLabel),
    Std::Flags,
    Std::Derived(Derived::SecurityPolicy),
];

/// Reporter `source`: the local workload is the source, the peer is the
/// server (`upstream_peer`); the client side does not know the server's
/// security policy (Istio writes `unknown`).
const SOURCE_SOURCES: [Std; 17] = [
    Std::Reporter,
    Std::Node(WORKLOAD),
    Std::Node(NAMESPACE),
    Std::Prop(&["upstream", "uri_san_local_certificate"]),
    Std::Node(APP),
    Std::Node(VERSION),
    Std::Peer("workload"),
    Std::Peer("namespace"),
    Std::Prop(&["upstream", "uri_san_peer_certificate"]),
    Std::Derived(Derived::DestinationService),
    Std::Derived(Derived::DestinationServiceName),
    Std::Derived(Derived::DestinationServiceNamespace),
    Std::Derived(Derived::Protocol),
    Std::Code,
    Std::Derived(Derived::GrpcLabel),
    Std::Flags,
    Std::Unknown,
];

/// The sources of the standard labels for `reporter`, in
/// [`STANDARD_LABELS`] order.
fn standard_label_sources(reporter: Reporter, node: &NodeInfo, b: &mut Builder) -> Vec<LabelDef> {
    let (table, peer) = match reporter {
        Reporter::Destination => (&DESTINATION_SOURCES, PeerSide::Downstream),
        Reporter::Source => (&SOURCE_SOURCES, PeerSide::Upstream),
    };
    STANDARD_LABELS
        .iter()
        .zip(table.iter())
        .map(|(name, src)| {
            let source = match *src {
                Std::Reporter => LabelSource::Static(reporter.as_str().to_string()),
                Std::Node(f) => LabelSource::Static(or_unknown(f(node))),
                Std::Unknown => LabelSource::Static("unknown".to_string()),
                Std::Peer(field) => LabelSource::Slot(b.slot(Attribute::Peer(peer, field))),
                Std::Prop(path) => LabelSource::Slot(b.slot(Attribute::Property(
                    path.iter().map(|s| s.to_string()).collect(),
                    PropKind::Str,
                ))),
                Std::Derived(d) => LabelSource::Slot(b.slot(Attribute::Derived(d))),
                Std::Code => LabelSource::Slot(b.slot(Attribute::Derived(Derived::CodeLabel))),
                Std::Flags => LabelSource::Slot(b.slot(Attribute::ResponseFlags)),
            };
            LabelDef {
                name: name.to_string(),
                source,
                unknown_if_empty: *name != "grpc_response_status",
            }
        })
        .collect()
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid metric name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    check_name(name)
        .map_err(|_| format!("`{name}` is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"))?;
    if name == "le" || name.starts_with("__") {
        return Err(format!("`{name}` is a reserved Prometheus label name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
