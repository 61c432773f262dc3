//! Header map host calls with Envoy's access rules.
//!
//! Request headers can be read and modified from `proxy_on_request_headers`
//! (and while the request is paused from it), read in `proxy_on_log`;
//! likewise for the response side and trailers. Outside those windows
//! `get_header_map_pairs` returns an empty map, `get_header_map_value`
//! BAD_ARGUMENT (NOT_FOUND in the log phase) and modifications BAD_ARGUMENT —
//! exactly what Envoy returns, so a plugin that works here works there.
//! Trailers can be added from the last body callback when the stream has
//! none. Any change to the request headers clears the route cache (ABI 0.2.1).

use super::memory;
use crate::headers::HeaderMap;
use crate::stream_data::{window, StreamData};
use crate::types::{MapType, Status};
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

/// Reads a map through `f`; `Err` when the map is not available now.
fn read_map<R>(s: &VmState, mt: MapType, f: impl FnOnce(&HeaderMap) -> R) -> Result<R, Status> {
    match mt {
        MapType::HttpCallResponseHeaders | MapType::GrpcInitialMetadata => {
            return s
                .callout
                .as_ref()
                .and_then(|c| c.headers.as_ref())
                .map(f)
                .ok_or(Status::BadArgument)
        }
        MapType::HttpCallResponseTrailers | MapType::GrpcTrailingMetadata => {
            return s
                .callout
                .as_ref()
                .and_then(|c| c.trailers.as_ref())
                .map(f)
                .ok_or(Status::BadArgument)
        }
        _ => {}
    }
    let Some((stream, pos)) = s.stream_of(s.active()) else {
        return Err(Status::BadArgument);
    };
    let st = stream.borrow();
    let missing = if st.log_phase {
        Status::NotFound
    } else {
        Status::BadArgument
    };
    let map = match mt {
        MapType::RequestHeaders if st.can_read(pos, window::REQ_HEADERS) => Some(&st.req_headers),
        MapType::RequestTrailers
            if !st.log_phase && st.can_read(pos, window::REQ_TRAILERS | window::REQ_BODY) =>
        {
            st.req_trailers.as_ref()
        }
        MapType::ResponseHeaders if st.can_read(pos, window::RESP_HEADERS) => {
            st.resp_headers.as_ref()
        }
        MapType::ResponseTrailers
            if st.can_read(pos, window::RESP_TRAILERS | window::RESP_BODY) =>
        {
            st.resp_trailers.as_ref()
        }
        _ => None,
    };
    map.map(f).ok_or(missing)
}

/// Modifies a map through `f`; BAD_ARGUMENT when it is not writable now.
fn write_map(s: &VmState, mt: MapType, f: impl FnOnce(&mut HeaderMap)) -> Status {
    let Some((stream, pos)) = s.stream_of(s.active()) else {
        return Status::BadArgument;
    };
    let mut st = stream.borrow_mut();
    let st: &mut StreamData = &mut st;
    match mt {
        MapType::RequestHeaders if st.can_write(pos, window::REQ_HEADERS) => {
            f(&mut st.req_headers);
            st.route_cache_cleared += 1;
        }
        MapType::ResponseHeaders if st.can_write(pos, window::RESP_HEADERS) => {
            match st.resp_headers.as_mut() {
                Some(h) => f(h),
                None => return Status::BadArgument,
            }
        }
        MapType::RequestTrailers => {
            let addable = st.can_write(pos, window::REQ_BODY)
                && st.slots[pos].req_eos
                && st.req_trailers.is_none();
            if addable {
                st.req_trailers = Some(HeaderMap::new());
            }
            let writable = addable || st.can_write(pos, window::REQ_TRAILERS);
            match st.req_trailers.as_mut() {
                Some(t) if writable => f(t),
                _ => return Status::BadArgument,
            }
        }
        MapType::ResponseTrailers => {
            let addable = st.can_write(pos, window::RESP_BODY)
                && st.slots[pos].resp_eos
                && st.resp_trailers.is_none();
            if addable {
                st.resp_trailers = Some(HeaderMap::new());
            }
            let writable = addable || st.can_write(pos, window::RESP_TRAILERS);
            match st.resp_trailers.as_mut() {
                Some(t) if writable => f(t),
                _ => return Status::BadArgument,
            }
        }
        _ => return Status::BadArgument,
    }
    Status::Ok
}

