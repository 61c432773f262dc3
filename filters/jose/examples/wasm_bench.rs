//! Measures signature verification inside wasm (wasmtime 48, the harness's
//! engine) and natively. Not a test: it prints figures.
//!
//! ```sh
//! cargo build --release --target wasm32-wasip1 -p jose-bench
//! cargo run --profile host -p wasmesh-jose --example wasm_bench [-- --quick]
//! ```
//!
//! Keys and signatures are generated here with the established crates
//! (fixed seed) and passed into the module; each row is the median of
//! several runs, in microseconds of this thread's CPU time per operation
//! (wall time on a shared machine would count other processes too).

use anyhow::{anyhow, Result};
use rand_core::SeedableRng;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmesh_jose::{
    verify, Algorithm, EcPublicKey, Ed25519PublicKey, HmacKey, KeyType, PublicKey, RsaPublicKey,
};
use wasmtime::{Engine, Instance, Linker, Memory, Module, Store, TypedFunc};

struct Case {
    label: String,
    alg: Algorithm,
    /// Key in the jose-bench encoding (see test-plugins/jose-bench/src/lib.rs).
    key: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

const MSG: &[u8] = b"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6InVzZXItMTIzIiwiYXVkIjoiYXBpIiwiZXhwIjo0MTAyNDQ0ODAwfQ";

fn rsa_cases(bits: usize, seed: u64, algs: &[Algorithm]) -> Vec<Case> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let sk = rsa::RsaPrivateKey::new(&mut rng, bits).expect("rsa keygen");
    let n = sk.n().to_bytes_be();
    let mut key = (n.len() as u32).to_le_bytes().to_vec();
    key.extend_from_slice(&n);
    key.extend_from_slice(&sk.e().to_bytes_be());
    algs.iter()
        .map(|&alg| {
            let sig = match alg {
                Algorithm::RS256 => {
                    sk.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(MSG))
                }
                Algorithm::RS384 => {
                    sk.sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(MSG))
                }
                Algorithm::RS512 => {
                    sk.sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(MSG))
                }
                Algorithm::PS256 => {
                    sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha256>(), &Sha256::digest(MSG))
                }
                Algorithm::PS384 => {
                    sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha384>(), &Sha384::digest(MSG))
                }
                Algorithm::PS512 => {
                    sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha512>(), &Sha512::digest(MSG))
                }
                _ => unreachable!(),
            }
            .expect("rsa sign");
            Case {
                label: format!("{alg} ({bits}-bit)"),
                alg,
                key: key.clone(),
                msg: MSG.to_vec(),
                sig,
            }
        })
        .collect()
}

fn cases(quick: bool) -> Vec<Case> {
    let mut v = rsa_cases(
        2048,
        1,
        &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
    );
    if !quick {
        v.extend(rsa_cases(4096, 2, &[Algorithm::RS256]));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    {
        use p256::ecdsa::signature::Signer;
        let sk = p256::ecdsa::SigningKey::random(&mut rng);
        let pt = sk.verifying_key().to_encoded_point(false);
        let sig: p256::ecdsa::Signature = sk.sign(MSG);
        let key = [pt.x().unwrap().as_slice(), pt.y().unwrap().as_slice()].concat();
        v.push(Case {
            label: "ES256".into(),
            alg: Algorithm::ES256,
            key,
            msg: MSG.to_vec(),
            sig: sig.to_bytes().to_vec(),
        });
    }
    {
        use p384::ecdsa::signature::Signer;
        let sk = p384::ecdsa::SigningKey::random(&mut rng);
        let pt = sk.verifying_key().to_encoded_point(false);
        let sig: p384::ecdsa::Signature = sk.sign(MSG);
        let key = [pt.x().unwrap().as_slice(), pt.y().unwrap().as_slice()].concat();
        v.push(Case {
            label: "ES384".into(),
            alg: Algorithm::ES384,
            key,
            msg: MSG.to_vec(),
            sig: sig.to_bytes().to_vec(),
        });
    }
    {
        let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([5; 32]));
        let sig = kp.sk.sign(MSG, None);
        v.push(Case {
            label: "EdDSA".into(),
            alg: Algorithm::EdDSA,
            key: kp.pk.to_vec(),
            msg: MSG.to_vec(),
            sig: sig.to_vec(),
        });
    }
    {
        use hmac::Mac;
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let mut m = <hmac::Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&secret).unwrap();
        m.update(MSG);
        let sig = m.finalize().into_bytes().to_vec();
        v.push(Case {
            label: "HS256".into(),
            alg: Algorithm::HS256,
            key: secret,
            msg: MSG.to_vec(),
            sig,
        });
    }
    v
}

