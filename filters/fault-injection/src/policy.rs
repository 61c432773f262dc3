//! The compiled fault policy: which delay and which abort may apply to a
//! request, with which probability.
//!
//! [`FaultPolicy::compile`] validates a [`FaultConfig`] once (errors carry
//! the field path). [`FaultPolicy::plan`] finds the fault for a request —
//! `downstreamNodes` first, then the first fault whose `match` holds — and
//! lets Envoy's `x-envoy-fault-*` headers replace its delay and/or abort when
//! `headerControl` is enabled ([`crate::header_control`]). The caller draws
//! the percentages: delay first; the abort is drawn at header time only when
//! there is no delay, and again after a delay (Envoy's order).

use std::collections::HashSet;

use wasmesh_common::duration::parse_duration;
use wasmesh_common::http_match::{
    compile_match_list_with, HeaderNames, MatchList, RequestAttributes,
};
use wasmesh_common::sampling::PPM;
use wasmesh_common::{ConfigError, FieldPath};

use crate::config::{FaultConfig, GrpcStatusSpec};
use crate::header_control;

/// gRPC status names by code (`grpc::StatusCode`).
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The request header Envoy matches `downstream_nodes` against.
pub const DOWNSTREAM_NODE_HEADER: &str = "x-envoy-downstream-service-node";

/// How an abort answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    /// This HTTP status, body `fault filter abort`.
    Http(u32),
    /// HTTP 200 with this `grpc-status` (for gRPC requests).
    Grpc(u32),
}

impl AbortStatus {
    /// The HTTP status of the local reply (200 for gRPC aborts, as Envoy).
    pub fn http_status(self) -> u32 {
        match self {
            AbortStatus::Http(s) => s,
            AbortStatus::Grpc(_) => 200,
        }
    }

    /// The gRPC status of the local reply (-1: none).
    pub fn grpc_status(self) -> i32 {
        match self {
            AbortStatus::Http(_) => -1,
            AbortStatus::Grpc(g) => g as i32,
        }
    }
}

/// Where a delay or abort came from (for per-fault stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The configured fault with this index.
    Fault(usize),
    /// The request's `x-envoy-fault-*` headers.
    Header,
}

/// A delay that may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelaySpec {
    /// Delay in milliseconds (0: none).
    pub ms: u64,
    /// Probability in parts per million.
    pub ppm: u32,
    /// Where it came from.
    pub source: Source,
}

/// An abort that may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortSpec {
    /// How to answer.
    pub status: AbortStatus,
    /// Probability in parts per million.
    pub ppm: u32,
    /// Where it came from.
    pub source: Source,
}

/// What may happen to a request, before the draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// The delay part.
    pub delay: Option<DelaySpec>,
    /// The abort part.
    pub abort: Option<AbortSpec>,
}

