//! `proxy_get_buffer_bytes`, `proxy_get_buffer_status`, `proxy_set_buffer_bytes`.
//!
//! Which buffer is visible depends on the callback, as in Envoy: a stream's
//! body only from its body callback (or while paused from it), the callout
//! body only inside `proxy_on_http_call_response`, the plugin configuration
//! only inside `proxy_on_configure`. Outside its window a body reads as empty
//! and cannot be written; the callout body and plugin configuration are
//! NOT_FOUND.

use super::memory;
use crate::stream_data::window;
use crate::types::{BufferType, Status};
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

/// The current content of a buffer, or the status to return.
fn content(s: &VmState, bt: BufferType) -> Result<Vec<u8>, Status> {
    let ctx = s.active();
    match bt {
        BufferType::HttpRequestBody | BufferType::HttpResponseBody => {
            let Some((stream, pos)) = s.stream_of(ctx) else {
                return Ok(Vec::new());
            };
            let st = stream.borrow();
            let (w, req) = match bt {
                BufferType::HttpRequestBody => (window::REQ_BODY, true),
                _ => (window::RESP_BODY, false),
            };
            if st.slots.get(pos).is_none_or(|sl| sl.open & w == 0) {
                return Ok(Vec::new());
            }
            let slot = &st.slots[pos];
            Ok(if req {
                slot.req_buf.clone()
            } else {
                slot.resp_buf.clone()
            })
        }
        BufferType::DownstreamData | BufferType::UpstreamData => Ok(Vec::new()),
        BufferType::HttpCallResponseBody => match &s.callout {
            Some(c) if c.headers.is_some() || c.body.is_some() || c.trailers.is_some() => {
                Ok(c.body.clone().unwrap_or_default())
            }
            Some(_) => Ok(Vec::new()),
            None => Err(Status::NotFound),
        },
        BufferType::GrpcReceiveBuffer => Ok(s
            .callout
            .as_ref()
            .and_then(|c| c.body.clone())
            .unwrap_or_default()),
        BufferType::VmConfiguration => Ok(s.vm_config.clone()),
        BufferType::PluginConfiguration => match s.configuring {
            Some(root) => Ok(s
                .plugin_of(root)
                .map(|p| p.configuration.clone())
                .unwrap_or_default()),
            None => Err(Status::NotFound),
        },
        BufferType::ForeignFunctionArguments => Ok(s.foreign_args.clone().unwrap_or_default()),
    }
}

/// Envoy's `Buffer::copyFrom`: `start == 0` replaces the first `size` bytes
/// (prepends when `size == 0`), `start >= len` appends, anything else is
/// BAD_ARGUMENT.
pub fn splice(buf: &mut Vec<u8>, start: usize, size: usize, data: &[u8]) -> Status {
    if start == 0 {
        let drain = size.min(buf.len());
        buf.splice(0..drain, data.iter().copied());
        Status::Ok
    } else if start >= buf.len() {
        buf.extend_from_slice(data);
        Status::Ok
    } else {
        Status::BadArgument
    }
}

fn set(s: &VmState, bt: BufferType, start: usize, size: usize, data: &[u8]) -> Status {
    let ctx = s.active();
    let (w, req) = match bt {
        BufferType::HttpRequestBody => (window::REQ_BODY, true),
        BufferType::HttpResponseBody => (window::RESP_BODY, false),
        BufferType::PluginConfiguration if s.configuring.is_none() => return Status::NotFound,
        BufferType::HttpCallResponseBody if s.callout.is_none() => return Status::NotFound,
        // Configuration, callout bodies and arguments are read-only.
        _ => return Status::BadArgument,
    };
    let Some((stream, pos)) = s.stream_of(ctx) else {
        return Status::BadArgument;
    };
    let mut st = stream.borrow_mut();
    if !st.can_write(pos, w) {
        return Status::BadArgument;
    }
    let slot = &mut st.slots[pos];
    splice(
        if req {
            &mut slot.req_buf
        } else {
            &mut slot.resp_buf
        },
        start,
        size,
        data,
    )
}

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Caller<'_, VmState>,
         bt: i32,
         start: i32,
         max: i32,
         ptr_ptr: i32,
         size_ptr: i32|
         -> i32 {
            let Some(bt) = BufferType::from_raw(bt) else {
                return Status::BadArgument.code();
            };
            let data = match content(c.data(), bt) {
                Ok(d) => d,
                Err(s) => return s.code(),
            };
            // Words are 64-bit on the host side, so start + max cannot overflow.
            let (start, mut len) = (start as u32 as usize, max as u32 as usize);
            if start > data.len() {
                len = 0;
            } else if start + len > data.len() {
                len = data.len() - start;
            }
            let slice = if len == 0 {
                &[][..]
            } else {
                &data[start..start + len]
            };
            if memory::copy_out(&mut c, slice, ptr_ptr, size_ptr) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: Caller<'_, VmState>, bt: i32, len_ptr: i32, flags_ptr: i32| -> i32 {
            let Some(bt) = BufferType::from_raw(bt) else {
                return Status::BadArgument.code();
            };
            let len = match content(c.data(), bt) {
                Ok(d) => d.len(),
                Err(s) => return s.code(),
            };
            if memory::write_u32(&mut c, len_ptr, len as u32)
                && memory::write_u32(&mut c, flags_ptr, 0)
            {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Caller<'_, VmState>, bt: i32, start: i32, size: i32, ptr: i32, len: i32| -> i32 {
            let Some(bt) = BufferType::from_raw(bt) else {
                return Status::BadArgument.code();
            };
            let Some(data) = memory::read(&mut c, ptr, len) else {
                return Status::InvalidMemoryAccess.code();
            };
            set(
                c.data(),
                bt,
                start as u32 as usize,
                size as u32 as usize,
                &data,
            )
            .code()
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_semantics() {
        let mut b = b"hello".to_vec();
        assert_eq!(splice(&mut b, 0, 0, b">"), Status::Ok);
        assert_eq!(b, b">hello");
        assert_eq!(splice(&mut b, 0, 6, b"bye"), Status::Ok);
        assert_eq!(b, b"bye");
        assert_eq!(splice(&mut b, 3, 0, b"!"), Status::Ok);
        assert_eq!(b, b"bye!");
        assert_eq!(splice(&mut b, usize::MAX, 0, b"?"), Status::Ok);
        assert_eq!(b, b"bye!?");
        assert_eq!(splice(&mut b, 1, 1, b"x"), Status::BadArgument);
        assert_eq!(splice(&mut b, 0, 100, b"all"), Status::Ok);
        assert_eq!(b, b"all");
    }
}
