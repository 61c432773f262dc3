//! Runs a scenario on virtual time: workers with the chain, scripted
//! clusters and upstream, an event queue ordered by time.

use super::artifacts::RunOptions;
use super::convert::{chain_config, request_headers, typed_properties};
use super::model::*;
use crate::chain::{response_flags, Callout, CalloutResponse, GrpcAnswer, StreamEvent, Worker};
use crate::headers::HeaderMap;
use crate::host::{Clock, HostShared, LogLine};
use crate::properties::PropertyMap;
use crate::runtime::Runtime;
use crate::types::LogLevel;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// What was observed of one stream.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub reached_upstream: bool,
    pub upstream_headers: Option<HeaderMap>,
    pub upstream_body: Vec<u8>,
    pub upstream_trailers: Option<HeaderMap>,
    pub upstream_cluster: Option<String>,
    pub response_headers: Option<HeaderMap>,
    pub response_body: Vec<u8>,
    pub response_trailers: Option<HeaderMap>,
    pub reset: Option<String>,
    pub complete: bool,
    pub started_ns: i64,
    pub completed_ns: Option<i64>,
    pub local_reply_by: Option<String>,
    pub code_details: Option<String>,
    pub route_cache_cleared: u32,
    pub filter_state: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Observed {
    /// The `:status` the client received.
    pub fn status(&self) -> Option<u32> {
        self.response_headers
            .as_ref()?
            .get_str(":status")?
            .parse()
            .ok()
    }
}

#[derive(Debug)]
enum Event {
    Callout {
        worker: usize,
        callout: Callout,
        answer: Answer,
    },
    Upstream {
        worker: usize,
        sid: u64,
        spec: UpstreamSpec,
    },
}

#[derive(Debug)]
enum Answer {
    Http(Option<CalloutResponse>),
    Grpc(GrpcAnswer),
}

struct StreamRec {
    worker: usize,
    upstream: UpstreamSpec,
    obs: Observed,
    upstream_scheduled: bool,
    /// The step that sent it has returned (the stream was left pending);
    /// forget it once it completes.
    detached: bool,
}

/// A scenario being run: workers, clusters, clock and streams.
pub struct Session {
    pub host: Arc<HostShared>,
    workers: Vec<Worker>,
    clock: Clock,
    clusters: BTreeMap<String, ClusterSpec>,
    cluster_next: HashMap<String, usize>,
    grpc_next: HashMap<String, usize>,
    grpc_streams_started: std::collections::HashSet<(usize, usize, u64, u32)>,
    queue: BinaryHeap<Reverse<(i64, u64, usize)>>,
    events: crate::FastMap<usize, Event>,
    seq: u64,
    streams: crate::FastMap<u64, StreamRec>,
    /// Callouts dispatched so far (cluster, method, path).
    pub calls: Vec<(String, String, String)>,
    default_upstream: UpstreamSpec,
    round_robin: usize,
}

/// The seed of a scenario without `seed:`: scenario runs are reproducible
/// by default.
pub const DEFAULT_SEED: u64 = 0;

/// How long the runner waits, in virtual time, for a paused stream.
pub const MAX_WAIT_NS: i64 = 600 * 1_000_000_000;

impl Session {
    /// Starts the chain on `workers` workers.
    pub fn new(s: &Scenario, base: &Path, opts: &RunOptions) -> Result<Session, String> {
        let runtime = Runtime::shared()?;
        Self::with_runtime(s, base, opts, runtime)
    }

