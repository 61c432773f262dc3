//! Project Wycheproof's signature and MAC vectors against `wasmesh-jose`, the
//! JWS verifier of this filter, in both builds:
//!
//! - `native`: the host build of the crate;
//! - `wasm32`: the crate compiled for `wasm32-wasip1` with the release profile
//!   that ships the filters (`test-plugins/jose-bench`, built by
//!   `scripts/build-wasm.sh`), run by the harness's wasmtime engine
//!   (`wasmesh::Runtime`, with its per-call time budget).
//!
//! Keys are built the way this filter builds them: every vector's public key
//! (or HMAC secret) is written as a JWK and decoded by
//! [`jwt_authn::jwks::KeySet`] (the code that reads `local_jwks` and fetched
//! JWKS); the wasm module gets the same JWK members, base64url-decoded with the
//! crate's decoder, and calls the same key constructors.
//!
//! Every test of every group that a JWS algorithm can express runs: `valid`
//! vectors must verify, `invalid` ones must be refused, `acceptable` ones are
//! reported (how many were accepted). Groups no JWS algorithm expresses
//! (SHA-1/SHA-224, PSS with another MGF hash or salt length, truncated MAC
//! tags) are counted as "not JWS" and not run. One trial per file and build,
//! each printing one line of counts.
//!
//! The vectors are not in this repository: they are read from
//! `$WYCHEPROOF_DIR`, or else from `shared/wycheproof` next to the checkout
//! (`<workspace>/../shared/wycheproof`, or next to any ancestor of it). A
//! missing folder or a missing `jose_bench.wasm` fails the test with a
//! message; nothing is skipped.

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmesh_jose::{base64url_decode, verify, Algorithm};

/// One vector, ready for both builds.
struct Vector {
    id: u64,
    alg: Algorithm,
    /// The JWK (as the filter reads it).
    jwk: Value,
    msg: Vec<u8>,
    sig: Vec<u8>,
    expect: Expect,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Valid,
    Invalid,
    Acceptable,
}

