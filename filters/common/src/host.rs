//! Host helpers shared by the filters' glue (wasm32 only), on top of
//! [`crate::abi::hostcalls`].
//!
//! Everything here is a direct use of a host call; no decisions are made.
//! None of them panics: a status the host answers becomes an empty or
//! `None` result.

use crate::abi::hostcalls;
use crate::abi::types::{LogLevel, MapType};
use crate::abi::HostBuf;
use crate::config::ConfigError;
use crate::identity::IDENTITY_PROPERTY;
use crate::request::HeaderMap;

pub use crate::abi::log::{enabled as log_enabled, log_parts};

/// Header pairs of `map` with one host call (empty when the map is not
/// available); the host's buffer becomes the map (no copy per header, see
/// [`HeaderMap::from_host_buffer`]).
pub fn map(map: MapType) -> HeaderMap {
    match hostcalls::get_map(map) {
        Ok(buf) => HeaderMap::from_host_buffer(buf.into_vec()),
        Err(_) => HeaderMap::new(),
    }
}

/// All request headers with one host call.
pub fn request_headers() -> HeaderMap {
    map(MapType::HttpRequestHeaders)
}

/// All response headers with one host call.
pub fn response_headers() -> HeaderMap {
    map(MapType::HttpResponseHeaders)
}

/// The raw bytes of a property by its segments (`&["source", "address"]`).
pub fn property(path: &[&str]) -> Option<crate::abi::HostBuf> {
    hostcalls::get_property_path(path).ok().flatten()
}

/// The stored identity the JWT filter left earlier in this stream, as bytes;
/// read it with [`crate::identity::IdentityView::parse`], which borrows them.
pub fn identity_bytes() -> Option<HostBuf> {
    hostcalls::get_property(IDENTITY_PROPERTY.as_bytes())
        .ok()
        .flatten()
}

/// The peer IP (`source.address`), if the host has it.
pub fn source_ip() -> Option<std::net::IpAddr> {
    let a = hostcalls::get_property(b"source\0address").ok().flatten()?;
    crate::cidr::parse_address_ip(std::str::from_utf8(&a).ok()?)
}

/// What `http_match` conditions read beyond headers, fetched only when the
/// compiled matches use it: the stored identity's bytes (`claims`; parse
/// with [`crate::identity::IdentityView::parse`]) and the peer IP
/// (`sourceIp`).
pub fn match_context(
    needs_identity: bool,
    needs_source_ip: bool,
) -> (Option<HostBuf>, Option<std::net::IpAddr>) {
    let identity = if needs_identity {
        identity_bytes()
    } else {
        None
    };
    let source_ip = if needs_source_ip { source_ip() } else { None };
    (identity, source_ip)
}

/// A string property (`["source", "address"]`), if the host has it.
pub fn property_string(path: &[&str]) -> Option<String> {
    String::from_utf8(property(path)?.into_vec()).ok()
}

/// An integer property (Envoy serialises integers as 8 little-endian bytes).
pub fn property_i64(path: &[&str]) -> Option<i64> {
    let bytes = property(path)?;
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(i64::from_le_bytes(arr))
}

/// The host clock in nanoseconds since the Unix epoch (0 if unavailable).
pub fn now_nanos() -> u64 {
    hostcalls::now_nanos()
}

/// Logs a refused configuration: `<filter>: invalid configuration: <path>: <why>`.
pub fn log_config_error(filter: &str, e: &ConfigError) {
    let _ = hostcalls::log(
        LogLevel::Error,
        &format!("{filter}: invalid configuration: {e}"),
    );
}

/// Logs at `level` with the filter's name as prefix, if the host keeps
/// that level (the line is not assembled otherwise).
pub fn log(level: LogLevel, filter: &str, message: &str) {
    log_parts(level, &[filter, ": ", message]);
}
