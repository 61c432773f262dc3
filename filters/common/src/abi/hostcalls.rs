//! Safe wrappers of the Proxy-Wasm ABI v0.2.1 host functions (wasm32 only).
//!
//! Every wrapper returns the host's status as `Result<_, Status>` and never
//! panics: a status the host may legitimately answer (`NOT_FOUND` for a
//! missing header or property, `BAD_ARGUMENT` for a map that is not
//! available in this callback, `CAS_MISMATCH`, ...) is the caller's to
//! handle. Results are bytes ([`HostBuf`], freed on drop); nothing is
//! converted to `String` behind the caller's back. Names and values are
//! passed as `&[u8]`/`&str` straight from the caller's memory.
//!
//! Only functions that Envoy (proxy-wasm-cpp-host) registers for ABI 0.2.1
//! are declared; an unused one adds no import to the module.

use super::memory::HostBuf;
use super::pairs;
use super::types::{BufferType, LogLevel, MapType, MetricType, Status, StreamType};
use std::ptr::null_mut;

/// A host call's result.
pub type Result<T> = std::result::Result<T, Status>;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_set_header_map_pairs(map_type: u32, map_data: *const u8, map_size: usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_register_shared_queue(
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id_data: *const u8,
        vm_id_size: usize,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_done() -> u32;
    fn proxy_call_foreign_function(
        name_data: *const u8,
        name_size: usize,
        args_data: *const u8,
        args_size: usize,
        return_results_data: *mut *mut u8,
        return_results_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_metric(metric_id: u32, return_value: *mut u64) -> u32;
    fn proxy_get_status(
        return_code: *mut u32,
        return_message_data: *mut *mut u8,
        return_message_size: *mut usize,
    ) -> u32;
}

/// Runs a host call that returns a buffer through two out-pointers.
#[inline]
fn with_buffer(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<HostBuf> {
    let (mut data, mut size) = (null_mut(), 0usize);
    let status = call(&mut data, &mut size);
    // SAFETY: on any status the host may have allocated the result with
    // `proxy_on_memory_allocate`; take it over so that it is freed.
    let buf = unsafe { HostBuf::from_raw(data, size) };
    Status::check(status).map(|()| buf)
}

/// `NOT_FOUND` as `None`.
#[inline]
fn optional<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Status::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

// ---- logging -------------------------------------------------------------

/// `proxy_log`, unconditionally (see [`super::log`] for level-checked logging).
pub fn log(level: LogLevel, message: &str) -> Result<()> {
    // SAFETY: `message` is live for the call.
    Status::check(unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) })
}

/// `proxy_get_log_level`: the level below which the host drops log lines.
pub fn get_log_level() -> Result<LogLevel> {
    let mut level = 0u32;
    // SAFETY: out-pointer to a local.
    Status::check(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(LogLevel::from_u32(level))
}

// ---- time ----------------------------------------------------------------

/// The host clock, nanoseconds since the Unix epoch (0 if unavailable).
pub fn now_nanos() -> u64 {
    let mut t = 0u64;
    // SAFETY: out-pointer to a local.
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        0 => t,
        _ => 0,
    }
}

/// Sets the root context's tick period (0 stops ticks).
pub fn set_tick_period_ms(ms: u32) -> Result<()> {
    // SAFETY: plain values.
    Status::check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

// ---- buffers -------------------------------------------------------------

/// Up to `max_size` bytes of a buffer from `start`.
pub fn get_buffer(kind: BufferType, start: usize, max_size: usize) -> Result<HostBuf> {
    // SAFETY: out-pointers to locals.
    with_buffer(|d, s| unsafe { proxy_get_buffer_bytes(kind as u32, start, max_size, d, s) })
}

/// Replaces `size` bytes of a buffer from `start` with `data`.
pub fn set_buffer(kind: BufferType, start: usize, size: usize, data: &[u8]) -> Result<()> {
    // SAFETY: `data` is live for the call.
    Status::check(unsafe {
        proxy_set_buffer_bytes(kind as u32, start, size, data.as_ptr(), data.len())
    })
}

/// The plugin's configuration (`proxy_on_configure` only).
pub fn plugin_configuration() -> Result<HostBuf> {
    get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
}

// ---- header maps ---------------------------------------------------------

/// Every pair of a header map, serialised; read it with
/// [`pairs::Pairs`]. `BAD_ARGUMENT` when the map is not available in this
/// callback (Envoy: e.g. request headers from a response callback, or
/// response trailers of a stream that has none).
pub fn get_map(map: MapType) -> Result<HostBuf> {
    // SAFETY: out-pointers to locals.
    with_buffer(|d, s| unsafe { proxy_get_header_map_pairs(map as u32, d, s) })
}

/// The value of one header (`None` when absent). Envoy joins the values of
/// a repeated header with `,` here.
pub fn get_map_value(map: MapType, name: &str) -> Result<Option<HostBuf>> {
    // SAFETY: `name` is live; out-pointers to locals.
    optional(with_buffer(|d, s| unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), d, s)
    }))
}

