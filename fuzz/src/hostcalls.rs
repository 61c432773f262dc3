//! The `hostcalls` target: a module that calls the host's functions with
//! arguments chosen by the fuzzer, run through the harness like any plugin.
//!
//! One generated module ([`module_wat`]) imports every Proxy-Wasm ABI
//! v0.2.1 host function and most of the WASI ones. In
//! `proxy_on_request_body` it reads the request body and interprets it as a
//! program: fixed-size records `(function index, 12 argument slots)`, each
//! slot an `i64` or, when its high word is `0xA5A5A5A5`, an offset into the
//! body copy in guest memory (so pointers can aim at real data). The same
//! program runs again in `proxy_on_log`, `proxy_on_http_call_response`,
//! `proxy_on_tick` and `proxy_on_queue_ready`, where the host's access rules
//! differ. [`program`] turns fuzz bytes into such a body.
//!
//! Checked for every input, on one long-lived worker (VM state accumulates
//! as in a proxy): the host does not panic; the stream ends (answered,
//! reset, or a 503 for a trap, since the plugin is `fail_reload`) and no
//! stream is left behind; a plain request right after gets the upstream's
//! 200 (a failed VM is reloaded; nothing the module did breaks the worker).

use crate::input::SplitMix;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use wasmesh::chain::{CalloutResponse, ChainConfig, FailurePolicy, PluginConfig, StreamEvent};
use wasmesh::headers::HeaderMap;
use wasmesh::host::{Clock, HostShared};
use wasmesh::types::LogLevel;
use wasmesh::{Runtime, Worker};

/// A host function: module, name, parameter types (`i` i32, `I` i64),
/// whether it returns an i32.
pub struct Import {
    /// Import module (`env` or `wasi_snapshot_preview1`).
    pub module: &'static str,
    /// Function name.
    pub name: &'static str,
    /// Parameter types: `i` for i32, `I` for i64.
    pub params: &'static str,
    /// Returns an i32 status.
    pub result: bool,
}

const fn env(name: &'static str, params: &'static str) -> Import {
    Import {
        module: "env",
        name,
        params,
        result: true,
    }
}

const fn wasi(name: &'static str, params: &'static str) -> Import {
    Import {
        module: "wasi_snapshot_preview1",
        name,
        params,
        result: true,
    }
}

/// The host functions the module can call: every `proxy_*` function of ABI
/// v0.2.1 that Envoy provides (the ABI 0.1 names are refused for a 0.2.1
/// module) and the WASI functions proxy-wasm-cpp-host registers.
pub const IMPORTS: &[Import] = &[
    env("proxy_log", "iii"),
    env("proxy_get_log_level", "i"),
    env("proxy_get_current_time_nanoseconds", "i"),
    env("proxy_set_tick_period_milliseconds", "i"),
    env("proxy_get_buffer_bytes", "iiiii"),
    env("proxy_get_buffer_status", "iii"),
    env("proxy_set_buffer_bytes", "iiiii"),
    env("proxy_get_header_map_pairs", "iii"),
    env("proxy_set_header_map_pairs", "iii"),
    env("proxy_get_header_map_size", "ii"),
    env("proxy_get_header_map_value", "iiiii"),
    env("proxy_add_header_map_value", "iiiii"),
    env("proxy_replace_header_map_value", "iiiii"),
    env("proxy_remove_header_map_value", "iii"),
    env("proxy_get_property", "iiii"),
    env("proxy_set_property", "iiii"),
    env("proxy_http_call", "iiiiiiiiii"),
    env("proxy_grpc_call", "iiiiiiiiiiii"),
    env("proxy_grpc_stream", "iiiiiiiii"),
    env("proxy_grpc_send", "iiii"),
    env("proxy_grpc_cancel", "i"),
    env("proxy_grpc_close", "i"),
    env("proxy_get_status", "iii"),
    env("proxy_set_shared_data", "iiiii"),
    env("proxy_get_shared_data", "iiiii"),
    env("proxy_register_shared_queue", "iii"),
    env("proxy_resolve_shared_queue", "iiiii"),
    env("proxy_enqueue_shared_queue", "iii"),
    env("proxy_dequeue_shared_queue", "iii"),
    env("proxy_define_metric", "iiii"),
    env("proxy_increment_metric", "iI"),
    env("proxy_record_metric", "iI"),
    env("proxy_get_metric", "ii"),
    env("proxy_continue_stream", "i"),
    env("proxy_close_stream", "i"),
    env("proxy_send_local_response", "iiiiiiii"),
    env("proxy_set_effective_context", "i"),
    env("proxy_done", ""),
    env("proxy_call_foreign_function", "iiiiii"),
    // Exactly the WASI functions proxy-wasm-cpp-host registers.
    wasi("fd_write", "iiii"),
    wasi("fd_read", "iiii"),
    wasi("fd_seek", "iIii"),
    wasi("fd_close", "i"),
    wasi("fd_fdstat_get", "ii"),
    wasi("fd_prestat_get", "ii"),
    wasi("fd_prestat_dir_name", "iii"),
    wasi("path_open", "iiiiiIIii"),
    wasi("environ_sizes_get", "ii"),
    wasi("environ_get", "ii"),
    wasi("args_sizes_get", "ii"),
    wasi("args_get", "ii"),
    wasi("clock_time_get", "iIi"),
    wasi("random_get", "ii"),
    Import {
        module: "wasi_snapshot_preview1",
        name: "proc_exit",
        params: "i",
        result: false,
    },
];

