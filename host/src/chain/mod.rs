//! A worker: the VMs of a filter chain and the HTTP streams running through
//! it, with the rules of Envoy's filter manager.
//!
//! * Request callbacks run in chain order, response callbacks in reverse.
//! * A filter that returns "pause" from its headers callback stops the stream
//!   there (Envoy's `StopAllIterationAndWatermark` for ABI 0.2.x): later body
//!   chunks and trailers wait, and when the filter calls
//!   `proxy_continue_stream` the headers move on and the waiting body is
//!   delivered to that same filter first. A filter that pauses in a body
//!   callback buffers: later chunks are appended and the callback is called
//!   again with the growing buffer.
//! * `proxy_send_local_response` ends the request path; the reply passes
//!   through the response callbacks of every filter whose context exists (in
//!   reverse order, as Envoy's encoder filters), unless the response had
//!   already started, in which case it goes straight to the client.
//! * At the end every plugin's context gets `proxy_on_log` (a context is
//!   created for it if it never saw the request, as Envoy does for access
//!   logging), then `proxy_on_done` and `proxy_on_delete`.
//! * A trap fails the VM. The failing stream, and any later one reaching
//!   that plugin, gets `503` (details `wasm_fail_stream`) under
//!   `fail_closed` / `fail_reload`, or passes the plugin untouched under
//!   `fail_open`. `fail_reload` replaces the VM before the next stream.
//!
//! The parts, in Envoy's words: [`stream`] (a stream's life: codec events
//! from the driver, the plugins' stream contexts, the end of a stream),
//! [`filter_manager`] (iteration through the filters and the callback
//! itself), [`router`] (route table, route cache, the upstream and client
//! sinks), [`local_reply`] (`sendLocalReply`, gRPC status), [`callouts`]
//! (timers, callouts, shared queues, "after VM call" actions) and
//! [`lifecycle`] (failure policies, VM reload, shutdown).
//!
//! Per callback the host does only what the callback needs: the plugin's
//! stream context and whether `proxy_on_context_create` ran are kept in the
//! stream's state (no VM table lookup), a phase the module does not export
//! costs a check (the ABI: a missing export means continue), and the
//! callback's outputs (actions, callouts, timers) are taken only when there
//! are some.

use crate::headers::HeaderMap;
use crate::host::HostShared;
use crate::runtime::{LoadedModule, Runtime};
use crate::stream_data::{window, LocalReply, Slot, StreamData, StreamRef};
use crate::types::{LogLevel, StreamType};
use crate::vm::{
    Action, CalloutView, OutgoingCall, Outputs, PluginInfo, StreamCallback, Trap, Vm, VmSettings,
};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

mod callouts;
mod filter_manager;
mod lifecycle;
mod local_reply;
mod router;
mod stream;

pub use local_reply::{http_to_grpc_status, local_reply_headers};

/// Envoy's `failure_policy` for a plugin whose VM failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Requests reaching the plugin get 503; the VM stays failed.
    #[default]
    FailClosed,
    /// Requests skip the plugin; the VM stays failed.
    FailOpen,
    /// The failing request gets 503; a new VM replaces the failed one.
    FailReload,
}

impl FailurePolicy {
    /// Parses Envoy's and Istio's spellings (`fail_closed`, `FAIL_CLOSE`, ...).
    pub fn parse(s: &str) -> Option<FailurePolicy> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "fail_closed" | "fail_close" | "closed" => Some(FailurePolicy::FailClosed),
            "fail_open" | "open" => Some(FailurePolicy::FailOpen),
            "fail_reload" | "reload" => Some(FailurePolicy::FailReload),
            _ => None,
        }
    }
}

/// One plugin of a chain.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub wasm: PathBuf,
    pub configuration: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub env: Vec<(String, String)>,
    pub failure_policy: FailurePolicy,
}

