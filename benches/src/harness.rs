//! Requests through the real `.wasm` files in the harness (wasmtime), as
//! `wasmesh bench` does, but on thread CPU time and cycling through a
//! case's requests.

use crate::cases::{Case, Plugin};
use std::path::Path;
use wasmesh::properties::PropertyMap;
use wasmesh::scenario::model::RequestSpec;
use wasmesh::scenario::typed_properties;
use wasmesh::scenario::{RunOptions, Scenario, Session};

/// A session running one case's chain.
pub struct WasmChain {
    pub session: Session,
    steps: Vec<(RequestSpec, PropertyMap)>,
    next: usize,
}

impl WasmChain {
    /// Starts `case` with `chain` as its plugins (the case's own, none for
    /// the empty chain, or pass-through plugins).
    pub fn new(case: &Case, chain: &[Plugin]) -> Result<WasmChain, String> {
        let text = case.scenario_text(chain);
        let base = Path::new(env!("CARGO_MANIFEST_DIR"));
        let s = Scenario::from_yaml_str(&text, base).map_err(|e| format!("{}: {e}", case.id))?;
        let session = Session::new(&s.spec, &s.base_dir, &RunOptions::default())
            .map_err(|e| format!("{}: {e}", case.id))?;
        let global = typed_properties(&s.spec.properties)?;
        let mut steps = Vec::new();
        for step in &s.spec.requests {
            let mut props = global.clone();
            props.extend(typed_properties(&step.properties)?);
            let req = step
                .request
                .clone()
                .ok_or_else(|| format!("{}: step without a request", case.id))?;
            steps.push((req, props));
        }
        Ok(WasmChain {
            session,
            steps,
            next: 0,
        })
    }

    /// Sends the next request; returns its status.
    pub fn request(&mut self) -> Result<Option<u32>, String> {
        let (req, props) = &self.steps[self.next];
        self.next = (self.next + 1) % self.steps.len();
        let obs = self.session.request(None, req, props.clone(), None)?;
        Ok(obs.status())
    }

    /// Sends `n` requests.
    #[inline(never)]
    pub fn run(&mut self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            self.request()?;
        }
        Ok(())
    }

    /// Sends every request once and checks its status.
    pub fn check(&mut self, status: u32) -> Result<(), String> {
        for i in 0..self.steps.len() {
            let got = self.request()?;
            if got != Some(status) {
                let logs: Vec<String> = self
                    .session
                    .logs_since(0)
                    .iter()
                    .rev()
                    .take(5)
                    .map(|l| format!("{}: {}", l.plugin, l.message))
                    .collect();
                return Err(format!(
                    "request {i} got status {got:?}, expected {status}; last log lines: {logs:?}"
                ));
            }
        }
        Ok(())
    }

    /// Linear memory of each VM, bytes.
    pub fn memory(&self) -> Vec<(String, usize)> {
        self.session
            .workers()
            .iter()
            .flat_map(|w| w.memory_sizes())
            .collect()
    }
}
