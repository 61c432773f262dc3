//! Shared building blocks of the wasmesh filters.
//!
//! Everything outside [`host`] is plain Rust with no proxy-wasm dependency, so
//! the filters' decision cores can be unit-tested, fuzzed and benchmarked
//! natively. [`host`] holds the few proxy-wasm helpers the glue layers share
//! and only exists on `wasm32`.

pub mod cidr;
pub mod config;
pub mod duration;
pub mod http_match;
pub mod identity;
pub mod matcher;
pub mod request;
pub mod sampling;

#[cfg(target_arch = "wasm32")]
pub mod host;

pub use config::{parse_json, ConfigError, FieldPath};
pub use request::HeaderMap;
