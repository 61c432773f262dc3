//! Shared data under real contention: four workers on four threads (each
//! its own VMs, as Envoy's worker threads), one host, so that
//! compare-and-swap updates of the filters really race.
//!
//! * fault_injection's `maxActiveFaults` count (shared data, CAS with
//!   retries): never above the limit while a sampler watches the gauge, back
//!   to exactly 0 at the end, and every faulted request is accounted for as
//!   injected or overflowed — no lost update.
//! * jwt_authn's shared JWKS fetch (a CAS lease): four workers starting
//!   together with requests waiting make exactly one callout, and every
//!   waiting request on every worker is answered from it.

#[path = "hostile_traffic/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmesh::chain::{CalloutResponse, ChainConfig, PluginConfig, StreamEvent};
use wasmesh::headers::HeaderMap;
use wasmesh::host::{Clock, HostShared};
use wasmesh::types::LogLevel;
use wasmesh::{Runtime, Worker};

const WORKERS: usize = 4;

fn wasm(name: &str) -> std::path::PathBuf {
    wasmesh::scenario::ensure_artifacts().expect("build the .wasm artifacts");
    wasmesh::scenario::default_wasm_dir().join(format!("{name}.wasm"))
}

fn headers(path: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "api.example.com"),
        (":path", path),
    ]
    .iter()
    .chain(extra)
    {
        h.add(k.as_bytes(), v.as_bytes());
    }
    h
}

fn status_of(h: &HeaderMap) -> Option<u32> {
    h.get_str(":status")?.parse().ok()
}

/// Drives the events of `sid`: answers the upstream with 200 once the
/// request went out, records the status. Returns true when it completed.
fn pump(w: &mut Worker, sid: u64, answered: &mut bool, status: &mut Option<u32>) -> bool {
    let mut complete = false;
    for e in w.take_events(sid) {
        match e {
            StreamEvent::UpstreamHeaders { .. } if !*answered => {
                *answered = true;
                let mut h = HeaderMap::new();
                h.add(b":status", b"200");
                w.upstream_headers(sid, h, true);
                for e in w.take_events(sid) {
                    if let StreamEvent::DownstreamHeaders { headers, .. } = &e {
                        *status = status_of(headers);
                    }
                    if e == StreamEvent::Complete {
                        complete = true;
                    }
                }
            }
            StreamEvent::DownstreamHeaders { headers, .. } => *status = status_of(&headers),
            StreamEvent::Complete => complete = true,
            _ => {}
        }
    }
    complete
}

#[derive(Default, Debug)]
struct Tally {
    slow: usize,
    fail: usize,
    plain: usize,
    aborted: usize,
    other_status: Vec<u32>,
}