impl PluginConfig {
    /// A plugin with defaults: root_id = name, empty vm_id, fail_closed.
    pub fn new(
        name: &str,
        wasm: impl Into<PathBuf>,
        configuration: impl Into<Vec<u8>>,
    ) -> PluginConfig {
        PluginConfig {
            name: name.to_string(),
            root_id: name.to_string(),
            vm_id: String::new(),
            wasm: wasm.into(),
            configuration: configuration.into(),
            vm_config: Vec::new(),
            env: Vec::new(),
            failure_policy: FailurePolicy::FailClosed,
        }
    }
}

/// A route of the built-in router (the part of Envoy's route table the
/// harness models): first match wins.
#[derive(Debug, Clone, Default)]
pub struct Route {
    pub name: String,
    pub prefix: Option<String>,
    pub path: Option<String>,
    /// Headers that must be present with these exact values (`None`: present).
    pub headers: Vec<(String, Option<String>)>,
    pub action: RouteAction,
}

/// Where a matching route sends the request.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// A fixed cluster.
    Cluster(String),
    /// The cluster named by a request header (Envoy's `cluster_header`).
    ClusterHeader(String),
    /// Weighted clusters (name, weight); drawn per request.
    Weighted(Vec<(String, u32)>),
}

impl Default for RouteAction {
    fn default() -> Self {
        RouteAction::Cluster("upstream".into())
    }
}

/// The chain a worker runs.
#[derive(Debug, Clone, Default)]
pub struct ChainConfig {
    pub plugins: Vec<PluginConfig>,
    /// Routes; empty means every request goes to cluster `upstream`.
    pub routes: Vec<Route>,
    /// Clusters the router may pick (empty: any name is accepted).
    pub upstream_clusters: Vec<String>,
}

/// Something that happened to a stream, for the driver to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The request passed every filter: send it upstream to `cluster`.
    UpstreamHeaders {
        headers: HeaderMap,
        end_stream: bool,
        cluster: String,
    },
    UpstreamData {
        data: Vec<u8>,
        end_stream: bool,
    },
    UpstreamTrailers(HeaderMap),
    /// The response (or a local reply) passed every filter.
    DownstreamHeaders {
        headers: HeaderMap,
        end_stream: bool,
    },
    DownstreamData {
        data: Vec<u8>,
        end_stream: bool,
    },
    DownstreamTrailers(HeaderMap),
    /// The stream was reset (`proxy_close_stream`, reply after response start).
    Reset(String),
    /// The stream is over: logs ran, contexts are deleted.
    Complete,
}

/// Identifies a callout across VM reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CalloutId {
    pub vm: usize,
    pub generation: u64,
    pub token: u32,
}

/// A callout for the driver to perform.
#[derive(Debug, Clone)]
pub struct Callout {
    pub id: CalloutId,
    pub call: OutgoingCall,
    /// Name of the plugin that made it.
    pub plugin: String,
}

/// An HTTP callout's answer.
#[derive(Debug, Clone, Default)]
pub struct CalloutResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// A gRPC answer.
#[derive(Debug, Clone, Default)]
pub struct GrpcAnswer {
    pub initial_metadata: Option<HeaderMap>,
    pub message: Option<Vec<u8>>,
    pub trailing_metadata: Option<HeaderMap>,
    pub status: u32,
    pub status_message: String,
    /// Deliver `proxy_on_grpc_close` (always for unary calls).
    pub close: bool,
}

/// Envoy response flags the harness sets.
pub mod response_flags {
    pub const NO_HEALTHY_UPSTREAM: u64 = 0x2;
    pub const UPSTREAM_REQUEST_TIMEOUT: u64 = 0x4;
    pub const LOCAL_RESET: u64 = 0x8;
    pub const UPSTREAM_CONNECTION_FAILURE: u64 = 0x20;
    pub const NO_ROUTE_FOUND: u64 = 0x100;
    pub const DOWNSTREAM_CONNECTION_TERMINATION: u64 = 0x4000;
    pub const NO_CLUSTER_FOUND: u64 = 0x1000000;
}

struct VmSlot {
    module: LoadedModule,
    settings: VmSettings,
    vm: Vm,
    generation: u64,
    plugins: Vec<usize>,
    reload_pending: bool,
}

struct PluginSlot {
    info: Rc<PluginInfo>,
    config: PluginConfig,
    vm: usize,
    root_ctx: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Req,
    Resp,
}

