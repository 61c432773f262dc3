//! Guest memory access, in one place: bounds-checked reads and writes, and
//! allocation through the module's `proxy_on_memory_allocate` (or `malloc`).
//! A pointer outside linear memory is reported as `None`/`false`, which the
//! host calls turn into `INVALID_MEMORY_ACCESS` (or WASI `FAULT`).

use crate::vm::VmState;
use wasmtime::{Caller, Memory};

fn memory(caller: &Caller<'_, VmState>) -> Option<Memory> {
    caller.data().memory
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub fn read(caller: &mut Caller<'_, VmState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let mem = memory(caller)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let data = mem.data(&caller);
    let end = ptr.checked_add(len)?;
    data.get(ptr..end).map(|s| s.to_vec())
}

/// Runs `f` on the `len` bytes at `ptr` in guest memory, borrowed in place
/// (no copy), together with the VM's state. `None` when out of bounds.
pub fn with_bytes<R>(
    caller: &mut Caller<'_, VmState>,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&[u8], &mut VmState) -> R,
) -> Option<R> {
    let mem = memory(caller)?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let (data, state) = mem.data_and_store_mut(caller);
    let bytes = data.get(ptr..ptr.checked_add(len)?)?;
    Some(f(bytes, state))
}

/// Reads a little-endian u32.
pub fn read_u32(caller: &mut Caller<'_, VmState>, ptr: i32) -> Option<u32> {
    let mem = memory(caller)?;
    let ptr = ptr as u32 as usize;
    let b = mem.data(&caller).get(ptr..ptr.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// Writes bytes at `ptr`.
pub fn write(caller: &mut Caller<'_, VmState>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(mem) = memory(caller) else {
        return false;
    };
    let ptr = ptr as u32 as usize;
    let data = mem.data_mut(caller);
    match ptr
        .checked_add(bytes.len())
        .and_then(|end| data.get_mut(ptr..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

/// Writes a little-endian u32 (a wasm32 word).
pub fn write_u32(caller: &mut Caller<'_, VmState>, ptr: i32, v: u32) -> bool {
    write(caller, ptr, &v.to_le_bytes())
}

/// Writes a little-endian u64.
pub fn write_u64(caller: &mut Caller<'_, VmState>, ptr: i32, v: u64) -> bool {
    write(caller, ptr, &v.to_le_bytes())
}

/// Allocates `size` bytes inside the VM with its allocator; the returned
/// pointer is checked to lie within linear memory.
pub fn alloc(caller: &mut Caller<'_, VmState>, size: usize) -> Option<u32> {
    let size32 = u32::try_from(size).ok()?;
    // Moved out and back rather than cloned (a clone of a typed function
    // is a type-registry reference count round trip). A host call made from
    // inside the allocator finds no allocator and fails cleanly.
    let f = caller.data_mut().malloc.take()?;
    let r = f.call(&mut *caller, size32 as i32);
    caller.data_mut().malloc = Some(f);
    let ptr = match r {
        Ok(p) => p as u32,
        Err(e) => {
            // A trap in the module's allocator fails the VM like any other
            // trap (cpp-host's allocMemory goes through the VM's fail()).
            caller.data_mut().fatal = Some(format!("trap in the module's allocator: {e}"));
            return None;
        }
    };
    if ptr == 0 {
        return None;
    }
    let mem = memory(caller)?;
    let end = (ptr as usize).checked_add(size)?;
    (end <= mem.data_size(&caller)).then_some(ptr)
}

/// Envoy's `copyToPointerSize`: allocates a copy of `data` in the VM and
/// writes its address and size to `ptr_ptr`/`size_ptr`. Empty data writes a
/// null pointer and zero size without allocating.
pub fn copy_out(
    caller: &mut Caller<'_, VmState>,
    data: &[u8],
    ptr_ptr: i32,
    size_ptr: i32,
) -> bool {
    let mut addr = 0u32;
    if !data.is_empty() {
        match alloc(caller, data.len()) {
            Some(p) => addr = p,
            None => return false,
        }
        if !write(caller, addr as i32, data) {
            return false;
        }
    }
    write_u32(caller, ptr_ptr, addr) && write_u32(caller, size_ptr, data.len() as u32)
}