#[test]
fn max_active_faults_holds_under_real_concurrency() {
    const MAX: i64 = 3;
    const ROUNDS: usize = 60;
    const IN_FLIGHT: usize = 6;
    let config = ChainConfig {
        plugins: vec![PluginConfig::new(
            "fault",
            wasm("fault_injection"),
            format!(
                r#"{{"maxActiveFaults": {MAX}, "faults": [
                {{"name": "slow", "match": [{{"uri": {{"prefix": "/slow"}}}}], "delay": {{"fixedDelay": "3ms"}}}},
                {{"name": "fail", "match": [{{"uri": {{"prefix": "/fail"}}}}], "abort": {{"httpStatus": 503}}}}]}}"#
            ),
        )],
        ..Default::default()
    };
    let host = HostShared::new(Clock::Real, LogLevel::Warn);
    let runtime = Runtime::shared().expect("runtime");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let done = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicI64::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        // The sampler: the gauge must never show more than MAX.
        {
            let (host, done, max_seen, samples) = (
                host.clone(),
                done.clone(),
                max_seen.clone(),
                samples.clone(),
            );
            s.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Some(m) = host.metric("fault.active_faults") {
                        max_seen.fetch_max(m.value, Ordering::Relaxed);
                        assert!(m.value >= 0, "active faults went negative: {}", m.value);
                    }
                    samples.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(50));
                }
            });
        }
        let mut threads = Vec::new();
        for id in 0..WORKERS {
            let (host, runtime, config, tally) =
                (host.clone(), runtime.clone(), config.clone(), tally.clone());
            threads.push(s.spawn(move || {
                let clock = host.clock.clone();
                let mut w = Worker::new(id, runtime, host, config).expect("worker");
                let mut t = Tally::default();
                for round in 0..ROUNDS {
                    let mut live = Vec::new();
                    for k in 0..IN_FLIGHT {
                        let path = match (round + k + id) % 3 {
                            0 => "/slow",
                            1 => "/fail",
                            _ => "/plain",
                        };
                        match path {
                            "/slow" => t.slow += 1,
                            "/fail" => t.fail += 1,
                            _ => t.plain += 1,
                        }
                        let sid = w.start_stream(headers(path, &[]), true, Default::default());
                        live.push((sid, false, None::<u32>));
                    }
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while !live.is_empty() {
                        assert!(Instant::now() < deadline, "streams stuck");
                        w.fire_timers();
                        live.retain_mut(|(sid, answered, status)| {
                            let complete = pump(&mut w, *sid, answered, status);
                            if complete {
                                match status {
                                    Some(200) => {}
                                    Some(503) => t.aborted += 1,
                                    other => t.other_status.push(other.unwrap_or(0)),
                                }
                            }
                            !complete
                        });
                        // What the remaining streams wait for is a delay
                        // timer (real clock): sleep until it is due.
                        match w.next_timer_ns().map(|due| due - clock.now_ns()) {
                            Some(wait) if wait > 0 => {
                                std::thread::sleep(Duration::from_nanos(wait as u64))
                            }
                            _ => std::thread::yield_now(),
                        }
                    }
                }
                assert_eq!(w.active_streams(), 0);
                let mut g = tally.lock().unwrap();
                g.slow += t.slow;
                g.fail += t.fail;
                g.plain += t.plain;
                g.aborted += t.aborted;
                g.other_status.extend(t.other_status);
            }));
        }
        for t in threads {
            t.join().expect("worker thread");
        }
        done.store(true, Ordering::Relaxed);
    });
    let t = tally.lock().unwrap();
    let m = |n: &str| host.metric(n).map_or(0, |m| m.value);
    let (delays, aborts, overflow) = (
        m("fault.delays_injected"),
        m("fault.aborts_injected"),
        m("fault.faults_overflow"),
    );
    eprintln!(
        "maxActiveFaults {MAX}, {WORKERS} threads: {} slow + {} fail + {} plain requests; delays {delays}, aborts {aborts}, overflow {overflow}; gauge max {} over {} samples",
        t.slow,
        t.fail,
        t.plain,
        max_seen.load(Ordering::Relaxed),
        samples.load(Ordering::Relaxed)
    );
    assert!(
        t.other_status.is_empty(),
        "unexpected statuses {:?}",
        t.other_status
    );
    assert_eq!(m("fault.active_faults"), 0, "active faults not back to 0");
    assert!(
        max_seen.load(Ordering::Relaxed) <= MAX,
        "gauge above the limit"
    );
    assert_eq!(
        (delays + aborts + overflow) as usize,
        t.slow + t.fail,
        "every faulted request is injected or overflowed"
    );
    assert_eq!(aborts as usize, t.aborted, "aborts counted = 503s seen");
    assert!(overflow > 0, "the limit was reached (contention happened)");
    assert!(delays > 0 && aborts > 0);
}

