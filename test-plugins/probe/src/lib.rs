//! `probe`: a scriptable Proxy-Wasm test plugin for the wasmesh harness.
//!
//! Request headers (`x-probe`, `x-probe-body`, `x-probe-resp`, ...) carry
//! command lists that the plugin runs in the matching callback, calling host
//! functions raw so the exact status the host returned is visible. Results
//! are written as `x-r-<key>` headers (or logged where no header map is
//! writable). See README.md for the command reference.
//!
//! The command language is plain Rust ([`cmd`]) and unit-tested on the host;
//! the proxy-wasm glue exists only on `wasm32`.

pub mod cmd;

#[cfg(target_arch = "wasm32")]
mod plugin;
#[cfg(target_arch = "wasm32")]
mod raw;
