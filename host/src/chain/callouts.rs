//! Timers, callouts and shared queues, and the "after VM call" actions
//! (continue, close, local reply) a callback leaves for the host, as
//! Envoy's dispatcher and `DeferAfterCallActions` handle them.

use super::*;

impl Worker {
    pub(super) fn absorb(&mut self, vm: usize, out: Outputs) -> Vec<Action> {
        let generation = self.vms[vm].generation;
        let now = if out.ticks.is_empty() {
            0
        } else {
            self.host.clock.now_ns()
        };
        for (root, period) in out.ticks {
            if period == 0 {
                self.timers.remove(&(vm, root));
            } else {
                self.timers
                    .insert((vm, root), (period, now + i64::from(period) * 1_000_000));
            }
        }
        for call in out.calls {
            let plugin = self.vms[vm]
                .plugins
                .iter()
                .map(|p| &self.plugins[*p])
                .find(|p| p.root_ctx == call.root_ctx)
                .map(|p| p.info.name.clone())
                .unwrap_or_default();
            self.outbox.push(Callout {
                id: CalloutId {
                    vm,
                    generation,
                    token: call.token,
                },
                call,
                plugin,
            });
        }
        for root in out.done {
            let _ = self.vms[vm].vm.on_delete(root);
        }
        out.actions
    }

    /// What the VM's last callbacks asked for: timers and callouts are taken
    /// over, the stream actions returned. Nothing to do (the common case)
    /// costs one check.
    pub(super) fn take_actions(&mut self, vm: usize) -> (Vec<Action>, bool) {
        if !self.vms[vm].vm.has_outputs() {
            return (Vec::new(), false);
        }
        let out = self.vms[vm].vm.take_outputs();
        let stop = out.stop_iteration;
        (self.absorb(vm, out), stop)
    }

    /// Callouts started since the last call (the driver performs them).
    pub fn take_callouts(&mut self) -> Vec<Callout> {
        std::mem::take(&mut self.outbox)
    }

    pub(super) fn apply(&mut self, vm: usize, actions: Vec<Action>) {
        for a in actions {
            let ctx = match &a {
                Action::Continue { ctx, .. }
                | Action::Close { ctx, .. }
                | Action::LocalReply { ctx, .. } => *ctx,
            };
            let Some((sid, pos)) = self.vms[vm].vm.stream_position(ctx) else {
                continue;
            };
            if !self.streams.contains_key(&sid) {
                continue;
            }
            match a {
                Action::Continue {
                    stream: StreamType::Request,
                    ..
                } => self.resume(sid, Dir::Req, pos),
                Action::Continue {
                    stream: StreamType::Response,
                    ..
                } => {
                    let k = self.plugins.len() - 1 - pos;
                    self.resume(sid, Dir::Resp, k)
                }
                Action::Continue { .. } => {}
                Action::Close { .. } => {
                    if let Some(s) = self.streams.get(&sid) {
                        let mut d = s.data.borrow_mut();
                        if d.code_details.is_none() {
                            d.code_details = Some("wasm_close_stream".into());
                        }
                        d.response_flags |= response_flags::LOCAL_RESET;
                    }
                    self.reset(sid, "wasm_close_stream");
                }
                Action::LocalReply { reply, .. } => self.local_reply(sid, pos, reply),
            }
        }
    }

    /// When the next tick is due (ns), if any timer is set.
    pub fn next_timer_ns(&self) -> Option<i64> {
        self.timers.values().map(|(_, next)| *next).min()
    }

    /// Fires every tick due at or before the clock's current time.
    pub fn fire_timers(&mut self) {
        let now = self.host.clock.now_ns();
        loop {
            let due: Option<(usize, u32)> = self
                .timers
                .iter()
                .filter(|(_, (_, next))| *next <= now)
                .min_by_key(|(_, (_, next))| *next)
                .map(|(k, _)| *k);
            let Some((vm, root)) = due else { break };
            if let Some((period, next)) = self.timers.get_mut(&(vm, root)) {
                *next += i64::from(*period) * 1_000_000;
                if *next <= now {
                    // Catch up without firing a burst: one tick per call.
                    *next = now + i64::from(*period) * 1_000_000;
                }
            }
            if self.vms[vm].vm.failed.is_some() {
                self.timers.remove(&(vm, root));
                continue;
            }
            let r = self.vms[vm].vm.on_tick(root);
            self.after_root_call(vm, r);
        }
    }

    pub(super) fn after_root_call(&mut self, vm: usize, r: Result<(), Trap>) {
        let (actions, _) = self.take_actions(vm);
        self.apply(vm, actions);
        if r.is_err() {
            self.vm_failed(vm);
        }
        self.poll_queues();
    }

    /// Delivers a gRPC answer to the root context that made the call.
    pub fn deliver_grpc(&mut self, callout: &Callout, a: GrpcAnswer) {
        let (id, root_ctx) = (callout.id, callout.call.root_ctx);
        let Some(slot) = self.vms.get_mut(id.vm) else {
            return;
        };
        if slot.generation != id.generation || slot.vm.failed.is_some() {
            return;
        }
        let r = slot.vm.on_grpc_answer(root_ctx, id.token, a);
        self.after_root_call(id.vm, r);
    }

    /// Delivers an HTTP callout's answer to the root context that made it
    /// (`None`: the call failed — Envoy's reset, `on_http_call_response(token, 0, 0, 0)`).
    pub fn deliver_http(&mut self, callout: &Callout, response: Option<CalloutResponse>) {
        let id = callout.id;
        let Some(slot) = self.vms.get_mut(id.vm) else {
            return;
        };
        if slot.generation != id.generation || slot.vm.failed.is_some() {
            return;
        }
        let view = response.map(|r| CalloutView {
            headers: Some(r.headers),
            body: Some(r.body),
            trailers: Some(r.trailers),
        });
        let r = slot
            .vm
            .on_http_call_response(callout.call.root_ctx, id.token, view);
        self.after_root_call(id.vm, r);
    }

    /// Runs `proxy_on_queue_ready` for items enqueued for this worker's VMs.
    /// Delivers pending `proxy_on_queue_ready` notifications.
    pub fn poll_queues(&mut self) {
        // Notifications raised while delivering are delivered in the same
        // poll (as Envoy's dispatcher runs posted callbacks in one loop
        // turn), but at most this many callbacks per poll: a module that
        // enqueues from `proxy_on_queue_ready` cannot hold the worker.
        let mut budget = MAX_QUEUE_CALLBACKS_PER_POLL;
        for _ in 0..64 {
            if !self.host.has_notifications() {
                return;
            }
            let ids: Vec<u64> = self.vms.iter().map(|v| v.vm.instance_id()).collect();
            let mut notes = self.host.take_notifications(&ids);
            if notes.is_empty() {
                return;
            }
            if notes.len() > budget {
                // The rest wait for the next poll.
                let rest = notes.split_off(budget);
                self.host.requeue_notifications(rest);
            }
            budget -= notes.len();
            for n in notes {
                if let Some(vm) = self
                    .vms
                    .iter()
                    .position(|v| v.vm.instance_id() == n.vm_instance)
                {
                    if self.vms[vm].vm.failed.is_some() {
                        continue;
                    }
                    let r = self.vms[vm].vm.on_queue_ready(n.context_id, n.queue_id);
                    let (actions, _) = self.take_actions(vm);
                    self.apply(vm, actions);
                    if r.is_err() {
                        self.vm_failed(vm);
                    }
                }
            }
            if budget == 0 {
                return;
            }
        }
    }
}
