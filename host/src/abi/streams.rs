//! Stream control and context management: `proxy_continue_stream`,
//! `proxy_close_stream`, `proxy_send_local_response`,
//! `proxy_set_effective_context`, `proxy_done`, `proxy_call_foreign_function`
//! (Envoy's `clear_route_cache`, and `verify_signature` in [`super::foreign`]), and the ABI 0.1 aliases Envoy still exports.

use super::memory;
use crate::stream_data::LocalReply;
use crate::types::{Status, StreamType};
use crate::vm::{Action, VmState};
use wasmtime::{Caller, Linker};

/// Envoy's `StringUtil::replaceAllEmptySpace` on response code details.
fn details_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

fn continue_stream(s: &mut VmState, st: StreamType) -> Status {
    let ctx = s.active();
    match st {
        StreamType::Request | StreamType::Response => {
            if s.stream_of(ctx).is_some() {
                s.actions.push(Action::Continue { ctx, stream: st });
            }
            Status::Ok
        }
        // HTTP contexts have no network connection to resume.
        StreamType::Downstream => Status::Ok,
        StreamType::Upstream => Status::Unimplemented,
    }
}

fn clear_route_cache(s: &VmState) {
    if let Some((stream, _)) = s.stream_of(s.active()) {
        stream.borrow_mut().route_cache_cleared += 1;
    }
}

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Caller<'_, VmState>, st: i32| -> i32 {
            match StreamType::from_raw(st) {
                Some(st) => continue_stream(c.data_mut(), st).code(),
                None => Status::BadArgument.code(),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_continue_request",
        |mut c: Caller<'_, VmState>| -> i32 {
            continue_stream(c.data_mut(), StreamType::Request).code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_continue_response",
        |mut c: Caller<'_, VmState>| -> i32 {
            continue_stream(c.data_mut(), StreamType::Response).code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Caller<'_, VmState>, st: i32| -> i32 {
            let Some(st) = StreamType::from_raw(st) else {
                return Status::BadArgument.code();
            };
            let s = c.data_mut();
            let ctx = s.active();
            if matches!(st, StreamType::Request | StreamType::Response)
                && s.stream_of(ctx).is_some()
            {
                s.actions.push(Action::Close { ctx, stream: st });
            }
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Caller<'_, VmState>,
         code: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         grpc: i32|
         -> i32 {
            let (Some(details), Some(body), Some(headers)) = (
                memory::read(&mut c, dp, dl),
                memory::read(&mut c, bp, bl),
                memory::read(&mut c, hp, hl),
            ) else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data_mut();
            let ctx = s.active();
            if s.stream_of(ctx).is_some() {
                s.actions.push(Action::LocalReply {
                    ctx,
                    reply: LocalReply {
                        status: code as u32,
                        body,
                        headers: crate::pairs::decode(&headers),
                        // SDKs pass -1 for "no gRPC status".
                        grpc_status: (0..=16).contains(&grpc).then_some(grpc as u32),
                        details: details_text(&details),
                    },
                });
            }
            s.stop_iteration = true;
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_clear_route_cache",
        |c: Caller<'_, VmState>| -> i32 {
            clear_route_cache(c.data());
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Caller<'_, VmState>, ctx: i32| -> i32 {
            let s = c.data_mut();
            let ctx = ctx as u32;
            if !s.contexts.contains_key(&ctx) {
                return Status::BadArgument.code();
            }
            s.effective = ctx;
            Status::Ok.code()
        },
    )?;
    l.func_wrap("env", "proxy_done", |mut c: Caller<'_, VmState>| -> i32 {
        let s = c.data_mut();
        let ctx = s.active();
        if s.pending_done.remove(&ctx) {
            s.done_called.push(ctx);
            Status::Ok.code()
        } else {
            Status::NotFound.code()
        }
    })?;
    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: Caller<'_, VmState>, np: i32, nl: i32, ap: i32, al: i32, rp: i32, rl: i32| -> i32 {
            let (Some(name), Some(args)) =
                (memory::read(&mut c, np, nl), memory::read(&mut c, ap, al))
            else {
                return Status::InvalidMemoryAccess.code();
            };
            match name.as_slice() {
                b"clear_route_cache" => {
                    clear_route_cache(c.data());
                    // No results; write an empty result if asked for one.
                    if rp != 0 && !memory::write_u32(&mut c, rp, 0) {
                        return Status::InvalidMemoryAccess.code();
                    }
                    if rl != 0 && !memory::write_u32(&mut c, rl, 0) {
                        return Status::InvalidMemoryAccess.code();
                    }
                    Status::Ok.code()
                }
                b"verify_signature" => {
                    let mode = c.data().host.verify_signature_mode();
                    let (status, out) = super::foreign::verify_signature(mode, &args);
                    if status == Status::NotFound {
                        return status.code();
                    }
                    // cpp-host: the result's address and size are written
                    // when asked for (0 and 0 without a result).
                    let data = out.unwrap_or_default();
                    let mut addr = 0u32;
                    if rp != 0 && !data.is_empty() {
                        match memory::alloc(&mut c, data.len()) {
                            Some(a) if memory::write(&mut c, a as i32, &data) => addr = a,
                            _ => return Status::InvalidMemoryAccess.code(),
                        }
                    }
                    if rp != 0 && !memory::write_u32(&mut c, rp, addr) {
                        return Status::InvalidMemoryAccess.code();
                    }
                    if rl != 0 && !memory::write_u32(&mut c, rl, data.len() as u32) {
                        return Status::InvalidMemoryAccess.code();
                    }
                    status.code()
                }
                _ => Status::NotFound.code(),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_configuration",
        |mut c: Caller<'_, VmState>, vp: i32, vl: i32| -> i32 {
            let s = c.data();
            let data = match s.configuring {
                Some(root) => s
                    .plugin_of(root)
                    .map(|p| p.configuration.clone())
                    .unwrap_or_default(),
                None => s.vm_config.clone(),
            };
            if memory::copy_out(&mut c, &data, vp, vl) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    Ok(())
}
