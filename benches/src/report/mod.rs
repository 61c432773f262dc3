//! One benchmark run and the Markdown it produces.

use crate::cases::{self, Case};
use crate::crypto::{self, CryptoRow, OpensslFigures};
use crate::harness::WasmChain;
use crate::keys::{Keys, ALGORITHMS};
use crate::native::NativeChain;
use crate::startup::{self, MemoryRow, SizeRow, StartRow};
use crate::timing::{measure, Figure, Timing};
use std::fmt::Write as _;
use std::time::Instant;

mod markdown;

pub use markdown::{fmt_count, instructions_markdown};

/// How thoroughly to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every figure with 11 samples (a few minutes).
    Full,
    /// Fewer, shorter samples (about a minute).
    Quick,
    /// Every benchmark once, 1 iteration: proves they run (figures meaningless).
    Smoke,
}

/// Run options.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// The command that regenerates the report (printed in it).
    pub command: String,
    /// Output of `scripts/bench-serve.sh`, if it ran.
    pub serve_output: Option<String>,
    /// Why the data plane was not measured, if it was not.
    pub serve_note: Option<String>,
    /// Print progress to stderr.
    pub progress: bool,
    /// Callgrind profiles to summarise: (case, file, requests).
    pub callgrind: Vec<(String, String, u64)>,
}

impl Options {
    pub fn timing(&self) -> Timing {
        match self.mode {
            Mode::Full => Timing::full(),
            Mode::Quick => Timing::quick(),
            Mode::Smoke => Timing::smoke(),
        }
    }
    fn say(&self, what: &str) {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
        if self.progress {
            eprintln!("[bench {t:6.1}s] {what}");
        }
    }
}

/// Figures of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub id: String,
    pub title: String,
    /// Through the chain in the harness, ns/request.
    pub wasm: Figure,
    /// Through an empty chain, same requests.
    pub empty: Figure,
    /// Through as many pass-through wasm plugins as the case has plugins.
    pub floor: Option<Figure>,
    /// The cores natively.
    pub native: Figure,
    /// Number of plugins.
    pub plugins: usize,
}

impl CaseResult {
    /// What the chain adds to a request in the harness.
    pub fn added(&self) -> f64 {
        self.wasm.median - self.empty.median
    }
    /// wasm (minus the empty chain) over native.
    pub fn ratio(&self) -> f64 {
        if self.native.median > 0.0 {
            self.added() / self.native.median
        } else {
            f64::NAN
        }
    }
}

/// Machine and run description.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub rustc: String,
    pub load: String,
}

/// Everything measured.
#[derive(Debug, Clone)]
pub struct Results {
    pub mode: Mode,
    pub command: String,
    pub machine: Machine,
    pub cases: Vec<CaseResult>,
    /// Per algorithm: (alg, cold, cached).
    pub jwt: Vec<(String, CaseResult, CaseResult)>,
    pub crypto: Vec<CryptoRow>,
    pub crypto_note: Option<String>,
    pub openssl: Option<OpensslFigures>,
    /// (group, n, result).
    pub scaling: Vec<(String, usize, CaseResult)>,
    pub sizes: Vec<SizeRow>,
    pub sizes_note: Option<String>,
    pub start: Vec<StartRow>,
    pub memory: Vec<MemoryRow>,
    pub memory_requests: u64,
    pub serve_output: Option<String>,
    pub serve_note: Option<String>,
    pub profiles: Vec<crate::profile::Profile>,
    /// Instructions and host calls per request (callgrind), filled by the
    /// caller when valgrind is there (`wasmesh-benchmarks --instructions`).
    pub instructions: Vec<crate::profile::InstructionRow>,
    /// Why the instruction table is empty, if it is.
    pub instructions_note: Option<String>,
    /// Load average when the timings were done.
    pub load_end: String,
    pub seconds: f64,
}

fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The machine this runs on.
pub fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel: sh("uname", &["-r"]),
        rustc: sh("rustc", &["--version"]),
        load: std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
    }
}

/// Measures one case: its chain, an empty chain and (optionally) the
/// pass-through floor in the harness, and the cores natively. Each path is
/// checked first (status, native outcome) so that the figures are of the
/// intended path.
pub fn run_case(case: &Case, t: &Timing, with_floor: bool) -> Result<CaseResult, String> {
    let err = |e: String| format!("{}: {e}", case.id);
    let mut wasm = WasmChain::new(case, &case.plugins).map_err(err)?;
    wasm.check(case.expect_status).map_err(err)?;
    let mut empty = WasmChain::new(case, &[]).map_err(err)?;
    empty.check(200).map_err(err)?;
    let mut native = NativeChain::new(case).map_err(err)?;
    native.check(case.expect_status == 200).map_err(err)?;
    let floor = if with_floor {
        let mut f = WasmChain::new(case, &cases::passthrough(case.plugins.len())).map_err(err)?;
        f.check(200).map_err(err)?;
        Some(measure(t, |n| f.run(n)).map_err(err)?)
    } else {
        None
    };
    Ok(CaseResult {
        id: case.id.clone(),
        title: case.title.clone(),
        wasm: measure(t, |n| wasm.run(n)).map_err(err)?,
        empty: measure(t, |n| empty.run(n)).map_err(err)?,
        floor,
        native: measure(t, |n| native.run(n)).map_err(err)?,
        plugins: case.plugins.len(),
    })
}

