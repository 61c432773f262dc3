//! The host functions of Proxy-Wasm ABI v0.2.1, one module per area of the
//! spec, each a thin translation from guest memory into host state. Guest
//! memory access lives in [`memory`]; the linker is assembled here, in one
//! place.

pub mod buffers;
pub mod callouts;
pub mod foreign;
pub mod header_maps;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod properties;
pub mod shared;
pub mod streams;
pub mod timers;
pub mod wasi;

use crate::vm::VmState;
use wasmtime::Linker;

/// Registers every host function.
pub fn link(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    logging::add(linker)?;
    buffers::add(linker)?;
    header_maps::add(linker)?;
    properties::add(linker)?;
    callouts::add(linker)?;
    timers::add(linker)?;
    shared::add(linker)?;
    metrics::add(linker)?;
    streams::add(linker)?;
    wasi::add(linker, "wasi_snapshot_preview1")?;
    wasi::add(linker, "wasi_unstable")?;
    Ok(())
}
