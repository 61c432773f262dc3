//! VM lifecycle: a failed VM and the plugins' failure policies
//! (`fail_closed`, `fail_open`, `fail_reload`: Envoy's `failStream` and VM
//! reload), and plugin shutdown.

use super::*;

impl Worker {
    pub(super) fn vm_failed(&mut self, vm: usize) {
        let reload = self.vms[vm]
            .plugins
            .iter()
            .any(|p| self.plugins[*p].config.failure_policy == FailurePolicy::FailReload);
        if reload {
            self.vms[vm].reload_pending = true;
        }
        self.timers.retain(|(v, _), _| *v != vm);
    }

    pub(super) fn reload_failed_vms(&mut self) {
        for vm in 0..self.vms.len() {
            if !self.vms[vm].reload_pending {
                continue;
            }
            self.vms[vm].reload_pending = false;
            let new_vm = Vm::new(
                &self.runtime,
                &self.vms[vm].module,
                self.host.clone(),
                &self.vms[vm].settings,
            );
            let mut new_vm = match new_vm {
                Ok(v) => v,
                Err(e) => {
                    self.host.log(
                        LogLevel::Critical,
                        "",
                        &format!("Failed to reload Wasm VM: {e}"),
                    );
                    continue;
                }
            };
            let plugins = self.vms[vm].plugins.clone();
            let mut ok = true;
            for p in &plugins {
                match new_vm.start_plugin(self.plugins[*p].info.clone()) {
                    Ok(root) => self.plugins[*p].root_ctx = root,
                    Err(e) => {
                        self.host.log(
                            LogLevel::Critical,
                            &self.plugins[*p].info.name,
                            &format!("reload: {e}"),
                        );
                        ok = false;
                    }
                }
            }
            if !ok {
                continue;
            }
            self.host.log(
                LogLevel::Warn,
                "",
                "Wasm VM reloaded after failure (fail_reload)",
            );
            let slot = &mut self.vms[vm];
            slot.vm = new_vm;
            slot.generation += 1;
            let (actions, _) = self.take_actions(vm);
            self.apply(vm, actions);
        }
    }

    /// Plugin shutdown, as Envoy drains a VM: `proxy_on_done` on each root
    /// context; those that return true get `proxy_on_delete` now, the others
    /// when they call `proxy_done`.
    pub fn shutdown(&mut self) {
        for p in 0..self.plugins.len() {
            let (vm, root) = (self.plugins[p].vm, self.plugins[p].root_ctx);
            if self.vms[vm].vm.failed.is_some() {
                continue;
            }
            let r = self.vms[vm].vm.shutdown_root(root);
            if let Ok(true) = r {
                let _ = self.vms[vm].vm.on_delete(root);
            }
            self.after_root_call(vm, r.map(|_| ()));
        }
        self.timers.clear();
    }

    /// Envoy's `failStream`: 503 (fail closed/reload) or pass (fail open).
    pub(super) fn fail_stream(&mut self, sid: u64, i: usize, policy: FailurePolicy) -> Outcome {
        if policy == FailurePolicy::FailOpen {
            return Outcome::Continue;
        }
        if let Some(s) = self.streams.get_mut(&sid) {
            s.failed[i] = true;
            if s.local_reply_by.is_some() {
                // Already answering (e.g. with the failure reply of another
                // plugin on the same VM): let that reply through.
                return Outcome::Continue;
            }
        }
        self.local_reply(
            sid,
            i,
            LocalReply {
                status: 503,
                body: Vec::new(),
                headers: Vec::new(),
                grpc_status: Some(14),
                details: "wasm_fail_stream".into(),
            },
        );
        Outcome::Gone
    }

    pub(super) fn after_stream_call(&mut self, vm: usize) {
        if self.vms[vm].vm.has_outputs() {
            let out = self.vms[vm].vm.take_outputs();
            let _ = self.absorb(vm, out);
        }
        if self.vms[vm].vm.failed.is_some() {
            self.vm_failed(vm);
        }
    }
}
