//! The probe's proxy-wasm glue: a root context per plugin and an HTTP context
//! per stream that run the commands of the `x-probe*` request headers.
//!
//! Test code, and one concept: the dispatch of every probe command to the
//! SDK call it exercises (one `match` arm per host function of the ABI),
//! kept in one file so that the whole command table reads at once.

use crate::cmd::{self, Command};
use crate::raw;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|id| -> Box<dyn RootContext> { Box::new(ProbeRoot::new(id)) });
}}

thread_local! {
    /// Streams this VM has seen (`seq`).
    static SEQ: Cell<u64> = const { Cell::new(0) };
    /// Metric ids by name (`mdef`).
    static METRICS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// CAS tokens remembered with `shremember`.
    static CAS: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// Last gRPC call token and stream token.
    static GRPC_CALL: Cell<u32> = const { Cell::new(0) };
    static GRPC_STREAM: Cell<u32> = const { Cell::new(0) };
}

/// Request headers carrying commands, one per callback.
const HEADERS: [&str; 8] = [
    "x-probe",
    "x-probe-body",
    "x-probe-trailers",
    "x-probe-resp",
    "x-probe-resp-body",
    "x-probe-resp-trailers",
    "x-probe-log",
    "x-probe-callback",
];
const REQ: usize = 0;
const REQ_BODY: usize = 1;
const REQ_TRAILERS: usize = 2;
const RESP: usize = 3;
const RESP_BODY: usize = 4;
const RESP_TRAILERS: usize = 5;
const LOG: usize = 6;
const CALLBACK: usize = 7;

/// Logs at INFO. The host shows the plugin's name with every line, so the
/// first argument only documents who speaks.
fn info(_plugin: &str, msg: &str) {
    raw::log(2, msg);
}

/// A result key safe for a header name: lower case, `:` dropped, other
/// characters outside `[a-z0-9._-]` replaced by `_`.
fn key(s: &str) -> String {
    s.chars()
        .filter(|c| *c != ':')
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn status(code: u32) -> String {
    cmd::status_name(code)
}

fn res_str(r: raw::Res<Vec<u8>>) -> String {
    match r {
        Ok(v) => String::from_utf8_lossy(&v).into_owned(),
        Err(s) => status(s),
    }
}

fn sdk_status(s: proxy_wasm::types::Status) -> String {
    status(s as u32)
}

// ---------------------------------------------------------------------
// Root context

struct Paused {
    ctx: u32,
    due_ns: u64,
    start_ns: u64,
    stream: u32,
    sink: Option<u32>,
    key: String,
}

struct RootState {
    plugin: String,
    id: u32,
    configured_tick: u32,
    ticks: u64,
    paused: Vec<Paused>,
    /// `done-call=CLUSTER`: on_done calls this cluster and finishes with
    /// proxy_done when the answer arrives.
    done_call: Option<String>,
}

struct ProbeRoot {
    state: Rc<RefCell<RootState>>,
}

impl ProbeRoot {
    fn new(id: u32) -> ProbeRoot {
        let plugin = raw::get_property("plugin_name")
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_else(|s| format!("?{}", status(s)));
        ProbeRoot {
            state: Rc::new(RefCell::new(RootState {
                plugin,
                id,
                configured_tick: 0,
                ticks: 0,
                paused: Vec::new(),
                done_call: None,
            })),
        }
    }

    fn plugin(&self) -> String {
        self.state.borrow().plugin.clone()
    }
}

impl Context for ProbeRoot {
    fn on_done(&mut self) -> bool {
        let p = self.plugin();
        let Some(cluster) = self.state.borrow().done_call.clone() else {
            info(&p, "root on_done");
            return true;
        };
        let headers = vec![
            (":method", "GET"),
            (":path", "/shutdown"),
            (":authority", cluster.as_str()),
        ];
        match hostcalls::dispatch_http_call(&cluster, headers, None, vec![], Duration::from_secs(5))
        {
            Ok(_) => {
                info(&p, &format!("root on_done: waiting for {cluster}"));
                false
            }
            Err(s) => {
                info(
                    &p,
                    &format!("root on_done: cannot call {cluster}: {}", sdk_status(s)),
                );
                true
            }
        }
    }

    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let p = self.plugin();
        info(&p, &format!("proxy_done: {}", status(raw::done())));
    }
}

impl Drop for ProbeRoot {
    fn drop(&mut self) {
        info(&self.plugin(), "root on_delete");
    }
}