/// Runs every benchmark.
pub fn run(opts: &Options) -> Result<Results, String> {
    let started = Instant::now();
    let t = opts.timing();
    let smoke = opts.mode == Mode::Smoke;
    let machine = machine();

    let mut case_results = Vec::new();
    for c in cases::filter_cases() {
        opts.say(&c.title);
        case_results.push(run_case(&c, &t, true)?);
    }

    opts.say("JWT keys");
    let keys = Keys::generate();
    let mut jwt = Vec::new();
    for (alg, _) in ALGORITHMS {
        opts.say(&format!("JWT {alg}"));
        let cold = run_case(&cases::jwt_algorithm_case(&keys, alg, true), &t, false)?;
        let cached = run_case(&cases::jwt_algorithm_case(&keys, alg, false), &t, false)?;
        jwt.push((alg.to_string(), cold, cached));
    }
    opts.say("signature verification alone");
    let (crypto, crypto_note) = crypto::verification(&keys, &t)?;
    let openssl = if smoke {
        None
    } else {
        opts.say("openssl speed");
        crypto::openssl_speed(1)
    };

    let mut scaling = Vec::new();
    let (rbac_n, router_n, metrics_n): (&[usize], &[usize], &[usize]) = if smoke {
        (&[10], &[10], &[10])
    } else {
        (&[10, 100, 1000], &[10, 50, 100, 1000], &[10, 100, 1000])
    };
    for &n in rbac_n {
        opts.say(&format!("rbac {n} policies"));
        scaling.push((
            "rbac".to_string(),
            n,
            run_case(&cases::rbac_scaling_case(n), &t, false)?,
        ));
    }
    for &n in router_n {
        opts.say(&format!("router {n} routes"));
        scaling.push((
            "header-router".to_string(),
            n,
            run_case(&cases::router_scaling_case(n), &t, false)?,
        ));
    }
    for &n in metrics_n {
        opts.say(&format!("metrics {n} label values"));
        scaling.push((
            "custom-metrics".to_string(),
            n,
            run_case(&cases::metrics_cardinality_case(n), &t, false)?,
        ));
    }

    opts.say("sizes");
    let (sizes, sizes_note) = startup::sizes(!smoke)?;
    opts.say("cold start");
    let samples = match opts.mode {
        Mode::Full => 5,
        Mode::Quick => 3,
        Mode::Smoke => 1,
    };
    let start = startup::cold_start(&cases::example_plugins(), samples)?;
    let memory_requests = match opts.mode {
        Mode::Full => 100_000,
        Mode::Quick => 20_000,
        Mode::Smoke => 1,
    };
    opts.say(&format!("memory after {memory_requests} requests"));
    let memory = startup::memory_after(&cases::full_chain_case(), memory_requests)?;

    let mut profiles = Vec::new();
    for (case, file, n) in &opts.callgrind {
        opts.say(&format!("callgrind profile of {case}"));
        profiles.push(crate::profile::read(case, file, *n)?);
    }

    Ok(Results {
        profiles,
        instructions: Vec::new(),
        instructions_note: None,
        load_end: self::machine().load,
        mode: opts.mode,
        command: opts.command.clone(),
        machine,
        cases: case_results,
        jwt,
        crypto,
        crypto_note,
        openssl,
        scaling,
        sizes,
        sizes_note,
        start,
        memory,
        memory_requests,
        serve_output: opts.serve_output.clone(),
        serve_note: opts.serve_note.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// ns → "1,234 ns" / "12.3 µs" / "1.23 ms".
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "n/a".into()
    } else if ns.abs() < 10_000.0 {
        format!("{ns:.0} ns")
    } else if ns.abs() < 10_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

fn us(ns: f64) -> String {
    if ns.is_finite() {
        format!("{:.2} µs", ns / 1e3)
    } else {
        "n/a".into()
    }
}

fn spread(f: &Figure) -> String {
    format!("±{:.0}%", f.spread_pct())
}

/// A target: what it is, its limit (ns), the measured figure (ns).
#[derive(Debug, Clone)]
pub struct Target {
    pub what: String,
    pub limit: String,
    pub figure: Option<String>,
    pub met: Option<bool>,
    pub how: String,
}

fn added_target(what: &str, limit_ns: f64, r: Option<&CaseResult>, how: &str) -> Target {
    Target {
        what: what.into(),
        limit: format!("≤ {}", us(limit_ns)),
        figure: r.map(|r| us(r.added())),
        met: r.map(|r| r.added() <= limit_ns),
        how: how.into(),
    }
}
