//! Proxy-Wasm glue (wasm32 only): reads the stream through host calls, lets
//! the [`Recorder`] decide, and forwards its metric updates to the host.

use crate::config::{Compiled, NodeInfo};
use crate::recorder::{MetricSink, Recorder, Started};
use crate::resolver::StreamHost;
use crate::tags::MetricKind;
use std::cell::RefCell;
use std::rc::Rc;
use wasmesh_common::abi::hostcalls;
use wasmesh_common::abi::types::{Action, LogLevel, MapType, MetricType};
use wasmesh_common::abi::{HostBuf, Http};
use wasmesh_common::host;
use wasmesh_common::identity::{IdentityView, IDENTITY_PROPERTY};
use wasmesh_common::HeaderMap;

// Host calls never panic here: a map the stream does not have (no response
// trailers, no response at all: BAD_ARGUMENT) reads as empty.

/// A property by its NUL-separated path; `None` for any status but OK.
fn raw_property(path: &[u8]) -> Option<HostBuf> {
    hostcalls::get_property(path).ok().flatten()
}

/// A header map as the host serialized it (one `proxy_get_header_map_pairs`
/// call), answered in place: a lookup borrows the value from the buffer, and
/// the owned [`HeaderMap`] is built only if something needs every pair.
struct RawMap {
    buf: HostBuf,
    full: Option<HeaderMap>,
}

impl RawMap {
    /// The stream's map; empty when the stream does not have it.
    fn read(map: MapType) -> RawMap {
        RawMap {
            buf: hostcalls::get_map(map).unwrap_or_else(|_| HostBuf::empty()),
            full: None,
        }
    }

    /// The first value of `name` (case-insensitive).
    fn get(&mut self, name: &str) -> Option<&str> {
        match crate::pairs::find(&self.buf, name.as_bytes())? {
            Ok(range) => std::str::from_utf8(&self.buf[range]).ok(),
            // Not UTF-8: as the owned map reads it (invalid bytes replaced).
            Err(()) => self.pairs().get(name),
        }
    }

    fn pairs(&mut self) -> &HeaderMap {
        let buf = &self.buf;
        self.full
            .get_or_insert_with(|| HeaderMap::from_pairs(crate::pairs::deserialize(buf)))
    }

    /// Envoy's `byteSize`: names and values of every pair.
    fn byte_size(&self) -> i64 {
        crate::pairs::byte_size(&self.buf)
    }
}

const FILTER: &str = "custom_metrics";

wasmesh_common::proxy_filter!(
    MetricsRoot,
    [request_headers, request_body, response_body, log]
);

/// What every stream of this VM shares: the compiled configuration and the
/// recording state (metric ids, label-set caches, in-flight count).
struct Shared {
    cfg: Compiled,
    recorder: RefCell<Recorder>,
    /// Property path buffer, reused by every stream.
    path: RefCell<Vec<u8>>,
}

struct MetricsRoot {
    shared: Option<Rc<Shared>>,
}

impl wasmesh_common::abi::Root for MetricsRoot {
    type Http = Stream;

    fn new(_context_id: u32) -> Self {
        MetricsRoot { shared: None }
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::plugin_configuration().unwrap_or_else(|_| HostBuf::empty());
        match Compiled::from_json(&bytes, node_info()) {
            Ok(cfg) => {
                let recorder = RefCell::new(Recorder::new(&cfg));
                self.shared = Some(Rc::new(Shared {
                    cfg,
                    recorder,
                    path: RefCell::new(Vec::with_capacity(64)),
                }));
                true
            }
            Err(e) => {
                host::log_config_error(FILTER, &e);
                false
            }
        }
    }

