//! The HTTP connection manager's timeouts and limits, with Envoy's names
//! and defaults: what protects the proxy from slow and abusive clients.
//!
//! | field | Envoy default | answer when it fires |
//! |---|---|---|
//! | `per_connection_buffer_limit_bytes` | 1 MiB | flow control; a filter buffering more: 413 / 500 |
//! | `request_headers_timeout` | none | connection closed (`downstream_rq_header_timeout`) |
//! | `request_timeout` | none | 408 `request timeout` (`request_overall_timeout`) |
//! | `stream_idle_timeout` | 5 min | 408 `stream timeout` (`stream_idle_timeout`, flag `SI`) |
//! | `idle_timeout` | 1 h | connection closed (`downstream_cx_idle_timeout`) |
//! | `max_connection_duration` | none | connection drained (`downstream_cx_max_duration_reached`) |
//! | `max_request_headers_kb` | 60 | 431 |
//! | `max_headers_count` | 100 | 431 |
//! | `max_concurrent_streams` | 2147483647 | HTTP/2 `REFUSED_STREAM` |
//! | `premature_reset_total_stream_count` | 500 | connection closed (`downstream_rq_too_many_premature_resets`) |
//! | `premature_reset_min_stream_lifetime` | 1 s | (what counts as premature) |
//! | `max_downstream_connections` | none | new connections closed (`downstream_global_cx_overflow`) |

