//! Raw host calls returning the host's status code as a number, so the probe
//! can report exactly what the host answered (the SDK's wrappers panic on
//! statuses they do not expect). Some imports are also declared by the SDK
//! or by std with other Rust types for the same wasm signature.
#![allow(clashing_extern_declarations)]

use std::ptr::null_mut;

/// A pointer far outside any linear memory the probe has.
pub const BAD: usize = 0xFFFF_FFF0;

#[link(wasm_import_module = "env")]
extern "C" {
    pub fn proxy_log(level: u32, ptr: *const u8, len: usize) -> u32;
    pub fn proxy_get_log_level(level: *mut u32) -> u32;
    pub fn proxy_get_current_time_nanoseconds(t: *mut u64) -> u32;
    pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    pub fn proxy_get_buffer_bytes(
        bt: u32,
        start: usize,
        max: usize,
        pp: *mut *mut u8,
        sp: *mut usize,
    ) -> u32;
    pub fn proxy_get_buffer_status(bt: u32, len: *mut usize, flags: *mut u32) -> u32;
    pub fn proxy_set_buffer_bytes(
        bt: u32,
        start: usize,
        size: usize,
        p: *const u8,
        l: usize,
    ) -> u32;
    pub fn proxy_get_header_map_pairs(mt: u32, pp: *mut *mut u8, sp: *mut usize) -> u32;
    pub fn proxy_set_header_map_pairs(mt: u32, p: *const u8, l: usize) -> u32;
    pub fn proxy_get_header_map_size(mt: u32, sp: *mut usize) -> u32;
    pub fn proxy_get_header_map_value(
        mt: u32,
        kp: *const u8,
        kl: usize,
        vp: *mut *mut u8,
        vl: *mut usize,
    ) -> u32;
    pub fn proxy_add_header_map_value(
        mt: u32,
        kp: *const u8,
        kl: usize,
        vp: *const u8,
        vl: usize,
    ) -> u32;
    pub fn proxy_replace_header_map_value(
        mt: u32,
        kp: *const u8,
        kl: usize,
        vp: *const u8,
        vl: usize,
    ) -> u32;
    pub fn proxy_remove_header_map_value(mt: u32, kp: *const u8, kl: usize) -> u32;
    pub fn proxy_get_property(pp: *const u8, pl: usize, vp: *mut *mut u8, vl: *mut usize) -> u32;
    pub fn proxy_set_property(pp: *const u8, pl: usize, vp: *const u8, vl: usize) -> u32;
    pub fn proxy_get_shared_data(
        kp: *const u8,
        kl: usize,
        vp: *mut *mut u8,
        vl: *mut usize,
        cas: *mut u32,
    ) -> u32;
    pub fn proxy_set_shared_data(
        kp: *const u8,
        kl: usize,
        vp: *const u8,
        vl: usize,
        cas: u32,
    ) -> u32;
    pub fn proxy_register_shared_queue(np: *const u8, nl: usize, token: *mut u32) -> u32;
    pub fn proxy_resolve_shared_queue(
        vp: *const u8,
        vl: usize,
        np: *const u8,
        nl: usize,
        token: *mut u32,
    ) -> u32;
    pub fn proxy_enqueue_shared_queue(token: u32, vp: *const u8, vl: usize) -> u32;
    pub fn proxy_dequeue_shared_queue(token: u32, vp: *mut *mut u8, vl: *mut usize) -> u32;
    pub fn proxy_continue_stream(st: u32) -> u32;
    pub fn proxy_close_stream(st: u32) -> u32;
    pub fn proxy_send_local_response(
        code: u32,
        dp: *const u8,
        dl: usize,
        bp: *const u8,
        bl: usize,
        hp: *const u8,
        hl: usize,
        grpc: i32,
    ) -> u32;
    pub fn proxy_http_call(
        up: *const u8,
        ul: usize,
        hp: *const u8,
        hl: usize,
        bp: *const u8,
        bl: usize,
        tp: *const u8,
        tl: usize,
        timeout: u32,
        token: *mut u32,
    ) -> u32;
    pub fn proxy_grpc_send(token: u32, mp: *const u8, ml: usize, end: u32) -> u32;
    pub fn proxy_grpc_cancel(token: u32) -> u32;
    pub fn proxy_grpc_close(token: u32) -> u32;
    pub fn proxy_get_status(code: *mut u32, mp: *mut *mut u8, ml: *mut usize) -> u32;
    pub fn proxy_set_effective_context(ctx: u32) -> u32;
    pub fn proxy_call_foreign_function(
        np: *const u8,
        nl: usize,
        ap: *const u8,
        al: usize,
        rp: *mut *mut u8,
        rl: *mut usize,
    ) -> u32;
    pub fn proxy_done() -> u32;
    pub fn proxy_define_metric(kind: u32, np: *const u8, nl: usize, id: *mut u32) -> u32;
    pub fn proxy_increment_metric(id: u32, delta: i64) -> u32;
    pub fn proxy_record_metric(id: u32, value: u64) -> u32;
    pub fn proxy_get_metric(id: u32, value: *mut u64) -> u32;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    pub fn fd_write(fd: u32, iovs: *const u32, n: usize, written: *mut usize) -> u32;
    pub fn clock_time_get(id: u32, precision: u64, out: *mut u64) -> u32;
    pub fn clock_res_get(id: u32, out: *mut u64) -> u32;
    pub fn random_get(buf: *mut u8, len: usize) -> u32;
    pub fn environ_sizes_get(count: *mut usize, size: *mut usize) -> u32;
    pub fn args_sizes_get(count: *mut usize, size: *mut usize) -> u32;
    pub fn proc_exit(code: u32);
}

