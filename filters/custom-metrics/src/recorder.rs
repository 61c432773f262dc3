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
mod tests {
    use super::*;
    use crate::config::NodeInfo;
    use crate::resolver::tests::FakeStream;
    use crate::tags::decode_stat_name;

    /// Records what the filter asked for, like Envoy's stats store.
    #[derive(Default)]
    struct FakeSink {
        names: Vec<(MetricKind, String)>,
        values: HashMap<u32, i64>,
        samples: HashMap<u32, Vec<u64>>,
    }

    impl MetricSink for FakeSink {
        fn define(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
            if let Some(i) = self.names.iter().position(|(_, n)| n == name) {
                return Some(i as u32);
            }
            self.names.push((kind, name.to_string()));
            Some(self.names.len() as u32 - 1)
        }
        fn increment(&mut self, id: u32, delta: i64) {
            *self.values.entry(id).or_default() += delta;
        }
        fn record(&mut self, id: u32, value: u64) {
            match self.names[id as usize].0 {
                MetricKind::Histogram => self.samples.entry(id).or_default().push(value),
                _ => {
                    self.values.insert(id, value as i64);
                }
            }
        }
    }

    impl FakeSink {
        fn id(&self, name: &str) -> u32 {
            self.names
                .iter()
                .position(|(_, n)| n == name)
                .unwrap_or_else(|| panic!("{name} not defined; have {:#?}", self.names))
                as u32
        }
        fn value(&self, name: &str) -> i64 {
            self.values.get(&self.id(name)).copied().unwrap_or(0)
        }
        fn samples(&self, name: &str) -> Vec<u64> {
            self.samples
                .get(&self.id(name))
                .cloned()
                .unwrap_or_default()
        }
        fn named(&self, metric: &str) -> Vec<&str> {
            self.names
                .iter()
                .map(|(_, n)| n.as_str())
                .filter(|n| decode_stat_name(n).map(|(m, _)| m) == Some(metric))
                .collect()
        }
    }

    fn cfg(json: &str) -> Compiled {
        Compiled::from_json(json.as_bytes(), NodeInfo::default()).unwrap()
    }

    fn run(
        r: &mut Recorder,
        c: &Compiled,
        sink: &mut FakeSink,
        s: &mut FakeStream,
    ) -> Option<String> {
        let started = r.on_request_start(c, s, sink);
        r.on_log(c, s, sink, &started)
    }

    const STD_200: &str = "reporter=.=destination;.;source_workload=.=unknown;.;source_workload_namespace=.=unknown;.;\
source_principal=.=unknown;.;source_app=.=unknown;.;source_version=.=unknown;.;destination_workload=.=unknown;.;\
destination_workload_namespace=.=unknown;.;destination_principal=.=unknown;.;destination_service=.=api.example.com;.;\
destination_service_name=.=api.example.com;.;destination_service_namespace=.=unknown;.;request_protocol=.=http;.;\
response_code=.=200;.;grpc_response_status=.=;.;response_flags=.=-;.;connection_security_policy=.=unknown;.;";

    #[test]
    fn standard_metrics_defined_once_and_recorded() {
        let c = cfg("{}");
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        for _ in 0..3 {
            let mut s = FakeStream::get("/")
                .int("request.duration", 25_000_000)
                .int("request.total_size", 300)
                .int("response.total_size", 700);
            run(&mut r, &c, &mut sink, &mut s);
        }
        assert_eq!(sink.names.len(), 4, "{:#?}", sink.names);
        assert_eq!(sink.value(&format!("{STD_200}istio_requests_total")), 3);
        assert_eq!(
            sink.samples(&format!("{STD_200}istio_request_duration_milliseconds")),
            vec![25, 25, 25]
        );
        assert_eq!(
            sink.samples(&format!("{STD_200}istio_request_bytes")),
            vec![300; 3]
        );
        assert_eq!(
            sink.samples(&format!("{STD_200}istio_response_bytes")),
            vec![700; 3]
        );
    }