#[derive(Default, Clone)]
struct FilterDir {
    /// The body callback in progress ends the stream and no trailers existed
    /// before it: trailers that exist afterwards were added by the filter.
    trailers_addable: bool,
    headers_done: bool,
    stop_all: bool,
    buffering: bool,
    stopped_trailers: bool,
    pending: Option<Vec<u8>>,
    pending_eos: bool,
    pending_trailers: Option<HeaderMap>,
}

/// A plugin's context for one stream.
#[derive(Debug, Clone, Copy)]
struct StreamCtx {
    /// Generation of the VM it lives in (a reloaded VM does not know it).
    generation: u64,
    ctx: u32,
    /// Whether `proxy_on_context_create` ran for it.
    created: bool,
}

struct StreamState {
    data: StreamRef,
    /// The plugin contexts, per chain position.
    ctx: Vec<Option<StreamCtx>>,
    req: Vec<FilterDir>,
    resp: Vec<FilterDir>,
    /// Positions whose plugin failed this stream (no more callbacks).
    failed: Vec<bool>,
    request_done: bool,
    response_started: bool,
    downstream_headers_sent: bool,
    downstream_done: bool,
    finished: bool,
    events: Vec<StreamEvent>,
    local_reply_by: Option<usize>,
    grpc_request: bool,
    /// `end_stream` that came with the request / response headers.
    headers_eos: [bool; 2],
    /// The route picked, and the route-cache generation it was picked at.
    route: Option<(u32, RouteResult)>,
}

