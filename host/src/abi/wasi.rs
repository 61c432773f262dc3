//! The WASI preview-1 subset Envoy provides, with the errno values
//! proxy-wasm-cpp-host returns: `fd_write` to stdout/stderr goes to the log
//! (INFO / ERROR, trailing newline removed), the clocks read the host clock,
//! `random_get` refuses more than 64 KiB, the environment is the plugin VM's,
//! there are no arguments, and filesystem and socket calls fail cleanly.

use super::memory;
use crate::types::{errno, LogLevel};
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

/// Most bytes one `random_get` may ask for (cpp-host's limit).
pub const RANDOM_GET_MAX: u32 = 64 * 1024;

fn writev(c: &mut Caller<'_, VmState>, fd: i32, iovs: i32, n: i32) -> Result<usize, i32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Err(errno::BADF),
    };
    let mut out = Vec::new();
    for i in 0..(n as u32) {
        let base = (iovs as u32).wrapping_add(i.wrapping_mul(8)) as i32;
        let (Some(ptr), Some(len)) = (
            memory::read_u32(c, base),
            memory::read_u32(c, base.wrapping_add(4)),
        ) else {
            return Err(errno::FAULT);
        };
        if len != 0 {
            match memory::read(c, ptr as i32, len as i32) {
                Some(b) => out.extend_from_slice(&b),
                None => return Err(errno::FAULT),
            }
        }
    }
    let written = out.len();
    if written != 0 {
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        c.data().log(level, &String::from_utf8_lossy(&out));
    }
    Ok(written)
}

fn std_fd(fd: i32) -> bool {
    fd == 1 || fd == 2
}

