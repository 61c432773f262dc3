//! Proxy-Wasm glue: plan the faults of a request, draw, delay from the root
//! context's timer, abort with a local reply, keep the shared active-fault
//! count (wasm32 only).

use std::cell::RefCell;
use std::rc::Rc;

use wasmesh_common::abi::hostcalls;
use wasmesh_common::abi::types::{Action, Decimal, LogLevel, MetricType, Status, StreamType};
use wasmesh_common::abi::{pairs, Http, Root};
use wasmesh_common::host;
use wasmesh_common::http_match::RequestAttributes;
use wasmesh_common::sampling::Rng;

use crate::active::{self, NotCounted, SharedCounter, Write, KEY_PREFIX};
use crate::config::FaultConfig;
use crate::delays::{DelayQueue, Timer};
use crate::policy::{AbortSpec, AbortStatus, FaultPolicy, Source};
use crate::stats;

const FILTER: &str = "fault_injection";
/// Envoy's response code details for an injected abort.
const ABORT_DETAILS: &str = "fault_filter_abort";
/// Envoy's body of an injected abort.
const ABORT_BODY: &[u8] = b"fault filter abort";
const DI: u8 = 1;
const FI: u8 = 2;

wasmesh_common::proxy_filter!(
    FaultRoot,
    [request_headers, request_body, request_trailers, tick, done]
);

/// Defines a metric; `None` if the host refuses.
fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

/// Adds one to a counter, ignoring failures.
fn increment(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

/// Sets a gauge, ignoring failures.
fn record(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = hostcalls::record_metric(id, value);
    }
}

/// The active-fault count in the host's shared data.
struct SharedData<'a>(&'a str);

impl SharedCounter for SharedData<'_> {
    fn read(&mut self) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(self.0) {
            Ok(Some((value, cas))) => Some((value.into_vec(), cas)),
            _ => None,
        }
    }

    fn write(&mut self, value: &[u8], cas: u32) -> Write {
        match hostcalls::set_shared_data(self.0, value, cas) {
            Ok(()) => Write::Ok,
            Err(Status::CasMismatch) => Write::CasMismatch,
            Err(_) => Write::Failed,
        }
    }
}

/// Metric ids of one configuration.
struct Metrics {
    delays: Option<u32>,
    aborts: Option<u32>,
    overflow: Option<u32>,
    active: Option<u32>,
    /// Per fault (index order): delays, aborts (named faults only).
    per_fault: Vec<(Option<u32>, Option<u32>)>,
}

/// One configuration, shared by the streams started under it.
struct Config {
    policy: FaultPolicy,
    metrics: Metrics,
    /// Shared-data key of the active-fault count.
    key: String,
}

/// A stream's fault state, shared by its HTTP context and (while delayed)
/// the root context.
struct StreamFault {
    config: Rc<Config>,
    /// Counted in the active faults.
    active: bool,
    /// Paused, waiting for its deadline.
    delayed: bool,
    /// The abort to draw again after the delay.
    abort: Option<AbortSpec>,
    /// DI / FI flags set so far.
    flags: u8,
}

/// What the root context and every stream of this VM share.
#[derive(Default)]
struct Vm {
    config: RefCell<Option<Rc<Config>>>,
    rng: RefCell<Option<Rng>>,
    delays: RefCell<DelayQueue>,
    /// Delayed streams by context id.
    waiting: RefCell<Vec<(u32, Rc<RefCell<StreamFault>>)>>,
}

impl Vm {
    fn chance(&self, ppm: u32) -> bool {
        let mut rng = self.rng.borrow_mut();
        rng.get_or_insert_with(Rng::from_entropy).chance_ppm(ppm)
    }

    fn apply_timer(t: Timer) {
        if let Timer::Set(ms) = t {
            let _ = hostcalls::set_tick_period_ms(ms);
        }
    }
}

struct FaultRoot {
    vm: Rc<Vm>,
}

fn counter_metric(name: &str) -> Option<u32> {
    define_metric(MetricType::Counter, name)
}

impl Root for FaultRoot {
    type Http = FaultStream;

