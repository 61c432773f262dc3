//! Memory the host hands over: it asks the module for memory with
//! `proxy_on_memory_allocate` (answered by [`allocate`] with the global
//! allocator, alignment 1), writes a result there, and passes the pointer
//! and size back; [`HostBuf`] owns such a buffer and frees it when dropped.

use std::alloc::{alloc, dealloc, Layout};
use std::ptr::NonNull;

/// `proxy_on_memory_allocate`: `size` bytes for the host to fill, null if
/// the allocator is out of memory. Zero bytes need no allocation (a
/// dangling, non-null pointer).
pub fn allocate(size: usize) -> *mut u8 {
    if size == 0 {
        return NonNull::<u8>::dangling().as_ptr();
    }
    match Layout::array::<u8>(size) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) => unsafe { alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Bytes the host allocated in this module's memory with [`allocate`]:
/// a header map, a property, a body, shared data... Freed on drop.
pub struct HostBuf {
    ptr: NonNull<u8>,
    len: usize,
}

impl HostBuf {
    /// An empty buffer.
    pub const fn empty() -> HostBuf {
        HostBuf {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    /// Takes over what a host call returned (a null pointer or zero size is
    /// an empty buffer).
    ///
    /// # Safety
    /// A non-null `ptr` with a non-zero `len` must have been returned by
    /// [`allocate`]`(len)` and not be owned by anything else.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> HostBuf {
        match NonNull::new(ptr) {
            Some(ptr) if len > 0 => HostBuf { ptr, len },
            _ => HostBuf::empty(),
        }
    }

    /// The bytes as UTF-8, if they are.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self).ok()
    }

    /// The bytes as an owned vector, without copying.
    pub fn into_vec(self) -> Vec<u8> {
        let me = std::mem::ManuallyDrop::new(self);
        if me.len == 0 {
            return Vec::new();
        }
        // SAFETY: allocated by `allocate(len)`: the global allocator with
        // the layout of `[u8; len]`, which is what `Vec<u8>` of capacity
        // `len` frees.
        unsafe { Vec::from_raw_parts(me.ptr.as_ptr(), me.len, me.len) }
    }

    /// The bytes as an owned string (invalid UTF-8 replaced), without
    /// copying when they are valid.
    pub fn into_string_lossy(self) -> String {
        match String::from_utf8(self.into_vec()) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

impl std::ops::Deref for HostBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` bytes (dangling only when 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for HostBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated by `allocate(len)` with this layout.
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::array::<u8>(self.len).unwrap_unchecked(),
                )
            }
        }
    }
}

impl std::fmt::Debug for HostBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostBuf({:?})", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a host does: allocate, copy, hand back.
    fn from_host(bytes: &[u8]) -> HostBuf {
        let p = allocate(bytes.len());
        assert!(!p.is_null());
        // SAFETY: `p` has room for `bytes.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            HostBuf::from_raw(p, bytes.len())
        }
    }

    #[test]
    fn owns_and_frees_host_buffers() {
        let b = from_host(b"hello");
        assert_eq!(&*b, b"hello");
        assert_eq!(b.as_str(), Some("hello"));
        drop(b);
        assert_eq!(from_host(b"abc").into_vec(), b"abc".to_vec());
        assert_eq!(from_host(b"a\xffb").into_string_lossy(), "a\u{fffd}b");
        assert_eq!(from_host(b"").len(), 0);
        assert!(from_host(b"").into_vec().is_empty());
        // SAFETY: null is an empty buffer.
        let null = unsafe { HostBuf::from_raw(std::ptr::null_mut(), 10) };
        assert!(null.is_empty());
        assert!(HostBuf::empty().as_str() == Some(""));
    }
}