/// A file's vectors and how many were left out (no JWS algorithm).
struct FileVectors {
    vectors: Vec<Vector>,
    not_jws: usize,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the vectors are, or why there are none.
fn vector_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("WYCHEPROOF_DIR") {
        let d = PathBuf::from(d);
        return if d.is_dir() {
            Ok(d)
        } else {
            Err(format!("WYCHEPROOF_DIR={} is not a directory", d.display()))
        };
    }
    let root = root()
        .canonicalize()
        .map_err(|e| format!("workspace: {e}"))?;
    let mut tried = Vec::new();
    for dir in root.ancestors().skip(1) {
        let d = dir.join("shared/wycheproof");
        if d.is_dir() {
            return Ok(d);
        }
        tried.push(d.display().to_string());
    }
    Err(format!(
        "the Wycheproof vectors are missing: none of {} exists. Clone \
         github.com/C2SP/wycheproof and point WYCHEPROOF_DIR at its testvectors_v1/ \
         (see SOURCE.md in the shared folder)",
        tried.join(", ")
    ))
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Big-endian unsigned integer without its leading zero bytes (JWK `n`, `e`).
fn unsigned(hex_str: &str) -> Vec<u8> {
    let b = hex(hex_str);
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

fn sha_bits(name: Option<&str>) -> Option<u32> {
    match name? {
        "SHA-256" => Some(256),
        "SHA-384" => Some(384),
        "SHA-512" => Some(512),
        _ => None,
    }
}

/// The JWS algorithm and JWK of a group, or None when no JWS algorithm
/// expresses it.
fn group_key(g: &Value) -> Option<(Algorithm, Option<Value>)> {
    let s = |k: &str| g.get(k).and_then(Value::as_str);
    let rsa_jwk = || -> Option<Value> {
        let pk = &g["publicKey"];
        Some(json!({
            "kty": "RSA",
            "n": b64url(&unsigned(pk["modulus"].as_str()?)),
            "e": b64url(&unsigned(pk["publicExponent"].as_str()?)),
        }))
    };
    match s("type")? {
        "RsassaPkcs1Verify" => {
            let alg = match sha_bits(s("sha"))? {
                256 => Algorithm::RS256,
                384 => Algorithm::RS384,
                _ => Algorithm::RS512,
            };
            Some((alg, rsa_jwk()))
        }
        "RsassaPssVerify" | "RsassaPssWithParametersVerify" => {
            let bits = sha_bits(s("sha"))?;
            // JWS PS*: MGF1 with the same hash, salt as long as the hash.
            if s("mgf") != Some("MGF1")
                || sha_bits(s("mgfSha")) != Some(bits)
                || g["sLen"].as_u64() != Some(bits as u64 / 8)
            {
                return None;
            }
            let alg = match bits {
                256 => Algorithm::PS256,
                384 => Algorithm::PS384,
                _ => Algorithm::PS512,
            };
            Some((alg, rsa_jwk()))
        }
        "EcdsaP1363Verify" => {
            let alg = match (g["publicKey"]["curve"].as_str()?, sha_bits(s("sha"))?) {
                ("secp256r1", 256) => Algorithm::ES256,
                ("secp384r1", 384) => Algorithm::ES384,
                _ => return None,
            };
            let jwk = match g.get("publicKeyJwk") {
                Some(j) => j.clone(),
                // A few groups (the r/x reduction edge cases) give only the
                // coordinates: the JWK a key server would publish for them.
                None => {
                    let len = if alg == Algorithm::ES256 { 32 } else { 48 };
                    let coord = |name: &str| -> Option<String> {
                        let v = unsigned(g["publicKey"][name].as_str()?);
                        (v.len() <= len).then(|| {
                            let mut padded = vec![0u8; len - v.len()];
                            padded.extend_from_slice(&v);
                            b64url(&padded)
                        })
                    };
                    let crv = if alg == Algorithm::ES256 {
                        "P-256"
                    } else {
                        "P-384"
                    };
                    json!({"kty": "EC", "crv": crv, "x": coord("wx")?, "y": coord("wy")?})
                }
            };
            Some((alg, Some(jwk)))
        }
        "EddsaVerify" => {
            if g["publicKey"]["curve"].as_str()? != "edwards25519" {
                return None;
            }
            Some((Algorithm::EdDSA, Some(g.get("publicKeyJwk")?.clone())))
        }
        _ => None,
    }
}

fn load(path: &Path) -> Result<FileVectors, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value = serde_json::from_slice(&text).map_err(|e| format!("{e}"))?;
    let algorithm = doc["algorithm"].as_str().unwrap_or_default().to_string();
    let groups = doc["testGroups"].as_array().ok_or("no testGroups")?;
    let mut out = FileVectors {
        vectors: Vec::new(),
        not_jws: 0,
    };
    for g in groups {
        let tests = g["tests"].as_array().ok_or("no tests")?;
        // HMAC: one key per test; the tag must be the full hash (HS*).
        let hmac = match algorithm.as_str() {
            "HMACSHA256" => Some((256, Algorithm::HS256)),
            "HMACSHA384" => Some((384, Algorithm::HS384)),
            "HMACSHA512" => Some((512, Algorithm::HS512)),
            _ => None,
        };
        let key = match hmac {
            Some((bits, alg)) if g["tagSize"].as_u64() == Some(bits) => Some((alg, None)),
            Some(_) => None,
            None => group_key(g),
        };
        let Some((alg, jwk)) = key else {
            out.not_jws += tests.len();
            continue;
        };
        for t in tests {
            let expect = match t["result"].as_str() {
                Some("valid") => Expect::Valid,
                Some("invalid") => Expect::Invalid,
                Some("acceptable") => Expect::Acceptable,
                other => return Err(format!("tcId {}: result {other:?}", t["tcId"])),
            };
            let jwk = match &jwk {
                Some(j) => j.clone(),
                None => json!({"kty": "oct", "k": b64url(&hex(t["key"].as_str().unwrap_or(""))) }),
            };
            let sig = t.get("sig").or_else(|| t.get("tag"));
            out.vectors.push(Vector {
                id: t["tcId"].as_u64().unwrap_or(0),
                alg,
                jwk,
                msg: hex(t["msg"].as_str().unwrap_or("")),
                sig: hex(sig.and_then(Value::as_str).unwrap_or("")),
                expect,
            });
        }
    }
    Ok(out)
}

/// Native: the key from the filter's JWKS decoder, `wasmesh_jose::verify`.
/// `None` when the filter refuses the key.
fn native(v: &Vector) -> Option<bool> {
    let doc = serde_json::to_vec(&json!({ "keys": [v.jwk] })).unwrap();
    let set = jwt_authn::jwks::KeySet::from_json(&doc).ok()?;
    let key = &set.keys.first()?.key;
    Some(verify(v.alg, key, &v.msg, &v.sig))
}

/// The jose-bench module in wasmtime.
struct Wasm {
    store: wasmtime::Store<()>,
    memory: wasmtime::Memory,
    alloc: wasmtime::TypedFunc<u32, u32>,
    #[allow(clippy::type_complexity)]
    verify_n: wasmtime::TypedFunc<(u32, u32, u32, u32, u32, u32, u32, u32), i32>,
    /// Epoch ticks one call may run (the harness's callback budget).
    budget: u64,
}

fn jose_bench_path() -> PathBuf {
    wasmesh::scenario::default_wasm_dir().join("jose_bench.wasm")
}

impl Wasm {
    fn load(module: &wasmtime::Module, budget: u64) -> Result<Wasm, String> {
        let engine = module.engine();
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(budget);
        let mut linker = wasmtime::Linker::new(engine);
        linker
            .define_unknown_imports_as_traps(module)
            .map_err(|e| e.to_string())?;
        let instance = linker
            .instantiate(&mut store, module)
            .map_err(|e| format!("instantiating jose_bench.wasm: {e}"))?;
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            init.call(&mut store, ()).map_err(|e| e.to_string())?;
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or("jose_bench.wasm exports no memory")?;
        let alloc = instance
            .get_typed_func(&mut store, "alloc")
            .map_err(|e| e.to_string())?;
        let verify_n = instance
            .get_typed_func(&mut store, "verify_n")
            .map_err(|e| e.to_string())?;
        Ok(Wasm {
            store,
            memory,
            alloc,
            verify_n,
            budget,
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(u32, u32), String> {
        self.store.set_epoch_deadline(self.budget);
        let ptr = self
            .alloc
            .call(&mut self.store, bytes.len().max(1) as u32)
            .map_err(|e| e.to_string())?;
        self.memory
            .write(&mut self.store, ptr as usize, bytes)
            .map_err(|e| e.to_string())?;
        Ok((ptr, bytes.len() as u32))
    }

    /// The same key material the JWKS decoder reads, in jose-bench's
    /// encoding; `None` when the module refuses the key.
    fn verify(&mut self, v: &Vector) -> Result<Option<bool>, String> {
        let member = |name: &str| -> Result<Vec<u8>, String> {
            let s = v.jwk[name].as_str().ok_or(format!("JWK has no {name}"))?;
            base64url_decode(s.trim_end_matches('=')).ok_or(format!("JWK {name}: bad base64url"))
        };
        let key = match v.jwk["kty"].as_str() {
            Some("RSA") => {
                let n = member("n")?;
                let mut k = (n.len() as u32).to_le_bytes().to_vec();
                k.extend_from_slice(&n);
                k.extend_from_slice(&member("e")?);
                k
            }
            Some("EC") => [member("x")?, member("y")?].concat(),
            Some("OKP") => member("x")?,
            Some("oct") => member("k")?,
            other => return Err(format!("kty {other:?}")),
        };
        let alg = Algorithm::ALL.iter().position(|&a| a == v.alg).unwrap() as u32;
        let (kp, kl) = self.put(&key)?;
        let (mp, ml) = self.put(&v.msg)?;
        let (sp, sl) = self.put(&v.sig)?;
        self.store.set_epoch_deadline(self.budget);
        let r = self
            .verify_n
            .call(&mut self.store, (alg, kp, kl, mp, ml, sp, sl, 1))
            .map_err(|e| format!("verify_n trapped: {e}"))?;
        Ok(match r {
            -1 => None,
            r => Some(r == 1),
        })
    }
}

#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    accepted: usize,
    keys_refused: usize,
    failures: Vec<String>,
}

fn check(
    file: &str,
    vectors: &FileVectors,
    mut run: impl FnMut(&Vector) -> Result<Option<bool>, String>,
) -> Tally {
    let mut t = Tally::default();
    for v in &vectors.vectors {
        let got = match run(v) {
            Ok(g) => g,
            Err(e) => {
                t.failures.push(format!("tcId {}: {e}", v.id));
                continue;
            }
        };
        if got.is_none() {
            t.keys_refused += 1;
        }
        let accepted = got == Some(true);
        match v.expect {
            Expect::Valid => {
                t.valid += 1;
                if !accepted {
                    t.failures.push(format!(
                        "{file} tcId {} ({}): valid signature {}",
                        v.id,
                        v.alg.name(),
                        if got.is_none() {
                            "but the key was refused"
                        } else {
                            "refused"
                        }
                    ));
                }
            }
            Expect::Invalid => {
                t.invalid += 1;
                if accepted {
                    t.failures.push(format!(
                        "{file} tcId {} ({}): INVALID signature accepted",
                        v.id,
                        v.alg.name()
                    ));
                }
            }
            Expect::Acceptable => {
                t.acceptable += 1;
                t.accepted += accepted as usize;
            }
        }
    }
    t
}

fn report(file: &str, build: &str, vectors: &FileVectors, t: Tally) -> Result<(), Failed> {
    println!(
        "wycheproof {file} {build}: {} valid {}, {} invalid {}, {} acceptable ({} accepted), \
         {} not JWS (not run){}",
        t.valid,
        if t.failures.iter().any(|f| f.contains("valid signature")) {
            "NOT all verified"
        } else {
            "verified"
        },
        t.invalid,
        if t.failures.iter().any(|f| f.contains("INVALID")) {
            "NOT all refused"
        } else {
            "refused"
        },
        t.acceptable,
        t.accepted,
        vectors.not_jws,
        if t.keys_refused > 0 {
            format!(", {} keys refused", t.keys_refused)
        } else {
            String::new()
        }
    );
    if vectors.vectors.is_empty() {
        return Err(format!("{file}: no vector a JWS algorithm expresses").into());
    }
    if t.failures.is_empty() {
        Ok(())
    } else {
        Err(t.failures.join("\n").into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let dir = match vector_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("wycheproof: {e}");
            std::process::exit(1);
        }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        eprintln!("wycheproof: no vector file (*.json) in {}", dir.display());
        std::process::exit(1);
    }
    // One compiled module for all wasm trials, on the harness's engine; a
    // missing module fails them.
    let module: Arc<Result<(wasmtime::Module, u64), String>> = Arc::new((|| {
        let path = jose_bench_path();
        if !path.is_file() {
            return Err(format!(
                "{} is missing: run `bash scripts/build-wasm.sh` first (the test command does)",
                path.display()
            ));
        }
        let runtime = wasmesh::Runtime::shared()?;
        let module = wasmtime::Module::from_file(runtime.engine(), &path)
            .map_err(|e| format!("loading {}: {e}", path.display()))?;
        Ok((module, runtime.budget_ticks()))
    })());
    let mut trials = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let vectors = Arc::new(std::sync::OnceLock::<Result<FileVectors, String>>::new());
        for build in ["native", "wasm32"] {
            let (path, file, vectors, module) =
                (path.clone(), file.clone(), vectors.clone(), module.clone());
            trials.push(Trial::test(format!("{file}::{build}"), move || {
                let vectors = vectors
                    .get_or_init(|| load(&path))
                    .as_ref()
                    .map_err(|e| format!("{file}: {e}"))?;
                let tally = if build == "native" {
                    check(&file, vectors, |v| Ok(native(v)))
                } else {
                    let (module, budget) = module.as_ref().as_ref().map_err(|e| e.clone())?;
                    let mut wasm = Wasm::load(module, *budget)?;
                    check(&file, vectors, |v| wasm.verify(v))
                };
                report(&file, build, vectors, tally)
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
