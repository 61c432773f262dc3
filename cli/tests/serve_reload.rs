//! `wasmesh serve --watch`: a rebuilt `.wasm` takes effect for new
//! requests while a request in flight finishes on the old chain; a broken
//! module is rejected (log line, `wasmesh.reload.update_rejected`) while
//! traffic keeps flowing. And SIGTERM: requests in flight complete, then
//! the process exits.

mod serve_support;

use bytes::Bytes;
use http_body_util::Full;
use serve_support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// An upstream answering `hello`; `/hold` answers only once `release`
/// says so, and reports each arrival on `arrived`.
async fn holding_upstream(
    release: tokio::sync::watch::Receiver<bool>,
    arrived: tokio::sync::mpsc::UnboundedSender<()>,
) -> SocketAddr {
    upstream(move |req: http::Request<hyper::body::Incoming>| {
        let mut release = release.clone();
        let arrived = arrived.clone();
        async move {
            if req.uri().path() == "/hold" {
                let _ = arrived.send(());
                let _ = release.wait_for(|r| *r).await;
            }
            http::Response::new(full("hello"))
        }
    })
    .await
}

/// Replaces `to` with `from` atomically (a rename), as a build would.
fn install(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

async fn body_of(addr: SocketAddr, path: &str) -> String {
    let r = read_reply(
        send(
            addr,
            request("GET", path, Full::new(Bytes::new()), false),
            false,
        )
        .await,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

#[test]
fn watch_reloads_a_rebuilt_module_and_rejects_a_broken_one() {
    run_local(async {
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel();
        let up = holding_upstream(release_rx, arrived_tx).await;
        let dir = temp_dir("reload");
        let module = dir.join("plugin.wasm");
        // `probe` passes bodies through; `body_rewrite` (configured
        // `response`) upper-cases them. Both accept the configuration.
        install(&wasm_dir().join("probe.wasm"), &module);
        let file = dir.join("serve.yaml");
        std::fs::write(
            &file,
            format!(
                r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
workers: 2
access_log: off
chain:
  - {{name: plugin, wasm: plugin.wasm, config: "response"}}
clusters:
  upstream: {{endpoints: ["{up}"]}}
"#
            ),
        )
        .unwrap();
        let proxy = Spawned::start_file(&file, &["--watch"], dir.clone());
        proxy.wait_line("watching", Duration::from_secs(10));
        let addr = proxy.listen;
        assert_eq!(body_of(addr, "/").await, "hello");
        // A request in flight on the old chain.
        let inflight = tokio::task::spawn_local(body_of(addr, "/hold"));
        arrived_rx.recv().await.unwrap();

        install(&wasm_dir().join("body_rewrite.wasm"), &module);
        proxy.wait_line("reloaded the chain", Duration::from_secs(30));
        for _ in 0..4 {
            // New requests (new connections, either worker) use the new chain.
            assert_eq!(body_of(addr, "/").await, "HELLO");
        }
        release_tx.send(true).unwrap();
        assert_eq!(
            inflight.await.unwrap(),
            "hello",
            "the request in flight finished on the old chain"
        );

        // A broken build: rejected, the running chain keeps serving.
        let broken = dir.join("broken.wasm");
        std::fs::write(&broken, b"\0asm not really").unwrap();
        install(&broken, &module);
        let line = proxy.wait_line("update rejected", Duration::from_secs(30));
        assert!(line.contains("plugin.wasm"), "{line}");
        assert_eq!(body_of(addr, "/").await, "HELLO");

        // Fixed again, then a configuration the plugin refuses: rejected
        // the same way.
        install(&wasm_dir().join("body_rewrite.wasm"), &module);
        proxy.wait_line("reloaded the chain", Duration::from_secs(30));
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("\"response\"", "\"sideways\"")).unwrap();
        proxy.wait_line("update rejected", Duration::from_secs(30));
        assert_eq!(body_of(addr, "/").await, "HELLO");
        let stats = get(proxy.admin.expect("admin"), "/stats?filter=reload")
            .await
            .body;
        assert!(
            stats.contains("wasmesh.reload.update_success: 2"),
            "{stats}"
        );
        assert!(
            stats.contains("wasmesh.reload.update_rejected: 2"),
            "{stats}"
        );
    });
}

#[test]
fn sigterm_lets_requests_in_flight_complete() {
    run_local(async {
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel();
        let up = holding_upstream(release_rx, arrived_tx).await;
        let mut proxy = Spawned::start(
            &format!(
                r#"
listen: 127.0.0.1:0
workers: 2
access_log: off
drain_timeout: 20s
chain:
  - {{name: probe, wasm: probe}}
clusters:
  upstream: {{endpoints: ["{up}"]}}
"#
            ),
            &[],
        );
        let addr = proxy.listen;
        let mut inflight = Vec::new();
        for h2 in [false, false, true] {
            inflight.push(tokio::task::spawn_local(async move {
                read_reply(
                    send(
                        addr,
                        request("GET", "/hold", Full::new(Bytes::new()), h2),
                        h2,
                    )
                    .await,
                )
                .await
            }));
        }
        for _ in 0..3 {
            arrived_rx.recv().await.unwrap();
        }
        proxy.signal("TERM");
        proxy.wait_line("SIGTERM, draining", Duration::from_secs(10));
        release_tx.send(true).unwrap();
        for t in inflight {
            let r = t.await.unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "hello"));
        }
        let status = proxy.wait_exit(Duration::from_secs(20));
        assert!(status.success(), "{status:?}\n{}", proxy.stderr_text());
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    });
}
