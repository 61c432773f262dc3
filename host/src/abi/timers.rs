//! `proxy_set_tick_period_milliseconds` and `proxy_get_current_time_nanoseconds`.

use super::memory;
use crate::types::Status;
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Caller<'_, VmState>, period: i32| -> i32 {
            let s = c.data_mut();
            // The timer belongs to the root context (as in Envoy, also when a
            // stream context asks).
            let root = s.root_of(s.active());
            s.ticks.push((root, period as u32));
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Caller<'_, VmState>, ptr: i32| -> i32 {
            let now = c.data().host.clock.now_ns() as u64;
            if memory::write_u64(&mut c, ptr, now) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    Ok(())
}
