//! The fault filter's configuration as users write it (JSON, camelCase).
//!
//! The fault vocabulary is Istio's `HTTPFaultInjection` (`delay.fixedDelay`,
//! `delay.percentage`, `abort.httpStatus`, `abort.grpcStatus`,
//! `abort.percentage`); the filter-level fields are Envoy's fault filter
//! (`maxActiveFaults`, `downstreamNodes`, header-controlled faults). A list
//! of named faults with the shared match vocabulary scopes them.
//! [`crate::policy`] validates and compiles it.

use serde::{Deserialize, Deserializer};
use std::fmt;
use wasmesh_common::config::{nullable, parse_json};
use wasmesh_common::http_match::HttpMatchRequest;
use wasmesh_common::ConfigError;

/// The plugin configuration.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FaultConfig {
    /// Faults, tried in order; the first whose `match` holds applies.
    #[serde(deserialize_with = "nullable")]
    pub faults: Vec<Fault>,
    /// Faults requested by the client with Envoy's `x-envoy-fault-*` headers.
    pub header_control: Option<HeaderControl>,
    /// At most this many requests are delayed or aborted at once, across
    /// all workers; more are counted in `fault.faults_overflow` and left
    /// alone. Unlimited when absent.
    pub max_active_faults: Option<u32>,
    /// Only requests whose `x-envoy-downstream-service-node` is one of these
    /// get faults (empty: every request).
    #[serde(deserialize_with = "nullable")]
    pub downstream_nodes: Vec<String>,
}

/// One fault (Istio's `HTTPFaultInjection`, plus `name` and `match`).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Fault {
    /// Name used in per-fault stats (`fault.<name>.delays_injected`);
    /// letters, digits, `_` and `-`. Without a name only the filter-wide
    /// stats count it.
    pub name: Option<String>,
    /// Match items, ORed; absent or empty matches every request.
    #[serde(rename = "match", default, deserialize_with = "nullable")]
    pub matches: Vec<HttpMatchRequest>,
    /// Delay part.
    pub delay: Option<Delay>,
    /// Abort part.
    pub abort: Option<Abort>,
}

/// Istio's `HTTPFaultInjection.Delay`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a map")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Delay {
    /// How long to hold the request (`"2s"`, `"150ms"`); at least 1ms.
    pub fixed_delay: String,
    /// Share of matching requests to delay, 0..100; absent means 100.
    #[serde(default, deserialize_with = "percentage")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Percent>"))]
    pub percentage: Option<f64>,
}

/// Istio's `HTTPFaultInjection.Abort`: exactly one of `httpStatus` and
/// `grpcStatus`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a map")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Abort {
    /// HTTP status to answer with, in [200, 600).
    pub http_status: Option<u32>,
    /// gRPC status (a name such as `UNAVAILABLE`, or its number 0..16) to
    /// answer with, in an HTTP 200 response.
    pub grpc_status: Option<GrpcStatusSpec>,
    /// Share of matching requests to abort, 0..100; absent means 100.
    #[serde(default, deserialize_with = "percentage")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<Percent>"))]
    pub percentage: Option<f64>,
}

/// A gRPC status as written: a name or a number.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(untagged))]
pub enum GrpcStatusSpec {
    /// `"UNAVAILABLE"` (or `"14"`).
    Name(String),
    /// `14`.
    Number(u64),
}

/// Envoy's header-controlled faults (`header_delay` / `header_abort`).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HeaderControl {
    /// Honour `x-envoy-fault-*` request headers.
    #[serde(deserialize_with = "nullable")]
    pub enabled: bool,
    /// Highest percentage a header may ask for, and the percentage used when
    /// the request does not say; default 100.
    pub max_percentage: Option<f64>,
}

/// Istio's `Percent`, as written (`{"value": 12.5}`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a map")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
struct Percent {
    /// 0..100.
    value: f64,
}

/// `percentage`: `{"value": 12.5}`, or absent/`null`.
fn percentage<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<Percent>::deserialize(d)?.map(|p| p.value))
}

impl<'de> Deserialize<'de> for GrpcStatusSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = GrpcStatusSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a gRPC status name or number")
            }
            fn visit_str<E>(self, v: &str) -> Result<GrpcStatusSpec, E> {
                Ok(GrpcStatusSpec::Name(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<GrpcStatusSpec, E> {
                Ok(GrpcStatusSpec::Number(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl FaultConfig {
    /// Parses the plugin configuration; an empty document configures no
    /// faults. Errors name the field (`faults[1].abort.httpStatus`).
    pub fn parse(bytes: &[u8]) -> Result<FaultConfig, ConfigError> {
        parse_json(bytes)
    }
}
