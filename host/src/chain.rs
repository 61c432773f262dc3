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

use crate::headers::HeaderMap;
use crate::host::HostShared;
use crate::runtime::{LoadedModule, Runtime};
use crate::stream_data::{window, LocalReply, Slot, StreamData, StreamRef};
use crate::types::{LogLevel, StreamType};
use crate::vm::{Action, CalloutView, OutgoingCall, Outputs, PluginInfo, Trap, Vm, VmSettings};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

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

struct StreamState {
    data: StreamRef,
    /// (VM generation, context id) per chain position.
    ctx: Vec<Option<(u64, u32)>>,
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

    // ------------------------------------------------------------------
    // Outputs of VM callbacks

    fn absorb(&mut self, vm: usize, out: Outputs) -> Vec<Action> {
        let generation = self.vms[vm].generation;
        let now = self.host.clock.now_ns();
        for (root, period) in out.ticks {
            if period == 0 {
                self.timers.remove(&(vm, root));
            } else {
                self.timers
                    .insert((vm, root), (period, now + i64::from(period) * 1_000_000));
            }
        }
        for call in out.calls {
            let plugin = self.vms[vm]
                .plugins
                .iter()
                .map(|p| &self.plugins[*p])
                .find(|p| p.root_ctx == call.root_ctx)
                .map(|p| p.info.name.clone())
                .unwrap_or_default();
            self.outbox.push(Callout {
                id: CalloutId {
                    vm,
                    generation,
                    token: call.token,
                },
                call,
                plugin,
            });
        }
        for root in out.done {
            let _ = self.vms[vm].vm.on_delete(root);
        }
        out.actions
    }