fn native_key(alg: Algorithm, k: &[u8]) -> PublicKey {
    match alg.key_type() {
        KeyType::Rsa => {
            let n_len = u32::from_le_bytes(k[..4].try_into().unwrap()) as usize;
            PublicKey::Rsa(
                RsaPublicKey::from_components(&k[4..4 + n_len], &k[4 + n_len..]).unwrap(),
            )
        }
        KeyType::EcP256 => PublicKey::Ec(EcPublicKey::p256(&k[..32], &k[32..]).unwrap()),
        KeyType::EcP384 => PublicKey::Ec(EcPublicKey::p384(&k[..48], &k[48..]).unwrap()),
        KeyType::Ed25519 => PublicKey::Ed25519(Ed25519PublicKey::from_bytes(k).unwrap()),
        KeyType::Oct => PublicKey::Oct(HmacKey::new(k).unwrap()),
    }
}

/// CPU time of this thread in seconds (the machine is shared, so wall time
/// would include other processes' slices), falling back to wall time.
fn cpu_now(start: Instant) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass and reads nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    } else {
        start.elapsed().as_secs_f64()
    }
}

/// Runs `f(n)` (which performs n operations) enough times for a stable
/// figure; returns the median µs per operation.
fn measure(mut f: impl FnMut(u32) -> Result<()>, runs: usize, target: Duration) -> Result<f64> {
    let epoch = Instant::now();
    f(1)?; // warm up
    let t = cpu_now(epoch);
    f(1)?;
    let one = (cpu_now(epoch) - t).max(50e-9);
    let n = ((target.as_secs_f64() / one) as u32).clamp(1, 1_000_000);
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = cpu_now(epoch);
        f(n)?;
        samples.push((cpu_now(epoch) - t) * 1e6 / f64::from(n));
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok(samples[samples.len() / 2])
}

/// (alg, key ptr, key len, msg ptr, msg len, sig ptr, sig len, iterations).
type VerifyArgs = (u32, u32, u32, u32, u32, u32, u32, u32);

struct Wasm {
    store: Store<()>,
    memory: Memory,
    alloc: TypedFunc<u32, u32>,
    verify_n: TypedFunc<VerifyArgs, i32>,
    key_n: TypedFunc<(u32, u32, u32, u32), i32>,
}

impl Wasm {
    fn load(path: &PathBuf) -> Result<Wasm> {
        let engine = Engine::default();
        let module = Module::from_file(&engine, path)
            .map_err(|e| anyhow!("loading {}: {e}", path.display()))?;
        let mut store = Store::new(&engine, ());
        let mut linker = Linker::new(&engine);
        linker.define_unknown_imports_as_traps(&module)?;
        let instance: Instance = linker.instantiate(&mut store, &module)?;
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            init.call(&mut store, ())?;
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| anyhow!("no memory export"))?;
        Ok(Wasm {
            alloc: instance.get_typed_func(&mut store, "alloc")?,
            verify_n: instance.get_typed_func(&mut store, "verify_n")?,
            key_n: instance.get_typed_func(&mut store, "key_n")?,
            memory,
            store,
        })
    }

    fn put(&mut self, data: &[u8]) -> Result<(u32, u32)> {
        let p = self.alloc.call(&mut self.store, data.len().max(1) as u32)?;
        self.memory.write(&mut self.store, p as usize, data)?;
        Ok((p, data.len() as u32))
    }
}

