//! Where a request's time goes, from a callgrind profile of
//! `wasmesh-benchmarks --run-case <id> <n>` collected only inside
//! `WasmChain::run` (`scripts/bench.sh` runs valgrind). Instruction counts
//! are deterministic, unlike time on a shared machine.
//!
//! The split: everything inside `wasmesh::vm::Vm::invoke` is a plugin
//! callback (wasm code plus the host functions it calls); JIT-compiled wasm
//! code has no symbols (`???` in an anonymous mapping); the rest of the
//! request is the harness itself (stream bookkeeping, virtual upstream,
//! header maps).

/// Instruction counts per request.
#[derive(Debug, Clone)]
pub struct Profile {
    pub case: String,
    pub requests: u64,
    pub total: f64,
    /// Inside plugin callbacks (`Vm::invoke`, inclusive).
    pub callbacks: f64,
    /// Wasm code (JIT, self cost).
    pub wasm: f64,
    /// Top functions by self cost (name, instructions per request).
    pub top: Vec<(String, f64)>,
}

impl Profile {
    /// Host functions called from wasm, trampolines included.
    pub fn host_calls(&self) -> f64 {
        self.callbacks - self.wasm
    }
    /// The harness outside plugin callbacks.
    pub fn harness(&self) -> f64 {
        self.total - self.callbacks
    }
}

/// (count, function, object) of each line of `callgrind_annotate` output.
fn rows(text: &str) -> Vec<(f64, String, String)> {
    let mut v = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let Some((num, rest)) = t.split_once(' ') else {
            continue;
        };
        let Ok(n) = num.replace(',', "").parse::<f64>() else {
            continue;
        };
        // "(12.34%)  file:function [object]"
        let rest = rest.trim_start();
        let rest = match rest.find(')') {
            Some(i) if rest.starts_with('(') => rest[i + 1..].trim_start(),
            _ => rest,
        };
        let (func, obj) = match rest.rfind(" [") {
            Some(i) => (&rest[..i], rest[i + 2..].trim_end_matches(']')),
            None => (rest, ""),
        };
        let func = func.split_once(':').map_or(func, |(_, f)| f);
        v.push((n, func.to_string(), obj.to_string()));
    }
    v
}

