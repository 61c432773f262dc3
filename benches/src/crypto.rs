//! Signature verification alone, inside wasm (`jose_bench.wasm`, the
//! `wasmesh-jose` crate compiled to wasm32 in release) and natively (the same
//! crate), next to OpenSSL's own figures on this machine.

use crate::keys::Keys;
use crate::timing::{measure, Figure, Timing};
use rsa::traits::PublicKeyParts;
use std::path::Path;
use wasmesh_jose::{
    verify, Algorithm, EcPublicKey, Ed25519PublicKey, HmacKey, PublicKey, RsaPublicKey,
};
use wasmtime::{Config, Engine, Linker, Memory, Module, Store, TypedFunc};

/// One algorithm's verification figures.
#[derive(Debug, Clone)]
pub struct CryptoRow {
    pub alg: String,
    pub wasm: Option<Figure>,
    /// The same module on an engine without epoch interruption checks.
    pub wasm_no_epoch: Option<Figure>,
    pub native: Figure,
}

fn algorithm(name: &str) -> Algorithm {
    match name {
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        _ => Algorithm::HS256,
    }
}

/// The key in jose-bench's encoding (see `test-plugins/jose-bench`).
fn key_bytes(keys: &Keys, alg: &str) -> Vec<u8> {
    match alg {
        "RS256" | "PS256" => {
            let n = keys.rsa.n().to_bytes_be();
            let mut k = (n.len() as u32).to_le_bytes().to_vec();
            k.extend_from_slice(&n);
            k.extend_from_slice(&keys.rsa.e().to_bytes_be());
            k
        }
        "ES256" => {
            let p = keys.p256.verifying_key().to_encoded_point(false);
            [p.x().expect("x").as_slice(), p.y().expect("y").as_slice()].concat()
        }
        "EdDSA" => keys.ed.pk.to_vec(),
        _ => keys.hmac.clone(),
    }
}

fn native_key(keys: &Keys, alg: &str) -> Result<PublicKey, String> {
    let e = |e: wasmesh_jose::KeyError| format!("{alg} key: {e:?}");
    Ok(match alg {
        "RS256" | "PS256" => PublicKey::Rsa(
            RsaPublicKey::from_components(&keys.rsa.n().to_bytes_be(), &keys.rsa.e().to_bytes_be())
                .map_err(e)?,
        ),
        "ES256" => {
            let p = keys.p256.verifying_key().to_encoded_point(false);
            PublicKey::Ec(EcPublicKey::p256(p.x().expect("x"), p.y().expect("y")).map_err(e)?)
        }
        "EdDSA" => {
            PublicKey::Ed25519(Ed25519PublicKey::from_bytes(keys.ed.pk.as_ref()).map_err(e)?)
        }
        _ => PublicKey::Oct(HmacKey::new(&keys.hmac).map_err(e)?),
    })
}

/// (alg, key ptr, key len, msg ptr, msg len, sig ptr, sig len, iterations).
type VerifyArgs = (u32, u32, u32, u32, u32, u32, u32, u32);

struct JoseWasm {
    store: Store<()>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    verify_n: TypedFunc<VerifyArgs, i32>,
}

