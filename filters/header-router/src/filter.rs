//! Proxy-Wasm glue: read the request, ask the route table, apply the
//! decision (wasm32 only).

use std::cell::RefCell;
use std::rc::Rc;

use wasmesh_common::abi::hostcalls;
use wasmesh_common::abi::types::{Action, LogLevel, MapType, MetricType};
use wasmesh_common::abi::{pairs, Http, Root};
use wasmesh_common::host;
use wasmesh_common::http_match::RequestAttributes;
use wasmesh_common::sampling::Rng;

use crate::config::RouterConfig;
use crate::table::{Decision, RouteTable};

const FILTER: &str = "header_router";

wasmesh_common::proxy_filter!(RouterRoot, [request_headers, response_headers]);

/// A header map of the current stream, changed in place (failures, e.g. a
/// map the host no longer has, are ignored).
struct HostHeaders(MapType);

impl crate::actions::HeaderMutator for HostHeaders {
    fn set(&mut self, name: &str, value: &str) {
        let _ = hostcalls::replace_map_value(self.0, name, value.as_bytes());
    }
    fn add(&mut self, name: &str, value: &str) {
        let _ = hostcalls::add_map_value(self.0, name, value.as_bytes());
    }
    fn remove(&mut self, name: &str) {
        let _ = hostcalls::remove_map_value(self.0, name);
    }
}

/// What every stream of this VM shares: the compiled table and metric ids.
struct Shared {
    table: RouteTable,
    metric_ids: Vec<Option<u32>>,
}

struct RouterRoot {
    shared: Option<Rc<Shared>>,
    rng: Rc<RefCell<Rng>>,
}

impl Root for RouterRoot {
    type Http = RouterStream;

    fn new(_context_id: u32) -> Self {
        RouterRoot {
            shared: None,
            rng: Rc::new(RefCell::new(Rng::from_entropy())),
        }
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::plugin_configuration().map_or_else(|_| Vec::new(), |b| b.into_vec());
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
            .map(|n| hostcalls::define_metric(MetricType::Counter, n).ok())
            .collect();
        host::log(
            LogLevel::Info,
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

    fn create_http(&mut self, _context_id: u32) -> Option<RouterStream> {
        Some(RouterStream {
            shared: self.shared.clone(),
            rng: self.rng.clone(),
            decision: None,
        })
    }
}

struct RouterStream {
    shared: Option<Rc<Shared>>,
    rng: Rc<RefCell<Rng>>,
    /// Kept when the response needs header operations.
    decision: Option<Decision>,
}

impl Http for RouterStream {
    fn on_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let table = &shared.table;
        let headers = host::request_headers();
        let (identity, source_ip) =
            host::match_context(table.needs_identity(), table.needs_source_ip());
        let identity = identity
            .as_deref()
            .and_then(wasmesh_common::identity::IdentityView::parse);
        let values = table.header_names().resolve(&headers);
        let attrs = RequestAttributes {
            headers: &headers,
            identity,
            source_ip,
            header_values: Some(&values),
        };
        let decision = table.decide(&attrs, &mut self.rng.borrow_mut());
        if let Some(Some(id)) = shared.metric_ids.get(table.metric(&decision)) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
        if let Some(reply) = table.local_response(&decision, &headers) {
            if host::log_enabled(LogLevel::Debug) {
                let route = table.route_name(&decision).unwrap_or("");
                host::log(
                    LogLevel::Debug,
                    FILTER,
                    &format!("route `{route}`: local reply {}", reply.status),
                );
            }
            let _ = hostcalls::send_local_response(
                reply.status,
                reply.details,
                reply.body,
                &pairs::serialize(&reply.headers),
                None,
            );
            return Action::Pause;
        }
        if table.apply_request(
            &decision,
            &headers,
            &mut HostHeaders(MapType::HttpRequestHeaders),
        ) {
            // ABI 0.2.1 hosts clear the route cache on header changes; Envoy
            // also has an explicit foreign function. NOT_FOUND is fine.
            let _ = hostcalls::call_foreign_function("clear_route_cache", &[]);
        }
        if host::log_enabled(LogLevel::Debug) {
            let message = match table.cluster(&decision) {
                Some(cluster) => format!(
                    "route `{}` -> `{cluster}`",
                    table.route_name(&decision).unwrap_or("")
                ),
                None => "no route matched".to_string(),
            };
            host::log(LogLevel::Debug, FILTER, &message);
        }
        if table.has_response_ops(&decision) {
            self.decision = Some(decision);
        }
        Action::Continue
    }

    fn on_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(shared), Some(decision)) = (&self.shared, &self.decision) {
            shared
                .table
                .apply_response(decision, &mut HostHeaders(MapType::HttpResponseHeaders));
        }
        Action::Continue
    }
}
