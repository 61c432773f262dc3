//! Shared building blocks of the wasmesh filters.
//!
//! Everything outside [`abi`] and [`host`] is plain Rust with no host
//! dependency, so the filters' decision cores can be unit-tested, fuzzed and
//! benchmarked natively. [`abi`] is the filters' own Proxy-Wasm binding (its
//! host calls exist only on `wasm32`; the map serialisation and the context
//! table are plain Rust, tested natively); [`host`] holds the few helpers
//! the glue layers share and only exists on `wasm32`.

pub mod abi;
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
