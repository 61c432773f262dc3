//! Host calls the SDK either does not offer (local replies with response
//! code details) or offers with a panic on an unexpected status, which would
//! trap the VM. These wrappers report failure instead (wasm32 only).

use proxy_wasm::types::{MapType, MetricType, Status};

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
    fn proxy_call_foreign_function(
        name_data: *const u8,
        name_size: usize,
        args_data: *const u8,
        args_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> Status;
    fn proxy_define_metric(
        metric_type: MetricType,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> Status;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> Status;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> Status;
}

/// Serialises header pairs in the proxy-wasm map format.
fn serialize_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.len() + v.len() + 2;
    }
    let mut out = Vec::with_capacity(size);
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
    out
}

/// `proxy_send_local_response` with response code details; `grpc_status`
/// -1 for none.
pub fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[(String, String)],
    grpc_status: i32,
) -> bool {
    let serialized = serialize_pairs(headers);
    let status = unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            serialized.as_ptr(),
            serialized.len(),
            grpc_status,
        )
    };
    status == Status::Ok
}

/// Calls Envoy's `clear_route_cache` foreign function; a host without it
/// answers NOT_FOUND, which is fine (ABI 0.2.1 hosts clear the cache on
/// request header changes anyway).
pub fn clear_route_cache() -> Status {
    let name = "clear_route_cache";
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            std::ptr::null(),
            0,
            &mut data,
            &mut size,
        )
    };
    if !data.is_null() {
        // The host allocated a result with proxy_on_memory_allocate: free it.
        drop(unsafe { Vec::from_raw_parts(data, size, size) });
    }
    status
}

/// Defines a counter; `None` if the host refuses.
pub fn define_counter(name: &str) -> Option<u32> {
    let mut id = 0;
    let status =
        unsafe { proxy_define_metric(MetricType::Counter, name.as_ptr(), name.len(), &mut id) };
    (status == Status::Ok).then_some(id)
}

/// Adds to a metric, ignoring failures.
pub fn increment(id: u32, by: i64) {
    let _ = unsafe { proxy_increment_metric(id, by) };
}

/// A header map of the current stream, changed in place.
pub struct HostHeaders(pub MapType);

impl crate::actions::HeaderMutator for HostHeaders {
    fn set(&mut self, name: &str, value: &str) {
        let _ = unsafe {
            proxy_replace_header_map_value(
                self.0,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        };
    }
    fn add(&mut self, name: &str, value: &str) {
        let _ = unsafe {
            proxy_add_header_map_value(
                self.0,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        };
    }
    fn remove(&mut self, name: &str) {
        let _ = unsafe { proxy_remove_header_map_value(self.0, name.as_ptr(), name.len()) };
    }
}