    /// Callouts started since the last call (the driver performs them).
    pub fn take_callouts(&mut self) -> Vec<Callout> {
        std::mem::take(&mut self.outbox)
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

    fn apply(&mut self, vm: usize, actions: Vec<Action>) {
        for a in actions {
            let ctx = match &a {
                Action::Continue { ctx, .. }
                | Action::Close { ctx, .. }
                | Action::LocalReply { ctx, .. } => *ctx,
            };
            let Some((sid, pos)) = self.vms[vm].vm.stream_position(ctx) else {
                continue;
            };
            if !self.streams.contains_key(&sid) {
                continue;
            }
            match a {
                Action::Continue {
                    stream: StreamType::Request,
                    ..
                } => self.resume(sid, Dir::Req, pos),
                Action::Continue {
                    stream: StreamType::Response,
                    ..
                } => {
                    let k = self.plugins.len() - 1 - pos;
                    self.resume(sid, Dir::Resp, k)
                }
                Action::Continue { .. } => {}
                Action::Close { .. } => {
                    if let Some(s) = self.streams.get(&sid) {
                        let mut d = s.data.borrow_mut();
                        if d.code_details.is_none() {
                            d.code_details = Some("wasm_close_stream".into());
                        }
                        d.response_flags |= response_flags::LOCAL_RESET;
                    }
                    self.reset(sid, "wasm_close_stream");
                }
                Action::LocalReply { reply, .. } => self.local_reply(sid, pos, reply),
            }
        }
    }

    // ------------------------------------------------------------------
    // Timers, callouts, queues

    /// When the next tick is due (ns), if any timer is set.
    pub fn next_timer_ns(&self) -> Option<i64> {
        self.timers.values().map(|(_, next)| *next).min()
    }

    /// Fires every tick due at or before the clock's current time.
    pub fn fire_timers(&mut self) {
        let now = self.host.clock.now_ns();
        loop {
            let due: Option<(usize, u32)> = self
                .timers
                .iter()
                .filter(|(_, (_, next))| *next <= now)
                .min_by_key(|(_, (_, next))| *next)
                .map(|(k, _)| *k);
            let Some((vm, root)) = due else { break };
            if let Some((period, next)) = self.timers.get_mut(&(vm, root)) {
                *next += i64::from(*period) * 1_000_000;
                if *next <= now {
                    // Catch up without firing a burst: one tick per call.
                    *next = now + i64::from(*period) * 1_000_000;
                }
            }
            if self.vms[vm].vm.failed.is_some() {
                self.timers.remove(&(vm, root));
                continue;
            }
            let r = self.vms[vm].vm.on_tick(root);
            self.after_root_call(vm, r);
        }
    }

    fn after_root_call(&mut self, vm: usize, r: Result<(), Trap>) {
        let out = self.vms[vm].vm.take_outputs();
        let actions = self.absorb(vm, out);
        self.apply(vm, actions);
        if r.is_err() {
            self.vm_failed(vm);
        }
        self.poll_queues();
    }

    fn vm_failed(&mut self, vm: usize) {
        let reload = self.vms[vm]
            .plugins
            .iter()
            .any(|p| self.plugins[*p].config.failure_policy == FailurePolicy::FailReload);
        if reload {
            self.vms[vm].reload_pending = true;
        }
        self.timers.retain(|(v, _), _| *v != vm);
    }

    /// Delivers a gRPC answer to the root context that made the call.
    pub fn deliver_grpc(&mut self, callout: &Callout, a: GrpcAnswer) {
        let (id, root_ctx) = (callout.id, callout.call.root_ctx);
        let Some(slot) = self.vms.get_mut(id.vm) else {
            return;
        };
        if slot.generation != id.generation || slot.vm.failed.is_some() {
            return;
        }
        let r = slot.vm.on_grpc_answer(root_ctx, id.token, a);
        self.after_root_call(id.vm, r);
    }

    /// Delivers an HTTP callout's answer to the root context that made it
    /// (`None`: the call failed — Envoy's reset, `on_http_call_response(token, 0, 0, 0)`).
    pub fn deliver_http(&mut self, callout: &Callout, response: Option<CalloutResponse>) {
        let id = callout.id;
        let Some(slot) = self.vms.get_mut(id.vm) else {
            return;
        };
        if slot.generation != id.generation || slot.vm.failed.is_some() {
            return;
        }
        let view = response.map(|r| CalloutView {
            headers: Some(r.headers),
            body: Some(r.body),
            trailers: Some(r.trailers),
        });
        let r = slot
            .vm
            .on_http_call_response(callout.call.root_ctx, id.token, view);
        self.after_root_call(id.vm, r);
    }

    /// Runs `proxy_on_queue_ready` for items enqueued for this worker's VMs.
    /// Delivers pending `proxy_on_queue_ready` notifications.
    pub fn poll_queues(&mut self) {
        // Notifications raised while delivering are delivered in the same
        // poll (as Envoy's dispatcher runs posted callbacks in one loop
        // turn), but at most this many callbacks per poll: a module that
        // enqueues from `proxy_on_queue_ready` cannot hold the worker.
        let mut budget = MAX_QUEUE_CALLBACKS_PER_POLL;
        for _ in 0..64 {
            if !self.host.has_notifications() {
                return;
            }
            let ids: Vec<u64> = self.vms.iter().map(|v| v.vm.instance_id()).collect();
            let mut notes = self.host.take_notifications(&ids);
            if notes.is_empty() {
                return;
            }
            if notes.len() > budget {
                // The rest wait for the next poll.
                let rest = notes.split_off(budget);
                self.host.requeue_notifications(rest);
            }
            budget -= notes.len();
            for n in notes {
                if let Some(vm) = self
                    .vms
                    .iter()
                    .position(|v| v.vm.instance_id() == n.vm_instance)
                {
                    if self.vms[vm].vm.failed.is_some() {
                        continue;
                    }
                    let r = self.vms[vm].vm.on_queue_ready(n.context_id, n.queue_id);
                    let out = self.vms[vm].vm.take_outputs();
                    let actions = self.absorb(vm, out);
                    self.apply(vm, actions);
                    if r.is_err() {
                        self.vm_failed(vm);
                    }
                }
            }
            if budget == 0 {
                return;
            }
        }
    }

    fn reload_failed_vms(&mut self) {
        for vm in 0..self.vms.len() {
            if !self.vms[vm].reload_pending {
                continue;
            }
            self.vms[vm].reload_pending = false;
            let new_vm = Vm::new(
                &self.runtime,
                &self.vms[vm].module,
                self.host.clone(),
                &self.vms[vm].settings,
            );
            let mut new_vm = match new_vm {
                Ok(v) => v,
                Err(e) => {
                    self.host.log(
                        LogLevel::Critical,
                        "",
                        &format!("Failed to reload Wasm VM: {e}"),
                    );
                    continue;
                }
            };
            let plugins = self.vms[vm].plugins.clone();
            let mut ok = true;
            for p in &plugins {
                match new_vm.start_plugin(self.plugins[*p].info.clone()) {
                    Ok(root) => self.plugins[*p].root_ctx = root,
                    Err(e) => {
                        self.host.log(
                            LogLevel::Critical,
                            &self.plugins[*p].info.name,
                            &format!("reload: {e}"),
                        );
                        ok = false;
                    }
                }
            }
            if !ok {
                continue;
            }
            self.host.log(
                LogLevel::Warn,
                "",
                "Wasm VM reloaded after failure (fail_reload)",
            );
            let slot = &mut self.vms[vm];
            slot.vm = new_vm;
            slot.generation += 1;
            let out = self.vms[vm].vm.take_outputs();
            let actions = self.absorb(vm, out);
            self.apply(vm, actions);
        }
    }

    /// Plugin shutdown, as Envoy drains a VM: `proxy_on_done` on each root
    /// context; those that return true get `proxy_on_delete` now, the others
    /// when they call `proxy_done`.
    pub fn shutdown(&mut self) {
        for p in 0..self.plugins.len() {
            let (vm, root) = (self.plugins[p].vm, self.plugins[p].root_ctx);
            if self.vms[vm].vm.failed.is_some() {
                continue;
            }
            let r = self.vms[vm].vm.shutdown_root(root);
            if let Ok(true) = r {
                let _ = self.vms[vm].vm.on_delete(root);
            }
            self.after_root_call(vm, r.map(|_| ()));
        }
        self.timers.clear();
    }

    // ------------------------------------------------------------------
    // Streams: entry points for the driver

    /// Starts a stream with the client's request headers. Returns its id;
    /// read what happened with [`Worker::take_events`].
    pub fn start_stream(
        &mut self,
        mut headers: HeaderMap,
        end_stream: bool,
        properties: crate::properties::PropertyMap,
    ) -> u64 {
        self.reload_failed_vms();
        let sid = self.next_stream;
        self.next_stream += 1;
        if headers.get(b"x-request-id").is_none() {
            headers.add(b"x-request-id", request_id(sid).as_bytes());
        }
        let n = self.plugins.len();
        let grpc_request = headers
            .get(b"content-type")
            .is_some_and(|v| v.starts_with(b"application/grpc"));
        let data = Rc::new(RefCell::new(StreamData {
            id: sid,
            req_headers: headers,
            slots: vec![Slot::default(); n],
            properties,
            start_ns: self.host.clock.now_ns(),
            ..Default::default()
        }));
        self.streams.insert(
            sid,
            StreamState {
                data,
                ctx: vec![None; n],
                req: vec![FilterDir::default(); n],
                resp: vec![FilterDir::default(); n],
                failed: vec![false; n],
                request_done: end_stream,
                response_started: false,
                downstream_headers_sent: false,
                downstream_done: false,
                finished: false,
                events: Vec::new(),
                local_reply_by: None,
                grpc_request,
                headers_eos: [end_stream, false],
                route: None,
            },
        );
        let invalid = invalid_request(&self.streams[&sid].data.borrow().req_headers);
        if let Some((code, details)) = invalid {
            // The connection manager refuses it before any filter runs.
            self.local_reply(
                sid,
                n,
                LocalReply {
                    status: code,
                    body: Vec::new(),
                    headers: Vec::new(),
                    grpc_status: None,
                    details: details.into(),
                },
            );
            return sid;
        }
        let _ = self.route_for(sid);
        self.headers_at(sid, Dir::Req, 0, end_stream);
        sid
    }

    /// A request body chunk from the client.
    pub fn downstream_data(&mut self, sid: u64, data: Vec<u8>, end_stream: bool) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.local_reply_by.is_some() || s.finished {
            return;
        }
        s.data.borrow_mut().req_body_bytes += data.len() as u64;
        if end_stream {
            s.request_done = true;
        }
        self.data_at(sid, Dir::Req, 0, data, end_stream);
    }

