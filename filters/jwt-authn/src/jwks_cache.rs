//! Remote JWKS: when to fetch, how to share the result between workers, what
//! a request should do while keys are missing. Pure state machine; the glue
//! (`filter.rs`) does the host calls it asks for.
//!
//! Every VM (Envoy worker) of the plugin shares one record per JWKS source
//! in shared data, updated only with compare-and-swap:
//!
//! * `<base>.meta` — [`Meta`]: a sequence number bumped by every completed
//!   fetch, when the current keys were fetched, whether the last attempt
//!   succeeded, the failure count and next retry time (backoff), and a
//!   *lease* (who may fetch now, until when).
//! * `<base>.keys` — the last good JWKS document.
//!
//! A VM that finds a fetch due (no keys yet, keys older than
//! `cacheDuration`, a retry whose backoff elapsed, or a token with an unknown
//! `kid`) claims the lease with CAS and dispatches the call; the others see
//! the lease and wait. When the call completes, the fetching VM stores the
//! keys (or the failure) and releases the lease; every VM notices the new
//! sequence number on its next tick and installs the keys (decoding them
//! once per VM). The last good keys are kept through failed refreshes.
//!
//! Retries back off exponentially: 1 s, 2 s, 4 s, ... up to 60 s. A token
//! whose `kid` no key has triggers a refetch at most once per
//! [`UNKNOWN_KID_REFETCH_INTERVAL`] (key rotation), and the request waits for it.

use crate::authenticator::KeyStore;
use crate::config::{FilterConfig, KeySource, RemoteJwks};
use crate::host_crypto::Crypto;
use crate::jwks::KeySet;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// Shortest time between two fetches caused by unknown `kid`s.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// First retry delay after a failed fetch.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Added to the call timeout for the lease, so a VM that vanished mid-fetch
/// does not block the others for longer than that.
pub const LEASE_GRACE: Duration = Duration::from_secs(1);

/// The delay before retry number `failures` (1 = first retry).
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_MAX)
}

/// The shared record of one JWKS source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Bumped by every completed fetch (success or failure).
    pub seq: u64,
    /// When the keys in `<base>.keys` were fetched (ns; 0: never).
    pub fetched_at: u64,
    /// Whether the last completed attempt succeeded.
    pub last_ok: bool,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// No fetch before this (ns), except for an unknown `kid` after the interval.
    pub next_attempt: u64,
    /// When the last attempt started (ns).
    pub last_attempt: u64,
    /// A fetch is in flight until this time (ns; 0: none).
    pub lease_until: u64,
}

impl Meta {
    /// Text form stored in shared data.
    pub fn encode(&self) -> String {
        format!(
            "v1 {} {} {} {} {} {} {}",
            self.seq,
            self.fetched_at,
            u8::from(self.last_ok),
            self.failures,
            self.next_attempt,
            self.last_attempt,
            self.lease_until
        )
    }

    /// Parses [`Meta::encode`]'s form.
    pub fn decode(bytes: &[u8]) -> Option<Meta> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut it = text.split(' ');
        if it.next()? != "v1" {
            return None;
        }
        let mut n = || it.next()?.parse::<u64>().ok();
        Some(Meta {
            seq: n()?,
            fetched_at: n()?,
            last_ok: n()? == 1,
            failures: u32::try_from(n()?).ok()?,
            next_attempt: n()?,
            last_attempt: n()?,
            lease_until: n()?,
        })
    }

    /// Whether a fetch is in flight at `now`.
    pub fn leased(&self, now: u64) -> bool {
        self.lease_until > now
    }
}

/// What a request can do with a provider's keys right now.
#[derive(Debug, Clone)]
pub enum KeysView {
    /// Keys to verify with, and their generation (changes on every install).
    Ready(Rc<KeySet>, u64),
    /// No keys yet, but a fetch is in flight or about to start: wait.
    Pending,
    /// No keys and the last fetch failed: `Jwks remote fetch is failed`.
    Failed,
}

/// What the glue should do for a source after reading its meta.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// A new fetch completed since we last looked: read `<base>.keys` and
    /// call [`RemoteKeys::install`] (when `meta.last_ok`), or
    /// [`RemoteKeys::note_failure`].
    pub sync: bool,
    /// Claim the lease by writing this meta with CAS, then dispatch the call.
    pub claim: Option<Meta>,
}

