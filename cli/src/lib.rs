//! The `wasmesh` command's library: everything the command does beyond the
//! host library (`wasmesh`) and the local data plane (`wasmesh-serve`):
//! OCI packaging ([`package`]), configuration validation and JSON Schemas
//! ([`validate`]), the demo with its identity provider ([`demo`]) and the
//! scenario benchmark ([`bench`]). `src/main.rs` is the command line.

pub mod bench;
pub mod demo;
pub mod package;
pub mod validate;

// The host library's modules, under the names these modules use.
use wasmesh::{chain, host, runtime, scenario, types};
