//! Shared data (with compare-and-swap) and shared queues, visible to every
//! VM with the same `vm_id`.

use super::memory;
use crate::types::Status;
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Caller<'_, VmState>, kp: i32, kl: i32, vp: i32, vl: i32, cas_ptr: i32| -> i32 {
            let Some(key) = memory::read(&mut c, kp, kl) else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data();
            let Some((value, cas)) = s.host.get_shared_data(&s.vm_id, &key) else {
                return Status::NotFound.code();
            };
            if memory::copy_out(&mut c, &value, vp, vl) && memory::write_u32(&mut c, cas_ptr, cas) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Caller<'_, VmState>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> i32 {
            let (Some(key), Some(value)) =
                (memory::read(&mut c, kp, kl), memory::read(&mut c, vp, vl))
            else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data();
            s.host
                .set_shared_data(&s.vm_id, &key, &value, cas as u32)
                .code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Caller<'_, VmState>, np: i32, nl: i32, tp: i32| -> i32 {
            let Some(name) = memory::read(&mut c, np, nl) else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data();
            // onQueueReady goes to the root context, also when a stream
            // context registers.
            let root = s.root_of(s.active());
            let token = s.host.register_queue(&s.vm_id, &name, s.instance_id, root);
            if memory::write_u32(&mut c, tp, token) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Caller<'_, VmState>, vp: i32, vl: i32, np: i32, nl: i32, tp: i32| -> i32 {
            let (Some(vm_id), Some(name)) =
                (memory::read(&mut c, vp, vl), memory::read(&mut c, np, nl))
            else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data();
            let vm_id = if vm_id.is_empty() {
                s.vm_id.clone()
            } else {
                String::from_utf8_lossy(&vm_id).into_owned()
            };
            let Some(token) = s.host.resolve_queue(&vm_id, &name) else {
                return Status::NotFound.code();
            };
            if memory::write_u32(&mut c, tp, token) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Caller<'_, VmState>, token: i32, vp: i32, vl: i32| -> i32 {
            let Some(value) = memory::read(&mut c, vp, vl) else {
                return Status::InvalidMemoryAccess.code();
            };
            c.data().host.enqueue(token as u32, &value).code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Caller<'_, VmState>, token: i32, vp: i32, vl: i32| -> i32 {
            let value = match c.data().host.dequeue(token as u32) {
                Ok(v) => v,
                Err(e) => return e.code(),
            };
            if memory::copy_out(&mut c, &value, vp, vl) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    Ok(())
}