/// Replaces the whole map with serialised pairs ([`pairs::serialize`]).
pub fn set_map(map: MapType, serialized: &[u8]) -> Result<()> {
    // SAFETY: `serialized` is live for the call.
    Status::check(unsafe {
        proxy_set_header_map_pairs(map as u32, serialized.as_ptr(), serialized.len())
    })
}

/// Replaces every value of `name` with `value` (adds it when absent).
pub fn replace_map_value(map: MapType, name: &str, value: &[u8]) -> Result<()> {
    // SAFETY: both buffers are live for the call.
    Status::check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Appends a value of `name`.
pub fn add_map_value(map: MapType, name: &str, value: &[u8]) -> Result<()> {
    // SAFETY: both buffers are live for the call.
    Status::check(unsafe {
        proxy_add_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes every value of `name`.
pub fn remove_map_value(map: MapType, name: &str) -> Result<()> {
    // SAFETY: `name` is live for the call.
    Status::check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

// ---- properties ----------------------------------------------------------

/// A property by its serialised path: segments separated by NUL
/// (`b"source\0address"`); a one-segment path is the name itself. `None`
/// when the host does not have it. Values are raw bytes (Envoy: strings as
/// is, integers 8-byte little-endian, booleans one byte).
pub fn get_property(path: &[u8]) -> Result<Option<HostBuf>> {
    // SAFETY: `path` is live; out-pointers to locals.
    optional(with_buffer(|d, s| unsafe {
        proxy_get_property(path.as_ptr(), path.len(), d, s)
    }))
}

/// A property by its segments (`&["source", "address"]`), the path built
/// on the stack when short.
pub fn get_property_path(segments: &[&str]) -> Result<Option<HostBuf>> {
    let len = segments.iter().map(|s| s.len() + 1).sum::<usize>();
    let mut stack = [0u8; 128];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    let mut at = 0;
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            buf[at] = 0;
            at += 1;
        }
        buf[at..at + seg.len()].copy_from_slice(seg.as_bytes());
        at += seg.len();
    }
    get_property(&buf[..at])
}

/// Sets a property (a one-segment name is per-stream filter state, which
/// later filters read back by that name; Envoy's `wasm.<name>`).
pub fn set_property(path: &[u8], value: &[u8]) -> Result<()> {
    // SAFETY: both buffers are live for the call.
    Status::check(unsafe {
        proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len())
    })
}

// ---- shared data and queues ----------------------------------------------

/// A shared-data value and its CAS token; `None` when the key is absent.
pub fn get_shared_data(key: &str) -> Result<Option<(HostBuf, u32)>> {
    let mut cas = 0u32;
    // SAFETY: `key` is live; out-pointers to locals.
    let r = with_buffer(|d, s| unsafe {
        proxy_get_shared_data(key.as_ptr(), key.len(), d, s, &mut cas)
    });
    optional(r).map(|v| v.map(|b| (b, cas)))
}

/// Writes a shared-data value; with a non-zero `cas`, only if the value is
/// still the one read with that token (else `Err(CasMismatch)`).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<()> {
    // SAFETY: both buffers are live for the call.
    Status::check(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// Registers a shared queue of this VM (its root context is notified with
/// `proxy_on_queue_ready`).
pub fn register_shared_queue(name: &str) -> Result<u32> {
    let mut id = 0;
    // SAFETY: `name` is live; out-pointer to a local.
    Status::check(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// The id of a queue registered by `vm_id`, if any.
pub fn resolve_shared_queue(vm_id: &str, name: &str) -> Result<Option<u32>> {
    let mut id = 0;
    // SAFETY: both buffers are live; out-pointer to a local.
    optional(Status::check(unsafe {
        proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    }))
    .map(|o| o.map(|()| id))
}

/// The next item of a queue; `None` when it is empty.
pub fn dequeue_shared_queue(queue: u32) -> Result<Option<HostBuf>> {
    // SAFETY: out-pointers to locals.
    match with_buffer(|d, s| unsafe { proxy_dequeue_shared_queue(queue, d, s) }) {
        Ok(b) => Ok(Some(b)),
        Err(Status::Empty) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Appends an item to a queue.
pub fn enqueue_shared_queue(queue: u32, value: &[u8]) -> Result<()> {
    // SAFETY: `value` is live for the call.
    Status::check(unsafe { proxy_enqueue_shared_queue(queue, value.as_ptr(), value.len()) })
}

// ---- streams -------------------------------------------------------------

/// Resumes a paused stream of the effective context.
pub fn continue_stream(stream: StreamType) -> Result<()> {
    // SAFETY: plain value.
    Status::check(unsafe { proxy_continue_stream(stream as u32) })
}

/// Closes (resets) a stream of the effective context.
pub fn close_stream(stream: StreamType) -> Result<()> {
    // SAFETY: plain value.
    Status::check(unsafe { proxy_close_stream(stream as u32) })
}

/// Answers the request of the effective context locally.
///
/// `details` are the response code details (Envoy's `%RESPONSE_CODE_DETAILS%`,
/// e.g. `rbac_access_denied_matched_policy[none]`); `headers` are serialised
/// pairs ([`pairs::serialize`], or [`pairs::EMPTY`]); `grpc_status` is sent as
/// `grpc-status` of a gRPC reply (`None`: mapped from the HTTP status).
pub fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[u8],
    grpc_status: Option<u32>,
) -> Result<()> {
    let grpc = grpc_status.map_or(-1, |g| g as i32);
    // SAFETY: every pointer/length pair describes a live buffer.
    Status::check(unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            grpc,
        )
    })
}

/// Dispatches an HTTP call to cluster `upstream` (headers must include
/// `:method`, `:path` and `:authority`); the answer comes to this context's
/// `on_http_call_response` with the returned token.
pub fn http_call(
    upstream: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    trailers: &[(&str, &str)],
    timeout_ms: u32,
) -> Result<u32> {
    let h = pairs::serialize(headers);
    let t = pairs::serialize(trailers);
    let mut token = 0u32;
    // SAFETY: every pointer/length pair describes a live buffer.
    Status::check(unsafe {
        proxy_http_call(
            upstream.as_ptr(),
            upstream.len(),
            h.as_ptr(),
            h.len(),
            body.as_ptr(),
            body.len(),
            t.as_ptr(),
            t.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

/// Makes `context_id` the context that later host calls act on (until the
/// callback returns); `Err(BadArgument)`/`NotFound` when it is gone.
pub fn set_effective_context(context_id: u32) -> Result<()> {
    // SAFETY: plain value.
    Status::check(unsafe { proxy_set_effective_context(context_id) })
}

/// Tells the host that a context that answered `false` from `on_done` is done.
pub fn done() -> Result<()> {
    // SAFETY: no arguments.
    Status::check(unsafe { proxy_done() })
}

/// The status of the last HTTP or gRPC call response: code and message.
pub fn get_status() -> Result<(u32, HostBuf)> {
    let mut code = 0u32;
    // SAFETY: out-pointers to locals.
    let msg = with_buffer(|d, s| unsafe { proxy_get_status(&mut code, d, s) })?;
    Ok((code, msg))
}

/// Calls a host-specific function (Envoy: `clear_route_cache`, ...);
/// `NOT_FOUND` when the host has none of that name.
pub fn call_foreign_function(name: &str, args: &[u8]) -> Result<HostBuf> {
    // SAFETY: both buffers are live; out-pointers to locals.
    with_buffer(|d, s| unsafe {
        proxy_call_foreign_function(name.as_ptr(), name.len(), args.as_ptr(), args.len(), d, s)
    })
}

// ---- metrics -------------------------------------------------------------

/// Defines (or finds) a metric; its id.
pub fn define_metric(kind: MetricType, name: &str) -> Result<u32> {
    let mut id = 0;
    // SAFETY: `name` is live; out-pointer to a local.
    Status::check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Adds `delta` to a counter or gauge.
pub fn increment_metric(id: u32, delta: i64) -> Result<()> {
    // SAFETY: plain values.
    Status::check(unsafe { proxy_increment_metric(id, delta) })
}

/// Sets a gauge or records a histogram sample.
pub fn record_metric(id: u32, value: u64) -> Result<()> {
    // SAFETY: plain values.
    Status::check(unsafe { proxy_record_metric(id, value) })
}

/// A counter's or gauge's value.
pub fn get_metric(id: u32) -> Result<u64> {
    let mut v = 0u64;
    // SAFETY: out-pointer to a local.
    Status::check(unsafe { proxy_get_metric(id, &mut v) })?;
    Ok(v)
}
