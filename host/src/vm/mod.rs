//! One WebAssembly VM: a wasmtime store and instance of a Proxy-Wasm module,
//! the contexts it hosts (root contexts of its plugins, stream contexts), and
//! the typed entry points the host calls.
//!
//! Like proxy-wasm-cpp-host, several plugins may share one VM (same `vm_id`,
//! code and VM configuration); each plugin is a root context in it. Every
//! callback runs with a *current context*; `proxy_set_effective_context` can
//! redirect host calls to another context of the same VM for the rest of
//! that callback. Host calls never call back into the module except to
//! allocate memory; what they ask the host to do to streams (continue, local
//! reply, close) is queued as [`Action`]s and applied by the caller after the
//! callback returns, as Envoy's "after VM call actions" are.

use crate::host::HostShared;
use crate::runtime::Runtime;
use crate::stream_data::{LocalReply, StreamRef};
use crate::types::{LogLevel, StreamType};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use wasmtime::{Instance, Memory, Store, StoreLimits, StoreLimitsBuilder, TypedFunc};

mod callbacks;

/// What identifies a plugin to the host and the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// `plugin_name`.
    pub name: String,
    /// `plugin_root_id`: selects the root context inside the module.
    pub root_id: String,
    /// Plugin configuration bytes (`PLUGIN_CONFIGURATION`).
    pub configuration: Vec<u8>,
}

/// A stream callback (see [`Vm::exports`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCallback {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

/// A context hosted by a VM.
#[derive(Debug, Clone)]
pub enum Ctx {
    /// A plugin's root context.
    Root {
        plugin: Rc<PluginInfo>,
        /// Whether `proxy_on_context_create` ran for it.
        created: bool,
    },
    /// A per-stream context.
    Stream {
        root: u32,
        stream: StreamRef,
        /// Position of the plugin in the chain.
        position: usize,
    },
}

/// Something a host call asked the host to do to a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `proxy_continue_stream(HTTP_REQUEST | HTTP_RESPONSE)`.
    Continue { ctx: u32, stream: StreamType },
    /// `proxy_close_stream(HTTP_REQUEST | HTTP_RESPONSE)`: reset the stream.
    Close { ctx: u32, stream: StreamType },
    /// `proxy_send_local_response`.
    LocalReply { ctx: u32, reply: LocalReply },
}

/// A callout the module started (`proxy_http_call`, `proxy_grpc_call`,
/// `proxy_grpc_stream`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingCall {
    pub token: u32,
    /// Root context that receives the answer.
    pub root_ctx: u32,
    pub cluster: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
    pub timeout_ms: u32,
    /// `Some((service, method))` for gRPC.
    pub grpc: Option<(String, String)>,
    /// gRPC bidirectional stream (`proxy_grpc_stream`).
    pub grpc_stream: bool,
}

/// What `proxy_on_http_call_response` / gRPC callbacks may read.
#[derive(Debug, Clone, Default)]
pub struct CalloutView {
    pub headers: Option<crate::headers::HeaderMap>,
    pub body: Option<Vec<u8>>,
    pub trailers: Option<crate::headers::HeaderMap>,
}

/// The store data of a VM: everything host calls may touch.
pub struct VmState {
    pub(crate) host: Arc<HostShared>,
    pub(crate) instance_id: u64,
    pub(crate) vm_id: String,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) memory: Option<Memory>,
    pub(crate) malloc: Option<TypedFunc<i32, i32>>,
    pub(crate) limits: StoreLimits,
    pub(crate) current: u32,
    pub(crate) effective: u32,
    pub(crate) contexts: crate::FastMap<u32, Ctx>,
    pub(crate) configuring: Option<u32>,
    pub(crate) callout: Option<CalloutView>,
    pub(crate) foreign_args: Option<Vec<u8>>,
    pub(crate) status: (u32, Vec<u8>),
    pub(crate) actions: Vec<Action>,
    pub(crate) calls: Vec<OutgoingCall>,
    pub(crate) ticks: Vec<(u32, u32)>,
    pub(crate) stop_iteration: bool,
    pub(crate) metric_ids: crate::FastMap<u32, usize>,
    pub(crate) next_metric: [u32; 3],
    pub(crate) next_http_token: u32,
    pub(crate) next_grpc_call: u32,
    pub(crate) next_grpc_stream: u32,
    pub(crate) grpc_calls: HashSet<u32>,
    /// Open gRPC streams and the cluster each was opened to.
    pub(crate) grpc_streams: crate::FastMap<u32, String>,
    pub(crate) pending_done: HashSet<u32>,
    pub(crate) done_called: Vec<u32>,
    pub(crate) rng: u64,
    /// A trap that happened inside a host call (in the module's allocator):
    /// the callback is treated as having trapped.
    pub(crate) fatal: Option<String>,
}