fn annotate(file: &str, inclusive: bool) -> Result<String, String> {
    let out = std::process::Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg(file)
        .output()
        .map_err(|e| format!("callgrind_annotate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_annotate {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Reads a callgrind output file of `requests` requests of `case`.
pub fn read(case: &str, file: &str, requests: u64) -> Result<Profile, String> {
    let incl = rows(&annotate(file, true)?);
    let selfc = rows(&annotate(file, false)?);
    let n = requests.max(1) as f64;
    let total = selfc
        .iter()
        .find(|(_, f, _)| f.contains("PROGRAM TOTALS"))
        .map(|r| r.0)
        .ok_or("no PROGRAM TOTALS")?;
    let callbacks = incl
        .iter()
        .find(|(_, f, _)| f == "wasmesh::vm::Vm::invoke")
        .map_or(0.0, |r| r.0);
    let is_jit = |f: &str, o: &str| f.starts_with("0x") && o == "???";
    let wasm: f64 = selfc
        .iter()
        .filter(|(_, f, o)| is_jit(f, o))
        .map(|r| r.0)
        .sum();
    let mut top: Vec<(String, f64)> = selfc
        .iter()
        .filter(|(_, f, o)| !f.contains("PROGRAM TOTALS") && !is_jit(f, o))
        .map(|(c, f, o)| {
            let obj = o.rsplit('/').next().unwrap_or(o);
            (format!("{f} ({obj})"), c / n)
        })
        .collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(12);
    Ok(Profile {
        case: case.to_string(),
        requests,
        total: total / n,
        callbacks: callbacks / n,
        wasm: wasm / n,
        top,
    })
}

/// The cases whose instructions per request are reported (issue 15's
/// table), with their figures before the host and filter work of issue 15
/// (main at 8ed6b80, measured by the method of [`instructions`]).
pub const INSTRUCTION_CASES: &[(&str, f64)] = &[
    ("fault-injection", 34_722.0),
    ("jwt-authn", 75_730.0),
    ("rbac", 121_210.0),
    ("header-router", 48_928.0),
    ("custom-metrics-3x6", 203_651.0),
    ("full-chain", 686_077.0),
];

/// The pass-through floor before issue 15 (per plugin, same method).
pub const PASSTHROUGH_BEFORE: f64 = 10_795.0;

/// Requests of the two runs whose difference gives the per-request count.
pub const INSTRUCTION_RUNS: (u64, u64) = (100, 600);

/// Instructions per request of `wasmesh-benchmarks --run-case CASE`:
/// (I(600) − I(100)) / 500, counted by callgrind inside
/// `WasmChain::run` only. Deterministic up to a few instructions (hash seeds),
/// so comparable across machines and commits.
pub fn instructions(exe: &str, case: &str) -> Result<f64, String> {
    let (a, b) = INSTRUCTION_RUNS;
    let ia = callgrind_total(exe, case, a)?;
    let ib = callgrind_total(exe, case, b)?;
    Ok((ib - ia) / (b - a) as f64)
}

fn callgrind_total(exe: &str, case: &str, n: u64) -> Result<f64, String> {
    let dir = std::env::temp_dir().join(format!("wasmesh-cg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let file = dir.join(format!("cg.{}.{n}", case.replace(':', "_")));
    let out = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg("--toggle-collect=wasmesh_benchmarks::harness::WasmChain::run")
        .arg(exe)
        .args(["--run-case", case, &n.to_string()])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "valgrind --run-case {case} {n}: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let _ = std::fs::remove_file(&file);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .ok_or_else(|| format!("{}: no summary line", file.display()))
}

/// Host calls per request of `wasmesh-benchmarks --run-case CASE N
/// --host-calls`, by name.
pub fn host_calls(exe: &str, case: &str, n: u64) -> Result<Vec<(String, f64)>, String> {
    let out = std::process::Command::new(exe)
        .args(["--run-case", case, &n.to_string(), "--host-calls"])
        .output()
        .map_err(|e| format!("{exe}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "--run-case {case} --host-calls: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut v: Vec<(String, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, calls) = l.rsplit_once(' ')?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(v)
}

/// One row of the instruction table.
#[derive(Debug, Clone)]
pub struct InstructionRow {
    pub case: String,
    /// Instructions per request added by the case's chain (case − empty).
    pub added: f64,
    /// The empty chain's instructions per request (the harness itself).
    pub empty: f64,
    /// The figure before issue 15, if known.
    pub before: Option<f64>,
    /// Host calls per request by name.
    pub host_calls: Vec<(String, f64)>,
}

/// Instructions and host calls per request of the issue-15 cases, and the
/// pass-through floor (`fault-injection:passthrough-4` − empty, / 4) as
/// the last row (`case` = "pass-through plugin").
pub fn instruction_table(exe: &str, say: &dyn Fn(&str)) -> Result<Vec<InstructionRow>, String> {
    let mut rows = Vec::new();
    for (case, before) in INSTRUCTION_CASES {
        say(&format!("instructions of {case} (callgrind)"));
        let empty = instructions(exe, &format!("{case}:empty"))?;
        let full = instructions(exe, case)?;
        rows.push(InstructionRow {
            case: case.to_string(),
            added: full - empty,
            empty,
            before: Some(*before),
            host_calls: host_calls(exe, case, 100)?,
        });
    }
    say("instructions of the pass-through floor (callgrind)");
    let empty = instructions(exe, "fault-injection:empty")?;
    let four = instructions(exe, "fault-injection:passthrough-4")?;
    rows.push(InstructionRow {
        case: "pass-through plugin".into(),
        added: (four - empty) / 4.0,
        empty,
        before: Some(PASSTHROUGH_BEFORE),
        host_calls: host_calls(exe, "fault-injection:passthrough-1", 100)?,
    });
    Ok(rows)
}