/// One VM's view of a remote JWKS source.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    /// The source.
    pub remote: RemoteJwks,
    /// Shared-data key prefix (one per URL and cluster).
    pub base: String,
    keys: Option<Rc<KeySet>>,
    generation: u64,
    seen_seq: u64,
    meta: Meta,
    refetch_wanted: bool,
    /// Token of our own call in flight.
    pub in_flight: Option<u32>,
    /// Until when our own call may take (its lease).
    my_lease_until: u64,
}

impl RemoteKeys {
    /// A source with no keys yet.
    pub fn new(remote: RemoteJwks) -> Self {
        let base = format!("wasmesh.jwt_authn.jwks|{}|{}", remote.cluster, remote.uri);
        RemoteKeys {
            remote,
            base,
            keys: None,
            generation: 0,
            seen_seq: 0,
            meta: Meta::default(),
            refetch_wanted: false,
            in_flight: None,
            my_lease_until: 0,
        }
    }

    /// Shared-data key of the meta record.
    pub fn meta_key(&self) -> String {
        format!("{}.meta", self.base)
    }

    /// Shared-data key of the keys document.
    pub fn keys_key(&self) -> String {
        format!("{}.keys", self.base)
    }

    /// The view requests get.
    pub fn view(&self, now: u64) -> KeysView {
        match &self.keys {
            Some(k) => KeysView::Ready(Rc::clone(k), self.generation),
            None if self.meta.seq > 0
                && !self.meta.last_ok
                && !self.meta.leased(now)
                && self.in_flight.is_none() =>
            {
                KeysView::Failed
            }
            None => KeysView::Pending,
        }
    }

    /// Whether a request whose token names an unknown `kid` may wait for a
    /// refetch (one is in flight, or the last attempt is older than the
    /// interval). Asking registers the wish.
    pub fn want_refetch(&mut self, now: u64) -> bool {
        if self.in_flight.is_some() || self.meta.leased(now) {
            return true;
        }
        if now
            >= self
                .meta
                .last_attempt
                .saturating_add(nanos(UNKNOWN_KID_REFETCH_INTERVAL))
        {
            self.refetch_wanted = true;
            return true;
        }
        false
    }

    /// Looks at the shared meta (`None`: nobody wrote it yet) and says what to do.
    pub fn plan(&mut self, shared: Option<Meta>, now: u64) -> Plan {
        let meta = shared.unwrap_or_default();
        let sync = meta.seq != self.seen_seq;
        self.meta = meta.clone();
        let mut plan = Plan { sync, claim: None };
        if self.in_flight.is_some() && now >= self.my_lease_until {
            // Our call never completed within its lease: give up on it.
            self.in_flight = None;
        }
        if self.in_flight.is_some() || meta.leased(now) {
            return plan;
        }
        // Never fetched successfully by anyone, or older than cacheDuration.
        let stale = meta.fetched_at == 0
            || now
                >= meta
                    .fetched_at
                    .saturating_add(nanos(self.remote.cache_duration));
        let retry_due = now >= meta.next_attempt;
        let refetch = self.refetch_wanted
            && now
                >= meta
                    .last_attempt
                    .saturating_add(nanos(UNKNOWN_KID_REFETCH_INTERVAL));
        // A wish is answered by this plan or dropped; requests that still
        // need it ask again when they are re-evaluated.
        self.refetch_wanted = false;
        if (stale && retry_due) || refetch {
            let mut claim = meta;
            claim.lease_until = now
                .saturating_add(nanos(self.remote.timeout))
                .saturating_add(nanos(LEASE_GRACE));
            claim.last_attempt = now;
            plan.claim = Some(claim);
        }
        plan
    }

    /// We won the lease and dispatched call `token`.
    pub fn on_dispatched(&mut self, token: u32, claimed: Meta) {
        self.in_flight = Some(token);
        self.my_lease_until = claimed.lease_until;
        self.refetch_wanted = false;
        self.meta = claimed;
    }

    /// Our call completed: the meta to write (CAS) given the current shared
    /// one. `ok` is whether a usable key set came back.
    pub fn complete(&mut self, current: Option<Meta>, ok: bool, now: u64) -> Meta {
        self.in_flight = None;
        let mut m = current.unwrap_or_default();
        m.seq += 1;
        m.lease_until = 0;
        m.last_ok = ok;
        if ok {
            m.fetched_at = now;
            m.failures = 0;
            m.next_attempt = 0;
        } else {
            m.failures = m.failures.saturating_add(1);
            m.next_attempt = now.saturating_add(nanos(backoff(m.failures)));
        }
        m
    }

    /// Installs keys decoded from the shared document of `meta`.
    pub fn install(&mut self, keys: Rc<KeySet>, meta: &Meta) {
        self.keys = Some(keys);
        self.generation += 1;
        self.seen_seq = meta.seq;
        self.meta = meta.clone();
    }