impl VmState {
    /// The context host calls act on: the effective context if one was set
    /// and still exists, else the current one.
    pub(crate) fn active(&self) -> u32 {
        if self.effective != 0 && self.contexts.contains_key(&self.effective) {
            self.effective
        } else {
            self.current
        }
    }

    /// Root context of `ctx` (itself for a root).
    pub(crate) fn root_of(&self, ctx: u32) -> u32 {
        match self.contexts.get(&ctx) {
            Some(Ctx::Stream { root, .. }) => *root,
            _ => ctx,
        }
    }

    /// The plugin `ctx` belongs to.
    pub(crate) fn plugin_of(&self, ctx: u32) -> Option<Rc<PluginInfo>> {
        match self.contexts.get(&self.root_of(ctx))? {
            Ctx::Root { plugin, .. } => Some(plugin.clone()),
            _ => None,
        }
    }

    /// The stream and chain position of a stream context.
    pub(crate) fn stream_of(&self, ctx: u32) -> Option<(StreamRef, usize)> {
        match self.contexts.get(&ctx)? {
            Ctx::Stream {
                stream, position, ..
            } => Some((stream.clone(), *position)),
            _ => None,
        }
    }

    /// Name of the plugin whose context is active (for log lines).
    pub(crate) fn plugin_name(&self) -> String {
        self.plugin_of(self.active())
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }

    /// Logs on behalf of the active context.
    pub(crate) fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, &self.plugin_name(), message);
    }

    /// 64 pseudo-random bits (WASI `random_get`).
    pub(crate) fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type I5 = (i32, i32, i32, i32, i32);

/// Typed exports of the module (all optional, as the spec says). Called by
/// reference: cloning a `TypedFunc` costs a type-registry reference count
/// round trip per callback.
#[derive(Default)]
struct Exports {
    initialize: Option<TypedFunc<(), ()>>,
    main: Option<TypedFunc<(i32, i32), i32>>,
    start: Option<TypedFunc<(), ()>>,
    on_context_create: Option<TypedFunc<(i32, i32), ()>>,
    on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    on_configure: Option<TypedFunc<(i32, i32), i32>>,
    on_tick: Option<TypedFunc<i32, ()>>,
    on_queue_ready: Option<TypedFunc<(i32, i32), ()>>,
    on_request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_http_call_response: Option<TypedFunc<I5, ()>>,
    on_grpc_receive_initial_metadata: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_grpc_receive: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_grpc_receive_trailing_metadata: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_grpc_close: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_foreign_function: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_done: Option<TypedFunc<i32, i32>>,
    on_log: Option<TypedFunc<i32, ()>>,
    on_delete: Option<TypedFunc<i32, ()>>,
}

/// What a callback left for the host to do.
#[derive(Debug, Default)]
pub struct Outputs {
    pub actions: Vec<Action>,
    pub calls: Vec<OutgoingCall>,
    /// (root context, tick period ms) changes.
    pub ticks: Vec<(u32, u32)>,
    /// `proxy_send_local_response` was called: the callback's result is
    /// treated as "stop" whatever it returned (Envoy's `stopNextIteration`).
    pub stop_iteration: bool,
    /// Root contexts whose `proxy_done` arrived.
    pub done: Vec<u32>,
}

/// A VM failure: the module trapped (or was interrupted) in `function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    pub function: &'static str,
    pub message: String,
}

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Function: {} failed: {}", self.function, self.message)
    }
}

/// A Proxy-Wasm VM.
pub struct Vm {
    store: Store<VmState>,
    exports: Exports,
    next_ctx: u32,
    /// Set once the module trapped; a failed VM is never called again.
    pub failed: Option<Trap>,
    /// Callback time budget, in epoch ticks of [`crate::runtime::EPOCH_TICK`].
    budget_ticks: u64,
}

/// Settings of a VM.
#[derive(Debug, Clone, Default)]
pub struct VmSettings {
    pub vm_id: String,
    pub vm_config: Vec<u8>,
    pub env: Vec<(String, String)>,
}

