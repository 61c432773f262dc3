//! The `wasmesh` command: runs scenario files, benchmarks chains, packages
//! filters as OCI images, validates their configurations and prints their
//! JSON Schemas.

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
    /// Write a filter's .wasm as an OCI image layout (the Wasm image "compat" variant
    /// Istio's WasmPlugin pulls) and print the sha256 for `WasmPlugin.sha256`.
    Package {
        /// jwt_authn, rbac, header_router, fault_injection or custom_metrics (crate names
        /// and jwt/router/fault/metrics work too). Omit with --all.
        filter: Option<String>,
        /// The module to package (default: the artifact directory's <filter>.wasm).
        #[arg(long)]
        wasm: Option<PathBuf>,
        /// Output directory (default: target/oci/<filter>; with --all: <out>/<filter>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Tag recorded in the layout's index.json.
        #[arg(long, default_value = wasmesh_cli::package::DEFAULT_TAG)]
        tag: String,
        /// Package all five filters.
        #[arg(long)]
        all: bool,
        /// Directory of `<name>.wasm` artifacts.
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
        /// Print only the WasmPlugin.sha256 value(s).
        #[arg(long)]
        digest_only: bool,
        /// Check the `sha256` of every WasmPlugin in this directory against the images
        /// (exit non-zero if one is stale).
        #[arg(long, value_name = "DIR")]
        check_manifests: Option<PathBuf>,
        /// Rewrite stale `sha256` values of the WasmPlugins in this directory.
        #[arg(long, value_name = "DIR")]
        update_manifests: Option<PathBuf>,
    },
    /// Check filter configurations offline with the filter's own code (its .wasm runs
    /// proxy_on_configure in the harness): `validate FILTER CONFIG.json`, or WasmPlugin
    /// YAML files, Envoy bootstraps and directories of them (`validate manifests/`).
    Validate {
        /// [FILTER] FILE...: the filter is needed for plain configuration files.
        #[arg(required = true, value_name = "FILTER|FILE")]
        args: Vec<String>,
        /// Directory of `<name>.wasm` artifacts.
        #[arg(long)]
        wasm_dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of a filter's configuration (schemas/<filter>.schema.json),
    /// e.g. for editor validation of plugin configurations.
    Schema {
        /// jwt_authn, rbac, header_router, fault_injection or custom_metrics (crate names
        /// and jwt/router/fault/metrics work too).
        filter: String,
    },
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
        /// Seed of the random sources, for every scenario (overrides a
        /// scenario's `seed:`; default 0). A failed scenario prints its seed.
        #[arg(long)]
        seed: Option<u64>,
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
        /// Seed of the random sources (plugins' random numbers, weighted
        /// routes, load balancing): the same seed and requests draw the same
        /// numbers. Random by default.
        #[arg(long)]
        seed: Option<u64>,
        /// Reload the plugin chain when the file or a `.wasm` changes.
        #[arg(long)]
        watch: bool,
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
        Cmd::Package {
            filter,
            wasm,
            out,
            tag,
            all,
            wasm_dir,
            digest_only,
            check_manifests,
            update_manifests,
        } => package_cmd(PackageArgs {
            filter,
            wasm,
            out,
            tag,
            all,
            wasm_dir,
            digest_only,
            check_manifests,
            update_manifests,
        }),
        Cmd::Validate { args, wasm_dir } => validate_cmd(args, wasm_dir),
        Cmd::Schema { filter } => match wasmesh_cli::package::Filter::find(&filter) {
            Some(f) => {
                print!("{}", wasmesh_cli::validate::schema(f));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "schema: unknown filter `{filter}` (jwt_authn, rbac, header_router, fault_injection, custom_metrics)"
                );
                ExitCode::FAILURE
            }
        },
        Cmd::Test {
            files,
            wasm_dir,
            verbose,
            seed,
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
                let report = match wasmesh::scenario::Scenario::from_file(p).and_then(|mut s| {
                    if seed.is_some() {
                        s.spec.seed = seed;
                    }
                    wasmesh::scenario::run(&s, &opts)
                }) {
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
            seed,
            watch,
        } => {
            let overrides = wasmesh_serve::CliOverrides {
                listen,
                admin,
                workers,
                access_log,
                quiet,
                seed,
                watch,
            };
            match wasmesh_serve::run_cli(&config, wasm_dir, overrides) {
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
            let mut opts = wasmesh_cli::demo::DemoOptions {
                wasm_dir,
                echo_plugin_logs: verbose,
                idp_only,
                ..Default::default()
            };
            if let Some(c) = config {
                opts.config = c;
            }
            match wasmesh_cli::demo::run_cli(opts, keep, !no_tour) {
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
            match wasmesh_cli::bench::bench_file(&scenario, &opts, iterations, runs, baseline) {
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

struct PackageArgs {
    filter: Option<String>,
    wasm: Option<PathBuf>,
    out: Option<PathBuf>,
    tag: String,
    all: bool,
    wasm_dir: Option<PathBuf>,
    digest_only: bool,
    check_manifests: Option<PathBuf>,
    update_manifests: Option<PathBuf>,
}

fn package_cmd(a: PackageArgs) -> ExitCode {
    use wasmesh_cli::package::{package, Filter, FILTERS};
    let filters: Vec<Filter> = match (&a.filter, a.all) {
        (Some(_), true) => {
            eprintln!("package: name a filter or use --all, not both");
            return ExitCode::FAILURE;
        }
        (Some(name), false) => match Filter::find(name) {
            Some(f) => vec![f],
            None => {
                eprintln!(
                    "package: unknown filter `{name}` (one of {})",
                    Filter::names()
                );
                return ExitCode::FAILURE;
            }
        },
        (None, true) => FILTERS.to_vec(),
        (None, false) if a.check_manifests.is_some() || a.update_manifests.is_some() => {
            FILTERS.to_vec()
        }
        (None, false) => {
            eprintln!("package: name a filter ({}) or use --all", Filter::names());
            return ExitCode::FAILURE;
        }
    };
    if a.wasm.is_some() && filters.len() > 1 {
        eprintln!("package: --wasm packages one filter");
        return ExitCode::FAILURE;
    }
    let wasm_dir = a
        .wasm_dir
        .unwrap_or_else(wasmesh::scenario::default_wasm_dir);
    let mut digests = std::collections::BTreeMap::new();
    for f in &filters {
        let wasm = a
            .wasm
            .clone()
            .unwrap_or_else(|| wasm_dir.join(format!("{}.wasm", f.artifact)));
        let out = match (&a.out, filters.len()) {
            (Some(o), 1) => Some(o.clone()),
            (Some(o), _) => Some(o.join(f.artifact)),
            (None, _) => None,
        };
        let p = match package(*f, Some(&wasm), out.as_deref(), &a.tag) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("package: {e}");
                return ExitCode::FAILURE;
            }
        };
        if a.digest_only {
            println!("{}", p.image.digest_hex());
        } else {
            println!(
                "{}: wrote {} (OCI image layout, tag {})",
                f.artifact,
                p.out.display(),
                p.image.tag
            );
            println!("  WasmPlugin.sha256:  {}", p.image.digest_hex());
            println!("  image digest:       {}", p.image.digest());
            println!(
                "  plugin.wasm sha256: {}  (for an http(s):// url only)",
                p.image.wasm_sha256
            );
            println!(
                "  push: skopeo copy oci:{}:{} docker://REGISTRY/wasmesh/{}:{}",
                p.out.display(),
                p.image.tag,
                f.crate_name,
                p.image.tag
            );
        }
        digests.insert(f.artifact, p.image.digest_hex());
    }
    let (dir, update) = match (&a.check_manifests, &a.update_manifests) {
        (Some(d), None) => (d, false),
        (None, Some(d)) => (d, true),
        (None, None) => return ExitCode::SUCCESS,
        (Some(_), Some(_)) => {
            eprintln!("package: --check-manifests or --update-manifests, not both");
            return ExitCode::FAILURE;
        }
    };
    let lookup = |f: Filter| {
        digests
            .get(f.artifact)
            .cloned()
            .ok_or_else(|| format!("{} was not packaged", f.artifact))
    };
    match wasmesh_cli::package::sync_wasm_plugin_digests(dir, &lookup, update) {
        Ok(stale) if stale.is_empty() => {
            println!("{}: every WasmPlugin.sha256 matches", dir.display());
            ExitCode::SUCCESS
        }
        Ok(stale) => {
            for s in &stale {
                println!(
                    "{}: WasmPlugin {} ({}): sha256 {} -> {}{}",
                    s.file.display(),
                    s.plugin,
                    s.filter,
                    if s.written.is_empty() {
                        "(none)"
                    } else {
                        &s.written
                    },
                    s.expected,
                    if update { " (updated)" } else { "" }
                );
            }
            if update {
                ExitCode::SUCCESS
            } else {
                println!(
                    "stale: run `wasmesh package --update-manifests {}`",
                    dir.display()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("package: {e}");
            ExitCode::FAILURE
        }
    }
}

fn validate_cmd(args: Vec<String>, wasm_dir: Option<PathBuf>) -> ExitCode {
    use wasmesh_cli::package::Filter;
    let mut args = args.into_iter().peekable();
    let mut filter = None;
    if let Some(first) = args.peek() {
        if !std::path::Path::new(first).exists() {
            match Filter::find(first) {
                Some(f) => {
                    filter = Some(f);
                    args.next();
                }
                None => {
                    eprintln!(
                        "validate: `{first}` is neither a file nor a filter ({})",
                        Filter::names()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let paths: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if paths.is_empty() {
        eprintln!("validate: name a configuration file");
        return ExitCode::FAILURE;
    }
    let opts = wasmesh::scenario::RunOptions {
        wasm_dir,
        echo_logs: false,
    };
    match wasmesh_cli::validate::validate_paths(filter, &paths, &opts) {
        Ok(outcomes) => {
            for o in &outcomes {
                print!("{o}");
            }
            let bad = outcomes.iter().filter(|o| !o.accepted).count();
            println!(
                "{} configuration(s) checked, {} invalid",
                outcomes.len(),
                bad
            );
            if bad == 0 && !outcomes.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("validate: {e}");
            ExitCode::FAILURE
        }
    }
}
