//! Where a scenario's modules come from: the workspace's release `.wasm`
//! artifacts (and the check that they are built and up to date), or a path
//! next to the scenario file.

use std::path::{Path, PathBuf};

/// Where artifacts named like `jwt_authn` are found.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Directory of `<name>.wasm` artifacts (default: the workspace's
    /// `target/wasm32-wasip1/release`, or `$WASMESH_WASM_DIR`).
    pub wasm_dir: Option<PathBuf>,
    /// Print plugin log lines to stderr as they happen.
    pub echo_logs: bool,
}

/// Default artifact directory: `$WASMESH_WASM_DIR`, else
/// `$CARGO_TARGET_DIR/wasm32-wasip1/release`, else the `target/` of the
/// enclosing Cargo workspace.
pub fn default_wasm_dir() -> PathBuf {
    if let Ok(d) = std::env::var("WASMESH_WASM_DIR") {
        return PathBuf::from(d);
    }
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return Path::new(&t).join("wasm32-wasip1/release");
    }
    workspace_root()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("target/wasm32-wasip1/release")
}

/// The enclosing Cargo workspace (a `Cargo.toml` with `[workspace]`),
/// searched from the current directory and from this crate's source.
pub fn workspace_root() -> Option<PathBuf> {
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    for start in starts.into_iter().flatten() {
        let mut dir: Option<&Path> = Some(&start);
        while let Some(d) = dir {
            if std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|s| s.contains("[workspace]"))
            {
                return Some(d.to_path_buf());
            }
            dir = d.parent();
        }
    }
    None
}

/// The wasm crates of the workspace and their artifact names.
pub const WASM_CRATES: &[&str] = &[
    "jwt-authn",
    "rbac",
    "header-router",
    "fault-injection",
    "custom-metrics",
    "probe",
];

/// Checks that the workspace's `.wasm` artifacts ([`WASM_CRATES`]) are
/// built in [`default_wasm_dir`] and not older than any source file they
/// were built from — the files cargo lists in the artifact's dep-info file
/// (`<name>.d` next to it), so a change in the crate or in any workspace
/// crate it uses counts, and a test-only file does not: a test never runs a
/// stale module without saying so. It builds nothing (tests never run a
/// nested `cargo build`): `bash scripts/build-wasm.sh` builds them, and the
/// test command runs it before the tests. Returns which file is missing or
/// stale and that command. With `WASMESH_WASM_DIR` set, only presence is
/// checked.
pub fn ensure_artifacts() -> Result<(), String> {
    let dir = default_wasm_dir();
    let check_sources = std::env::var_os("WASMESH_WASM_DIR").is_none();
    let mut problems = Vec::new();
    for c in WASM_CRATES {
        let name = c.replace('-', "_");
        let wasm = dir.join(format!("{name}.wasm"));
        let Ok(built) = std::fs::metadata(&wasm).and_then(|m| m.modified()) else {
            problems.push(format!("{} is missing", wasm.display()));
            continue;
        };
        if !check_sources {
            continue;
        }
        let dep_info = std::fs::read_to_string(dir.join(format!("{name}.d"))).unwrap_or_default();
        if let Some(newer) = newer_source(&dep_info, built) {
            problems.push(format!(
                "{} is older than {}",
                wasm.display(),
                newer.display()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the .wasm artifacts are not built or not up to date ({}): run \
             `bash scripts/build-wasm.sh` first (the test command does)",
            problems.join("; ")
        ))
    }
}

/// The first source listed in a Make-style dep-info file (`target: dep dep
/// ...`, spaces in paths escaped with `\`) that was modified after `t`.
fn newer_source(dep_info: &str, t: std::time::SystemTime) -> Option<PathBuf> {
    let (_, deps) = dep_info.lines().next()?.split_once(": ")?;
    let mut paths = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => cur.extend(chars.next()),
            ' ' => paths.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    paths.push(cur);
    paths
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .find(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > t)
        })
}

/// Resolves a `wasm:` value: an artifact name, or a path (relative to the
/// scenario file).
pub fn resolve_wasm(spec: &str, base: &Path, opts: &RunOptions) -> Result<PathBuf, String> {
    let is_path = spec.contains('/') || spec.ends_with(".wasm") || spec.ends_with(".wat");
    let path = if is_path {
        let p = Path::new(spec);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    } else {
        opts.wasm_dir
            .clone()
            .unwrap_or_else(default_wasm_dir)
            .join(format!("{spec}.wasm"))
    };
    if !path.exists() {
        return Err(if is_path {
            format!("wasm module {} not found", path.display())
        } else {
            format!(
                "wasm artifact `{spec}` not found at {} — build it with `bash scripts/build-wasm.sh` (or pass --wasm-dir)",
                path.display()
            )
        });
    }
    Ok(path)
}
