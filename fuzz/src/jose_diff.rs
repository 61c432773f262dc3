//! `jose_differential`: `wasmesh-jose` (the JWT filter's hand-written RSA and
//! ECDSA verifiers) against RustCrypto (`rsa` 0.9, `p256`/`p384` 0.13) on the
//! same key, message and signature. Both must give the same answer.
//!
//! Input: `[alg, mode, msg_len, msg.., rest..]`.
//! - `alg % 8`: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384;
//! - `mode % 3`: 0 — `rest` is the signature (random bytes); 1 — `rest` is
//!   the signature, padded or cut to the key's size (so the RSA and ECDSA
//!   arithmetic runs on it); 2 — a valid signature of `msg` (made with
//!   RustCrypto; the PSS salt and ECDSA nonce are deterministic) mutated by
//!   `rest` read as `(position, xor)` byte pairs (no pair: unmodified, and
//!   both must accept it).
//!
//! The keys are fixed (generated once from a fixed seed): a 2048-bit RSA key
//! with e = 65537 and one key per curve, given to `wasmesh-jose` as a JWK's
//! members are (`n`/`e`, `x`/`y`).
//!
//! One difference is expected and allowed: for PSS, RFC 8017 (EMSA-PSS-VERIFY
//! step 6) requires the leftmost `8*emLen - emBits` bits of the encoded
//! message to be zero; `wasmesh-jose` checks it, `rsa` 0.9 does not. When only
//! `rsa` accepts, the target recomputes the encoded message and allows the
//! difference only if those bits are set.

use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::sync::OnceLock;
use wasmesh_jose::{verify, Algorithm, EcPublicKey, PublicKey, RsaPublicKey};

const ALGS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

struct Keys {
    rsa: rsa::RsaPrivateKey,
    rsa_pub: rsa::RsaPublicKey,
    rsa_ours: PublicKey,
    p256: p256::ecdsa::SigningKey,
    p256_ours: PublicKey,
    p384: p384::ecdsa::SigningKey,
    p384_ours: PublicKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x6a05_e0d1);
        let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
        let rsa_pub = rsa.to_public_key();
        let rsa_ours = PublicKey::Rsa(
            RsaPublicKey::from_components(&rsa_pub.n().to_bytes_be(), &rsa_pub.e().to_bytes_be())
                .expect("our rsa key"),
        );
        let p256 = p256::ecdsa::SigningKey::from_slice(&[0x11; 32]).expect("p256 key");
        let point = p256.verifying_key().to_encoded_point(false);
        let p256_ours = PublicKey::Ec(
            EcPublicKey::p256(point.x().unwrap(), point.y().unwrap()).expect("our p256 key"),
        );
        let p384 = p384::ecdsa::SigningKey::from_slice(&[0x22; 48]).expect("p384 key");
        let point = p384.verifying_key().to_encoded_point(false);
        let p384_ours = PublicKey::Ec(
            EcPublicKey::p384(point.x().unwrap(), point.y().unwrap()).expect("our p384 key"),
        );
        Keys {
            rsa,
            rsa_pub,
            rsa_ours,
            p256,
            p256_ours,
            p384,
            p384_ours,
        }
    })
}

fn sign(k: &Keys, alg: Algorithm, msg: &[u8], salt_seed: u64) -> Vec<u8> {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(salt_seed);
    let sk = &k.rsa;
    match alg {
        Algorithm::RS256 => sk.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg)),
        Algorithm::RS384 => sk.sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg)),
        Algorithm::RS512 => sk.sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg)),
        Algorithm::PS256 => {
            sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha256>(), &Sha256::digest(msg))
        }
        Algorithm::PS384 => {
            sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha384>(), &Sha384::digest(msg))
        }
        Algorithm::PS512 => {
            sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha512>(), &Sha512::digest(msg))
        }
        Algorithm::ES256 => {
            use p256::ecdsa::signature::Signer;
            let s: p256::ecdsa::Signature = k.p256.sign(msg);
            return s.to_bytes().to_vec();
        }
        Algorithm::ES384 => {
            use p384::ecdsa::signature::Signer;
            let s: p384::ecdsa::Signature = k.p384.sign(msg);
            return s.to_bytes().to_vec();
        }
        _ => unreachable!(),
    }
    .expect("sign")
}

