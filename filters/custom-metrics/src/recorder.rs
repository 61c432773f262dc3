//! Turns a finished stream into metric updates: label sets → stat names →
//! metric ids (defined once per VM and cached), the cardinality guard, the
//! `inflight` gauges and the access log line.

use crate::attribute::{rfc3339, Value};
use crate::config::{Compiled, GroupDef, LabelDef, LabelSource, ValueSource};
use crate::resolver::{Resolver, SlotCache, StreamHost};
use crate::tags::{self, MetricKind};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

/// Where metric updates go: the proxy-wasm metric calls in the filter, a
/// recording fake in tests.
pub trait MetricSink {
    /// `proxy_define_metric`; `None` when the host refuses.
    fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    /// `proxy_increment_metric`.
    fn increment(&mut self, id: u32, delta: i64);
    /// `proxy_record_metric`.
    fn record(&mut self, id: u32, value: u64);
}

/// The label value written for folded labels.
pub const FOLDED: &str = "other";

/// FxHash (rustc's hasher): label keys are hashed on every request, and the
/// keys are not attacker-controlled in a way that matters (the cache is
/// bounded by the cardinality guard).
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default)]
struct GroupState {
    /// The label set as values ([`push_value_key`]) → index into `ids`:
    /// the common path, a hash of the values and no string building.
    by_values: FxMap<Box<[u8]>, u32>,
    /// Encoded label segments → index into `ids`, consulted only when the
    /// values are new: two value sets that encode to the same stat name (a
    /// `;` made `_`) are one label set for the cardinality guard.
    by_name: FxMap<Box<str>, u32>,
    /// Metric ids per label set (one per metric of the group).
    ids: Vec<Box<[Option<u32>]>>,
    /// Label sets admitted (the folded set is not counted).
    admitted: usize,
    /// Overflow counter id per metric, defined on first overflow.
    overflow: Vec<Option<Option<u32>>>,
}

/// Groups of the configuration with the same labels (same names, sources
/// and rendering) merged into one, so that a request looks its label set up
/// once for all of them: the three user metrics of one dimension list are
/// one lookup. Every metric of a merged group sees every request with the
/// same label set, so the admitted sets, the overflow counts and the stat
/// names are those of separate groups.
struct Merged {
    groups: Vec<GroupDef>,
    /// The merged group of each configuration group.
    of_config_group: Vec<usize>,
}

fn merge(groups: &[GroupDef]) -> Merged {
    let same = |a: &[LabelDef], b: &[LabelDef]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.name == y.name && x.source == y.source && x.unknown_if_empty == y.unknown_if_empty
            })
    };
    let mut out: Vec<GroupDef> = Vec::new();
    let mut of = Vec::with_capacity(groups.len());
    for g in groups {
        match out.iter().position(|m| same(&m.labels, &g.labels)) {
            Some(i) => {
                out[i].metrics.extend(g.metrics.iter().cloned());
                of.push(i);
            }
            None => {
                of.push(out.len());
                out.push(g.clone());
            }
        }
    }
    Merged {
        groups: out,
        of_config_group: of,
    }
}

/// Per-VM recording state.
pub struct Recorder {
    groups: Merged,
    states: Vec<GroupState>,
    inflight_groups: Merged,
    inflight_states: Vec<GroupState>,
    inflight: i64,
    /// Reused buffers: the stat-name key, a label rendering, the value key,
    /// the resolver's slot values (and the VM's constant ones).
    key: String,
    scratch: String,
    vkey: Vec<u8>,
    cache: SlotCache,
}

/// What the filter remembers between request start and stream end.
#[derive(Debug, Default, Clone)]
pub struct Started {
    /// Whether the stream was counted in flight.
    pub counted: bool,
    /// `inflight` gauge ids incremented at the start.
    pub gauge_ids: Vec<u32>,
}

impl Recorder {
    /// Fresh state for `cfg`.
    pub fn new(cfg: &Compiled) -> Recorder {
        let states = |m: &Merged| -> Vec<GroupState> {
            m.groups
                .iter()
                .map(|g| GroupState {
                    overflow: vec![None; g.metrics.len()],
                    ..Default::default()
                })
                .collect()
        };
        let groups = merge(&cfg.groups);
        let inflight_groups = merge(&cfg.inflight_groups);
        Recorder {
            states: states(&groups),
            inflight_states: states(&inflight_groups),
            groups,
            inflight_groups,
            inflight: 0,
            key: String::with_capacity(512),
            scratch: String::with_capacity(64),
            vkey: Vec::with_capacity(256),
            cache: SlotCache::default(),
        }
    }

