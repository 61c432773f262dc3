//! Metric names (Envoy's fault filter stats, plus per-fault counters).

/// Requests delayed.
pub const DELAYS_INJECTED: &str = "fault.delays_injected";
/// Requests aborted.
pub const ABORTS_INJECTED: &str = "fault.aborts_injected";
/// Faults not injected because `maxActiveFaults` were active.
pub const FAULTS_OVERFLOW: &str = "fault.faults_overflow";
/// Requests currently delayed or aborted, across all workers (gauge).
pub const ACTIVE_FAULTS: &str = "fault.active_faults";

/// `fault.<name>.delays_injected`.
pub fn delays_injected(fault: &str) -> String {
    format!("fault.{fault}.delays_injected")
}

/// `fault.<name>.aborts_injected`.
pub fn aborts_injected(fault: &str) -> String {
    format!("fault.{fault}.aborts_injected")
}

/// The property (filter state `wasm.wasmesh.fault`) that tells later filters
/// and access logs which faults were injected, with Envoy's response flags:
/// `DI` (delay injected), `FI` (fault injected, i.e. aborted), or `DI,FI`.
pub const FAULT_PROPERTY: &str = "wasmesh.fault";