impl RootContext for ProbeRoot {
    fn on_vm_start(&mut self, size: usize) -> bool {
        let p = self.plugin();
        let vm_config = res_str(raw::get_buffer(6, 0, size));
        info(&p, &format!("on_vm_start {vm_config}"));
        if vm_config == "fail-vm-start" {
            info(&p, "failing on_vm_start as asked");
            return false;
        }
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let p = self.plugin();
        let config = res_str(raw::get_buffer(7, 0, size));
        info(&p, &format!("on_configure {config}"));
        for (k, v) in cmd::parse_config(&config) {
            match k.as_str() {
                "tick" => {
                    let ms: u32 = v.parse().unwrap_or(0);
                    self.state.borrow_mut().configured_tick = ms;
                    info(&p, &format!("set tick {ms}: {}", status(raw::set_tick(ms))));
                }
                "queue" => match raw::register_queue(&v) {
                    Ok(t) => info(&p, &format!("queue-registered {v} {t}")),
                    Err(s) => info(&p, &format!("queue-register {v} failed: {}", status(s))),
                },
                "done-call" => self.state.borrow_mut().done_call = Some(v),
                "fail-configure" => {
                    info(&p, "failing on_configure as asked (fail-configure)");
                    return false;
                }
                _ => info(&p, &format!("ignoring configuration key `{k}`")),
            }
        }
        true
    }

