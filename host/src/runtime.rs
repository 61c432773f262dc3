//! The wasmtime engine, the linker with every host function, and compiled
//! modules. One `Runtime` serves any number of hosts and VMs.

use crate::vm::VmState;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::{Config, Engine, InstancePre, Linker, Module};

/// Largest linear memory a VM may grow to (Envoy's limit: 1 GiB).
pub const MAX_MEMORY_BYTES: usize = 1024 * 1024 * 1024;
/// Period of the epoch ticker that bounds callback run time.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Default time budget of one callback.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// A compiled module ready to instantiate.
#[derive(Clone)]
pub struct LoadedModule {
    pub path: PathBuf,
    pub pre: InstancePre<VmState>,
    /// Hash of the bytes (VM sharing key).
    pub digest: u64,
    pub size: usize,
}

/// Engine + linker + module cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<VmState>,
    modules: Mutex<HashMap<PathBuf, (std::time::SystemTime, LoadedModule)>>,
    budget_ticks: u64,
}

impl Runtime {
    /// A runtime whose callbacks may run for at most `budget` each (a module
    /// in an endless loop is interrupted and treated as a trap).
    pub fn new(budget: Duration) -> Result<Arc<Runtime>, String> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(20));
        let engine = Engine::new(&config).map_err(|e| format!("wasmtime engine: {e}"))?;
        start_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        crate::abi::link(&mut linker).map_err(|e| format!("linking host functions: {e}"))?;
        let ticks = (budget.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        Ok(Arc::new(Runtime {
            engine,
            linker,
            modules: Mutex::new(HashMap::new()),
            budget_ticks: ticks,
        }))
    }

    /// The process-wide default runtime.
    pub fn shared() -> Result<Arc<Runtime>, String> {
        static RT: OnceLock<Result<Arc<Runtime>, String>> = OnceLock::new();
        RT.get_or_init(|| Runtime::new(DEFAULT_BUDGET)).clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn budget_ticks(&self) -> u64 {
        self.budget_ticks
    }

    /// Compiles (or returns the cached compilation of) the module at `path`.
    pub fn load(&self, path: &Path) -> Result<LoadedModule, String> {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        if let Some((t, m)) = self.modules.lock().expect("lock").get(path) {
            if *t == mtime {
                return Ok(m.clone());
            }
        }
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let m = self.load_bytes(path, &bytes)?;
        self.modules
            .lock()
            .expect("lock")
            .insert(path.to_path_buf(), (mtime, m.clone()));
        Ok(m)
    }

    /// Compiles a module from bytes (binary or text format).
    pub fn load_bytes(&self, name: &Path, bytes: &[u8]) -> Result<LoadedModule, String> {
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| format!("Failed to load Wasm module {}: {e:#}", name.display()))?;
        check_abi_imports(&module).map_err(|e| {
            format!(
                "Failed to load Wasm module {} due to a missing import: {e}",
                name.display()
            )
        })?;
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            format!(
                "Failed to load Wasm module {} due to a missing import: {e:#}",
                name.display()
            )
        })?;
        Ok(LoadedModule {
            path: name.to_path_buf(),
            pre,
            digest: wasmesh_digest(bytes),
            size: bytes.len(),
        })
    }
}

/// Host functions that exist only for some ABI versions, as
/// proxy-wasm-cpp-host registers them: the ABI 0.1 names only for 0.1,
/// `proxy_get_log_level` only for 0.2.1.
fn check_abi_imports(module: &Module) -> Result<(), String> {
    let abi_021 = module
        .exports()
        .any(|e| e.name() == "proxy_abi_version_0_2_1");
    for imp in module.imports() {
        if imp.module() != "env" {
            continue;
        }
        let name = imp.name();
        let refused = match name {
            "proxy_get_configuration"
            | "proxy_continue_request"
            | "proxy_continue_response"
            | "proxy_clear_route_cache" => true,
            "proxy_get_log_level" => !abi_021,
            _ => false,
        };
        if refused {
            return Err(format!(
                "env.{name} is not provided for this module's ABI version"
            ));
        }
    }
    Ok(())
}

fn wasmesh_digest(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmesh-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => return,
            }
        })
        .expect("spawn epoch ticker");
}
