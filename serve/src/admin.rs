//! The admin listener, like Envoy's: `/ready`, `/stats`,
//! `/stats/prometheus`, `/config_dump`, `/quitquitquit` and a help page.

use super::stats::{render_json, render_prometheus, render_text};
use super::Shared;
use bytes::Bytes;
use http_body_util::Full;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;

const HELP: &str = "admin commands are:
  /: this help
  /config_dump: the effective configuration (JSON)
  /ready: LIVE (200) while serving, DRAINING (503) during shutdown
  /stats: counters, gauges and histograms (?filter=REGEX, ?format=json, ?format=prometheus)
  /stats/prometheus: the stats in Prometheus text format
  /quitquitquit (POST): drain and exit
";

fn reply(status: u16, ctype: &str, body: impl Into<Bytes>) -> http::Response<Full<Bytes>> {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

fn query_param(q: &str, key: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.replace('+', " "))
    })
}

/// Answers one admin request.
pub fn handle(
    shared: &Shared,
    quit: &watch::Sender<bool>,
    method: &http::Method,
    uri: &http::Uri,
) -> http::Response<Full<Bytes>> {
    let path = uri.path();
    let q = uri.query().unwrap_or("");
    match path {
        "/" | "/help" => reply(200, "text/plain; charset=UTF-8", HELP),
        "/ready" => {
            if shared.draining.load(Ordering::Relaxed) {
                reply(503, "text/plain; charset=UTF-8", "DRAINING\n")
            } else {
                reply(200, "text/plain; charset=UTF-8", "LIVE\n")
            }
        }
        "/stats" | "/stats/prometheus" => {
            let filter = match query_param(q, "filter") {
                Some(f) if !f.is_empty() => match regex_lite::Regex::new(&f) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        return reply(
                            400,
                            "text/plain; charset=UTF-8",
                            format!("invalid filter: {e}\n"),
                        )
                    }
                },
                _ => None,
            };
            let stats: Vec<_> = shared
                .stats
                .snapshot(&shared.host)
                .into_iter()
                .filter(|s| filter.as_ref().is_none_or(|r| r.is_match(&s.name)))
                .collect();
            let format = query_param(q, "format");
            if path == "/stats/prometheus" || format.as_deref() == Some("prometheus") {
                reply(
                    200,
                    "text/plain; charset=UTF-8",
                    render_prometheus(&stats, &shared.tags),
                )
            } else if format.as_deref() == Some("json") {
                reply(200, "application/json", render_json(&stats, None))
            } else {
                reply(200, "text/plain; charset=UTF-8", render_text(&stats, None))
            }
        }
        "/config_dump" => {
            let body = serde_json::to_string_pretty(&shared.config.to_json()).unwrap_or_default();
            reply(200, "application/json", body)
        }
        "/quitquitquit" => {
            if method != http::Method::POST {
                return reply(
                    405,
                    "text/plain; charset=UTF-8",
                    "This endpoint requires POST\n",
                );
            }
            shared.draining.store(true, Ordering::Relaxed);
            let _ = quit.send(true);
            reply(200, "text/plain; charset=UTF-8", "OK\n")
        }
        _ => reply(
            404,
            "text/plain; charset=UTF-8",
            format!("invalid path: {path}\n{HELP}"),
        ),
    }
}

/// Serves the admin listener until shutdown.
pub async fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    quit: Arc<watch::Sender<bool>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let shared = shared.clone();
        let quit = quit.clone();
        let mut sd = shutdown.clone();
        tokio::task::spawn_local(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let r = handle(&shared, &quit, req.method(), req.uri());
                    async move { Ok::<_, Infallible>(r) }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = sd.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
