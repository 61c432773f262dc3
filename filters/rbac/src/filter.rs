//! Proxy-wasm glue: reads the request, asks the engine, applies the answer.
//!
//! Per request: one host call for all request headers, one property read per
//! attribute the policies use (see [`crate::policy::Needs`]), one metric
//! increment per counter touched, and `:path` is rewritten only when
//! normalisation changed it.

use crate::attributes::identity_from_json;
use crate::authz::{authorize, Connection, Verdict};
use crate::config::Config;
use crate::policy::{Decision, Match, Outcome};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType, Status};
use std::rc::Rc;
use wasmesh_common::cidr::parse_address_ip;
use wasmesh_common::identity::IDENTITY_PROPERTY;
use wasmesh_common::{host, HeaderMap};

const NAME: &str = "rbac";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { state: None }) });
}}

#[link(wasm_import_module = "env")]
extern "C" {
    // Declared here (the SDK's wrapper has no `details` argument and panics
    // on errors) so that the response code details can name the policy.
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
    // The SDK's `set_property` panics when the host refuses; filter state is
    // best effort here.
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
}

/// Proxy-wasm map serialisation: count, (key len, value len)*, then each
/// key and value NUL-terminated.
fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        4 + pairs
            .iter()
            .map(|(k, v)| 10 + k.len() + v.len())
            .sum::<usize>(),
    );
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

fn send_local_response(status: u32, details: &str, body: &str, headers: &[(&str, &str)]) {
    let h = serialize_pairs(headers);
    // SAFETY: every pointer/length pair describes a live buffer for the call.
    let _ = unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            h.as_ptr(),
            h.len(),
            -1,
        )
    };
}

fn set_filter_state(name: &str, value: &str) {
    // A one-segment property path is the name itself (segments are
    // NUL-separated, not NUL-terminated).
    // SAFETY: both buffers are live for the call.
    let _ = unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
}

fn log(level: LogLevel, message: &str) {
    host::log(level, NAME, message);
}

/// Metric ids, defined once per VM.
struct Metrics {
    allowed: u32,
    denied: u32,
    shadow_allowed: u32,
    shadow_denied: u32,
    logged: u32,
    not_logged: u32,
    invalid_request: u32,
    per_policy: Vec<u32>,
}

fn counter(name: &str) -> u32 {
    hostcalls::define_metric(MetricType::Counter, name).unwrap_or(u32::MAX)
}

fn inc(id: u32) {
    if id != u32::MAX {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

impl Metrics {
    fn define(config: &Config) -> Metrics {
        Metrics {
            allowed: counter("rbac.allowed"),
            denied: counter("rbac.denied"),
            shadow_allowed: counter("rbac.shadow_allowed"),
            shadow_denied: counter("rbac.shadow_denied"),
            logged: counter("rbac.logged"),
            not_logged: counter("rbac.not_logged"),
            invalid_request: counter("rbac.invalid_request"),
            per_policy: config
                .engine
                .policies()
                .iter()
                .map(|p| counter(&format!("rbac.policy.{}.matched", p.name())))
                .collect(),
        }
    }
}

struct State {
    config: Config,
    metrics: Metrics,
    has_audit: bool,
}

struct Root {
    state: Option<Rc<State>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Config::from_json(&bytes) {
            Ok(config) => {
                let metrics = Metrics::define(&config);
                let has_audit = config.engine.has_audit();
                self.state = Some(Rc::new(State {
                    config,
                    metrics,
                    has_audit,
                }));
                true
            }
            Err(e) => {
                host::log_config_error(NAME, &e);
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Rbac {
            state: self.state.clone(),
            dry_run_header: None,
        }))
    }
}

struct Rbac {
    /// `None` when configuration failed: every request is refused.
    state: Option<Rc<State>>,
    /// The dry-run header to add to the response, if any.
    dry_run_header: Option<(String, String)>,
}

impl Context for Rbac {}

fn describe(o: &Outcome, state: &State) -> String {
    match o.by {
        Some(m) => {
            let p = &state.config.engine.policies()[m.policy];
            format!(
                "{} policy [{}] rule {}",
                p.action().as_str(),
                p.name(),
                m.rule
            )
        }
        None if o.allowed => "no ALLOW policy exists".to_string(),
        None => "no ALLOW policy matched".to_string(),
    }
}

fn policy_name(m: Option<Match>, state: &State) -> &str {
    match m {
        Some(m) => state.config.engine.policies()[m.policy].name(),
        None => "none",
    }
}

/// Truncated, escaped text of a client-supplied value for a log line.
fn loggable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]);
    format!("\"{}\"", crate::json::escape(&s))
}