    /// Request trailers from the client (end of the request).
    pub fn downstream_trailers(&mut self, sid: u64, trailers: HeaderMap) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.local_reply_by.is_some() || s.finished {
            return;
        }
        s.request_done = true;
        s.data.borrow_mut().req_trailers = Some(trailers);
        self.trailers_at(sid, Dir::Req, 0);
    }

    /// The client went away (stream reset by the downstream).
    pub fn downstream_reset(&mut self, sid: u64) {
        if let Some(s) = self.streams.get(&sid) {
            s.data.borrow_mut().response_flags |= response_flags::DOWNSTREAM_CONNECTION_TERMINATION;
        }
        self.reset(sid, "downstream_remote_disconnect");
    }

    /// Response headers from the upstream.
    pub fn upstream_headers(&mut self, sid: u64, headers: HeaderMap, end_stream: bool) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished || s.local_reply_by.is_some() || s.response_started {
            return;
        }
        s.response_started = true;
        s.headers_eos[1] = end_stream;
        {
            let mut d = s.data.borrow_mut();
            d.resp_headers = Some(headers);
            if d.code_details.is_none() {
                d.code_details = Some("via_upstream".into());
            }
        }
        self.headers_at(sid, Dir::Resp, 0, end_stream);
    }

    /// A response body chunk from the upstream.
    pub fn upstream_data(&mut self, sid: u64, data: Vec<u8>, end_stream: bool) {
        let Some(s) = self.streams.get(&sid) else {
            return;
        };
        if s.finished || s.local_reply_by.is_some() {
            return;
        }
        self.data_at(sid, Dir::Resp, 0, data, end_stream);
    }

    /// Response trailers from the upstream.
    pub fn upstream_trailers(&mut self, sid: u64, trailers: HeaderMap) {
        let Some(s) = self.streams.get(&sid) else {
            return;
        };
        if s.finished || s.local_reply_by.is_some() {
            return;
        }
        s.data.borrow_mut().resp_trailers = Some(trailers);
        self.trailers_at(sid, Dir::Resp, 0);
    }

    /// The upstream failed: Envoy answers the client itself (`503 no healthy
    /// upstream`, `504 upstream request timeout`, ...) through the filters.
    pub fn upstream_failure(
        &mut self,
        sid: u64,
        status: u32,
        body: &str,
        details: &str,
        flags: u64,
    ) {
        let n = self.plugins.len();
        if let Some(s) = self.streams.get(&sid) {
            s.data.borrow_mut().response_flags |= flags;
        }
        self.local_reply(
            sid,
            n,
            LocalReply {
                status,
                body: body.as_bytes().to_vec(),
                headers: Vec::new(),
                grpc_status: None,
                details: details.to_string(),
            },
        );
    }

    // ------------------------------------------------------------------
    // The state machine

    fn filter_index(&self, dir: Dir, k: usize) -> usize {
        match dir {
            Dir::Req => k,
            Dir::Resp => self.plugins.len() - 1 - k,
        }
    }

    fn dirs(&mut self, sid: u64, dir: Dir) -> Option<&mut Vec<FilterDir>> {
        let s = self.streams.get_mut(&sid)?;
        Some(match dir {
            Dir::Req => &mut s.req,
            Dir::Resp => &mut s.resp,
        })
    }

    fn alive(&self, sid: u64, dir: Dir) -> bool {
        match self.streams.get(&sid) {
            None => false,
            Some(s) => !s.finished && (dir == Dir::Resp || s.local_reply_by.is_none()),
        }
    }

    fn headers_at(&mut self, sid: u64, dir: Dir, k: usize, eos: bool) {
        if !self.alive(sid, dir) {
            return;
        }
        if k == self.plugins.len() {
            self.sink_headers(sid, dir, eos);
            return;
        }
        let i = self.filter_index(dir, k);
        let r = self.call(sid, dir, Phase::Headers, i, eos);
        match r {
            Outcome::Continue => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].headers_done = true;
                }
                self.close_window(
                    sid,
                    i,
                    if dir == Dir::Req {
                        window::REQ_HEADERS
                    } else {
                        window::RESP_HEADERS
                    },
                );
                self.headers_at(sid, dir, k + 1, eos);
                self.flush_pending(sid, dir, k);
            }
            Outcome::Stop => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].stop_all = true;
                }
            }
            Outcome::Gone => {}
        }
    }

    fn flush_pending(&mut self, sid: u64, dir: Dir, k: usize) {
        let Some(d) = self.dirs(sid, dir) else { return };
        let pending = d[k].pending.take();
        let eos = d[k].pending_eos;
        let trailers = d[k].pending_trailers.take();
        if let Some(data) = pending {
            self.data_at(sid, dir, k, data, eos);
        }
        if trailers.is_some() {
            self.trailers_at(sid, dir, k);
        }
    }

    fn data_at(&mut self, sid: u64, dir: Dir, k: usize, data: Vec<u8>, eos: bool) {
        if !self.alive(sid, dir) {
            return;
        }
        if k == self.plugins.len() {
            self.sink_data(sid, dir, data, eos);
            return;
        }
        let i = self.filter_index(dir, k);
        let limit = self.buffer_limit;
        {
            let Some(d) = self.dirs(sid, dir) else { return };
            let f = &mut d[k];
            if !f.headers_done || f.stopped_trailers {
                // Stopped in headers: hold the body until the filter continues.
                let held = f.pending.get_or_insert_with(Vec::new);
                held.extend_from_slice(&data);
                let over = held.len() > limit;
                f.pending_eos |= eos;
                if over {
                    self.buffer_too_large(sid, dir);
                }
                return;
            }
        }
        let buffering = self.dirs(sid, dir).map(|d| d[k].buffering).unwrap_or(false);
        let no_trailers = {
            let d = self.streams[&sid].data.borrow();
            match dir {
                Dir::Req => d.req_trailers.is_none(),
                Dir::Resp => d.resp_trailers.is_none(),
            }
        };
        if let Some(d) = self.dirs(sid, dir) {
            d[k].trailers_addable = eos && no_trailers;
        }
        {
            let s = &self.streams[&sid];
            let mut st = s.data.borrow_mut();
            let slot = &mut st.slots[i];
            let buf = if dir == Dir::Req {
                &mut slot.req_buf
            } else {
                &mut slot.resp_buf
            };
            if !buffering {
                buf.clear();
            }
            buf.extend_from_slice(&data);
            if dir == Dir::Req {
                slot.req_eos = eos;
            } else {
                slot.resp_eos = eos;
            }
        }
        match self.call(sid, dir, Phase::Body, i, eos) {
            Outcome::Continue => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].buffering = false;
                }
                let body = self.take_body(sid, dir, i);
                self.forward_body(sid, dir, k, body, eos);
            }
            Outcome::Stop => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].buffering = true;
                }
                let held = self.streams.get(&sid).map_or(0, |s| {
                    let st = s.data.borrow();
                    match dir {
                        Dir::Req => st.slots[i].req_buf.len(),
                        Dir::Resp => st.slots[i].resp_buf.len(),
                    }
                });
                if held > self.buffer_limit {
                    self.buffer_too_large(sid, dir);
                }
            }
            Outcome::Gone => {}
        }
    }

    /// The buffer limit of a stream's filters (Envoy's
    /// `per_connection_buffer_limit_bytes`; unlimited by default).
    pub fn set_buffer_limit(&mut self, bytes: usize) {
        self.buffer_limit = bytes;
    }

    /// A filter holds more body than the buffer limit: Envoy's filter
    /// manager answers `413 Payload Too Large` (`request_payload_too_large`)
    /// for a request body and `500 Internal Server Error`
    /// (`response_payload_too_large`) for a response body, or resets the
    /// stream when the response headers already went out.
    fn buffer_too_large(&mut self, sid: u64, dir: Dir) {
        let (status, body, details) = match dir {
            Dir::Req => (413, "Payload Too Large", "request_payload_too_large"),
            Dir::Resp => (500, "Internal Server Error", "response_payload_too_large"),
        };
        if let Some(s) = self.streams.get(&sid) {
            if s.downstream_headers_sent {
                // Envoy records the details, then can only reset.
                s.data.borrow_mut().code_details = Some(details.into());
                self.reset(sid, details);
                return;
            }
        }
        let n = self.plugins.len();
        self.local_reply(
            sid,
            n,
            LocalReply {
                status,
                body: body.as_bytes().to_vec(),
                headers: Vec::new(),
                grpc_status: None,
                details: details.into(),
            },
        );
    }

    /// Passes a body on from position `k`; if the filter added trailers in
    /// its last body callback, the data goes on without end of stream and
    /// the new trailers follow (Envoy's `addDecodedTrailers` /
    /// `addEncodedTrailers`).
    fn forward_body(&mut self, sid: u64, dir: Dir, k: usize, body: Vec<u8>, eos: bool) {
        let added = eos
            && self.dirs(sid, dir).is_some_and(|d| d[k].trailers_addable)
            && self.streams.get(&sid).is_some_and(|s| {
                let d = s.data.borrow();
                match dir {
                    Dir::Req => d.req_trailers.is_some(),
                    Dir::Resp => d.resp_trailers.is_some(),
                }
            });
        if added {
            self.data_at(sid, dir, k + 1, body, false);
            self.trailers_at(sid, dir, k + 1);
        } else {
            self.data_at(sid, dir, k + 1, body, eos);
        }
    }

    fn take_body(&mut self, sid: u64, dir: Dir, i: usize) -> Vec<u8> {
        let Some(s) = self.streams.get(&sid) else {
            return Vec::new();
        };
        let mut st = s.data.borrow_mut();
        let slot = &mut st.slots[i];
        let w = if dir == Dir::Req {
            window::REQ_BODY
        } else {
            window::RESP_BODY
        };
        slot.open &= !w;
        std::mem::take(if dir == Dir::Req {
            &mut slot.req_buf
        } else {
            &mut slot.resp_buf
        })
    }

    fn trailers_at(&mut self, sid: u64, dir: Dir, k: usize) {
        if !self.alive(sid, dir) {
            return;
        }
        if k == self.plugins.len() {
            self.sink_trailers(sid, dir);
            return;
        }
        let i = self.filter_index(dir, k);
        {
            let Some(d) = self.dirs(sid, dir) else { return };
            if !d[k].headers_done {
                d[k].pending_trailers = Some(HeaderMap::new());
                return;
            }
        }
        match self.call(sid, dir, Phase::Trailers, i, true) {
            Outcome::Continue => self.pass_trailers(sid, dir, k, i),
            Outcome::Stop => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].stopped_trailers = true;
                }
            }
            Outcome::Gone => {}
        }
    }

    fn pass_trailers(&mut self, sid: u64, dir: Dir, k: usize, i: usize) {
        let buffered = self
            .dirs(sid, dir)
            .map(|d| std::mem::take(&mut d[k].buffering))
            .unwrap_or(false);
        if buffered {
            let body = self.take_body(sid, dir, i);
            self.data_at(sid, dir, k + 1, body, false);
        }
        self.close_window(
            sid,
            i,
            if dir == Dir::Req {
                window::REQ_TRAILERS
            } else {
                window::RESP_TRAILERS
            },
        );
        self.trailers_at(sid, dir, k + 1);
    }

    /// `proxy_continue_stream` from the filter at traversal position `k`.
    fn resume(&mut self, sid: u64, dir: Dir, k: usize) {
        if !self.alive(sid, dir) {
            return;
        }
        let i = self.filter_index(dir, k);
        let Some(f) = self.dirs(sid, dir).map(|d| d[k].clone()) else {
            return;
        };
        // Envoy forgets the context's maps and buffers on continue.
        let all = if dir == Dir::Req {
            window::REQ_HEADERS | window::REQ_BODY | window::REQ_TRAILERS
        } else {
            window::RESP_HEADERS | window::RESP_BODY | window::RESP_TRAILERS
        };
        if f.stop_all {
            if let Some(d) = self.dirs(sid, dir) {
                d[k].stop_all = false;
                d[k].headers_done = true;
            }
            self.close_window(sid, i, all);
            let eos = self.headers_eos(sid, dir);
            self.headers_at(sid, dir, k + 1, eos);
            self.flush_pending(sid, dir, k);
        } else if f.stopped_trailers {
            if let Some(d) = self.dirs(sid, dir) {
                d[k].stopped_trailers = false;
            }
            self.pass_trailers(sid, dir, k, i);
            self.close_window(sid, i, all);
        } else if f.buffering {
            if let Some(d) = self.dirs(sid, dir) {
                d[k].buffering = false;
            }
            let eos = {
                let s = &self.streams[&sid];
                let st = s.data.borrow();
                if dir == Dir::Req {
                    st.slots[i].req_eos
                } else {
                    st.slots[i].resp_eos
                }
            };
            let body = self.take_body(sid, dir, i);
            self.close_window(sid, i, all);
            self.forward_body(sid, dir, k, body, eos);
        }
    }

    fn headers_eos(&self, sid: u64, dir: Dir) -> bool {
        self.streams
            .get(&sid)
            .is_some_and(|s| s.headers_eos[dir as usize])
    }

    fn close_window(&mut self, sid: u64, i: usize, w: u32) {
        if let Some(s) = self.streams.get(&sid) {
            if let Some(slot) = s.data.borrow_mut().slots.get_mut(i) {
                slot.open &= !w;
            }
        }
    }

    // ------------------------------------------------------------------
    // Sinks: the router (upstream) and the client (downstream)

    fn sink_headers(&mut self, sid: u64, dir: Dir, eos: bool) {
        match dir {
            Dir::Req => {
                let headers = self.streams[&sid].data.borrow().req_headers.clone();
                match self.route_for(sid) {
                    Ok((_route, cluster)) => {
                        self.push(
                            sid,
                            StreamEvent::UpstreamHeaders {
                                headers,
                                end_stream: eos,
                                cluster,
                            },
                        );
                    }
                    Err((status, details, flag)) => {
                        if let Some(s) = self.streams.get(&sid) {
                            s.data.borrow_mut().response_flags |= flag;
                        }
                        let n = self.plugins.len();
                        self.local_reply(
                            sid,
                            n,
                            LocalReply {
                                status,
                                body: Vec::new(),
                                headers: Vec::new(),
                                grpc_status: None,
                                details: details.into(),
                            },
                        );
                    }
                }
            }
            Dir::Resp => {
                let headers = self.streams[&sid]
                    .data
                    .borrow()
                    .resp_headers
                    .clone()
                    .unwrap_or_default();
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.downstream_headers_sent = true;
                }
                self.push(
                    sid,
                    StreamEvent::DownstreamHeaders {
                        headers,
                        end_stream: eos,
                    },
                );
                if eos {
                    self.downstream_complete(sid);
                }
            }
        }
    }

    fn sink_data(&mut self, sid: u64, dir: Dir, data: Vec<u8>, eos: bool) {
        match dir {
            Dir::Req => self.push(
                sid,
                StreamEvent::UpstreamData {
                    data,
                    end_stream: eos,
                },
            ),
            Dir::Resp => {
                if let Some(s) = self.streams.get(&sid) {
                    s.data.borrow_mut().resp_body_bytes += data.len() as u64;
                }
                self.push(
                    sid,
                    StreamEvent::DownstreamData {
                        data,
                        end_stream: eos,
                    },
                );
                if eos {
                    self.downstream_complete(sid);
                }
            }
        }
    }

    fn sink_trailers(&mut self, sid: u64, dir: Dir) {
        let s = &self.streams[&sid];
        let d = s.data.borrow();
        let t = match dir {
            Dir::Req => d.req_trailers.clone(),
            Dir::Resp => d.resp_trailers.clone(),
        }
        .unwrap_or_default();
        drop(d);
        match dir {
            Dir::Req => self.push(sid, StreamEvent::UpstreamTrailers(t)),
            Dir::Resp => {
                self.push(sid, StreamEvent::DownstreamTrailers(t));
                self.downstream_complete(sid);
            }
        }
    }

    fn push(&mut self, sid: u64, e: StreamEvent) {
        if let Some(s) = self.streams.get_mut(&sid) {
            if s.events.is_empty() {
                self.dirty.push(sid);
            }
            s.events.push(e);
        }
    }

    /// Ids of streams that have events waiting (each once), clearing the list.
    pub fn take_dirty(&mut self) -> Vec<u64> {
        let mut d = std::mem::take(&mut self.dirty);
        d.sort_unstable();
        d.dedup();
        d
    }

    /// The stream's route, as Envoy's connection manager caches it: picked
    /// before the filters run (so `xds.route_name` / `xds.cluster_name` are
    /// known from the first callback) and picked again when a filter cleared
    /// the route cache since.
    fn route_for(&mut self, sid: u64) -> RouteResult {
        let Some(s) = self.streams.get(&sid) else {
            return Err((503, "stream_gone", 0));
        };
        let data = s.data.clone();
        let generation = data.borrow().route_cache_cleared;
        if let Some((g, r)) = &s.route {
            if *g == generation {
                return r.clone();
            }
        }
        let r = pick_route(
            &self.config,
            &mut self.route_rng,
            &data.borrow().req_headers,
        );
        if let Some(s) = self.streams.get_mut(&sid) {
            {
                let mut d = s.data.borrow_mut();
                match &r {
                    Ok((route, cluster)) => {
                        d.route_name = Some(route.clone());
                        d.upstream_cluster = Some(cluster.clone());
                    }
                    Err(_) => {
                        d.route_name = None;
                        d.upstream_cluster = None;
                    }
                }
            }
            s.route = Some((generation, r.clone()));
        }
        r
    }

    // ------------------------------------------------------------------
    // Local replies, resets, the end of a stream

    fn local_reply(&mut self, sid: u64, position: usize, reply: LocalReply) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished {
            return;
        }
        if s.downstream_headers_sent {
            // Too late for a reply: Envoy resets the stream.
            self.reset(sid, "local_reply_after_response_started");
            return;
        }
        if s.local_reply_by.is_some() && position < s.ctx.len() {
            // A second reply from a filter while the first is being encoded is
            // ignored, as Envoy ignores it.
            return;
        }
        s.local_reply_by = Some(position);
        let headers = local_reply_headers(&reply, s.grpc_request);
        let body = if s.grpc_request {
            Vec::new()
        } else {
            reply.body.clone()
        };
        let eos = body.is_empty();
        let direct = s.response_started;
        s.response_started = true;
        {
            let mut d = s.data.borrow_mut();
            // Envoy records the details as given, even when empty.
            d.code_details = Some(reply.details.clone());
            d.resp_headers = Some(headers.clone());
            d.resp_trailers = None;
            for slot in d.slots.iter_mut() {
                slot.open &= !(window::REQ_HEADERS | window::REQ_BODY | window::REQ_TRAILERS);
            }
        }
        if direct {
            // The response already entered the filters: reply straight to the client.
            s.downstream_headers_sent = true;
            if !eos {
                s.data.borrow_mut().resp_body_bytes += body.len() as u64;
            }
            self.push(
                sid,
                StreamEvent::DownstreamHeaders {
                    headers,
                    end_stream: eos,
                },
            );
            if !eos {
                self.push(
                    sid,
                    StreamEvent::DownstreamData {
                        data: body,
                        end_stream: true,
                    },
                );
            }
            self.downstream_complete(sid);
            return;
        }
        for f in s.resp.iter_mut() {
            *f = FilterDir::default();
        }
        s.headers_eos[1] = eos;
        self.headers_at(sid, Dir::Resp, 0, eos);
        if !eos {
            self.data_at(sid, Dir::Resp, 0, body, true);
        }
    }

    fn reset(&mut self, sid: u64, reason: &str) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished {
            return;
        }
        self.push(sid, StreamEvent::Reset(reason.to_string()));
        self.finish(sid);
    }

    fn downstream_complete(&mut self, sid: u64) {
        if let Some(s) = self.streams.get_mut(&sid) {
            s.downstream_done = true;
        }
        self.finish(sid);
    }

    /// The end of a stream: `proxy_on_log` for every plugin (creating the
    /// context if the plugin never saw the request), then `proxy_on_done`
    /// and `proxy_on_delete`.
    fn finish(&mut self, sid: u64) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished {
            return;
        }
        s.finished = true;
        let data = s.data.clone();
        {
            let mut d = data.borrow_mut();
            d.end_ns = Some(self.host.clock.now_ns());
            d.log_phase = true;
        }
        let n = self.plugins.len();
        for i in 0..n {
            let Some((vm, ctx)) = self.context_for(sid, i) else {
                continue;
            };
            if self.vms[vm].vm.ensure_created(ctx).is_err() {
                self.after_stream_call(vm);
                continue;
            }
            let r = self.vms[vm].vm.on_log(ctx);
            self.after_stream_call(vm);
            if r.is_err() {
                continue;
            }
        }
        data.borrow_mut().log_phase = false;
        for i in 0..n {
            let Some((vm, ctx)) = self.existing_context(sid, i) else {
                continue;
            };
            if self.vms[vm].vm.failed.is_none() && self.vms[vm].vm.is_created(ctx) {
                let _ = self.vms[vm].vm.on_done(ctx);
                self.after_stream_call(vm);
                if self.vms[vm].vm.failed.is_none() {
                    let _ = self.vms[vm].vm.on_delete(ctx);
                    self.after_stream_call(vm);
                }
            }
            self.vms[vm].vm.drop_context(ctx);
        }
        self.push(sid, StreamEvent::Complete);
    }

    fn after_stream_call(&mut self, vm: usize) {
        let out = self.vms[vm].vm.take_outputs();
        let _ = self.absorb(vm, out);
        if self.vms[vm].vm.failed.is_some() {
            self.vm_failed(vm);
        }
    }

    /// The context of plugin `i` for the stream, creating the registration
    /// if needed (but not calling `proxy_on_context_create`). `None` when the
    /// plugin's VM is failed.
    fn context_for(&mut self, sid: u64, i: usize) -> Option<(usize, u32)> {
        let vm = self.plugins[i].vm;
        if self.vms[vm].vm.failed.is_some() {
            return None;
        }
        let generation = self.vms[vm].generation;
        let s = self.streams.get_mut(&sid)?;
        match s.ctx[i] {
            Some((g, ctx)) if g == generation => Some((vm, ctx)),
            Some(_) => None,
            None => {
                let data = s.data.clone();
                let root = self.plugins[i].root_ctx;
                let ctx = self.vms[vm].vm.new_stream_context(root, data, i);
                self.streams.get_mut(&sid)?.ctx[i] = Some((generation, ctx));
                Some((vm, ctx))
            }
        }
    }

    fn existing_context(&self, sid: u64, i: usize) -> Option<(usize, u32)> {
        let vm = self.plugins[i].vm;
        let (g, ctx) = self.streams.get(&sid)?.ctx[i]?;
        (g == self.vms[vm].generation).then_some((vm, ctx))
    }

    fn call(&mut self, sid: u64, dir: Dir, phase: Phase, i: usize, eos: bool) -> Outcome {
        let vm = self.plugins[i].vm;
        let policy = self.plugins[i].config.failure_policy;
        let Some(s) = self.streams.get(&sid) else {
            return Outcome::Gone;
        };
        if s.failed[i] {
            return Outcome::Continue;
        }
        if dir == Dir::Resp {
            // Encoder callbacks only reach contexts that exist (Envoy skips
            // filters that never saw the request, e.g. after a local reply).
            match self.existing_context(sid, i) {
                Some((_, ctx)) if self.vms[vm].vm.is_created(ctx) => {}
                _ => return Outcome::Continue,
            }
        }
        if self.vms[vm].vm.failed.is_some() {
            return self.fail_stream(sid, i, policy);
        }
        let Some((vm, ctx)) = self.context_for(sid, i) else {
            return self.fail_stream(sid, i, policy);
        };
        if self.vms[vm].vm.ensure_created(ctx).is_err() {
            self.after_stream_call(vm);
            return self.fail_stream(sid, i, policy);
        }
        let w = match (dir, phase) {
            (Dir::Req, Phase::Headers) => window::REQ_HEADERS,
            (Dir::Req, Phase::Body) => window::REQ_BODY,
            (Dir::Req, Phase::Trailers) => window::REQ_TRAILERS,
            (Dir::Resp, Phase::Headers) => window::RESP_HEADERS,
            (Dir::Resp, Phase::Body) => window::RESP_BODY,
            (Dir::Resp, Phase::Trailers) => window::RESP_TRAILERS,
        };
        let (nheaders, body_len, ntrailers) = {
            let st = self.streams[&sid].data.clone();
            let mut d = st.borrow_mut();
            d.slots[i].open |= w;
            let nh = match dir {
                Dir::Req => d.req_headers.len(),
                Dir::Resp => d.resp_headers.as_ref().map_or(0, |h| h.len()),
            };
            let bl = match dir {
                Dir::Req => d.slots[i].req_buf.len(),
                Dir::Resp => d.slots[i].resp_buf.len(),
            };
            let nt = match dir {
                Dir::Req => d.req_trailers.as_ref().map_or(0, |t| t.len()),
                Dir::Resp => d.resp_trailers.as_ref().map_or(0, |t| t.len()),
            };
            (nh, bl, nt)
        };
        let v = &mut self.vms[vm].vm;
        let r = match (dir, phase) {
            (Dir::Req, Phase::Headers) => v.on_request_headers(ctx, nheaders, eos),
            (Dir::Req, Phase::Body) => v.on_request_body(ctx, body_len, eos),
            (Dir::Req, Phase::Trailers) => v.on_request_trailers(ctx, ntrailers),
            (Dir::Resp, Phase::Headers) => v.on_response_headers(ctx, nheaders, eos),
            (Dir::Resp, Phase::Body) => v.on_response_body(ctx, body_len, eos),
            (Dir::Resp, Phase::Trailers) => v.on_response_trailers(ctx, ntrailers),
        };
        let out = self.vms[vm].vm.take_outputs();
        let stop = out.stop_iteration;
        let actions = self.absorb(vm, out);
        let outcome = match r {
            Err(_) => {
                self.vm_failed(vm);
                // Actions queued before the trap are not applied.
                return self.fail_stream(sid, i, policy);
            }
            Ok(code) if code == 0 && !stop => Outcome::Continue,
            Ok(_) => Outcome::Stop,
        };
        let had_actions = !actions.is_empty();
        if outcome == Outcome::Stop || had_actions {
            // Apply "after VM call" actions once the callback's own result
            // is recorded: mark the stop first so a continue can undo it.
            let k = match dir {
                Dir::Req => i,
                Dir::Resp => self.plugins.len() - 1 - i,
            };
            if outcome == Outcome::Stop {
                if let Some(d) = self.dirs(sid, dir) {
                    match phase {
                        Phase::Headers => d[k].stop_all = true,
                        Phase::Body => d[k].buffering = true,
                        Phase::Trailers => d[k].stopped_trailers = true,
                    }
                }
            }
            self.apply(vm, actions);
            if !self.alive(sid, dir) {
                return Outcome::Gone;
            }
            if outcome == Outcome::Stop {
                // Still stopped unless an action resumed it.
                let still = self.dirs(sid, dir).map(|d| match phase {
                    Phase::Headers => d[k].stop_all,
                    Phase::Body => d[k].buffering,
                    Phase::Trailers => d[k].stopped_trailers,
                });
                return if still == Some(true) {
                    Outcome::Stop
                } else {
                    Outcome::Gone
                };
            }
        }
        self.poll_queues();
        if !self.alive(sid, dir) {
            return Outcome::Gone;
        }
        outcome
    }

    /// Envoy's `failStream`: 503 (fail closed/reload) or pass (fail open).
    fn fail_stream(&mut self, sid: u64, i: usize, policy: FailurePolicy) -> Outcome {
        if policy == FailurePolicy::FailOpen {
            return Outcome::Continue;
        }
        if let Some(s) = self.streams.get_mut(&sid) {
            s.failed[i] = true;
            if s.local_reply_by.is_some() {
                // Already answering (e.g. with the failure reply of another
                // plugin on the same VM): let that reply through.
                return Outcome::Continue;
            }
        }
        self.local_reply(
            sid,
            i,
            LocalReply {
                status: 503,
                body: Vec::new(),
                headers: Vec::new(),
                grpc_status: Some(14),
                details: "wasm_fail_stream".into(),
            },
        );
        Outcome::Gone
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

/// The router: first matching route, then its cluster.
fn pick_route(config: &ChainConfig, rng: &mut u64, headers: &HeaderMap) -> RouteResult {
    if config.routes.is_empty() {
        return Ok((String::new(), "upstream".into()));
    }
    let path = headers.get_str(":path").unwrap_or_default();
    let url_path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    let route = config
        .routes
        .iter()
        .find(|r| {
            r.prefix
                .as_ref()
                .is_none_or(|p| url_path.starts_with(p.as_str()))
                && r.path.as_ref().is_none_or(|p| url_path == p)
                && r.headers
                    .iter()
                    .all(|(n, v)| match (headers.get_str(n.as_str()), v) {
                        (Some(_), None) => true,
                        (Some(a), Some(b)) => a == *b,
                        (None, _) => false,
                    })
        })
        .cloned()
        .ok_or((404, "route_not_found", response_flags::NO_ROUTE_FOUND))?;
    let cluster = match &route.action {
        RouteAction::Cluster(c) => c.clone(),
        RouteAction::ClusterHeader(h) => headers.get_str(h.as_str()).ok_or((
            503,
            "cluster_not_found",
            response_flags::NO_CLUSTER_FOUND,
        ))?,
        RouteAction::Weighted(ws) => {
            let total: u64 = ws.iter().map(|(_, w)| u64::from(*w)).sum();
            *rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut pick = if total == 0 { 0 } else { (*rng >> 33) % total };
            let mut chosen = ws.first().map(|(c, _)| c.clone()).unwrap_or_default();
            for (c, w) in ws.iter().map(|(c, w)| (c, *w)) {
                if pick < u64::from(w) {
                    chosen = c.clone();
                    break;
                }
                pick -= u64::from(w);
            }
            chosen
        }
    };
    if !config.upstream_clusters.is_empty() && !config.upstream_clusters.contains(&cluster) {
        return Err((503, "cluster_not_found", response_flags::NO_CLUSTER_FOUND));
    }
    Ok((route.name.clone(), cluster))
}

/// Envoy's connection-manager checks before any filter runs: `:method` and
/// `:path` must be present (`400`), header names must be valid tokens and
/// values must not contain NUL, CR or LF (the codec refuses them).
fn invalid_request(h: &HeaderMap) -> Option<(u32, &'static str)> {
    if h.get(b":method").is_none_or(|m| m.is_empty())
        || h.get(b":path").is_none_or(|p| p.is_empty())
    {
        return Some((400, "missing_required_header"));
    }
    for (k, v) in h.entries() {
        let name = k.strip_prefix(b":").unwrap_or(k);
        let token = !name.is_empty()
            && name
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c));
        if !token {
            return Some((400, "http1.invalid_characters"));
        }
        if v.iter().any(|c| matches!(c, 0 | b'\r' | b'\n')) {
            return Some((400, "http1.invalid_characters"));
        }
    }
    None
}

