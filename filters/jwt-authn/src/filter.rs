//! Proxy-Wasm glue (wasm32 only): reads the request, asks the core
//! ([`crate::decide`]), applies the decision; drives remote JWKS fetches from
//! the root context.
//!
//! Waiting requests: a request whose provider's keys are still being fetched
//! is paused (`on_http_request_headers` returns `Pause`; body and trailers
//! are held too). The root keeps the list of waiting stream ids; after a
//! fetch completes (in this VM: in `on_http_call_response`; in another VM:
//! noticed on the next tick) it re-evaluates each waiting request in that
//! stream's context (`proxy_set_effective_context`) and resumes it
//! (`proxy_continue_stream`) or answers it. A request never waits longer
//! than the longest fetch timeout plus [`WAIT_GRACE`]. Calls are dispatched
//! only from root callbacks (configure, tick, call response), so their
//! answers always reach the root.

use crate::authenticator::{Authenticator, Verified};
use crate::config::FilterConfig;
use crate::host_crypto::{self, Crypto, HostAnswer, HostCrypto};
use crate::jwks::KeySet;
use crate::jwks_cache::{KeyRing, Meta};
use crate::jwt_cache::JwtCache;
use crate::output::{self, HeaderOp};
use crate::stats;
use crate::status::{self, Status};
use crate::{decide, Decision};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use wasmesh_common::abi::hostcalls;
use wasmesh_common::abi::types::{Action, BufferType, LogLevel, MapType, MetricType, StreamType};
use wasmesh_common::abi::{pairs, HostBuf, Http};
use wasmesh_common::identity::IDENTITY_PROPERTY;
use wasmesh_common::{host, HeaderMap};

const NAME: &str = "jwt_authn";
/// Tick period: refresh/backoff scheduling and noticing other workers' fetches.
const TICK: Duration = Duration::from_millis(200);
/// Added to the longest fetch timeout to bound how long a request waits.
const WAIT_GRACE: Duration = Duration::from_secs(2);
/// Largest JWKS document accepted from a key server.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

wasmesh_common::proxy_filter!(
    Root,
    [
        request_headers,
        request_body,
        request_trailers,
        tick,
        http_call_response
    ]
);

/// `proxy_send_local_response` with response-code details, ignoring failures.
fn send_local_response(code: u32, details: &str, body: &str, headers: &[(&str, &str)]) {
    let _ = hostcalls::send_local_response(
        code,
        details,
        body.as_bytes(),
        &pairs::serialize(headers),
        None,
    );
}

/// A shared-data value and its CAS token (`(None, 0)` when absent or
/// unreadable; CAS 0 writes unconditionally).
fn shared_data(key: &str) -> (Option<HostBuf>, u32) {
    match hostcalls::get_shared_data(key) {
        Ok(Some((value, cas))) => (Some(value), cas),
        _ => (None, 0),
    }
}

struct Metrics {
    allowed: u32,
    denied: u32,
    denied_by: Vec<u32>,
    cors: u32,
    fetch_ok: u32,
    fetch_failed: u32,
    cache_hit: u32,
    cache_miss: u32,
    signature_native: u32,
    signature_wasm: u32,
}

impl Metrics {
    fn define() -> Metrics {
        let c = |n: &str| hostcalls::define_metric(MetricType::Counter, n).unwrap_or(u32::MAX);
        Metrics {
            allowed: c(stats::ALLOWED),
            denied: c(stats::DENIED),
            denied_by: stats::denied_by_reason().iter().map(|n| c(n)).collect(),
            cors: c(stats::CORS_PREFLIGHT_BYPASSED),
            fetch_ok: c(stats::JWKS_FETCH_SUCCESS),
            fetch_failed: c(stats::JWKS_FETCH_FAILED),
            cache_hit: c(stats::JWT_CACHE_HIT),
            cache_miss: c(stats::JWT_CACHE_MISS),
            signature_native: c(stats::SIGNATURE_VERIFY_NATIVE),
            signature_wasm: c(stats::SIGNATURE_VERIFY_WASM),
        }
    }
}

/// The host's `verify_signature` (Envoy's foreign function).
struct HostVerifySignature;