    /// Records that the fetch of `meta` failed (keys, if any, are kept).
    pub fn note_failure(&mut self, meta: &Meta) {
        self.seen_seq = meta.seq;
        self.meta = meta.clone();
    }

    /// The current key generation (0: none yet).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether keys are installed.
    pub fn has_keys(&self) -> bool {
        self.keys.is_some()
    }
}

/// Where each provider's keys come from, for one VM.
#[derive(Debug)]
pub struct KeyRing {
    /// Per provider: inline keys, or an index into `remotes`.
    pub sources: Vec<Source>,
    /// Remote sources, one per distinct (cluster, URL).
    pub remotes: Vec<RefCell<RemoteKeys>>,
    /// The clock used for views (ns), set by the glue before each use.
    pub now: Cell<u64>,
    /// The host's `verify_signature`, as probed by the glue (default: none,
    /// everything verified in wasm).
    pub crypto: Crypto,
}

/// A provider's key source.
#[derive(Debug, Clone)]
pub enum Source {
    /// Inline `jwks`.
    Local(Rc<KeySet>),
    /// Index into [`KeyRing::remotes`].
    Remote(usize),
}

impl KeyRing {
    /// Builds the ring for a configuration.
    pub fn new(config: &FilterConfig) -> KeyRing {
        let mut remotes: Vec<RefCell<RemoteKeys>> = Vec::new();
        let sources = config
            .providers
            .iter()
            .map(|p| match &p.keys {
                KeySource::Local(k) => Source::Local(Rc::clone(k)),
                KeySource::Remote(r) => {
                    let i = remotes
                        .iter()
                        .position(|x| {
                            let x = x.borrow();
                            x.remote.uri == r.uri && x.remote.cluster == r.cluster
                        })
                        .unwrap_or_else(|| {
                            remotes.push(RefCell::new(RemoteKeys::new(r.clone())));
                            remotes.len() - 1
                        });
                    Source::Remote(i)
                }
            })
            .collect();
        KeyRing {
            sources,
            remotes,
            now: Cell::new(0),
            crypto: Crypto::wasm_only(),
        }
    }
}

impl KeyStore for KeyRing {
    fn view(&self, p: usize) -> KeysView {
        match self.sources.get(p) {
            Some(Source::Local(k)) => KeysView::Ready(Rc::clone(k), 1),
            Some(Source::Remote(i)) => self.remotes[*i].borrow().view(self.now.get()),
            None => KeysView::Failed,
        }
    }

    fn want_refetch(&self, p: usize) -> bool {
        match self.sources.get(p) {
            Some(Source::Remote(i)) => self.remotes[*i].borrow_mut().want_refetch(self.now.get()),
            _ => false,
        }
    }

