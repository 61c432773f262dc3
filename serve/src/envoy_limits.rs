//! The limits of an Envoy bootstrap ([`super::limits::Limits`]): the
//! listener's `per_connection_buffer_limit_bytes`, the HTTP connection
//! manager's timeouts and codec limits, the overload manager's
//! `envoy.resource_monitors.global_downstream_max_connections` and the
//! `overload.*` runtime keys of a static `layered_runtime` layer.

use super::envoy::{duration, get, map, seq, string};
use super::limits::{check_headers_kb, Limits};
use serde_yaml::{Mapping, Value};
use std::time::Duration;

type R<T> = Result<T, String>;

/// A protobuf integer (or its wrapper), as YAML writes it: a number or a
/// numeric string.
fn uint(v: &Value, path: &str) -> R<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("{path}: expected a non-negative integer"))
}

fn u32_field(v: &Value, path: &str) -> R<u32> {
    u32::try_from(uint(v, path)?).map_err(|_| format!("{path}: out of range"))
}

/// A timeout: `0s` disables it, as in Envoy.
fn timeout(v: &Value, path: &str) -> R<Option<Duration>> {
    let d = duration(v, path)?;
    Ok((!d.is_zero()).then_some(d))
}

/// `listeners[0].per_connection_buffer_limit_bytes`.
pub fn listener(m: &Mapping, path: &str, l: &mut Limits) -> R<()> {
    if let Some(v) = get(m, "per_connection_buffer_limit_bytes") {
        let p = format!("{path}.per_connection_buffer_limit_bytes");
        let b = u32_field(v, &p)?;
        if b == 0 {
            return Err(format!("{p}: must be at least 1"));
        }
        l.per_connection_buffer_limit_bytes = b;
    }
    Ok(())
}

/// The HTTP connection manager's timeouts and codec limits.
pub fn hcm(tc: &Mapping, path: &str, l: &mut Limits, warnings: &mut Vec<String>) -> R<()> {
    let at = |k: &str| format!("{path}.{k}");
    if let Some(v) = get(tc, "request_headers_timeout") {
        l.request_headers_timeout = timeout(v, &at("request_headers_timeout"))?;
    }
    if let Some(v) = get(tc, "request_timeout") {
        l.request_timeout = timeout(v, &at("request_timeout"))?;
    }
    if let Some(v) = get(tc, "stream_idle_timeout") {
        l.stream_idle_timeout = timeout(v, &at("stream_idle_timeout"))?;
    }
    if let Some(v) = get(tc, "max_request_headers_kb") {
        let p = at("max_request_headers_kb");
        let k = u32_field(v, &p)?;
        check_headers_kb(k, &p)?;
        l.max_request_headers_kb = k;
    }
    if let Some(v) = get(tc, "common_http_protocol_options") {
        let p = at("common_http_protocol_options");
        let m = map(v, &p)?;
        for (k, v) in m {
            let k = k.as_str().unwrap_or("?");
            let kp = format!("{p}.{k}");
            match k {
                "idle_timeout" => l.idle_timeout = timeout(v, &kp)?,
                "max_connection_duration" => l.max_connection_duration = timeout(v, &kp)?,
                "max_headers_count" => {
                    let n = u32_field(v, &kp)?;
                    if n == 0 {
                        return Err(format!("{kp}: must be at least 1"));
                    }
                    l.max_headers_count = n;
                }
                _ => warnings.push(format!("{kp} is ignored (not supported by wasmesh serve)")),
            }
        }
    }
    if let Some(v) = get(tc, "http2_protocol_options") {
        let p = at("http2_protocol_options");
        let m = map(v, &p)?;
        for (k, v) in m {
            let k = k.as_str().unwrap_or("?");
            let kp = format!("{p}.{k}");
            match k {
                "max_concurrent_streams" => {
                    let n = u32_field(v, &kp)?;
                    if n == 0 {
                        return Err(format!("{kp}: must be at least 1"));
                    }
                    l.max_concurrent_streams = n;
                }
                _ => warnings.push(format!("{kp} is ignored (not supported by wasmesh serve)")),
            }
        }
    }
    Ok(())
}

const GLOBAL_CX: &str = "envoy.resource_monitors.global_downstream_max_connections";

/// `overload_manager.resource_monitors`: the global downstream connection
/// limit is applied; other monitors and actions are ignored with a warning.
pub fn overload_manager(v: &Value, l: &mut Limits, warnings: &mut Vec<String>) -> R<()> {
    let m = map(v, "overload_manager")?;
    for (k, v) in m {
        let k = k.as_str().unwrap_or("?");
        if k != "resource_monitors" {
            warnings.push(format!(
                "overload_manager.{k} is ignored (not supported by wasmesh serve)"
            ));
            continue;
        }
        for (i, rm) in seq(v, "overload_manager.resource_monitors")?
            .iter()
            .enumerate()
        {
            let p = format!("overload_manager.resource_monitors[{i}]");
            let rm = map(rm, &p)?;
            let name = get(rm, "name")
                .map(|n| string(n, &format!("{p}.name")))
                .transpose()?
                .unwrap_or_default();
            if name != GLOBAL_CX {
                warnings.push(format!(
                    "{p} `{name}` is ignored (wasmesh serve has only {GLOBAL_CX})"
                ));
                continue;
            }
            let tp = format!("{p}.typed_config");
            let tc = map(
                get(rm, "typed_config").ok_or_else(|| format!("{tp}: required"))?,
                &tp,
            )?;
            let n = get(tc, "max_active_downstream_connections")
                .ok_or_else(|| format!("{tp}.max_active_downstream_connections: required"))?;
            l.max_downstream_connections =
                Some(uint(n, &format!("{tp}.max_active_downstream_connections"))?);
        }
    }
    Ok(())
}

/// The `overload.*` keys of `layered_runtime`'s static layers.
pub fn runtime(v: &Value, l: &mut Limits, warnings: &mut Vec<String>) -> R<()> {
    let m = map(v, "layered_runtime")?;
    let Some(layers) = get(m, "layers") else {
        return Ok(());
    };
    for (i, layer) in seq(layers, "layered_runtime.layers")?.iter().enumerate() {
        let p = format!("layered_runtime.layers[{i}]");
        let lm = map(layer, &p)?;
        let Some(st) = get(lm, "static_layer") else {
            warnings.push(format!("{p} is ignored (only static layers are read)"));
            continue;
        };
        for (k, v) in map(st, &format!("{p}.static_layer"))? {
            let k = k.as_str().unwrap_or("?");
            let kp = format!("{p}.static_layer.{k}");
            match k {
                "overload.premature_reset_total_stream_count" => {
                    l.premature_reset_total_stream_count = uint(v, &kp)?
                }
                "overload.premature_reset_min_stream_lifetime_seconds" => {
                    l.premature_reset_min_stream_lifetime = Duration::from_secs(uint(v, &kp)?)
                }
                "overload.global_downstream_max_connections" => {
                    l.max_downstream_connections = Some(uint(v, &kp)?)
                }
                _ => warnings.push(format!("{kp} is ignored (no effect in wasmesh serve)")),
            }
        }
    }
    Ok(())
}