impl HostCrypto for HostVerifySignature {
    fn verify_signature(&self, args: &[u8]) -> HostAnswer {
        match hostcalls::call_foreign_function(host_crypto::FUNCTION, args) {
            Ok(out) => match host_crypto::decode_result(&out) {
                Some(true) => HostAnswer::Valid,
                Some(false) => HostAnswer::Invalid,
                None => HostAnswer::Unavailable,
            },
            Err(_) => HostAnswer::Unavailable,
        }
    }
}

fn inc(id: u32, by: u32) {
    if id != u32::MAX && by > 0 {
        let _ = hostcalls::increment_metric(id, i64::from(by));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Deciding,
    Waiting,
    Done,
}

struct Waiter {
    id: u32,
    state: Rc<Cell<State>>,
    headers: HeaderMap,
    since: u64,
}

/// The `WWW-Authenticate` realm of a request (only assembled for a denial).
fn realm(headers: &HeaderMap) -> String {
    status::realm(headers.scheme(), headers.authority(), headers.path())
}

/// What every context of the VM shares.
struct Shared {
    config: FilterConfig,
    ring: KeyRing,
    cache: RefCell<JwtCache<Verified>>,
    metrics: Metrics,
    waiting: RefCell<Vec<Waiter>>,
    max_wait: u64,
}

impl Shared {
    /// Decides for `headers` at `now` (ns) and applies the result to the
    /// current effective stream. Returns whether the stream may continue,
    /// or `None` when it must wait.
    fn run(&self, headers: &HeaderMap, now: u64) -> Option<bool> {
        self.ring.now.set(now);
        let decision = {
            let mut cache = self.cache.borrow_mut();
            let mut auth = Authenticator {
                config: &self.config,
                keys: &self.ring,
                cache: &mut cache,
                now: now / 1_000_000_000,
                stats: Default::default(),
            };
            let d = decide(&self.config, headers, &mut auth);
            inc(self.metrics.cache_hit, auth.stats.hits);
            inc(self.metrics.cache_miss, auth.stats.misses);
            inc(self.metrics.signature_native, auth.stats.signatures.native);
            inc(self.metrics.signature_wasm, auth.stats.signatures.wasm);
            d
        };
        match decision {
            Decision::Allow { ops, identity } => {
                apply(&ops);
                if let Some(id) = identity {
                    let _ = hostcalls::set_property(IDENTITY_PROPERTY.as_bytes(), id.as_bytes());
                }
                inc(self.metrics.allowed, 1);
                Some(true)
            }
            Decision::CorsBypass => {
                inc(self.metrics.cors, 1);
                inc(self.metrics.allowed, 1);
                Some(true)
            }
            Decision::Deny(s) => {
                self.deny(s, &realm(headers));
                Some(false)
            }
            Decision::Wait => None,
        }
    }

    fn deny(&self, s: Status, realm: &str) {
        inc(self.metrics.denied, 1);
        if let Some(id) = self.metrics.denied_by.get(stats::reason_index(s)) {
            inc(*id, 1);
        }
        let www = s.www_authenticate(realm);
        send_local_response(
            s.http_code(),
            &s.details(),
            s.message(),
            &[("www-authenticate", &www)],
        );
    }

    /// Re-evaluates every waiting request; resumes or answers those that are decided.
    fn resume_waiters(&self, root_id: u32, now: u64) {
        let waiters = std::mem::take(&mut *self.waiting.borrow_mut());
        if waiters.is_empty() {
            return;
        }
        let mut still = Vec::new();
        for w in waiters {
            if w.state.get() != State::Waiting || hostcalls::set_effective_context(w.id).is_err() {
                continue;
            }
            let result = match self.run(&w.headers, now) {
                None if now.saturating_sub(w.since) > self.max_wait => {
                    self.deny(Status::JwksFetchFail, &realm(&w.headers));
                    Some(false)
                }
                r => r,
            };
            match result {
                Some(cont) => {
                    w.state.set(State::Done);
                    if cont {
                        let _ = hostcalls::continue_stream(StreamType::HttpRequest);
                    }
                }
                None => still.push(w),
            }
        }
        let _ = hostcalls::set_effective_context(root_id);
        self.waiting.borrow_mut().extend(still);
    }
}

fn apply(ops: &[HeaderOp]) {
    for op in ops {
        let _ = match op {
            HeaderOp::Remove(h) => hostcalls::remove_map_value(MapType::HttpRequestHeaders, h),
            HeaderOp::Add(h, v) => {
                hostcalls::add_map_value(MapType::HttpRequestHeaders, h, v.as_bytes())
            }
            HeaderOp::Set(h, v) => {
                hostcalls::replace_map_value(MapType::HttpRequestHeaders, h, v.as_bytes())
            }
        };
    }
}

struct Root {
    id: u32,
    shared: Option<Rc<Shared>>,
    /// Our calls in flight: (token, remote index).
    calls: Vec<(u32, usize)>,
}

impl Root {
    /// Reads the shared record of remote `i`, installs new keys, and starts
    /// a fetch when one is due and we win the lease.
    fn sync_remote(&mut self, i: usize, now: u64) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let mut remote = shared.ring.remotes[i].borrow_mut();
        let (bytes, cas) = shared_data(&remote.meta_key());
        let meta = bytes.as_deref().and_then(Meta::decode);
        let plan = remote.plan(meta.clone(), now);
        if plan.sync {
            let meta = meta.clone().unwrap_or_default();
            if meta.last_ok {
                let doc = shared_data(&remote.keys_key()).0;
                match doc.as_deref().map(KeySet::from_json) {
                    Some(Ok(set)) => {
                        for reason in &set.skipped {
                            host::log(
                                LogLevel::Warn,
                                NAME,
                                &format!("{}: key skipped: {reason}", remote.remote.uri),
                            );
                        }
                        remote.install(Rc::new(set), &meta);
                    }
                    _ => remote.note_failure(&meta),
                }
            } else {
                remote.note_failure(&meta);
            }
        }
        if let Some(claim) = plan.claim {
            if hostcalls::set_shared_data(&remote.meta_key(), claim.encode().as_bytes(), cas)
                .is_err()
            {
                return; // another worker won; we will see its result
            }
            let r = &remote.remote;
            let headers = [
                (":method", "GET"),
                (":path", r.path.as_str()),
                (":authority", r.authority.as_str()),
                ("accept", "application/json"),
            ];
            let timeout_ms = u32::try_from(r.timeout.as_millis()).unwrap_or(u32::MAX);
            match hostcalls::http_call(&r.cluster, &headers, &[], &[], timeout_ms) {
                Ok(token) => {
                    remote.on_dispatched(token, claim);
                    self.calls.push((token, i));
                }
                Err(e) => {
                    host::log(
                        LogLevel::Error,
                        NAME,
                        &format!(
                            "cannot fetch {} through cluster `{}`: {e:?}",
                            r.uri, r.cluster
                        ),
                    );
                    drop(remote);
                    self.complete(i, false, None, now);
                }
            }
        }
    }

    /// Records the end of a fetch of remote `i` in shared data.
    fn complete(&mut self, i: usize, ok: bool, body: Option<&[u8]>, now: u64) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        {
            let mut remote = shared.ring.remotes[i].borrow_mut();
            if let (true, Some(body)) = (ok, body) {
                let _ = hostcalls::set_shared_data(&remote.keys_key(), body, 0);
            }
            for _ in 0..8 {
                let (bytes, cas) = shared_data(&remote.meta_key());
                let next = remote.complete(bytes.as_deref().and_then(Meta::decode), ok, now);
                if hostcalls::set_shared_data(&remote.meta_key(), next.encode().as_bytes(), cas)
                    .is_ok()
                {
                    break;
                }
            }
        }
        inc(
            if ok {
                shared.metrics.fetch_ok
            } else {
                shared.metrics.fetch_failed
            },
            1,
        );
        self.sync_remote(i, now);
        shared.resume_waiters(self.id, now);
    }

    fn tick(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = host::now_nanos();
        for i in 0..shared.ring.remotes.len() {
            self.sync_remote(i, now);
        }
        shared.resume_waiters(self.id, now);
    }
}