fn map_type(raw: i32) -> Result<MapType, i32> {
    MapType::from_raw(raw).ok_or(Status::BadArgument.code())
}

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Caller<'_, VmState>, mt: i32, ptr_ptr: i32, size_ptr: i32| -> i32 {
            let mt = match map_type(mt) {
                Ok(m) => m,
                Err(e) => return e,
            };
            // Envoy answers an unavailable map with an empty one.
            let bytes = read_map(c.data(), mt, |m| {
                if m.is_empty() {
                    Vec::new()
                } else {
                    m.serialize()
                }
            })
            .unwrap_or_default();
            if memory::copy_out(&mut c, &bytes, ptr_ptr, size_ptr) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Caller<'_, VmState>, mt: i32, ptr: i32, len: i32| -> i32 {
            let mt = match map_type(mt) {
                Ok(m) => m,
                Err(e) => return e,
            };
            let Some(buf) = memory::read(&mut c, ptr, len) else {
                return Status::InvalidMemoryAccess.code();
            };
            let pairs = crate::pairs::decode(&buf);
            write_map(c.data(), mt, |m| m.set_all(pairs)).code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: Caller<'_, VmState>, mt: i32, size_ptr: i32| -> i32 {
            let mt = match map_type(mt) {
                Ok(m) => m,
                Err(e) => return e,
            };
            match read_map(c.data(), mt, |m| m.byte_size()) {
                Ok(n) if memory::write_u32(&mut c, size_ptr, n as u32) => Status::Ok.code(),
                Ok(_) => Status::InvalidMemoryAccess.code(),
                Err(_) => Status::BadArgument.code(),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Caller<'_, VmState>, mt: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
            let mt = match map_type(mt) {
                Ok(m) => m,
                Err(e) => return e,
            };
            // The key is read in place; the value is copied once, into the VM.
            let value = match memory::with_bytes(&mut c, kp, kl, |key, s| {
                read_map(s, mt, |m| m.get(key).map(|v| v.to_vec()))
            }) {
                None => return Status::InvalidMemoryAccess.code(),
                Some(Ok(Some(v))) => v,
                Some(Ok(None)) => return Status::NotFound.code(),
                Some(Err(e)) => return e.code(),
            };
            if memory::copy_out(&mut c, &value, vp, vl) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    for (name, op) in [
        ("proxy_add_header_map_value", 0),
        ("proxy_replace_header_map_value", 1),
    ] {
        l.func_wrap(
            "env",
            name,
            move |mut c: Caller<'_, VmState>, mt: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> i32 {
                let mt = match map_type(mt) {
                    Ok(m) => m,
                    Err(e) => return e,
                };
                let (Some(key), Some(value)) =
                    (memory::read(&mut c, kp, kl), memory::read(&mut c, vp, vl))
                else {
                    return Status::InvalidMemoryAccess.code();
                };
                write_map(c.data(), mt, |m| {
                    if op == 0 {
                        m.add(&key, &value)
                    } else {
                        m.replace(&key, &value)
                    }
                })
                .code()
            },
        )?;
    }
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Caller<'_, VmState>, mt: i32, kp: i32, kl: i32| -> i32 {
            let mt = match map_type(mt) {
                Ok(m) => m,
                Err(e) => return e,
            };
            memory::with_bytes(&mut c, kp, kl, |key, s| {
                write_map(s, mt, |m| m.remove(key)).code()
            })
            .unwrap_or(Status::InvalidMemoryAccess.code())
        },
    )?;
    Ok(())
}
