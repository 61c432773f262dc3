//! The scenario file format (see `docs/scenarios.md`). Unknown keys are
//! refused so that a typo in an expectation cannot silently pass.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Virtual clock at start, unix seconds.
    pub now: Option<i64>,
    /// Host log level (default `info`).
    pub log_level: Option<String>,
    /// Envoy's foreign function `verify_signature`: `native` (default),
    /// `off` (a host without it), or, to test modules against a broken host,
    /// `accept_all` / `reject_all`.
    pub verify_signature: Option<String>,
    /// Seed of the random sources (the VMs' random numbers, weighted route
    /// picks): the same seed replays the same draws. Default
    /// [`crate::scenario::DEFAULT_SEED`]; `wasmesh test --seed` overrides it.
    pub seed: Option<u64>,
    /// VMs per plugin (Envoy worker threads).
    pub workers: Option<usize>,
    /// Plugins in request order.
    #[serde(default)]
    pub chain: Vec<PluginSpec>,
    /// Callout targets and their scripted answers.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterSpec>,
    /// Routes of the built-in router (optional; without them every request
    /// goes to cluster `upstream`).
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Property defaults for every stream (and host-level: root contexts see
    /// them too, e.g. `node.metadata.*`).
    #[serde(default)]
    pub properties: BTreeMap<String, serde_yaml::Value>,
    /// Default upstream answer.
    pub upstream: Option<UpstreamSpec>,
    /// Expect the chain to fail to start (configuration refused).
    pub start: Option<StartExpect>,
    /// The steps.
    #[serde(default)]
    pub requests: Vec<Step>,
}

/// One plugin of the chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    pub name: String,
    pub root_id: Option<String>,
    pub vm_id: Option<String>,
    pub wasm: String,
    /// A mapping or list is passed as JSON, a string verbatim.
    pub config: Option<serde_yaml::Value>,
    pub vm_config: Option<serde_yaml::Value>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub failure_policy: Option<String>,
}

/// A cluster that callouts can reach.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// HTTP answers, in order; the last one repeats.
    #[serde(default)]
    pub responses: Vec<CalloutAnswer>,
    /// gRPC answers, in order; the last one repeats.
    #[serde(default)]
    pub grpc_responses: Vec<GrpcAnswerSpec>,
}

/// A scripted HTTP answer.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CalloutAnswer {
    pub status: Option<u32>,
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    pub body: Option<String>,
    #[serde(default)]
    pub trailers: BTreeMap<String, HeaderValue>,
    /// Answer after this much virtual time.
    #[serde(default)]
    pub delay_ms: u64,
    /// The call fails (connection reset).
    #[serde(default)]
    pub reset: bool,
}

/// A scripted gRPC answer.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GrpcAnswerSpec {
    #[serde(default)]
    pub status: u32,
    #[serde(default)]
    pub message: String,
    /// Response message bytes (omit for none).
    pub body: Option<String>,
    #[serde(default)]
    pub initial_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub trailing_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub delay_ms: u64,
}

/// A header value: one string, or a list sent as repeated headers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum HeaderValue {
    One(String),
    Many(Vec<String>),
}

impl HeaderValue {
    pub fn values(&self) -> Vec<&str> {
        match self {
            HeaderValue::One(s) => vec![s.as_str()],
            HeaderValue::Many(v) => v.iter().map(|s| s.as_str()).collect(),
        }
    }
}

/// A route of the built-in router.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(default)]
    pub name: String,
    pub prefix: Option<String>,
    pub path: Option<String>,
    /// Header name -> exact value (`null`: present).
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    pub cluster: Option<String>,
    pub cluster_header: Option<String>,
    #[serde(default)]
    pub weighted_clusters: Vec<WeightedCluster>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
}

/// Expectations about a chain that must not start.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StartExpect {
    /// The chain must fail to start.
    #[serde(default)]
    pub fails: bool,
    /// Substrings of the start error.
    #[serde(default)]
    pub error_contains: Vec<String>,
    /// Substrings of log lines written while starting.
    #[serde(default)]
    pub logs_contain: Vec<String>,
}

/// One step: an optional request and expectations.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub advance_ms: u64,
    pub worker: Option<usize>,
    pub request: Option<RequestSpec>,
    #[serde(default)]
    pub properties: BTreeMap<String, serde_yaml::Value>,
    pub upstream: Option<UpstreamSpec>,
    /// Shut the plugins down after this step (`proxy_on_done` on every root
    /// context, `proxy_on_delete` now or after `proxy_done`).
    #[serde(default)]
    pub shutdown: bool,
    /// Run this step this many times (each a new stream); expectations apply
    /// to the last one, metrics and logs to all.
    pub repeat: Option<usize>,
    #[serde(default)]
    pub expect: Expect,
}

/// The client's request.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    pub method: Option<String>,
    pub path: Option<String>,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    /// Header name -> value, or a list of values sent as repeated headers
    /// (order kept as written).
    #[serde(default)]
    pub headers: serde_yaml::Mapping,
    pub body: Option<String>,
    pub body_chunks: Option<Vec<String>>,
    pub trailers: Option<BTreeMap<String, HeaderValue>>,
}

/// The upstream's answer.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    pub status: Option<u32>,
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderValue>,
    pub body: Option<String>,
    pub body_chunks: Option<Vec<String>>,
    pub trailers: Option<BTreeMap<String, HeaderValue>>,
    #[serde(default)]
    pub delay_ms: u64,
    /// The upstream resets the connection before answering (503).
    #[serde(default)]
    pub reset: bool,
    /// No connection can be made (503 `upstream connect error ...`).
    #[serde(default)]
    pub unreachable: bool,
}

/// What must be observed after a step.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: Option<u32>,
    pub reached_upstream: Option<bool>,
    pub upstream_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub upstream_headers_absent: Vec<String>,
    pub upstream_body: Option<String>,
    pub upstream_trailers: Option<BTreeMap<String, String>>,
    pub upstream_cluster: Option<String>,
    pub response_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub response_headers_absent: Vec<String>,
    pub response_trailers: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub body_contains: Option<String>,
    pub local_reply_by: Option<String>,
    pub response_code_details: Option<String>,
    pub grpc_status: Option<u32>,
    pub reset: Option<bool>,
    pub metrics: Option<BTreeMap<String, MetricExpect>>,
    #[serde(default)]
    pub logs_contain: Vec<String>,
    #[serde(default)]
    pub logs_absent: Vec<String>,
    pub http_calls: Option<CallsExpect>,
    pub elapsed_ms: Option<RangeExpect>,
    pub pending: Option<bool>,
    pub route_cache_cleared: Option<bool>,
    pub filter_state: Option<BTreeMap<String, StateExpect>>,
}

/// A metric expectation: a counter/gauge value, or histogram count/sum.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MetricExpect {
    Value(i64),
    /// Tried before `Histogram`, whose fields are all optional.
    Absent {
        absent: bool,
    },
    Histogram {
        count: Option<u64>,
        sum: Option<u64>,
    },
}

/// Callouts expected during a step.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CallsExpect {
    Count(usize),
    List(Vec<CallExpect>),
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CallExpect {
    pub cluster: Option<String>,
    pub path: Option<String>,
    pub method: Option<String>,
}

/// An exact number or a range.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RangeExpect {
    Exact(u64),
    Range { min: Option<u64>, max: Option<u64> },
}

/// A filter-state expectation.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StateExpect {
    Exact(String),
    Contains { contains: String },
    Absent { absent: bool },
}
