//! The probe plugin (a real Rust module built with the proxy-wasm SDK) in an
//! endless loop: the callback is interrupted after the runtime's time budget,
//! the VM fails and the failure policy decides what happens to the stream.
//! Needs `target/wasm32-wasip1/release/probe.wasm` (bash scripts/build-wasm.sh).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasmesh::chain::StreamEvent;
use wasmesh::headers::HeaderMap;
use wasmesh::properties::PropertyMap;
use wasmesh::types::LogLevel;
use wasmesh::{ChainConfig, Clock, FailurePolicy, HostShared, PluginConfig, Runtime, Worker};

fn probe_worker(policy: FailurePolicy) -> (Worker, Arc<HostShared>) {
    let wasm = wasmesh::scenario::default_wasm_dir().join("probe.wasm");
    assert!(
        wasm.exists(),
        "{} is missing: build it with `bash scripts/build-wasm.sh`",
        wasm.display()
    );
    // One runtime (300 ms budget per callback) for all tests: the probe is
    // compiled once.
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    let runtime = RUNTIME
        .get_or_init(|| Runtime::new(Duration::from_millis(300)).expect("runtime"))
        .clone();
    let host = HostShared::new(Clock::virtual_at(1_700_000_000), LogLevel::Info);
    let mut plugin = PluginConfig::new("p", wasm, Vec::new());
    plugin.failure_policy = policy;
    let config = ChainConfig {
        plugins: vec![plugin],
        ..Default::default()
    };
    let worker = Worker::new(0, runtime, host.clone(), config).expect("the probe starts");
    (worker, host)
}

/// Sends a headers-only request with `x-probe: <commands>`; returns the
/// status the client got (if any), the headers the upstream saw (if it was
/// reached) and how long it took in real time.
fn send(w: &mut Worker, commands: &str) -> (Option<u32>, Option<HeaderMap>, Duration) {
    let headers = HeaderMap::from_pairs([
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "x"),
        ("x-probe", commands),
    ]);
    let t0 = Instant::now();
    let sid = w.start_stream(headers, true, PropertyMap::new());
    let took = t0.elapsed();
    let mut status = None;
    let mut upstream = None;
    for e in w.take_events(sid) {
        match e {
            StreamEvent::DownstreamHeaders { headers, .. } => {
                status = headers.get_str(":status").and_then(|s| s.parse().ok())
            }
            StreamEvent::UpstreamHeaders { headers, .. } => upstream = Some(headers),
            _ => {}
        }
    }
    (status, upstream, took)
}

fn logged(host: &HostShared, needle: &str) -> bool {
    host.logs_since(0)
        .iter()
        .any(|l| l.message.contains(needle))
}

#[test]
fn an_endless_loop_is_interrupted_and_fails_closed() {
    let (mut w, host) = probe_worker(FailurePolicy::FailClosed);
    let (status, upstream, took) = send(&mut w, "seq");
    assert_eq!(status, None);
    assert_eq!(
        upstream.and_then(|h| h.get_str("x-r-seq")).as_deref(),
        Some("1")
    );
    assert!(took < Duration::from_secs(1));

    let (status, upstream, took) = send(&mut w, "loop");
    assert_eq!(status, Some(503));
    assert!(upstream.is_none());
    assert!(
        took >= Duration::from_millis(250),
        "interrupted after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "interrupting took {took:?}");
    assert!(w.plugin_failed("p"));
    assert!(logged(&host, "interrupted"), "{:?}", host.logs_since(0));

    // fail_closed: the failed VM answers every later stream with 503, at once.
    let (status, _, took) = send(&mut w, "seq");
    assert_eq!(status, Some(503));
    assert!(took < Duration::from_secs(1));
}

#[test]
fn after_an_endless_loop_fail_reload_serves_from_a_fresh_vm() {
    let (mut w, host) = probe_worker(FailurePolicy::FailReload);
    assert_eq!(
        send(&mut w, "seq")
            .1
            .and_then(|h| h.get_str("x-r-seq"))
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        send(&mut w, "seq")
            .1
            .and_then(|h| h.get_str("x-r-seq"))
            .as_deref(),
        Some("2")
    );
    let (status, _, _) = send(&mut w, "loop");
    assert_eq!(status, Some(503));
    // The new VM starts counting again.
    let (status, upstream, _) = send(&mut w, "seq");
    assert_eq!(status, None);
    assert_eq!(
        upstream.and_then(|h| h.get_str("x-r-seq")).as_deref(),
        Some("1")
    );
    assert!(logged(&host, "reloaded"), "{:?}", host.logs_since(0));
}

#[test]
fn fail_open_passes_the_stream_after_an_endless_loop() {
    let (mut w, _) = probe_worker(FailurePolicy::FailOpen);
    let (status, upstream, _) = send(&mut w, "add=x-added,1;loop");
    assert_eq!(status, None);
    let upstream = upstream.expect("the request passed the failed plugin");
    // What the plugin changed before it hung stays (Envoy changes the real
    // header map in place); its results did not get written: the probe writes
    // them at the end of the callback, which never came.
    assert_eq!(upstream.get_str("x-added").as_deref(), Some("1"));
    assert!(upstream.get(b"x-r-add-x-added").is_none());
}