pub fn add(l: &mut Linker<VmState>, m: &str) -> wasmtime::Result<()> {
    l.func_wrap(
        m,
        "fd_write",
        |mut c: Caller<'_, VmState>, fd: i32, iovs: i32, n: i32, nw: i32| -> i32 {
            match writev(&mut c, fd, iovs, n) {
                Ok(w) if memory::write_u32(&mut c, nw, w as u32) => errno::SUCCESS,
                Ok(_) => errno::FAULT,
                Err(e) => e,
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_pwrite",
        |mut c: Caller<'_, VmState>, fd: i32, iovs: i32, n: i32, _off: i64, nw: i32| -> i32 {
            if !std_fd(fd) {
                return errno::BADF;
            }
            match writev(&mut c, fd, iovs, n) {
                Ok(w) if memory::write_u32(&mut c, nw, w as u32) => errno::SUCCESS,
                Ok(_) => errno::FAULT,
                Err(e) => e,
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_read",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32| -> i32 { errno::NOSYS },
    )?;
    l.func_wrap(
        m,
        "fd_pread",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i64, _: i32| -> i32 { errno::NOSYS },
    )?;
    l.func_wrap(
        m,
        "fd_seek",
        |c: Caller<'_, VmState>, _: i32, _: i64, _: i32, _: i32| -> i32 {
            c.data().log(LogLevel::Trace, "wasi_unstable fd_seek");
            errno::SUCCESS
        },
    )?;
    l.func_wrap(m, "fd_close", |c: Caller<'_, VmState>, _: i32| -> i32 {
        c.data().log(LogLevel::Trace, "wasi_unstable fd_close");
        errno::SUCCESS
    })?;
    l.func_wrap(
        m,
        "fd_fdstat_get",
        |mut c: Caller<'_, VmState>, fd: i32, stat: i32| -> i32 {
            if !std_fd(fd) {
                return errno::BADF;
            }
            let mut buf = [0u8; 24];
            buf[8..16].copy_from_slice(&64u64.to_le_bytes()); // fs_rights_base = FD_WRITE
                                                              // cpp-host ignores a failed write here and still returns success.
            let _ = memory::write(&mut c, stat, &buf);
            errno::SUCCESS
        },
    )?;
    l.func_wrap(
        m,
        "fd_fdstat_set_flags",
        |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { errno::NOSYS },
    )?;
    l.func_wrap(
        m,
        "fd_fdstat_set_rights",
        |_: Caller<'_, VmState>, fd: i32, _: i64, _: i64| -> i32 {
            if std_fd(fd) {
                errno::SUCCESS
            } else {
                errno::BADF
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_prestat_get",
        |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { errno::BADF },
    )?;
    l.func_wrap(
        m,
        "fd_prestat_dir_name",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32| -> i32 { errno::NOSYS },
    )?;
    l.func_wrap(
        m,
        "fd_filestat_get",
        |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { errno::BADF },
    )?;
    l.func_wrap(
        m,
        "fd_advise",
        |_: Caller<'_, VmState>, _: i32, _: i64, _: i64, _: i32| -> i32 { errno::SUCCESS },
    )?;
    for name in ["fd_datasync", "fd_sync"] {
        l.func_wrap(m, name, |_: Caller<'_, VmState>, fd: i32| -> i32 {
            if std_fd(fd) {
                errno::SUCCESS
            } else {
                errno::BADF
            }
        })?;
    }
    l.func_wrap(
        m,
        "fd_allocate",
        |_: Caller<'_, VmState>, fd: i32, _: i64, _: i64| -> i32 {
            if std_fd(fd) {
                errno::SUCCESS
            } else {
                errno::BADF
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_filestat_set_size",
        |_: Caller<'_, VmState>, fd: i32, _: i64| -> i32 {
            if std_fd(fd) {
                errno::SUCCESS
            } else {
                errno::BADF
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_filestat_set_times",
        |_: Caller<'_, VmState>, fd: i32, _: i64, _: i64, _: i32| -> i32 {
            if std_fd(fd) {
                errno::SUCCESS
            } else {
                errno::BADF
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_readdir",
        |mut c: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i64, nr: i32| -> i32 {
            if !memory::write_u32(&mut c, nr, 0) {
                return errno::FAULT;
            }
            errno::NOTDIR
        },
    )?;
    l.func_wrap(
        m,
        "fd_renumber",
        |_: Caller<'_, VmState>, fd: i32, to: i32| -> i32 {
            if std_fd(fd) && std_fd(to) {
                errno::NOTSUP
            } else {
                errno::BADF
            }
        },
    )?;
    l.func_wrap(
        m,
        "fd_tell",
        |mut c: Caller<'_, VmState>, fd: i32, out: i32| -> i32 {
            if !std_fd(fd) {
                return errno::BADF;
            }
            if memory::write_u64(&mut c, out, 0) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    l.func_wrap(
        m,
        "path_open",
        |_: Caller<'_, VmState>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i64,
         _: i64,
         _: i32,
         _: i32|
         -> i32 { errno::NOENT },
    )?;
    l.func_wrap(
        m,
        "path_filestat_get",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { errno::NOTSUP },
    )?;
    l.func_wrap(
        m,
        "path_filestat_set_times",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32| -> i32 {
            errno::NOTSUP
        },
    )?;
    for name in [
        "path_create_directory",
        "path_remove_directory",
        "path_unlink_file",
    ] {
        l.func_wrap(
            m,
            name,
            |_: Caller<'_, VmState>, _: i32, _: i32, _: i32| -> i32 { errno::NOTSUP },
        )?;
    }
    l.func_wrap(
        m,
        "path_link",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
            errno::NOTSUP
        },
    )?;
    l.func_wrap(
        m,
        "path_readlink",
        |mut c: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, _: i32, out: i32| -> i32 {
            if !memory::write_u32(&mut c, out, 0) {
                return errno::FAULT;
            }
            errno::NOTSUP
        },
    )?;
    l.func_wrap(
        m,
        "path_rename",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
            errno::NOTSUP
        },
    )?;
    l.func_wrap(
        m,
        "path_symlink",
        |_: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { errno::NOTSUP },
    )?;
    l.func_wrap(
        m,
        "sock_accept",
        |mut c: Caller<'_, VmState>, _: i32, _: i32, out: i32| -> i32 {
            if !memory::write_u32(&mut c, out, 0) {
                return errno::FAULT;
            }
            errno::NOTSUP
        },
    )?;
    l.func_wrap(
        m,
        "sock_recv",
        |mut c: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, o1: i32, o2: i32| -> i32 {
            if !memory::write_u32(&mut c, o1, 0) || !memory::write(&mut c, o2, &[0, 0]) {
                return errno::FAULT;
            }
            errno::NOTSUP
        },
    )?;
    l.func_wrap(
        m,
        "sock_send",
        |mut c: Caller<'_, VmState>, _: i32, _: i32, _: i32, _: i32, o: i32| -> i32 {
            if !memory::write_u32(&mut c, o, 0) {
                return errno::FAULT;
            }
            errno::NOTSUP
        },
    )?;
    l.func_wrap(
        m,
        "sock_shutdown",
        |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { errno::NOTSUP },
    )?;
    l.func_wrap(
        m,
        "environ_sizes_get",
        |mut c: Caller<'_, VmState>, count: i32, size: i32| -> i32 {
            let env = &c.data().env;
            let n = env.len() as u32;
            let total: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            if memory::write_u32(&mut c, count, n) && memory::write_u32(&mut c, size, total as u32)
            {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    l.func_wrap(
        m,
        "environ_get",
        |mut c: Caller<'_, VmState>, array: i32, buf: i32| -> i32 {
            let env = c.data().env.clone();
            let (mut array, mut buf) = (array as u32, buf as u32);
            for (k, v) in env {
                if !memory::write_u32(&mut c, array as i32, buf) {
                    return errno::FAULT;
                }
                let mut data = Vec::with_capacity(k.len() + v.len() + 2);
                data.extend_from_slice(k.as_bytes());
                data.push(b'=');
                data.extend_from_slice(v.as_bytes());
                data.push(0);
                if !memory::write(&mut c, buf as i32, &data) {
                    return errno::FAULT;
                }
                buf = buf.wrapping_add(data.len() as u32);
                array = array.wrapping_add(4);
            }
            errno::SUCCESS
        },
    )?;
    l.func_wrap(
        m,
        "args_sizes_get",
        |mut c: Caller<'_, VmState>, argc: i32, size: i32| -> i32 {
            if memory::write_u32(&mut c, argc, 0) && memory::write_u32(&mut c, size, 0) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    l.func_wrap(
        m,
        "args_get",
        |_: Caller<'_, VmState>, _: i32, _: i32| -> i32 { errno::SUCCESS },
    )?;
    l.func_wrap(
        m,
        "clock_time_get",
        |mut c: Caller<'_, VmState>, id: i32, _prec: i64, out: i32| -> i32 {
            let clock = &c.data().host.clock;
            let t = match id {
                0 => clock.now_ns(),
                1 => clock.monotonic_ns(),
                _ => return errno::NOTSUP,
            };
            if memory::write_u64(&mut c, out, t as u64) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    l.func_wrap(
        m,
        "clock_res_get",
        |mut c: Caller<'_, VmState>, id: i32, out: i32| -> i32 {
            if !(0..=1).contains(&id) {
                return errno::NOTSUP;
            }
            if memory::write_u64(&mut c, out, 1) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    l.func_wrap(
        m,
        "random_get",
        |mut c: Caller<'_, VmState>, ptr: i32, len: i32| -> i32 {
            let len = len as u32;
            if len > RANDOM_GET_MAX {
                return errno::INVAL;
            }
            if len == 0 {
                return errno::SUCCESS;
            }
            let mut bytes = Vec::with_capacity(len as usize + 8);
            while bytes.len() < len as usize {
                let r = c.data_mut().next_random();
                bytes.extend_from_slice(&r.to_le_bytes());
            }
            bytes.truncate(len as usize);
            if memory::write(&mut c, ptr, &bytes) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    l.func_wrap(m, "sched_yield", |_: Caller<'_, VmState>| -> i32 {
        errno::SUCCESS
    })?;
    l.func_wrap(
        m,
        "poll_oneoff",
        |mut c: Caller<'_, VmState>, _: i32, _: i32, _: i32, nev: i32| -> i32 {
            if memory::write_u32(&mut c, nev, 0) {
                errno::SUCCESS
            } else {
                errno::FAULT
            }
        },
    )?;
    l.func_wrap(m, "proc_exit", |c: Caller<'_, VmState>, _code: i32| {
        // Envoy notes it at trace level (Context::error) and returns; the
        // module usually traps right after.
        c.data().log(LogLevel::Trace, "wasi_unstable proc_exit");
    })?;
    if m == "wasi_snapshot_preview1" {
        l.func_wrap(
            "env",
            "emscripten_notify_memory_growth",
            |_: Caller<'_, VmState>, _: i32| {},
        )?;
        l.func_wrap(
            "env",
            "pthread_equal",
            |_: Caller<'_, VmState>, a: i32, b: i32| -> i32 { i32::from(a == b) },
        )?;
    }
    Ok(())
}