    /// Requests in flight in this VM.
    pub fn inflight(&self) -> i64 {
        self.inflight
    }

    /// Distinct label sets admitted so far per group (tests, diagnostics).
    /// (One entry per configuration group; merged groups report the same
    /// count.)
    pub fn admitted(&self) -> Vec<usize> {
        self.groups
            .of_config_group
            .iter()
            .map(|&m| self.states[m].admitted)
            .collect()
    }

    /// A request starts (its headers reached this filter): count it in
    /// flight and raise the `inflight` gauges for its labels.
    pub fn on_request_start<H: StreamHost>(
        &mut self,
        cfg: &Compiled,
        host: &mut H,
        sink: &mut dyn MetricSink,
    ) -> Started {
        if !cfg.uses_inflight() {
            return Started::default();
        }
        self.inflight += 1;
        let cache = std::mem::take(&mut self.cache);
        let mut res = Resolver::with_cache(host, cfg, self.inflight, cache);
        let mut ids = Vec::with_capacity(cfg.inflight_groups.len());
        for (gi, g) in self.inflight_groups.groups.iter().enumerate() {
            let state = &mut self.inflight_states[gi];
            let slot = resolve_ids(
                state,
                g,
                cfg,
                &mut res,
                sink,
                &mut self.key,
                &mut self.scratch,
                &mut self.vkey,
            );
            for id in slot.iter().flatten() {
                sink.increment(*id, 1);
                ids.push(*id);
            }
        }
        self.cache = res.into_cache();
        Started {
            counted: true,
            gauge_ids: ids,
        }
    }

    /// The stream ended (`proxy_on_log`): record every metric, undo the
    /// start's `inflight` changes, and return the access log line if one is
    /// configured.
    pub fn on_log<H: StreamHost>(
        &mut self,
        cfg: &Compiled,
        host: &mut H,
        sink: &mut dyn MetricSink,
        started: &Started,
    ) -> Option<String> {
        let line = {
            let cache = std::mem::take(&mut self.cache);
            let mut res = Resolver::with_cache(host, cfg, self.inflight, cache);
            for (gi, g) in self.groups.groups.iter().enumerate() {
                let state = &mut self.states[gi];
                let ids = resolve_ids(
                    state,
                    g,
                    cfg,
                    &mut res,
                    sink,
                    &mut self.key,
                    &mut self.scratch,
                    &mut self.vkey,
                );
                for (m, id) in g.metrics.iter().zip(ids.iter()) {
                    let Some(id) = *id else { continue };
                    let v = match m.value {
                        ValueSource::One => Some(1),
                        ValueSource::Slot(s) => res.slot(s).as_i64(),
                    };
                    let Some(v) = v else { continue };
                    match m.kind {
                        MetricKind::Counter if v > 0 => sink.increment(id, v),
                        MetricKind::Gauge | MetricKind::Histogram if v >= 0 => {
                            sink.record(id, v as u64)
                        }
                        _ => {}
                    }
                }
            }
            let line = cfg
                .access_log
                .as_ref()
                .map(|fields| access_log_line(fields, &mut res));
            self.cache = res.into_cache();
            line
        };
        self.on_stream_gone(started, sink);
        line
    }

    /// Undoes the start's `inflight` changes (stream end, or a stream that
    /// is destroyed without `proxy_on_log`).
    pub fn on_stream_gone(&mut self, started: &Started, sink: &mut dyn MetricSink) {
        if started.counted {
            self.inflight -= 1;
        }
        for id in &started.gauge_ids {
            sink.increment(*id, -1);
        }
    }
}

