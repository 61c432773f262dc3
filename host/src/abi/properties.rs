//! `proxy_get_property` / `proxy_set_property` under Envoy's attribute names.
//!
//! A path is a list of segments separated by NUL bytes. Request attributes
//! derived from headers (`request.path`, `request.headers`, ...) follow the
//! header windows of Envoy's contexts (readable while the request headers
//! are, and in `proxy_on_log`); stream-info attributes (`request.time`,
//! `response.code`, `source.address`, ...) are always readable from a stream
//! context. A single-segment path that is not a known attribute reads the
//! per-stream filter state written with `proxy_set_property`, which is how
//! Envoy's `wasm.<key>` filter state lets one filter hand data to the next.

use super::memory;
use crate::properties::{subtree, Value};
use crate::stream_data::{window, StreamData};
use crate::types::Status;
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

fn port_of(address: &str) -> Option<i64> {
    address.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

fn header_value(st: &StreamData, name: &str) -> Option<Value> {
    st.req_headers
        .get(name.as_bytes())
        .map(|v| Value::Bytes(v.to_vec()))
        .map(|v| match v {
            Value::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
            other => other,
        })
}

/// Attributes Envoy computes from the stream itself.
fn derived(st: &StreamData, pos: usize, path: &[String]) -> Option<Result<Value, Status>> {
    let req_headers = st.can_read(pos, window::REQ_HEADERS);
    let s = |v: &str| Some(Ok(Value::String(v.to_string())));
    let p: Vec<&str> = path.iter().map(|x| x.as_str()).collect();
    let path_hdr = || st.req_headers.get_str(":path").unwrap_or_default();
    match p.as_slice() {
        ["request", rest @ ..] => {
            let field = rest.first().copied().unwrap_or("");
            match field {
                "path" | "url_path" | "host" | "scheme" | "method" | "referer" | "useragent"
                | "query" | "headers"
                    if !req_headers =>
                {
                    Some(Err(Status::NotFound))
                }
                "path" => s(&path_hdr()),
                "url_path" => {
                    let ph = path_hdr();
                    let end = ph.find(['?', '#']).unwrap_or(ph.len());
                    s(&ph[..end])
                }
                "query" => {
                    let ph = path_hdr();
                    Some(Ok(Value::String(
                        ph.split_once('?')
                            .map(|(_, q)| q.to_string())
                            .unwrap_or_default(),
                    )))
                }
                "host" => header_value(st, ":authority")
                    .map(Ok)
                    .or(Some(Err(Status::NotFound))),
                "scheme" => header_value(st, ":scheme")
                    .map(Ok)
                    .or(Some(Err(Status::NotFound))),
                "method" => header_value(st, ":method")
                    .map(Ok)
                    .or(Some(Err(Status::NotFound))),
                "referer" => header_value(st, "referer")
                    .map(Ok)
                    .or(Some(Err(Status::NotFound))),
                "useragent" => header_value(st, "user-agent")
                    .map(Ok)
                    .or(Some(Err(Status::NotFound))),
                "headers" => match rest.get(1) {
                    None => Some(Ok(Value::Map(st.req_headers.to_vec_pairs()))),
                    Some(name) => Some(
                        st.req_headers
                            .get_joined(name.as_bytes())
                            .map(|v| Value::String(String::from_utf8_lossy(&v).into_owned()))
                            .ok_or(Status::NotFound),
                    ),
                },
                "id" => Some(
                    st.req_headers
                        .get_str("x-request-id")
                        .map(Value::String)
                        .ok_or(Status::NotFound),
                ),
                "time" => Some(Ok(Value::Timestamp(st.start_ns))),
                "duration" => st.end_ns.map(|e| Ok(Value::Duration(e - st.start_ns))),
                "size" => Some(Ok(Value::Int(st.req_body_bytes as i64))),
                "total_size" => Some(Ok(Value::Int(
                    (st.req_body_bytes as usize
                        + st.req_headers.byte_size()
                        + st.req_trailers.as_ref().map_or(0, |t| t.byte_size()))
                        as i64,
                ))),
                _ => None,
            }
        }
        ["response", rest @ ..] => {
            let field = rest.first().copied().unwrap_or("");
            let resp_ok = st.can_read(
                pos,
                window::RESP_HEADERS | window::RESP_BODY | window::RESP_TRAILERS,
            );
            match field {
                "code" => st
                    .resp_headers
                    .as_ref()
                    .and_then(|h| h.get_str(":status"))
                    .and_then(|c| c.parse::<i64>().ok())
                    .map(|c| Ok(Value::Int(c))),
                "code_details" => st.code_details.clone().map(|d| Ok(Value::String(d))),
                "flags" => Some(Ok(Value::Uint(st.response_flags))),
                "grpc_status" => {
                    let v = st
                        .resp_trailers
                        .as_ref()
                        .and_then(|t| t.get_str("grpc-status"))
                        .or_else(|| {
                            st.resp_headers
                                .as_ref()
                                .and_then(|h| h.get_str("grpc-status"))
                        });
                    v.and_then(|v| v.parse::<i64>().ok())
                        .map(|v| Ok(Value::Int(v)))
                }
                "headers" | "trailers" if !resp_ok => Some(Err(Status::NotFound)),
                "headers" | "trailers" => {
                    let m = if field == "headers" {
                        st.resp_headers.as_ref()
                    } else {
                        st.resp_trailers.as_ref()
                    };
                    let m = m?;
                    match rest.get(1) {
                        None => Some(Ok(Value::Map(m.to_vec_pairs()))),
                        Some(name) => Some(
                            m.get_joined(name.as_bytes())
                                .map(|v| Value::String(String::from_utf8_lossy(&v).into_owned()))
                                .ok_or(Status::NotFound),
                        ),
                    }
                }
                "size" => Some(Ok(Value::Int(st.resp_body_bytes as i64))),
                "total_size" => Some(Ok(Value::Int(
                    (st.resp_body_bytes as usize
                        + st.resp_headers.as_ref().map_or(0, |h| h.byte_size())
                        + st.resp_trailers.as_ref().map_or(0, |t| t.byte_size()))
                        as i64,
                ))),
                _ => None,
            }
        }
        ["xds", "cluster_name"] | ["cluster_name"] => {
            st.upstream_cluster.clone().map(|c| Ok(Value::String(c)))
        }
        ["xds", "route_name"] | ["route_name"] => {
            st.route_name.clone().map(|c| Ok(Value::String(c)))
        }
        ["connection", "id"] | ["connection_id"] => Some(Ok(Value::Uint(st.id))),
        _ => None,
    }
}

/// Defaults for connection attributes a test did not configure.
fn stream_default(props: &crate::properties::PropertyMap, key: &str) -> Option<Value> {
    let addr = |k: &str, d: &str| {
        props
            .get(k)
            .map(|v| v.display())
            .unwrap_or_else(|| d.to_string())
    };
    Some(match key {
        "source.address" => Value::String(addr("source.address", DEFAULT_SOURCE)),
        "source.port" => Value::Int(port_of(&addr("source.address", DEFAULT_SOURCE))?),
        "destination.address" => Value::String(addr("destination.address", DEFAULT_DESTINATION)),
        "destination.port" => {
            Value::Int(port_of(&addr("destination.address", DEFAULT_DESTINATION))?)
        }
        "connection.mtls" => Value::Bool(false),
        "connection.requested_server_name" => Value::String(String::new()),
        "request.protocol" => Value::String("HTTP/1.1".into()),
        _ => return None,
    })
}

/// Peer address a stream has unless configured (`source.address`).
pub const DEFAULT_SOURCE: &str = "10.0.0.2:49152";
/// Local address a stream has unless configured (`destination.address`).
pub const DEFAULT_DESTINATION: &str = "10.0.0.1:8080";

/// Resolves a property path for the active context.
pub fn resolve(s: &VmState, path: &[String]) -> Result<Value, Status> {
    let ctx = s.active();
    if path.is_empty() {
        return Err(Status::NotFound);
    }
    let joined = path.join(".");
    match joined.as_str() {
        "plugin_name" => {
            return s
                .plugin_of(ctx)
                .map(|p| Value::String(p.name.clone()))
                .ok_or(Status::NotFound)
        }
        "plugin_root_id" => {
            return s
                .plugin_of(ctx)
                .map(|p| Value::String(p.root_id.clone()))
                .ok_or(Status::NotFound)
        }
        "plugin_vm_id" => return Ok(Value::String(s.vm_id.clone())),
        _ => {}
    }
    if let Some((stream, pos)) = s.stream_of(ctx) {
        let st = stream.borrow();
        if let Some(v) = derived(&st, pos, path) {
            return v;
        }
        if let Some(v) = st.properties.get(&joined) {
            return Ok(v.clone());
        }
        if path.len() == 1 {
            if let Some(v) = st.filter_state.get(path[0].as_bytes()) {
                return Ok(Value::Bytes(v.clone()));
            }
        }
        if let Some(v) = stream_default(&st.properties, &joined) {
            return Ok(v);
        }
        if let Some(v) = subtree(&st.properties, &joined) {
            return Ok(v);
        }
    }
    s.host.property(&joined).ok_or(Status::NotFound)
}

/// Splits a NUL-separated path into segments.
pub fn split_path(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Caller<'_, VmState>, pp: i32, pl: i32, vp: i32, vl: i32| -> i32 {
            let Some(raw) = memory::read(&mut c, pp, pl) else {
                return Status::InvalidMemoryAccess.code();
            };
            let value = match resolve(c.data(), &split_path(&raw)) {
                Ok(v) => v.serialize(),
                Err(e) => return e.code(),
            };
            if memory::copy_out(&mut c, &value, vp, vl) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Caller<'_, VmState>, pp: i32, pl: i32, vp: i32, vl: i32| -> i32 {
            let (Some(path), Some(value)) =
                (memory::read(&mut c, pp, pl), memory::read(&mut c, vp, vl))
            else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data();
            // Envoy stores the value as filter state of the request; without a
            // stream (root context) there is none.
            let Some((stream, _)) = s.stream_of(s.active()) else {
                return Status::NotFound.code();
            };
            stream.borrow_mut().filter_state.insert(path, value);
            Status::Ok.code()
        },
    )?;
    Ok(())
}
