//! Host calls the SDK either does not offer (local replies with response
//! code details) or offers with a panic on an unexpected status, which would
//! trap the VM — resuming a stream that went away, for instance. These
//! wrappers report failure instead (wasm32 only).

use proxy_wasm::types::{MetricType, Status, StreamType};

use crate::active::{SharedCounter, Write};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
    fn proxy_define_metric(
        metric_type: MetricType,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
    fn proxy_record_metric(metric_id: u32, value: u64) -> Status;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> Status;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> Status;
    fn proxy_set_tick_period_milliseconds(period: u32) -> Status;
    fn proxy_set_effective_context(context_id: u32) -> Status;
    fn proxy_continue_stream(stream_type: StreamType) -> Status;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
}

/// `proxy_send_local_response` with response code details and an optional
/// gRPC status (-1: none) and no extra headers.
pub fn send_local_response(status: u32, details: &str, body: &[u8], grpc_status: i32) -> bool {
    // An empty header map: a zero count.
    let headers = [0u8; 4];
    let s = unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            grpc_status,
        )
    };
    s == Status::Ok
}

/// Defines a metric; `None` if the host refuses.
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let mut id = 0;
    let s = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    (s == Status::Ok).then_some(id)
}

/// Adds to a counter, ignoring failures.
pub fn increment(id: Option<u32>) {
    if let Some(id) = id {
        let _ = unsafe { proxy_increment_metric(id, 1) };
    }
}

/// Sets a gauge, ignoring failures.
pub fn record(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        let _ = unsafe { proxy_record_metric(id, value) };
    }
}

/// Sets the root context's tick period (0: off).
pub fn set_tick_period_ms(ms: u32) {
    let _ = unsafe { proxy_set_tick_period_milliseconds(ms) };
}

/// Makes `ctx` the context later calls act on; false if it is gone.
pub fn set_effective_context(ctx: u32) -> bool {
    unsafe { proxy_set_effective_context(ctx) == Status::Ok }
}

/// Resumes the request of the effective context.
pub fn continue_request() -> bool {
    unsafe { proxy_continue_stream(StreamType::HttpRequest) == Status::Ok }
}

/// Sets a single-segment property (filter state) of the current stream.
pub fn set_property(name: &str, value: &[u8]) {
    let _ = unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
}

/// The active-fault count in the host's shared data.
pub struct SharedData<'a>(pub &'a str);

impl SharedCounter for SharedData<'_> {
    fn read(&mut self) -> Option<(Vec<u8>, u32)> {
        let key = self.0;
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        let mut cas: u32 = 0;
        let s = unsafe {
            proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
        };
        let value = if data.is_null() {
            Vec::new()
        } else {
            // The host allocated the value with proxy_on_memory_allocate.
            unsafe { Vec::from_raw_parts(data, size, size) }
        };
        (s == Status::Ok).then_some((value, cas))
    }

    fn write(&mut self, value: &[u8], cas: u32) -> Write {
        let key = self.0;
        match unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
        } {
            Status::Ok => Write::Ok,
            Status::CasMismatch => Write::CasMismatch,
            _ => Write::Failed,
        }
    }
}
