//! Scenario files: traffic described declaratively, run on virtual time,
//! checked against expectations. See `docs/scenarios.md`.
//!
//! ```no_run
//! use wasmesh::scenario::{Scenario, RunOptions, run};
//! let s = Scenario::from_yaml_str("chain: []\nrequests: [{name: a, expect: {status: 200}}]", ".".as_ref()).unwrap();
//! let report = run(&s, &RunOptions::default()).unwrap();
//! assert!(report.passed(), "{report}");
//! ```

mod artifacts;
mod convert;
pub mod model;
pub mod runner;

pub use artifacts::{
    default_wasm_dir, ensure_artifacts, resolve_wasm, workspace_root, RunOptions, WASM_CRATES,
};
pub use convert::{chain_config, request_headers, typed_properties, yaml_to_json};
pub use model::Scenario as ScenarioSpec;
pub use runner::{Observed, Session, DEFAULT_SEED, MAX_WAIT_NS};

use crate::host::LogLine;
use model::*;
use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed scenario and the directory its relative paths refer to.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub spec: ScenarioSpec,
    pub base_dir: PathBuf,
    /// Where it came from (for reports).
    pub source: String,
}

impl Scenario {
    /// Parses YAML text; relative `wasm:` paths are resolved against `base_dir`.
    pub fn from_yaml_str(text: &str, base_dir: &Path) -> Result<Scenario, String> {
        let spec: ScenarioSpec =
            serde_yaml::from_str(text).map_err(|e| format!("invalid scenario: {e}"))?;
        Ok(Scenario {
            spec,
            base_dir: base_dir.to_path_buf(),
            source: "<inline>".into(),
        })
    }

    /// Reads a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut s = Self::from_yaml_str(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        s.source = path.display().to_string();
        Ok(s)
    }
}

/// The result of one step.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: String,
    pub failures: Vec<String>,
    pub summary: String,
}

/// The result of a scenario.
#[derive(Debug, Clone)]
pub struct Report {
    pub source: String,
    /// Set when the scenario could not run at all.
    pub error: Option<String>,
    pub steps: Vec<StepResult>,
    /// The seed of the run's random sources (printed with a failure).
    pub seed: u64,
}

impl Report {
    /// Whether everything passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.steps.iter().all(|s| s.failures.is_empty())
    }

    /// Number of failed steps (an error counts as one).
    pub fn failed_count(&self) -> usize {
        usize::from(self.error.is_some())
            + self.steps.iter().filter(|s| !s.failures.is_empty()).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.source)?;
        if let Some(e) = &self.error {
            writeln!(f, "  FAIL  scenario could not run: {e}")?;
        }
        for s in &self.steps {
            if s.failures.is_empty() {
                writeln!(f, "  ok    {:<48} {}", s.name, s.summary)?;
            } else {
                writeln!(f, "  FAIL  {:<48} {}", s.name, s.summary)?;
                for line in &s.failures {
                    for (i, l) in line.lines().enumerate() {
                        writeln!(f, "        {}{}", if i == 0 { "- " } else { "  " }, l)?;
                    }
                }
            }
        }
        if !self.passed() {
            writeln!(
                f,
                "  seed  {} (replay: wasmesh test --seed {} {})",
                self.seed, self.seed, self.source
            )?;
        }
        Ok(())
    }
}

/// Runs a scenario and checks every expectation.
pub fn run(s: &Scenario, opts: &RunOptions) -> Result<Report, String> {
    let mut report = Report {
        seed: s.spec.seed.unwrap_or(runner::DEFAULT_SEED),
        source: s.source.clone(),
        error: None,
        steps: Vec::new(),
    };
    let start_seq = 0;
    let session = Session::new(&s.spec, &s.base_dir, opts);
    let mut session = match (session, &s.spec.start) {
        (Err(e), Some(st)) if st.fails => {
            let logs = logs_of_failed_start(&e);
            let mut failures = Vec::new();
            for want in &st.error_contains {
                if !e.contains(want.as_str()) {
                    failures.push(format!(
                        "start error: expected to contain {want:?}, got {e:?}"
                    ));
                }
            }
            for want in &st.logs_contain {
                if !logs.iter().any(|l| l.contains(want.as_str())) && !e.contains(want.as_str()) {
                    failures.push(format!(
                        "start logs: expected a line containing {want:?}; lines:\n{}",
                        logs.join("\n")
                    ));
                }
            }
            report.steps.push(StepResult {
                name: "chain refuses to start".into(),
                failures,
                summary: first_line(&e),
            });
            return Ok(report);
        }
        (Err(e), _) => {
            report.error = Some(e);
            return Ok(report);
        }
        (Ok(_), Some(st)) if st.fails => {
            report.steps.push(StepResult {
                name: "chain refuses to start".into(),
                failures: vec!["start: expected the chain to fail to start, but it started".into()],
                summary: String::new(),
            });
            return Ok(report);
        }
        (Ok(sess), _) => sess,
    };
    if let Some(st) = &s.spec.start {
        let logs = format_logs(&session.logs_since(start_seq));
        let mut failures = Vec::new();
        for want in &st.logs_contain {
            if !logs.iter().any(|l| l.contains(want.as_str())) {
                failures.push(format!(
                    "start logs: expected a line containing {want:?}; lines:\n{}",
                    logs.join("\n")
                ));
            }
        }
        report.steps.push(StepResult {
            name: "chain starts".into(),
            failures,
            summary: String::new(),
        });
    }
    for (i, step) in s.spec.requests.iter().enumerate() {
        let name = if step.name.is_empty() {
            format!("step {}", i + 1)
        } else {
            step.name.clone()
        };
        let r = run_step(&mut session, &s.spec, step);
        report.steps.push(match r {
            Ok((failures, summary)) => StepResult {
                name,
                failures,
                summary,
            },
            Err(e) => StepResult {
                name,
                failures: vec![e],
                summary: String::new(),
            },
        });
    }
    Ok(report)
}

