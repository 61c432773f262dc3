//! proxy-wasm glue: read the request, ask the route table, apply the
//! decision (wasm32 only).

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use wasmesh_common::cidr::parse_address_ip;
use wasmesh_common::host;
use wasmesh_common::http_match::json::identity_from_json;
use wasmesh_common::http_match::RequestAttributes;
use wasmesh_common::identity::IDENTITY_PROPERTY;
use wasmesh_common::sampling::Rng;

use crate::abi::{self, HostHeaders};
use crate::config::RouterConfig;
use crate::table::{Decision, RouteTable};

const FILTER: &str = "header_router";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(RouterRoot { shared: None, rng: Rc::new(RefCell::new(Rng::from_entropy())), debug: false })
    });
}}

/// What every stream of this VM shares: the compiled table and metric ids.
struct Shared {
    table: RouteTable,
    metric_ids: Vec<Option<u32>>,
}

struct RouterRoot {
    shared: Option<Rc<Shared>>,
    rng: Rc<RefCell<Rng>>,
    /// Whether the host logs debug lines (read at configure time).
    debug: bool,
}

impl Context for RouterRoot {}

impl RootContext for RouterRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let table = match RouterConfig::parse(&bytes).and_then(|cfg| RouteTable::compile(&cfg)) {
            Ok(t) => t,
            Err(e) => {
                host::log_config_error(FILTER, &e);
                return false;
            }
        };
        let metric_ids = table
            .metric_names()
            .iter()
            .map(|n| abi::define_counter(n))
            .collect();
        host::log(
            wasmesh_common::abi::LogLevel::Info,
            FILTER,
            &format!(
                "configured {} routes, cluster header `{}`",
                table.len(),
                table.cluster_header()
            ),
        );
        self.shared = Some(Rc::new(Shared { table, metric_ids }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RouterStream {
            debug: self.debug,
            shared: self.shared.clone(),
            rng: self.rng.clone(),
            decision: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct RouterStream {
    shared: Option<Rc<Shared>>,
    /// Whether the host logs debug lines.
    debug: bool,
    rng: Rc<RefCell<Rng>>,
    /// Kept when the response needs header operations.
    decision: Option<Decision>,
}

impl Context for RouterStream {}

impl HttpContext for RouterStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let table = &shared.table;
        let headers = host::request_headers();
        let identity = if table.needs_identity() {
            hostcalls::get_property(vec![IDENTITY_PROPERTY])
                .ok()
                .flatten()
                .and_then(|b| identity_from_json(&b))
        } else {
            None
        };
        let source_ip = if table.needs_source_ip() {
            host::property_string(&["source", "address"]).and_then(|a| parse_address_ip(&a))
        } else {
            None
        };
        let values = table.header_names().resolve(&headers);
        let attrs = RequestAttributes {
            headers: &headers,
            identity: identity.as_ref(),
            source_ip,
            header_values: Some(&values),
        };
        let decision = table.decide(&attrs, &mut self.rng.borrow_mut());
        if let Some(Some(id)) = shared.metric_ids.get(table.metric(&decision)) {
            abi::increment(*id, 1);
        }
        if let Some(reply) = table.local_response(&decision, &headers) {
            if self.debug {
                let route = table.route_name(&decision).unwrap_or("");
                host::log(
                    wasmesh_common::abi::LogLevel::Debug,
                    FILTER,
                    &format!("route `{route}`: local reply {}", reply.status),
                );
            }
            abi::send_local_response(reply.status, reply.details, reply.body, &reply.headers, -1);
            return Action::Pause;
        }
        if table.apply_request(
            &decision,
            &headers,
            &mut HostHeaders(MapType::HttpRequestHeaders),
        ) {
            // ABI 0.2.1 hosts clear the route cache on header changes; Envoy
            // also has an explicit foreign function. NOT_FOUND is fine.
            let _ = abi::clear_route_cache();
        }
        if self.debug {
            let message = match table.cluster(&decision) {
                Some(cluster) => format!(
                    "route `{}` -> `{cluster}`",
                    table.route_name(&decision).unwrap_or("")
                ),
                None => "no route matched".to_string(),
            };
            host::log(wasmesh_common::abi::LogLevel::Debug, FILTER, &message);
        }
        if table.has_response_ops(&decision) {
            self.decision = Some(decision);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(shared), Some(decision)) = (&self.shared, &self.decision) {
            shared
                .table
                .apply_response(decision, &mut HostHeaders(MapType::HttpResponseHeaders));
        }
        Action::Continue
    }
}
