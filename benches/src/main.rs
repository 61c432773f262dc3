//! `wasmesh-benchmarks [--quick|--smoke] [--instructions] [--out FILE] [--serve-output FILE]`:
//! runs every benchmark and writes BENCHMARKS.md (stdout without `--out`);
//! `--instructions` adds the callgrind instruction counts and host calls per
//! request (needs valgrind), `--instructions-only` writes only that section.
//! Normally run by `scripts/bench.sh`, which builds what it needs first.

use wasmesh_benchmarks::report::{run, Mode, Options};

/// Sends `n` requests of case `id` through the harness (inside
/// `WasmChain::run` / `NativeChain::run`, the functions a profiler can
/// restrict itself to). `ID:empty` sends them through an empty chain,
/// `ID:native` through the native cores, `ID:passthrough-K` through K
/// pass-through wasm plugins (`wat/passthrough.wat`): the host's fixed cost
/// per plugin is (`ID:passthrough-K` − `ID:empty`) / K. With `host_calls`,
/// every host function call is counted and the calls per request printed,
/// one `name calls` line each (the counting shims make it slow: never time
/// or profile such a run).
fn run_case_only(id: &str, n: u64, host_calls: bool) -> Result<(), String> {
    let (base, variant) = id.split_once(':').unwrap_or((id, ""));
    let case = wasmesh_benchmarks::cases::filter_cases()
        .into_iter()
        .find(|c| c.id == base)
        .ok_or_else(|| format!("no case `{base}`"))?;
    if host_calls {
        wasmesh::runtime::count_host_calls(true);
    }
    let wasm = |plugins: &[wasmesh_benchmarks::cases::Plugin], status: u32| -> Result<(), String> {
        let mut chain = wasmesh_benchmarks::harness::WasmChain::new(&case, plugins)?;
        chain.check(status)?;
        wasmesh::runtime::take_host_call_counts();
        chain.run(n)?;
        if host_calls {
            for (name, calls) in wasmesh::runtime::take_host_call_counts() {
                println!("{name} {}", calls as f64 / n.max(1) as f64);
            }
        }
        Ok(())
    };
    match variant {
        "" => wasm(&case.plugins, case.expect_status),
        "empty" => wasm(&[], 200),
        "native" => {
            let mut chain = wasmesh_benchmarks::native::NativeChain::new(&case)?;
            chain.check(case.expect_status == 200)?;
            chain.run(n)
        }
        other => match other
            .strip_prefix("passthrough-")
            .and_then(|k| k.parse::<usize>().ok())
        {
            Some(k) => wasm(&wasmesh_benchmarks::cases::passthrough(k), 200),
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
    let mut jwt_scale = false;
    let mut baseline_wasm: Option<String> = None;
    // 0: no instruction counts, 1: with the report, 2: only them.
    let mut instructions = 0;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => mode = Mode::Quick,
            "--jwt-scale" => jwt_scale = true,
            "--baseline-wasm" => baseline_wasm = args.next(),
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
            "--instructions" => instructions = 1,
            "--instructions-only" => instructions = 2,
            "--run-case" => {
                // For profilers: only send requests of one case through the harness.
                let id = args.next().unwrap_or_default();
                let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
                let host_calls = args.next().as_deref() == Some("--host-calls");
                std::process::exit(match run_case_only(&id, n, host_calls) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("{e}");
                        1
                    }
                });
            }
            other => {
                eprintln!("unknown argument `{other}`\nusage: wasmesh-benchmarks [--quick|--smoke] [--out FILE] [--serve-output FILE] [--serve-note TEXT] [--command TEXT] [--instructions|--instructions-only] [--jwt-scale [--baseline-wasm FILE]]\n       wasmesh-benchmarks --run-case ID[:empty|:native|:passthrough-K] N [--host-calls]");
                std::process::exit(2);
            }
        }
    }
    if jwt_scale {
        // Only the JWT-at-scale table (issue 19), printed as Markdown.
        let t = match mode {
            Mode::Full => wasmesh_benchmarks::timing::Timing::full(),
            Mode::Quick => wasmesh_benchmarks::timing::Timing::quick(),
            Mode::Smoke => wasmesh_benchmarks::timing::Timing::smoke(),
        };
        let tokens = if matches!(mode, Mode::Smoke) {
            200
        } else {
            wasmesh_benchmarks::jwt_scale::TOKENS
        };
        let say = |m: &str| eprintln!("[bench] {m}");
        match wasmesh_benchmarks::jwt_scale::run(&t, tokens, baseline_wasm.as_deref(), &say) {
            Ok((rows, version)) => {
                print!(
                    "{}",
                    wasmesh_benchmarks::jwt_scale::markdown(&rows, &version)
                );
                say("jwt at scale: cache memory per entry");
                match wasmesh_benchmarks::jwt_scale::cache_memory(tokens) {
                    Ok((per, len, n)) => println!(
                        "\nVerified-token cache: {per:.0} bytes of linear memory per entry \
                         ({n} entries of {len}-byte RS256 tokens, `cacheSize` {tokens}).",
                    ),
                    Err(e) => eprintln!("cache memory: {e}"),
                }
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("benchmark failed: {e}");
                std::process::exit(1);
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
    let counts = || {
        let exe = std::env::current_exe()
            .map_err(|e| format!("current_exe: {e}"))?
            .to_string_lossy()
            .to_string();
        wasmesh_benchmarks::profile::instruction_table(&exe, &|w| eprintln!("[bench] {w}"))
    };
    if instructions == 2 {
        let md = match counts() {
            Ok(rows) => wasmesh_benchmarks::report::instructions_markdown(&rows, None),
            Err(e) => {
                eprintln!("instruction counts failed: {e}");
                std::process::exit(1);
            }
        };
        match out {
            Some(p) => {
                if let Err(e) = std::fs::write(&p, md) {
                    eprintln!("{p}: {e}");
                    std::process::exit(1);
                }
            }
            None => print!("{md}"),
        }
        return;
    }
    match run(&opts) {
        Ok(mut r) => {
            if instructions == 1 {
                match counts() {
                    Ok(rows) => r.instructions = rows,
                    Err(e) => r.instructions_note = Some(e),
                }
            } else {
                r.instructions_note = Some(
                    "needs valgrind; `scripts/bench.sh` measures them in full mode, \
                     `wasmesh-benchmarks --instructions-only` alone"
                        .into(),
                );
            }
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