/// Takes ownership of bytes the host allocated in this module.
///
/// # Safety
/// `ptr`/`len` must come from the host's `proxy_on_memory_allocate` call.
unsafe fn take(ptr: *mut u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        Vec::new()
    } else {
        Vec::from_raw_parts(ptr, len, len)
    }
}

/// Result of a host call: the value or the status code.
pub type Res<T> = Result<T, u32>;

fn ok<T>(status: u32, v: impl FnOnce() -> T) -> Res<T> {
    if status == 0 {
        Ok(v())
    } else {
        Err(status)
    }
}

pub fn log(level: u32, msg: &str) -> u32 {
    unsafe { proxy_log(level, msg.as_ptr(), msg.len()) }
}

pub fn log_level() -> Res<u32> {
    let mut l = 0;
    let s = unsafe { proxy_get_log_level(&mut l) };
    ok(s, || l)
}

pub fn now_ns() -> Res<u64> {
    let mut t = 0;
    let s = unsafe { proxy_get_current_time_nanoseconds(&mut t) };
    ok(s, || t)
}

pub fn set_tick(ms: u32) -> u32 {
    unsafe { proxy_set_tick_period_milliseconds(ms) }
}

pub fn get_buffer(bt: u32, start: usize, max: usize) -> Res<Vec<u8>> {
    let (mut p, mut l) = (null_mut(), 0);
    let s = unsafe { proxy_get_buffer_bytes(bt, start, max, &mut p, &mut l) };
    // Take the allocation even on failure so nothing leaks.
    let v = unsafe { take(p, l) };
    ok(s, || v)
}

pub fn buffer_status(bt: u32) -> Res<(usize, u32)> {
    let (mut l, mut f) = (0, 0);
    let s = unsafe { proxy_get_buffer_status(bt, &mut l, &mut f) };
    ok(s, || (l, f))
}

pub fn set_buffer(bt: u32, start: usize, size: usize, data: &[u8]) -> u32 {
    unsafe { proxy_set_buffer_bytes(bt, start, size, data.as_ptr(), data.len()) }
}

pub fn get_pairs(mt: u32) -> Res<Vec<u8>> {
    let (mut p, mut l) = (null_mut(), 0);
    let s = unsafe { proxy_get_header_map_pairs(mt, &mut p, &mut l) };
    let v = unsafe { take(p, l) };
    ok(s, || v)
}

pub fn set_pairs(mt: u32, serialized: &[u8]) -> u32 {
    unsafe { proxy_set_header_map_pairs(mt, serialized.as_ptr(), serialized.len()) }
}

pub fn map_size(mt: u32) -> Res<usize> {
    let mut n = 0;
    let s = unsafe { proxy_get_header_map_size(mt, &mut n) };
    ok(s, || n)
}

pub fn get_header(mt: u32, name: &str) -> Res<Vec<u8>> {
    let (mut p, mut l) = (null_mut(), 0);
    let s = unsafe { proxy_get_header_map_value(mt, name.as_ptr(), name.len(), &mut p, &mut l) };
    let v = unsafe { take(p, l) };
    ok(s, || v)
}

