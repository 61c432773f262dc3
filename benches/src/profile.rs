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
