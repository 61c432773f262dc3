//! Proxy-Wasm glue (wasm32 only): reads the stream through host calls, lets
//! the [`Recorder`] decide, and forwards its metric updates to the host.

use crate::config::{Compiled, NodeInfo};
use crate::json::{self, Json};
use crate::recorder::{MetricSink, Recorder, Started};
use crate::resolver::StreamHost;
use crate::tags::MetricKind;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::cell::RefCell;
use std::ptr::null_mut;
use std::rc::Rc;
use wasmesh_common::host;
use wasmesh_common::identity::IDENTITY_PROPERTY;
use wasmesh_common::HeaderMap;

// Raw host calls. The SDK's wrappers panic (a trap: the request fails) on
// statuses Envoy legitimately returns — `proxy_get_header_map_pairs` on a
// map the stream does not have (no response trailers, no response at all)
// answers BAD_ARGUMENT — and they copy more than needed. Statuses are read
// as plain integers (0 = OK).
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_metric_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
}

/// Takes over a buffer the host allocated with `proxy_on_memory_allocate`
/// (the SDK's export, backed by the global allocator).
///
/// SAFETY: `data`/`size` come from a successful host call.
unsafe fn host_buffer(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    Some(Vec::from_raw_parts(data, size, size))
}

/// A property by its NUL-separated path; `None` for any status but OK.
fn raw_property(path: &[u8]) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: `path` is live for the call; out-pointers to locals.
    match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) } {
        0 => unsafe { host_buffer(data, size) },
        _ => None,
    }
}

/// A header map; empty when the stream does not have it.
fn raw_map(map: MapType) -> HeaderMap {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals; the buffer is taken over below.
    let buf = match unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) } {
        0 => unsafe { host_buffer(data, size) }.unwrap_or_default(),
        _ => Vec::new(),
    };
    HeaderMap::from_pairs(crate::pairs::deserialize(&buf))
}

const FILTER: &str = "custom_metrics";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { shared: None }) });
}}

/// What every stream of this VM shares: the compiled configuration and the
/// recording state (metric ids, label-set caches, in-flight count).
struct Shared {
    cfg: Compiled,
    recorder: RefCell<Recorder>,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match Compiled::from_json(&bytes, node_info()) {
            Ok(cfg) => {
                let recorder = RefCell::new(Recorder::new(&cfg));
                self.shared = Some(Rc::new(Shared { cfg, recorder }));
                true
            }
            Err(e) => {
                host::log_config_error(FILTER, &e);
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            shared: self.shared.clone(),
            start_ns: None,
            request_body: None,
            response_body: None,
            started: Started::default(),
            logged: false,
        }))
    }
}

/// Istio's node metadata: `WORKLOAD_NAME`, `NAMESPACE`, `LABELS`.
fn node_info() -> NodeInfo {
    let meta = |path: &[&str]| -> String {
        let mut full = b"node\0metadata".to_vec();
        for seg in path {
            full.push(0);
            full.extend_from_slice(seg.as_bytes());
        }
        raw_property(&full)
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    };
    let label = |names: &[&str]| -> String {
        names
            .iter()
            .map(|n| meta(&["LABELS", n]))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    NodeInfo {
        workload: meta(&["WORKLOAD_NAME"]),
        namespace: meta(&["NAMESPACE"]),
        app: label(&["app", "app.kubernetes.io/name"]),
        version: label(&["version", "app.kubernetes.io/version"]),
    }
}

struct Stream {
    shared: Option<Rc<Shared>>,
    start_ns: Option<u64>,
    request_body: Option<u64>,
    response_body: Option<u64>,
    started: Started,
    logged: bool,
}

impl Stream {
    fn view(&self) -> HostView {
        HostView {
            request: None,
            response: None,
            trailers: None,
            identity: None,
            path: Vec::with_capacity(64),
            start_ns: self.start_ns,
            request_body: self.request_body,
            response_body: self.response_body,
        }
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.start_ns = Some(host::now_nanos());
        if let Some(shared) = self.shared.clone() {
            if shared.cfg.uses_inflight() {
                let mut view = self.view();
                self.started = shared.recorder.borrow_mut().on_request_start(
                    &shared.cfg,
                    &mut view,
                    &mut HostSink,
                );
            }
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        self.request_body = Some(self.request_body.unwrap_or(0) + body_size as u64);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        self.response_body = Some(self.response_body.unwrap_or(0) + body_size as u64);
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut view = self.view();
        let line = shared.recorder.borrow_mut().on_log(
            &shared.cfg,
            &mut view,
            &mut HostSink,
            &self.started,
        );
        self.logged = true;
        if let Some(line) = line {
            let _ = hostcalls::log(LogLevel::Info, &line);
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // A stream destroyed without proxy_on_log still leaves the in-flight
        // count.
        if !self.logged {
            if let Some(shared) = &self.shared {
                if let Ok(mut r) = shared.recorder.try_borrow_mut() {
                    r.on_stream_gone(&self.started, &mut HostSink);
                }
            }
        }
    }
}

/// The stream as the resolver reads it, fetching each map once.
struct HostView {
    request: Option<HeaderMap>,
    response: Option<HeaderMap>,
    trailers: Option<HeaderMap>,
    identity: Option<Option<Json>>,
    /// Reused buffer for property paths.
    path: Vec<u8>,
    start_ns: Option<u64>,
    request_body: Option<u64>,
    response_body: Option<u64>,
}

impl StreamHost for HostView {
    fn request_headers(&mut self) -> &HeaderMap {
        self.request
            .get_or_insert_with(|| raw_map(MapType::HttpRequestHeaders))
    }
    fn response_headers(&mut self) -> &HeaderMap {
        self.response
            .get_or_insert_with(|| raw_map(MapType::HttpResponseHeaders))
    }
    fn response_trailers(&mut self) -> &HeaderMap {
        self.trailers
            .get_or_insert_with(|| raw_map(MapType::HttpResponseTrailers))
    }
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        self.path.clear();
        for (i, seg) in path.iter().enumerate() {
            if i > 0 {
                self.path.push(0);
            }
            self.path.extend_from_slice(seg.as_bytes());
        }
        raw_property(&self.path)
    }
    fn identity(&mut self) -> Option<&Json> {
        self.identity
            .get_or_insert_with(|| {
                let bytes = raw_property(IDENTITY_PROPERTY.as_bytes())?;
                json::parse(&bytes).ok()
            })
            .as_ref()
    }
    fn now_nanos(&mut self) -> u64 {
        host::now_nanos()
    }
    fn stream_start_nanos(&self) -> Option<u64> {
        self.start_ns
    }
    fn request_body_bytes(&self) -> Option<u64> {
        self.request_body
    }
    fn response_body_bytes(&self) -> Option<u64> {
        self.response_body
    }
}

/// Envoy's metric calls.
struct HostSink;

impl MetricSink for HostSink {
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let t = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        let mut id = 0u32;
        // SAFETY: `name` is live for the call; out-pointer to a local.
        match unsafe { proxy_define_metric(t as u32, name.as_ptr(), name.len(), &mut id) } {
            0 => Some(id),
            _ => None,
        }
    }
    fn increment(&mut self, id: u32, delta: i64) {
        // SAFETY: plain values.
        let _ = unsafe { proxy_increment_metric(id, delta) };
    }
    fn record(&mut self, id: u32, value: u64) {
        // SAFETY: plain values.
        let _ = unsafe { proxy_record_metric(id, value) };
    }
}