    #[test]
    fn standard_labels_from_istio_inputs() {
        let node = NodeInfo {
            workload: "reviews-v1".into(),
            namespace: "prod".into(),
            app: "reviews".into(),
            version: "v1".into(),
        };
        let c = Compiled::from_json(b"{}", node).unwrap();
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        let mut s = FakeStream::get("/")
            .str("downstream_peer.workload", "productpage-v1")
            .str("downstream_peer.namespace", "prod")
            .str("downstream_peer.app", "productpage")
            .str("downstream_peer.version", "v1")
            .str(
                "connection.uri_san_peer_certificate",
                "spiffe://cluster.local/ns/prod/sa/productpage",
            )
            .str(
                "connection.uri_san_local_certificate",
                "spiffe://cluster.local/ns/prod/sa/reviews",
            )
            .boolean("connection.mtls", true)
            .str(
                "xds.cluster_name",
                "inbound|9080||reviews.prod.svc.cluster.local",
            )
            .int("response.code", 503)
            .int("response.flags", 0x20)
            .str("wasmesh.fault", "FI");
        s.req.add("content-type", "application/grpc");
        run(&mut r, &c, &mut sink, &mut s);
        let name = sink.named("istio_requests_total")[0].to_string();
        let (_, labels) = decode_stat_name(&name).unwrap();
        let got: Vec<(&str, &str)> = labels;
        assert_eq!(
            got,
            vec![
                ("reporter", "destination"),
                ("source_workload", "productpage-v1"),
                ("source_workload_namespace", "prod"),
                (
                    "source_principal",
                    "spiffe://cluster.local/ns/prod/sa/productpage"
                ),
                ("source_app", "productpage"),
                ("source_version", "v1"),
                ("destination_workload", "reviews-v1"),
                ("destination_workload_namespace", "prod"),
                (
                    "destination_principal",
                    "spiffe://cluster.local/ns/prod/sa/reviews"
                ),
                ("destination_service", "reviews.prod.svc.cluster.local"),
                ("destination_service_name", "reviews"),
                ("destination_service_namespace", "prod"),
                ("request_protocol", "grpc"),
                ("response_code", "503"),
                ("grpc_response_status", "14"),
                ("response_flags", "UF,FI"),
                ("connection_security_policy", "mutual_tls"),
            ]
        );
    }

    #[test]
    fn user_metrics_of_each_type() {
        let c = cfg(
            r#"{"standardMetrics": false, "pathTemplates": ["/users/{id}"],
                "metrics": [
                  {"name": "api_requests_total", "type": "COUNTER",
                   "dimensions": {"method": "request.method", "route": "request.path_template", "plan": "request.headers[x-plan]"}},
                  {"name": "api_bytes_total", "type": "COUNTER", "value": "response.size"},
                  {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms", "dimensions": {"method": "request.method"}},
                  {"name": "last_request_size", "type": "GAUGE", "value": "request.size"},
                  {"name": "inflight", "type": "GAUGE", "value": "inflight", "dimensions": {"method": "request.method"}},
                  {"name": "concurrency", "type": "HISTOGRAM", "value": "inflight"}
                ]}"#,
        );
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        let mut a = FakeStream::get("/users/1")
            .int("request.duration", 5_000_000)
            .int("response.size", 10);
        a.req.add("x-plan", "pro");
        a.req.add("content-length", "4");
        let mut b = FakeStream::get("/users/2")
            .int("request.duration", 9_000_000)
            .int("response.size", 30);
        let mut post = FakeStream::get("/nope").int("request.duration", 1_000_000);
        post.req.set(":method", "POST");
        // a and b overlap: b starts before a ends.
        let sa = r.on_request_start(&c, &mut a, &mut sink);
        let sb = r.on_request_start(&c, &mut b, &mut sink);
        assert_eq!(sink.value("method=.=GET;.;inflight"), 2);
        assert_eq!(r.inflight(), 2);
        r.on_log(&c, &mut a, &mut sink, &sa);
        assert_eq!(sink.value("method=.=GET;.;inflight"), 1);
        r.on_log(&c, &mut b, &mut sink, &sb);
        run(&mut r, &c, &mut sink, &mut post);
        assert_eq!(sink.value("method=.=GET;.;inflight"), 0);
        assert_eq!(sink.value("method=.=POST;.;inflight"), 0);
        assert_eq!(r.inflight(), 0);

        assert_eq!(
            sink.value("method=.=GET;.;plan=.=pro;.;route=.=/users/{id};.;api_requests_total"),
            1
        );
        assert_eq!(
            sink.value("method=.=GET;.;plan=.=unknown;.;route=.=/users/{id};.;api_requests_total"),
            1
        );
        assert_eq!(
            sink.value("method=.=POST;.;plan=.=unknown;.;route=.=other;.;api_requests_total"),
            1
        );
        assert_eq!(sink.value("api_bytes_total"), 40);
        assert_eq!(sink.samples("method=.=GET;.;api_latency_ms"), vec![5, 9]);
        assert_eq!(sink.samples("method=.=POST;.;api_latency_ms"), vec![1]);
        // The last stream's value wins (POST without body: 0).
        assert_eq!(sink.value("last_request_size"), 0);
        // In flight when each stream ended: a saw 2, b 1, post 1.
        assert_eq!(sink.samples("concurrency"), vec![2, 1, 1]);
    }

