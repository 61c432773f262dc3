//! Metrics with Envoy's rules: ids carry their type in the low two bits
//! (counter 0, gauge 1, histogram 2); a counter only increments by a positive
//! delta (and `record` on a counter adds, as Envoy does); a gauge can go both
//! ways and `record` sets it; a histogram records samples and cannot be read.

use super::memory;
use crate::host::record_histogram;
use crate::types::{MetricKind, Status};
use crate::vm::VmState;
use wasmtime::{Caller, Linker};

fn kind_of_id(id: u32) -> Option<MetricKind> {
    MetricKind::from_raw((id & 3) as i32)
}

pub fn add(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Caller<'_, VmState>, kind: i32, np: i32, nl: i32, id_ptr: i32| -> i32 {
            let Some(kind) = MetricKind::from_raw(kind) else {
                return Status::BadArgument.code();
            };
            let Some(name) = memory::read(&mut c, np, nl) else {
                return Status::InvalidMemoryAccess.code();
            };
            let s = c.data_mut();
            let index = s.host.define_metric(kind, &String::from_utf8_lossy(&name));
            let slot = kind as usize;
            let id = s.next_metric[slot];
            s.next_metric[slot] = id.wrapping_add(4);
            s.metric_ids.insert(id, index);
            if memory::write_u32(&mut c, id_ptr, id) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Caller<'_, VmState>, id: i32, delta: i64| -> i32 {
            let id = id as u32;
            let s = c.data();
            match kind_of_id(id) {
                Some(MetricKind::Counter) | Some(MetricKind::Gauge) => {}
                _ => return Status::BadArgument.code(),
            }
            let Some(index) = s.metric_ids.get(&id) else {
                return Status::NotFound.code();
            };
            if kind_of_id(id) == Some(MetricKind::Counter) && delta <= 0 {
                return Status::BadArgument.code();
            }
            s.host
                .with_metric(*index, |m| m.value = m.value.wrapping_add(delta));
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Caller<'_, VmState>, id: i32, value: i64| -> i32 {
            let id = id as u32;
            let s = c.data();
            let Some(index) = s.metric_ids.get(&id) else {
                return Status::NotFound.code();
            };
            let value = value as u64;
            s.host.with_metric(*index, |m| match m.kind {
                MetricKind::Counter => m.value = m.value.wrapping_add(value as i64),
                MetricKind::Gauge => m.value = value as i64,
                MetricKind::Histogram => record_histogram(m, value),
            });
            Status::Ok.code()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Caller<'_, VmState>, id: i32, ptr: i32| -> i32 {
            let id = id as u32;
            let s = c.data();
            match kind_of_id(id) {
                Some(MetricKind::Counter) | Some(MetricKind::Gauge) => {}
                _ => return Status::BadArgument.code(),
            }
            let Some(index) = s.metric_ids.get(&id) else {
                return Status::NotFound.code();
            };
            let v = s.host.with_metric(*index, |m| m.value).unwrap_or(0);
            if memory::write_u64(&mut c, ptr, v as u64) {
                Status::Ok.code()
            } else {
                Status::InvalidMemoryAccess.code()
            }
        },
    )?;
    Ok(())
}
