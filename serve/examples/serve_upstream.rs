//! A fast loopback upstream for `scripts/bench-serve.sh`: answers every
//! request with `200` and a small body (after reading the request body),
//! over HTTP/1.1 or HTTP/2 prior knowledge, on N threads sharing one
//! listening socket.
//!
//! ```sh
//! cargo run --profile host -p wasmesh-serve --example serve_upstream -- 127.0.0.1:18081 2
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18081".into());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let listener = std::net::TcpListener::bind(&addr).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    eprintln!(
        "serve_upstream: listening on {}",
        listener.local_addr().unwrap()
    );
    let mut handles = Vec::new();
    for _ in 0..threads {
        let l = listener.try_clone().expect("clone");
        handles.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).expect("listener");
                loop {
                    let Ok((s, _)) = l.accept().await else {
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(
                            |req: http::Request<hyper::body::Incoming>| async move {
                                let _ = req.into_body().collect().await;
                                let mut r = http::Response::new(Full::new(Bytes::from_static(
                                    b"hello from upstream\n",
                                )));
                                r.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("text/plain"),
                                );
                                Ok::<_, Infallible>(r)
                            },
                        );
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                    });
                }
            });
        }));
    }
    for h in handles {
        let _ = h.join();
    }
}