pub fn add_header(mt: u32, name: &str, value: &str) -> u32 {
    unsafe {
        proxy_add_header_map_value(mt, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    }
}

pub fn replace_header(mt: u32, name: &str, value: &str) -> u32 {
    unsafe {
        proxy_replace_header_map_value(mt, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    }
}

pub fn remove_header(mt: u32, name: &str) -> u32 {
    unsafe { proxy_remove_header_map_value(mt, name.as_ptr(), name.len()) }
}

/// A dotted property path as the ABI wants it (segments separated by NUL).
pub fn path_bytes(dotted: &str) -> Vec<u8> {
    dotted.replace('.', "\0").into_bytes()
}

pub fn get_property(dotted: &str) -> Res<Vec<u8>> {
    let path = path_bytes(dotted);
    let (mut p, mut l) = (null_mut(), 0);
    let s = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut p, &mut l) };
    let v = unsafe { take(p, l) };
    ok(s, || v)
}

pub fn set_property(dotted: &str, value: &[u8]) -> u32 {
    let path = path_bytes(dotted);
    unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) }
}

pub fn get_shared(key: &str) -> Res<(Vec<u8>, u32)> {
    let (mut p, mut l, mut cas) = (null_mut(), 0, 0);
    let s = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut p, &mut l, &mut cas) };
    let v = unsafe { take(p, l) };
    ok(s, || (v, cas))
}

pub fn set_shared(key: &str, value: &[u8], cas: u32) -> u32 {
    unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
}

pub fn register_queue(name: &str) -> Res<u32> {
    let mut t = 0;
    let s = unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut t) };
    ok(s, || t)
}

pub fn resolve_queue(vm_id: &str, name: &str) -> Res<u32> {
    let mut t = 0;
    let s = unsafe {
        proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut t,
        )
    };
    ok(s, || t)
}

pub fn enqueue(token: u32, value: &[u8]) -> u32 {
    unsafe { proxy_enqueue_shared_queue(token, value.as_ptr(), value.len()) }
}

pub fn dequeue(token: u32) -> Res<Vec<u8>> {
    let (mut p, mut l) = (null_mut(), 0);
    let s = unsafe { proxy_dequeue_shared_queue(token, &mut p, &mut l) };
    let v = unsafe { take(p, l) };
    ok(s, || v)
}

pub fn continue_stream(st: u32) -> u32 {
    unsafe { proxy_continue_stream(st) }
}

pub fn close_stream(st: u32) -> u32 {
    unsafe { proxy_close_stream(st) }
}

pub fn send_local_response(
    code: u32,
    details: &str,
    body: &[u8],
    headers: &[u8],
    grpc: i32,
) -> u32 {
    unsafe {
        proxy_send_local_response(
            code,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            grpc,
        )
    }
}

pub fn grpc_send(token: u32, msg: &[u8], end: bool) -> u32 {
    unsafe { proxy_grpc_send(token, msg.as_ptr(), msg.len(), u32::from(end)) }
}

pub fn grpc_cancel(token: u32) -> u32 {
    unsafe { proxy_grpc_cancel(token) }
}

pub fn grpc_close(token: u32) -> u32 {
    unsafe { proxy_grpc_close(token) }
}

pub fn get_status() -> Res<(u32, Vec<u8>)> {
    let (mut code, mut p, mut l) = (0, null_mut(), 0);
    let s = unsafe { proxy_get_status(&mut code, &mut p, &mut l) };
    let v = unsafe { take(p, l) };
    ok(s, || (code, v))
}

pub fn set_effective_context(ctx: u32) -> u32 {
    unsafe { proxy_set_effective_context(ctx) }
}

pub fn call_foreign(name: &str, args: &[u8]) -> Res<Vec<u8>> {
    let (mut p, mut l) = (null_mut(), 0);
    let s = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            args.as_ptr(),
            args.len(),
            &mut p,
            &mut l,
        )
    };
    let v = unsafe { take(p, l) };
    ok(s, || v)
}

pub fn done() -> u32 {
    unsafe { proxy_done() }
}

pub fn define_metric(kind: u32, name: &str) -> Res<u32> {
    let mut id = 0;
    let s = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    ok(s, || id)
}