    fn new(_context_id: u32) -> Self {
        FaultRoot {
            vm: Rc::new(Vm::default()),
        }
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::plugin_configuration().map_or_else(|_| Vec::new(), |b| b.into_vec());
        let policy = match FaultConfig::parse(&bytes).and_then(|c| FaultPolicy::compile(&c)) {
            Ok(p) => p,
            Err(e) => {
                host::log_config_error(FILTER, &e);
                return false;
            }
        };
        let per_fault = (0..policy.len())
            .map(|i| match policy.fault_name(i) {
                Some(name) => (
                    counter_metric(&stats::delays_injected(name)),
                    counter_metric(&stats::aborts_injected(name)),
                ),
                None => (None, None),
            })
            .collect();
        let metrics = Metrics {
            delays: counter_metric(stats::DELAYS_INJECTED),
            aborts: counter_metric(stats::ABORTS_INJECTED),
            overflow: counter_metric(stats::FAULTS_OVERFLOW),
            active: define_metric(MetricType::Gauge, stats::ACTIVE_FAULTS),
            per_fault,
        };
        let plugin = host::property_string(&["plugin_name"]).unwrap_or_default();
        let mut key = String::from(KEY_PREFIX);
        if !plugin.is_empty() {
            key.push('.');
            key.push_str(&plugin);
        }
        active::initialise(&mut SharedData(&key));
        host::log_parts(
            LogLevel::Info,
            &[
                FILTER,
                ": configured ",
                Decimal::new(policy.len() as u64).as_str(),
                " faults, active-fault count in shared data `",
                &key,
                "`",
            ],
        );
        *self.vm.config.borrow_mut() = Some(Rc::new(Config {
            policy,
            metrics,
            key,
        }));
        true
    }

    fn on_tick(&mut self) {
        let vm = &self.vm;
        let now = host::now_nanos();
        let (due, timer) = vm.delays.borrow_mut().take_due(now);
        Vm::apply_timer(timer);
        for ctx in due {
            let state = {
                let mut waiting = vm.waiting.borrow_mut();
                match waiting.iter().position(|(c, _)| *c == ctx) {
                    Some(i) => waiting.swap_remove(i).1,
                    None => continue,
                }
            };
            if hostcalls::set_effective_context(ctx).is_err() {
                // The stream is gone; its HTTP context cleans up.
                continue;
            }
            after_delay(vm, &state);
        }
    }

    fn create_http(&mut self, context_id: u32) -> Option<FaultStream> {
        Some(FaultStream {
            id: context_id,
            vm: self.vm.clone(),
            state: None,
        })
    }
}

/// Counts the stream as an active fault unless the limit is reached (Envoy's
/// `tryIncActiveFaults`: one count per stream however many faults).
fn try_activate(state: &mut StreamFault) -> bool {
    if state.active {
        return true;
    }
    let c = &state.config;
    match active::try_increment(&mut SharedData(&c.key), c.policy.max_active_faults()) {
        Ok(n) => {
            record(c.metrics.active, n);
            state.active = true;
            true
        }
        Err(NotCounted::Overflow) => {
            increment(c.metrics.overflow);
            false
        }
        Err(NotCounted::Unavailable) => {
            host::log(
                LogLevel::Warn,
                FILTER,
                "active-fault count unavailable; fault not injected",
            );
            false
        }
    }
}

fn deactivate(state: &mut StreamFault) {
    if state.active {
        state.active = false;
        let c = &state.config;
        if let Some(n) = active::decrement(&mut SharedData(&c.key)) {
            record(c.metrics.active, n);
        }
    }
}

fn set_flags(state: &mut StreamFault, flag: u8) {
    state.flags |= flag;
    let text: &[u8] = match state.flags {
        DI => b"DI",
        FI => b"FI",
        _ => b"DI,FI",
    };
    let _ = hostcalls::set_property(stats::FAULT_PROPERTY.as_bytes(), text);
}

/// Sends the abort reply for the current (effective) stream. No borrow of
/// the state is held during the host call: a host may finish the stream
/// (and call `proxy_on_done`) before it returns.
fn abort(state: &Rc<RefCell<StreamFault>>, spec: AbortSpec) {
    {
        let mut st = state.borrow_mut();
        let m = &st.config.metrics;
        increment(m.aborts);
        if let Source::Fault(i) = spec.source {
            increment(m.per_fault.get(i).and_then(|p| p.1));
        }
        set_flags(&mut st, FI);
    }
    if host::log_enabled(LogLevel::Debug) {
        let (kind, code) = match spec.status {
            AbortStatus::Http(c) => ("Http(", c),
            AbortStatus::Grpc(c) => ("Grpc(", c),
        };
        host::log_parts(
            LogLevel::Debug,
            &[
                FILTER,
                ": fault: aborting request with ",
                kind,
                Decimal::new(u64::from(code)).as_str(),
                ")",
            ],
        );
    }
    let grpc = u32::try_from(spec.status.grpc_status()).ok();
    let _ = hostcalls::send_local_response(
        spec.status.http_status(),
        ABORT_DETAILS,
        ABORT_BODY,
        &pairs::EMPTY,
        grpc,
    );
}

