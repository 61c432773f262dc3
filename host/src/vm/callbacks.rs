//! The module's callbacks the host calls, one typed entry point each
//! (Proxy-Wasm ABI v0.2.1 `proxy_on_*`): stream phases, log/done/delete,
//! timers, queues, HTTP and gRPC callout answers.

use super::*;

impl Vm {
    /// `proxy_on_request_headers`; a missing export means continue (0).
    pub fn on_request_headers(&mut self, ctx: u32, n: usize, eos: bool) -> Result<u32, Trap> {
        match &self.exports.on_request_headers {
            None => Ok(0),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_request_headers",
                ctx,
                |s| f.call(s, (ctx as i32, n as i32, eos as i32)),
            )
            .map(|r| r as u32),
        }
    }

    /// `proxy_on_request_body`.
    pub fn on_request_body(&mut self, ctx: u32, size: usize, eos: bool) -> Result<u32, Trap> {
        match &self.exports.on_request_body {
            None => Ok(0),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_request_body",
                ctx,
                |s| f.call(s, (ctx as i32, size as i32, eos as i32)),
            )
            .map(|r| r as u32),
        }
    }

    /// `proxy_on_request_trailers`.
    pub fn on_request_trailers(&mut self, ctx: u32, n: usize) -> Result<u32, Trap> {
        match &self.exports.on_request_trailers {
            None => Ok(0),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_request_trailers",
                ctx,
                |s| f.call(s, (ctx as i32, n as i32)),
            )
            .map(|r| r as u32),
        }
    }

    /// `proxy_on_response_headers`.
    pub fn on_response_headers(&mut self, ctx: u32, n: usize, eos: bool) -> Result<u32, Trap> {
        match &self.exports.on_response_headers {
            None => Ok(0),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_response_headers",
                ctx,
                |s| f.call(s, (ctx as i32, n as i32, eos as i32)),
            )
            .map(|r| r as u32),
        }
    }

    /// `proxy_on_response_body`.
    pub fn on_response_body(&mut self, ctx: u32, size: usize, eos: bool) -> Result<u32, Trap> {
        match &self.exports.on_response_body {
            None => Ok(0),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_response_body",
                ctx,
                |s| f.call(s, (ctx as i32, size as i32, eos as i32)),
            )
            .map(|r| r as u32),
        }
    }

    /// `proxy_on_response_trailers`.
    pub fn on_response_trailers(&mut self, ctx: u32, n: usize) -> Result<u32, Trap> {
        match &self.exports.on_response_trailers {
            None => Ok(0),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_response_trailers",
                ctx,
                |s| f.call(s, (ctx as i32, n as i32)),
            )
            .map(|r| r as u32),
        }
    }

    /// `proxy_on_log`.
    pub fn on_log(&mut self, ctx: u32) -> Result<(), Trap> {
        match &self.exports.on_log {
            None => Ok(()),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_log",
                ctx,
                |s| f.call(s, ctx as i32),
            ),
        }
    }

    /// `proxy_on_done`; true when the context may be deleted.
    pub fn on_done(&mut self, ctx: u32) -> Result<bool, Trap> {
        match &self.exports.on_done {
            None => Ok(true),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_done",
                ctx,
                |s| f.call(s, ctx as i32),
            )
            .map(|r| r != 0),
        }
    }

    /// `proxy_on_delete`.
    pub fn on_delete(&mut self, ctx: u32) -> Result<(), Trap> {
        match &self.exports.on_delete {
            None => Ok(()),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_delete",
                ctx,
                |s| f.call(s, ctx as i32),
            ),
        }
    }

    /// `proxy_on_tick` for a root context.
    pub fn on_tick(&mut self, root: u32) -> Result<(), Trap> {
        match &self.exports.on_tick {
            None => Ok(()),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_tick",
                root,
                |s| f.call(s, root as i32),
            ),
        }
    }

    /// `proxy_on_queue_ready`.
    pub fn on_queue_ready(&mut self, root: u32, queue: u32) -> Result<(), Trap> {
        if !self.store.data().contexts.contains_key(&root) {
            return Ok(());
        }
        match &self.exports.on_queue_ready {
            None => Ok(()),
            Some(f) => Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_queue_ready",
                root,
                |s| f.call(s, (root as i32, queue as i32)),
            ),
        }
    }

    /// Delivers an HTTP callout's answer: `None` for a failed call
    /// (`on_http_call_response(token, 0, 0, 0)` with status BrokenConnection
    /// and message `reset`, as Envoy reports a reset).
    pub fn on_http_call_response(
        &mut self,
        root: u32,
        token: u32,
        response: Option<CalloutView>,
    ) -> Result<(), Trap> {
        let Some(f) = &self.exports.on_http_call_response else {
            return Ok(());
        };
        if !self.store.data().contexts.contains_key(&root) {
            return Ok(());
        }
        let (nh, nb, nt) = match &response {
            Some(r) => (
                r.headers.as_ref().map_or(0, |h| h.len()),
                r.body.as_ref().map_or(0, |b| b.len()),
                r.trailers.as_ref().map_or(0, |t| t.len()),
            ),
            None => (0, 0, 0),
        };
        {
            let s = self.store.data_mut();
            if response.is_none() {
                s.status = (
                    crate::types::Status::BrokenConnection as u32,
                    b"reset".to_vec(),
                );
            }
            s.callout = Some(response.unwrap_or_default());
        }
        let r = Self::invoke(
            &mut self.store,
            &mut self.failed,
            self.budget_ticks,
            "proxy_on_http_call_response",
            root,
            |s| {
                f.call(
                    s,
                    (root as i32, token as i32, nh as i32, nb as i32, nt as i32),
                )
            },
        );
        let s = self.store.data_mut();
        s.callout = None;
        s.status = (0, Vec::new());
        r
    }

    /// Delivers a gRPC unary answer or stream close: initial metadata, the
    /// message (if any), trailing metadata, then `proxy_on_grpc_close` with
    /// `status` and `message`.
    pub fn on_grpc_answer(
        &mut self,
        root: u32,
        token: u32,
        answer: crate::chain::GrpcAnswer,
    ) -> Result<(), Trap> {
        let crate::chain::GrpcAnswer {
            initial_metadata: initial,
            message,
            trailing_metadata: trailing,
            status,
            status_message,
            close,
        } = answer;
        let (unary, stream) = {
            let s = self.store.data();
            (
                s.grpc_calls.contains(&token),
                s.grpc_streams.contains_key(&token),
            )
        };
        if !(unary || stream) || !self.store.data().contexts.contains_key(&root) {
            return Ok(());
        }
        if unary {
            // Envoy's unary handler: success -> proxy_on_grpc_receive only,
            // failure -> proxy_on_grpc_close only; either ends the call.
            self.store.data_mut().grpc_calls.remove(&token);
            if status == 0 {
                let Some(f) = &self.exports.on_grpc_receive else {
                    return Ok(());
                };
                let msg = message.unwrap_or_default();
                let n = msg.len() as i32;
                self.store.data_mut().callout = Some(CalloutView {
                    body: Some(msg),
                    ..Default::default()
                });
                let r = Self::invoke(
                    &mut self.store,
                    &mut self.failed,
                    self.budget_ticks,
                    "proxy_on_grpc_receive",
                    root,
                    |s| f.call(s, (root as i32, token as i32, n)),
                );
                self.store.data_mut().callout = None;
                return r;
            }
            let Some(f) = &self.exports.on_grpc_close else {
                return Ok(());
            };
            self.store.data_mut().status = (status, status_message.into_bytes());
            let r = Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_grpc_close",
                root,
                |s| f.call(s, (root as i32, token as i32, status as i32)),
            );
            self.store.data_mut().status = (0, Vec::new());
            return r;
        }
        if let (Some(md), Some(f)) = (
            initial,
            self.exports.on_grpc_receive_initial_metadata.as_ref(),
        ) {
            let n = md.len() as i32;
            self.store.data_mut().callout = Some(CalloutView {
                headers: Some(md),
                ..Default::default()
            });
            let r = Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_grpc_receive_initial_metadata",
                root,
                |s| f.call(s, (root as i32, token as i32, n)),
            );
            self.store.data_mut().callout = None;
            r?;
        }
        if let (Some(msg), Some(f)) = (message, self.exports.on_grpc_receive.as_ref()) {
            let n = msg.len() as i32;
            self.store.data_mut().callout = Some(CalloutView {
                body: Some(msg),
                ..Default::default()
            });
            let r = Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_grpc_receive",
                root,
                |s| f.call(s, (root as i32, token as i32, n)),
            );
            self.store.data_mut().callout = None;
            r?;
        }
        if let (Some(md), Some(f)) = (
            trailing,
            self.exports.on_grpc_receive_trailing_metadata.as_ref(),
        ) {
            let n = md.len() as i32;
            self.store.data_mut().callout = Some(CalloutView {
                trailers: Some(md),
                ..Default::default()
            });
            let r = Self::invoke(
                &mut self.store,
                &mut self.failed,
                self.budget_ticks,
                "proxy_on_grpc_receive_trailing_metadata",
                root,
                |s| f.call(s, (root as i32, token as i32, n)),
            );
            self.store.data_mut().callout = None;
            r?;
        }
        if close {
            {
                let s = self.store.data_mut();
                s.grpc_calls.remove(&token);
                s.grpc_streams.remove(&token);
            }
            if let Some(f) = &self.exports.on_grpc_close {
                self.store.data_mut().status = (status, status_message.into_bytes());
                let r = Self::invoke(
                    &mut self.store,
                    &mut self.failed,
                    self.budget_ticks,
                    "proxy_on_grpc_close",
                    root,
                    |s| f.call(s, (root as i32, token as i32, status as i32)),
                );
                self.store.data_mut().status = (0, Vec::new());
                r?;
            }
        }
        Ok(())
    }
}