    fn on_tick(&mut self) {
        let mut st = self.state.borrow_mut();
        let p = st.plugin.clone();
        let now = raw::now_ns().unwrap_or(0);
        if st.configured_tick > 0 {
            st.ticks += 1;
            info(&p, &format!("tick {}", st.ticks));
        }
        let (due, keep): (Vec<Paused>, Vec<Paused>) =
            st.paused.drain(..).partition(|x| x.due_ns <= now);
        st.paused = keep;
        for x in due {
            let s = raw::set_effective_context(x.ctx);
            if s != 0 {
                info(
                    &p,
                    &format!("tick: stream context {} is gone ({})", x.ctx, status(s)),
                );
                continue;
            }
            let waited = (now.saturating_sub(x.start_ns) / 1_000_000).to_string();
            let name = format!("x-r-{}-waited", x.key);
            let written = x
                .sink
                .is_some_and(|m| raw::replace_header(m, &name, &waited) == 0);
            if !written {
                info(&p, &format!("{name}: {waited}"));
            }
            let s = raw::continue_stream(x.stream);
            info(
                &p,
                &format!("tick resumed context {}: {}", x.ctx, status(s)),
            );
        }
        raw::set_effective_context(st.id);
        if st.configured_tick == 0 && st.paused.is_empty() {
            raw::set_tick(0);
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        let p = self.plugin();
        loop {
            match raw::dequeue(queue_id) {
                Ok(v) => info(
                    &p,
                    &format!("queue-ready {queue_id} {}", String::from_utf8_lossy(&v)),
                ),
                Err(7) => break,
                Err(s) => {
                    info(
                        &p,
                        &format!("queue-ready {queue_id} dequeue failed: {}", status(s)),
                    );
                    break;
                }
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plugin = self.plugin();
        let seq = SEQ.with(|s| {
            s.set(s.get() + 1);
            s.get()
        });
        info(&plugin, "on_context_create");
        Some(Box::new(Probe {
            ctx: context_id,
            root: self.state.clone(),
            plugin,
            seq,
            cmds: Default::default(),
            calls: HashMap::new(),
            pending: 0,
            paused: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

// ---------------------------------------------------------------------
// HTTP context

/// What a callback works on.
#[derive(Clone, Debug)]
struct Env {
    /// Default header map of header commands.
    map: u32,
    /// Body buffer type of body commands.
    buffer: u32,
    /// Trailers map of this direction.
    trailers: u32,
    /// Stream type for `resume` / `close`.
    stream: u32,
    /// Map that receives results (`None`: they are logged).
    sink: Option<u32>,
    /// Body callback: (size, end_of_stream).
    body: Option<(usize, bool)>,
    /// The callback's arguments (`cbargs`).
    cb: String,
}

impl Env {
    fn req(sink: Option<u32>, cb: String) -> Env {
        Env {
            map: 0,
            buffer: 0,
            trailers: 1,
            stream: 0,
            sink,
            body: None,
            cb,
        }
    }
    fn resp(sink: Option<u32>, cb: String) -> Env {
        Env {
            map: 2,
            buffer: 1,
            trailers: 3,
            stream: 1,
            sink,
            body: None,
            cb,
        }
    }
}

#[derive(Default)]
struct Out {
    results: Vec<(String, String)>,
    pause: bool,
    ended: bool,
    effective: bool,
}

impl Out {
    fn put(&mut self, k: impl AsRef<str>, v: impl Into<String>) {
        let k = key(k.as_ref());
        let v = v.into();
        match self.results.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => self.results.push((k, v)),
        }
    }
}

struct Probe {
    ctx: u32,
    root: Rc<RefCell<RootState>>,
    plugin: String,
    seq: u64,
    cmds: [Vec<Command>; 8],
    /// Outstanding callouts: token -> result key.
    calls: HashMap<u32, String>,
    pending: u32,
    /// Where the stream paused waiting for callouts.
    paused: Option<Env>,
}

impl Probe {
    fn run_phase(&mut self, which: usize, env: &Env, mut out: Out) -> Out {
        let cmds = self.cmds[which].clone();
        let mut map = env.map;
        let plugin = self.plugin.clone();
        for c in cmds.iter().filter(|c| c.applies_to(&plugin)) {
            if !self.exec(c, env, &mut map, &mut out) {
                break;
            }
        }
        out
    }

    /// Writes results to the sink map (or the log) and restores the
    /// effective context if a command changed it.
    fn flush(&self, env: &Env, out: &Out) {
        if out.effective {
            raw::set_effective_context(self.ctx);
        }
        for (k, v) in &out.results {
            let name = format!("x-r-{k}");
            let v = cmd::header_safe(v);
            let written = env
                .sink
                .is_some_and(|m| raw::replace_header(m, &name, &v) == 0);
            if !written {
                info(&self.plugin, &format!("{name}: {v}"));
            }
        }
    }

    /// The callback's result: pause if a command asked for it.
    fn finish(&mut self, env: Env, out: Out) -> Action {
        self.flush(&env, &out);
        // Outstanding callouts keep the stream paused until the last answer.
        if out.pause || self.pending > 0 {
            self.paused = Some(env);
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// A callout answered: resume when none is left (unless a command of
    /// the callback ended or re-paused the stream).
    fn callout_done(&mut self, env: &Env, out: &Out) {
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0 && !out.ended && !out.pause {
            let s = raw::continue_stream(env.stream);
            if s != 0 {
                info(
                    &self.plugin,
                    &format!("resume after callouts: {}", status(s)),
                );
            }
        }
    }

    fn callback_env(&self, cb: String) -> Env {
        let mut env = self
            .paused
            .clone()
            .unwrap_or_else(|| Env::req(None, String::new()));
        env.cb = cb;
        env
    }

    fn metric_id(name: &str) -> u32 {
        if let Some(n) = name.strip_prefix('#') {
            return n.parse().unwrap_or(u32::MAX);
        }
        METRICS
            .with(|m| m.borrow().get(name).copied())
            .unwrap_or(0xFFFF_FFF0)
    }

    /// Runs one command; false stops the rest of the list.
    fn exec(&mut self, c: &Command, env: &Env, map: &mut u32, out: &mut Out) -> bool {
        let a0 = c.arg(0).to_string();
        let a1 = c.arg(1).to_string();
        let k = |d: &str| c.key(d);
        let num = |s: &str| -> u32 { s.trim().parse().unwrap_or(0) };
        match c.name.as_str() {
            // ---- general
            "seq" => out.put(k("seq"), self.seq.to_string()),
            "cbargs" => out.put(k("cbargs"), env.cb.clone()),
            "map" => match cmd::map_type(&a0) {
                Some(m) => *map = m,
                None => out.put(k("map"), format!("unknown map {a0}")),
            },

            // ---- logging
            "log" => {
                let level = cmd::log_level(&a0).unwrap_or(2);
                out.put(k("log"), status(raw::log(level, &a1)));
            }
            "rawlog" => {
                let msg = if a1.is_empty() { "rawlog" } else { &a1 };
                out.put(k("rawlog"), status(raw::log(num(&a0), msg)));
            }
            "loglevel" => out.put(
                k("loglevel"),
                raw::log_level().map_or_else(status, |l| l.to_string()),
            ),
            "stdout" => println!("{a0}"),
            "stderr" => eprintln!("{a0}"),
            "fdwrite" => {
                let (e, n) = raw::write_fd(num(&a0), a1.as_bytes());
                out.put(k("fdwrite"), format!("{} {n}", cmd::errno_name(e)));
            }

            // ---- time, randomness, environment
            "time" => out.put(
                k("time"),
                raw::now_ns().map_or_else(status, |t| t.to_string()),
            ),
            "clock" => out.put(
                k(&format!("clock-{a0}")),
                raw::clock(num(&a0)).map_or_else(cmd::errno_name, |t| t.to_string()),
            ),
            "random" => {
                let n = num(&a0) as usize;
                let mut buf = vec![0u8; n];
                let e = raw::random(&mut buf);
                let mut v = cmd::errno_name(e);
                if e == 0 && n >= 8 && buf.iter().all(|b| *b == 0) {
                    v.push_str(" all-zero");
                }
                out.put(k(&format!("random-{a0}")), v);
            }
            "env" => out.put(
                k(&format!("env-{a0}")),
                std::env::var(&a0).unwrap_or_else(|_| "UNSET".into()),
            ),
            "environ" => out.put(
                k("environ"),
                raw::environ_sizes()
                    .map_or_else(cmd::errno_name, |(n, s)| format!("count={n} size={s}")),
            ),
            "args" => out.put(
                k("args"),
                raw::args_sizes()
                    .map_or_else(cmd::errno_name, |(n, s)| format!("count={n} size={s}")),
            ),
            "exit" => {
                raw::exit(num(&a0));
                out.put(k("exit"), "returned");
            }

            // ---- properties
            "prop" => {
                let kind = if a1.is_empty() { "str" } else { &a1 };
                let v = match raw::get_property(&a0) {
                    Ok(v) => cmd::render_value(kind, &v),
                    Err(s) => status(s),
                };
                out.put(k(&format!("prop-{a0}")), v);
            }
            "setprop" => out.put(
                k(&format!("setprop-{a0}")),
                status(raw::set_property(&a0, a1.as_bytes())),
            ),

            // ---- header maps
            "get" => out.put(k(&format!("get-{a0}")), res_str(raw::get_header(*map, &a0))),
            "add" => out.put(
                k(&format!("add-{a0}")),
                status(raw::add_header(*map, &a0, &a1)),
            ),
            "replace" => out.put(
                k(&format!("replace-{a0}")),
                status(raw::replace_header(*map, &a0, &a1)),
            ),
            "remove" => out.put(
                k(&format!("remove-{a0}")),
                status(raw::remove_header(*map, &a0)),
            ),
            "pairs" => out.put(
                k("pairs"),
                match raw::get_pairs(*map) {
                    Ok(b) => cmd::render_value("count", &b),
                    Err(s) => status(s),
                },
            ),
            "dump" => out.put(
                k("dump"),
                match raw::get_pairs(*map) {
                    Ok(b) => match cmd::decode_pairs(&b) {
                        Some(p) => {
                            let shown: Vec<_> = p
                                .into_iter()
                                .filter(|(n, _)| {
                                    !(n.starts_with(b"x-probe")
                                        || n.starts_with(b"x-r-")
                                        || n == b"x-request-id")
                                })
                                .collect();
                            cmd::render_pairs(&shown)
                        }
                        None => "MALFORMED".into(),
                    },
                    Err(s) => status(s),
                },
            ),
            "size" => out.put(
                k("size"),
                raw::map_size(*map).map_or_else(status, |n| n.to_string()),
            ),
            "setpairs" => {
                let pairs = cmd::parse_pairs(&c.args.join(","));
                out.put(
                    k("setpairs"),
                    status(raw::set_pairs(*map, &cmd::encode_pairs(&pairs))),
                );
            }
            "trace" => {
                let v = match raw::get_header(*map, &a0) {
                    Ok(old) if !old.is_empty() => {
                        format!("{},{}", String::from_utf8_lossy(&old), self.plugin)
                    }
                    _ => self.plugin.clone(),
                };
                out.put(
                    k(&format!("trace-{a0}")),
                    status(raw::replace_header(*map, &a0, &v)),
                );
            }

            // ---- bodies and other buffers
            "buffer" => {
                if let Some((_, false)) = env.body {
                    out.pause = true;
                    return false;
                }
            }
            "chunk" => {
                if let Some((size, eos)) = env.body {
                    out.put(k("chunk"), format!("size={size} eos={eos}"));
                }
            }
            "body" => out.put(
                k("body"),
                res_str(raw::get_buffer(env.buffer, 0, usize::MAX)),
            ),
            "read" => {
                let kind = if c.arg(2).is_empty() { "str" } else { c.arg(2) };
                let r = raw::get_buffer(env.buffer, num(&a0) as usize, num(&a1) as usize);
                out.put(
                    k("read"),
                    r.map_or_else(status, |b| cmd::render_value(kind, &b)),
                );
            }
            "bodystatus" => out.put(
                k("bodystatus"),
                raw::buffer_status(env.buffer)
                    .map_or_else(status, |(l, f)| format!("len={l} flags={f}")),
            ),
            "upper" => {
                let v = match raw::get_buffer(env.buffer, 0, usize::MAX) {
                    Ok(b) => status(raw::set_buffer(
                        env.buffer,
                        0,
                        b.len(),
                        &b.to_ascii_uppercase(),
                    )),
                    Err(s) => status(s),
                };
                out.put(k("upper"), v);
            }
            "prepend" => out.put(
                k("prepend"),
                status(raw::set_buffer(env.buffer, 0, 0, a0.as_bytes())),
            ),
            "append" => {
                let len = raw::buffer_status(env.buffer).map(|(l, _)| l).unwrap_or(0);
                out.put(
                    k("append"),
                    status(raw::set_buffer(env.buffer, len, 0, a0.as_bytes())),
                );
            }
            "setbody" => {
                let data = c.args[2.min(c.args.len())..].join(",");
                out.put(
                    k("setbody"),
                    status(raw::set_buffer(
                        env.buffer,
                        num(&a0) as usize,
                        num(&a1) as usize,
                        data.as_bytes(),
                    )),
                );
            }
            "addtrailer" => out.put(
                k(&format!("addtrailer-{a0}")),
                status(raw::add_header(env.trailers, &a0, &a1)),
            ),
            "bufget" => {
                let bt = cmd::buffer_type(&a0).unwrap_or(u32::MAX);
                let start = num(c.arg(1)) as usize;
                let max = if c.arg(2).is_empty() {
                    usize::MAX
                } else {
                    num(c.arg(2)) as usize
                };
                out.put(
                    k(&format!("bufget-{a0}")),
                    res_str(raw::get_buffer(bt, start, max)),
                );
            }
            "bufstatus" => {
                let bt = cmd::buffer_type(&a0).unwrap_or(u32::MAX);
                out.put(
                    k(&format!("bufstatus-{a0}")),
                    raw::buffer_status(bt)
                        .map_or_else(status, |(l, f)| format!("len={l} flags={f}")),
                );
            }
            "bufset" => {
                let bt = cmd::buffer_type(&a0).unwrap_or(u32::MAX);
                out.put(
                    k(&format!("bufset-{a0}")),
                    status(raw::set_buffer(bt, 0, 0, a1.as_bytes())),
                );
            }
            "vmconfig" => out.put(k("vmconfig"), res_str(raw::get_buffer(6, 0, usize::MAX))),
            "config-outside" => out.put(
                k("config-outside"),
                raw::buffer_status(7).map_or_else(status, |(l, _)| format!("len={l}")),
            ),

            // ---- callouts
            "call" | "callh" => {
                let timeout = if c.arg(2).is_empty() {
                    5000
                } else {
                    num(c.arg(2))
                };
                let body = c.args.get(3).map(|b| b.as_bytes());
                let headers: Vec<(String, String)> = if c.name == "call" {
                    let method = if body.is_some() { "POST" } else { "GET" };
                    vec![
                        (":method".into(), method.into()),
                        (":path".into(), a1.clone()),
                        (":authority".into(), a0.clone()),
                    ]
                } else {
                    cmd::parse_pairs(&a1)
                };
                let hv: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                let r = hostcalls::dispatch_http_call(
                    &a0,
                    hv,
                    body,
                    vec![],
                    Duration::from_millis(timeout.into()),
                );
                let key = k(&c.name);
                match r {
                    Ok(token) => {
                        self.calls.insert(token, key.clone());
                        self.pending += 1;
                        out.put(key, "OK");
                    }
                    Err(s) => out.put(key, sdk_status(s)),
                }
            }
            "grpc" => {
                let timeout = if c.arg(3).is_empty() {
                    5000
                } else {
                    num(c.arg(3))
                };
                let msg = c.args.get(4).map(|m| m.as_bytes());
                let r = hostcalls::dispatch_grpc_call(
                    &a0,
                    &a1,
                    c.arg(2),
                    vec![("x-probe-md", b"1".as_slice())],
                    msg,
                    Duration::from_millis(timeout.into()),
                );
                let key = k("grpc");
                match r {
                    Ok(token) => {
                        GRPC_CALL.with(|g| g.set(token));
                        self.calls.insert(token, key.clone());
                        self.pending += 1;
                        out.put(key, "OK");
                    }
                    Err(s) => out.put(key, sdk_status(s)),
                }
            }
            "grpcstream" => {
                let r = hostcalls::open_grpc_stream(&a0, &a1, c.arg(2), vec![]);
                match r {
                    Ok(token) => {
                        GRPC_STREAM.with(|g| g.set(token));
                        out.put(k("grpcstream"), "OK");
                    }
                    Err(s) => out.put(k("grpcstream"), sdk_status(s)),
                }
            }
            "grpcsend" => {
                let token = GRPC_STREAM.with(|g| g.get());
                out.put(
                    k("grpcsend"),
                    status(raw::grpc_send(token, a0.as_bytes(), a1 == "end")),
                );
            }
            "grpcsendto" => out.put(
                k(&format!("grpcsendto-{a0}")),
                status(raw::grpc_send(num(&a0), a1.as_bytes(), false)),
            ),
            "grpccancel" | "grpcclose" => {
                let token = match a0.as_str() {
                    "" | "call" => GRPC_CALL.with(|g| g.get()),
                    "stream" => GRPC_STREAM.with(|g| g.get()),
                    n => num(n),
                };
                let s = if c.name == "grpccancel" {
                    raw::grpc_cancel(token)
                } else {
                    raw::grpc_close(token)
                };
                if s == 0 && self.calls.remove(&token).is_some() {
                    // A cancelled call is never answered.
                    self.pending = self.pending.saturating_sub(1);
                }
                out.put(k(&c.name), status(s));
            }
            "getstatus" => out.put(
                k("getstatus"),
                match raw::get_status() {
                    Ok((code, msg)) => format!("{code} {}", String::from_utf8_lossy(&msg)),
                    Err(s) => status(s),
                },
            ),

            // ---- stream control
            "pause" => out.pause = true,
            "resume" => out.put(k("resume"), status(raw::continue_stream(env.stream))),
            "continue" => out.put(
                k(&format!("continue-{a0}")),
                status(raw::continue_stream(num(&a0))),
            ),
            "closeraw" => out.put(
                k(&format!("close-{a0}")),
                status(raw::close_stream(num(&a0))),
            ),
            "close" => {
                out.put(k("close"), status(raw::close_stream(env.stream)));
                out.pause = true;
                out.ended = true;
            }
            "reply" => {
                let code = num(&a0);
                let grpc: i32 = c.arg(2).trim().parse().unwrap_or(-1);
                let headers = cmd::encode_pairs(&cmd::parse_pairs(c.arg(4)));
                out.put(
                    k("reply"),
                    status(raw::send_local_response(
                        code,
                        c.arg(3),
                        a1.as_bytes(),
                        &headers,
                        grpc,
                    )),
                );
                out.pause = true;
                out.ended = true;
            }
            "effective" => {
                let target = match a0.as_str() {
                    "root" => self.root.borrow().id,
                    "self" => self.ctx,
                    n => num(n),
                };
                out.effective = true;
                out.put(
                    k(&format!("effective-{a0}")),
                    status(raw::set_effective_context(target)),
                );
            }
            "done" => out.put(k("done"), status(raw::done())),
            "foreign" => out.put(
                k(&format!("foreign-{a0}")),
                match raw::call_foreign(&a0, a1.as_bytes()) {
                    Ok(v) => format!("OK {}", v.len()),
                    Err(s) => status(s),
                },
            ),
            "trap" => core::arch::wasm32::unreachable(),
            "panic" => panic!("probe panic as asked"),
            "loop" => {
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            }
            "badptr" => {
                let wasi = matches!(a0.as_str(), "clock" | "random" | "environ" | "args")
                    || a0.starts_with("fdwrite");
                let v = match raw::bad_pointer(&a0) {
                    Some(s) if wasi => cmd::errno_name(s),
                    Some(s) => status(s),
                    None => format!("unknown function {a0}"),
                };
                out.put(k(&format!("badptr-{a0}")), v);
            }
            "badenum" => {
                let v = match raw::bad_enum(&a0) {
                    Some(s) if a0 == "clock" => cmd::errno_name(s),
                    Some(s) => status(s),
                    None => format!("unknown function {a0}"),
                };
                out.put(k(&format!("badenum-{a0}")), v);
            }

            // ---- timers
            "pausetick" => {
                let ms = num(&a0);
                let now = raw::now_ns().unwrap_or(0);
                let configured = {
                    let mut r = self.root.borrow_mut();
                    r.paused.push(Paused {
                        ctx: self.ctx,
                        due_ns: now + u64::from(ms) * 1_000_000,
                        start_ns: now,
                        stream: env.stream,
                        sink: if env.body.is_none() { env.sink } else { None },
                        key: k("pausetick"),
                    });
                    r.configured_tick
                };
                let s = if configured == 0 {
                    raw::set_tick(ms)
                } else {
                    0
                };
                out.put(k("pausetick"), status(s));
                out.pause = true;
            }
            "tick" => out.put(k("tick"), status(raw::set_tick(num(&a0)))),

            // ---- shared data
            "shget" => out.put(
                k(&format!("shget-{a0}")),
                raw::get_shared(&a0)
                    .map_or_else(status, |(v, _)| String::from_utf8_lossy(&v).into_owned()),
            ),
            "shset" => {
                let cas = match c.arg(2) {
                    "" => 0,
                    "stale" => raw::get_shared(&a0)
                        .map(|(_, c)| c.wrapping_add(1000))
                        .unwrap_or(1000),
                    "current" => raw::get_shared(&a0).map(|(_, c)| c).unwrap_or(0),
                    "remembered" => CAS.with(|m| m.borrow().get(&a0).copied()).unwrap_or(0),
                    n => num(n),
                };
                out.put(
                    k(&format!("shset-{a0}")),
                    status(raw::set_shared(&a0, a1.as_bytes(), cas)),
                );
            }
            "shremember" => {
                let v = match raw::get_shared(&a0) {
                    Ok((_, cas)) => {
                        CAS.with(|m| m.borrow_mut().insert(a0.clone(), cas));
                        "OK".to_string()
                    }
                    Err(s) => status(s),
                };
                out.put(k(&format!("shremember-{a0}")), v);
            }
            "shincr" => {
                let mut result = "CAS retries exhausted".to_string();
                for _ in 0..100 {
                    let (n, cas) = match raw::get_shared(&a0) {
                        Ok((v, cas)) => {
                            (String::from_utf8_lossy(&v).parse::<i64>().unwrap_or(0), cas)
                        }
                        Err(_) => (0, 0),
                    };
                    let next = (n + 1).to_string();
                    match raw::set_shared(&a0, next.as_bytes(), cas) {
                        0 => {
                            result = next;
                            break;
                        }
                        8 => continue,
                        s => {
                            result = status(s);
                            break;
                        }
                    }
                }
                out.put(k(&format!("shincr-{a0}")), result);
            }

            // ---- queues
            "qreg" => out.put(
                k(&format!("qreg-{a0}")),
                raw::register_queue(&a0).map_or_else(status, |t| t.to_string()),
            ),
            "qresolve" => out.put(
                k(&format!("qresolve-{a1}")),
                raw::resolve_queue(&a0, &a1).map_or_else(status, |t| t.to_string()),
            ),
            "qenq" => {
                let v = match raw::resolve_queue(c.arg(2), &a0) {
                    Ok(t) => status(raw::enqueue(t, a1.as_bytes())),
                    Err(s) => status(s),
                };
                out.put(k(&format!("qenq-{a0}")), v);
            }
            "qenqid" => out.put(
                k(&format!("qenqid-{a0}")),
                status(raw::enqueue(num(&a0), a1.as_bytes())),
            ),
            "qdeq" => {
                let v = match raw::resolve_queue(&a1, &a0) {
                    Ok(t) => res_str(raw::dequeue(t)),
                    Err(s) => status(s),
                };
                out.put(k(&format!("qdeq-{a0}")), v);
            }
            "qdeqid" => out.put(k(&format!("qdeqid-{a0}")), res_str(raw::dequeue(num(&a0)))),

            // ---- metrics
            "mdef" => {
                let v = match raw::define_metric(cmd::metric_type(&a0).unwrap_or(u32::MAX), &a1) {
                    Ok(id) => {
                        METRICS.with(|m| m.borrow_mut().insert(a1.clone(), id));
                        "OK".to_string()
                    }
                    Err(s) => status(s),
                };
                out.put(k(&format!("mdef-{a1}")), v);
            }
            "minc" => {
                let delta: i64 = a1.trim().parse().unwrap_or(0);
                out.put(
                    k(&format!("minc-{a0}")),
                    status(raw::increment_metric(Self::metric_id(&a0), delta)),
                );
            }
            "mrec" => {
                let value: u64 = a1.trim().parse().unwrap_or(0);
                out.put(
                    k(&format!("mrec-{a0}")),
                    status(raw::record_metric(Self::metric_id(&a0), value)),
                );
            }
            "mget" => out.put(
                k(&format!("mget-{a0}")),
                raw::get_metric(Self::metric_id(&a0))
                    .map_or_else(status, |v| (v as i64).to_string()),
            ),

            other => out.put(format!("unknown-{other}"), "unknown command"),
        }
        true
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        info(&self.plugin, "on_delete");
    }
}

impl Context for Probe {
    fn on_http_call_response(&mut self, token: u32, nh: usize, nb: usize, nt: usize) {
        let label = self.calls.remove(&token).unwrap_or_else(|| "call".into());
        let mut env = self.callback_env(format!("headers={nh} body={nb} trailers={nt}"));
        let mut out = Out::default();
        if nh == 0 && nb == 0 && nt == 0 {
            let v = match raw::get_status() {
                Ok((code, msg)) => format!("{code} {}", String::from_utf8_lossy(&msg)),
                Err(s) => status(s),
            };
            out.put(format!("{label}-failed"), v);
        } else {
            out.put(
                format!("{label}-status"),
                res_str(raw::get_header(6, ":status")),
            );
            out.put(format!("{label}-body"), res_str(raw::get_buffer(4, 0, nb)));
            out.put(format!("{label}-headers"), nh.to_string());
            out.put(format!("{label}-trailers"), nt.to_string());
        }
        env.map = 6;
        let out = self.run_phase(CALLBACK, &env, out);
        self.flush(&env, &out);
        self.callout_done(&env, &out);
    }

    fn on_grpc_call_response(&mut self, token: u32, status_code: u32, size: usize) {
        let label = self.calls.remove(&token).unwrap_or_else(|| "grpc".into());
        let mut env = self.callback_env(format!("status={status_code} size={size}"));
        let mut out = Out::default();
        out.put(format!("{label}-status"), status_code.to_string());
        out.put(
            format!("{label}-body"),
            res_str(raw::get_buffer(5, 0, size)),
        );
        out.put(
            format!("{label}-getstatus"),
            match raw::get_status() {
                Ok((code, msg)) => format!("{code} {}", String::from_utf8_lossy(&msg)),
                Err(s) => status(s),
            },
        );
        env.map = 4;
        let out = self.run_phase(CALLBACK, &env, out);
        self.flush(&env, &out);
        self.callout_done(&env, &out);
    }

    fn on_grpc_stream_initial_metadata(&mut self, token: u32, n: u32) {
        let v = match raw::get_pairs(4) {
            Ok(b) => cmd::render_value("pairs", &b),
            Err(s) => status(s),
        };
        info(
            &self.plugin,
            &format!("grpc-stream {token} initial-metadata {n}: {v}"),
        );
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let v = res_str(raw::get_buffer(5, 0, size));
        info(
            &self.plugin,
            &format!("grpc-stream {token} message {size}: {v}"),
        );
    }

    fn on_grpc_stream_trailing_metadata(&mut self, token: u32, n: u32) {
        let v = match raw::get_pairs(5) {
            Ok(b) => cmd::render_value("pairs", &b),
            Err(s) => status(s),
        };
        info(
            &self.plugin,
            &format!("grpc-stream {token} trailing-metadata {n}: {v}"),
        );
    }

    fn on_grpc_stream_close(&mut self, token: u32, status_code: u32) {
        let v = match raw::get_status() {
            Ok((code, msg)) => format!("{code} {}", String::from_utf8_lossy(&msg)),
            Err(s) => status(s),
        };
        info(
            &self.plugin,
            &format!("grpc-stream {token} close {status_code}: {v}"),
        );
    }

    fn on_done(&mut self) -> bool {
        info(&self.plugin, "on_done");
        true
    }
}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, n: usize, eos: bool) -> Action {
        for (i, h) in HEADERS.iter().enumerate() {
            if let Ok(v) = raw::get_header(0, h) {
                self.cmds[i] = cmd::parse(&String::from_utf8_lossy(&v));
            }
        }
        let env = Env::req(Some(0), format!("headers={n} eos={eos}"));
        let out = self.run_phase(REQ, &env, Out::default());
        self.finish(env, out)
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        let mut env = Env::req(None, format!("size={size} eos={eos}"));
        env.body = Some((size, eos));
        let out = self.run_phase(REQ_BODY, &env, Out::default());
        self.finish(env, out)
    }

    fn on_http_request_trailers(&mut self, n: usize) -> Action {
        let mut env = Env::req(None, format!("trailers={n}"));
        env.map = 1;
        let out = self.run_phase(REQ_TRAILERS, &env, Out::default());
        self.finish(env, out)
    }

    fn on_http_response_headers(&mut self, n: usize, eos: bool) -> Action {
        let env = Env::resp(Some(2), format!("headers={n} eos={eos}"));
        let out = self.run_phase(RESP, &env, Out::default());
        self.finish(env, out)
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        let mut env = Env::resp(None, format!("size={size} eos={eos}"));
        env.body = Some((size, eos));
        let out = self.run_phase(RESP_BODY, &env, Out::default());
        self.finish(env, out)
    }

    fn on_http_response_trailers(&mut self, n: usize) -> Action {
        let mut env = Env::resp(None, format!("trailers={n}"));
        env.map = 3;
        let out = self.run_phase(RESP_TRAILERS, &env, Out::default());
        self.finish(env, out)
    }

    fn on_log(&mut self) {
        info(&self.plugin, "on_log");
        let env = Env::req(None, String::new());
        let out = self.run_phase(LOG, &env, Out::default());
        self.flush(&env, &out);
    }
}