/// The ids of `g`'s metrics for this stream's label set, defining them on
/// first use and applying the cardinality guard.
#[allow(clippy::too_many_arguments)]
fn resolve_ids<'s, H: StreamHost>(
    state: &'s mut GroupState,
    g: &GroupDef,
    cfg: &Compiled,
    res: &mut Resolver<'_, H>,
    sink: &mut dyn MetricSink,
    key: &mut String,
    scratch: &mut String,
    vkey: &mut Vec<u8>,
) -> &'s [Option<u32>] {
    vkey.clear();
    res.begin_key();
    for l in &g.labels {
        if let LabelSource::Slot(slot) = l.source {
            res.push_key(slot, vkey);
        }
    }
    if let Some(&i) = state.by_values.get(vkey.as_slice()) {
        return &state.ids[i as usize];
    }
    build_key(g, res, false, key, scratch);
    if let Some(&i) = state.by_name.get(key.as_str()) {
        // New values for an admitted stat name: not remembered by value, so
        // that the cache stays bounded by the admitted sets.
        return &state.ids[i as usize];
    }
    let i = if state.admitted < cfg.max_label_values {
        state.admitted += 1;
        let i = insert(state, g, key, sink);
        state.by_values.insert(vkey.as_slice().into(), i);
        i
    } else {
        for (mi, m) in g.metrics.iter().enumerate() {
            let id = *state.overflow[mi].get_or_insert_with(|| {
                let name = tags::encode_stat_name(
                    tags::OVERFLOW_METRIC,
                    &[(tags::OVERFLOW_LABEL, &m.name)],
                );
                sink.define(MetricKind::Counter, &name)
            });
            if let Some(id) = id {
                sink.increment(id, 1);
            }
        }
        build_key(g, res, true, key, scratch);
        match state.by_name.get(key.as_str()) {
            Some(&i) => i,
            None => insert(state, g, key, sink),
        }
    };
    &state.ids[i as usize]
}

fn insert(state: &mut GroupState, g: &GroupDef, key: &str, sink: &mut dyn MetricSink) -> u32 {
    let i = state.ids.len() as u32;
    state.ids.push(define_all(g, key, sink));
    state.by_name.insert(key.into(), i);
    i
}

fn define_all(g: &GroupDef, key: &str, sink: &mut dyn MetricSink) -> Box<[Option<u32>]> {
    g.metrics
        .iter()
        .map(|m| {
            let mut name = String::with_capacity(key.len() + m.name.len());
            name.push_str(key);
            name.push_str(&m.name);
            sink.define(m.kind, &name)
        })
        .collect()
}

/// Writes the group's `name=.=value;.;` segments into `key`.
fn build_key<H: StreamHost>(
    g: &GroupDef,
    res: &mut Resolver<'_, H>,
    fold: bool,
    key: &mut String,
    scratch: &mut String,
) {
    key.clear();
    for l in &g.labels {
        match &l.source {
            // Static values were made safe when the configuration was compiled.
            LabelSource::Static(s) => {
                key.push_str(&l.name);
                key.push_str(tags::VALUE_SEPARATOR);
                key.push_str(s);
                key.push_str(tags::FIELD_SEPARATOR);
            }
            LabelSource::Slot(_) if fold => tags::push_label(key, &l.name, FOLDED),
            LabelSource::Slot(slot) => match res.slot(*slot) {
                v if l.unknown_if_empty && v.is_empty() => {
                    tags::push_label(key, &l.name, "unknown")
                }
                Value::Str(s) => tags::push_label(key, &l.name, s),
                Value::Missing => tags::push_label(key, &l.name, "unknown"),
                v => {
                    scratch.clear();
                    v.write_label(scratch);
                    tags::push_label(key, &l.name, scratch);
                }
            },
        }
    }
}

/// One JSON object: the configured keys in order, strings as strings,
/// integers and booleans as such, timestamps in RFC 3339, missing values as
/// `null`.
fn access_log_line<H: StreamHost>(fields: &[(String, usize)], res: &mut Resolver<'_, H>) -> String {
    let mut out = String::with_capacity(256);
    out.push('{');
    for (i, (k, slot)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, k);
        out.push(':');
        match res.slot(*slot) {
            Value::Missing => out.push_str("null"),
            Value::Str(s) => push_json_string(&mut out, s),
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Time(ns) => push_json_string(&mut out, &rfc3339(*ns)),
        }
    }
    out.push('}');
    out
}

/// A JSON string literal: `"` and `\` escaped, control characters as
/// `\n`, `\t`... or `\u00XX`.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