impl wasmesh_common::abi::Root for Root {
    type Http = Stream;

    fn new(id: u32) -> Self {
        Root {
            id,
            shared: None,
            calls: Vec::new(),
        }
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(pos) = self.calls.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let (_, i) = self.calls.swap_remove(pos);
        let now = host::now_nanos();
        // A reset or refused call has no headers (the host would answer an
        // error), so they are not asked for.
        let status = if num_headers == 0 {
            None
        } else {
            hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
                .ok()
                .flatten()
        };
        let body = if body_size > 0 && body_size <= MAX_JWKS_BYTES {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .filter(|b| !b.is_empty())
        } else {
            None
        };
        let uri = self
            .shared
            .as_ref()
            .map(|s| s.ring.remotes[i].borrow().remote.uri.clone())
            .unwrap_or_default();
        let status = status.as_ref().map(|s| String::from_utf8_lossy(s));
        let ok = match (status.as_deref(), &body) {
            (Some("200"), Some(b)) => match KeySet::from_json(b) {
                Ok(_) => true,
                Err(e) => {
                    host::log(
                        LogLevel::Warn,
                        NAME,
                        &format!("JWKS from {uri} is unusable: {e}"),
                    );
                    false
                }
            },
            (Some(s), _) => {
                host::log(
                    LogLevel::Warn,
                    NAME,
                    &format!("JWKS fetch from {uri} failed with status {s}"),
                );
                false
            }
            (None, _) => {
                host::log(
                    LogLevel::Warn,
                    NAME,
                    &format!("JWKS fetch from {uri} failed (reset or timeout)"),
                );
                false
            }
        };
        self.complete(i, ok, body.as_deref(), now);
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::plugin_configuration().unwrap_or_else(|_| HostBuf::empty());
        let config = match FilterConfig::from_json(&bytes) {
            Ok(c) => c,
            Err(e) => {
                host::log_config_error(NAME, &e);
                return false;
            }
        };
        let mut ring = KeyRing::new(&config);
        ring.crypto = Crypto::probed(Box::new(HostVerifySignature));
        host::log(LogLevel::Info, NAME, &ring.crypto.describe());
        let max_timeout = ring
            .remotes
            .iter()
            .map(|r| r.borrow().remote.timeout)
            .max()
            .unwrap_or_default();
        let cache = RefCell::new(JwtCache::new(config.cache_size));
        self.shared = Some(Rc::new(Shared {
            config,
            ring,
            cache,
            metrics: Metrics::define(),
            waiting: RefCell::new(Vec::new()),
            max_wait: u64::try_from((max_timeout + WAIT_GRACE).as_nanos()).unwrap_or(u64::MAX),
        }));
        self.calls.clear();
        if self
            .shared
            .as_ref()
            .is_some_and(|s| !s.ring.remotes.is_empty())
        {
            let _ =
                hostcalls::set_tick_period_ms(u32::try_from(TICK.as_millis()).unwrap_or(u32::MAX));
            self.tick();
        }
        true
    }