pub fn increment_metric(id: u32, delta: i64) -> u32 {
    unsafe { proxy_increment_metric(id, delta) }
}

pub fn record_metric(id: u32, value: u64) -> u32 {
    unsafe { proxy_record_metric(id, value) }
}

pub fn get_metric(id: u32) -> Res<u64> {
    let mut v = 0;
    let s = unsafe { proxy_get_metric(id, &mut v) };
    ok(s, || v)
}

/// WASI `fd_write` of one buffer; returns the errno and bytes written.
pub fn write_fd(fd: u32, data: &[u8]) -> (u32, usize) {
    let iov = [data.as_ptr() as u32, data.len() as u32];
    let mut n = 0;
    let e = unsafe { fd_write(fd, iov.as_ptr(), 1, &mut n) };
    (e, n)
}

pub fn clock(id: u32) -> Res<u64> {
    let mut t = 0;
    let e = unsafe { clock_time_get(id, 1, &mut t) };
    ok(e, || t)
}

pub fn clock_res(id: u32) -> Res<u64> {
    let mut t = 0;
    let e = unsafe { clock_res_get(id, &mut t) };
    ok(e, || t)
}

pub fn random(buf: &mut [u8]) -> u32 {
    unsafe { random_get(buf.as_mut_ptr(), buf.len()) }
}

pub fn environ_sizes() -> Res<(usize, usize)> {
    let (mut n, mut s) = (0, 0);
    let e = unsafe { environ_sizes_get(&mut n, &mut s) };
    ok(e, || (n, s))
}

pub fn args_sizes() -> Res<(usize, usize)> {
    let (mut n, mut s) = (0, 0);
    let e = unsafe { args_sizes_get(&mut n, &mut s) };
    ok(e, || (n, s))
}

pub fn exit(code: u32) {
    unsafe { proc_exit(code) }
}

/// Calls host function `func` with a pointer outside linear memory; returns
/// the raw status (or WASI errno), `None` for an unknown name.
pub fn bad_pointer(func: &str) -> Option<u32> {
    let bad = BAD as *mut u8;
    let badc = BAD as *const u8;
    let badw = BAD as *mut u32;
    let bads = BAD as *mut usize;
    let badpp = BAD as *mut *mut u8;
    let (mut p, mut l, mut w) = (null_mut::<u8>(), 0usize, 0u32);
    let key = b"x-probe";
    let hdrs = crate::cmd::encode_pairs(&[(":path", "/"), (":method", "GET"), (":authority", "x")]);
    Some(unsafe {
        match func {
            "log" => proxy_log(2, badc, 32),
            "loglevel" => proxy_get_log_level(badw),
            "time" => proxy_get_current_time_nanoseconds(BAD as *mut u64),
            "getprop" => proxy_get_property(badc, 8, &mut p, &mut l),
            "getprop-ret" => proxy_get_property(b"plugin_name".as_ptr(), 11, badpp, bads),
            "setprop" => proxy_set_property(badc, 8, b"v".as_ptr(), 1),
            "setprop-value" => proxy_set_property(b"k".as_ptr(), 1, badc, 8),
            "gethdr" => proxy_get_header_map_value(0, badc, 8, &mut p, &mut l),
            "gethdr-ret" => proxy_get_header_map_value(0, key.as_ptr(), key.len(), badpp, bads),
            "pairs-ret" => proxy_get_header_map_pairs(0, badpp, bads),
            "setpairs" => proxy_set_header_map_pairs(0, badc, 64),
            "addhdr" => proxy_add_header_map_value(0, b"x".as_ptr(), 1, badc, 8),
            "replacehdr" => proxy_replace_header_map_value(0, badc, 8, b"x".as_ptr(), 1),
            "removehdr" => proxy_remove_header_map_value(0, badc, 8),
            "size-ret" => proxy_get_header_map_size(0, bads),
            "getbuf-ret" => proxy_get_buffer_bytes(6, 0, 100, badpp, bads),
            "bufstatus-ret" => proxy_get_buffer_status(6, bads, badw),
            "setbuf" => proxy_set_buffer_bytes(0, 0, 0, badc, 8),
            "shget" => proxy_get_shared_data(badc, 8, &mut p, &mut l, &mut w),
            "shset" => proxy_set_shared_data(badc, 8, b"v".as_ptr(), 1, 0),
            "qreg" => proxy_register_shared_queue(badc, 8, &mut w),
            "qreg-ret" => proxy_register_shared_queue(b"probe-bad".as_ptr(), 9, badw),
            "qresolve" => proxy_resolve_shared_queue(b"".as_ptr(), 0, badc, 8, &mut w),
            "qenq" => proxy_enqueue_shared_queue(1, badc, 8),
            "metric" => proxy_define_metric(0, badc, 8, &mut w),
            "metric-ret" => proxy_define_metric(0, b"probe_bad".as_ptr(), 9, badw),
            "mget-ret" => {
                let mut id = 0;
                proxy_define_metric(0, b"probe_bad".as_ptr(), 9, &mut id);
                proxy_get_metric(id, BAD as *mut u64)
            }
            "reply" => proxy_send_local_response(403, badc, 8, [].as_ptr(), 0, [].as_ptr(), 0, -1),
            "httpcall" => proxy_http_call(
                badc,
                8,
                hdrs.as_ptr(),
                hdrs.len(),
                [].as_ptr(),
                0,
                [].as_ptr(),
                0,
                1000,
                &mut w,
            ),
            "httpcall-ret" => proxy_http_call(
                b"nowhere".as_ptr(),
                7,
                hdrs.as_ptr(),
                hdrs.len(),
                [].as_ptr(),
                0,
                [].as_ptr(),
                0,
                1000,
                badw,
            ),
            "foreign" => proxy_call_foreign_function(badc, 8, [].as_ptr(), 0, &mut p, &mut l),
            "status-ret" => proxy_get_status(badw, badpp, bads),
            "grpcsend" => proxy_grpc_send(2, badc, 8, 0),
            "fdwrite" => fd_write(1, BAD as *const u32, 1, &mut l),
            "fdwrite-data" => {
                let iov = [BAD as u32, 8u32];
                fd_write(1, iov.as_ptr(), 1, &mut l)
            }
            "fdwrite-ret" => {
                let iov = [b"x".as_ptr() as u32, 1u32];
                fd_write(1, iov.as_ptr(), 1, bads)
            }
            "clock" => clock_time_get(0, 1, BAD as *mut u64),
            "random" => random_get(bad, 16),
            "environ" => environ_sizes_get(bads, bads),
            "args" => args_sizes_get(bads, bads),
            _ => return None,
        }
    })
}