/// Argument slots per record.
pub const SLOTS: usize = 12;
/// Bytes per record: function index (u32), padding, 12 × i64.
pub const RECORD: usize = 8 + 8 * SLOTS;
/// Most records in one program.
pub const MAX_OPS: usize = 48;
/// Marker (high word of a slot) of a body-relative pointer.
pub const REL: u64 = 0xA5A5_A5A5;
/// Guest heap cap of the module's allocator.
const HEAP_CAP: u32 = 16 * 1024 * 1024;

/// The module's WAT text.
pub fn module_wat() -> String {
    let mut w = String::from("(module\n");
    w.push_str("  (type $op (func (param i32)))\n");
    for (i, imp) in IMPORTS.iter().enumerate() {
        let params: Vec<&str> = imp
            .params
            .chars()
            .map(|c| if c == 'I' { "i64" } else { "i32" })
            .collect();
        let params = if params.is_empty() {
            String::new()
        } else {
            format!(" (param {})", params.join(" "))
        };
        let result = if imp.result { " (result i32)" } else { "" };
        w.push_str(&format!(
            "  (import \"{}\" \"{}\" (func $h{i}{params}{result}))\n",
            imp.module, imp.name
        ));
    }
    w.push_str(&format!(
        r#"  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (global $prog (mut i32) (i32.const 0))
  (global $prog_len (mut i32) (i32.const 0))
  (global $depth (mut i32) (i32.const 0))
  (func $alloc (export "proxy_on_memory_allocate") (export "malloc") (param $n i32) (result i32)
    (local $p i32) (local $end i64) (local $have i64)
    (local.set $p (global.get $heap))
    (local.set $end (i64.add (i64.extend_i32_u (local.get $p))
                             (i64.extend_i32_u (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8)))))
    (if (i64.gt_u (local.get $end) (i64.const {cap})) (then (return (i32.const 0))))
    (local.set $have (i64.shl (i64.extend_i32_u (memory.size)) (i64.const 16)))
    (if (i64.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.wrap_i64 (i64.shr_u (i64.sub (i64.add (local.get $end) (i64.const 65535)) (local.get $have)) (i64.const 16))))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (i32.wrap_i64 (local.get $end)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $heap (i32.const 65536))
    (global.set $prog_len (i32.const 0))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 0))))
    ;; proxy_get_buffer_bytes(HttpRequestBody, 0, size, &ptr, &len) with the
    ;; out-params at 1024/1028.
    (if (i32.eqz (call $h4 (i32.const 0) (i32.const 0) (local.get $size) (i32.const 1024) (i32.const 1028)))
      (then
        (global.set $prog (i32.load (i32.const 1024)))
        (global.set $prog_len (i32.load (i32.const 1028)))
        (call $run)))
    (i32.const 0))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_log") (param i32) (call $run))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32))
  (func (export "proxy_on_tick") (param i32) (call $run))
  (func (export "proxy_on_queue_ready") (param i32 i32) (call $run))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32) (call $run))
  (func (export "proxy_on_grpc_receive") (param i32 i32 i32) (call $run))
  (func (export "proxy_on_grpc_close") (param i32 i32 i32) (call $run))
  (func (export "proxy_on_grpc_receive_initial_metadata") (param i32 i32 i32))
  (func (export "proxy_on_grpc_receive_trailing_metadata") (param i32 i32 i32))
  (func (export "proxy_on_foreign_function") (param i32 i32 i32))
  ;; Slot $k of the record at $rec as an i32 (body-relative when marked).
  (func $arg32 (param $rec i32) (param $k i32) (result i32)
    (local $v i64)
    (local.set $v (i64.load (i32.add (local.get $rec) (i32.add (i32.const 8) (i32.shl (local.get $k) (i32.const 3))))))
    (if (result i32) (i64.eq (i64.shr_u (local.get $v) (i64.const 32)) (i64.const {rel}))
      (then (i32.add (global.get $prog) (i32.wrap_i64 (local.get $v))))
      (else (i32.wrap_i64 (local.get $v)))))
  (func $arg64 (param $rec i32) (param $k i32) (result i64)
    (i64.load (i32.add (local.get $rec) (i32.add (i32.const 8) (i32.shl (local.get $k) (i32.const 3))))))
  ;; Runs the program (not re-entrantly: a host call that calls back into
  ;; the module does not start it again).
  (func $run
    (local $rec i32) (local $end i32) (local $n i32)
    (if (i32.or (global.get $depth) (i32.lt_u (global.get $prog_len) (i32.const 4))) (then (return)))
    (global.set $depth (i32.const 1))
    (local.set $n (i32.load (global.get $prog)))
    (if (i32.gt_u (local.get $n) (i32.const {max_ops})) (then (local.set $n (i32.const {max_ops}))))
    (local.set $rec (i32.add (global.get $prog) (i32.const 8)))
    (local.set $end (i32.add (global.get $prog) (global.get $prog_len)))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $n)))
        (br_if $done (i32.gt_u (i32.add (local.get $rec) (i32.const {record})) (local.get $end)))
        (call_indirect (type $op) (local.get $rec)
          (i32.rem_u (i32.load (local.get $rec)) (i32.const {count})))
        (local.set $rec (i32.add (local.get $rec) (i32.const {record})))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (global.set $depth (i32.const 0)))
