//! Fault injection filter (`fault_injection.wasm`): Envoy's
//! `envoy.filters.http.fault` with Istio's `HTTPFaultInjection` vocabulary.
//!
//! Named faults, scoped with the shared match vocabulary, delay and/or abort a
//! share of requests; clients can ask for faults with Envoy's
//! `x-envoy-fault-*` headers when `headerControl` allows it; a limit on
//! active faults holds across all workers. Delays pause the request and
//! resume it from the root context's timer.
//!
//! The decisions are plain Rust ([`config`] → [`policy`] with
//! [`header_control`]; [`active`] for the shared count; [`delays`] for the
//! timer); the Proxy-Wasm glue (`filter`) only exists on `wasm32`.

pub mod active;
pub mod config;
pub mod delays;
pub mod header_control;
pub mod policy;
pub mod stats;

#[cfg(target_arch = "wasm32")]
mod filter;

pub use config::FaultConfig;
pub use policy::FaultPolicy;
