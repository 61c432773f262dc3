//! A stream's life as Envoy's connection manager sees it: the driver's
//! entry points (downstream and upstream codec events), the plugins'
//! stream contexts, resets, and the end of a stream (`proxy_on_log`,
//! `proxy_on_done`, `proxy_on_delete`).

use super::router::invalid_request;
use super::*;

impl Worker {
    /// Starts a stream with the client's request headers. Returns its id;
    /// read what happened with [`Worker::take_events`].
    pub fn start_stream(
        &mut self,
        mut headers: HeaderMap,
        end_stream: bool,
        properties: crate::properties::PropertyMap,
    ) -> u64 {
        self.reload_failed_vms();
        let sid = self.next_stream;
        self.next_stream += 1;
        if headers.get(b"x-request-id").is_none() {
            headers.add(b"x-request-id", request_id(sid).as_bytes());
        }
        let n = self.plugins.len();
        let grpc_request = headers
            .get(b"content-type")
            .is_some_and(|v| v.starts_with(b"application/grpc"));
        let data = Rc::new(RefCell::new(StreamData {
            id: sid,
            req_headers: headers,
            slots: vec![Slot::default(); n],
            properties,
            start_ns: self.host.clock.now_ns(),
            ..Default::default()
        }));
        self.streams.insert(
            sid,
            StreamState {
                data,
                ctx: vec![None; n],
                req: vec![FilterDir::default(); n],
                resp: vec![FilterDir::default(); n],
                failed: vec![false; n],
                request_done: end_stream,
                response_started: false,
                downstream_headers_sent: false,
                downstream_done: false,
                finished: false,
                events: Vec::new(),
                local_reply_by: None,
                grpc_request,
                headers_eos: [end_stream, false],
                route: None,
            },
        );
        let invalid = invalid_request(&self.streams[&sid].data.borrow().req_headers);
        if let Some((code, details)) = invalid {
            // The connection manager refuses it before any filter runs.
            self.local_reply(
                sid,
                n,
                LocalReply {
                    status: code,
                    body: Vec::new(),
                    headers: Vec::new(),
                    grpc_status: None,
                    details: details.into(),
                },
            );
            return sid;
        }
        let _ = self.route_for(sid);
        self.headers_at(sid, Dir::Req, 0, end_stream);
        sid
    }

