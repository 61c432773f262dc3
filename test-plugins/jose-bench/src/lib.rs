//! Benchmark module for `wasmesh-jose`, loaded by the native driver
//! `filters/jose/examples/wasm_bench.rs` with wasmtime.
//!
//! Exports:
//! - `alloc(len) -> ptr`: a buffer in linear memory for the driver to fill;
//! - `verify_n(alg, key_ptr, key_len, msg_ptr, msg_len, sig_ptr, sig_len, n) -> i32`:
//!   decodes the key once, then verifies the signature `n` times; returns how
//!   many verifications succeeded, or -1 if the key was refused;
//! - `key_n(alg, key_ptr, key_len, n) -> i32`: decodes the key `n` times
//!   (cost of key construction, paid once per key at configuration time).
//!
//! Key encoding (chosen by the algorithm's key type): RSA `u32 LE len(n) || n || e`;
//! EC `x || y` (each half); Ed25519 the 32 bytes; HMAC the secret.

#[cfg(target_arch = "wasm32")]
mod exports {
    use wasmesh_jose::{
        verify, Algorithm, EcPublicKey, Ed25519PublicKey, HmacKey, KeyType, PublicKey, RsaPublicKey,
    };

    fn algorithm(id: u32) -> Option<Algorithm> {
        Algorithm::ALL.get(id as usize).copied()
    }

    fn bytes<'a>(ptr: u32, len: u32) -> &'a [u8] {
        // SAFETY: the driver passes (ptr, len) of a buffer it obtained from
        // `alloc` and filled; linear memory is never freed in this module.
        unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
    }

    fn key(alg: Algorithm, k: &[u8]) -> Option<PublicKey> {
        Some(match alg.key_type() {
            KeyType::Rsa => {
                let n_len = u32::from_le_bytes(k.get(..4)?.try_into().ok()?) as usize;
                let n = k.get(4..4 + n_len)?;
                let e = k.get(4 + n_len..)?;
                PublicKey::Rsa(RsaPublicKey::from_components(n, e).ok()?)
            }
            KeyType::EcP256 => PublicKey::Ec(EcPublicKey::p256(k.get(..32)?, k.get(32..)?).ok()?),
            KeyType::EcP384 => PublicKey::Ec(EcPublicKey::p384(k.get(..48)?, k.get(48..)?).ok()?),
            KeyType::Ed25519 => PublicKey::Ed25519(Ed25519PublicKey::from_bytes(k).ok()?),
            KeyType::Oct => PublicKey::Oct(HmacKey::new(k).ok()?),
        })
    }

    #[no_mangle]
    pub extern "C" fn alloc(len: u32) -> u32 {
        let v: &'static mut [u8] = vec![0u8; len as usize].leak();
        v.as_mut_ptr() as usize as u32
    }

    #[allow(clippy::too_many_arguments)]
    #[no_mangle]
    pub extern "C" fn verify_n(
        alg: u32,
        key_ptr: u32,
        key_len: u32,
        msg_ptr: u32,
        msg_len: u32,
        sig_ptr: u32,
        sig_len: u32,
        n: u32,
    ) -> i32 {
        let Some(alg) = algorithm(alg) else { return -1 };
        let Some(k) = key(alg, bytes(key_ptr, key_len)) else {
            return -1;
        };
        let (msg, sig) = (bytes(msg_ptr, msg_len), bytes(sig_ptr, sig_len));
        let mut ok = 0;
        for _ in 0..n {
            if verify(
                alg,
                &k,
                core::hint::black_box(msg),
                core::hint::black_box(sig),
            ) {
                ok += 1;
            }
        }
        ok
    }

    #[no_mangle]
    pub extern "C" fn key_n(alg: u32, key_ptr: u32, key_len: u32, n: u32) -> i32 {
        let Some(alg) = algorithm(alg) else { return -1 };
        let k = bytes(key_ptr, key_len);
        let mut ok = 0;
        for _ in 0..n {
            if core::hint::black_box(key(alg, core::hint::black_box(k))).is_some() {
                ok += 1;
            }
        }
        ok
    }
}