"#,
        cap = HEAP_CAP,
        rel = REL,
        max_ops = MAX_OPS,
        record = RECORD,
        count = IMPORTS.len(),
    ));
    // One dispatcher per import.
    for (i, imp) in IMPORTS.iter().enumerate() {
        w.push_str(&format!("  (func $do{i} (type $op)\n    (call $h{i}"));
        for (k, c) in imp.params.chars().enumerate() {
            if c == 'I' {
                w.push_str(&format!(" (call $arg64 (local.get 0) (i32.const {k}))"));
            } else {
                w.push_str(&format!(" (call $arg32 (local.get 0) (i32.const {k}))"));
            }
        }
        w.push(')');
        if imp.result {
            w.push_str(" drop");
        }
        w.push_str(")\n");
    }
    w.push_str(&format!(
        "  (table {} funcref)\n  (elem (i32.const 0)",
        IMPORTS.len()
    ));
    for i in 0..IMPORTS.len() {
        w.push_str(&format!(" $do{i}"));
    }
    w.push_str(")\n)\n");
    w
}

/// Strings and structures a pointer argument can aim at: names the host
/// knows (clusters, properties, foreign functions), serialised header maps
/// and gRPC service protos, malformed versions of each.
pub fn dictionary() -> Vec<Vec<u8>> {
    let pairs = |p: &[(&[u8], &[u8])]| {
        let mut out = (p.len() as u32).to_le_bytes().to_vec();
        for (k, v) in p {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in p {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    };
    let call_headers = pairs(&[
        (b":method", b"GET"),
        (b":path", b"/keys"),
        (b":authority", b"idp"),
    ]);
    let mut bad_pairs = pairs(&[(b"x-a", b"b")]);
    bad_pairs[4] = 0xff; // name length far past the end
    let mut v: Vec<Vec<u8>> = vec![
        b"upstream".to_vec(),
        b"idp".to_vec(),
        b"unknown-cluster".to_vec(),
        b"x-fuzz".to_vec(),
        b":path".to_vec(),
        b":status".to_vec(),
        b"hello world".to_vec(),
        b"request\0path".to_vec(),
        b"request\0headers".to_vec(),
        b"source\0address".to_vec(),
        b"node\0metadata".to_vec(),
        b"plugin_name".to_vec(),
        b"wasmesh.identity".to_vec(),
        b"response\0code".to_vec(),
        b"clear_route_cache".to_vec(),
        b"no_such_function".to_vec(),
        b"queue".to_vec(),
        b"metric_total".to_vec(),
        b"".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        call_headers,
        bad_pairs,
        pairs(&[]),
        // GrpcService proto: envoy_grpc { cluster_name: "idp" }.
        vec![0x0a, 0x05, 0x0a, 0x03, b'i', b'd', b'p'],
        vec![0x0a, 0x7f, 0x0a],
        // iovec {ptr: 0, len: 5} for fd_write.
        vec![0, 0, 0, 0, 5, 0, 0, 0],
    ];
    v.push(vec![b'a'; 300]);
    v
}

/// Turns fuzz bytes into a request body for the module: records, then the
/// dictionary, then the rest of the input as raw data.
pub fn program(data: &[u8]) -> Vec<u8> {
    let dict = dictionary();
    let mut it = data.iter().copied();
    let mut next = || it.next().unwrap_or(0);
    let n_ops = (usize::from(next()) % MAX_OPS).max(1);
    let header_len = 8 + n_ops * RECORD;
    // Dictionary entries' offsets in the body.
    let mut offsets = Vec::new();
    let mut blob = Vec::new();
    for d in &dict {
        offsets.push(header_len + blob.len());
        blob.extend_from_slice(d);
        blob.push(0);
    }
    let mut records = Vec::with_capacity(n_ops * RECORD);
    for _ in 0..n_ops {
        let f = u32::from(next()) % IMPORTS.len() as u32;
        records.extend(f.to_le_bytes());
        records.extend([0u8; 4]);
        for _ in 0..SLOTS {
            let mode = next() % 8;
            let v: u64 = match mode {
                0 => {
                    let k = usize::from(next()) % offsets.len();
                    (REL << 32) | offsets[k] as u64
                }
                1 => {
                    // Length of a dictionary entry.
                    let k = usize::from(next()) % dict.len();
                    dict[k].len() as u64
                }
                2 => u64::from(next() % 16),
                3 => {
                    let b = [next(), next(), next(), next()];
                    u64::from(u32::from_le_bytes(b))
                }
                4 => {
                    const V: [u64; 10] = [
                        0,
                        u32::MAX as u64,
                        i32::MAX as u64,
                        0x8000_0000,
                        0x1_0000,
                        0xffff_fff0,
                        1 << 30,
                        64 << 20,
                        u64::MAX,
                        i64::MIN as u64,
                    ];
                    V[usize::from(next()) % V.len()]
                }
                5 => {
                    // A body-relative offset anywhere (also past the end).
                    let b = [next(), next()];
                    (REL << 32) | u64::from(u16::from_le_bytes(b))
                }
                6 => {
                    let mut b = [0u8; 8];
                    for x in b.iter_mut() {
                        *x = next();
                    }
                    u64::from_le_bytes(b)
                }
                _ => 1 + u64::from(next() % 4),
            };
            records.extend(v.to_le_bytes());
        }
    }
    let mut body = (n_ops as u32).to_le_bytes().to_vec();
    body.extend([0u8; 4]);
    body.extend(records);
    debug_assert_eq!(body.len(), header_len);
    body.extend(blob);
    body.extend(it.take(4096));
    body
}

/// A worker running the module, with its host (virtual clock).
pub struct Rig {
    /// The worker.
    pub worker: Worker,
    /// Its host.
    pub host: Arc<HostShared>,
    /// Inputs run on it.
    pub runs: u64,
}

fn module_path() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let p =
            std::env::temp_dir().join(format!("wasmesh-fuzz-hostcalls-{}.wat", std::process::id()));
        std::fs::write(&p, module_wat()).expect("write the module");
        p
    })
    .clone()
}

