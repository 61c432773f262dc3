//! Proxy-Wasm glue: reads the request, asks the engine, applies the answer.
//!
//! Per request: one host call for all request headers (read in place), one
//! property read per connection attribute the policies use (see
//! [`crate::policy::Needs`]), one metric increment per counter touched, and
//! `:path` is rewritten only when normalisation changed it. Log lines are
//! assembled without `format!` machinery and only when they will be kept.

use crate::authz::{authorize, Connection, Verdict};
use crate::config::Config;
use crate::headers::Headers;
use crate::policy::{Decision, Match, Outcome};
use std::net::IpAddr;
use std::rc::Rc;
use wasmesh_common::abi::hostcalls;
use wasmesh_common::abi::types::{Action, LogLevel, MapType, MetricType};
use wasmesh_common::abi::{pairs, HostBuf, Http};
use wasmesh_common::cidr::parse_address_ip;
use wasmesh_common::host;
use wasmesh_common::identity::{IdentityView, IDENTITY_PROPERTY};

const NAME: &str = "rbac";

wasmesh_common::proxy_filter!(RbacRoot, [request_headers, response_headers, tick]);

/// The request header map, serialised (see [`Headers::parse`]); empty when
/// the host has none.
fn request_header_buffer() -> HostBuf {
    hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_else(|_| HostBuf::empty())
}

/// A property by its NUL-separated path (`b"source\0address"`).
fn property(path: &[u8]) -> Option<HostBuf> {
    hostcalls::get_property(path).ok().flatten()
}

fn property_text(path: &[u8]) -> Option<String> {
    property(path)
        .and_then(|b| String::from_utf8(b.into_vec()).ok())
        .filter(|s| !s.is_empty())
}

fn send_local_response(status: u32, details: &str, body: &str, headers: &[(&str, &str)]) {
    send_local_response_raw(status, details, body, &pairs::serialize(headers));
}

fn send_local_response_raw(status: u32, details: &str, body: &str, h: &[u8]) {
    let _ = hostcalls::send_local_response(status, details, body.as_bytes(), h, None);
}

fn set_filter_state(name: &str, value: &str) {
    // A one-segment property path is the name itself (segments are
    // NUL-separated, not NUL-terminated).
    let _ = hostcalls::set_property(name.as_bytes(), value.as_bytes());
}

fn log(level: LogLevel, message: &str) {
    host::log(level, NAME, message);
}

fn counter(name: &str) -> u32 {
    hostcalls::define_metric(MetricType::Counter, name).unwrap_or(u32::MAX)
}

fn inc(id: u32) {
    if id != u32::MAX {
        let _ = hostcalls::increment_metric(id, 1);
    }
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
}

/// What is known about a policy once configured: its counter and the words
/// used about it in responses and logs.
struct PolicyInfo {
    matched: u32,
    /// `rbac_access_denied_matched_policy[<name>]`.
    details: String,
    /// `DENY policy [<name>]`.
    label: String,
    /// The dry-run header's values when this policy decided the shadow
    /// result: `allowed; policy=<name>`, `denied; policy=<name>`.
    dry_run: [String; 2],
}

/// The dry-run header's value for a shadow result.
#[derive(Clone, Copy)]
struct DryRun {
    allowed: bool,
    by: Option<usize>,
}

impl DryRun {
    fn value(self, state: &State) -> &str {
        match (self.by.and_then(|p| state.policies.get(p)), self.allowed) {
            (Some(p), allowed) => &p.dry_run[usize::from(!allowed)],
            (None, true) => "allowed",
            (None, false) => "denied",
        }
    }
}

struct State {
    config: Config,
    metrics: Metrics,
    policies: Vec<PolicyInfo>,
    has_audit: bool,
    /// The deny response headers, serialised once.
    deny_headers: Vec<u8>,
}

impl State {
    fn new(config: Config) -> State {
        let metrics = Metrics {
            allowed: counter("rbac.allowed"),
            denied: counter("rbac.denied"),
            shadow_allowed: counter("rbac.shadow_allowed"),
            shadow_denied: counter("rbac.shadow_denied"),
            logged: counter("rbac.logged"),
            not_logged: counter("rbac.not_logged"),
            invalid_request: counter("rbac.invalid_request"),
        };
        let policies = config
            .engine
            .policies()
            .iter()
            .map(|p| PolicyInfo {
                matched: counter(&format!("rbac.policy.{}.matched", p.name())),
                details: format!("rbac_access_denied_matched_policy[{}]", p.name()),
                label: format!("{} policy [{}]", p.action().as_str(), p.name()),
                dry_run: [
                    format!("allowed; policy={}", p.name()),
                    format!("denied; policy={}", p.name()),
                ],
            })
            .collect();
        let deny = &config.deny;
        let mut hdrs: Vec<(&str, &str)> = deny
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !deny.body.is_empty() && !deny.headers.iter().any(|(k, _)| k == "content-type") {
            hdrs.push(("content-type", "text/plain"));
        }
        let deny_headers = pairs::serialize(&hdrs);
        State {
            has_audit: config.engine.has_audit(),
            deny_headers,
            config,
            metrics,
            policies,
        }
    }