impl JoseWasm {
    /// Loads the module with the harness's code generation settings
    /// (Cranelift, epoch interruption checks compiled in), or without the
    /// epoch checks (wasmtime's default).
    fn load(path: &Path, epoch: bool) -> Result<JoseWasm, String> {
        let mut config = Config::new();
        config.epoch_interruption(epoch);
        let engine = Engine::new(&config).map_err(|e| e.to_string())?;
        let module =
            Module::from_file(&engine, path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut store = Store::new(&engine, ());
        if epoch {
            // The epoch never advances (no ticker): a deadline of 1 never fires.
            store.set_epoch_deadline(1);
        }
        let mut linker = Linker::new(&engine);
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(|e| e.to_string())?;
        let instance = linker
            .instantiate(&mut store, &module)
            .map_err(|e| e.to_string())?;
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            init.call(&mut store, ()).map_err(|e| e.to_string())?;
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or("jose_bench.wasm exports no memory")?;
        Ok(JoseWasm {
            alloc: instance
                .get_typed_func(&mut store, "alloc")
                .map_err(|e| e.to_string())?,
            verify_n: instance
                .get_typed_func(&mut store, "verify_n")
                .map_err(|e| e.to_string())?,
            memory,
            store,
        })
    }

    fn put(&mut self, data: &[u8]) -> Result<(u32, u32), String> {
        let p = self
            .alloc
            .call(&mut self.store, data.len().max(1) as u32)
            .map_err(|e| e.to_string())?;
        self.memory
            .write(&mut self.store, p as usize, data)
            .map_err(|e| e.to_string())?;
        Ok((p, data.len() as u32))
    }
}

/// Where `jose_bench.wasm` is.
pub fn jose_bench_path() -> std::path::PathBuf {
    wasmesh::scenario::default_wasm_dir().join("jose_bench.wasm")
}

/// Verification figures per algorithm; the wasm column is `None` when
/// `jose_bench.wasm` is not built.
pub fn verification(keys: &Keys, t: &Timing) -> Result<(Vec<CryptoRow>, Option<String>), String> {
    let path = jose_bench_path();
    let mut wasm = if path.exists() {
        Some((JoseWasm::load(&path, true)?, JoseWasm::load(&path, false)?))
    } else {
        None
    };
    let note = wasm.is_none().then(|| {
        format!(
            "{} not built (`cargo build --release --target wasm32-wasip1 -p jose-bench`)",
            path.display()
        )
    });
    let msg = b"eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYSJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoib3JkZXJzIiwiZXhwIjo0MTAyNDQ0ODAwfQ";
    let mut rows = Vec::new();
    for (alg, _) in crate::keys::ALGORITHMS {
        let a = algorithm(alg);
        let sig = keys.sign(alg, msg);
        let key = native_key(keys, alg)?;
        if !verify(a, &key, msg, &sig) {
            return Err(format!(
                "{alg}: native verification of a good signature failed"
            ));
        }
        let mut bad = sig.clone();
        bad[0] ^= 1;
        if verify(a, &key, msg, &bad) {
            return Err(format!("{alg}: a corrupted signature verified"));
        }
        let native = measure(t, |n| {
            for _ in 0..n {
                if !verify(
                    a,
                    &key,
                    std::hint::black_box(msg),
                    std::hint::black_box(&sig),
                ) {
                    return Err(format!("{alg}: native verify failed"));
                }
            }
            Ok(())
        })?;
        let mut figs = Vec::new();
        if let Some((with_epoch, without)) = wasm.as_mut() {
            for w in [with_epoch, without] {
                let id = Algorithm::ALL
                    .iter()
                    .position(|x| *x == a)
                    .ok_or("algorithm id")? as u32;
                let (kp, kl) = w.put(&key_bytes(keys, alg))?;
                let (mp, ml) = w.put(msg)?;
                let (sp, sl) = w.put(&sig)?;
                let (f, store) = (&w.verify_n, &mut w.store);
                figs.push(measure(t, |n| {
                    let r = f
                        .call(&mut *store, (id, kp, kl, mp, ml, sp, sl, n as u32))
                        .map_err(|e| e.to_string())?;
                    if r != n as i32 {
                        return Err(format!("{alg}: wasm verified {r} of {n}"));
                    }
                    Ok(())
                })?);
            }
        }
        let mut figs = figs.into_iter();
        let wasm_fig = figs.next();
        let wasm_no_epoch = figs.next();
        rows.push(CryptoRow {
            alg: alg.to_string(),
            wasm: wasm_fig,
            wasm_no_epoch,
            native,
        });
    }
    Ok((rows, note))
}

/// OpenSSL's verification time on this machine, µs, per row label.
#[derive(Debug, Clone, Default)]
pub struct OpensslFigures {
    pub version: String,
    pub rsa2048_verify_us: Option<f64>,
    pub ecdsap256_verify_us: Option<f64>,
    pub raw: String,
}

/// Runs `openssl speed -seconds <s> rsa2048 ecdsap256` (absent: `None`).
pub fn openssl_speed(seconds: u32) -> Option<OpensslFigures> {
    let version = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .ok()?;
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            &seconds.to_string(),
            "rsa2048",
            "ecdsap256",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut f = OpensslFigures {
        version: String::from_utf8_lossy(&version.stdout).trim().to_string(),
        ..Default::default()
    };
    // Tables: a header line naming the columns ("sign verify ... verify/s"),
    // then rows like "rsa 2048 bits 0.000687s 0.000021s ... 1455.0 47619.0 ...".
    let mut columns: Vec<String> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.contains(&"verify/s") {
            columns = words.iter().map(|w| w.to_string()).collect();
            continue;
        }
        let Some(vi) = columns.iter().position(|c| c == "verify/s") else {
            continue;
        };
        // Numbers of the row, in column order, are its last `columns.len()` words.
        if words.len() < columns.len() {
            continue;
        }
        let nums = &words[words.len() - columns.len()..];
        let per_s: Option<f64> = nums.get(vi).and_then(|w| w.parse().ok());
        let us = per_s.filter(|v| *v > 0.0).map(|v| 1e6 / v);
        if line.contains("rsa") && line.contains("2048") {
            f.rsa2048_verify_us = us;
        } else if line.contains("nistp256") {
            f.ecdsap256_verify_us = us;
        }
    }
    f.raw = text
        .lines()
        .filter(|l| l.contains("sign") || l.contains("rsa") || l.contains("ecdsa"))
        .collect::<Vec<_>>()
        .join("\n");
    Some(f)
}
