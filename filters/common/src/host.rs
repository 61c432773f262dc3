//! Thin proxy-wasm helpers shared by the filters' glue (wasm32 only).
//!
//! Everything here is a direct use of a host call; no decisions are made.

use crate::config::ConfigError;
use crate::identity::{Identity, IDENTITY_PROPERTY};
use crate::request::HeaderMap;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MapType};

/// Header pairs of `map` with one host call. Values that are not UTF-8
/// (Envoy allows any byte but NUL, CR and LF) are decoded lossily instead of
/// trapping as the SDK's `get_map` would; names are tokens, hence ASCII.
fn map_lossy(map: MapType) -> HeaderMap {
    let pairs = hostcalls::get_map_bytes(map).unwrap_or_default();
    HeaderMap::from_pairs(
        pairs
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    String::from_utf8(v)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                )
            })
            .collect(),
    )
}

/// All request headers with one host call.
pub fn request_headers() -> HeaderMap {
    map_lossy(MapType::HttpRequestHeaders)
}

/// All response headers with one host call.
pub fn response_headers() -> HeaderMap {
    map_lossy(MapType::HttpResponseHeaders)
}

/// The verified identity left by the JWT filter earlier in this stream.
pub fn identity() -> Option<Identity> {
    let bytes = hostcalls::get_property(vec![IDENTITY_PROPERTY])
        .ok()
        .flatten()?;
    Identity::from_json(&bytes)
}

/// A string property (`["source", "address"]`), if the host has it.
pub fn property_string(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
    String::from_utf8(bytes).ok()
}

/// An integer property (Envoy serialises integers as 8 little-endian bytes).
pub fn property_i64(path: &[&str]) -> Option<i64> {
    let bytes = hostcalls::get_property(path.to_vec()).ok().flatten()?;
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

/// The host clock in nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Logs a refused configuration: `<filter>: invalid configuration: <path>: <why>`.
pub fn log_config_error(filter: &str, e: &ConfigError) {
    let _ = hostcalls::log(
        LogLevel::Error,
        &format!("{filter}: invalid configuration: {e}"),
    );
}

/// Logs at `level` with the filter's name as prefix.
pub fn log(level: LogLevel, filter: &str, message: &str) {
    let _ = hostcalls::log(level, &format!("{filter}: {message}"));
}
