//! proxy-wasm glue of `body_rewrite`.

use crate::{upper, Settings};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    request_chunks: u32,
    response_chunks: u32,
    request_bytes: u32,
    response_bytes: u32,
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<(Settings, Metrics)>>,
}

impl Context for Root {}

fn define(name: &str) -> u32 {
    hostcalls::define_metric(MetricType::Counter, name).unwrap_or(0)
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let settings = match Settings::parse(&text) {
            Ok(s) => s,
            Err(e) => {
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("body_rewrite: {e}")).ok();
                return false;
            }
        };
        let m = Metrics {
            request_chunks: define("body_rewrite.request_chunks"),
            response_chunks: define("body_rewrite.response_chunks"),
            request_bytes: define("body_rewrite.request_bytes"),
            response_bytes: define("body_rewrite.response_bytes"),
        };
        self.shared = Some(Rc::new((settings, m)));
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Stream {
            shared,
            request_chunks: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    shared: Rc<(Settings, Metrics)>,
    request_chunks: u32,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        let (s, m) = *self.shared;
        self.request_chunks += 1;
        let _ = hostcalls::increment_metric(m.request_chunks, 1);
        if !s.request && !s.buffer_request {
            return Action::Continue;
        }
        if s.buffer_request && !eos {
            return Action::Pause;
        }
        if let Some(body) = (size > 0)
            .then(|| self.get_http_request_body(0, size))
            .flatten()
        {
            let _ = hostcalls::increment_metric(m.request_bytes, body.len() as i64);
            self.set_http_request_body(0, size, &upper(&body));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.set_http_response_header(
            "x-body-rewrite-request-chunks",
            Some(&self.request_chunks.to_string()),
        );
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        let (s, m) = *self.shared;
        let _ = hostcalls::increment_metric(m.response_chunks, 1);
        if !s.response && !s.buffer_response {
            return Action::Continue;
        }
        if s.buffer_response && !eos {
            return Action::Pause;
        }
        if let Some(body) = (size > 0)
            .then(|| self.get_http_response_body(0, size))
            .flatten()
        {
            let _ = hostcalls::increment_metric(m.response_bytes, body.len() as i64);
            self.set_http_response_body(0, size, &upper(&body));
        }
        Action::Continue
    }
}