impl Rig {
    /// A fresh worker with the module as a `fail_reload` plugin.
    pub fn new() -> Rig {
        let runtime = Runtime::shared().expect("runtime");
        let host = HostShared::new(Clock::virtual_at(1_700_000_000), LogLevel::Info);
        host.add_cluster("idp");
        let mut plugin = PluginConfig::new("fuzz", module_path(), b"{}".to_vec());
        plugin.vm_id = "fuzz".into();
        plugin.failure_policy = FailurePolicy::FailReload;
        let config = ChainConfig {
            plugins: vec![plugin],
            ..Default::default()
        };
        let worker = Worker::new(0, runtime, host.clone(), config).expect("start the module");
        Rig {
            worker,
            host,
            runs: 0,
        }
    }

    /// Runs one stream carrying `body`; returns the status the client got
    /// (`None`: reset or no answer).
    pub fn stream(&mut self, body: Vec<u8>) -> Option<u32> {
        let w = &mut self.worker;
        let mut h = HeaderMap::new();
        for (k, v) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", "/fuzz"),
            ("x-fuzz", "1"),
        ] {
            h.add(k.as_bytes(), v.as_bytes());
        }
        let sid = w.start_stream(h, body.is_empty(), Default::default());
        if !body.is_empty() {
            w.downstream_data(sid, body, true);
        }
        let mut status = None;
        let mut answered_upstream = false;
        for _round in 0..8 {
            // Callouts get an answer, timers fire, queues are polled.
            for c in w.take_callouts() {
                let mut headers = HeaderMap::new();
                headers.add(b":status", b"200");
                w.deliver_http(
                    &c,
                    Some(CalloutResponse {
                        headers,
                        body: b"{\"keys\":[]}".to_vec(),
                        trailers: HeaderMap::new(),
                    }),
                );
            }
            w.poll_queues();
            if let Some(t) = w.next_timer_ns() {
                if t <= self.host.clock.now_ns() + 60_000_000_000 {
                    self.host.clock.set_ns(t.max(self.host.clock.now_ns()));
                    w.fire_timers();
                }
            }
            // Events until none are left (answering the upstream produces more).
            loop {
                let events = w.take_events(sid);
                if events.is_empty() {
                    break;
                }
                for e in events {
                    match e {
                        StreamEvent::UpstreamHeaders { .. } if !answered_upstream => {
                            answered_upstream = true;
                            let mut r = HeaderMap::new();
                            r.add(b":status", b"200");
                            w.upstream_headers(sid, r, true);
                        }
                        StreamEvent::DownstreamHeaders { headers, .. } => {
                            status = headers
                                .get(b":status")
                                .and_then(|s| std::str::from_utf8(s).ok())
                                .and_then(|s| s.parse().ok());
                        }
                        _ => {}
                    }
                }
            }
            if !w.is_active(sid) {
                break;
            }
        }
        if w.is_active(sid) {
            // Paused by the module and never continued: the client gives up.
            w.downstream_reset(sid);
            let _ = w.take_events(sid);
        }
        // Streams of earlier callouts/effective-context tricks are over too.
        let _ = w.take_dirty();
        status
    }
}

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}