    #[test]
    fn cardinality_guard_folds_and_counts() {
        let c = cfg(r#"{"maxLabelValues": 2, "metrics": [
                 {"name": "by_user", "type": "COUNTER", "dimensions": {"reporter": "request.method", "user": "request.headers[x-user]"}}]}"#);
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        for u in ["a", "b", "a", "c", "d", "b", "c"] {
            let mut s = FakeStream::get("/");
            s.req.add("x-user", u);
            run(&mut r, &c, &mut sink, &mut s);
        }
        assert_eq!(sink.value("reporter=.=GET;.;user=.=a;.;by_user"), 2);
        assert_eq!(sink.value("reporter=.=GET;.;user=.=b;.;by_user"), 2);
        assert_eq!(sink.value("reporter=.=other;.;user=.=other;.;by_user"), 3);
        assert_eq!(
            sink.value("metric=.=by_user;.;wasmesh_metrics_label_overflow_total"),
            3
        );
        assert_eq!(sink.named("by_user").len(), 3);
        // Standard metrics: one label set, no overflow.
        assert_eq!(r.admitted(), vec![1, 2]);
        // Folding keeps static labels: standard metrics over the limit keep
        // their reporter.
        let c = cfg(r#"{"maxLabelValues": 1}"#);
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        for code in [200, 404] {
            let mut s = FakeStream::get("/").int("response.code", code);
            run(&mut r, &c, &mut sink, &mut s);
        }
        let folded = sink.named("istio_requests_total")[1].to_string();
        assert!(
            folded.starts_with("reporter=.=destination;.;source_workload=.=other;.;"),
            "{folded}"
        );
        assert_eq!(
            sink.value("metric=.=istio_request_bytes;.;wasmesh_metrics_label_overflow_total"),
            1
        );
    }

