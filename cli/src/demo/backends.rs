//! The demo's embedded servers: the identity provider's HTTP answers and an
//! echo upstream per cluster.

use super::*;

type Resp = http::Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: String) -> Resp {
    let mut r = http::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn idp_answer(idp: &Idp, req: &http::Request<hyper::body::Incoming>) -> Resp {
    let path = req.uri().path();
    if path == "/.well-known/jwks.json" {
        return reply(200, "application/json", idp.jwks());
    }
    if let Some(user) = path.strip_prefix("/token/") {
        if let Some(t) = idp.token(user) {
            return reply(200, "text/plain", format!("{t}\n"));
        }
    }
    reply(404, "text/plain", "not found\n".into())
}

fn echo_answer(cluster: &str, req: &http::Request<hyper::body::Incoming>) -> Resp {
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.get_mut(k.as_str()) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&v);
            }
            _ => {
                headers.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    let body = json!({
        "cluster": cluster,
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    });
    let mut r = reply(200, "application/json", format!("{body:#}\n"));
    if let Ok(v) = http::HeaderValue::from_str(cluster) {
        r.headers_mut().insert("x-demo-upstream", v);
    }
    r
}

/// The embedded upstreams and identity provider, on one thread.
pub(super) struct Backends {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backends {
    /// `listeners`: (cluster, bound listener); the `idp` cluster gets the
    /// identity provider, every other one an echo upstream.
    pub(super) fn start(
        listeners: Vec<(String, std::net::TcpListener)>,
        idp: Arc<Idp>,
    ) -> Result<Backends, String> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wasmesh-demo-backends".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    for (cluster, l) in listeners {
                        let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                            continue;
                        };
                        let idp = idp.clone();
                        tokio::spawn(async move {
                            loop {
                                let Ok((s, _)) = l.accept().await else {
                                    tokio::time::sleep(Duration::from_millis(5)).await;
                                    continue;
                                };
                                let cluster = cluster.clone();
                                let idp = idp.clone();
                                tokio::spawn(async move {
                                    let svc = hyper::service::service_fn(
                                        move |req: http::Request<hyper::body::Incoming>| {
                                            let r = if cluster == IDP_CLUSTER {
                                                idp_answer(&idp, &req)
                                            } else {
                                                echo_answer(&cluster, &req)
                                            };
                                            async move {
                                                let _ = req.into_body().collect().await;
                                                Ok::<_, Infallible>(r)
                                            }
                                        },
                                    );
                                    let _ = hyper_util::server::conn::auto::Builder::new(
                                        TokioExecutor::new(),
                                    )
                                    .serve_connection(TokioIo::new(s), svc)
                                    .await;
                                });
                            }
                        });
                    }
                    let _ = rx.await;
                });
            })
            .map_err(|e| format!("demo backends: {e}"))?;
        Ok(Backends {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub(super) fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop();
    }
}