impl Rbac {
    fn decide(&mut self, state: &State) -> Action {
        let config = &state.config;
        let pairs = hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
        let raw_path: Vec<u8> = pairs
            .iter()
            .find(|(k, _)| k == ":path")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let headers = HeaderMap::from_pairs(
            pairs
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
        );
        let conn = connection(config);
        let (path, decision) = match authorize(config, &headers, &raw_path, &conn) {
            Verdict::BadRequest(why) => {
                inc(state.metrics.invalid_request);
                log(
                    LogLevel::Info,
                    &format!(
                        "bad request: {} {}: {why}",
                        loggable(headers.method().as_bytes()),
                        loggable(&raw_path)
                    ),
                );
                send_local_response(400, "rbac_invalid_request", "", &[]);
                return Action::Pause;
            }
            Verdict::Checked { path, decision } => (path, decision),
        };
        let method = headers.method();
        let caller = who(&conn);
        self.report(state, &decision, method, &path.path, &caller);

        if !decision.enforced.allowed {
            inc(state.metrics.denied);
            let name = policy_name(decision.enforced.by, state);
            let details = format!("rbac_access_denied_matched_policy[{name}]");
            log(
                LogLevel::Info,
                &format!(
                    "access denied: {method} {}{caller}: {} ({details})",
                    path.path,
                    describe(&decision.enforced, state)
                ),
            );
            let deny = &config.deny;
            let mut hdrs: Vec<(&str, &str)> = deny
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if !deny.body.is_empty() && !deny.headers.iter().any(|(k, _)| k == "content-type") {
                hdrs.push(("content-type", "text/plain"));
            }
            if let Some((k, v)) = &self.dry_run_header {
                hdrs.push((k.as_str(), v.as_str()));
            }
            send_local_response(deny.status, &details, &deny.body, &hdrs);
            return Action::Pause;
        }

        inc(state.metrics.allowed);
        log(
            LogLevel::Debug,
            &format!(
                "allowed: {method} {}{caller}: {}",
                path.path,
                describe(&decision.enforced, state)
            ),
        );
        if !path.path.is_empty() {
            let forwarded = path.forwarded();
            if forwarded.as_bytes() != raw_path.as_slice() {
                let _ = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    ":path",
                    Some(&forwarded),
                );
            }
        }
        Action::Continue
    }

    /// Per-policy counters, audit and dry-run reporting.
    fn report(
        &mut self,
        state: &State,
        decision: &Decision,
        method: &str,
        path: &str,
        caller: &str,
    ) {
        for m in &decision.matched {
            if let Some(id) = state.metrics.per_policy.get(m.policy) {
                inc(*id);
            }
        }
        if state.has_audit {
            match decision.audit {
                Some(m) => {
                    inc(state.metrics.logged);
                    let name = policy_name(Some(m), state);
                    set_filter_state("wasmesh.rbac.audit_policy", name);
                    log(
                        LogLevel::Info,
                        &format!(
                            "audit: {method} {path}{caller}: matched AUDIT policy [{name}] rule {}",
                            m.rule
                        ),
                    );
                }
                None => inc(state.metrics.not_logged),
            }
        }
        if let Some(shadow) = decision.shadow {
            let result = if shadow.allowed { "allowed" } else { "denied" };
            inc(if shadow.allowed {
                state.metrics.shadow_allowed
            } else {
                state.metrics.shadow_denied
            });
            set_filter_state("wasmesh.rbac.shadow_result", result);
            if shadow.by.is_some() {
                set_filter_state("wasmesh.rbac.shadow_policy", policy_name(shadow.by, state));
            }
            let differs = shadow.allowed != decision.enforced.allowed;
            log(
                if differs {
                    LogLevel::Info
                } else {
                    LogLevel::Debug
                },
                &format!(
                    "dry-run: {method} {path}{caller}: shadow {result} by {}; enforced {}",
                    describe(&shadow, state),
                    if decision.enforced.allowed {
                        "allowed"
                    } else {
                        "denied"
                    }
                ),
            );
            if let Some(h) = &state.config.dry_run_header {
                let value = match shadow.by {
                    Some(m) => format!("{result}; policy={}", policy_name(Some(m), state)),
                    None => result.to_string(),
                };
                self.dry_run_header = Some((h.clone(), value));
            }
        }
    }
}

/// The connection properties the policies need, one host call each.
fn connection(config: &Config) -> Connection {
    let needs = config.engine.needs();
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let ip = |path: &[&str]| host::property_string(path).and_then(|a| parse_address_ip(&a));
    Connection {
        peer_ip: if needs.peer_ip || needs.remote_ip {
            ip(&["source", "address"])
        } else {
            None
        },
        destination_ip: if needs.destination_ip {
            ip(&["destination", "address"])
        } else {
            None
        },
        destination_port: if needs.destination_port {
            host::property_i64(&["destination", "port"]).and_then(|p| u32::try_from(p).ok())
        } else {
            None
        },
        sni: if needs.sni {
            nonempty(host::property_string(&[
                "connection",
                "requested_server_name",
            ]))
        } else {
            None
        },
        peer_uri: if needs.peer_uri {
            nonempty(host::property_string(&[
                "connection",
                "uri_san_peer_certificate",
            ]))
        } else {
            None
        },
        identity: if needs.identity {
            hostcalls::get_property(vec![IDENTITY_PROPERTY])
                .ok()
                .flatten()
                .and_then(|b| identity_from_json(&b))
        } else {
            None
        },
    }
}

/// ` (peer=…, request_principal=…, source_ip=…)` for log lines, when known.
fn who(c: &Connection) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &c.peer_uri {
        parts.push(format!("peer={u}"));
    }
    if let Some(id) = &c.identity {
        parts.push(format!("request_principal={}", id.principal));
    }
    if let Some(ip) = c.peer_ip {
        parts.push(format!("source_ip={ip}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

impl HttpContext for Rbac {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(state) = self.state.clone() else {
            log(LogLevel::Error, "not configured: refusing the request");
            send_local_response(
                500,
                "rbac_filter_not_configured",
                "RBAC: filter not configured",
                &[],
            );
            return Action::Pause;
        };
        self.decide(&state)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some((k, v)) = &self.dry_run_header {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, k, Some(v));
        }
        Action::Continue
    }
}