/// Start failures carry the host's log lines in the error (see
/// [`start_error`]); split them back out.
fn logs_of_failed_start(e: &str) -> Vec<String> {
    e.lines().map(|l| l.to_string()).collect()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn format_logs(lines: &[LogLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| format!("[{}] {}: {}", l.level.name(), l.plugin, l.message))
        .collect()
}

fn run_step(
    session: &mut Session,
    spec: &ScenarioSpec,
    step: &Step,
) -> Result<(Vec<String>, String), String> {
    let log_seq = session.host.log_seq();
    let calls_before = session.calls.len();
    session.advance(step.advance_ms);
    let mut obs = None;
    if let Some(req) = &step.request {
        let mut props = typed_properties(&spec.properties)?;
        props.extend(typed_properties(&step.properties)?);
        for _ in 0..step.repeat.unwrap_or(1).max(1) {
            obs = Some(session.request(step.worker, req, props.clone(), step.upstream.clone())?);
        }
    }
    if step.shutdown {
        session.shutdown();
    }
    let logs = format_logs(&session.logs_since(log_seq));
    let calls = &session.calls[calls_before..];
    let mut failures = Vec::new();
    check(
        &step.expect,
        obs.as_ref(),
        &logs,
        calls,
        session,
        &mut failures,
    );
    let summary = match &obs {
        Some(o) => {
            let status = o
                .status()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into());
            let elapsed = o.completed_ns.map(|c| (c - o.started_ns) / 1_000_000);
            let mut s = format!("-> {status}");
            if let Some(by) = &o.local_reply_by {
                s.push_str(&format!(" (local reply by {by})"));
            } else if o.reached_upstream {
                s.push_str(&format!(
                    " (upstream {})",
                    o.upstream_cluster.clone().unwrap_or_default()
                ));
            }
            match elapsed {
                Some(e) if e > 0 => s.push_str(&format!(" after {e} ms")),
                Some(_) => {}
                None => s.push_str(" (still pending)"),
            }
            s
        }
        None => String::new(),
    };
    if failures.is_empty() || logs.is_empty() {
        return Ok((failures, summary));
    }
    failures.push(format!("log lines of this step:\n{}", logs.join("\n")));
    Ok((failures, summary))
}

fn show(v: Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "(absent)".into(),
    }
}