thread_local! {
    static RIG: RefCell<Option<Rig>> = const { RefCell::new(None) };
}

/// Inputs per worker before a fresh one (the host keeps log lines, shared
/// data and metrics the module made, as a proxy would).
pub const RUNS_PER_RIG: u64 = 2000;

/// The target.
pub fn run(data: &[u8]) {
    RIG.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|r| r.runs >= RUNS_PER_RIG) {
            *slot = Some(Rig::new());
        }
        let rig = slot.as_mut().expect("rig");
        rig.runs += 1;
        check(rig, data);
    });
}

/// Runs `data` on `rig` and checks the worker afterwards.
pub fn check(rig: &mut Rig, data: &[u8]) {
    let body = program(data);
    let _ = rig.stream(body);
    assert_eq!(
        rig.worker.active_streams(),
        0,
        "a stream was left behind by input {data:?}"
    );
    // A plain request works right after: a failed VM was reloaded.
    let status = rig.stream(Vec::new());
    assert_eq!(
        status,
        Some(200),
        "the next request did not get the upstream's 200"
    );
    assert_eq!(rig.worker.active_streams(), 0);
}

/// A deterministic random program (for the smoke run's generated inputs).
pub fn random_input(rng: &mut SplitMix) -> Vec<u8> {
    let n = 1 + rng.below(600);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}