/// RustCrypto's answer.
fn reference(k: &Keys, alg: Algorithm, msg: &[u8], sig: &[u8]) -> bool {
    let pk = &k.rsa_pub;
    let rsa_ok = |r: rsa::Result<()>| sig.len() == pk.size() && r.is_ok();
    match alg {
        Algorithm::RS256 => rsa_ok(pk.verify(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(msg),
            sig,
        )),
        Algorithm::RS384 => rsa_ok(pk.verify(
            rsa::Pkcs1v15Sign::new::<Sha384>(),
            &Sha384::digest(msg),
            sig,
        )),
        Algorithm::RS512 => rsa_ok(pk.verify(
            rsa::Pkcs1v15Sign::new::<Sha512>(),
            &Sha512::digest(msg),
            sig,
        )),
        Algorithm::PS256 => rsa_ok(pk.verify(rsa::Pss::new::<Sha256>(), &Sha256::digest(msg), sig)),
        Algorithm::PS384 => rsa_ok(pk.verify(rsa::Pss::new::<Sha384>(), &Sha384::digest(msg), sig)),
        Algorithm::PS512 => rsa_ok(pk.verify(rsa::Pss::new::<Sha512>(), &Sha512::digest(msg), sig)),
        Algorithm::ES256 => {
            use p256::ecdsa::signature::Verifier;
            p256::ecdsa::Signature::from_slice(sig)
                .is_ok_and(|s| k.p256.verifying_key().verify(msg, &s).is_ok())
        }
        Algorithm::ES384 => {
            use p384::ecdsa::signature::Verifier;
            p384::ecdsa::Signature::from_slice(sig)
                .is_ok_and(|s| k.p384.verifying_key().verify(msg, &s).is_ok())
        }
        _ => unreachable!(),
    }
}

/// Whether the PSS-encoded message inside `sig` has one of its leftmost
/// `8*emLen - emBits` bits set (RFC 8017 9.1.2 step 6: "inconsistent").
pub fn pss_leading_bits_set(pk: &rsa::RsaPublicKey, sig: &[u8]) -> bool {
    let m = rsa::BigUint::from_bytes_be(sig).modpow(pk.e(), pk.n());
    let mod_bits = pk.n().bits();
    let em_bits = mod_bits - 1;
    // m < 2^em_bits is what a consistent encoding gives.
    m.bits() > em_bits
}

/// The target.
pub fn run(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let alg = ALGS[data[0] as usize % ALGS.len()];
    let mode = data[1] % 3;
    let msg_len = (data[2] as usize).min(data.len() - 3);
    let msg = &data[3..3 + msg_len];
    let rest = &data[3 + msg_len..];
    let k = keys();
    let size = match alg {
        Algorithm::ES256 => 64,
        Algorithm::ES384 => 96,
        _ => k.rsa_pub.size(),
    };
    let sig = match mode {
        0 => rest.to_vec(),
        1 => {
            let mut s = rest.to_vec();
            s.resize(size, 0);
            s
        }
        _ => {
            let salt_seed = rest.iter().fold(msg_len as u64, |h, &b| {
                h.wrapping_mul(31).wrapping_add(b.into())
            });
            let mut s = sign(k, alg, msg, salt_seed);
            for pair in rest.chunks_exact(2) {
                let at = pair[0] as usize * s.len() / 256;
                s[at] ^= pair[1];
            }
            s
        }
    };
    let ours_key = match alg {
        Algorithm::ES256 => &k.p256_ours,
        Algorithm::ES384 => &k.p384_ours,
        _ => &k.rsa_ours,
    };
    let ours = verify(alg, ours_key, msg, &sig);
    let theirs = reference(k, alg, msg, &sig);
    if mode == 2 && rest.len() < 2 {
        assert!(
            ours && theirs,
            "{alg:?}: a valid signature: ours {ours}, reference {theirs}"
        );
    }
    if ours != theirs {
        let allowed = !ours
            && matches!(alg, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
            && pss_leading_bits_set(&k.rsa_pub, &sig);
        assert!(
            allowed,
            "{alg:?} disagrees: wasmesh-jose {ours}, RustCrypto {theirs} (msg {msg:02x?}, sig {sig:02x?})"
        );
    }
}