    fn create_http(&mut self, _context_id: u32) -> Option<Stream> {
        Some(Stream {
            shared: self.shared.clone(),
            start_ns: None,
            request_body: None,
            response_body: None,
            started: Started::default(),
            logged: false,
        })
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
            .and_then(|b| String::from_utf8(b.into_vec()).ok())
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
    /// The stream as the resolver reads it; `path` is the VM's reused
    /// property path buffer (given back with [`HostView::done`]).
    fn view(&self, shared: &Shared) -> HostView {
        HostView {
            request: None,
            response: None,
            trailers: None,
            identity: None,
            path: std::mem::take(&mut *shared.path.borrow_mut()),
            start_ns: self.start_ns,
            request_body: self.request_body,
            response_body: self.response_body,
        }
    }
}

impl Http for Stream {
    fn on_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.start_ns = Some(host::now_nanos());
        if let Some(shared) = self.shared.clone() {
            if shared.cfg.uses_inflight() {
                let mut view = self.view(&shared);
                self.started = shared.recorder.borrow_mut().on_request_start(
                    &shared.cfg,
                    &mut view,
                    &mut HostSink,
                );
                view.done(&shared);
            }
        }
        Action::Continue
    }

    fn on_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        self.request_body = Some(self.request_body.unwrap_or(0) + body_size as u64);
        Action::Continue
    }

    fn on_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        self.response_body = Some(self.response_body.unwrap_or(0) + body_size as u64);
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut view = self.view(&shared);
        let line = shared.recorder.borrow_mut().on_log(
            &shared.cfg,
            &mut view,
            &mut HostSink,
            &self.started,
        );
        view.done(&shared);
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
    request: Option<RawMap>,
    response: Option<RawMap>,
    trailers: Option<RawMap>,
    /// The stored identity's bytes, read once.
    identity: Option<Option<HostBuf>>,
    /// Reused buffer for property paths.
    path: Vec<u8>,
    start_ns: Option<u64>,
    request_body: Option<u64>,
    response_body: Option<u64>,
}

impl HostView {
    /// Gives the path buffer back to the VM.
    fn done(self, shared: &Shared) {
        *shared.path.borrow_mut() = self.path;
    }

    fn request(&mut self) -> &mut RawMap {
        self.request
            .get_or_insert_with(|| RawMap::read(MapType::HttpRequestHeaders))
    }
    fn response(&mut self) -> &mut RawMap {
        self.response
            .get_or_insert_with(|| RawMap::read(MapType::HttpResponseHeaders))
    }
    fn trailers(&mut self) -> &mut RawMap {
        self.trailers
            .get_or_insert_with(|| RawMap::read(MapType::HttpResponseTrailers))
    }
}

impl StreamHost for HostView {
    fn request_headers(&mut self) -> &HeaderMap {
        self.request().pairs()
    }
    fn response_headers(&mut self) -> &HeaderMap {
        self.response().pairs()
    }
    fn response_trailers(&mut self) -> &HeaderMap {
        self.trailers().pairs()
    }
    fn request_header(&mut self, name: &str) -> Option<&str> {
        self.request().get(name)
    }
    fn response_header(&mut self, name: &str) -> Option<&str> {
        self.response().get(name)
    }
    fn response_trailer(&mut self, name: &str) -> Option<&str> {
        self.trailers().get(name)
    }
    fn request_headers_size(&mut self) -> i64 {
        self.request().byte_size()
    }
    fn response_headers_size(&mut self) -> i64 {
        self.response().byte_size() + self.trailers().byte_size()
    }
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        self.path.clear();
        for (i, seg) in path.iter().enumerate() {
            if i > 0 {
                self.path.push(0);
            }
            self.path.extend_from_slice(seg.as_bytes());
        }
        raw_property(&self.path).map(HostBuf::into_vec)
    }
    fn identity(&mut self) -> Option<IdentityView<'_>> {
        self.identity
            .get_or_insert_with(|| raw_property(IDENTITY_PROPERTY.as_bytes()))
            .as_deref()
            .and_then(IdentityView::parse)
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
        hostcalls::define_metric(t, name).ok()
    }
    fn increment(&mut self, id: u32, delta: i64) {
        let _ = hostcalls::increment_metric(id, delta);
    }
    fn record(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
}
