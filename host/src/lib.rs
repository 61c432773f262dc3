//! wasmesh: a Proxy-Wasm ABI v0.2.1 host on wasmtime with Envoy's semantics.
//!
//! The host mirrors Envoy's structure: a [`host::HostShared`] (shared data,
//! queues, metrics, clock, clusters, log), [`vm::Vm`]s (a module instance
//! hosting root contexts of its plugins and stream contexts), and a
//! [`chain::Worker`] that runs HTTP streams through a filter chain with
//! Envoy's filter-manager rules. The ABI glue is in [`abi`], one module per
//! area of the spec. [`scenario`] runs declarative scenario files.

pub mod abi;
pub mod chain;
pub mod headers;
pub mod host;
pub mod pairs;
pub mod properties;
pub mod runtime;
pub mod scenario;
pub mod stream_data;
pub mod types;
pub mod vm;

pub use chain::{ChainConfig, FailurePolicy, PluginConfig, Worker};
pub use host::{Clock, HostShared};
pub use runtime::Runtime;

/// splitmix64: deterministic ids and seeds.
pub(crate) fn host_hash(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fast hasher for maps keyed by small integers and short strings (the
/// hot paths: contexts, streams, metric ids). Not DoS-resistant, which is
/// fine for keys the host allocates itself.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