#[test]
fn one_jwks_fetch_for_four_workers_starting_together() {
    const PER_WORKER: usize = 5;
    let config = ChainConfig {
        plugins: vec![PluginConfig::new(
            "authn",
            wasm("jwt_authn"),
            r#"{"jwtRules": [{"name": "idp", "issuer": "https://idp.example.com",
                "jwksUri": "https://idp.example.com/keys", "jwksCluster": "idp", "cacheDuration": "600s"}],
               "rules": [{"match": {"prefix": "/"}, "requires": {"provider": "idp"}}]}"#,
        )],
        ..Default::default()
    };
    let host = HostShared::new(Clock::virtual_at(fixtures::NOW), LogLevel::Warn);
    host.add_cluster("idp");
    let runtime = Runtime::shared().expect("runtime");
    let calls = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(std::sync::Barrier::new(WORKERS));
    let remaining = Arc::new(AtomicUsize::new(WORKERS * PER_WORKER));
    let failed = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        for id in 0..WORKERS {
            let (host, runtime, config, calls, statuses, barrier, remaining, failed) = (
                host.clone(),
                runtime.clone(),
                config.clone(),
                calls.clone(),
                statuses.clone(),
                barrier.clone(),
                remaining.clone(),
                failed.clone(),
            );
            s.spawn(move || {
                barrier.wait();
                let mut w = Worker::new(id, runtime, host.clone(), config).expect("worker");
                let auth = format!("Bearer {}", fixtures::ALICE);
                let mut live: Vec<(u64, bool, Option<u32>)> = (0..PER_WORKER)
                    .map(|_| {
                        let sid = w.start_stream(
                            headers("/api", &[("authorization", &auth)]),
                            true,
                            Default::default(),
                        );
                        (sid, false, None)
                    })
                    .collect();
                let mut pending_answer = Vec::new();
                // The workers go in lockstep rounds: each pumps its streams,
                // then (everyone done: barrier) virtual time moves on by
                // 10 ms and each fires its timers — the 200 ms ticks notice
                // the shared keys. No sleeps: what a round waits for is the
                // other workers' round.
                let mut caught = None;
                for round in 0..2000 {
                    let body = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        if round > 0 {
                            w.fire_timers();
                        }
                        for c in w.take_callouts() {
                            calls.fetch_add(1, Ordering::SeqCst);
                            pending_answer.push(c);
                        }
                        // The fetching worker answers after a short while.
                        if !pending_answer.is_empty() && rand_ish(id) {
                            for c in pending_answer.drain(..) {
                                let mut h = HeaderMap::new();
                                h.add(b":status", b"200");
                                h.add(b"content-type", b"application/json");
                                w.deliver_http(
                                    &c,
                                    Some(CalloutResponse {
                                        headers: h,
                                        body: fixtures::JWKS.as_bytes().to_vec(),
                                        trailers: HeaderMap::new(),
                                    }),
                                );
                            }
                        }
                        let before = live.len();
                        live.retain_mut(|(sid, answered, status)| {
                            let complete = pump(&mut w, *sid, answered, status);
                            if complete {
                                statuses.lock().unwrap().push(status.unwrap_or(0));
                            }
                            !complete
                        });
                        before - live.len()
                    }));
                    match body {
                        Ok(done) => {
                            remaining.fetch_sub(done, Ordering::SeqCst);
                        }
                        Err(e) => {
                            failed.store(true, Ordering::SeqCst);
                            caught = Some(e);
                        }
                    }
                    // Every worker has pumped this round; nobody changes
                    // `remaining` or `failed` before the next barrier, so all
                    // decide alike.
                    barrier.wait();
                    if remaining.load(Ordering::SeqCst) == 0 || failed.load(Ordering::SeqCst) {
                        break;
                    }
                    if id == 0 {
                        host.clock.set_ns(host.clock.now_ns() + 10_000_000);
                    }
                    // The clock has moved for everyone.
                    barrier.wait();
                }
                if let Some(e) = caught {
                    std::panic::resume_unwind(e);
                }
                assert!(!failed.load(Ordering::SeqCst), "another worker failed");
                assert!(live.is_empty(), "worker {id}: requests still waiting");
            });
        }
    });
    let statuses = statuses.lock().unwrap();
    eprintln!(
        "{WORKERS} workers, {} waiting requests, {} JWKS callouts, statuses {:?}",
        statuses.len(),
        calls.load(Ordering::SeqCst),
        statuses
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "exactly one fetch");
    assert_eq!(statuses.len(), WORKERS * PER_WORKER);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        host.metric("jwt_authn.jwks_fetch_success").map(|m| m.value),
        Some(1)
    );
}

/// Answers at once on some polls (different per worker), so answers and
/// other workers' ticks interleave.
fn rand_ish(id: usize) -> bool {
    static N: AtomicUsize = AtomicUsize::new(0);
    (N.fetch_add(1, Ordering::Relaxed) + id).is_multiple_of(3)
}
