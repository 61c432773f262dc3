//! A delayed stream that goes away (client reset) gives back its active
//! fault at once, and its timer entry never resumes it. Drives a harness
//! `Worker` directly to reset a stream in the middle of its delay.
//!
//! Needs the `.wasm` built first (`bash scripts/build-wasm.sh`).

use wasmesh::chain::{ChainConfig, PluginConfig, StreamEvent, Worker};
use wasmesh::headers::HeaderMap;
use wasmesh::host::{Clock, HostShared};
use wasmesh::types::LogLevel;
use wasmesh::Runtime;

const MS: i64 = 1_000_000;

fn request(path: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "shop.example.com"),
        (":path", path),
    ] {
        h.add(k.as_bytes(), v.as_bytes());
    }
    h
}

fn active(host: &HostShared) -> i64 {
    host.metric("fault.active_faults").map_or(-1, |m| m.value)
}

fn went_upstream(events: &[StreamEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, StreamEvent::UpstreamHeaders { .. }))
}

#[test]
fn reset_while_delayed_cleans_up() {
    let wasm = wasmesh::scenario::default_wasm_dir().join("fault_injection.wasm");
    let config = r#"{"maxActiveFaults":1,"faults":[{"match":[{"uri":{"prefix":"/slow"}}],"delay":{"fixedDelay":"2s"}}]}"#;
    let clock = Clock::virtual_at(1_700_000_000);
    let host = HostShared::new(clock.clone(), LogLevel::Info);
    let chain = ChainConfig {
        plugins: vec![PluginConfig::new("fault", wasm, config)],
        ..Default::default()
    };
    let mut w =
        Worker::new(0, Runtime::shared().expect("runtime"), host.clone(), chain).expect("worker");
    let t0 = clock.now_ns();

    // A request is delayed: paused, counted, and the root timer is armed
    // for its deadline.
    let sid = w.start_stream(request("/slow"), true, Default::default());
    assert!(!went_upstream(&w.take_events(sid)));
    assert_eq!(active(&host), 1);
    assert_eq!(w.next_timer_ns(), Some(t0 + 2000 * MS));

    // The client goes away half-way through.
    clock.set_ns(t0 + 1000 * MS);
    w.downstream_reset(sid);
    let events = w.take_events(sid);
    assert!(!went_upstream(&events));
    assert_eq!(
        active(&host),
        0,
        "the reset stream must give back its active fault"
    );

    // The limit is free again: another request is delayed (not overflowed).
    let sid2 = w.start_stream(request("/slow"), true, Default::default());
    assert!(!went_upstream(&w.take_events(sid2)));
    assert_eq!(active(&host), 1);
    assert_eq!(
        host.metric("fault.faults_overflow").map(|m| m.value),
        Some(0)
    );

    // At the first deadline nothing is resumed (the entry is gone); the timer
    // is re-armed for the second request, which is released at its own.
    clock.set_ns(t0 + 2000 * MS);
    w.fire_timers();
    assert!(w.take_events(sid).is_empty());
    assert!(!went_upstream(&w.take_events(sid2)));
    assert_eq!(w.next_timer_ns(), Some(t0 + 3000 * MS));
    clock.set_ns(t0 + 3000 * MS);
    w.fire_timers();
    assert!(
        went_upstream(&w.take_events(sid2)),
        "the second request is released at its deadline"
    );
    assert_eq!(active(&host), 0);
    // Nothing is waiting any more: the timer is off.
    assert_eq!(w.next_timer_ns(), None);
}