/// Headers of a local reply as Envoy builds them; for a gRPC request the
/// reply becomes a trailers-only gRPC response (HTTP 200 with `grpc-status`
/// and `grpc-message`).
pub fn local_reply_headers(reply: &LocalReply, grpc: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    if grpc {
        h.add(b":status", b"200");
        h.add(b"content-type", b"application/grpc");
        let status = reply
            .grpc_status
            .unwrap_or_else(|| http_to_grpc_status(reply.status));
        h.add(b"grpc-status", status.to_string().as_bytes());
        if !reply.body.is_empty() {
            h.add(b"grpc-message", grpc_percent_encode(&reply.body).as_bytes());
        }
    } else {
        h.add(b":status", reply.status.to_string().as_bytes());
        if !reply.body.is_empty() {
            h.add(b"content-length", reply.body.len().to_string().as_bytes());
            if !reply
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
            {
                h.add(b"content-type", b"text/plain");
            }
        }
    }
    for (k, v) in &reply.headers {
        h.add(k, v);
    }
    h
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub fn http_to_grpc_status(http: u32) -> u32 {
    match http {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

fn grpc_percent_encode(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'%' {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

fn request_id(sid: u64) -> String {
    let a = crate::host_hash(sid);
    let b = crate::host_hash(sid ^ 0x5555_5555_5555_5555);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (b >> 52) as u16 & 0xfff,
        b & 0xffff_ffff_ffff
    )
}