    fn on_tick(&mut self) {
        self.tick();
    }

    fn create_http(&mut self, id: u32) -> Option<Stream> {
        Some(Stream {
            id,
            shared: self.shared.clone(),
            state: Rc::new(Cell::new(State::Deciding)),
        })
    }
}

struct Stream {
    id: u32,
    shared: Option<Rc<Shared>>,
    state: Rc<Cell<State>>,
}

impl Http for Stream {
    fn on_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let mut headers = host::request_headers();
        let sanitize = output::sanitize(&shared.config, &headers);
        for op in &sanitize {
            if let HeaderOp::Remove(h) = op {
                headers.remove(h);
            }
        }
        apply(&sanitize);
        let now = host::now_nanos();
        match shared.run(&headers, now) {
            Some(true) => {
                self.state.set(State::Done);
                Action::Continue
            }
            Some(false) => {
                self.state.set(State::Done);
                Action::Pause
            }
            None => {
                self.state.set(State::Waiting);
                shared.waiting.borrow_mut().push(Waiter {
                    id: self.id,
                    state: Rc::clone(&self.state),
                    headers,
                    since: now,
                });
                Action::Pause
            }
        }
    }

    fn on_request_body(&mut self, _size: usize, _eos: bool) -> Action {
        if self.state.get() == State::Waiting {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_request_trailers(&mut self, _n: usize) -> Action {
        if self.state.get() == State::Waiting {
            Action::Pause
        } else {
            Action::Continue
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.state.get() == State::Waiting {
            self.state.set(State::Done);
            if let Some(shared) = &self.shared {
                if let Ok(mut w) = shared.waiting.try_borrow_mut() {
                    w.retain(|w| w.id != self.id);
                }
            }
        }
    }
}