use super::config::parse_duration;
use super::flow_control::DEFAULT_BUFFER_LIMIT;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Envoy's default `stream_idle_timeout`.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Envoy's default connection `idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `max_request_headers_kb`.
pub const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's default `max_headers_count`.
pub const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;
/// Envoy's default HTTP/2 `max_concurrent_streams`.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 2_147_483_647;
/// Envoy's runtime default `overload.premature_reset_total_stream_count`.
pub const DEFAULT_PREMATURE_RESET_TOTAL_STREAM_COUNT: u64 = 500;
/// Envoy's runtime default `overload.premature_reset_min_stream_lifetime_seconds`.
pub const DEFAULT_PREMATURE_RESET_MIN_STREAM_LIFETIME: Duration = Duration::from_secs(1);

/// The effective limits (`None`: disabled).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub per_connection_buffer_limit_bytes: u32,
    pub request_headers_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub stream_idle_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_connection_duration: Option<Duration>,
    pub max_request_headers_kb: u32,
    pub max_headers_count: u32,
    pub max_concurrent_streams: u32,
    pub premature_reset_total_stream_count: u64,
    pub premature_reset_min_stream_lifetime: Duration,
    pub max_downstream_connections: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_connection_buffer_limit_bytes: DEFAULT_BUFFER_LIMIT,
            request_headers_timeout: None,
            request_timeout: None,
            stream_idle_timeout: Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connection_duration: None,
            max_request_headers_kb: DEFAULT_MAX_REQUEST_HEADERS_KB,
            max_headers_count: DEFAULT_MAX_HEADERS_COUNT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            premature_reset_total_stream_count: DEFAULT_PREMATURE_RESET_TOTAL_STREAM_COUNT,
            premature_reset_min_stream_lifetime: DEFAULT_PREMATURE_RESET_MIN_STREAM_LIFETIME,
            max_downstream_connections: None,
        }
    }
}

impl Limits {
    /// The buffer limit in bytes (at least one byte).
    pub fn buffer_limit(&self) -> usize {
        (self.per_connection_buffer_limit_bytes as usize).max(1)
    }

    /// The effective limits for `/config_dump` (`null`: disabled).
    pub fn to_json(&self) -> serde_json::Value {
        let t = |d: Option<Duration>| d.map(|d| format!("{}s", d.as_secs_f64()));
        serde_json::json!({
            "per_connection_buffer_limit_bytes": self.per_connection_buffer_limit_bytes,
            "request_headers_timeout": t(self.request_headers_timeout),
            "request_timeout": t(self.request_timeout),
            "stream_idle_timeout": t(self.stream_idle_timeout),
            "idle_timeout": t(self.idle_timeout),
            "max_connection_duration": t(self.max_connection_duration),
            "max_request_headers_kb": self.max_request_headers_kb,
            "max_headers_count": self.max_headers_count,
            "max_concurrent_streams": self.max_concurrent_streams,
            "premature_reset_total_stream_count": self.premature_reset_total_stream_count,
            "premature_reset_min_stream_lifetime":
                format!("{}s", self.premature_reset_min_stream_lifetime.as_secs_f64()),
            "max_downstream_connections": self.max_downstream_connections,
        })
    }
}

/// The `limits:` section of the native file (every field optional; Envoy's
/// names; a timeout of `0s` disables it, as in Envoy).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Per-connection and per-stream buffer limit (default 1 MiB).
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// Time to receive a request's complete headers (default: none).
    pub request_headers_timeout: Option<String>,
    /// Time to receive a complete request (default: none).
    pub request_timeout: Option<String>,
    /// Time a stream may see no activity (default `5m`).
    pub stream_idle_timeout: Option<String>,
    /// Time a connection may have no stream (default `1h`).
    pub idle_timeout: Option<String>,
    /// Lifetime of a connection before it is drained (default: none).
    pub max_connection_duration: Option<String>,
    /// Largest request header block, in KiB (default 60, at most 8192).
    pub max_request_headers_kb: Option<u32>,
    /// Most request headers (default 100).
    pub max_headers_count: Option<u32>,
    /// HTTP/2 streams open at once per connection (default 2147483647).
    pub max_concurrent_streams: Option<u32>,
    /// Envoy's `overload.premature_reset_total_stream_count` (default 500).
    pub premature_reset_total_stream_count: Option<u64>,
    /// Envoy's `overload.premature_reset_min_stream_lifetime_seconds` (default `1s`).
    pub premature_reset_min_stream_lifetime: Option<String>,
    /// The overload manager's global downstream connection limit (default: none).
    pub max_downstream_connections: Option<u64>,
}

/// A timeout where `0s` means disabled.
pub fn timeout(s: &str, path: &str) -> Result<Option<Duration>, String> {
    let d = parse_duration(s).map_err(|e| format!("{path}: {e}"))?;
    Ok((!d.is_zero()).then_some(d))
}

impl LimitsSpec {
    /// Applies the set fields to `l`; errors name the field (`limits.x`).
    pub fn apply(&self, l: &mut Limits) -> Result<(), String> {
        let t = |v: &Option<String>, name: &str, into: &mut Option<Duration>| {
            if let Some(s) = v {
                *into = timeout(s, &format!("limits.{name}"))?;
            }
            Ok::<(), String>(())
        };
        if let Some(b) = self.per_connection_buffer_limit_bytes {
            if b == 0 {
                return Err("limits.per_connection_buffer_limit_bytes: must be at least 1".into());
            }
            l.per_connection_buffer_limit_bytes = b;
        }
        t(
            &self.request_headers_timeout,
            "request_headers_timeout",
            &mut l.request_headers_timeout,
        )?;
        t(
            &self.request_timeout,
            "request_timeout",
            &mut l.request_timeout,
        )?;
        t(
            &self.stream_idle_timeout,
            "stream_idle_timeout",
            &mut l.stream_idle_timeout,
        )?;
        t(&self.idle_timeout, "idle_timeout", &mut l.idle_timeout)?;
        t(
            &self.max_connection_duration,
            "max_connection_duration",
            &mut l.max_connection_duration,
        )?;
        if let Some(k) = self.max_request_headers_kb {
            check_headers_kb(k, "limits.max_request_headers_kb")?;
            l.max_request_headers_kb = k;
        }
        if let Some(n) = self.max_headers_count {
            if n == 0 {
                return Err("limits.max_headers_count: must be at least 1".into());
            }
            l.max_headers_count = n;
        }
        if let Some(n) = self.max_concurrent_streams {
            if n == 0 {
                return Err("limits.max_concurrent_streams: must be at least 1".into());
            }
            l.max_concurrent_streams = n;
        }
        if let Some(n) = self.premature_reset_total_stream_count {
            l.premature_reset_total_stream_count = n;
        }
        if let Some(s) = &self.premature_reset_min_stream_lifetime {
            l.premature_reset_min_stream_lifetime = parse_duration(s)
                .map_err(|e| format!("limits.premature_reset_min_stream_lifetime: {e}"))?;
        }
        if let Some(n) = self.max_downstream_connections {
            l.max_downstream_connections = Some(n);
        }
        Ok(())
    }
}

/// Envoy's range for `max_request_headers_kb`: 1..=8192.
pub fn check_headers_kb(k: u32, path: &str) -> Result<(), String> {
    if !(1..=8192).contains(&k) {
        return Err(format!("{path}: must be between 1 and 8192"));
    }
    Ok(())
}

/// The connection manager's counters for flow control, timeouts and limits
/// (Envoy's names, under `http.<stat_prefix>.`), and the listener's
/// `downstream_global_cx_overflow`.
#[derive(Debug, Default)]
pub struct LimitStats {
    pub downstream_flow_control_paused_reading_total: AtomicU64,
    pub downstream_flow_control_resumed_reading_total: AtomicU64,
    pub downstream_rq_too_large: AtomicU64,
    pub rs_too_large: AtomicU64,
    pub downstream_rq_header_timeout: AtomicU64,
    pub downstream_rq_timeout: AtomicU64,
    pub downstream_rq_idle_timeout: AtomicU64,
    pub downstream_cx_idle_timeout: AtomicU64,
    pub downstream_cx_max_duration_reached: AtomicU64,
    pub downstream_rq_too_many_premature_resets: AtomicU64,
    pub downstream_global_cx_overflow: AtomicU64,
}

impl LimitStats {
    /// `(name, counter)`: the connection manager's, then the listener's
    /// (named by Envoy's `listener.<address>.` prefix).
    pub fn entries(&self) -> [(&'static str, bool, &AtomicU64); 11] {
        [
            (
                "downstream_flow_control_paused_reading_total",
                false,
                &self.downstream_flow_control_paused_reading_total,
            ),
            (
                "downstream_flow_control_resumed_reading_total",
                false,
                &self.downstream_flow_control_resumed_reading_total,
            ),
            (
                "downstream_rq_too_large",
                false,
                &self.downstream_rq_too_large,
            ),
            ("rs_too_large", false, &self.rs_too_large),
            (
                "downstream_rq_header_timeout",
                false,
                &self.downstream_rq_header_timeout,
            ),
            ("downstream_rq_timeout", false, &self.downstream_rq_timeout),
            (
                "downstream_rq_idle_timeout",
                false,
                &self.downstream_rq_idle_timeout,
            ),
            (
                "downstream_cx_idle_timeout",
                false,
                &self.downstream_cx_idle_timeout,
            ),
            (
                "downstream_cx_max_duration_reached",
                false,
                &self.downstream_cx_max_duration_reached,
            ),
            (
                "downstream_rq_too_many_premature_resets",
                false,
                &self.downstream_rq_too_many_premature_resets,
            ),
            (
                "downstream_global_cx_overflow",
                true,
                &self.downstream_global_cx_overflow,
            ),
        ]
    }

    /// Counts one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