type RouteResult = Result<(String, String), (u32, &'static str, u64)>;

/// A stream's outcome as the driver sees it.
#[derive(Debug, Clone, Default)]
pub struct StreamInfo {
    pub local_reply_by: Option<String>,
    pub code_details: Option<String>,
    pub route_cache_cleared: u32,
    pub filter_state: Vec<(Vec<u8>, Vec<u8>)>,
    pub upstream_cluster: Option<String>,
    /// Envoy response flags (see [`response_flags`]).
    pub response_flags: u64,
}

/// At most this many `proxy_on_queue_ready` callbacks per
/// [`Worker::poll_queues`].
pub const MAX_QUEUE_CALLBACKS_PER_POLL: usize = 4096;

/// VMs of a chain plus the streams running through it (one per Envoy
/// worker thread).
pub struct Worker {
    pub id: usize,
    runtime: Arc<Runtime>,
    host: Arc<HostShared>,
    vms: Vec<VmSlot>,
    plugins: Vec<PluginSlot>,
    config: ChainConfig,
    streams: crate::FastMap<u64, StreamState>,
    /// Streams with events not yet taken.
    dirty: Vec<u64>,
    next_stream: u64,
    timers: crate::FastMap<(usize, u32), (u32, i64)>,
    outbox: Vec<Callout>,
    route_rng: u64,
    /// A filter's buffered body beyond this gets Envoy's 413 / 500
    /// ([`Worker::set_buffer_limit`]).
    buffer_limit: usize,
}

impl Worker {
    /// Loads the modules, creates the VMs (sharing one VM between plugins
    /// with the same `vm_id`, code and VM configuration, as Envoy does) and
    /// starts every plugin. Fails if a module cannot load or a plugin's
    /// `proxy_on_vm_start`/`proxy_on_configure` returns false.
    pub fn new(
        id: usize,
        runtime: Arc<Runtime>,
        host: Arc<HostShared>,
        config: ChainConfig,
    ) -> Result<Worker, String> {
        let route_rng =
            0x853c_49e6_748f_ea9b ^ host.seed() ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut w = Worker {
            id,
            runtime,
            host,
            vms: Vec::new(),
            plugins: Vec::new(),
            config: config.clone(),
            streams: Default::default(),
            dirty: Vec::new(),
            next_stream: (id as u64) << 40,
            timers: Default::default(),
            outbox: Vec::new(),
            route_rng,
            buffer_limit: usize::MAX,
        };
        for (i, pc) in config.plugins.iter().enumerate() {
            let module = w.runtime.load(&pc.wasm)?;
            let settings = VmSettings {
                vm_id: pc.vm_id.clone(),
                vm_config: pc.vm_config.clone(),
                env: pc.env.clone(),
            };
            let existing = w.vms.iter().position(|s| {
                s.module.digest == module.digest
                    && s.settings.vm_id == settings.vm_id
                    && s.settings.vm_config == settings.vm_config
                    && s.settings.env == settings.env
            });
            let vm_index = match existing {
                Some(v) => v,
                None => {
                    let vm = Vm::new(&w.runtime, &module, w.host.clone(), &settings)
                        .map_err(|e| format!("plugin `{}`: {e}", pc.name))?;
                    w.vms.push(VmSlot {
                        module,
                        settings,
                        vm,
                        generation: 0,
                        plugins: Vec::new(),
                        reload_pending: false,
                    });
                    w.vms.len() - 1
                }
            };
            let info = Rc::new(PluginInfo {
                name: pc.name.clone(),
                root_id: pc.root_id.clone(),
                configuration: pc.configuration.clone(),
            });
            let root_ctx = w.vms[vm_index]
                .vm
                .start_plugin(info.clone())
                .map_err(|e| format!("plugin `{}`: {e}", pc.name))?;
            w.vms[vm_index].plugins.push(i);
            w.plugins.push(PluginSlot {
                info,
                config: pc.clone(),
                vm: vm_index,
                root_ctx,
            });
            let out = w.vms[vm_index].vm.take_outputs();
            w.absorb(vm_index, out);
        }
        Ok(w)
    }

    /// The shared host.
    pub fn host(&self) -> &Arc<HostShared> {
        &self.host
    }

    /// Number of plugins in the chain.
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// Whether the chain has no plugins.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Linear memory of each VM, in bytes.
    pub fn memory_sizes(&self) -> Vec<(String, usize)> {
        self.vms
            .iter()
            .map(|v| {
                let names: Vec<&str> = v
                    .plugins
                    .iter()
                    .map(|p| self.plugins[*p].info.name.as_str())
                    .collect();
                (names.join("+"), v.vm.memory_size())
            })
            .collect()
    }

    /// Whether the VM of plugin `name` has failed.
    pub fn plugin_failed(&self, name: &str) -> bool {
        self.plugins
            .iter()
            .find(|p| p.info.name == name)
            .is_some_and(|p| self.vms[p.vm].vm.failed.is_some())
    }

    /// Active (unfinished) streams.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// Events of a stream since the last call.
    pub fn take_events(&mut self, sid: u64) -> Vec<StreamEvent> {
        match self.streams.get_mut(&sid) {
            Some(s) => {
                let ev = std::mem::take(&mut s.events);
                if s.finished {
                    self.streams.remove(&sid);
                }
                ev
            }
            None => Vec::new(),
        }
    }

    /// What the stream's plugins left behind (call before the last
    /// `take_events`, which forgets a finished stream).
    pub fn stream_info(&self, sid: u64) -> Option<StreamInfo> {
        let s = self.streams.get(&sid)?;
        let d = s.data.borrow();
        Some(StreamInfo {
            local_reply_by: s
                .local_reply_by
                .and_then(|p| self.plugins.get(p))
                .map(|p| p.info.name.clone()),
            code_details: d.code_details.clone(),
            route_cache_cleared: d.route_cache_cleared,
            filter_state: d
                .filter_state
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            upstream_cluster: d.upstream_cluster.clone(),
            response_flags: d.response_flags,
        })
    }

    /// Whether the stream is still running.
    pub fn is_active(&self, sid: u64) -> bool {
        self.streams.get(&sid).is_some_and(|s| !s.finished)
    }

    /// Ids of streams that have events waiting (each once), clearing the list.
    pub fn take_dirty(&mut self) -> Vec<u64> {
        let mut d = std::mem::take(&mut self.dirty);
        d.sort_unstable();
        d.dedup();
        d
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Headers,
    Body,
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Continue,
    Stop,
    /// The stream moved on without this path (reply, reset, resumed inline).
    Gone,
}
