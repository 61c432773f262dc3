//! Raw ABI behaviour with hand-written WAT modules: what the host answers to
//! out-of-bounds pointers, unknown enum values and malformed serialised maps
//! (the statuses proxy-wasm-cpp-host / Envoy return), modules that cannot
//! start, allocators that misbehave, traps and endless loops. The host must
//! never panic: every test here runs the host in-process.
//!
//! Status codes are reported by the modules themselves: each check appends
//! the letter `'A' + status` to a buffer that is logged at the end, so a
//! failure names every check whose status differs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmesh::chain::StreamEvent;
use wasmesh::headers::HeaderMap;
use wasmesh::properties::PropertyMap;
use wasmesh::types::LogLevel;
use wasmesh::{ChainConfig, Clock, FailurePolicy, HostShared, PluginConfig, Runtime, Worker};

/// A pointer far outside the 4 pages of memory the modules have.
const BAD: &str = "(i32.const 0xfffffff0)";

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const BAD_ARGUMENT: u32 = 2;
const PARSE_FAILURE: u32 = 4;
const INVALID_MEMORY_ACCESS: u32 = 6;
const WASI_FAULT: u32 = 21;
const WASI_NOTSUP: u32 = 58;

/// Every host function the checks call, as the harness links them.
const IMPORTS: &str = r#"
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_log_level" (func $proxy_get_log_level (param i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $proxy_get_current_time_nanoseconds (param i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_status" (func $proxy_get_buffer_status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $proxy_set_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $proxy_get_header_map_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $proxy_set_header_map_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_size" (func $proxy_get_header_map_size (param i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $proxy_add_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $proxy_replace_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $proxy_remove_header_map_value (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $proxy_get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $proxy_set_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $proxy_get_shared_data (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $proxy_set_shared_data (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $proxy_register_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_resolve_shared_queue" (func $proxy_resolve_shared_queue (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $proxy_enqueue_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $proxy_dequeue_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $proxy_continue_stream (param i32) (result i32)))
  (import "env" "proxy_close_stream" (func $proxy_close_stream (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $proxy_send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $proxy_http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_call" (func $proxy_grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_stream" (func $proxy_grpc_stream (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_send" (func $proxy_grpc_send (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_status" (func $proxy_get_status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $proxy_set_effective_context (param i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $proxy_call_foreign_function (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $proxy_define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $proxy_increment_metric (param i32 i64) (result i32)))
  (import "env" "proxy_record_metric" (func $proxy_record_metric (param i32 i64) (result i32)))
  (import "env" "proxy_get_metric" (func $proxy_get_metric (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
  (import "env" "pthread_equal" (func $pthread_equal (param i32 i32) (result i32)))
  (import "env" "emscripten_notify_memory_growth" (func $emscripten_notify_memory_growth (param i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $fd_seek (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
"#;

/// Scratch words the checks may write to (inside memory).
const P1: u32 = 1024;
const P2: u32 = 1032;
const P3: u32 = 1040;
/// Where the result letters are collected (`R:` prefix at OUT - 2).
const OUT: u32 = 4098;

/// Strings the checks use, placed in data segments: (name, bytes).
fn strings() -> Vec<(&'static str, Vec<u8>)> {
    let mut call_headers = Vec::new();
    push_pairs(
        &mut call_headers,
        &[(":method", "GET"), (":path", "/"), (":authority", "x")],
    );
    vec![
        ("plugin_name", b"plugin_name".to_vec()),
        ("path", b":path".to_vec()),
        ("k", b"k".to_vec()),
        ("v", b"v".to_vec()),
        ("q", b"q".to_vec()),
        ("m", b"m".to_vec()),
        ("cluster", b"upstream".to_vec()),
        ("unknown", b"nowhere".to_vec()),
        ("call_headers", call_headers),
        // Claims 5 pairs but carries none.
        ("truncated_pairs", vec![5, 0, 0, 0]),
        // Claims 4097 pairs (more than cpp-host's limit of 1024).
        ("too_many_pairs", vec![1, 16, 0, 0]),
        ("clear_route_cache", b"clear_route_cache".to_vec()),
        ("svc", b"svc".to_vec()),
    ]
}

fn push_pairs(out: &mut Vec<u8>, pairs: &[(&str, &str)]) {
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
}

/// Data segments and a `name -> (offset, len)` lookup.
struct Layout {
    data: String,
    at: Vec<(&'static str, u32, u32)>,
}

impl Layout {
    fn new() -> Layout {
        let mut data = String::new();
        let mut at = Vec::new();
        let mut off = 128u32;
        for (name, bytes) in strings() {
            let esc: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
            data.push_str(&format!("  (data (i32.const {off}) \"{esc}\")\n"));
            at.push((name, off, bytes.len() as u32));
            off += (bytes.len() as u32).div_ceil(16) * 16 + 16;
        }
        Layout { data, at }
    }
    /// `(i32.const ptr) (i32.const len)` of a string.
    fn s(&self, name: &str) -> String {
        let (_, off, len) = self
            .at
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("known string");
        format!("(i32.const {off}) (i32.const {len})")
    }
}

/// A module whose `proxy_on_request_headers` runs `body` (which may call
/// `$rec` with statuses), then logs `R:<letters>`. `allocator` is the body of
/// `proxy_on_memory_allocate (param $n i32) (result i32)`.
fn checks_module(layout: &Layout, body: &str, allocator: &str) -> String {
    format!(
        r#"(module
{IMPORTS}
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (global $out (mut i32) (i32.const {OUT}))
  (data (i32.const {prefix}) "R:")
{data}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    {allocator})
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func $rec (param $s i32)
    (i32.store8 (global.get $out) (i32.add (local.get $s) (i32.const 65)))
    (global.set $out (i32.add (global.get $out) (i32.const 1))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
{body}
    (drop (call $proxy_log (i32.const 2) (i32.const {prefix})
      (i32.sub (global.get $out) (i32.const {prefix}))))
    (i32.const 0))
)"#,
        prefix = OUT - 2,
        data = layout.data,
    )
}

/// A bump allocator over memory from 64 KiB up.
const BUMP: &str = r#"(local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p)"#;

/// One check: optional setup instructions, an i32 expression, the status.
struct Check {
    name: &'static str,
    setup: String,
    expr: String,
    expect: u32,
}

fn check(name: &'static str, expr: impl Into<String>, expect: u32) -> Check {
    Check {
        name,
        setup: String::new(),
        expr: expr.into(),
        expect,
    }
}

fn check_after(
    name: &'static str,
    setup: impl Into<String>,
    expr: impl Into<String>,
    expect: u32,
) -> Check {
    Check {
        name,
        setup: setup.into(),
        expr: expr.into(),
        expect,
    }
}

fn body_of(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| format!("    {}\n    (call $rec {})\n", c.setup, c.expr))
        .collect()
}

fn letters(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| char::from(b'A' + c.expect as u8))
        .collect()
}

/// Compares the logged letters with the checks, naming every mismatch.
fn assert_letters(checks: &[Check], logged: &str) {
    let got = logged
        .strip_prefix("R:")
        .unwrap_or_else(|| panic!("no result line, got {logged:?}"));
    let mut wrong = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        let g = got.as_bytes().get(i).map(|b| i64::from(*b) - 65);
        if g != Some(i64::from(c.expect)) {
            wrong.push(format!("{}: expected {}, got {:?}", c.name, c.expect, g));
        }
    }
    assert!(
        wrong.is_empty() && got.len() == checks.len(),
        "{} of {} checks differ (expected {}, logged {got}):\n{}",
        wrong.len(),
        checks.len(),
        letters(checks),
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------
// Running modules

/// Writes a module to a file of its own (the runtime caches by path).
fn module_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmesh-abi-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, text).expect("write module");
    path
}

struct Setup {
    worker: Worker,
    host: Arc<HostShared>,
}

fn start_with(
    runtime: Arc<Runtime>,
    name: &str,
    text: &str,
    tweak: impl FnOnce(&mut PluginConfig),
) -> Result<Setup, String> {
    let host = HostShared::new(Clock::virtual_at(1_700_000_000), LogLevel::Trace);
    host.add_cluster("upstream");
    let mut pc = PluginConfig::new("p", module_file(name, text), b"plugin-config".to_vec());
    pc.vm_config = b"vm-config".to_vec();
    pc.env = vec![("A".into(), "1".into())];
    tweak(&mut pc);
    let config = ChainConfig {
        plugins: vec![pc],
        ..Default::default()
    };
    let worker = Worker::new(0, runtime, host.clone(), config)?;
    Ok(Setup { worker, host })
}

fn start(name: &str, text: &str) -> Result<Setup, String> {
    start_with(Runtime::shared()?, name, text, |_| {})
}

fn request_headers() -> HeaderMap {
    HeaderMap::from_pairs([
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "x"),
    ])
}

/// Runs one headers-only stream; returns its events.
fn run_stream(s: &mut Setup) -> (u64, Vec<StreamEvent>) {
    let sid = s
        .worker
        .start_stream(request_headers(), true, PropertyMap::new());
    (sid, s.worker.take_events(sid))
}

fn status_of(events: &[StreamEvent]) -> Option<u32> {
    events.iter().find_map(|e| match e {
        StreamEvent::DownstreamHeaders { headers, .. } => {
            headers.get_str(":status").and_then(|s| s.parse().ok())
        }
        _ => None,
    })
}

fn reached_upstream(events: &[StreamEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, StreamEvent::UpstreamHeaders { .. }))
}

fn messages(host: &HostShared) -> Vec<String> {
    host.logs_since(0).into_iter().map(|l| l.message).collect()
}

fn result_line(host: &HostShared) -> String {
    messages(host)
        .into_iter()
        .rev()
        .find(|m| m.starts_with("R:"))
        .unwrap_or_else(|| {
            panic!(
                "the module logged no result line; log: {:?}",
                messages(host)
            )
        })
}

/// Runs `checks` in one stream's request headers callback and compares.
fn run_checks(name: &str, checks: &[Check]) -> (Setup, Vec<StreamEvent>) {
    let layout = Layout::new();
    let text = checks_module(&layout, &body_of(checks), BUMP);
    let mut s = start(name, &text).unwrap_or_else(|e| panic!("module {name} did not start: {e}"));
    let (_, events) = run_stream(&mut s);
    assert_letters(checks, &result_line(&s.host));
    (s, events)
}

// ---------------------------------------------------------------------
// Out-of-bounds pointers

#[test]
fn out_of_bounds_pointers_are_invalid_memory_access() {
    let l = Layout::new();
    let iov_bad_data = format!(
        "(i32.store (i32.const {P2}) {BAD}) (i32.store (i32.const {}) (i32.const 8))",
        P2 + 4
    );
    let iov_good = format!(
        "(i32.store (i32.const {P2}) (i32.const {OUT})) (i32.store (i32.const {}) (i32.const 1))",
        P2 + 4
    );
    let ctx = format!("(i32.const {P1}) (i32.const {P2})");
    let checks = vec![
        check("proxy_log message", format!("(call $proxy_log (i32.const 2) {BAD} (i32.const 8))"), INVALID_MEMORY_ACCESS),
        check("proxy_get_log_level result", format!("(call $proxy_get_log_level {BAD})"), INVALID_MEMORY_ACCESS),
        check(
            "proxy_get_current_time_nanoseconds result",
            format!("(call $proxy_get_current_time_nanoseconds {BAD})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_buffer_bytes result pointers",
            format!("(call $proxy_get_buffer_bytes (i32.const 6) (i32.const 0) (i32.const 10) {BAD} {BAD})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_buffer_status result pointers",
            format!("(call $proxy_get_buffer_status (i32.const 6) {BAD} {BAD})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_set_buffer_bytes data",
            format!("(call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) {BAD} (i32.const 8))"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_header_map_pairs result pointers",
            format!("(call $proxy_get_header_map_pairs (i32.const 0) {BAD} {BAD})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_set_header_map_pairs data",
            format!("(call $proxy_set_header_map_pairs (i32.const 0) {BAD} (i32.const 64))"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_header_map_size result",
            format!("(call $proxy_get_header_map_size (i32.const 0) {BAD})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_header_map_value key",
            format!("(call $proxy_get_header_map_value (i32.const 0) {BAD} (i32.const 5) {ctx})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_header_map_value result pointers",
            format!("(call $proxy_get_header_map_value (i32.const 0) {} {BAD} {BAD})", l.s("path")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_add_header_map_value key",
            format!("(call $proxy_add_header_map_value (i32.const 0) {BAD} (i32.const 4) {})", l.s("v")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_add_header_map_value value",
            format!("(call $proxy_add_header_map_value (i32.const 0) {} {BAD} (i32.const 4))", l.s("k")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_replace_header_map_value value",
            format!("(call $proxy_replace_header_map_value (i32.const 0) {} {BAD} (i32.const 4))", l.s("k")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_remove_header_map_value key",
            format!("(call $proxy_remove_header_map_value (i32.const 0) {BAD} (i32.const 4))"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_property path",
            format!("(call $proxy_get_property {BAD} (i32.const 8) {ctx})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_property result pointers",
            format!("(call $proxy_get_property {} {BAD} {BAD})", l.s("plugin_name")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_set_property path",
            format!("(call $proxy_set_property {BAD} (i32.const 8) {})", l.s("v")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_set_property value",
            format!("(call $proxy_set_property {} {BAD} (i32.const 8))", l.s("k")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_set_shared_data key",
            format!("(call $proxy_set_shared_data {BAD} (i32.const 4) {} (i32.const 0))", l.s("v")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_set_shared_data value",
            format!("(call $proxy_set_shared_data {} {BAD} (i32.const 4) (i32.const 0))", l.s("k")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_shared_data key",
            format!("(call $proxy_get_shared_data {BAD} (i32.const 4) {ctx} (i32.const {P3}))"),
            INVALID_MEMORY_ACCESS,
        ),
        check_after(
            "proxy_get_shared_data result pointers",
            format!("(drop (call $proxy_set_shared_data {} {} (i32.const 0)))", l.s("k"), l.s("v")),
            format!("(call $proxy_get_shared_data {} {BAD} {BAD} (i32.const {P3}))", l.s("k")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_shared_data cas pointer",
            format!("(call $proxy_get_shared_data {} {ctx} {BAD})", l.s("k")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_register_shared_queue name",
            format!("(call $proxy_register_shared_queue {BAD} (i32.const 4) (i32.const {P1}))"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_register_shared_queue token pointer",
            format!("(call $proxy_register_shared_queue {} {BAD})", l.s("q")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_resolve_shared_queue vm_id",
            format!("(call $proxy_resolve_shared_queue {BAD} (i32.const 4) {} (i32.const {P1}))", l.s("q")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_resolve_shared_queue token pointer",
            format!("(call $proxy_resolve_shared_queue (i32.const 0) (i32.const 0) {} {BAD})", l.s("q")),
            INVALID_MEMORY_ACCESS,
        ),
        check_after(
            "proxy_enqueue_shared_queue value",
            format!("(drop (call $proxy_register_shared_queue {} (i32.const {P1})))", l.s("q")),
            format!("(call $proxy_enqueue_shared_queue (i32.load (i32.const {P1})) {BAD} (i32.const 4))"),
            INVALID_MEMORY_ACCESS,
        ),
        check_after(
            "proxy_dequeue_shared_queue result pointers",
            format!("(drop (call $proxy_enqueue_shared_queue (i32.load (i32.const {P1})) {}))", l.s("v")),
            format!("(call $proxy_dequeue_shared_queue (i32.load (i32.const {P1})) {BAD} {BAD})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_send_local_response details",
            format!(
                "(call $proxy_send_local_response (i32.const 403) {BAD} (i32.const 4) {} (i32.const 0) (i32.const 0) (i32.const -1))",
                l.s("v")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_send_local_response body",
            format!(
                "(call $proxy_send_local_response (i32.const 403) {} {BAD} (i32.const 4) (i32.const 0) (i32.const 0) (i32.const -1))",
                l.s("v")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_send_local_response headers",
            format!(
                "(call $proxy_send_local_response (i32.const 403) {} {} {BAD} (i32.const 16) (i32.const -1))",
                l.s("v"),
                l.s("v")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_http_call cluster",
            format!(
                "(call $proxy_http_call {BAD} (i32.const 4) {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
                l.s("call_headers")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_http_call headers",
            format!(
                "(call $proxy_http_call {} {BAD} (i32.const 16) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
                l.s("cluster")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_http_call body",
            format!(
                "(call $proxy_http_call {} {} {BAD} (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
                l.s("cluster"),
                l.s("call_headers")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_http_call trailers",
            format!(
                "(call $proxy_http_call {} {} (i32.const 0) (i32.const 0) {BAD} (i32.const 16) (i32.const 1000) (i32.const {P1}))",
                l.s("cluster"),
                l.s("call_headers")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            // cpp-host writes the token before starting the call, so nothing is sent.
            "proxy_http_call token pointer",
            format!(
                "(call $proxy_http_call {} {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) {BAD})",
                l.s("cluster"),
                l.s("call_headers")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_grpc_call service",
            format!(
                "(call $proxy_grpc_call {BAD} (i32.const 4) {} {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
                l.s("svc"),
                l.s("svc")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_grpc_call method",
            format!(
                "(call $proxy_grpc_call {} {} {BAD} (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
                l.s("cluster"),
                l.s("svc")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_grpc_call message",
            format!(
                "(call $proxy_grpc_call {} {} {} (i32.const 0) (i32.const 0) {BAD} (i32.const 4) (i32.const 1000) (i32.const {P1}))",
                l.s("cluster"),
                l.s("svc"),
                l.s("svc")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            // The cluster is checked before the token is written (cpp-host's order).
            "proxy_grpc_call unknown cluster with a bad token pointer",
            format!(
                "(call $proxy_grpc_call {} {} {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) {BAD})",
                l.s("unknown"),
                l.s("svc"),
                l.s("svc")
            ),
            PARSE_FAILURE,
        ),
        check(
            "proxy_grpc_stream metadata",
            format!(
                "(call $proxy_grpc_stream {} {} {} {BAD} (i32.const 16) (i32.const {P1}))",
                l.s("cluster"),
                l.s("svc"),
                l.s("svc")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_grpc_send message",
            format!("(call $proxy_grpc_send (i32.const 2) {BAD} (i32.const 4) (i32.const 0))"),
            INVALID_MEMORY_ACCESS,
        ),
        check("proxy_get_status result pointers", format!("(call $proxy_get_status {BAD} {BAD} {BAD})"), INVALID_MEMORY_ACCESS),
        check(
            "proxy_call_foreign_function name",
            format!("(call $proxy_call_foreign_function {BAD} (i32.const 8) (i32.const 0) (i32.const 0) {ctx})"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_call_foreign_function arguments",
            format!(
                "(call $proxy_call_foreign_function {} {BAD} (i32.const 8) {ctx})",
                l.s("clear_route_cache")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_define_metric name",
            format!("(call $proxy_define_metric (i32.const 0) {BAD} (i32.const 4) (i32.const {P1}))"),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_define_metric id pointer",
            format!("(call $proxy_define_metric (i32.const 0) {} {BAD})", l.s("m")),
            INVALID_MEMORY_ACCESS,
        ),
        check_after(
            "proxy_get_metric result",
            format!("(drop (call $proxy_define_metric (i32.const 0) {} (i32.const {P1})))", l.s("m")),
            format!("(call $proxy_get_metric (i32.load (i32.const {P1})) {BAD})"),
            INVALID_MEMORY_ACCESS,
        ),
        // WASI: errno FAULT.
        check("fd_write iovec array", format!("(call $fd_write (i32.const 1) {BAD} (i32.const 1) (i32.const {P1}))"), WASI_FAULT),
        check_after(
            "fd_write iovec data",
            iov_bad_data,
            format!("(call $fd_write (i32.const 1) (i32.const {P2}) (i32.const 1) (i32.const {P1}))"),
            WASI_FAULT,
        ),
        check_after(
            "fd_write bytes-written pointer",
            iov_good,
            format!("(call $fd_write (i32.const 1) (i32.const {P2}) (i32.const 1) {BAD})"),
            WASI_FAULT,
        ),
        // proxy-wasm-cpp-host ignores a failed write here and reports success.
        check("fd_fdstat_get result", format!("(call $fd_fdstat_get (i32.const 1) {BAD})"), OK),
        check("environ_sizes_get results", format!("(call $environ_sizes_get {BAD} {BAD})"), WASI_FAULT),
        check("environ_get buffers", format!("(call $environ_get {BAD} {BAD})"), WASI_FAULT),
        check("args_sizes_get results", format!("(call $args_sizes_get {BAD} {BAD})"), WASI_FAULT),
        check("clock_time_get result", format!("(call $clock_time_get (i32.const 0) (i64.const 1) {BAD})"), WASI_FAULT),
        check("random_get buffer", format!("(call $random_get {BAD} (i32.const 16))"), WASI_FAULT),
    ];
    let (s, events) = run_checks("bad-pointers", &checks);
    // None of the refused calls did anything: no reply, no callout, the
    // request went upstream untouched.
    assert!(reached_upstream(&events), "{events:?}");
    assert_eq!(status_of(&events), None);
    let mut w = s.worker;
    assert!(
        w.take_callouts().is_empty(),
        "a refused call was dispatched"
    );
}

// ---------------------------------------------------------------------
// Unknown enum values

#[test]
fn unknown_enum_values_are_bad_argument() {
    let l = Layout::new();
    let ctx = format!("(i32.const {P1}) (i32.const {P2})");
    let mut checks = vec![
        check(
            "proxy_log level 6",
            format!("(call $proxy_log (i32.const 6) {})", l.s("v")),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_log level -1",
            format!("(call $proxy_log (i32.const -1) {})", l.s("v")),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_get_buffer_bytes type 9",
            format!(
                "(call $proxy_get_buffer_bytes (i32.const 9) (i32.const 0) (i32.const 4) {ctx})"
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_get_buffer_status type 9",
            format!("(call $proxy_get_buffer_status (i32.const 9) {ctx})"),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_set_buffer_bytes type 9",
            format!(
                "(call $proxy_set_buffer_bytes (i32.const 9) (i32.const 0) (i32.const 0) {})",
                l.s("v")
            ),
            BAD_ARGUMENT,
        ),
    ];
    checks.extend([
        check(
            "proxy_get_header_map_pairs type 8",
            format!("(call $proxy_get_header_map_pairs (i32.const 8) {ctx})"),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_set_header_map_pairs type 8",
            format!(
                "(call $proxy_set_header_map_pairs (i32.const 8) {})",
                l.s("call_headers")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_get_header_map_size type 8",
            format!("(call $proxy_get_header_map_size (i32.const 8) (i32.const {P1}))"),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_get_header_map_value type 8",
            format!(
                "(call $proxy_get_header_map_value (i32.const 8) {} {ctx})",
                l.s("path")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_add_header_map_value type 8",
            format!(
                "(call $proxy_add_header_map_value (i32.const 8) {} {})",
                l.s("k"),
                l.s("v")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_replace_header_map_value type 8",
            format!(
                "(call $proxy_replace_header_map_value (i32.const 8) {} {})",
                l.s("k"),
                l.s("v")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_remove_header_map_value type 8",
            format!(
                "(call $proxy_remove_header_map_value (i32.const 8) {})",
                l.s("k")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_continue_stream type 4",
            "(call $proxy_continue_stream (i32.const 4))",
            BAD_ARGUMENT,
        ),
        check(
            "proxy_close_stream type 4",
            "(call $proxy_close_stream (i32.const 4))",
            BAD_ARGUMENT,
        ),
        check(
            "proxy_define_metric type 3",
            format!(
                "(call $proxy_define_metric (i32.const 3) {} (i32.const {P1}))",
                l.s("m")
            ),
            BAD_ARGUMENT,
        ),
        // Metric ids carry their type in the low 2 bits; 3 is none.
        check(
            "proxy_increment_metric id of type 3",
            "(call $proxy_increment_metric (i32.const 7) (i64.const 1))",
            BAD_ARGUMENT,
        ),
        check(
            "proxy_get_metric id of type 3",
            format!("(call $proxy_get_metric (i32.const 7) (i32.const {P1}))"),
            BAD_ARGUMENT,
        ),
        // Envoy's recordMetric falls through to NOT_FOUND for it.
        check(
            "proxy_record_metric id of type 3",
            "(call $proxy_record_metric (i32.const 7) (i64.const 1))",
            NOT_FOUND,
        ),
        check(
            "proxy_set_effective_context unknown id",
            "(call $proxy_set_effective_context (i32.const 99999))",
            BAD_ARGUMENT,
        ),
        check(
            "clock_time_get clock 2 (process cputime)",
            format!("(call $clock_time_get (i32.const 2) (i64.const 1) (i32.const {P1}))"),
            WASI_NOTSUP,
        ),
        // Edges that are fine.
        check(
            "proxy_get_buffer_bytes start beyond the end",
            format!(
                "(call $proxy_get_buffer_bytes (i32.const 6) (i32.const 100) (i32.const 4) {ctx})"
            ),
            OK,
        ),
        check(
            "proxy_continue_stream downstream (no connection to resume)",
            "(call $proxy_continue_stream (i32.const 2))",
            OK,
        ),
        check(
            "proxy_continue_stream upstream",
            "(call $proxy_continue_stream (i32.const 3))",
            12,
        ),
    ]);
    let (_, events) = run_checks("bad-enums", &checks);
    assert!(reached_upstream(&events), "{events:?}");
}

// ---------------------------------------------------------------------
// Malformed serialised maps

#[test]
fn malformed_pairs_decode_to_an_empty_map() {
    let l = Layout::new();
    let checks = vec![
        // An empty header list has no :path, :method or :authority.
        check(
            "proxy_http_call with truncated header pairs",
            format!(
                "(call $proxy_http_call {} {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
                l.s("cluster"),
                l.s("truncated_pairs")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_http_call with more than 1024 pairs",
            format!(
                "(call $proxy_http_call {} {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
                l.s("cluster"),
                l.s("too_many_pairs")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_http_call with a negative timeout",
            format!(
                "(call $proxy_http_call {} {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1) (i32.const {P1}))",
                l.s("cluster"),
                l.s("call_headers")
            ),
            BAD_ARGUMENT,
        ),
        check(
            "proxy_send_local_response with truncated extra headers",
            format!(
                "(call $proxy_send_local_response (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) {} (i32.const -1))",
                l.s("truncated_pairs")
            ),
            OK,
        ),
    ];
    let (mut s, events) = run_checks("malformed-pairs", &checks);
    assert!(s.worker.take_callouts().is_empty());
    let headers = events
        .iter()
        .find_map(|e| match e {
            StreamEvent::DownstreamHeaders { headers, .. } => Some(headers.clone()),
            _ => None,
        })
        .expect("the local reply reached the client");
    assert_eq!(
        headers.to_string_pairs(),
        vec![(":status".to_string(), "403".to_string())]
    );
    assert!(!reached_upstream(&events));
}

#[test]
fn a_valid_call_after_the_refused_ones_is_dispatched() {
    // Guards the checks above: the same call with valid pointers works, so
    // the refusals are about the pointers and not the call.
    let l = Layout::new();
    let checks = vec![check(
        "proxy_http_call valid",
        format!(
            "(call $proxy_http_call {} {} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const {P1}))",
            l.s("cluster"),
            l.s("call_headers")
        ),
        OK,
    )];
    let (mut s, _) = run_checks("valid-call", &checks);
    let calls = s.worker.take_callouts();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call.cluster, "upstream");
}

// ---------------------------------------------------------------------
// The other WASI functions Envoy provides, with the errno it returns

#[test]
fn other_wasi_functions_answer_like_envoy() {
    let checks = vec![
        check("fd_read (no files to read)", format!("(call $fd_read (i32.const 0) (i32.const {P1}) (i32.const 0) (i32.const {P2}))"), 52),
        check("fd_seek (noted, succeeds)", format!("(call $fd_seek (i32.const 1) (i64.const 0) (i32.const 0) (i32.const {P1}))"), OK),
        check("fd_close (noted, succeeds)", "(call $fd_close (i32.const 1))", OK),
        check("fd_fdstat_get stdout", format!("(call $fd_fdstat_get (i32.const 1) (i32.const {P3}))"), OK),
        check(
            "fd_fdstat_get reports FD_WRITE rights",
            format!("(i64.eq (i64.load (i32.const {})) (i64.const 64))", P3 + 8),
            1,
        ),
        check("fd_fdstat_get fd 3", format!("(call $fd_fdstat_get (i32.const 3) (i32.const {P3}))"), 8),
        check("fd_prestat_get (no preopens)", format!("(call $fd_prestat_get (i32.const 3) (i32.const {P1}))"), 8),
        check(
            "fd_prestat_dir_name",
            format!("(call $fd_prestat_dir_name (i32.const 3) (i32.const {P1}) (i32.const 0))"),
            52,
        ),
        check(
            "path_open (no file system)",
            format!(
                "(call $path_open (i32.const 3) (i32.const 0) (i32.const {P1}) (i32.const 0) (i32.const 0) \
                 (i64.const 0) (i64.const 0) (i32.const 0) (i32.const {P2}))"
            ),
            44,
        ),
        check("args_get (no arguments)", format!("(call $args_get (i32.const {P1}) (i32.const {P2}))"), OK),
        check("fd_write to fd 3", format!("(call $fd_write (i32.const 3) (i32.const {P2}) (i32.const 0) (i32.const {P1}))"), 8),
        // The two `env` helpers cpp-host links for Emscripten-built modules.
        check("pthread_equal same", "(call $pthread_equal (i32.const 3) (i32.const 3))", 1),
        check("pthread_equal different", "(call $pthread_equal (i32.const 3) (i32.const 4))", 0),
        check_after(
            "emscripten_notify_memory_growth is a no-op",
            "(call $emscripten_notify_memory_growth (i32.const 0))",
            "(i32.const 0)",
            OK,
        ),
    ];
    run_checks("other-wasi", &checks);
}

// ---------------------------------------------------------------------
// Imports Envoy does not provide

/// A minimal ABI 0.2.x module importing `module.name` with `sig`.
fn importing(abi: &str, module: &str, name: &str, sig: &str) -> String {
    format!(
        r#"(module (import "{module}" "{name}" (func {sig}))
  (memory (export "memory") 1) {MALLOC} (func (export "proxy_abi_version_{abi}")))"#
    )
}

#[test]
fn modules_importing_what_envoy_does_not_provide_do_not_load() {
    // proxy-wasm-cpp-host links, per ABI version, only its version-specific
    // proxy_* functions; a module importing another version's names fails to
    // load ("Failed to load Wasm module due to a missing import"). (The WASI
    // set is cpp-host HEAD's FOR_ALL_WASI_FUNCTIONS, which includes
    // poll_oneoff, sched_yield, fd_filestat_get, clock_res_get and the sock_*
    // functions, so those load.)
    let cases = [
        ("0_2_1", "env", "proxy_continue_request", "(result i32)"),
        ("0_2_1", "env", "proxy_continue_response", "(result i32)"),
        ("0_2_1", "env", "proxy_clear_route_cache", "(result i32)"),
        (
            "0_2_1",
            "env",
            "proxy_get_configuration",
            "(param i32 i32) (result i32)",
        ),
        (
            "0_2_0",
            "env",
            "proxy_get_log_level",
            "(param i32) (result i32)",
        ),
    ];
    let mut loaded = Vec::new();
    for (abi, module, name, sig) in cases {
        let text = importing(abi, module, name, sig);
        match start(&format!("import-{module}-{name}-{abi}"), &text) {
            Ok(_) => loaded.push(format!("{module}.{name} (ABI {abi})")),
            Err(e) => assert!(
                e.contains("missing import") && e.contains(name),
                "{name}: {e}"
            ),
        }
    }
    assert!(
        loaded.is_empty(),
        "these imports loaded, Envoy refuses them: {loaded:?}"
    );
}

#[test]
fn modules_importing_only_what_envoy_provides_load() {
    for (abi, module, name, sig) in [
        (
            "0_2_1",
            "env",
            "proxy_get_log_level",
            "(param i32) (result i32)",
        ),
        (
            "0_2_0",
            "env",
            "proxy_continue_stream",
            "(param i32) (result i32)",
        ),
        (
            "0_2_1",
            "wasi_unstable",
            "fd_write",
            "(param i32 i32 i32 i32) (result i32)",
        ),
        (
            "0_2_1",
            "wasi_snapshot_preview1",
            "path_open",
            "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
        ),
        (
            "0_2_1",
            "env",
            "pthread_equal",
            "(param i32 i32) (result i32)",
        ),
    ] {
        let text = importing(abi, module, name, sig);
        if let Err(e) = start(&format!("import-ok-{module}-{name}-{abi}"), &text) {
            panic!("{module}.{name} (ABI {abi}) did not load: {e}");
        }
    }
}

// ---------------------------------------------------------------------
// Modules that cannot start

fn minimal(exports: &str) -> String {
    format!(
        r#"(module
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  {exports})"#
    )
}

const MALLOC: &str =
    r#"(func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))"#;
const ABI: &str = r#"(func (export "proxy_abi_version_0_2_1"))"#;

fn start_error(name: &str, text: &str) -> String {
    match start(name, text) {
        Ok(_) => panic!("module {name} started, expected a failure"),
        Err(e) => e,
    }
}

#[test]
fn a_module_without_an_allocator_does_not_start() {
    let e = start_error("no-malloc", &minimal(ABI));
    assert!(e.contains("missing malloc function"), "{e}");
}

#[test]
fn a_module_without_the_abi_marker_does_not_start() {
    let e = start_error("no-abi", &minimal(MALLOC));
    assert!(e.contains("ABI version"), "{e}");
}

#[test]
fn abi_0_2_0_modules_start() {
    let text = minimal(&format!(
        "{MALLOC} (func (export \"proxy_abi_version_0_2_0\"))"
    ));
    let mut s = start("abi-020", &text).expect("an ABI 0.2.0 module starts");
    let (_, events) = run_stream(&mut s);
    assert!(reached_upstream(&events));
}

#[test]
fn a_module_without_memory_does_not_start() {
    let text = format!("(module {MALLOC} {ABI})");
    let e = start_error("no-memory", &text);
    assert!(e.contains("memory"), "{e}");
}

#[test]
fn a_module_importing_an_unknown_host_function_does_not_load() {
    let text = format!(
        r#"(module (import "env" "proxy_no_such_function" (func (param i32) (result i32)))
  (memory (export "memory") 1) {MALLOC} {ABI})"#
    );
    let e = start_error("unknown-import", &text);
    assert!(
        e.contains("missing import") && e.contains("proxy_no_such_function"),
        "{e}"
    );
}

#[test]
fn an_import_with_the_wrong_signature_does_not_load() {
    let text = format!(
        r#"(module (import "env" "proxy_log" (func (param i32) (result i32)))
  (memory (export "memory") 1) {MALLOC} {ABI})"#
    );
    let e = start_error("wrong-import-signature", &text);
    assert!(e.contains("proxy_log"), "{e}");
}

#[test]
fn an_export_with_the_wrong_signature_does_not_start() {
    let text = minimal(&format!(
        "{MALLOC} {ABI} (func (export \"proxy_on_request_headers\") (param i32 i32) (result i32) (i32.const 0))"
    ));
    let e = start_error("wrong-export-signature", &text);
    assert!(
        e.contains("proxy_on_request_headers") && e.contains("wrong signature"),
        "{e}"
    );
}

#[test]
fn garbage_bytes_do_not_load() {
    let e = start_error("garbage", "this is not a wasm module");
    assert!(e.contains("Failed to load Wasm module"), "{e}");
}

#[test]
fn a_trap_in_initialize_fails_the_start() {
    let text = minimal(&format!(
        "{MALLOC} {ABI} (func (export \"_initialize\") unreachable)"
    ));
    let e = start_error("trap-initialize", &text);
    assert!(
        e.contains("_initialize") && e.contains("unreachable"),
        "{e}"
    );
}

#[test]
fn on_vm_start_and_on_configure_returning_false_fail_the_start() {
    let vm = minimal(&format!(
        "{MALLOC} {ABI} (func (export \"proxy_on_vm_start\") (param i32 i32) (result i32) (i32.const 0))"
    ));
    let e = start_error("vm-start-false", &vm);
    assert!(e.contains("proxy_on_vm_start returned false"), "{e}");
    let cfg = minimal(&format!(
        "{MALLOC} {ABI} (func (export \"proxy_on_configure\") (param i32 i32) (result i32) (i32.const 0))"
    ));
    let e = start_error("configure-false", &cfg);
    assert!(e.contains("proxy_on_configure returned false"), "{e}");
}

// ---------------------------------------------------------------------
// Allocators that misbehave

fn allocator_checks() -> Vec<Check> {
    let l = Layout::new();
    let ctx = format!("(i32.const {P1}) (i32.const {P2})");
    vec![
        check(
            "proxy_get_header_map_value needs memory",
            format!(
                "(call $proxy_get_header_map_value (i32.const 0) {} {ctx})",
                l.s("path")
            ),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_property needs memory",
            format!("(call $proxy_get_property {} {ctx})", l.s("plugin_name")),
            INVALID_MEMORY_ACCESS,
        ),
        check(
            "proxy_get_header_map_pairs needs memory",
            format!("(call $proxy_get_header_map_pairs (i32.const 0) {ctx})"),
            INVALID_MEMORY_ACCESS,
        ),
        // Nothing to copy: no allocation, fine.
        check(
            "empty results need no memory",
            format!("(call $proxy_get_header_map_pairs (i32.const 2) {ctx})"),
            OK,
        ),
    ]
}

fn run_with_allocator(name: &str, allocator: &str) -> (Setup, Vec<StreamEvent>) {
    let checks = allocator_checks();
    let layout = Layout::new();
    let text = checks_module(&layout, &body_of(&checks), allocator);
    let mut s = start(name, &text).unwrap_or_else(|e| panic!("{e}"));
    let (_, events) = run_stream(&mut s);
    assert_letters(&checks, &result_line(&s.host));
    (s, events)
}

#[test]
fn an_allocator_returning_null_is_invalid_memory_access() {
    let (_, events) = run_with_allocator("malloc-null", "(i32.const 0)");
    assert!(reached_upstream(&events));
}

#[test]
fn an_allocator_returning_memory_outside_the_module_is_invalid_memory_access() {
    let (_, events) = run_with_allocator("malloc-oob", "(i32.const 0xffffff00)");
    assert!(reached_upstream(&events));
    let (_, events) = run_with_allocator("malloc-end", "(i32.const 262144)"); // the end of the 4 pages
    assert!(reached_upstream(&events));
}

#[test]
fn a_trapping_allocator_fails_the_vm() {
    // cpp-host runs malloc like any call into the VM: a trap there fails the
    // VM, the host call returns INVALID_MEMORY_ACCESS, and the stream is then
    // failed by the failure policy (503 with fail_closed).
    let checks = allocator_checks();
    let layout = Layout::new();
    let text = checks_module(&layout, &body_of(&checks[..1]), "unreachable");
    let mut s = start("malloc-trap", &text).unwrap_or_else(|e| panic!("{e}"));
    let (_, events) = run_stream(&mut s);
    assert_eq!(status_of(&events), Some(503), "{events:?}");
    assert!(s.worker.plugin_failed("p"));
}

// ---------------------------------------------------------------------
// Traps and endless loops

fn headers_callback(body: &str) -> String {
    minimal(&format!(
        "{MALLOC} {ABI} (func (export \"proxy_on_request_headers\") (param i32 i32 i32) (result i32) {body})"
    ))
}

#[test]
fn a_trap_in_a_callback_fails_the_stream_and_the_vm() {
    let text = headers_callback("unreachable");
    let mut s = start("trap-headers", &text).expect("starts");
    let (_, events) = run_stream(&mut s);
    assert_eq!(status_of(&events), Some(503));
    assert!(!reached_upstream(&events));
    assert!(s.worker.plugin_failed("p"));
    let logs = messages(&s.host);
    assert!(
        logs.iter()
            .any(|m| m.contains("proxy_on_request_headers") && m.contains("unreachable")),
        "{logs:?}"
    );
    // fail_closed: the next stream gets 503 too.
    let (_, events) = run_stream(&mut s);
    assert_eq!(status_of(&events), Some(503));
}

#[test]
fn a_trap_in_context_create_fails_the_stream() {
    let text = minimal(&format!(
        "{MALLOC} {ABI} (func (export \"proxy_on_context_create\") (param $c i32) (param $p i32) \
         (if (i32.ne (local.get $p) (i32.const 0)) (then unreachable)))"
    ));
    let mut s = start("trap-context-create", &text).expect("root context creation does not trap");
    let (_, events) = run_stream(&mut s);
    assert_eq!(status_of(&events), Some(503), "{events:?}");
}

#[test]
fn fail_open_skips_a_trapping_plugin() {
    let text = headers_callback("unreachable");
    let mut s = start_with(
        Runtime::shared().expect("runtime"),
        "trap-open",
        &text,
        |pc| pc.failure_policy = FailurePolicy::FailOpen,
    )
    .expect("starts");
    for _ in 0..2 {
        let (_, events) = run_stream(&mut s);
        assert!(reached_upstream(&events), "{events:?}");
    }
}

#[test]
fn an_endless_loop_is_interrupted() {
    let runtime = Runtime::new(Duration::from_millis(200)).expect("runtime");
    let text = headers_callback("(loop $l (br $l)) (i32.const 0)");
    let mut s = start_with(runtime, "endless-loop", &text, |_| {}).expect("starts");
    let t0 = Instant::now();
    let (_, events) = run_stream(&mut s);
    let took = t0.elapsed();
    assert_eq!(status_of(&events), Some(503), "{events:?}");
    assert!(took < Duration::from_secs(5), "interrupting took {took:?}");
    assert!(
        took >= Duration::from_millis(150),
        "interrupted too early: {took:?}"
    );
    let logs = messages(&s.host);
    assert!(logs.iter().any(|m| m.contains("interrupted")), "{logs:?}");
    assert!(s.worker.plugin_failed("p"));
}

#[test]
fn an_endless_loop_at_start_is_interrupted() {
    let runtime = Runtime::new(Duration::from_millis(200)).expect("runtime");
    let text = minimal(&format!(
        "{MALLOC} {ABI} (func (export \"_initialize\") (loop $l (br $l)))"
    ));
    let t0 = Instant::now();
    let e = match start_with(runtime, "endless-init", &text, |_| {}) {
        Ok(_) => panic!("started"),
        Err(e) => e,
    };
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(e.contains("interrupted"), "{e}");
}