    /// A request body chunk from the client.
    pub fn downstream_data(&mut self, sid: u64, data: Vec<u8>, end_stream: bool) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.local_reply_by.is_some() || s.finished {
            return;
        }
        s.data.borrow_mut().req_body_bytes += data.len() as u64;
        if end_stream {
            s.request_done = true;
        }
        self.data_at(sid, Dir::Req, 0, data, end_stream);
    }

    /// Request trailers from the client (end of the request).
    pub fn downstream_trailers(&mut self, sid: u64, trailers: HeaderMap) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.local_reply_by.is_some() || s.finished {
            return;
        }
        s.request_done = true;
        s.data.borrow_mut().req_trailers = Some(trailers);
        self.trailers_at(sid, Dir::Req, 0);
    }

    /// The client went away (stream reset by the downstream).
    pub fn downstream_reset(&mut self, sid: u64) {
        if let Some(s) = self.streams.get(&sid) {
            s.data.borrow_mut().response_flags |= response_flags::DOWNSTREAM_CONNECTION_TERMINATION;
        }
        self.reset(sid, "downstream_remote_disconnect");
    }

    /// Response headers from the upstream.
    pub fn upstream_headers(&mut self, sid: u64, headers: HeaderMap, end_stream: bool) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished || s.local_reply_by.is_some() || s.response_started {
            return;
        }
        s.response_started = true;
        s.headers_eos[1] = end_stream;
        {
            let mut d = s.data.borrow_mut();
            d.resp_headers = Some(headers);
            if d.code_details.is_none() {
                d.code_details = Some("via_upstream".into());
            }
        }
        self.headers_at(sid, Dir::Resp, 0, end_stream);
    }

    /// A response body chunk from the upstream.
    pub fn upstream_data(&mut self, sid: u64, data: Vec<u8>, end_stream: bool) {
        let Some(s) = self.streams.get(&sid) else {
            return;
        };
        if s.finished || s.local_reply_by.is_some() {
            return;
        }
        self.data_at(sid, Dir::Resp, 0, data, end_stream);
    }

    /// Response trailers from the upstream.
    pub fn upstream_trailers(&mut self, sid: u64, trailers: HeaderMap) {
        let Some(s) = self.streams.get(&sid) else {
            return;
        };
        if s.finished || s.local_reply_by.is_some() {
            return;
        }
        s.data.borrow_mut().resp_trailers = Some(trailers);
        self.trailers_at(sid, Dir::Resp, 0);
    }

    /// The upstream failed: Envoy answers the client itself (`503 no healthy
    /// upstream`, `504 upstream request timeout`, ...) through the filters.
    pub fn upstream_failure(
        &mut self,
        sid: u64,
        status: u32,
        body: &str,
        details: &str,
        flags: u64,
    ) {
        let n = self.plugins.len();
        if let Some(s) = self.streams.get(&sid) {
            s.data.borrow_mut().response_flags |= flags;
        }
        self.local_reply(
            sid,
            n,
            LocalReply {
                status,
                body: body.as_bytes().to_vec(),
                headers: Vec::new(),
                grpc_status: None,
                details: details.to_string(),
            },
        );
    }

    pub(super) fn reset(&mut self, sid: u64, reason: &str) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished {
            return;
        }
        self.push(sid, StreamEvent::Reset(reason.to_string()));
        self.finish(sid);
    }

    pub(super) fn downstream_complete(&mut self, sid: u64) {
        if let Some(s) = self.streams.get_mut(&sid) {
            s.downstream_done = true;
        }
        self.finish(sid);
    }

    /// The end of a stream: `proxy_on_log` for every plugin (creating the
    /// context if the plugin never saw the request), then `proxy_on_done`
    /// and `proxy_on_delete`.
    pub(super) fn finish(&mut self, sid: u64) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished {
            return;
        }
        s.finished = true;
        let data = s.data.clone();
        {
            let mut d = data.borrow_mut();
            d.end_ns = Some(self.host.clock.now_ns());
            d.log_phase = true;
        }
        let n = self.plugins.len();
        for i in 0..n {
            let Some((vm, ctx)) = self.context_for(sid, i) else {
                continue;
            };
            if self.create_context(sid, i, vm, ctx).is_err() {
                self.after_stream_call(vm);
                continue;
            }
            let _ = self.vms[vm].vm.on_log(ctx);
            self.after_stream_call(vm);
        }
        data.borrow_mut().log_phase = false;
        for i in 0..n {
            let Some(c) = self.existing_context(sid, i) else {
                continue;
            };
            let (vm, ctx) = (self.plugins[i].vm, c.ctx);
            if self.vms[vm].vm.failed.is_none() && c.created {
                let _ = self.vms[vm].vm.on_done(ctx);
                self.after_stream_call(vm);
                if self.vms[vm].vm.failed.is_none() {
                    let _ = self.vms[vm].vm.on_delete(ctx);
                    self.after_stream_call(vm);
                }
            }
            self.vms[vm].vm.drop_context(ctx);
        }
        self.push(sid, StreamEvent::Complete);
    }

    /// The context of plugin `i` for the stream, creating the registration
    /// if needed (but not calling `proxy_on_context_create`). `None` when the
    /// plugin's VM is failed.
    pub(super) fn context_for(&mut self, sid: u64, i: usize) -> Option<(usize, u32)> {
        let vm = self.plugins[i].vm;
        if self.vms[vm].vm.failed.is_some() {
            return None;
        }
        let generation = self.vms[vm].generation;
        let s = self.streams.get_mut(&sid)?;
        match s.ctx[i] {
            Some(c) if c.generation == generation => Some((vm, c.ctx)),
            Some(_) => None,
            None => {
                let root = self.plugins[i].root_ctx;
                let ctx = self.vms[vm].vm.new_stream_context(root, s.data.clone(), i);
                s.ctx[i] = Some(StreamCtx {
                    generation,
                    ctx,
                    created: false,
                });
                Some((vm, ctx))
            }
        }
    }

    /// `proxy_on_context_create` for plugin `i`'s context of the stream,
    /// once.
    pub(super) fn create_context(
        &mut self,
        sid: u64,
        i: usize,
        vm: usize,
        ctx: u32,
    ) -> Result<(), Trap> {
        let Some(c) = self
            .streams
            .get_mut(&sid)
            .and_then(|s| s.ctx[i].as_mut())
            .filter(|c| c.ctx == ctx && !c.created)
        else {
            return Ok(());
        };
        c.created = true;
        let root = self.plugins[i].root_ctx;
        self.vms[vm].vm.on_context_create(ctx, root)
    }

    pub(super) fn existing_context(&self, sid: u64, i: usize) -> Option<StreamCtx> {
        let vm = self.plugins[i].vm;
        let c = self.streams.get(&sid)?.ctx[i]?;
        (c.generation == self.vms[vm].generation).then_some(c)
    }
}

pub(super) fn request_id(sid: u64) -> String {
    let a = crate::host_hash(sid);
    let b = crate::host_hash(sid ^ 0x5555_5555_5555_5555);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (b >> 52) as u16 & 0xfff,
        b & 0xffff_ffff_ffff
    )
}
