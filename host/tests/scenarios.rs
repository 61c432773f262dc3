//! Runs every scenario file of the repository as one test each:
//! `examples/**`, `filters/*/scenarios/**` and `host/scenarios/**`.
//! The `.wasm` artifacts must have been built first (`bash scripts/build-wasm.sh`,
//! which the test command does).

use libtest_mimic::{Arguments, Failed, Trial};
use std::path::PathBuf;
use wasmesh::scenario::{
    discover, ensure_artifacts, looks_like_scenario, run, workspace_root, RunOptions, Scenario,
};

fn main() {
    let args = Arguments::from_args();
    if let Err(e) = ensure_artifacts() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let root = workspace_root().expect("workspace root");
    let mut dirs = vec![root.join("examples"), root.join("host/scenarios")];
    if let Ok(rd) = std::fs::read_dir(root.join("filters")) {
        for e in rd.flatten() {
            dirs.push(e.path().join("scenarios"));
        }
    }
    let files: Vec<PathBuf> = discover(&dirs)
        .into_iter()
        .filter(|p| looks_like_scenario(p))
        .collect();
    let trials = files
        .into_iter()
        .map(|path| {
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            Trial::test(name, move || {
                let s = Scenario::from_file(&path).map_err(Failed::from)?;
                let report = run(&s, &RunOptions::default()).map_err(Failed::from)?;
                if report.passed() {
                    Ok(())
                } else {
                    Err(Failed::from(report.to_string()))
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