/// The delay is over: draw the abort again (Envoy's `postDelayInjection`),
/// else stop counting the fault and resume the request.
fn after_delay(vm: &Vm, state: &Rc<RefCell<StreamFault>>) {
    let aborting = {
        let mut st = state.borrow_mut();
        st.delayed = false;
        let spec = st.abort;
        match spec {
            Some(spec) if vm.chance(spec.ppm) && try_activate(&mut st) => Some(spec),
            _ => {
                deactivate(&mut st);
                None
            }
        }
    };
    match aborting {
        Some(spec) => abort(state, spec),
        None => {
            let _ = hostcalls::continue_stream(StreamType::HttpRequest);
        }
    }
}

struct FaultStream {
    id: u32,
    vm: Rc<Vm>,
    state: Option<Rc<RefCell<StreamFault>>>,
}

impl FaultStream {
    fn is_delayed(&self) -> bool {
        self.state.as_ref().is_some_and(|s| s.borrow().delayed)
    }

    /// The stream is over (done, reset or deleted): forget its timer entry
    /// and its active fault. Idempotent.
    fn cleanup(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let Ok(mut st) = state.try_borrow_mut() else {
            // Called back while this stream's state is being changed (cannot
            // happen with Envoy's deferred stream deletion); keep it.
            self.state = Some(state);
            return;
        };
        if st.delayed {
            st.delayed = false;
            self.vm.delays.borrow_mut().remove(self.id);
            self.vm.waiting.borrow_mut().retain(|(c, _)| *c != self.id);
        }
        deactivate(&mut st);
    }
}

impl Drop for FaultStream {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl Http for FaultStream {
    fn on_done(&mut self) -> bool {
        self.cleanup();
        true
    }

    fn on_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.vm.config.borrow().clone() else {
            return Action::Continue;
        };
        let policy = &config.policy;
        if policy.is_inert() {
            return Action::Continue;
        }
        let headers = host::request_headers();
        let (identity, source_ip) =
            host::match_context(policy.needs_identity(), policy.needs_source_ip());
        let identity = identity
            .as_deref()
            .and_then(wasmesh_common::identity::IdentityView::parse);
        let values = policy.header_names().resolve(&headers);
        let attrs = RequestAttributes {
            headers: &headers,
            identity,
            source_ip,
            header_values: Some(&values),
        };
        let Some(plan) = policy.plan(&attrs) else {
            return Action::Continue;
        };
        let state = Rc::new(RefCell::new(StreamFault {
            config: config.clone(),
            active: false,
            delayed: false,
            abort: plan.abort,
            flags: 0,
        }));
        self.state = Some(state.clone());
        if let Some(d) = plan.delay {
            let delayed = d.ms > 0 && self.vm.chance(d.ppm) && {
                let mut st = state.borrow_mut();
                if try_activate(&mut st) {
                    let m = &config.metrics;
                    increment(m.delays);
                    if let Source::Fault(i) = d.source {
                        increment(m.per_fault.get(i).and_then(|p| p.0));
                    }
                    set_flags(&mut st, DI);
                    st.delayed = true;
                    true
                } else {
                    false
                }
            };
            if delayed {
                let now = host::now_nanos();
                let timer =
                    self.vm
                        .delays
                        .borrow_mut()
                        .insert(self.id, now + d.ms * 1_000_000, now);
                self.vm.waiting.borrow_mut().push((self.id, state.clone()));
                Vm::apply_timer(timer);
                host::log_parts(
                    LogLevel::Debug,
                    &[
                        FILTER,
                        ": fault: delaying request ",
                        Decimal::new(d.ms).as_str(),
                        "ms",
                    ],
                );
                return Action::Pause;
            }
        }
        if let Some(a) = plan.abort {
            if self.vm.chance(a.ppm) && try_activate(&mut state.borrow_mut()) {
                abort(&state, a);
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        // Hold the body while the request is delayed (Envoy stops iteration
        // with watermarks); it follows when the request resumes.
        if self.is_delayed() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.is_delayed() {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}