fn alg_id(alg: Algorithm) -> u32 {
    Algorithm::ALL.iter().position(|&a| a == alg).unwrap() as u32
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm_path = root.join("target/wasm32-wasip1/release/jose_bench.wasm");
    if !wasm_path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = std::process::Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip1",
                "-p",
                "jose-bench",
            ])
            .status()?;
        anyhow::ensure!(st.success(), "building jose-bench failed");
    }
    let size = std::fs::metadata(&wasm_path)?.len();
    println!(
        "jose_bench.wasm: {} bytes ({:.1} KiB)",
        size,
        size as f64 / 1024.0
    );
    let mut w = Wasm::load(&wasm_path)?;
    let runs = if quick { 3 } else { 7 };
    let target = Duration::from_millis(if quick { 30 } else { 150 });
    println!(
        "{:<18} {:>12} {:>12} {:>14} {:>14}",
        "algorithm", "wasm µs", "native µs", "wasm key µs", "native key µs"
    );
    for c in cases(quick) {
        let id = alg_id(c.alg);
        let (kp, kl) = w.put(&c.key)?;
        let (mp, ml) = w.put(&c.msg)?;
        let (sp, sl) = w.put(&c.sig)?;
        // Sanity: the signature verifies inside wasm and natively, a corrupted one does not.
        let ok = w
            .verify_n
            .call(&mut w.store, (id, kp, kl, mp, ml, sp, sl, 1))?;
        anyhow::ensure!(ok == 1, "{}: wasm verify returned {ok}", c.label);
        let nk = native_key(c.alg, &c.key);
        anyhow::ensure!(
            verify(c.alg, &nk, &c.msg, &c.sig),
            "{}: native verify failed",
            c.label
        );
        let mut bad = c.sig.clone();
        bad[0] ^= 1;
        anyhow::ensure!(
            !verify(c.alg, &nk, &c.msg, &bad),
            "{}: corrupted signature verified",
            c.label
        );

        let wasm_us = {
            let (vf, store) = (&w.verify_n, &mut w.store);
            measure(
                |n| {
                    let r = vf.call(&mut *store, (id, kp, kl, mp, ml, sp, sl, n))?;
                    anyhow::ensure!(r == n as i32, "wasm verify failed");
                    Ok(())
                },
                runs,
                target,
            )?
        };
        let native_us = measure(
            |n| {
                for _ in 0..n {
                    anyhow::ensure!(verify(
                        c.alg,
                        &nk,
                        std::hint::black_box(&c.msg),
                        std::hint::black_box(&c.sig)
                    ));
                }
                Ok(())
            },
            runs,
            target,
        )?;
        let wasm_key_us = {
            let (kf, store) = (&w.key_n, &mut w.store);
            measure(
                |n| {
                    let r = kf.call(&mut *store, (id, kp, kl, n))?;
                    anyhow::ensure!(r == n as i32, "wasm key failed");
                    Ok(())
                },
                runs,
                target / 3,
            )?
        };
        let native_key_us = measure(
            |n| {
                for _ in 0..n {
                    std::hint::black_box(native_key(c.alg, std::hint::black_box(&c.key)));
                }
                Ok(())
            },
            runs,
            target / 3,
        )?;
        println!(
            "{:<18} {:>12.1} {:>12.1} {:>14.1} {:>14.1}",
            c.label, wasm_us, native_us, wasm_key_us, native_key_us
        );
    }
    if !quick
        && std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_ok()
    {
        println!("\nreference: openssl speed -seconds 1 rsa2048 ecdsap256 (native)");
        if let Ok(out) = std::process::Command::new("openssl")
            .args(["speed", "-seconds", "1", "rsa2048", "ecdsap256"])
            .output()
        {
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("rsa") || l.contains("ecdsa") || l.contains("sign"))
            {
                println!("  {line}");
            }
        }
    }
    Ok(())
}
