//! `proxy_log`, `proxy_get_log_level`.

use super::memory;
use crate::types::{LogLevel, Status};
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_log",
        |mut c: Caller<'_, VmState>, level: i32, ptr: i32, len: i32| -> i32 {
            let Some(level) = LogLevel::from_raw(level) else {
                return Status::BadArgument.code();
            };
            let Some(msg) = memory::read(&mut c, ptr, len) else {
                return Status::InvalidMemoryAccess.code();
            };
            c.data().log(level, &String::from_utf8_lossy(&msg));
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Caller<'_, VmState>, ptr: i32| -> i32 {
            let level = c.data().host.log_level as u32;
            if memory::write_u32(&mut c, ptr, level) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    Ok(())
}