    /// Whether the host keeps lines at `level` (its level is read at
    /// configure time and refreshed on the root's one-second tick, so debug
    /// lines are only assembled when they will be kept and allowed requests
    /// make no host call for it).
    fn enabled(&self, level: LogLevel) -> bool {
        host::log_enabled(level)
    }

    fn name(&self, m: Option<Match>) -> &str {
        match m {
            Some(m) => self.config.engine.policies()[m.policy].name(),
            None => "none",
        }
    }

    /// `DENY policy [x] rule 2` / `no ALLOW policy matched`.
    fn describe(&self, line: &mut String, o: &Outcome) {
        match o.by {
            Some(m) => {
                line.push_str(&self.policies[m.policy].label);
                line.push_str(" rule ");
                push_number(line, m.rule as u64);
            }
            None if o.allowed => line.push_str("no ALLOW policy exists"),
            None => line.push_str("no ALLOW policy matched"),
        }
    }
}

struct RbacRoot {
    state: Option<Rc<State>>,
}

impl wasmesh_common::abi::Root for RbacRoot {
    type Http = Rbac;

    fn new(_context_id: u32) -> Self {
        RbacRoot { state: None }
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::plugin_configuration().unwrap_or_else(|_| HostBuf::empty());
        match Config::from_json(&bytes) {
            Ok(config) => {
                self.state = Some(Rc::new(State::new(config)));
                // The tick refreshes the cached host log level.
                let _ = hostcalls::set_tick_period_ms(1000);
                true
            }
            Err(e) => {
                host::log_config_error(NAME, &e);
                false
            }
        }
    }

    fn create_http(&mut self, _context_id: u32) -> Option<Rbac> {
        Some(Rbac {
            state: self.state.clone(),
            dry_run: None,
        })
    }
}

struct Rbac {
    /// `None` when configuration failed: every request is refused.
    state: Option<Rc<State>>,
    /// The shadow result to report in the dry-run header of the response.
    dry_run: Option<DryRun>,
}

fn push_number(line: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        line.push(d as char);
    }
}

fn push_ip(line: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                push_number(line, u64::from(*o));
            }
        }
        IpAddr::V6(v6) => line.push_str(&v6.to_string()),
    }
}

/// ` (peer=…, request_principal=…, source_ip=…)`, the parts that are known.
fn push_who(line: &mut String, c: &Connection) {
    let mut first = true;
    let mut sep = |line: &mut String| {
        line.push_str(if first { " (" } else { ", " });
        first = false;
    };
    if let Some(u) = &c.peer_uri {
        sep(line);
        line.push_str("peer=");
        line.push_str(u);
    }
    if let Some(id) = c.identity.as_deref().and_then(IdentityView::parse) {
        sep(line);
        line.push_str("request_principal=");
        line.push_str(&id.principal());
    }
    if let Some(ip) = c.peer_ip {
        sep(line);
        line.push_str("source_ip=");
        push_ip(line, ip);
    }
    if !first {
        line.push(')');
    }
}

/// `<what>: <METHOD> <path> (who…): ` — the common start of a log line.
fn line_start(what: &str, method: &str, path: &str, conn: &Connection) -> String {
    let mut line = String::with_capacity(192);
    line.push_str(what);
    line.push_str(": ");
    line.push_str(method);
    line.push(' ');
    line.push_str(path);
    push_who(&mut line, conn);
    line.push_str(": ");
    line
}

/// Truncated, escaped text of a client-supplied value for a log line.
fn loggable(line: &mut String, text: &str) {
    let end = text.char_indices().nth(256).map_or(text.len(), |(i, _)| i);
    line.push('"');
    line.push_str(&crate::log_text::escape(&text[..end]));
    line.push('"');
}

/// The connection properties the policies need, one host call each.
fn connection(config: &Config) -> Connection {
    let needs = config.engine.needs();
    let ip = |path: &[u8]| property_text(path).and_then(|a| parse_address_ip(&a));
    Connection {
        peer_ip: if needs.peer_ip || needs.remote_ip {
            ip(b"source\0address")
        } else {
            None
        },
        destination_ip: if needs.destination_ip {
            ip(b"destination\0address")
        } else {
            None
        },
        destination_port: if needs.destination_port {
            property(b"destination\0port")
                .and_then(|b| {
                    b.get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(i64::from_le_bytes)
                })
                .and_then(|p| u32::try_from(p).ok())
        } else {
            None
        },
        sni: if needs.sni {
            property_text(b"connection\0requested_server_name")
        } else {
            None
        },
        peer_uri: if needs.peer_uri {
            property_text(b"connection\0uri_san_peer_certificate")
        } else {
            None
        },
        identity: if needs.identity {
            property(IDENTITY_PROPERTY.as_bytes()).map(HostBuf::into_vec)
        } else {
            None
        },
    }
}

