//! Custom metrics filter (`custom_metrics.wasm`): Istio's standard request
//! metrics plus user-defined metrics with labels taken from the request, the
//! response, properties and verified JWT claims, recorded at stream end.
//!
//! The decision core is plain Rust:
//!
//! * [`config`] — the JSON configuration (serde-derived types read by
//!   `wasmesh_common::parse_json`, errors with field paths),
//!   compiled once into metric groups and attribute slots;
//! * [`attribute`] — attribute expressions (`request.headers[x-plan]`,
//!   `request.auth.claims[tenant]`, ...) and their values;
//! * [`templates`] — `pathTemplates` for `request.path_template`;
//! * [`resolver`] — evaluates attributes for one stream through a
//!   [`resolver::StreamHost`], reading each input at most once;
//! * [`recorder`] — label sets → stat names → metric ids (defined once per
//!   VM, then found by the label values without building the name), the
//!   cardinality guard, `inflight` gauges, the access log line;
//! * [`tags`] — the stat-name encoding of labels, Envoy's tag extraction and
//!   Prometheus text, shared with the local data plane and the manifests;
//! * [`flags`] — Envoy's response flags and gRPC status mapping;
//! * [`pairs`] — the Proxy-Wasm map serialisation.
//!
//! `filter` (wasm32 only) is the proxy-wasm glue.

pub mod attribute;
pub mod config;
pub mod flags;
pub mod pairs;
pub mod recorder;
pub mod resolver;
pub use wasmesh_stats as tags;
pub mod templates;

#[cfg(target_arch = "wasm32")]
mod filter;
