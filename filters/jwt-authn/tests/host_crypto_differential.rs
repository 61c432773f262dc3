//! The host path against the wasm path, signature by signature: the filter's
//! own encoding (`host_crypto`: DER SubjectPublicKeyInfo, JWS `R || S` to DER,
//! the protobuf arguments) through the harness's `verify_signature` (OpenSSL)
//! must give exactly `wasmesh_jose`'s verdict — on valid signatures and on
//! corrupted, truncated, extended, zero, out-of-range and high-S ones.

mod support;
use jwt_authn::host_crypto::{decode_result, Crypto, Family, HostAnswer, HostCrypto, NativeKey};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rsa::traits::PublicKeyParts;
use support::Key;
use wasmesh::abi::foreign::{verify_signature, VerifySignatureMode};
use wasmesh_jose::{verify, Algorithm, EcPublicKey, PublicKey, RsaPublicKey};

/// The harness's foreign function, called directly.
struct Harness;

impl HostCrypto for Harness {
    fn verify_signature(&self, args: &[u8]) -> HostAnswer {
        match verify_signature(VerifySignatureMode::Native, args) {
            (wasmesh::types::Status::Ok, Some(out)) => match decode_result(&out) {
                Some(true) => HostAnswer::Valid,
                Some(false) => HostAnswer::Invalid,
                None => HostAnswer::Unavailable,
            },
            _ => HostAnswer::Unavailable,
        }
    }
}

const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_N: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// a - b for big-endian numbers of equal length (a >= b).
fn sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// Variants of a valid signature, each with its name.
fn variants(rng: &mut ChaCha8Rng, sig: &[u8], ec_n: Option<&[u8]>) -> Vec<(String, Vec<u8>)> {
    let mut v = vec![("valid".to_string(), sig.to_vec())];
    for _ in 0..4 {
        let mut s = sig.to_vec();
        let i = (rng.next_u32() as usize) % s.len();
        s[i] ^= 1 << (rng.next_u32() % 8);
        v.push((format!("bit flipped at {i}"), s));
    }
    v.push(("truncated".into(), sig[..sig.len() - 1].to_vec()));
    v.push(("extended".into(), [sig, &[0]].concat()));
    v.push(("leading zero".into(), [&[0], sig].concat()));
    v.push(("empty".into(), Vec::new()));
    v.push(("zero".into(), vec![0; sig.len()]));
    v.push(("all ones".into(), vec![0xff; sig.len()]));
    if let Some(n) = ec_n {
        let size = sig.len() / 2;
        let (r, s) = sig.split_at(size);
        v.push(("r = 0".into(), [&vec![0; size][..], s].concat()));
        v.push(("s = 0".into(), [r, &vec![0; size][..]].concat()));
        v.push(("r = n".into(), [n, s].concat()));
        v.push(("s = n".into(), [r, n].concat()));
        v.push(("high s (n - s)".into(), [r, &sub(n, s)[..]].concat()));
        v.push(("r and s swapped".into(), [s, r].concat()));
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn check(
    crypto: &Crypto,
    alg: Algorithm,
    key: &PublicKey,
    native: &NativeKey,
    msg: &[u8],
    sig: &[u8],
    ec_n: Option<&[u8]>,
    rng: &mut ChaCha8Rng,
) -> usize {
    let mut n = 0;
    for (what, s) in variants(rng, sig, ec_n) {
        let wasm = verify(alg, key, msg, &s);
        let host = crypto.verify(alg, Some(native), msg, &s);
        assert_eq!(host, Some(wasm), "{alg} {what}: host {host:?}, wasm {wasm}");
        if what == "valid" {
            assert!(wasm, "{alg}: valid signature refused");
        }
        n += 1;
    }
    n
}

#[test]
fn host_and_wasm_verdicts_agree() {
    let crypto = Crypto::probed(Box::new(Harness));
    assert!(crypto.caps.rsa && crypto.caps.ec, "{crypto:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let mut checked = 0;

    for which in 0..2 {
        let sk = support::rsa_key(which);
        let (n, e) = (sk.n().to_bytes_be(), sk.e().to_bytes_be());
        let key = PublicKey::Rsa(RsaPublicKey::from_components(&n, &e).unwrap());
        let native = NativeKey::rsa(&n, &e);
        let k = Key::rsa(which);
        for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
            for _ in 0..3 {
                let mut msg = vec![0u8; (rng.next_u32() % 200) as usize];
                rng.fill_bytes(&mut msg);
                let sig = k.sign(alg.name(), &msg);
                checked += check(&crypto, alg, &key, &native, &msg, &sig, None, &mut rng);
            }
        }
        // A signature of the other hash, and an RSA signature as ES256.
        let sig = k.sign("RS256", b"m");
        assert_eq!(
            crypto.verify(Algorithm::RS384, Some(&native), b"m", &sig),
            Some(false)
        );
        assert_eq!(
            crypto.verify(Algorithm::ES256, Some(&native), b"m", &sig),
            None
        );
    }

    for seed in 0..3u64 {
        for (alg, k, n_hex) in [
            (Algorithm::ES256, Key::p256(100 + seed), P256_N),
            (Algorithm::ES384, Key::p384(200 + seed), P384_N),
        ] {
            let (key, native) = match &k {
                Key::P256(sk) => {
                    let p = sk.verifying_key().to_encoded_point(false);
                    let (x, y) = (p.x().unwrap(), p.y().unwrap());
                    (
                        PublicKey::Ec(EcPublicKey::p256(x, y).unwrap()),
                        NativeKey::ec(Family::P256, x, y).unwrap(),
                    )
                }
                Key::P384(sk) => {
                    let p = sk.verifying_key().to_encoded_point(false);
                    let (x, y) = (p.x().unwrap(), p.y().unwrap());
                    (
                        PublicKey::Ec(EcPublicKey::p384(x, y).unwrap()),
                        NativeKey::ec(Family::P384, x, y).unwrap(),
                    )
                }
                _ => unreachable!(),
            };
            let n = hex(n_hex);
            for _ in 0..3 {
                let mut msg = vec![0u8; (rng.next_u32() % 200) as usize];
                rng.fill_bytes(&mut msg);
                let sig = k.sign(alg.name(), &msg);
                checked += check(&crypto, alg, &key, &native, &msg, &sig, Some(&n), &mut rng);
            }
        }
    }
    assert!(checked > 300, "{checked}");
}