impl Rbac {
    fn decide(&mut self, state: &State) -> Action {
        let config = &state.config;
        let buffer = request_header_buffer();
        let headers = Headers::parse(&buffer).unwrap_or_default();
        let raw_path = headers.get(":path").unwrap_or("").as_bytes();
        let conn = connection(config);
        let (path, decision) = match authorize(config, &headers, raw_path, &conn) {
            Verdict::BadRequest(why) => {
                inc(state.metrics.invalid_request);
                let mut line = String::from("bad request: ");
                loggable(&mut line, headers.method());
                line.push(' ');
                loggable(&mut line, headers.get(":path").unwrap_or(""));
                line.push_str(": ");
                line.push_str(&why);
                log(LogLevel::Info, &line);
                send_local_response(400, "rbac_invalid_request", "", &[]);
                return Action::Pause;
            }
            Verdict::Checked { path, decision } => (path, decision),
        };
        let method = headers.method();
        self.report(state, &decision, method, &path.path, &conn);

        if !decision.enforced.allowed {
            inc(state.metrics.denied);
            let details = match decision.enforced.by {
                Some(m) => state.policies[m.policy].details.as_str(),
                None => "rbac_access_denied_matched_policy[none]",
            };
            let mut line = line_start("access denied", method, &path.path, &conn);
            state.describe(&mut line, &decision.enforced);
            line.push_str(" (");
            line.push_str(details);
            line.push(')');
            log(LogLevel::Info, &line);
            let deny = &config.deny;
            let dry_run = self
                .dry_run
                .zip(config.dry_run_header.as_deref())
                .map(|(d, k)| (k, d.value(state)));
            match dry_run {
                None => {
                    send_local_response_raw(deny.status, details, &deny.body, &state.deny_headers)
                }
                Some((k, v)) => {
                    let mut hdrs: Vec<(&str, &str)> = deny
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    if !deny.body.is_empty()
                        && !deny.headers.iter().any(|(k, _)| k == "content-type")
                    {
                        hdrs.push(("content-type", "text/plain"));
                    }
                    hdrs.push((k, v));
                    send_local_response(deny.status, details, &deny.body, &hdrs);
                }
            }
            return Action::Pause;
        }

        inc(state.metrics.allowed);
        if state.enabled(LogLevel::Debug) {
            let mut line = line_start("allowed", method, &path.path, &conn);
            state.describe(&mut line, &decision.enforced);
            log(LogLevel::Debug, &line);
        }
        if let Some(forwarded) = path.forwarded_if_changed(raw_path) {
            let _ = hostcalls::replace_map_value(
                MapType::HttpRequestHeaders,
                ":path",
                forwarded.as_bytes(),
            );
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
        conn: &Connection,
    ) {
        for m in &decision.matched {
            inc(state.policies[m.policy].matched);
        }
        if state.has_audit {
            match decision.audit {
                Some(m) => {
                    inc(state.metrics.logged);
                    set_filter_state("wasmesh.rbac.audit_policy", state.name(Some(m)));
                    let mut line = line_start("audit", method, path, conn);
                    line.push_str("matched ");
                    state.describe(
                        &mut line,
                        &Outcome {
                            allowed: true,
                            by: Some(m),
                        },
                    );
                    log(LogLevel::Info, &line);
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
                set_filter_state("wasmesh.rbac.shadow_policy", state.name(shadow.by));
            }
            let level = if shadow.allowed != decision.enforced.allowed {
                LogLevel::Info
            } else {
                LogLevel::Debug
            };
            if level == LogLevel::Info || state.enabled(level) {
                let mut line = line_start("dry-run", method, path, conn);
                line.push_str("shadow ");
                line.push_str(result);
                line.push_str(" by ");
                state.describe(&mut line, &shadow);
                line.push_str("; enforced ");
                line.push_str(if decision.enforced.allowed {
                    "allowed"
                } else {
                    "denied"
                });
                log(level, &line);
            }
            if state.config.dry_run_header.is_some() {
                self.dry_run = Some(DryRun {
                    allowed: shadow.allowed,
                    by: shadow.by.map(|m| m.policy),
                });
            }
        }
    }
}

impl Http for Rbac {
    fn on_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
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

    fn on_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(state), Some(d)) = (&self.state, self.dry_run) {
            if let Some(k) = &state.config.dry_run_header {
                let v = d.value(state);
                let _ = hostcalls::replace_map_value(MapType::HttpResponseHeaders, k, v.as_bytes());
            }
        }
        Action::Continue
    }
}
