//! Logging through the host, with the host's level checked once: a line the
//! host would drop is neither assembled nor sent (wasm32 only).
//!
//! The level is read with `proxy_get_log_level` on first use and again at
//! each `proxy_on_vm_start`, `proxy_on_configure` and `proxy_on_tick` (the
//! dispatcher calls [`refresh_level`]), so a level changed at run time (Envoy's
//! `/logging` admin endpoint) applies from the next tick or configuration.
//! A host that cannot tell gets every line.

use super::hostcalls;
use super::types::LogLevel;
use std::sync::atomic::{AtomicU32, Ordering};

const UNKNOWN: u32 = u32::MAX;
static LEVEL: AtomicU32 = AtomicU32::new(UNKNOWN);

/// Asks the host for its level again.
pub fn refresh_level() -> LogLevel {
    let level = hostcalls::get_log_level().unwrap_or(LogLevel::Trace);
    LEVEL.store(level as u32, Ordering::Relaxed);
    level
}

/// The host's log level (cached).
#[inline]
pub fn level() -> LogLevel {
    match LEVEL.load(Ordering::Relaxed) {
        UNKNOWN => refresh_level(),
        l => LogLevel::from_u32(l),
    }
}

/// Whether a line at `level` would be kept by the host.
#[inline]
pub fn enabled(level: LogLevel) -> bool {
    level >= self::level()
}

/// Logs `message` at `level` if the host keeps that level.
pub fn log(level: LogLevel, message: &str) {
    if enabled(level) {
        let _ = hostcalls::log(level, message);
    }
}

/// Logs the concatenation of `parts` (one allocation) if the host keeps
/// `level`: `log_parts(Debug, &[FILTER, ": route ", name])`.
pub fn log_parts(level: LogLevel, parts: &[&str]) {
    if enabled(level) {
        let mut line = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            line.push_str(p);
        }
        let _ = hostcalls::log(level, &line);
    }
}
