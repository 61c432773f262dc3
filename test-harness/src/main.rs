//! The `wasmesh` command: runs scenario files, benchmarks chains.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "wasmesh",
    version,
    about = "Proxy-Wasm host on wasmtime with Envoy's semantics"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenario files (or directories of them); exit non-zero if any expectation fails.
    Test {
        /// Scenario files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Directory of `<name>.wasm` artifacts.
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
        /// Print plugin log lines as they happen.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Measure the per-request cost of a scenario's chain (ns/request, median of several runs).
    Bench {
        scenario: PathBuf,
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
        /// Requests per run.
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Also measure the same requests with an empty chain and report the difference.
        #[arg(long)]
        baseline: bool,
    },
    /// Run the filter chain on real HTTP traffic: a local proxy configured by a
    /// wasmesh serve YAML file or an Envoy bootstrap (see docs/serve.md).
    Serve {
        /// Configuration file (wasmesh serve format, or an Envoy bootstrap with `static_resources`).
        config: PathBuf,
        /// Directory of `<name>.wasm` artifacts.
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
        /// Listener address (overrides the file), e.g. 127.0.0.1:10000.
        #[arg(long)]
        listen: Option<String>,
        /// Admin listener address (overrides the file), e.g. 127.0.0.1:9901.
        #[arg(long)]
        admin: Option<String>,
        /// Worker threads (overrides the file).
        #[arg(long)]
        workers: Option<usize>,
        /// Access log target: stdout, stderr, off or a file path (overrides the file).
        #[arg(long)]
        access_log: Option<String>,
        /// Do not print plugin log lines.
        #[arg(long, short)]
        quiet: bool,
    },
    /// The demo: an identity provider, echo upstreams and `wasmesh serve` with
    /// the five filters (examples/demo/serve.yaml); drives a tour of requests,
    /// prints what happened and exits non-zero if anything was not as expected.
    Demo {
        /// Leave everything running on the configuration's ports and print
        /// ready-to-paste curl commands, until Ctrl-C.
        #[arg(long)]
        keep: bool,
        /// The demo's serve configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Directory of `<name>.wasm` artifacts.
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
        /// Print plugin log lines.
        #[arg(long, short)]
        verbose: bool,
        /// Do not run the tour (with --keep: only run the servers).
        #[arg(long)]
        no_tour: bool,
        /// Start only the identity provider; the other clusters are services
        /// already listening on their configured endpoints (benchmarks).
        #[arg(long)]
        idp_only: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Test {
            files,
            wasm_dir,
            verbose,
        } => {
            let opts = wasmesh::scenario::RunOptions {
                wasm_dir,
                echo_logs: verbose,
            };
            let mut paths = Vec::new();
            for f in files {
                if f.is_dir() {
                    paths.extend(
                        wasmesh::scenario::discover(&[f])
                            .into_iter()
                            .filter(|p| wasmesh::scenario::looks_like_scenario(p)),
                    );
                } else {
                    paths.push(f);
                }
            }
            let (mut steps, mut failed) = (0, 0);
            for p in &paths {
                let report = match wasmesh::scenario::Scenario::from_file(p)
                    .and_then(|s| wasmesh::scenario::run(&s, &opts))
                {
                    Ok(r) => r,
                    Err(e) => {
                        println!("{}\n  FAIL  {e}", p.display());
                        failed += 1;
                        continue;
                    }
                };
                print!("{report}");
                steps += report.steps.len();
                failed += report.failed_count();
            }
            println!(
                "\n{} scenario file(s), {steps} step(s), {failed} failed",
                paths.len()
            );
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Serve {
            config,
            wasm_dir,
            listen,
            admin,
            workers,
            access_log,
            quiet,
        } => {
            let overrides = wasmesh::serve::CliOverrides {
                listen,
                admin,
                workers,
                access_log,
                quiet,
            };
            match wasmesh::serve::run_cli(&config, wasm_dir, overrides) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wasmesh serve: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Demo {
            keep,
            config,
            wasm_dir,
            verbose,
            no_tour,
            idp_only,
        } => {
            let mut opts = wasmesh::serve::demo::DemoOptions {
                wasm_dir,
                echo_plugin_logs: verbose,
                idp_only,
                ..Default::default()
            };
            if let Some(c) = config {
                opts.config = c;
            }
            match wasmesh::serve::demo::run_cli(opts, keep, !no_tour) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("wasmesh demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Bench {
            scenario,
            wasm_dir,
            iterations,
            runs,
            baseline,
        } => {
            let opts = wasmesh::scenario::RunOptions {
                wasm_dir,
                echo_logs: false,
            };
            match wasmesh::bench::bench_file(&scenario, &opts, iterations, runs, baseline) {
                Ok(r) => {
                    println!("{r}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
