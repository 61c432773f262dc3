//! A small Proxy-Wasm ABI v0.2.1 binding for the wasmesh filters, in place
//! of the `proxy-wasm` SDK.
//!
//! Why not the SDK: it costs ~90 KiB of `.wasm` per filter (hash maps, the
//! `log` crate, `Box<dyn>` contexts), allocates a `String` per header name
//! and value, and its host-call wrappers panic — a trap, so a failed request
//! — on statuses Envoy does return (`get_map` on a map the callback cannot
//! see, `get_map_value` on a value that is not UTF-8, ...).
//!
//! The parts:
//!
//! * [`types`]: statuses and enumerations as plain values (an unknown status
//!   from the host is representable, never undefined behaviour);
//! * [`pairs`]: the map serialisation, read in place ([`pairs::Pairs`]
//!   borrows every name and value from one buffer) and written in one
//!   allocation;
//! * [`memory`]: `proxy_on_memory_allocate` and [`memory::HostBuf`], a
//!   buffer the host allocated and the module frees;
//! * `hostcalls` (wasm32): one safe wrapper per host function, returning
//!   `Result<_, Status>`; single header values (`get_map_value`), whole maps
//!   as bytes (`get_map`), properties as bytes, shared data with CAS,
//!   metrics, ticks, HTTP calls, local replies with response code details,
//!   effective contexts, foreign functions;
//! * `log` (wasm32): logging with the host's level read once (refreshed at
//!   configure and tick time), so disabled lines cost a comparison;
//! * [`dispatch`]: the [`dispatch::Root`] and [`dispatch::Http`] traits,
//!   the context table, and [`crate::proxy_filter!`], which exports the ABI
//!   with static dispatch.
//!
//! A filter's glue then reads:
//!
//! ```ignore
//! use wasmesh_common::abi::{dispatch::{Http, Root}, hostcalls, types::*};
//!
//! struct MyRoot { config: Option<Rc<Config>> }
//! impl Root for MyRoot {
//!     type Http = MyStream;
//!     fn new(_id: u32) -> Self { MyRoot { config: None } }
//!     fn on_configure(&mut self, _size: usize) -> bool { /* parse, compile */ true }
//!     fn create_http(&mut self, _id: u32) -> Option<MyStream> { Some(MyStream { .. }) }
//! }
//! impl Http for MyStream {
//!     fn on_request_headers(&mut self, _n: usize, _eos: bool) -> Action { Action::Continue }
//! }
//! // Export only the callbacks the filter implements: the host skips the
//! // others (one call into the VM less per request and callback).
//! wasmesh_common::proxy_filter!(MyRoot, [request_headers]);
//! ```
//!
//! Measured on the five filters (release profile): 60–75 KiB less `.wasm`
//! per filter than with the SDK (e.g. header router 353 → 284 KiB, fault
//! injection 324 → 256 KiB, rbac 271 → 200 KiB).
//!
//! Only ABI functions that Envoy (proxy-wasm-cpp-host) provides for 0.2.1
//! are imported — and only those a filter uses. gRPC calls, shared-queue
//! callbacks to streams, and the network-filter callbacks
//! (`proxy_on_new_connection`, `proxy_on_downstream_data`, ...) are not
//! exported: the filters are HTTP filters and do not use them; Envoy treats
//! a missing callback export as "nothing to do".

pub mod dispatch;
pub mod memory;
pub mod pairs;
pub mod types;

#[cfg(target_arch = "wasm32")]
pub mod hostcalls;
#[cfg(target_arch = "wasm32")]
pub mod log;

pub use dispatch::{Http, Root};
pub use memory::HostBuf;
pub use types::{Action, BufferType, LogLevel, MapType, MetricType, Status, StreamType};