#[derive(Debug, Clone)]
struct CompiledFault {
    name: Option<String>,
    matches: MatchList,
    delay: Option<(u64, u32)>,
    abort: Option<(AbortStatus, u32)>,
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct FaultPolicy {
    faults: Vec<CompiledFault>,
    header_max_ppm: Option<u32>,
    max_active_faults: Option<u32>,
    downstream_nodes: Vec<String>,
    needs_identity: bool,
    needs_source_ip: bool,
    header_names: HeaderNames,
}

/// A percentage in parts per million. Validated here rather than with
/// `sampling::percent_to_ppm`, whose message formats an `f64` with `{}`:
/// that pulls Rust's float formatting (~20 KiB) into the `.wasm`.
fn percent(v: f64, path: &FieldPath) -> Result<u32, ConfigError> {
    if !v.is_finite() || !(0.0..=100.0).contains(&v) {
        let shown = if v.fract() == 0.0 && v.abs() < 1e15 {
            (v as i64).to_string()
        } else {
            serde_json::Number::from_f64(v).map_or_else(|| "NaN".to_string(), |n| n.to_string())
        };
        return Err(path.error(format!("percentage {shown} is outside 0..100")));
    }
    Ok((v * 10_000.0).round() as u32)
}

fn ppm_of(p: Option<f64>, path: &FieldPath) -> Result<u32, ConfigError> {
    // A missing percentage means every matching request (see the README).
    match p {
        None => Ok(PPM),
        Some(v) => percent(v, &path.field("percentage").field("value")),
    }
}

/// Parses a gRPC status name or number.
pub fn grpc_status(spec: &GrpcStatusSpec) -> Option<u32> {
    match spec {
        GrpcStatusSpec::Number(n) => (*n <= 16).then_some(*n as u32),
        GrpcStatusSpec::Name(s) => GRPC_STATUS_NAMES
            .iter()
            .position(|n| n == s)
            .map(|i| i as u32)
            .or_else(|| s.parse::<u32>().ok().filter(|n| *n <= 16)),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FaultPolicy {
    /// Validates and compiles the configuration.
    pub fn compile(cfg: &FaultConfig) -> Result<FaultPolicy, ConfigError> {
        let root = FieldPath::root();
        let mut faults = Vec::with_capacity(cfg.faults.len());
        let mut names = HashSet::new();
        let (mut needs_identity, mut needs_source_ip) = (false, false);
        let mut header_names = HeaderNames::default();
        for (i, f) in cfg.faults.iter().enumerate() {
            let path = root.field("faults").index(i);
            if let Some(name) = &f.name {
                if !valid_name(name) {
                    return Err(path.field("name").error(format!(
                        "fault name `{name}` may only contain letters, digits, `_` and `-`"
                    )));
                }
                if !names.insert(name.as_str()) {
                    return Err(path
                        .field("name")
                        .error(format!("duplicate fault name `{name}`")));
                }
            }
            if f.delay.is_none() && f.abort.is_none() {
                return Err(path.error("one of `delay` or `abort` is required"));
            }
            let matches =
                compile_match_list_with(&f.matches, &path.field("match"), &mut header_names)?;
            needs_identity |= matches.needs_identity();
            needs_source_ip |= matches.needs_source_ip();
            let delay = match &f.delay {
                None => None,
                Some(d) => {
                    let p = path.field("delay");
                    let dur = parse_duration(&d.fixed_delay)
                        .map_err(|e| p.field("fixedDelay").error(e))?;
                    let ms = dur.as_millis();
                    if ms < 1 {
                        return Err(p
                            .field("fixedDelay")
                            .error("the delay must be at least 1ms"));
                    }
                    let ms = u64::try_from(ms)
                        .map_err(|_| p.field("fixedDelay").error("delay too long"))?;
                    if ms > u64::from(u32::MAX) {
                        return Err(p
                            .field("fixedDelay")
                            .error("delay too long (at most 49 days)"));
                    }
                    Some((ms, ppm_of(d.percentage, &p)?))
                }
            };
            let abort = match &f.abort {
                None => None,
                Some(a) => {
                    let p = path.field("abort");
                    let status = match (a.http_status, &a.grpc_status) {
                        (Some(s), None) => {
                            if !(200..600).contains(&s) {
                                return Err(p.field("httpStatus").error(format!("status {s} is outside [200, 600)")));
                            }
                            AbortStatus::Http(s)
                        }
                        (None, Some(g)) => AbortStatus::Grpc(grpc_status(g).ok_or_else(|| {
                            let shown = match g {
                                GrpcStatusSpec::Name(n) => format!("`{n}`"),
                                GrpcStatusSpec::Number(n) => n.to_string(),
                            };
                            p.field("grpcStatus").error(format!(
                                "unknown gRPC status {shown} (expected a name such as UNAVAILABLE or a number 0..16)"
                            ))
                        })?),
                        _ => return Err(p.error("exactly one of `httpStatus` or `grpcStatus` is required")),
                    };
                    Some((status, ppm_of(a.percentage, &p)?))
                }
            };
            faults.push(CompiledFault {
                name: f.name.clone(),
                matches,
                delay,
                abort,
            });
        }
        let header_max_ppm = match &cfg.header_control {
            Some(h) => {
                let max = percent(
                    h.max_percentage.unwrap_or(100.0),
                    &root.field("headerControl").field("maxPercentage"),
                )?;
                h.enabled.then_some(max)
            }
            None => None,
        };
        for (i, n) in cfg.downstream_nodes.iter().enumerate() {
            if n.is_empty() {
                return Err(root
                    .field("downstreamNodes")
                    .index(i)
                    .error("empty node name"));
            }
        }
        Ok(FaultPolicy {
            faults,
            header_max_ppm,
            max_active_faults: cfg.max_active_faults,
            downstream_nodes: cfg.downstream_nodes.clone(),
            needs_identity,
            needs_source_ip,
            header_names,
        })
    }

    /// The header names the faults' conditions read: resolve them once per
    /// request and pass the values in [`RequestAttributes::header_values`].
    pub fn header_names(&self) -> &HeaderNames {
        &self.header_names
    }

    /// Whether no request can ever get a fault (nothing to read).
    pub fn is_inert(&self) -> bool {
        self.faults.is_empty() && self.header_max_ppm.is_none()
    }

    /// Whether some fault matches on claims.
    pub fn needs_identity(&self) -> bool {
        self.needs_identity
    }

    /// Whether some fault matches on the peer address.
    pub fn needs_source_ip(&self) -> bool {
        self.needs_source_ip
    }

    /// The limit on concurrently active faults, if any.
    pub fn max_active_faults(&self) -> Option<u32> {
        self.max_active_faults
    }

    /// Number of configured faults.
    pub fn len(&self) -> usize {
        self.faults.len()
    }

    /// Whether no fault is configured.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Names of the configured faults (index order).
    pub fn fault_name(&self, i: usize) -> Option<&str> {
        self.faults.get(i).and_then(|f| f.name.as_deref())
    }

    /// What may happen to this request, or `None` when nothing can.
    pub fn plan(&self, req: &RequestAttributes<'_>) -> Option<Plan> {
        if !self.downstream_nodes.is_empty() {
            let node = req.headers.get(DOWNSTREAM_NODE_HEADER)?;
            if !self.downstream_nodes.iter().any(|n| n == node) {
                return None;
            }
        }
        let mut plan = Plan::default();
        if let Some((i, f)) = self
            .faults
            .iter()
            .enumerate()
            .find(|(_, f)| f.matches.matches(req))
        {
            plan.delay = f.delay.map(|(ms, ppm)| DelaySpec {
                ms,
                ppm,
                source: Source::Fault(i),
            });
            plan.abort = f.abort.map(|(status, ppm)| AbortSpec {
                status,
                ppm,
                source: Source::Fault(i),
            });
        }
        if let Some(max_ppm) = self
            .header_max_ppm
            .filter(|_| header_control::any_present(req.headers))
        {
            if let Some(d) = header_control::delay(req.headers, max_ppm) {
                plan.delay = Some(d);
            }
            if let Some(a) = header_control::abort(req.headers, max_ppm) {
                plan.abort = Some(a);
            }
        }
        (plan.delay.is_some() || plan.abort.is_some()).then_some(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmesh_common::HeaderMap;

    fn policy(json: &str) -> FaultPolicy {
        FaultPolicy::compile(&FaultConfig::parse(json.as_bytes()).unwrap()).unwrap()
    }

    fn refuse(json: &str) -> ConfigError {
        match FaultConfig::parse(json.as_bytes()) {
            Err(e) => e,
            Ok(c) => FaultPolicy::compile(&c).unwrap_err(),
        }
    }

    fn plan(p: &FaultPolicy, pairs: &[(&str, &str)]) -> Option<Plan> {
        let mut h = HeaderMap::from_slice(&[(":method", "GET"), (":path", "/")]);
        for (k, v) in pairs {
            h.set(k, v);
        }
        p.plan(&RequestAttributes::headers_only(&h))
    }

    const ISSUE_EXAMPLE: &str = r#"{
      "faults": [
        {"name": "slow-reviews",
         "match": [{"uri": {"prefix": "/reviews"}, "headers": {"x-chaos": {"exact": "on"}}}],
         "delay": {"fixedDelay": "2s", "percentage": {"value": 50}},
         "abort": {"httpStatus": 503, "percentage": {"value": 10}}},
        {"name": "grpc", "match": [{"uri": {"prefix": "/pkg.Svc/"}}], "abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}}
      ],
      "headerControl": {"enabled": true, "maxPercentage": 100},
      "maxActiveFaults": 100,
      "downstreamNodes": []
    }"#;

    #[test]
    fn issue_example() {
        let p = policy(ISSUE_EXAMPLE);
        assert_eq!(p.max_active_faults(), Some(100));
        let got = plan(&p, &[(":path", "/reviews/1"), ("x-chaos", "on")]).unwrap();
        assert_eq!(
            got.delay,
            Some(DelaySpec {
                ms: 2000,
                ppm: 500_000,
                source: Source::Fault(0)
            })
        );
        assert_eq!(
            got.abort,
            Some(AbortSpec {
                status: AbortStatus::Http(503),
                ppm: 100_000,
                source: Source::Fault(0)
            })
        );
        let got = plan(&p, &[(":path", "/pkg.Svc/Get")]).unwrap();
        assert_eq!(got.delay, None);
        assert_eq!(got.abort.unwrap().status, AbortStatus::Grpc(14));
        assert_eq!(got.abort.unwrap().status.http_status(), 200);
        assert!(plan(&p, &[(":path", "/reviews/1")]).is_none());
    }

    #[test]
    fn missing_percentage_is_all_and_no_match_is_everything() {
        let p = policy(r#"{"faults":[{"delay":{"fixedDelay":"150ms"}}]}"#);
        let d = plan(&p, &[]).unwrap().delay.unwrap();
        assert_eq!((d.ms, d.ppm), (150, PPM));
    }

    #[test]
    fn first_matching_fault_applies() {
        let p = policy(
            r#"{"faults":[{"match":[{"uri":{"prefix":"/a"}}],"abort":{"httpStatus":500}},
                          {"abort":{"httpStatus":503}}]}"#,
        );
        assert_eq!(
            plan(&p, &[(":path", "/a/1")])
                .unwrap()
                .abort
                .unwrap()
                .status,
            AbortStatus::Http(500)
        );
        assert_eq!(
            plan(&p, &[(":path", "/b")]).unwrap().abort.unwrap().status,
            AbortStatus::Http(503)
        );
    }

    #[test]
    fn downstream_nodes() {
        let p = policy(
            r#"{"faults":[{"abort":{"httpStatus":503}}],"downstreamNodes":["canary-node"]}"#,
        );
        assert!(plan(&p, &[]).is_none());
        assert!(plan(&p, &[(DOWNSTREAM_NODE_HEADER, "other")]).is_none());
        assert!(plan(&p, &[(DOWNSTREAM_NODE_HEADER, "canary-node")]).is_some());
    }

    #[test]
    fn headers_replace_parts_only_when_enabled() {
        let off = policy(r#"{"faults":[{"abort":{"httpStatus":503}}]}"#);
        let got = plan(
            &off,
            &[
                ("x-envoy-fault-abort-request", "418"),
                ("x-envoy-fault-delay-request", "10"),
            ],
        );
        assert_eq!(got.unwrap().abort.unwrap().status, AbortStatus::Http(503));
        assert_eq!(got.unwrap().delay, None);
        let on = policy(
            r#"{"faults":[{"abort":{"httpStatus":503}}],"headerControl":{"enabled":true,"maxPercentage":20}}"#,
        );
        let got = plan(
            &on,
            &[
                ("x-envoy-fault-abort-request", "418"),
                ("x-envoy-fault-delay-request", "10"),
            ],
        )
        .unwrap();
        assert_eq!(got.abort.unwrap().status, AbortStatus::Http(418));
        assert_eq!(got.abort.unwrap().source, Source::Header);
        assert_eq!(got.abort.unwrap().ppm, 200_000);
        assert_eq!(got.delay.unwrap().ms, 10);
        // Only the delay from headers: the configured abort stays.
        let got = plan(&on, &[("x-envoy-fault-delay-request", "10")]).unwrap();
        assert_eq!(got.abort.unwrap().status, AbortStatus::Http(503));
        // Header faults need no configured fault.
        let only = policy(r#"{"headerControl":{"enabled":true}}"#);
        assert!(!only.is_inert());
        assert!(plan(&only, &[]).is_none());
        let got = plan(&only, &[("x-envoy-fault-abort-grpc-request", "14")]).unwrap();
        assert_eq!(got.abort.unwrap().status, AbortStatus::Grpc(14));
        assert_eq!(got.abort.unwrap().ppm, PPM);
    }

    #[test]
    fn grpc_status_names_and_numbers() {
        assert_eq!(
            grpc_status(&GrpcStatusSpec::Name("UNAVAILABLE".into())),
            Some(14)
        );
        assert_eq!(grpc_status(&GrpcStatusSpec::Name("OK".into())), Some(0));
        assert_eq!(grpc_status(&GrpcStatusSpec::Name("16".into())), Some(16));
        assert_eq!(grpc_status(&GrpcStatusSpec::Number(4)), Some(4));
        assert_eq!(grpc_status(&GrpcStatusSpec::Number(17)), None);
        assert_eq!(
            grpc_status(&GrpcStatusSpec::Name("unavailable".into())),
            None
        );
        assert_eq!(grpc_status(&GrpcStatusSpec::Name("NOPE".into())), None);
    }

    #[test]
    fn invalid_configurations_name_the_field() {
        let cases = [
            (
                r#"{"faults":[{"abort":{"httpStatus":600}}]}"#,
                "faults[0].abort.httpStatus",
            ),
            (
                r#"{"faults":[{"abort":{"httpStatus":199}}]}"#,
                "faults[0].abort.httpStatus",
            ),
            (
                r#"{"faults":[{"abort":{"httpStatus":-1}}]}"#,
                "faults[0].abort.httpStatus",
            ),
            (
                r#"{"faults":[{"abort":{"grpcStatus":"UNAVAILABLE","httpStatus":503}}]}"#,
                "faults[0].abort",
            ),
            (
                r#"{"faults":[{"abort":{"percentage":{"value":5}}}]}"#,
                "faults[0].abort",
            ),
            (
                r#"{"faults":[{},{"abort":{"grpcStatus":"NOT_A_STATUS"}}]}"#,
                "faults[0]",
            ),
            (
                r#"{"faults":[{"abort":{"grpcStatus":"NOT_A_STATUS"}}]}"#,
                "faults[0].abort.grpcStatus",
            ),
            (
                r#"{"faults":[{"abort":{"grpcStatus":99}}]}"#,
                "faults[0].abort.grpcStatus",
            ),
            (
                r#"{"faults":[{"abort":{"grpcStatus":true}}]}"#,
                "faults[0].abort.grpcStatus",
            ),
            (
                r#"{"faults":[{"delay":{"fixedDelay":"2 seconds"}}]}"#,
                "faults[0].delay.fixedDelay",
            ),
            (
                r#"{"faults":[{"delay":{"fixedDelay":"-1s"}}]}"#,
                "faults[0].delay.fixedDelay",
            ),
            (
                r#"{"faults":[{"delay":{"fixedDelay":"0s"}}]}"#,
                "faults[0].delay.fixedDelay",
            ),
            (r#"{"faults":[{"delay":{}}]}"#, "faults[0].delay"),
            (
                r#"{"faults":[{"delay":{"fixedDelay":"1s","percentage":{"value":101}}}]}"#,
                "faults[0].delay.percentage.value",
            ),
            (
                r#"{"faults":[{"abort":{"httpStatus":503,"percentage":{"value":-0.5}}}]}"#,
                "faults[0].abort.percentage.value",
            ),
            (
                r#"{"faults":[{"abort":{"httpStatus":503,"percentage":{}}}]}"#,
                "faults[0].abort.percentage",
            ),
            (
                r#"{"faults":[{"name":"a.b","abort":{"httpStatus":503}}]}"#,
                "faults[0].name",
            ),
            (
                r#"{"faults":[{"name":"a","abort":{"httpStatus":503}},{"name":"a","abort":{"httpStatus":503}}]}"#,
                "faults[1].name",
            ),
            (
                r#"{"faults":[{"match":[{"uri":{"regex":"(x"}}],"abort":{"httpStatus":503}}]}"#,
                "faults[0].match[0].uri.regex",
            ),
            (
                r#"{"headerControl":{"enabled":true,"maxPercentage":150}}"#,
                "headerControl.maxPercentage",
            ),
            (r#"{"maxActiveFaults":-1}"#, "maxActiveFaults"),
            (r#"{"downstreamNodes":[""]}"#, "downstreamNodes[0]"),
            (
                r#"{"faults":[{"abort":{"httpStatus":503}}],"extra":1}"#,
                "extra",
            ),
        ];
        for (json, path) in cases {
            let e = refuse(json);
            assert_eq!(e.path, path, "{json}: {e}");
        }
    }

    #[test]
    fn percentages_match_percent_to_ppm() {
        use wasmesh_common::sampling::percent_to_ppm;
        for v in [0.0, 0.0001, 2.5, 12.345, 50.0, 99.9999, 100.0] {
            assert_eq!(
                percent(v, &FieldPath::root()).unwrap(),
                percent_to_ppm(v).unwrap(),
                "{v}"
            );
        }
        assert_eq!(
            percent(120.0, &FieldPath::root()).unwrap_err().message,
            "percentage 120 is outside 0..100"
        );
        assert_eq!(
            percent(-0.5, &FieldPath::root()).unwrap_err().message,
            "percentage -0.5 is outside 0..100"
        );
    }

    #[test]
    fn empty_configuration_is_inert() {
        assert!(policy("").is_inert());
        assert!(policy(r#"{"headerControl":{"enabled":false}}"#).is_inert());
    }
}

#[cfg(test)]
mod example_config {
    use super::*;

    /// `examples/fault-injection/config.json` (the issue's example) stays a
    /// valid configuration.
    #[test]
    fn example_config_compiles() {
        let text = include_str!("../../../examples/fault-injection/config.json");
        let p = FaultPolicy::compile(&FaultConfig::parse(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.max_active_faults(), Some(100));
    }
}
