//! The wasmtime engine, the linker with every host function, and compiled
//! modules. One `Runtime` serves any number of hosts and VMs.

use crate::vm::VmState;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::{Config, Engine, Extern, ExternType, InstancePre, Linker, Module};

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

/// Host call counting (measurement only, see [`count_host_calls`]).
static COUNTING: AtomicBool = AtomicBool::new(false);
static HOST_CALLS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Makes runtimes created from now on count every host function call by
/// name (`env.proxy_get_header_map_value`, `wasi_snapshot_preview1.fd_write`,
/// ...). For measurement (`wasmesh-benchmarks --run-case ... --host-calls`):
/// each call then goes through a dynamic shim, which is slow.
pub fn count_host_calls(on: bool) {
    COUNTING.store(on, Ordering::SeqCst);
}

/// Host calls counted since the last call, by name (and resets the counts).
pub fn take_host_call_counts() -> BTreeMap<String, u64> {
    std::mem::take(&mut *HOST_CALLS.lock().expect("lock"))
}

/// Engine + linker + module cache.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<VmState>>,
    /// Whether modules are linked through counting shims.
    counting: bool,
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
            linker: Arc::new(linker),
            counting: COUNTING.load(Ordering::SeqCst),
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
        let pre = if self.counting {
            self.counting_linker(&module)
                .and_then(|l| l.instantiate_pre(&module))
                .map_err(|e| format!("{}: counting host calls: {e:#}", name.display()))?
        } else {
            pre
        };
        Ok(LoadedModule {
            path: name.to_path_buf(),
            pre,
            digest: wasmesh_digest(bytes),
            size: bytes.len(),
        })
    }
}

impl Runtime {
    /// A linker for `module` whose every imported function counts the call
    /// and then calls the real host function.
    fn counting_linker(&self, module: &Module) -> wasmtime::Result<Linker<VmState>> {
        let mut l = Linker::new(&self.engine);
        for imp in module.imports() {
            let ExternType::Func(ty) = imp.ty() else {
                continue;
            };
            let (m, n) = (imp.module().to_string(), imp.name().to_string());
            let key = format!("{m}.{n}");
            let base = self.linker.clone();
            l.func_new(
                &m.clone(),
                &n.clone(),
                ty,
                move |mut caller, params, results| {
                    *HOST_CALLS
                        .lock()
                        .expect("lock")
                        .entry(key.clone())
                        .or_default() += 1;
                    let f = base
                        .get(&mut caller, &m, &n)
                        .into_iter()
                        .find_map(Extern::into_func)
                        .ok_or_else(|| wasmtime::Error::msg(format!("no host function {m}.{n}")))?;
                    f.call(&mut caller, params, results)
                },
            )?;
        }
        Ok(l)
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
