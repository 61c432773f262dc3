//! `proxy_http_call`, the gRPC calls and `proxy_get_status`.
//!
//! Checks are Envoy's: an unknown cluster or a request without `:method`,
//! `:path` and `:authority` is BAD_ARGUMENT; for gRPC an unknown target is
//! PARSE_FAILURE. Accepted calls are queued for the driver (scenario runner
//! or data plane), which answers them later through the root context's
//! `proxy_on_http_call_response` / gRPC callbacks.

use super::memory;
use crate::types::Status;
use crate::vm::{OutgoingCall, VmState};
use wasmtime::{Caller, Linker};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A `GrpcService` proto (`envoy_grpc { cluster_name }`) or, as newer Envoy
/// accepts, a bare cluster name.
pub fn grpc_cluster(service: &[u8], known: impl Fn(&str) -> bool) -> Option<String> {
    if let Ok(name) = std::str::from_utf8(service) {
        if known(name) {
            return Some(name.to_string());
        }
    }
    // field 1 (envoy_grpc), length-delimited, containing field 1 (cluster_name).
    let inner = proto_field(service, 1)?;
    let name = std::str::from_utf8(proto_field(inner, 1)?).ok()?;
    known(name).then(|| name.to_string())
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn proto_field(b: &[u8], field: u64) -> Option<&[u8]> {
    let mut pos = 0;
    while pos < b.len() {
        let key = varint(b, &mut pos)?;
        match key & 7 {
            0 => {
                varint(b, &mut pos)?;
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let len = varint(b, &mut pos)? as usize;
                let end = pos.checked_add(len)?;
                let data = b.get(pos..end)?;
                if key >> 3 == field {
                    return Some(data);
                }
                pos = end;
            }
            _ => return None,
        }
    }
    None
}

fn next_grpc_token(s: &mut VmState, stream: bool) -> u32 {
    // Envoy numbers calls 1, 3, 5, ... and streams 2, 4, 6, ... per VM.
    loop {
        let t = if stream {
            s.next_grpc_stream
        } else {
            s.next_grpc_call
        };
        if stream {
            s.next_grpc_stream = s.next_grpc_stream.wrapping_add(2);
            if s.next_grpc_stream == 0 {
                s.next_grpc_stream = 2;
            }
        } else {
            s.next_grpc_call = s.next_grpc_call.wrapping_add(2);
        }
        if t != 0 && !s.grpc_calls.contains(&t) && !s.grpc_streams.contains_key(&t) {
            return t;
        }
    }
}

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Caller<'_, VmState>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         tp: i32,
         tl: i32,
         timeout: i32,
         token_ptr: i32|
         -> i32 {
            let (Some(up), Some(h), Some(b), Some(t)) = (
                memory::read(&mut c, up, ul),
                memory::read(&mut c, hp, hl),
                memory::read(&mut c, bp, bl),
                memory::read(&mut c, tp, tl),
            ) else {
                return Status::InvalidMemoryAccess.code();
            };
            // Verify the token pointer before starting anything.
            if !memory::write_u32(&mut c, token_ptr, 0) {
                return Status::InvalidMemoryAccess.code();
            }
            if timeout < 0 {
                return Status::BadArgument.code();
            }
            let cluster = String::from_utf8_lossy(&up).into_owned();
            let s = c.data_mut();
            if !s.host.has_cluster(&cluster) {
                return Status::BadArgument.code();
            }
            let mut headers: Pairs = crate::pairs::decode(&h)
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            let has = |n: &[u8]| headers.iter().any(|(k, _)| k == n);
            // Envoy checks `Path()`, `Method()` and `Host()` — the latter is
            // `:authority`; a plain `host` entry does not count.
            if !has(b":path") || !has(b":method") || !has(b":authority") {
                return Status::BadArgument.code();
            }
            if !b.is_empty() {
                headers.retain(|(k, _)| k != b"content-length");
                headers.push((b"content-length".to_vec(), b.len().to_string().into_bytes()));
            }
            let token = loop {
                let t = s.next_http_token;
                s.next_http_token = s.next_http_token.wrapping_add(1);
                if t != 0 {
                    break t;
                }
            };
            let root_ctx = s.root_of(s.active());
            s.calls.push(OutgoingCall {
                token,
                root_ctx,
                cluster,
                headers,
                body: b,
                trailers: crate::pairs::decode(&t),
                timeout_ms: timeout as u32,
                grpc: None,
                grpc_stream: false,
            });
            memory::write_u32(&mut c, token_ptr, token);
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: Caller<'_, VmState>,
         sp: i32,
         sl: i32,
         np: i32,
         nl: i32,
         mp: i32,
         ml: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         timeout: i32,
         token_ptr: i32|
         -> i32 {
            let (Some(svc), Some(name), Some(method), Some(md), Some(msg)) = (
                memory::read(&mut c, sp, sl),
                memory::read(&mut c, np, nl),
                memory::read(&mut c, mp, ml),
                memory::read(&mut c, hp, hl),
                memory::read(&mut c, bp, bl),
            ) else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data_mut();
            let host = s.host.clone();
            let Some(cluster) = grpc_cluster(&svc, |n| host.has_cluster(n)) else {
                return Status::ParseFailure.code();
            };
            let token = next_grpc_token(s, false);
            s.grpc_calls.insert(token);
            let root_ctx = s.root_of(s.active());
            s.calls.push(OutgoingCall {
                token,
                root_ctx,
                cluster,
                headers: crate::pairs::decode(&md),
                body: msg,
                trailers: Vec::new(),
                timeout_ms: timeout as u32,
                grpc: Some((
                    String::from_utf8_lossy(&name).into_owned(),
                    String::from_utf8_lossy(&method).into_owned(),
                )),
                grpc_stream: false,
            });
            if memory::write_u32(&mut c, token_ptr, token) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: Caller<'_, VmState>,
         sp: i32,
         sl: i32,
         np: i32,
         nl: i32,
         mp: i32,
         ml: i32,
         hp: i32,
         hl: i32,
         token_ptr: i32|
         -> i32 {
            let (Some(svc), Some(name), Some(method), Some(md)) = (
                memory::read(&mut c, sp, sl),
                memory::read(&mut c, np, nl),
                memory::read(&mut c, mp, ml),
                memory::read(&mut c, hp, hl),
            ) else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data_mut();
            let host = s.host.clone();
            let Some(cluster) = grpc_cluster(&svc, |n| host.has_cluster(n)) else {
                return Status::ParseFailure.code();
            };
            let token = next_grpc_token(s, true);
            s.grpc_streams.insert(token, cluster.clone());
            let root_ctx = s.root_of(s.active());
            s.calls.push(OutgoingCall {
                token,
                root_ctx,
                cluster,
                headers: crate::pairs::decode(&md),
                body: Vec::new(),
                trailers: Vec::new(),
                timeout_ms: 0,
                grpc: Some((
                    String::from_utf8_lossy(&name).into_owned(),
                    String::from_utf8_lossy(&method).into_owned(),
                )),
                grpc_stream: true,
            });
            if memory::write_u32(&mut c, token_ptr, token) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_grpc_send",
        |mut c: Caller<'_, VmState>, token: i32, mp: i32, ml: i32, end: i32| -> i32 {
            let Some(msg) = memory::read(&mut c, mp, ml) else {
                return Status::InvalidMemoryAccess.code();
            };
            let token = token as u32;
            let s = c.data_mut();
            if !token.is_multiple_of(2) {
                return Status::BadArgument.code();
            }
            let Some(cluster) = s.grpc_streams.get(&token).cloned() else {
                return Status::NotFound.code();
            };
            // A message on a stream is answered like a unary call on the
            // same token; `end_stream` asks the peer to close.
            let root_ctx = s.root_of(s.active());
            s.calls.push(OutgoingCall {
                token,
                root_ctx,
                cluster,
                headers: Vec::new(),
                body: msg,
                trailers: if end != 0 {
                    vec![(b"end_stream".to_vec(), b"1".to_vec())]
                } else {
                    Vec::new()
                },
                timeout_ms: 0,
                grpc: Some((String::new(), String::new())),
                grpc_stream: true,
            });
            Status::Ok.code()
        },
    )?;
    for name in ["proxy_grpc_cancel", "proxy_grpc_close"] {
        l.func_wrap(
            "env",
            name,
            |mut c: Caller<'_, VmState>, token: i32| -> i32 {
                let token = token as u32;
                let s = c.data_mut();
                if s.grpc_calls.remove(&token) || s.grpc_streams.remove(&token).is_some() {
                    Status::Ok.code()
                } else {
                    Status::NotFound.code()
                }
            },
        )?;
    }
    l.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: Caller<'_, VmState>, code_ptr: i32, mp: i32, ml: i32| -> i32 {
            let (code, msg) = c.data().status.clone();
            if memory::write_u32(&mut c, code_ptr, code) && memory::copy_out(&mut c, &msg, mp, ml) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_service_forms() {
        let known = |n: &str| n == "grpc-backend";
        assert_eq!(
            grpc_cluster(b"grpc-backend", known).as_deref(),
            Some("grpc-backend")
        );
        // GrpcService{envoy_grpc{cluster_name: "grpc-backend"}}
        let mut inner = vec![0x0a, 12];
        inner.extend_from_slice(b"grpc-backend");
        let mut outer = vec![0x0a, inner.len() as u8];
        outer.extend_from_slice(&inner);
        assert_eq!(grpc_cluster(&outer, known).as_deref(), Some("grpc-backend"));
        assert_eq!(grpc_cluster(b"unknown", known), None);
        assert_eq!(grpc_cluster(&[0xff, 0xff], known), None);
    }
}
