//! `wasmesh-benchmarks [--quick|--smoke] [--out FILE] [--serve-output FILE]`:
//! runs every benchmark and writes BENCHMARKS.md (stdout without `--out`).
//! Normally run by `scripts/bench.sh`, which builds what it needs first.

use wasmesh_benchmarks::report::{run, Mode, Options};

/// Sends `n` requests of case `id` through the harness (inside
/// `WasmChain::run` / `NativeChain::run`, the functions a profiler can
/// restrict itself to). `ID:empty` sends them through an empty chain,
/// `ID:native` through the native cores.
fn run_case_only(id: &str, n: u64) -> Result<(), String> {
    let (base, variant) = id.split_once(':').unwrap_or((id, ""));
    let case = wasmesh_benchmarks::cases::filter_cases()
        .into_iter()
        .find(|c| c.id == base)
        .ok_or_else(|| format!("no case `{base}`"))?;
    match variant {
        "" => {
            let mut chain = wasmesh_benchmarks::harness::WasmChain::new(&case, &case.plugins)?;
            chain.check(case.expect_status)?;
            chain.run(n)
        }
        "empty" => {
            let mut chain = wasmesh_benchmarks::harness::WasmChain::new(&case, &[])?;
            chain.check(200)?;
            chain.run(n)
        }
        "native" => {
            let mut chain = wasmesh_benchmarks::native::NativeChain::new(&case)?;
            chain.check(case.expect_status == 200)?;
            chain.run(n)
        }
        other => match other
            .strip_prefix("passthrough-")
            .and_then(|k| k.parse::<usize>().ok())
        {
            Some(k) => {
                let plugins = wasmesh_benchmarks::cases::passthrough(k);
                let mut chain = wasmesh_benchmarks::harness::WasmChain::new(&case, &plugins)?;
                chain.check(200)?;
                chain.run(n)
            }
            None => Err(format!(
                "unknown variant `{other}` (empty, native, passthrough-K)"
            )),
        },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mode = Mode::Full;
    let mut out = None;
    let mut serve = None;
    let mut serve_note = None;
    let mut command = "bash scripts/bench.sh".to_string();
    let mut callgrind = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => mode = Mode::Quick,
            "--smoke" => mode = Mode::Smoke,
            "--out" => out = args.next(),
            "--serve-output" => serve = args.next(),
            "--serve-note" => serve_note = args.next(),
            "--callgrind" => {
                // CASE=FILE=REQUESTS
                let spec = args.next().unwrap_or_default();
                let parts: Vec<&str> = spec.splitn(3, '=').collect();
                match parts.as_slice() {
                    [c, f, n] if n.parse::<u64>().is_ok() => {
                        callgrind.push((c.to_string(), f.to_string(), n.parse().unwrap_or(1)))
                    }
                    _ => {
                        eprintln!("--callgrind wants CASE=FILE=REQUESTS, got `{spec}`");
                        std::process::exit(2);
                    }
                }
            }
            "--command" => command = args.next().unwrap_or(command),
            "--run-case" => {
                // For profilers: only send requests of one case through the harness.
                let id = args.next().unwrap_or_default();
                let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
                std::process::exit(match run_case_only(&id, n) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("{e}");
                        1
                    }
                });
            }
            other => {
                eprintln!("unknown argument `{other}`\nusage: wasmesh-benchmarks [--quick|--smoke] [--out FILE] [--serve-output FILE] [--serve-note TEXT] [--command TEXT]");
                std::process::exit(2);
            }
        }
    }
    let serve_output = match serve {
        Some(p) => match std::fs::read_to_string(&p) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("{p}: {e}");
                std::process::exit(2);
            }
        },
        None => None,
    };
    let opts = Options {
        mode,
        command,
        serve_output,
        serve_note,
        progress: true,
        callgrind,
    };
    match run(&opts) {
        Ok(r) => {
            let md = r.markdown();
            match out {
                Some(p) => {
                    if let Err(e) = std::fs::write(&p, md) {
                        eprintln!("{p}: {e}");
                        std::process::exit(1);
                    }
                    eprintln!("[bench] wrote {p} in {:.0} s", r.seconds);
                }
                None => print!("{md}"),
            }
        }
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
