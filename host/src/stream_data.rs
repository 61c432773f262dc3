//! Per-stream state shared by every plugin of a chain: the header maps, the
//! body each filter currently holds, filter state, and the access windows
//! that Envoy enforces (a map or body can only be touched from the callback
//! that owns it, or while the stream is paused from it).

use crate::headers::HeaderMap;
use crate::properties::PropertyMap;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Shared handle to a stream's data.
pub type StreamRef = Rc<RefCell<StreamData>>;

/// Access windows of one filter (bit flags).
pub mod window {
    pub const REQ_HEADERS: u32 = 1;
    pub const REQ_BODY: u32 = 2;
    pub const REQ_TRAILERS: u32 = 4;
    pub const RESP_HEADERS: u32 = 8;
    pub const RESP_BODY: u32 = 16;
    pub const RESP_TRAILERS: u32 = 32;
}

/// What one filter position of the chain currently holds.
#[derive(Debug, Default, Clone)]
pub struct Slot {
    /// Open access windows (see [`window`]).
    pub open: u32,
    /// The request body this filter sees (the current chunk, or everything it
    /// buffered while paused).
    pub req_buf: Vec<u8>,
    /// The response body this filter sees.
    pub resp_buf: Vec<u8>,
    /// `end_of_stream` of the body callback in progress (request side).
    pub req_eos: bool,
    /// `end_of_stream` of the body callback in progress (response side).
    pub resp_eos: bool,
}

/// A local reply requested with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReply {
    pub status: u32,
    pub body: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub grpc_status: Option<u32>,
    pub details: String,
}

/// Everything about one HTTP stream that host calls can see.
#[derive(Debug, Default)]
pub struct StreamData {
    pub id: u64,
    pub req_headers: HeaderMap,
    pub req_trailers: Option<HeaderMap>,
    pub resp_headers: Option<HeaderMap>,
    pub resp_trailers: Option<HeaderMap>,
    pub slots: Vec<Slot>,
    /// Configured properties (defaults and per-request overrides).
    pub properties: PropertyMap,
    /// Values set with `proxy_set_property` (Envoy filter state `wasm.<key>`).
    pub filter_state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// How many times the route cache was cleared.
    pub route_cache_cleared: u32,
    /// Stream start (virtual or real clock), ns since epoch.
    pub start_ns: i64,
    /// Stream end, once complete.
    pub end_ns: Option<i64>,
    /// `response.code_details`.
    pub code_details: Option<String>,
    /// Request body bytes received from the client.
    pub req_body_bytes: u64,
    /// Response body bytes sent to the client.
    pub resp_body_bytes: u64,
    /// Access-log phase (`proxy_on_log`): maps are read-only snapshots.
    pub log_phase: bool,
    /// Cluster the router picked.
    pub upstream_cluster: Option<String>,
    /// Route the router picked.
    pub route_name: Option<String>,
    /// Response flags (Envoy bitmask).
    pub response_flags: u64,
}

impl StreamData {
    /// Whether `position` has `w` open, or (for reads) the stream is logging.
    pub fn can_read(&self, position: usize, w: u32) -> bool {
        self.log_phase || self.slots.get(position).is_some_and(|s| s.open & w != 0)
    }

    /// Whether `position` may modify what `w` guards.
    pub fn can_write(&self, position: usize, w: u32) -> bool {
        !self.log_phase && self.slots.get(position).is_some_and(|s| s.open & w != 0)
    }
}