/// Calls host function `func` with an enum value the ABI does not define;
/// returns the raw status, `None` for an unknown name.
pub fn bad_enum(func: &str) -> Option<u32> {
    let (mut p, mut l, mut w) = (null_mut::<u8>(), 0usize, 0u32);
    let mut f = 0u32;
    Some(unsafe {
        match func {
            "log" => proxy_log(9, b"x".as_ptr(), 1),
            "getbuf" => proxy_get_buffer_bytes(99, 0, 10, &mut p, &mut l),
            "bufstatus" => proxy_get_buffer_status(99, &mut l, &mut f),
            "setbuf" => proxy_set_buffer_bytes(99, 0, 0, b"x".as_ptr(), 1),
            "pairs" => proxy_get_header_map_pairs(99, &mut p, &mut l),
            "setpairs" => proxy_set_header_map_pairs(99, [0u8, 0, 0, 0].as_ptr(), 4),
            "size" => proxy_get_header_map_size(99, &mut l),
            "gethdr" => proxy_get_header_map_value(99, b"x".as_ptr(), 1, &mut p, &mut l),
            "addhdr" => proxy_add_header_map_value(99, b"x".as_ptr(), 1, b"y".as_ptr(), 1),
            "replacehdr" => proxy_replace_header_map_value(99, b"x".as_ptr(), 1, b"y".as_ptr(), 1),
            "removehdr" => proxy_remove_header_map_value(99, b"x".as_ptr(), 1),
            "continue" => proxy_continue_stream(9),
            "close" => proxy_close_stream(9),
            "metric" => proxy_define_metric(7, b"probe_bad_kind".as_ptr(), 14, &mut w),
            // Kind bits 3 are no metric type.
            "metricid" => proxy_increment_metric(3, 1),
            "clock" => {
                let mut t = 0u64;
                clock_time_get(9, 1, &mut t)
            }
            _ => return None,
        }
    })
}
