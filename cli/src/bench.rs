//! `wasmesh bench`: the per-request cost of a chain, measured by running a
//! scenario's requests over and over in one session (virtual clock, real
//! wall time). Each step is measured separately: several runs, the median
//! reported. With a baseline, the same requests run through an empty chain
//! in the same process, so the harness's own cost can be subtracted.

use crate::scenario::{RunOptions, Scenario, Session};
use std::fmt;
use std::path::Path;
use std::time::Instant;

/// Figures for one step.
#[derive(Debug, Clone)]
pub struct StepFigure {
    pub name: String,
    /// Median ns/request over the runs.
    pub median_ns: f64,
    /// Every run's ns/request.
    pub runs_ns: Vec<f64>,
    /// Median ns/request through an empty chain (if measured).
    pub baseline_ns: Option<f64>,
}

/// A benchmark report.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub source: String,
    pub chain: Vec<String>,
    pub iterations: usize,
    pub runs: usize,
    pub steps: Vec<StepFigure>,
    /// Linear memory per VM after the runs.
    pub memory: Vec<(String, usize)>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

fn measure(
    session: &mut Session,
    spec: &crate::scenario::ScenarioSpec,
    step_index: usize,
    iterations: usize,
    runs: usize,
) -> Result<Vec<f64>, String> {
    let step = &spec.requests[step_index];
    let Some(req) = &step.request else {
        return Ok(Vec::new());
    };
    let mut props = crate::scenario::typed_properties(&spec.properties)?;
    props.extend(crate::scenario::typed_properties(&step.properties)?);
    // Warm up (caches, lazily defined metrics, JIT'd code paths).
    for _ in 0..(iterations / 10).max(10) {
        session.request(step.worker, req, props.clone(), step.upstream.clone())?;
    }
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        for _ in 0..iterations {
            session.request(step.worker, req, props.clone(), step.upstream.clone())?;
        }
        out.push(t0.elapsed().as_nanos() as f64 / iterations as f64);
    }
    Ok(out)
}

/// Benchmarks every request step of a scenario.
pub fn bench(
    s: &Scenario,
    opts: &RunOptions,
    iterations: usize,
    runs: usize,
    baseline: bool,
) -> Result<BenchReport, String> {
    let mut session = Session::new(&s.spec, &s.base_dir, opts)?;
    let mut base = if baseline {
        let mut empty = s.spec.clone();
        empty.chain.clear();
        Some(Session::new(&empty, &s.base_dir, opts)?)
    } else {
        None
    };
    let mut steps = Vec::new();
    for (i, step) in s.spec.requests.iter().enumerate() {
        if step.request.is_none() {
            session.advance(step.advance_ms);
            continue;
        }
        let mut runs_ns = measure(&mut session, &s.spec, i, iterations, runs)?;
        let baseline_ns = match base.as_mut() {
            Some(b) => Some(median(&mut measure(b, &s.spec, i, iterations, runs)?)),
            None => None,
        };
        let median_ns = median(&mut runs_ns.clone());
        steps.push(StepFigure {
            name: if step.name.is_empty() {
                format!("step {}", i + 1)
            } else {
                step.name.clone()
            },
            median_ns,
            runs_ns: {
                runs_ns.truncate(runs);
                runs_ns
            },
            baseline_ns,
        });
    }
    let memory = session
        .workers()
        .iter()
        .flat_map(|w| w.memory_sizes())
        .collect();
    Ok(BenchReport {
        source: s.source.clone(),
        chain: s.spec.chain.iter().map(|p| p.name.clone()).collect(),
        iterations,
        runs,
        steps,
        memory,
    })
}

/// Benchmarks a scenario file.
pub fn bench_file(
    path: &Path,
    opts: &RunOptions,
    iterations: usize,
    runs: usize,
    baseline: bool,
) -> Result<BenchReport, String> {
    let s = Scenario::from_file(path)?;
    bench(&s, opts, iterations, runs, baseline)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}  chain: [{}]", self.source, self.chain.join(", "))?;
        writeln!(
            f,
            "  {} requests x {} runs per step, median ns/request",
            self.iterations, self.runs
        )?;
        for s in &self.steps {
            match s.baseline_ns {
                Some(b) => writeln!(
                    f,
                    "  {:<44} {:>10.0} ns   (empty chain {:>8.0} ns, chain cost {:>8.0} ns)",
                    s.name,
                    s.median_ns,
                    b,
                    s.median_ns - b
                )?,
                None => writeln!(f, "  {:<44} {:>10.0} ns", s.name, s.median_ns)?,
            }
        }
        for (vm, bytes) in &self.memory {
            writeln!(f, "  linear memory {vm}: {} KiB", bytes / 1024)?;
        }
        Ok(())
    }
}
