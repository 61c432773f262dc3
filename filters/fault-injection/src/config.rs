//! The fault filter's configuration as users write it (JSON, camelCase).
//!
//! The fault vocabulary is Istio's `HTTPFaultInjection` (`delay.fixedDelay`,
//! `delay.percentage`, `abort.httpStatus`, `abort.grpcStatus`,
//! `abort.percentage`); the filter-level fields are Envoy's fault filter
//! (`maxActiveFaults`, `downstreamNodes`, header-controlled faults). A list
//! of named faults with the shared match vocabulary scopes them.
//! [`crate::policy`] validates and compiles it.

use serde_json::Value;
use wasmesh_common::http_match::json::{invalid_type, parse_document, Obj};
use wasmesh_common::http_match::HttpMatchRequest;
use wasmesh_common::{ConfigError, FieldPath};

/// The plugin configuration.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct FaultConfig {
    /// Faults, tried in order; the first whose `match` holds applies.
    pub faults: Vec<Fault>,
    /// Faults requested by the client with Envoy's `x-envoy-fault-*` headers.
    pub header_control: Option<HeaderControl>,
    /// At most this many requests are delayed or aborted at once, across
    /// all workers; more are counted in `fault.faults_overflow` and left
    /// alone. Unlimited when absent.
    pub max_active_faults: Option<u32>,
    /// Only requests whose `x-envoy-downstream-service-node` is one of these
    /// get faults (empty: every request).
    pub downstream_nodes: Vec<String>,
}

/// One fault (Istio's `HTTPFaultInjection`, plus `name` and `match`).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Fault {
    /// Name used in per-fault stats (`fault.<name>.delays_injected`);
    /// letters, digits, `_` and `-`. Without a name only the filter-wide
    /// stats count it.
    pub name: Option<String>,
    /// Match items, ORed; absent or empty matches every request.
    #[cfg_attr(feature = "schema", schemars(rename = "match"))]
    pub matches: Vec<HttpMatchRequest>,
    /// Delay part.
    pub delay: Option<Delay>,
    /// Abort part.
    pub abort: Option<Abort>,
}

/// Istio's `HTTPFaultInjection.Delay`.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Delay {
    /// How long to hold the request (`"2s"`, `"150ms"`); at least 1ms.
    pub fixed_delay: String,
    /// Share of matching requests to delay, 0..100; absent means 100.
    #[cfg_attr(feature = "schema", schemars(with = "Option<Percent>"))]
    pub percentage: Option<f64>,
}

/// Istio's `HTTPFaultInjection.Abort`: exactly one of `httpStatus` and
/// `grpcStatus`.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Abort {
    /// HTTP status to answer with, in [200, 600).
    pub http_status: Option<u32>,
    /// gRPC status (a name such as `UNAVAILABLE`, or its number 0..16) to
    /// answer with, in an HTTP 200 response.
    pub grpc_status: Option<GrpcStatusSpec>,
    /// Share of matching requests to abort, 0..100; absent means 100.
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
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct HeaderControl {
    /// Honour `x-envoy-fault-*` request headers.
    pub enabled: bool,
    /// Highest percentage a header may ask for, and the percentage used when
    /// the request does not say; default 100.
    pub max_percentage: Option<f64>,
}

/// Istio's `Percent`, as written (`{"value": 12.5}`).
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct Percent {
    /// 0..100.
    value: f64,
}

fn percentage(o: &Obj<'_>) -> Result<Option<f64>, ConfigError> {
    match o.object("percentage", &["value"])? {
        None => Ok(None),
        Some(p) => Ok(Some(
            p.number("value")?
                .ok_or_else(|| p.path().error("missing field `value`"))?,
        )),
    }
}

impl FaultConfig {
    /// Parses the plugin configuration; an empty document configures no
    /// faults. Errors name the field (`faults[1].abort.httpStatus`).
    pub fn parse(bytes: &[u8]) -> Result<FaultConfig, ConfigError> {
        let doc = parse_document(bytes)?;
        let root = FieldPath::root();
        let o = Obj::new(
            &doc,
            &root,
            &[
                "faults",
                "headerControl",
                "maxActiveFaults",
                "downstreamNodes",
            ],
        )?;
        let mut faults = Vec::new();
        for (p, v) in o.list("faults")? {
            faults.push(Fault::from_json(v, &p)?);
        }
        let header_control = match o.object("headerControl", &["enabled", "maxPercentage"])? {
            None => None,
            Some(h) => Some(HeaderControl {
                enabled: h.boolean("enabled")?.unwrap_or(false),
                max_percentage: h.number("maxPercentage")?,
            }),
        };
        Ok(FaultConfig {
            faults,
            header_control,
            max_active_faults: o.u32("maxActiveFaults")?,
            downstream_nodes: o.strings("downstreamNodes")?,
        })
    }
}

impl Fault {
    fn from_json(v: &Value, path: &FieldPath) -> Result<Fault, ConfigError> {
        let o = Obj::new(v, path, &["name", "match", "delay", "abort"])?;
        let delay = match o.object("delay", &["fixedDelay", "percentage"])? {
            None => None,
            Some(d) => Some(Delay {
                fixed_delay: d
                    .string("fixedDelay")?
                    .ok_or_else(|| d.path().error("missing field `fixedDelay`"))?,
                percentage: percentage(&d)?,
            }),
        };
        let abort = match o.object("abort", &["httpStatus", "grpcStatus", "percentage"])? {
            None => None,
            Some(a) => Some(Abort {
                http_status: a.u32("httpStatus")?,
                grpc_status: match a.get("grpcStatus") {
                    None => None,
                    Some(Value::String(s)) => Some(GrpcStatusSpec::Name(s.clone())),
                    Some(Value::Number(n)) if n.is_u64() => {
                        Some(GrpcStatusSpec::Number(n.as_u64().unwrap_or(u64::MAX)))
                    }
                    Some(other) => {
                        return Err(invalid_type(
                            &a.at("grpcStatus"),
                            other,
                            "a gRPC status name or number",
                        ))
                    }
                },
                percentage: percentage(&a)?,
            }),
        };
        Ok(Fault {
            name: o.string("name")?,
            matches: HttpMatchRequest::list_from_json(o.get("match"), &o.at("match"))?,
            delay,
            abort,
        })
    }
}