    fn crypto(&self) -> Option<&Crypto> {
        Some(&self.crypto)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn remote() -> RemoteKeys {
        RemoteKeys::new(RemoteJwks {
            uri: "https://idp/keys".into(),
            cluster: "idp".into(),
            authority: "idp".into(),
            path: "/keys".into(),
            timeout: Duration::from_secs(5),
            cache_duration: Duration::from_secs(600),
        })
    }

    fn keys() -> Rc<KeySet> {
        Rc::new(KeySet::default())
    }

    #[test]
    fn meta_round_trips() {
        let m = Meta {
            seq: 3,
            fetched_at: 10,
            last_ok: true,
            failures: 2,
            next_attempt: 20,
            last_attempt: 5,
            lease_until: 30,
        };
        assert_eq!(Meta::decode(m.encode().as_bytes()), Some(m));
        assert_eq!(Meta::decode(b"v2 1"), None);
        assert_eq!(Meta::decode(b"v1 1 2"), None);
    }

    #[test]
    fn backoff_schedule() {
        let secs: Vec<u64> = (1..=9).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn first_fetch_then_share() {
        let now = 1000 * S;
        let mut a = remote();
        let mut b = remote();
        assert!(matches!(a.view(now), KeysView::Pending));
        // A claims the lease.
        let claim = a.plan(None, now).claim.expect("fetch due at start");
        assert_eq!(claim.lease_until, now + 6 * S);
        a.on_dispatched(7, claim.clone());
        // B sees the lease and waits.
        assert_eq!(b.plan(Some(claim.clone()), now).claim, None);
        assert!(matches!(b.view(now), KeysView::Pending));
        // A's call succeeds.
        let done = a.complete(Some(claim), true, now + S);
        assert_eq!(
            (done.seq, done.fetched_at, done.lease_until, done.last_ok),
            (1, now + S, 0, true)
        );
        // Both sync.
        for vm in [&mut a, &mut b] {
            let plan = vm.plan(Some(done.clone()), now + S);
            assert!(plan.sync);
            assert_eq!(plan.claim, None);
            vm.install(keys(), &done);
            assert!(matches!(vm.view(now + S), KeysView::Ready(_, 1)));
            assert!(!vm.plan(Some(done.clone()), now + 2 * S).sync);
        }
        // Refresh after cacheDuration; old keys stay usable meanwhile.
        let claim = a
            .plan(Some(done.clone()), now + 601 * S)
            .claim
            .expect("refresh due");
        a.on_dispatched(8, claim);
        assert!(matches!(a.view(now + 601 * S), KeysView::Ready(..)));
    }

    #[test]
    fn failure_backs_off_and_keeps_keys() {
        let now = 1000 * S;
        let mut a = remote();
        let claim = a.plan(None, now).claim.unwrap();
        a.on_dispatched(1, claim.clone());
        let failed = a.complete(Some(claim), false, now);
        assert_eq!((failed.failures, failed.next_attempt), (1, now + S));
        a.note_failure(&failed);
        assert!(
            a.plan(Some(failed.clone()), now).claim.is_none(),
            "backing off"
        );
        assert!(matches!(a.view(now), KeysView::Failed));
        let claim = a
            .plan(Some(failed.clone()), now + S)
            .claim
            .expect("retry after 1s");
        a.on_dispatched(2, claim.clone());
        assert!(
            matches!(a.view(now + S), KeysView::Pending),
            "waiting for the retry"
        );
        let failed2 = a.complete(Some(claim), false, now + 2 * S);
        assert_eq!((failed2.failures, failed2.next_attempt), (2, now + 4 * S));
        // A later success resets the count.
        a.note_failure(&failed2);
        let claim = a.plan(Some(failed2.clone()), now + 4 * S).claim.unwrap();
        a.on_dispatched(3, claim.clone());
        let ok = a.complete(Some(claim), true, now + 4 * S);
        a.install(keys(), &ok);
        assert_eq!(ok.failures, 0);
        // A failed refresh keeps the keys.
        let claim = a.plan(Some(ok.clone()), now + 700 * S).claim.unwrap();
        a.on_dispatched(4, claim.clone());
        let bad = a.complete(Some(claim), false, now + 700 * S);
        a.note_failure(&bad);
        assert!(matches!(a.view(now + 700 * S), KeysView::Ready(..)));
    }

    #[test]
    fn unknown_kid_refetch_at_most_once_per_interval() {
        let now = 1000 * S;
        let mut a = remote();
        let claim = a.plan(None, now).claim.unwrap();
        a.on_dispatched(1, claim.clone());
        let ok = a.complete(Some(claim), true, now);
        a.install(keys(), &ok);
        a.plan(Some(ok.clone()), now);
        // Right after a fetch: no refetch.
        assert!(!a.want_refetch(now + 10 * S));
        assert!(a.plan(Some(ok.clone()), now + 10 * S).claim.is_none());
        // After the interval: one refetch.
        assert!(a.want_refetch(now + 30 * S));
        let claim = a
            .plan(Some(ok.clone()), now + 30 * S)
            .claim
            .expect("refetch");
        a.on_dispatched(2, claim.clone());
        assert!(a.want_refetch(now + 30 * S), "in flight: may wait for it");
        let ok2 = a.complete(Some(claim), true, now + 31 * S);
        a.install(keys(), &ok2);
        assert_eq!(a.generation(), 2);
        assert!(!a.want_refetch(now + 40 * S));
    }

    #[test]
    fn own_lost_call_is_abandoned_after_its_lease() {
        let now = 1000 * S;
        let mut a = remote();
        let claim = a.plan(None, now).claim.unwrap();
        a.on_dispatched(1, claim.clone());
        assert!(a.plan(Some(claim.clone()), now + 5 * S).claim.is_none());
        assert!(
            a.plan(Some(claim), now + 6 * S).claim.is_some(),
            "retried after the lease"
        );
    }

    #[test]
    fn expired_lease_is_taken_over() {
        let now = 1000 * S;
        let mut a = remote();
        let mut b = remote();
        let claim = a.plan(None, now).claim.unwrap();
        a.on_dispatched(1, claim.clone());
        assert!(b.plan(Some(claim.clone()), now + 5 * S).claim.is_none());
        assert!(
            b.plan(Some(claim), now + 6 * S).claim.is_some(),
            "lease expired"
        );
    }
}