    /// Like [`Session::new`] with a given runtime.
    pub fn with_runtime(
        s: &Scenario,
        base: &Path,
        opts: &RunOptions,
        runtime: Arc<Runtime>,
    ) -> Result<Session, String> {
        let level = match &s.log_level {
            Some(l) => LogLevel::parse(l).ok_or_else(|| format!("unknown log_level `{l}`"))?,
            None => LogLevel::Info,
        };
        let clock = Clock::virtual_at(s.now.unwrap_or(1_700_000_000));
        let host = if opts.echo_logs {
            HostShared::with_echo(clock.clone(), level)
        } else {
            HostShared::new(clock.clone(), level)
        };
        if let Some(v) = &s.verify_signature {
            host.set_verify_signature(
                crate::abi::foreign::VerifySignatureMode::parse(v).ok_or_else(|| {
                    format!(
                        "verify_signature: `{v}` is not `native`, `off`, `accept_all` or `reject_all`"
                    )
                })?,
            );
        }
        host.set_seed(s.seed.unwrap_or(DEFAULT_SEED));
        for name in s.clusters.keys() {
            host.add_cluster(name);
        }
        for (k, v) in typed_properties(&s.properties)? {
            host.set_property(&k, v);
        }
        let config = chain_config(s, base, opts)?;
        let mut workers = Vec::new();
        for id in 0..s.workers.unwrap_or(1).max(1) {
            match Worker::new(id, runtime.clone(), host.clone(), config.clone()) {
                Ok(w) => workers.push(w),
                Err(e) => {
                    // Keep what the plugins logged: it names the refused field.
                    let logs: Vec<String> = host
                        .logs_since(0)
                        .iter()
                        .map(|l| format!("[{}] {}: {}", l.level.name(), l.plugin, l.message))
                        .collect();
                    return Err(if logs.is_empty() {
                        e
                    } else {
                        format!("{e}\n{}", logs.join("\n"))
                    });
                }
            }
        }
        let mut session = Session {
            host,
            workers,
            clock,
            clusters: s.clusters.clone(),
            cluster_next: HashMap::new(),
            grpc_next: HashMap::new(),
            grpc_streams_started: Default::default(),
            queue: BinaryHeap::new(),
            events: Default::default(),
            seq: 0,
            streams: Default::default(),
            calls: Vec::new(),
            default_upstream: s.upstream.clone().unwrap_or_default(),
            round_robin: 0,
        };
        session.pump();
        Ok(session)
    }

    /// Current virtual time, ns.
    pub fn now_ns(&self) -> i64 {
        self.clock.now_ns()
    }

