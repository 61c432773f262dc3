//! `wasmesh-benchmarks [--quick|--smoke] [--out FILE] [--serve-output FILE]`:
//! runs every benchmark and writes BENCHMARKS.md (stdout without `--out`).
//! Normally run by `scripts/bench.sh`, which builds what it needs first.

use wasmesh_benchmarks::report::{run, Mode, Options};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mode = Mode::Full;
    let mut out = None;
    let mut serve = None;
    let mut serve_note = None;
    let mut command = "bash scripts/bench.sh".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => mode = Mode::Quick,
            "--smoke" => mode = Mode::Smoke,
            "--out" => out = args.next(),
            "--serve-output" => serve = args.next(),
            "--serve-note" => serve_note = args.next(),
            "--command" => command = args.next().unwrap_or(command),
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