fn typed<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
    store: &mut Store<VmState>,
    instance: &Instance,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>, String> {
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(f) => f
            .typed::<P, R>(&*store)
            .map(Some)
            .map_err(|e| format!("export `{name}` has the wrong signature: {e}")),
    }
}

impl Vm {
    /// Instantiates `module` and runs its start functions (`_initialize` then
    /// `main`, or `_start`), as proxy-wasm-cpp-host does.
    pub fn new(
        runtime: &Runtime,
        module: &crate::runtime::LoadedModule,
        host: Arc<HostShared>,
        settings: &VmSettings,
    ) -> Result<Vm, String> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(crate::runtime::MAX_MEMORY_BYTES)
            .instances(4)
            .tables(16)
            .memories(4)
            .build();
        let instance_id = host.next_vm_instance();
        // Reproducible: the host's seed, the VM id and the instance number.
        let seed = settings
            .vm_id
            .bytes()
            .fold(host.seed() ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
            ^ instance_id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let state = VmState {
            instance_id,
            host,
            vm_id: settings.vm_id.clone(),
            vm_config: settings.vm_config.clone(),
            env: settings.env.clone(),
            memory: None,
            malloc: None,
            limits,
            current: 0,
            effective: 0,
            contexts: Default::default(),
            configuring: None,
            callout: None,
            foreign_args: None,
            status: (0, Vec::new()),
            actions: Vec::new(),
            calls: Vec::new(),
            ticks: Vec::new(),
            stop_iteration: false,
            metric_ids: Default::default(),
            next_metric: [0, 1, 2],
            next_http_token: 1,
            next_grpc_call: 1,
            next_grpc_stream: 2,
            grpc_calls: HashSet::new(),
            grpc_streams: Default::default(),
            pending_done: HashSet::new(),
            done_called: Vec::new(),
            rng: seed,
            fatal: None,
        };
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(runtime.budget_ticks());
        let instance = module
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("Failed to instantiate Wasm module: {e:#}"))?;
        let memory = instance.get_memory(&mut store, "memory");
        if memory.is_none() {
            return Err("Wasm module does not export its memory".into());
        }
        store.data_mut().memory = memory;
        let malloc = match typed::<i32, i32>(&mut store, &instance, "malloc")? {
            Some(m) => Some(m),
            None => typed::<i32, i32>(&mut store, &instance, "proxy_on_memory_allocate")?,
        };
        if malloc.is_none() {
            return Err("Wasm module is missing malloc function.".into());
        }
        store.data_mut().malloc = malloc;
        let abi_ok = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"]
            .iter()
            .any(|n| instance.get_func(&mut store, n).is_some());
        if !abi_ok {
            return Err("Missing or unknown Proxy-Wasm ABI version (expected proxy_abi_version_0_2_1 or 0_2_0)".into());
        }
        let mut x = Exports::default();
        macro_rules! get {
            ($field:ident, $name:literal) => {
                x.$field = typed(&mut store, &instance, $name)?;
            };
        }
        get!(initialize, "_initialize");
        get!(main, "main");
        get!(start, "_start");
        get!(on_context_create, "proxy_on_context_create");
        get!(on_vm_start, "proxy_on_vm_start");
        get!(on_configure, "proxy_on_configure");
        get!(on_tick, "proxy_on_tick");
        get!(on_queue_ready, "proxy_on_queue_ready");
        get!(on_request_headers, "proxy_on_request_headers");
        get!(on_request_body, "proxy_on_request_body");
        get!(on_request_trailers, "proxy_on_request_trailers");
        get!(on_response_headers, "proxy_on_response_headers");
        get!(on_response_body, "proxy_on_response_body");
        get!(on_response_trailers, "proxy_on_response_trailers");
        get!(on_http_call_response, "proxy_on_http_call_response");
        get!(
            on_grpc_receive_initial_metadata,
            "proxy_on_grpc_receive_initial_metadata"
        );
        get!(on_grpc_receive, "proxy_on_grpc_receive");
        get!(
            on_grpc_receive_trailing_metadata,
            "proxy_on_grpc_receive_trailing_metadata"
        );
        get!(on_grpc_close, "proxy_on_grpc_close");
        get!(on_foreign_function, "proxy_on_foreign_function");
        get!(on_done, "proxy_on_done");
        get!(on_log, "proxy_on_log");
        get!(on_delete, "proxy_on_delete");
        let mut vm = Vm {
            store,
            exports: x,
            next_ctx: 1,
            failed: None,
            budget_ticks: runtime.budget_ticks(),
        };
        if let Some(init) = &vm.exports.initialize {
            Self::invoke(
                &mut vm.store,
                &mut vm.failed,
                vm.budget_ticks,
                "_initialize",
                0,
                |s| init.call(s, ()),
            )
            .map_err(|t| t.to_string())?;
            if let Some(main) = &vm.exports.main {
                Self::invoke(
                    &mut vm.store,
                    &mut vm.failed,
                    vm.budget_ticks,
                    "main",
                    0,
                    |s| main.call(s, (0, 0)),
                )
                .map_err(|t| t.to_string())?;
            }
        } else if let Some(start) = &vm.exports.start {
            Self::invoke(
                &mut vm.store,
                &mut vm.failed,
                vm.budget_ticks,
                "_start",
                0,
                |s| start.call(s, ()),
            )
            .map_err(|t| t.to_string())?;
        }
        vm.take_outputs();
        Ok(vm)
    }

    /// Id of this VM instance (queue notifications are addressed to it).
    pub fn instance_id(&self) -> u64 {
        self.store.data().instance_id
    }

    /// Runs one callback with `ctx` as current context; a trap marks the VM
    /// failed and is logged like Envoy logs it.
    ///
    /// An associated function over the VM's fields (not `&mut self`) so that
    /// callers pass an export by reference while the store is borrowed.
    fn invoke<R>(
        store: &mut Store<VmState>,
        failed: &mut Option<Trap>,
        budget_ticks: u64,
        function: &'static str,
        ctx: u32,
        f: impl FnOnce(&mut Store<VmState>) -> wasmtime::Result<R>,
    ) -> Result<R, Trap> {
        if let Some(t) = failed {
            return Err(t.clone());
        }
        {
            let s = store.data_mut();
            s.current = ctx;
            s.effective = 0;
        }
        store.set_epoch_deadline(budget_ticks);
        let r = f(store);
        let fatal = {
            let s = store.data_mut();
            s.current = 0;
            s.effective = 0;
            s.fatal.take()
        };
        let r = match (r, fatal) {
            (Ok(_), Some(msg)) => Err(msg),
            (Ok(v), None) => Ok(v),
            (Err(e), _) => Err(trap_message(&e)),
        };
        r.map_err(|message| {
            let trap = Trap { function, message };
            let s = store.data();
            let plugin = s.plugin_of(ctx).map(|p| p.name.clone()).unwrap_or_default();
            s.host.log(LogLevel::Critical, &plugin, &trap.to_string());
            *failed = Some(trap.clone());
            trap
        })
    }

    /// Whether the last callbacks left anything for [`Vm::take_outputs`]
    /// (cheap: the chain takes outputs only when there are some).
    pub fn has_outputs(&self) -> bool {
        let s = self.store.data();
        s.stop_iteration
            || !s.actions.is_empty()
            || !s.calls.is_empty()
            || !s.ticks.is_empty()
            || !s.done_called.is_empty()
    }

    /// Whether the module exports the stream callback `cb` (a missing export
    /// means "continue", and the host need not do anything for it).
    pub fn exports(&self, cb: StreamCallback) -> bool {
        let x = &self.exports;
        match cb {
            StreamCallback::RequestHeaders => x.on_request_headers.is_some(),
            StreamCallback::RequestBody => x.on_request_body.is_some(),
            StreamCallback::RequestTrailers => x.on_request_trailers.is_some(),
            StreamCallback::ResponseHeaders => x.on_response_headers.is_some(),
            StreamCallback::ResponseBody => x.on_response_body.is_some(),
            StreamCallback::ResponseTrailers => x.on_response_trailers.is_some(),
        }
    }

    /// Takes what the last callbacks asked the host to do.
    pub fn take_outputs(&mut self) -> Outputs {
        let s = self.store.data_mut();
        Outputs {
            actions: std::mem::take(&mut s.actions),
            calls: std::mem::take(&mut s.calls),
            ticks: std::mem::take(&mut s.ticks),
            stop_iteration: std::mem::take(&mut s.stop_iteration),
            done: std::mem::take(&mut s.done_called),
        }
    }

    fn alloc_ctx(&mut self) -> u32 {
        let id = self.next_ctx;
        self.next_ctx += 1;
        id
    }

    /// Starts a plugin in this VM: creates its root context, then
    /// `proxy_on_vm_start` and `proxy_on_configure`. Returns the root context
    /// id, or why the plugin could not start.
    pub fn start_plugin(&mut self, plugin: Rc<PluginInfo>) -> Result<u32, String> {
        let ctx = self.alloc_ctx();
        let config_len = plugin.configuration.len() as i32;
        self.store.data_mut().contexts.insert(
            ctx,
            Ctx::Root {
                plugin: plugin.clone(),
                created: false,
            },
        );
        if let Some(f) = &self.exports.on_context_create {
            Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_context_create",
                ctx,
                |s| f.call(s, (ctx as i32, 0)),
            )
            .map_err(|t| t.to_string())?;
        }
        if let Some(Ctx::Root { created, .. }) = self.store.data_mut().contexts.get_mut(&ctx) {
            *created = true;
        }
        if let Some(f) = &self.exports.on_vm_start {
            let n = self.store.data().vm_config.len() as i32;
            let ok = Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_vm_start",
                ctx,
                |s| f.call(s, (ctx as i32, n)),
            )
            .map_err(|t| t.to_string())?;
            if ok == 0 {
                return Err(format!("Failed to start thread-local Wasm: proxy_on_vm_start returned false for plugin `{}`", plugin.name));
            }
        }
        if let Some(f) = &self.exports.on_configure {
            self.store.data_mut().configuring = Some(ctx);
            let r = Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_configure",
                ctx,
                |s| f.call(s, (ctx as i32, config_len)),
            );
            self.store.data_mut().configuring = None;
            let ok = r.map_err(|t| t.to_string())?;
            if ok == 0 {
                return Err(format!(
                    "Failed to configure thread-local Wasm plugin: proxy_on_configure returned false for plugin `{}`",
                    plugin.name
                ));
            }
        }
        Ok(ctx)
    }

    /// Registers a stream context for `stream` at chain `position` under
    /// `root`; the chain calls [`Vm::on_context_create`] on first use (it
    /// keeps the "created" flag itself, so a callback needs no lookup here).
    pub fn new_stream_context(&mut self, root: u32, stream: StreamRef, position: usize) -> u32 {
        let ctx = self.alloc_ctx();
        self.store.data_mut().contexts.insert(
            ctx,
            Ctx::Stream {
                root,
                stream,
                position,
            },
        );
        ctx
    }

    /// `proxy_on_context_create(ctx, root)` for a stream context.
    pub fn on_context_create(&mut self, ctx: u32, root: u32) -> Result<(), Trap> {
        match &self.exports.on_context_create {
            None => Ok(()),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_context_create",
                ctx,
                |s| f.call(s, (ctx as i32, root as i32)),
            ),
        }
    }

    /// The stream id and chain position of a stream context.
    pub fn stream_position(&self, ctx: u32) -> Option<(u64, usize)> {
        self.store
            .data()
            .stream_of(ctx)
            .map(|(s, p)| (s.borrow().id, p))
    }

    /// Forgets a context after `proxy_on_delete`.
    pub fn drop_context(&mut self, ctx: u32) {
        self.store.data_mut().contexts.remove(&ctx);
    }

    /// Calls `proxy_on_done` on a root context (plugin shutdown). Returns
    /// whether it may be deleted now; otherwise the module calls `proxy_done`
    /// later.
    pub fn shutdown_root(&mut self, root: u32) -> Result<bool, Trap> {
        let done = self.on_done(root)?;
        if !done {
            self.store.data_mut().pending_done.insert(root);
        }
        Ok(done)
    }

    /// Linear memory size in bytes.
    pub fn memory_size(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&self.store))
    }

    /// Shared host state.
    pub fn host(&self) -> &Arc<HostShared> {
        &self.store.data().host
    }

    /// The VM id.
    pub fn vm_id(&self) -> &str {
        &self.store.data().vm_id
    }
}

/// A readable one-line description of a wasmtime error, with the wasm
/// backtrace when there is one.
fn trap_message(e: &wasmtime::Error) -> String {
    let mut msg = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            "execution time budget exceeded (interrupted)".to_string()
        }
        Some(t) => format!("Uncaught RuntimeError: {t}"),
        None => format!("{e}"),
    };
    if let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
        let frames: Vec<String> = bt
            .frames()
            .iter()
            .take(20)
            .map(|f| {
                f.func_name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| format!("func[{}]", f.func_index()))
            })
            .collect();
        if !frames.is_empty() {
            msg.push_str(&format!("; backtrace: {}", frames.join(" <- ")));
        }
    }
    msg
}