    /// The workers.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    fn schedule(&mut self, at: i64, e: Event) {
        self.seq += 1;
        let id = self.seq as usize;
        self.events.insert(id, e);
        self.queue.push(Reverse((at, self.seq, id)));
    }

    /// Handles everything the workers produced: callouts and stream events.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            for w in 0..self.workers.len() {
                for c in self.workers[w].take_callouts() {
                    progressed = true;
                    self.dispatch(w, c);
                }
            }
            let mut sids = Vec::new();
            for w in self.workers.iter_mut() {
                sids.extend(w.take_dirty());
            }
            for sid in sids {
                let Some(w) = self.streams.get(&sid).map(|r| r.worker) else {
                    continue;
                };
                if let Some(info) = self.workers[w].stream_info(sid) {
                    let rec = self.streams.get_mut(&sid).expect("rec");
                    rec.obs.local_reply_by = info.local_reply_by;
                    rec.obs.code_details = info.code_details;
                    rec.obs.route_cache_cleared = info.route_cache_cleared;
                    rec.obs.filter_state = info.filter_state;
                }
                let events = self.workers[w].take_events(sid);
                if !events.is_empty() {
                    progressed = true;
                }
                for e in events {
                    self.on_stream_event(sid, e);
                }
            }
            self.streams.retain(|_, r| !(r.detached && r.obs.complete));
            if !progressed {
                return;
            }
        }
    }

    /// Plugin shutdown: `proxy_on_done` on every root context, then
    /// `proxy_on_delete` (at once, or after the module calls `proxy_done`).
    pub fn shutdown(&mut self) {
        for w in self.workers.iter_mut() {
            w.shutdown();
        }
        self.settle();
    }

    fn dispatch(&mut self, worker: usize, c: Callout) {
        let now = self.clock.now_ns();
        let header = |n: &str| {
            c.call
                .headers
                .iter()
                .find(|(k, _)| k == n.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        if let Some((service, method)) = c.call.grpc.clone() {
            self.dispatch_grpc(worker, c, &service, &method, now);
            return;
        }
        self.calls
            .push((c.call.cluster.clone(), header(":method"), header(":path")));
        let spec = self.next_http(&c.call.cluster);
        let timeout = c.call.timeout_ms as u64;
        let (delay, answer) = match spec {
            None => (0, Some(envoy_reply(503, "no healthy upstream"))),
            Some(a) if timeout > 0 && a.delay_ms > timeout => {
                (timeout, Some(envoy_reply(504, "upstream request timeout")))
            }
            Some(a) if a.reset => (a.delay_ms, None),
            Some(a) => {
                let mut h = HeaderMap::new();
                h.add(b":status", a.status.unwrap_or(200).to_string().as_bytes());
                for (k, v) in &a.headers {
                    for x in v.values() {
                        h.add(k.as_bytes(), x.as_bytes());
                    }
                }
                let body = a.body.clone().unwrap_or_default().into_bytes();
                if h.get(b"content-length").is_none() && !body.is_empty() {
                    h.add(b"content-length", body.len().to_string().as_bytes());
                }
                let mut t = HeaderMap::new();
                for (k, v) in &a.trailers {
                    for x in v.values() {
                        t.add(k.as_bytes(), x.as_bytes());
                    }
                }
                (
                    a.delay_ms,
                    Some(CalloutResponse {
                        headers: h,
                        body,
                        trailers: t,
                    }),
                )
            }
        };
        self.schedule(
            now + delay as i64 * 1_000_000,
            Event::Callout {
                worker,
                callout: c,
                answer: Answer::Http(answer),
            },
        );
    }

    fn dispatch_grpc(&mut self, worker: usize, c: Callout, service: &str, method: &str, now: i64) {
        let cluster = c.call.cluster.clone();
        let at = |ms: u64| now + ms as i64 * 1_000_000;
        let md = |m: &BTreeMap<String, String>| Some(HeaderMap::from_pairs(m.iter()));
        let unavailable = || GrpcAnswer {
            status: 14,
            status_message: "no healthy upstream".into(),
            close: true,
            ..Default::default()
        };
        if c.call.grpc_stream {
            if !service.is_empty() || !method.is_empty() {
                // Opening a stream sends nothing back by itself.
                self.calls
                    .push((cluster, "grpc".into(), format!("/{service}/{method}")));
                return;
            }
            let key = (worker, c.id.vm, c.id.generation, c.id.token);
            let first = self.grpc_streams_started.insert(key);
            let end = c.call.trailers.iter().any(|(k, _)| k == b"end_stream");
            let close_with = |g: Option<GrpcAnswerSpec>, first: bool| match g {
                Some(g) => (
                    g.delay_ms,
                    GrpcAnswer {
                        initial_metadata: if first { md(&g.initial_metadata) } else { None },
                        message: None,
                        trailing_metadata: md(&g.trailing_metadata),
                        status: g.status,
                        status_message: g.message,
                        close: true,
                    },
                ),
                None => (0, unavailable()),
            };
            match self.next_grpc(&cluster) {
                Some(g) if g.body.is_some() => {
                    let answer = GrpcAnswer {
                        initial_metadata: if first { md(&g.initial_metadata) } else { None },
                        message: g.body.clone().map(String::into_bytes),
                        trailing_metadata: None,
                        status: 0,
                        status_message: String::new(),
                        close: false,
                    };
                    let delay = g.delay_ms;
                    self.schedule(
                        at(delay),
                        Event::Callout {
                            worker,
                            callout: c.clone(),
                            answer: Answer::Grpc(answer),
                        },
                    );
                    if end {
                        // The module ended its side: the peer closes with its next answer.
                        let (d, a) = close_with(self.next_grpc(&cluster), false);
                        self.schedule(
                            at(d.max(delay)),
                            Event::Callout {
                                worker,
                                callout: c,
                                answer: Answer::Grpc(a),
                            },
                        );
                    }
                }
                other => {
                    let (d, a) = close_with(other, first);
                    self.schedule(
                        at(d),
                        Event::Callout {
                            worker,
                            callout: c,
                            answer: Answer::Grpc(a),
                        },
                    );
                }
            }
            return;
        }
        self.calls.push((
            cluster.clone(),
            "grpc".into(),
            format!("/{service}/{method}"),
        ));
        let (delay, answer) = match self.next_grpc(&cluster) {
            Some(g) => (
                g.delay_ms,
                GrpcAnswer {
                    initial_metadata: md(&g.initial_metadata),
                    message: g.body.map(String::into_bytes),
                    trailing_metadata: md(&g.trailing_metadata),
                    status: g.status,
                    status_message: g.message,
                    close: true,
                },
            ),
            None => (0, unavailable()),
        };
        let timeout = c.call.timeout_ms as u64;
        let (delay, answer) = if timeout > 0 && delay > timeout {
            let a = GrpcAnswer {
                status: 4,
                status_message: "upstream request timeout".into(),
                close: true,
                ..Default::default()
            };
            (timeout, a)
        } else {
            (delay, answer)
        };
        self.schedule(
            at(delay),
            Event::Callout {
                worker,
                callout: c,
                answer: Answer::Grpc(answer),
            },
        );
    }

    fn next_http(&mut self, cluster: &str) -> Option<CalloutAnswer> {
        let list = &self.clusters.get(cluster)?.responses;
        let i = self.cluster_next.entry(cluster.to_string()).or_insert(0);
        let a = list.get((*i).min(list.len().checked_sub(1)?)).cloned();
        *i += 1;
        a
    }

    fn next_grpc(&mut self, cluster: &str) -> Option<GrpcAnswerSpec> {
        let list = &self.clusters.get(cluster)?.grpc_responses;
        let i = self.grpc_next.entry(cluster.to_string()).or_insert(0);
        let a = list.get((*i).min(list.len().checked_sub(1)?)).cloned();
        *i += 1;
        a
    }

    fn on_stream_event(&mut self, sid: u64, e: StreamEvent) {
        let now = self.clock.now_ns();
        let Some(rec) = self.streams.get_mut(&sid) else {
            return;
        };
        let mut upstream_complete = false;
        match e {
            StreamEvent::UpstreamHeaders {
                headers,
                end_stream,
                cluster,
            } => {
                rec.obs.reached_upstream = true;
                rec.obs.upstream_headers = Some(headers);
                rec.obs.upstream_cluster = Some(cluster);
                upstream_complete = end_stream;
            }
            StreamEvent::UpstreamData { data, end_stream } => {
                rec.obs.upstream_body.extend_from_slice(&data);
                upstream_complete = end_stream;
            }
            StreamEvent::UpstreamTrailers(t) => {
                rec.obs.upstream_trailers = Some(t);
                upstream_complete = true;
            }
            StreamEvent::DownstreamHeaders { headers, .. } => {
                rec.obs.response_headers = Some(headers)
            }
            StreamEvent::DownstreamData { data, .. } => {
                rec.obs.response_body.extend_from_slice(&data)
            }
            StreamEvent::DownstreamTrailers(t) => rec.obs.response_trailers = Some(t),
            StreamEvent::Reset(r) => rec.obs.reset = Some(r),
            StreamEvent::Complete => {
                rec.obs.complete = true;
                rec.obs.completed_ns = Some(now);
            }
        }
        if upstream_complete && !rec.upstream_scheduled {
            rec.upstream_scheduled = true;
            let spec = rec.upstream.clone();
            let worker = rec.worker;
            self.schedule(
                now + spec.delay_ms as i64 * 1_000_000,
                Event::Upstream { worker, sid, spec },
            );
        }
    }

    fn fire(&mut self, e: Event) {
        match e {
            Event::Callout {
                worker,
                callout,
                answer,
            } => match answer {
                Answer::Http(r) => self.workers[worker].deliver_http(&callout, r),
                Answer::Grpc(g) => self.workers[worker].deliver_grpc(&callout, g),
            },
            Event::Upstream { worker, sid, spec } => {
                let w = &mut self.workers[worker];
                if spec.unreachable {
                    w.upstream_failure(
                        sid,
                        503,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                        "upstream_reset_before_response_started{connection_failure}",
                        response_flags::UPSTREAM_CONNECTION_FAILURE,
                    );
                } else if spec.reset {
                    w.upstream_failure(
                        sid,
                        503,
                        "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                        "upstream_reset_before_response_started{connection_termination}",
                        0x40,
                    );
                } else {
                    let mut h = HeaderMap::new();
                    h.add(
                        b":status",
                        spec.status.unwrap_or(200).to_string().as_bytes(),
                    );
                    for (k, v) in &spec.headers {
                        for x in v.values() {
                            h.add(k.as_bytes(), x.as_bytes());
                        }
                    }
                    let chunks: Vec<String> = match (&spec.body_chunks, &spec.body) {
                        (Some(c), _) => c.clone(),
                        (None, Some(b)) if !b.is_empty() => vec![b.clone()],
                        _ => Vec::new(),
                    };
                    let trailers = spec.trailers.as_ref().map(|t| {
                        let mut m = HeaderMap::new();
                        for (k, v) in t {
                            for x in v.values() {
                                m.add(k.as_bytes(), x.as_bytes());
                            }
                        }
                        m
                    });
                    let total: usize = chunks.iter().map(|c| c.len()).sum();
                    if h.get(b"content-length").is_none() && total > 0 && trailers.is_none() {
                        h.add(b"content-length", total.to_string().as_bytes());
                    }
                    w.upstream_headers(sid, h, chunks.is_empty() && trailers.is_none());
                    let n = chunks.len();
                    for (i, c) in chunks.into_iter().enumerate() {
                        w.upstream_data(sid, c.into_bytes(), i + 1 == n && trailers.is_none());
                    }
                    if let Some(t) = trailers {
                        w.upstream_trailers(sid, t);
                    }
                }
            }
        }
    }

    fn next_event_time(&self) -> Option<i64> {
        let q = self.queue.peek().map(|Reverse((t, _, _))| *t);
        let t = self.workers.iter().filter_map(|w| w.next_timer_ns()).min();
        match (q, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes everything due at the current time.
    fn settle(&mut self) {
        let now = self.clock.now_ns();
        for _ in 0..100_000 {
            self.pump();
            let due_event = self
                .queue
                .peek()
                .is_some_and(|Reverse((t, _, _))| *t <= now);
            if due_event {
                let Reverse((_, _, id)) = self.queue.pop().expect("peeked");
                if let Some(e) = self.events.remove(&id) {
                    self.fire(e);
                }
                continue;
            }
            let due_timer = self
                .workers
                .iter()
                .any(|w| w.next_timer_ns().is_some_and(|t| t <= now));
            if due_timer {
                for w in self.workers.iter_mut() {
                    w.fire_timers();
                }
                continue;
            }
            for w in self.workers.iter_mut() {
                w.poll_queues();
            }
            self.pump();
            return;
        }
    }

    /// Advances the virtual clock by `ms`, firing everything that falls due
    /// on the way in time order.
    pub fn advance(&mut self, ms: u64) {
        let target = self.clock.now_ns() + ms as i64 * 1_000_000;
        self.settle();
        while let Some(t) = self.next_event_time() {
            if t > target {
                break;
            }
            self.clock.set_ns(t);
            self.settle();
        }
        self.clock.set_ns(target);
        self.settle();
    }

    /// Sends a request and runs until its stream completes (advancing
    /// virtual time through pauses), or until nothing is left to wait for.
    pub fn request(
        &mut self,
        worker: Option<usize>,
        req: &RequestSpec,
        props: PropertyMap,
        upstream: Option<UpstreamSpec>,
    ) -> Result<Observed, String> {
        let w = match worker {
            Some(w) if w < self.workers.len() => w,
            Some(w) => {
                return Err(format!(
                    "worker {w} does not exist (workers: {})",
                    self.workers.len()
                ))
            }
            None => {
                let w = self.round_robin % self.workers.len();
                self.round_robin += 1;
                w
            }
        };
        let headers = request_headers(req)?;
        let chunks: Vec<String> = match (&req.body_chunks, &req.body) {
            (Some(c), _) => c.clone(),
            (None, Some(b)) if !b.is_empty() => vec![b.clone()],
            _ => Vec::new(),
        };
        let trailers = req.trailers.as_ref().map(|t| {
            let mut m = HeaderMap::new();
            for (k, v) in t {
                for x in v.values() {
                    m.add(k.as_bytes(), x.as_bytes());
                }
            }
            m
        });
        let start = self.clock.now_ns();
        let headers_only = chunks.is_empty() && trailers.is_none();
        let sid = self.workers[w].start_stream(headers, headers_only, props);
        self.streams.insert(
            sid,
            StreamRec {
                worker: w,
                upstream: upstream.unwrap_or_else(|| self.default_upstream.clone()),
                obs: Observed {
                    started_ns: start,
                    ..Default::default()
                },
                upstream_scheduled: false,
                detached: false,
            },
        );
        self.pump();
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            self.workers[w].downstream_data(sid, c.into_bytes(), i + 1 == n && trailers.is_none());
            self.pump();
        }
        if let Some(t) = trailers {
            self.workers[w].downstream_trailers(sid, t);
            self.pump();
        }
        self.settle();
        let deadline = start + MAX_WAIT_NS;
        while !self.streams[&sid].obs.complete {
            match self.next_event_time() {
                Some(t) if t <= deadline => {
                    self.clock.set_ns(t);
                    self.settle();
                }
                _ => break,
            }
        }
        if self.streams[&sid].obs.complete {
            Ok(self.streams.remove(&sid).expect("rec").obs)
        } else {
            let r = self.streams.get_mut(&sid).expect("rec");
            r.detached = true;
            Ok(r.obs.clone())
        }
    }

    /// Log lines after `seq`.
    pub fn logs_since(&self, seq: u64) -> Vec<LogLine> {
        self.host.logs_since(seq)
    }
}

fn envoy_reply(status: u32, body: &str) -> CalloutResponse {
    let mut h = HeaderMap::new();
    h.add(b":status", status.to_string().as_bytes());
    h.add(b"content-length", body.len().to_string().as_bytes());
    h.add(b"content-type", b"text/plain");
    CalloutResponse {
        headers: h,
        body: body.as_bytes().to_vec(),
        trailers: HeaderMap::new(),
    }
}