    #[test]
    fn access_log_line_is_json() {
        let c = cfg(r#"{"standardMetrics": false, "accessLog": {"fields": {
                "method": "request.method", "code": "response.code", "plan": "request.headers[x-plan]",
                "mtls": "connection.mtls", "start": "request.time", "ua": "request.useragent"}}}"#);
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        let mut s = FakeStream::get("/")
            .boolean("connection.mtls", false)
            .int("request.time", 1_700_000_000_000_000_000);
        s.req.add("user-agent", "curl \"8\"");
        let line = run(&mut r, &c, &mut sink, &mut s).unwrap();
        assert_eq!(
            line,
            r#"{"method":"GET","code":200,"plan":null,"mtls":false,"start":"2023-11-14T22:13:20.000Z","ua":"curl \"8\""}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["code"], 200);
    }

    #[test]
    fn no_response_is_response_code_0() {
        let c = cfg("{}");
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        let mut s = FakeStream::get("/").int("response.flags", 0x4000);
        s.resp = wasmesh_common::HeaderMap::new();
        run(&mut r, &c, &mut sink, &mut s);
        let name = sink.named("istio_requests_total")[0].to_string();
        assert!(name.contains(";.;response_code=.=0;.;"), "{name}");
        assert!(name.contains(";.;response_flags=.=DC;.;"), "{name}");
    }

    /// The issue 7 benchmark configuration: standard metrics and three
    /// user metrics of six labels.
    const BENCH_3X6: &str = r#"{"pathTemplates": ["/users/{id}"], "metrics": [
        {"name": "api_requests_total", "type": "COUNTER", "dimensions": {"method": "request.method",
         "code": "response.code", "route": "request.path_template", "plan": "request.headers[x-plan]",
         "tenant": "request.headers[x-tenant]", "cluster": "xds.cluster_name"}},
        {"name": "api_latency_ms", "type": "HISTOGRAM", "value": "request.duration_ms", "dimensions": {"method": "request.method",
         "code": "response.code", "route": "request.path_template", "plan": "request.headers[x-plan]",
         "tenant": "request.headers[x-tenant]", "cluster": "xds.cluster_name"}},
        {"name": "api_response_bytes", "type": "HISTOGRAM", "value": "response.size", "dimensions": {"method": "request.method",
         "code": "response.code", "route": "request.path_template", "plan": "request.headers[x-plan]",
         "tenant": "request.headers[x-tenant]", "cluster": "xds.cluster_name"}},
        {"name": "by_node", "type": "COUNTER", "dimensions": {"node": "node.metadata.CLUSTER_ID"}}]}"#;

    fn mesh_stream(tenant: &str) -> FakeStream {
        let mut s = FakeStream::get("/users/42")
            .str(
                "xds.cluster_name",
                "inbound|9080||reviews.prod.svc.cluster.local",
            )
            .boolean("connection.mtls", true)
            .str(
                "connection.uri_san_peer_certificate",
                "spiffe://cluster.local/ns/prod/sa/web",
            )
            .str(
                "connection.uri_san_local_certificate",
                "spiffe://cluster.local/ns/prod/sa/reviews",
            )
            .str("downstream_peer.workload", "web-v1")
            .str("node.metadata.CLUSTER_ID", "Kubernetes")
            .int("response.code", 200)
            .int("response.flags", 0)
            .int("request.duration", 12_000_000)
            .int("request.total_size", 300)
            .int("response.total_size", 400)
            .int("response.size", 2);
        s.req.add("x-plan", "pro");
        s.req.add("x-tenant", tenant);
        s
    }

    #[test]
    fn each_property_is_read_at_most_once_per_request() {
        let c = cfg(BENCH_3X6);
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        let mut first = mesh_stream("acme");
        run(&mut r, &c, &mut sink, &mut first);
        let mut paths = first.read_paths.clone();
        paths.sort();
        let n = paths.len();
        paths.dedup();
        assert_eq!(
            paths.len(),
            n,
            "a property read twice: {:?}",
            first.read_paths
        );
        assert!(first
            .read_paths
            .contains(&"node.metadata.CLUSTER_ID".to_string()));
        // The node's metadata is read once per VM, not per request; the
        // rest of what the first request read, the second reads again.
        let mut second = mesh_stream("acme");
        run(&mut r, &c, &mut sink, &mut second);
        let mut want = first.read_paths.clone();
        want.retain(|p| p != "node.metadata.CLUSTER_ID");
        assert_eq!(second.read_paths, want);
        // Both recorded on the same series; a new tenant is a new series.
        let series = |sink: &FakeSink| sink.named("api_requests_total").len();
        assert_eq!(series(&sink), 1);
        run(&mut r, &c, &mut sink, &mut mesh_stream("other-co"));
        assert_eq!(series(&sink), 2);
        assert_eq!(
            sink.value("cluster=.=inbound|9080||reviews.prod.svc.cluster.local;.;code=.=200;.;method=.=GET;.;\
plan=.=pro;.;route=.=/users/{id};.;tenant=.=acme;.;api_requests_total"),
            2
        );
        assert_eq!(sink.value("node=.=Kubernetes;.;by_node"), 3);
        // Without mutual TLS the certificates are not read.
        let mut plain = mesh_stream("acme").boolean("connection.mtls", false);
        run(&mut r, &c, &mut sink, &mut plain);
        assert!(!plain.read_paths.iter().any(|p| p.contains("certificate")));
    }

    #[test]
    fn values_with_the_same_stat_name_are_one_label_set() {
        // `a;b` and `a_b` are both written `a_b`: one label set for the
        // cardinality guard, as when the cache was keyed by the stat name.
        let c = cfg(
            r#"{"standardMetrics": false, "maxLabelValues": 2, "metrics": [
                 {"name": "m", "type": "COUNTER", "dimensions": {"plan": "request.headers[x-plan]"}}]}"#,
        );
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        for plan in ["a;b", "a_b", "a;b", "a_b", "c", "d", "a;b"] {
            let mut s = FakeStream::get("/");
            s.req.add("x-plan", plan);
            run(&mut r, &c, &mut sink, &mut s);
        }
        assert_eq!(r.admitted(), vec![2]);
        assert_eq!(sink.value("plan=.=a_b;.;m"), 5);
        assert_eq!(sink.value("plan=.=c;.;m"), 1);
        assert_eq!(sink.value("plan=.=other;.;m"), 1);
        assert_eq!(
            sink.value("metric=.=m;.;wasmesh_metrics_label_overflow_total"),
            1
        );
    }

    #[test]
    fn metrics_with_the_same_labels_share_one_lookup() {
        let c = cfg(BENCH_3X6);
        let r = Recorder::new(&c);
        // Standard metrics, the three user metrics, by_node.
        assert_eq!(r.groups.groups.len(), 3);
        assert_eq!(r.admitted().len(), c.groups.len());
    }

    #[test]
    fn label_values_cannot_inject_labels() {
        let c = cfg(r#"{"standardMetrics": false, "metrics": [
                 {"name": "m", "type": "COUNTER", "dimensions": {"plan": "request.headers[x-plan]"}}]}"#);
        let mut r = Recorder::new(&c);
        let mut sink = FakeSink::default();
        let mut s = FakeStream::get("/");
        s.req.add("x-plan", "x;.;reporter=.=evil");
        run(&mut r, &c, &mut sink, &mut s);
        assert_eq!(sink.value("plan=.=x_._reporter=_=evil;.;m"), 1);
    }
}