fn header(map: Option<&crate::headers::HeaderMap>, name: &str) -> Option<String> {
    let m = map?;
    m.get_joined(name.as_bytes())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn check(
    e: &Expect,
    obs: Option<&Observed>,
    logs: &[String],
    calls: &[(String, String, String)],
    session: &Session,
    out: &mut Vec<String>,
) {
    if let Some(o) = obs {
        if let Some(want) = e.status {
            if o.status() != Some(want) {
                out.push(format!(
                    "status: expected {want}, got {}{}",
                    o.status()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "none".into()),
                    if o.status().is_some() {
                        format!(" (body {:?})", String::from_utf8_lossy(&o.response_body))
                    } else {
                        String::new()
                    }
                ));
            }
        }
        if let Some(want) = e.reached_upstream {
            if o.reached_upstream != want {
                out.push(format!(
                    "reached_upstream: expected {want}, got {}",
                    o.reached_upstream
                ));
            }
        }
        if let Some(want) = &e.upstream_headers {
            for (k, v) in want {
                let got = header(o.upstream_headers.as_ref(), k);
                if got.as_deref() != Some(v.as_str()) {
                    out.push(format!(
                        "upstream_headers.{k}: expected {v:?}, got {}",
                        show(got)
                    ));
                }
            }
        }
        for k in &e.upstream_headers_absent {
            if let Some(got) = header(o.upstream_headers.as_ref(), k) {
                out.push(format!(
                    "upstream_headers_absent: `{k}` reached the upstream with {got:?}"
                ));
            }
        }
        if let Some(want) = &e.upstream_body {
            let got = String::from_utf8_lossy(&o.upstream_body);
            if got != *want {
                out.push(format!("upstream_body: expected {want:?}, got {got:?}"));
            }
        }
        if let Some(want) = &e.upstream_trailers {
            for (k, v) in want {
                let got = header(o.upstream_trailers.as_ref(), k);
                if got.as_deref() != Some(v.as_str()) {
                    out.push(format!(
                        "upstream_trailers.{k}: expected {v:?}, got {}",
                        show(got)
                    ));
                }
            }
        }
        if let Some(want) = &e.upstream_cluster {
            if o.upstream_cluster.as_deref() != Some(want.as_str()) {
                out.push(format!(
                    "upstream_cluster: expected {want:?}, got {}",
                    show(o.upstream_cluster.clone())
                ));
            }
        }
        if let Some(want) = &e.response_headers {
            for (k, v) in want {
                let got = header(o.response_headers.as_ref(), k);
                if got.as_deref() != Some(v.as_str()) {
                    out.push(format!(
                        "response_headers.{k}: expected {v:?}, got {}",
                        show(got)
                    ));
                }
            }
        }
        for k in &e.response_headers_absent {
            if let Some(got) = header(o.response_headers.as_ref(), k) {
                out.push(format!(
                    "response_headers_absent: `{k}` reached the client with {got:?}"
                ));
            }
        }
        if let Some(want) = &e.response_trailers {
            for (k, v) in want {
                let got = header(o.response_trailers.as_ref(), k);
                if got.as_deref() != Some(v.as_str()) {
                    out.push(format!(
                        "response_trailers.{k}: expected {v:?}, got {}",
                        show(got)
                    ));
                }
            }
        }
        let body = String::from_utf8_lossy(&o.response_body).into_owned();
        if let Some(want) = &e.body {
            if body != *want {
                out.push(format!("body: expected {want:?}, got {body:?}"));
            }
        }
        if let Some(want) = &e.body_contains {
            if !body.contains(want.as_str()) {
                out.push(format!("body_contains: expected {want:?} in {body:?}"));
            }
        }
        if let Some(want) = &e.local_reply_by {
            let got = o.local_reply_by.clone().unwrap_or_default();
            if got != *want {
                out.push(format!("local_reply_by: expected {want:?}, got {got:?}"));
            }
        }
        if let Some(want) = &e.response_code_details {
            if o.code_details.as_deref() != Some(want.as_str()) {
                out.push(format!(
                    "response_code_details: expected {want:?}, got {}",
                    show(o.code_details.clone())
                ));
            }
        }
        if let Some(want) = e.grpc_status {
            let got = header(o.response_trailers.as_ref(), "grpc-status")
                .or_else(|| header(o.response_headers.as_ref(), "grpc-status"));
            if got.as_deref() != Some(want.to_string().as_str()) {
                out.push(format!("grpc_status: expected {want}, got {}", show(got)));
            }
        }
        if let Some(want) = e.reset {
            if o.reset.is_some() != want {
                out.push(format!(
                    "reset: expected {want}, got {}",
                    show(o.reset.clone())
                ));
            }
        }
        if let Some(want) = &e.elapsed_ms {
            match o.completed_ns {
                None => out.push("elapsed_ms: the request did not complete".into()),
                Some(c) => {
                    let got = ((c - o.started_ns) / 1_000_000) as u64;
                    let ok = match want {
                        RangeExpect::Exact(x) => got == *x,
                        RangeExpect::Range { min, max } => {
                            min.is_none_or(|m| got >= m) && max.is_none_or(|m| got <= m)
                        }
                    };
                    if !ok {
                        out.push(format!("elapsed_ms: expected {want:?}, got {got}"));
                    }
                }
            }
        }
        let pending = !o.complete;
        if pending != e.pending.unwrap_or(false) {
            if pending {
                out.push(format!(
                    "pending: the request never completed (paused with nothing left to wait for{})",
                    if o.response_headers.is_some() {
                        ", response started"
                    } else {
                        ""
                    }
                ));
            } else {
                out.push(
                    "pending: expected the request to still be paused, but it completed".into(),
                );
            }
        }
        if let Some(want) = e.route_cache_cleared {
            if (o.route_cache_cleared > 0) != want {
                out.push(format!(
                    "route_cache_cleared: expected {want}, cleared {} time(s)",
                    o.route_cache_cleared
                ));
            }
        }
        if let Some(want) = &e.filter_state {
            for (k, exp) in want {
                let got = o
                    .filter_state
                    .iter()
                    .find(|(key, _)| key == k.as_bytes())
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                let ok = match (exp, &got) {
                    (StateExpect::Exact(x), Some(g)) => x == g,
                    (StateExpect::Contains { contains }, Some(g)) => g.contains(contains.as_str()),
                    (StateExpect::Absent { absent }, g) => *absent == g.is_none(),
                    _ => false,
                };
                if !ok {
                    out.push(format!(
                        "filter_state.{k}: expected {exp:?}, got {}",
                        show(got)
                    ));
                }
            }
        }
    } else {
        let needs_request = e.status.is_some()
            || e.reached_upstream.is_some()
            || e.upstream_headers.is_some()
            || e.response_headers.is_some()
            || e.body.is_some()
            || e.body_contains.is_some();
        if needs_request {
            out.push(
                "expect: this step sends no request, so request expectations cannot be checked"
                    .into(),
            );
        }
    }
    if let Some(want) = &e.metrics {
        for (name, exp) in want {
            let got = session.host.metric(name);
            match (exp, &got) {
                (MetricExpect::Value(v), Some(m))
                    if m.kind != crate::types::MetricKind::Histogram =>
                {
                    if m.value != *v {
                        out.push(format!("metrics.{name}: expected {v}, got {}", m.value));
                    }
                }
                (MetricExpect::Histogram { count, sum }, Some(m))
                    if m.kind == crate::types::MetricKind::Histogram =>
                {
                    if count.is_some_and(|c| c != m.count) || sum.is_some_and(|s| s != m.sum) {
                        out.push(format!(
                            "metrics.{name}: expected histogram count {count:?} sum {sum:?}, got count {} sum {}",
                            m.count, m.sum
                        ));
                    }
                }
                (MetricExpect::Absent { absent }, g) => {
                    if *absent != g.is_none() {
                        out.push(format!(
                            "metrics.{name}: expected absent={absent}, got {g:?}"
                        ));
                    }
                }
                (exp, None) => {
                    let known: Vec<String> = session
                        .host
                        .metrics()
                        .iter()
                        .map(|m| m.name.clone())
                        .collect();
                    out.push(format!(
                        "metrics.{name}: expected {exp:?}, but no such metric; defined: {known:?}"
                    ));
                }
                (exp, Some(m)) => out.push(format!(
                    "metrics.{name}: expected {exp:?}, but it is a {}",
                    m.kind.name()
                )),
            }
        }
    }
    for want in &e.logs_contain {
        if !logs.iter().any(|l| l.contains(want.as_str())) {
            out.push(format!("logs_contain: no log line contains {want:?}"));
        }
    }
    for bad in &e.logs_absent {
        if let Some(l) = logs.iter().find(|l| l.contains(bad.as_str())) {
            out.push(format!("logs_absent: {bad:?} appears in {l:?}"));
        }
    }
    if let Some(want) = &e.http_calls {
        match want {
            CallsExpect::Count(n) => {
                if calls.len() != *n {
                    out.push(format!(
                        "http_calls: expected {n}, got {} {calls:?}",
                        calls.len()
                    ));
                }
            }
            CallsExpect::List(list) => {
                if list.len() != calls.len() {
                    out.push(format!(
                        "http_calls: expected {} call(s), got {} {calls:?}",
                        list.len(),
                        calls.len()
                    ));
                }
                for (i, (w, (c, m, p))) in list.iter().zip(calls).enumerate() {
                    let ok = w.cluster.as_ref().is_none_or(|x| x == c)
                        && w.method.as_ref().is_none_or(|x| x == m)
                        && w.path.as_ref().is_none_or(|x| x == p);
                    if !ok {
                        out.push(format!(
                            "http_calls[{i}]: expected {w:?}, got cluster={c} method={m} path={p}"
                        ));
                    }
                }
            }
        }
    }
}

/// Every scenario file under `dirs` (recursively, `*.yaml`/`*.yml`), sorted.
pub fn discover(dirs: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for d in dirs {
        walk(d, &mut out);
    }
    out.sort();
    out
}

/// Whether a YAML file is a scenario (has `chain:` or `requests:` at top level).
pub fn looks_like_scenario(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| {
        // `wasmesh serve` configurations (`listen:`) and Envoy bootstraps
        // (`static_resources:`) have a `chain`/routes too, but are not scenarios.
        let serve = t
            .lines()
            .any(|l| l.starts_with("listen:") || l.starts_with("static_resources:"));
        !serve
            && t.lines()
                .any(|l| l.starts_with("chain:") || l.starts_with("requests:"))
    })
}
