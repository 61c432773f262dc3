//! Envoy's filter manager: request callbacks in chain order, response
//! callbacks in reverse, stop/continue iteration, buffering, trailers
//! added by a filter, and the callback itself ([`Worker::call`]).

use super::*;

impl Worker {
    pub(super) fn filter_index(&self, dir: Dir, k: usize) -> usize {
        match dir {
            Dir::Req => k,
            Dir::Resp => self.plugins.len() - 1 - k,
        }
    }

    pub(super) fn dirs(&mut self, sid: u64, dir: Dir) -> Option<&mut Vec<FilterDir>> {
        let s = self.streams.get_mut(&sid)?;
        Some(match dir {
            Dir::Req => &mut s.req,
            Dir::Resp => &mut s.resp,
        })
    }

    pub(super) fn alive(&self, sid: u64, dir: Dir) -> bool {
        match self.streams.get(&sid) {
            None => false,
            Some(s) => !s.finished && (dir == Dir::Resp || s.local_reply_by.is_none()),
        }
    }

    pub(super) fn headers_at(&mut self, sid: u64, dir: Dir, k: usize, eos: bool) {
        if !self.alive(sid, dir) {
            return;
        }
        if k == self.plugins.len() {
            self.sink_headers(sid, dir, eos);
            return;
        }
        let i = self.filter_index(dir, k);
        let r = self.call(sid, dir, Phase::Headers, i, eos);
        match r {
            Outcome::Continue => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].headers_done = true;
                }
                self.close_window(
                    sid,
                    i,
                    if dir == Dir::Req {
                        window::REQ_HEADERS
                    } else {
                        window::RESP_HEADERS
                    },
                );
                self.headers_at(sid, dir, k + 1, eos);
                self.flush_pending(sid, dir, k);
            }
            Outcome::Stop => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].stop_all = true;
                }
            }
            Outcome::Gone => {}
        }
    }

    pub(super) fn flush_pending(&mut self, sid: u64, dir: Dir, k: usize) {
        let Some(d) = self.dirs(sid, dir) else { return };
        let pending = d[k].pending.take();
        let eos = d[k].pending_eos;
        let trailers = d[k].pending_trailers.take();
        if let Some(data) = pending {
            self.data_at(sid, dir, k, data, eos);
        }
        if trailers.is_some() {
            self.trailers_at(sid, dir, k);
        }
    }

    pub(super) fn data_at(&mut self, sid: u64, dir: Dir, k: usize, data: Vec<u8>, eos: bool) {
        if !self.alive(sid, dir) {
            return;
        }
        if k == self.plugins.len() {
            self.sink_data(sid, dir, data, eos);
            return;
        }
        let i = self.filter_index(dir, k);
        let limit = self.buffer_limit;
        {
            let Some(d) = self.dirs(sid, dir) else { return };
            let f = &mut d[k];
            if !f.headers_done || f.stopped_trailers {
                // Stopped in headers: hold the body until the filter continues.
                let held = f.pending.get_or_insert_with(Vec::new);
                held.extend_from_slice(&data);
                let over = held.len() > limit;
                f.pending_eos |= eos;
                if over {
                    self.buffer_too_large(sid, dir);
                }
                return;
            }
        }
        let cb = match dir {
            Dir::Req => StreamCallback::RequestBody,
            Dir::Resp => StreamCallback::ResponseBody,
        };
        if self.passes_untouched(sid, i, cb) {
            // No body callback: the data goes on as it is, without a copy
            // into the filter's buffer.
            self.data_at(sid, dir, k + 1, data, eos);
            return;
        }
        let buffering = self.dirs(sid, dir).map(|d| d[k].buffering).unwrap_or(false);
        let no_trailers = {
            let d = self.streams[&sid].data.borrow();
            match dir {
                Dir::Req => d.req_trailers.is_none(),
                Dir::Resp => d.resp_trailers.is_none(),
            }
        };
        if let Some(d) = self.dirs(sid, dir) {
            d[k].trailers_addable = eos && no_trailers;
        }
        {
            let s = &self.streams[&sid];
            let mut st = s.data.borrow_mut();
            let slot = &mut st.slots[i];
            let buf = if dir == Dir::Req {
                &mut slot.req_buf
            } else {
                &mut slot.resp_buf
            };
            if !buffering {
                buf.clear();
            }
            buf.extend_from_slice(&data);
            if dir == Dir::Req {
                slot.req_eos = eos;
            } else {
                slot.resp_eos = eos;
            }
        }
        match self.call(sid, dir, Phase::Body, i, eos) {
            Outcome::Continue => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].buffering = false;
                }
                let body = self.take_body(sid, dir, i);
                self.forward_body(sid, dir, k, body, eos);
            }
            Outcome::Stop => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].buffering = true;
                }
                let held = self.streams.get(&sid).map_or(0, |s| {
                    let st = s.data.borrow();
                    match dir {
                        Dir::Req => st.slots[i].req_buf.len(),
                        Dir::Resp => st.slots[i].resp_buf.len(),
                    }
                });
                if held > self.buffer_limit {
                    self.buffer_too_large(sid, dir);
                }
            }
            Outcome::Gone => {}
        }
    }

    /// The buffer limit of a stream's filters (Envoy's
    /// `per_connection_buffer_limit_bytes`; unlimited by default).
    pub fn set_buffer_limit(&mut self, bytes: usize) {
        self.buffer_limit = bytes;
    }

    /// A filter holds more body than the buffer limit: Envoy's filter
    /// manager answers `413 Payload Too Large` (`request_payload_too_large`)
    /// for a request body and `500 Internal Server Error`
    /// (`response_payload_too_large`) for a response body, or resets the
    /// stream when the response headers already went out.
    fn buffer_too_large(&mut self, sid: u64, dir: Dir) {
        let (status, body, details) = match dir {
            Dir::Req => (413, "Payload Too Large", "request_payload_too_large"),
            Dir::Resp => (500, "Internal Server Error", "response_payload_too_large"),
        };
        if let Some(s) = self.streams.get(&sid) {
            if s.downstream_headers_sent {
                // Envoy records the details, then can only reset.
                s.data.borrow_mut().code_details = Some(details.into());
                self.reset(sid, details);
                return;
            }
        }
        let n = self.plugins.len();
        self.local_reply(
            sid,
            n,
            LocalReply {
                status,
                body: body.as_bytes().to_vec(),
                headers: Vec::new(),
                grpc_status: None,
                details: details.into(),
            },
        );
    }

    /// Passes a body on from position `k`; if the filter added trailers in
    /// its last body callback, the data goes on without end of stream and
    /// the new trailers follow (Envoy's `addDecodedTrailers` /
    /// `addEncodedTrailers`).
    pub(super) fn forward_body(&mut self, sid: u64, dir: Dir, k: usize, body: Vec<u8>, eos: bool) {
        let added = eos
            && self.dirs(sid, dir).is_some_and(|d| d[k].trailers_addable)
            && self.streams.get(&sid).is_some_and(|s| {
                let d = s.data.borrow();
                match dir {
                    Dir::Req => d.req_trailers.is_some(),
                    Dir::Resp => d.resp_trailers.is_some(),
                }
            });
        if added {
            self.data_at(sid, dir, k + 1, body, false);
            self.trailers_at(sid, dir, k + 1);
        } else {
            self.data_at(sid, dir, k + 1, body, eos);
        }
    }

    pub(super) fn take_body(&mut self, sid: u64, dir: Dir, i: usize) -> Vec<u8> {
        let Some(s) = self.streams.get(&sid) else {
            return Vec::new();
        };
        let mut st = s.data.borrow_mut();
        let slot = &mut st.slots[i];
        let w = if dir == Dir::Req {
            window::REQ_BODY
        } else {
            window::RESP_BODY
        };
        slot.open &= !w;
        std::mem::take(if dir == Dir::Req {
            &mut slot.req_buf
        } else {
            &mut slot.resp_buf
        })
    }

    pub(super) fn trailers_at(&mut self, sid: u64, dir: Dir, k: usize) {
        if !self.alive(sid, dir) {
            return;
        }
        if k == self.plugins.len() {
            self.sink_trailers(sid, dir);
            return;
        }
        let i = self.filter_index(dir, k);
        {
            let Some(d) = self.dirs(sid, dir) else { return };
            if !d[k].headers_done {
                d[k].pending_trailers = Some(HeaderMap::new());
                return;
            }
        }
        match self.call(sid, dir, Phase::Trailers, i, true) {
            Outcome::Continue => self.pass_trailers(sid, dir, k, i),
            Outcome::Stop => {
                if let Some(d) = self.dirs(sid, dir) {
                    d[k].stopped_trailers = true;
                }
            }
            Outcome::Gone => {}
        }
    }

    pub(super) fn pass_trailers(&mut self, sid: u64, dir: Dir, k: usize, i: usize) {
        let buffered = self
            .dirs(sid, dir)
            .map(|d| std::mem::take(&mut d[k].buffering))
            .unwrap_or(false);
        if buffered {
            let body = self.take_body(sid, dir, i);
            self.data_at(sid, dir, k + 1, body, false);
        }
        self.close_window(
            sid,
            i,
            if dir == Dir::Req {
                window::REQ_TRAILERS
            } else {
                window::RESP_TRAILERS
            },
        );
        self.trailers_at(sid, dir, k + 1);
    }

    /// `proxy_continue_stream` from the filter at traversal position `k`.
    pub(super) fn resume(&mut self, sid: u64, dir: Dir, k: usize) {
        if !self.alive(sid, dir) {
            return;
        }
        let i = self.filter_index(dir, k);
        let Some(f) = self.dirs(sid, dir).map(|d| d[k].clone()) else {
            return;
        };
        // Envoy forgets the context's maps and buffers on continue.
        let all = if dir == Dir::Req {
            window::REQ_HEADERS | window::REQ_BODY | window::REQ_TRAILERS
        } else {
            window::RESP_HEADERS | window::RESP_BODY | window::RESP_TRAILERS
        };
        if f.stop_all {
            if let Some(d) = self.dirs(sid, dir) {
                d[k].stop_all = false;
                d[k].headers_done = true;
            }
            self.close_window(sid, i, all);
            let eos = self.headers_eos(sid, dir);
            self.headers_at(sid, dir, k + 1, eos);
            self.flush_pending(sid, dir, k);
        } else if f.stopped_trailers {
            if let Some(d) = self.dirs(sid, dir) {
                d[k].stopped_trailers = false;
            }
            self.pass_trailers(sid, dir, k, i);
            self.close_window(sid, i, all);
        } else if f.buffering {
            if let Some(d) = self.dirs(sid, dir) {
                d[k].buffering = false;
            }
            let eos = {
                let s = &self.streams[&sid];
                let st = s.data.borrow();
                if dir == Dir::Req {
                    st.slots[i].req_eos
                } else {
                    st.slots[i].resp_eos
                }
            };
            let body = self.take_body(sid, dir, i);
            self.close_window(sid, i, all);
            self.forward_body(sid, dir, k, body, eos);
        }
    }

    pub(super) fn headers_eos(&self, sid: u64, dir: Dir) -> bool {
        self.streams
            .get(&sid)
            .is_some_and(|s| s.headers_eos[dir as usize])
    }

    pub(super) fn close_window(&mut self, sid: u64, i: usize, w: u32) {
        if let Some(s) = self.streams.get(&sid) {
            if let Some(slot) = s.data.borrow_mut().slots.get_mut(i) {
                slot.open &= !w;
            }
        }
    }

    pub(super) fn call(
        &mut self,
        sid: u64,
        dir: Dir,
        phase: Phase,
        i: usize,
        eos: bool,
    ) -> Outcome {
        let vm = self.plugins[i].vm;
        let policy = self.plugins[i].config.failure_policy;
        let generation = self.vms[vm].generation;
        let Some(s) = self.streams.get_mut(&sid) else {
            return Outcome::Gone;
        };
        if s.failed[i] {
            return Outcome::Continue;
        }
        let existing = s.ctx[i].filter(|c| c.generation == generation);
        if dir == Dir::Resp && !existing.is_some_and(|c| c.created) {
            // Encoder callbacks only reach contexts that exist (Envoy skips
            // filters that never saw the request, e.g. after a local reply).
            return Outcome::Continue;
        }
        if self.vms[vm].vm.failed.is_some() {
            return self.fail_stream(sid, i, policy);
        }
        let data = s.data.clone();
        let ctx = match (existing, s.ctx[i]) {
            (Some(c), _) => c,
            // A context of an earlier VM generation (the VM was reloaded).
            (None, Some(_)) => return self.fail_stream(sid, i, policy),
            (None, None) => {
                let root = self.plugins[i].root_ctx;
                let ctx = self.vms[vm].vm.new_stream_context(root, data.clone(), i);
                let c = StreamCtx {
                    generation,
                    ctx,
                    created: false,
                };
                s.ctx[i] = Some(c);
                c
            }
        };
        let (ctx, created) = (ctx.ctx, ctx.created);
        if !created {
            s.ctx[i] = Some(StreamCtx {
                generation,
                ctx,
                created: true,
            });
            let root = self.plugins[i].root_ctx;
            if self.vms[vm].vm.on_context_create(ctx, root).is_err() {
                self.after_stream_call(vm);
                return self.fail_stream(sid, i, policy);
            }
        }
        let (w, cb) = match (dir, phase) {
            (Dir::Req, Phase::Headers) => (window::REQ_HEADERS, StreamCallback::RequestHeaders),
            (Dir::Req, Phase::Body) => (window::REQ_BODY, StreamCallback::RequestBody),
            (Dir::Req, Phase::Trailers) => (window::REQ_TRAILERS, StreamCallback::RequestTrailers),
            (Dir::Resp, Phase::Headers) => (window::RESP_HEADERS, StreamCallback::ResponseHeaders),
            (Dir::Resp, Phase::Body) => (window::RESP_BODY, StreamCallback::ResponseBody),
            (Dir::Resp, Phase::Trailers) => {
                (window::RESP_TRAILERS, StreamCallback::ResponseTrailers)
            }
        };
        let v = &mut self.vms[vm].vm;
        if !v.exports(cb) && !v.has_outputs() {
            // The ABI: a missing export means continue. Nothing ran, nothing
            // to apply.
            if self.host.has_notifications() {
                self.poll_queues();
                if !self.alive(sid, dir) {
                    return Outcome::Gone;
                }
            }
            return Outcome::Continue;
        }
        let (nheaders, body_len, ntrailers) = {
            let mut d = data.borrow_mut();
            d.slots[i].open |= w;
            let nh = match dir {
                Dir::Req => d.req_headers.len(),
                Dir::Resp => d.resp_headers.as_ref().map_or(0, |h| h.len()),
            };
            let bl = match dir {
                Dir::Req => d.slots[i].req_buf.len(),
                Dir::Resp => d.slots[i].resp_buf.len(),
            };
            let nt = match dir {
                Dir::Req => d.req_trailers.as_ref().map_or(0, |t| t.len()),
                Dir::Resp => d.resp_trailers.as_ref().map_or(0, |t| t.len()),
            };
            (nh, bl, nt)
        };
        drop(data);
        let r = match (dir, phase) {
            (Dir::Req, Phase::Headers) => v.on_request_headers(ctx, nheaders, eos),
            (Dir::Req, Phase::Body) => v.on_request_body(ctx, body_len, eos),
            (Dir::Req, Phase::Trailers) => v.on_request_trailers(ctx, ntrailers),
            (Dir::Resp, Phase::Headers) => v.on_response_headers(ctx, nheaders, eos),
            (Dir::Resp, Phase::Body) => v.on_response_body(ctx, body_len, eos),
            (Dir::Resp, Phase::Trailers) => v.on_response_trailers(ctx, ntrailers),
        };
        let (actions, stop) = self.take_actions(vm);
        let outcome = match r {
            Err(_) => {
                self.vm_failed(vm);
                // Actions queued before the trap are not applied.
                return self.fail_stream(sid, i, policy);
            }
            Ok(code) if code == 0 && !stop => Outcome::Continue,
            Ok(_) => Outcome::Stop,
        };
        let had_actions = !actions.is_empty();
        if outcome == Outcome::Stop || had_actions {
            // Apply "after VM call" actions once the callback's own result
            // is recorded: mark the stop first so a continue can undo it.
            let k = match dir {
                Dir::Req => i,
                Dir::Resp => self.plugins.len() - 1 - i,
            };
            if outcome == Outcome::Stop {
                if let Some(d) = self.dirs(sid, dir) {
                    match phase {
                        Phase::Headers => d[k].stop_all = true,
                        Phase::Body => d[k].buffering = true,
                        Phase::Trailers => d[k].stopped_trailers = true,
                    }
                }
            }
            self.apply(vm, actions);
            if !self.alive(sid, dir) {
                return Outcome::Gone;
            }
            if outcome == Outcome::Stop {
                // Still stopped unless an action resumed it.
                let still = self.dirs(sid, dir).map(|d| match phase {
                    Phase::Headers => d[k].stop_all,
                    Phase::Body => d[k].buffering,
                    Phase::Trailers => d[k].stopped_trailers,
                });
                return if still == Some(true) {
                    Outcome::Stop
                } else {
                    Outcome::Gone
                };
            }
        }
        if self.host.has_notifications() {
            self.poll_queues();
        }
        if !self.alive(sid, dir) {
            return Outcome::Gone;
        }
        outcome
    }

    /// Whether plugin `i` would let this stream's data through untouched
    /// because its module does not export `cb` (its context exists, nothing
    /// is pending): the caller may skip [`Worker::call`] and its buffering.
    pub(super) fn passes_untouched(&self, sid: u64, i: usize, cb: StreamCallback) -> bool {
        let slot = &self.vms[self.plugins[i].vm];
        if slot.vm.exports(cb)
            || slot.vm.failed.is_some()
            || slot.vm.has_outputs()
            || self.host.has_notifications()
        {
            return false;
        }
        self.streams.get(&sid).is_some_and(|s| {
            !s.failed[i] && s.ctx[i].is_some_and(|c| c.created && c.generation == slot.generation)
        })
    }

    pub(super) fn push(&mut self, sid: u64, e: StreamEvent) {
        if let Some(s) = self.streams.get_mut(&sid) {
            if s.events.is_empty() {
                self.dirty.push(sid);
            }
            s.events.push(e);
        }
    }
}
