//! Differential tests: this crate's own RSA and ECDSA verifiers against the
//! established RustCrypto crates (`rsa` 0.9, `p256`/`p384` 0.13) on random
//! keys, messages and signatures (fixed seeds), valid and corrupted. Every
//! case asserts that both implementations give the same answer, and that
//! valid signatures are accepted.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use wasmesh_jose::{verify, Algorithm, EcPublicKey, PublicKey, RsaPublicKey};

fn rand_msg(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = (rng.next_u32() % 300) as usize;
    let mut m = vec![0u8; len];
    rng.fill_bytes(&mut m);
    m
}

const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

fn rsa_sign(sk: &rsa::RsaPrivateKey, rng: &mut ChaCha8Rng, alg: Algorithm, msg: &[u8]) -> Vec<u8> {
    match alg {
        Algorithm::RS256 => sk.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg)),
        Algorithm::RS384 => sk.sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg)),
        Algorithm::RS512 => sk.sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg)),
        Algorithm::PS256 => sk.sign_with_rng(rng, rsa::Pss::new::<Sha256>(), &Sha256::digest(msg)),
        Algorithm::PS384 => sk.sign_with_rng(rng, rsa::Pss::new::<Sha384>(), &Sha384::digest(msg)),
        Algorithm::PS512 => sk.sign_with_rng(rng, rsa::Pss::new::<Sha512>(), &Sha512::digest(msg)),
        _ => unreachable!(),
    }
    .unwrap()
}

/// The reference answer from the `rsa` crate.
fn rsa_reference(pk: &rsa::RsaPublicKey, alg: Algorithm, msg: &[u8], sig: &[u8]) -> bool {
    if sig.len() != pk.size() {
        return false;
    }
    match alg {
        Algorithm::RS256 => pk.verify(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(msg),
            sig,
        ),
        Algorithm::RS384 => pk.verify(
            rsa::Pkcs1v15Sign::new::<Sha384>(),
            &Sha384::digest(msg),
            sig,
        ),
        Algorithm::RS512 => pk.verify(
            rsa::Pkcs1v15Sign::new::<Sha512>(),
            &Sha512::digest(msg),
            sig,
        ),
        Algorithm::PS256 => pk.verify(rsa::Pss::new::<Sha256>(), &Sha256::digest(msg), sig),
        Algorithm::PS384 => pk.verify(rsa::Pss::new::<Sha384>(), &Sha384::digest(msg), sig),
        Algorithm::PS512 => pk.verify(rsa::Pss::new::<Sha512>(), &Sha512::digest(msg), sig),
        _ => unreachable!(),
    }
    .is_ok()
}

#[test]
fn rsa_against_rsa_crate() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0001);
    // Prime generation is expensive, so the 20 keys are built from pairs of
    // a small pool of primes: 2048-bit moduli, 2049 bits (PSS encodes into
    // k-1 bytes) and 2052 bits; exponents 65537, 3 and 2^32+1. (Larger
    // moduli are covered by the Montgomery unit tests against num-bigint.)
    use num_bigint_dig::RandPrime;
    let p1024: Vec<rsa::BigUint> = (0..7).map(|_| rng.gen_prime(1024)).collect();
    let p1025: rsa::BigUint = rng.gen_prime(1025);
    let p1028: rsa::BigUint = rng.gen_prime(1028);
    let mut pairs: Vec<(rsa::BigUint, rsa::BigUint)> = Vec::new();
    for i in 0..6 {
        for j in i + 1..7 {
            pairs.push((p1024[i].clone(), p1024[j].clone()));
        }
    }
    pairs.truncate(16);
    for q in &p1024[..3] {
        pairs.push((p1025.clone(), q.clone()));
    }
    pairs.push((p1028.clone(), p1024[5].clone()));
    let mut cases = 0;
    for (ki, (p, q)) in pairs.into_iter().enumerate() {
        // Exponents other than 65537 where gcd(e, (p-1)(q-1)) allows it.
        let sk = [[3u64, 65537, 0x1_0000_0001][ki % 3], 65537]
            .iter()
            .find_map(|&e| {
                rsa::RsaPrivateKey::from_p_q(p.clone(), q.clone(), rsa::BigUint::from(e)).ok()
            })
            .unwrap();
        let bits = sk.n().bits();
        let pk = sk.to_public_key();
        let ours = PublicKey::Rsa(
            RsaPublicKey::from_components(&pk.n().to_bytes_be(), &pk.e().to_bytes_be()).unwrap(),
        );
        for i in 0..100 {
            let alg = RSA_ALGS[(i + ki) % RSA_ALGS.len()];
            let msg = rand_msg(&mut rng);
            let sig = rsa_sign(&sk, &mut rng, alg, &msg);
            assert!(
                verify(alg, &ours, &msg, &sig),
                "key {ki} ({bits} bits) {alg} case {i}"
            );
            assert!(rsa_reference(&pk, alg, &msg, &sig));
            // One corruption per case, rotating through the kinds.
            let (m2, s2) = match i % 5 {
                0 => {
                    let mut s = sig.clone();
                    let bit = (rng.next_u32() as usize) % (s.len() * 8);
                    s[bit / 8] ^= 1 << (bit % 8);
                    (msg.clone(), s)
                }
                1 => {
                    let mut m = msg.clone();
                    if m.is_empty() {
                        m.push(0);
                    } else {
                        let at = (rng.next_u32() as usize) % m.len();
                        m[at] ^= 1 << (rng.next_u32() % 8);
                    }
                    (m, sig.clone())
                }
                2 => {
                    let mut s = vec![0u8; sig.len()];
                    rng.fill_bytes(&mut s);
                    s[0] &= 0x3f;
                    (msg.clone(), s)
                }
                3 => {
                    // Same signature under the other padding / hash.
                    let other = RSA_ALGS[(i + ki + 1 + (rng.next_u32() as usize % 5)) % 6];
                    assert_eq!(
                        verify(other, &ours, &msg, &sig),
                        rsa_reference(&pk, other, &msg, &sig),
                        "key {ki} {alg} signature checked as {other}"
                    );
                    assert!(!verify(other, &ours, &msg, &sig));
                    (msg.clone(), sig[..sig.len() - 1].to_vec())
                }
                _ => {
                    // Signature integer + n (out of range, same residue).
                    let s = rsa::BigUint::from_bytes_be(&sig) + pk.n();
                    let mut b = s.to_bytes_be();
                    if b.len() > sig.len() {
                        b = sig.clone();
                        b.push(0);
                    }
                    (msg.clone(), b)
                }
            };
            if i % 5 == 4 {
                // s + n < 2^(8k): RFC 8017 §5.2.2 requires refusing s >= n (as
                // BoringSSL does); the `rsa` crate reduces it instead, so it is
                // not a reference here.
                assert!(
                    !verify(alg, &ours, &m2, &s2),
                    "key {ki} {alg} s + n accepted"
                );
            } else {
                let theirs = rsa_reference(&pk, alg, &m2, &s2);
                assert_eq!(
                    verify(alg, &ours, &m2, &s2),
                    theirs,
                    "key {ki} {alg} corruption {}",
                    i % 5
                );
                assert!(!theirs);
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 2000);
}

/// ECDSA cases for one curve. `$n` is the number of random cases.
macro_rules! ecdsa_differential {
    ($name:ident, $curve:ident, $alg:expr, $len:expr, $n:expr, $ctor:path, $hash:ty) => {
        #[test]
        fn $name() {
            use $curve::ecdsa::signature::hazmat::PrehashVerifier;
            use $curve::ecdsa::signature::Signer;
            use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};
            let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0002 + $len);
            let reference = |vk: &VerifyingKey, msg: &[u8], sig: &[u8]| -> bool {
                match Signature::from_slice(sig) {
                    Ok(s) if sig.len() == 2 * $len => {
                        vk.verify_prehash(&<$hash>::digest(msg), &s).is_ok()
                    }
                    _ => false,
                }
            };
            // Keys: mostly random, plus the smallest and largest private
            // scalars (public key = ±G, ±2G, ...), which exercise the
            // exceptional cases of point addition in u1*G + u2*Q.
            let n_minus = |k: u8| -> Vec<u8> {
                let one = $curve::Scalar::ONE;
                let s = -$curve::Scalar::from(u64::from(k)) + one - one;
                s.to_bytes().to_vec()
            };
            let mut special: Vec<Vec<u8>> = Vec::new();
            for k in 1u8..=4 {
                let mut b = vec![0u8; $len];
                b[$len - 1] = k;
                special.push(b);
                special.push(n_minus(k));
            }
            let mut accepted = 0;
            for i in 0..$n {
                let sk = if i < special.len() * 20 {
                    SigningKey::from_slice(&special[i / 20]).unwrap()
                } else {
                    SigningKey::random(&mut rng)
                };
                let vk = *sk.verifying_key();
                let pt = vk.to_encoded_point(false);
                let ours = PublicKey::Ec($ctor(pt.x().unwrap(), pt.y().unwrap()).unwrap());
                let msg = rand_msg(&mut rng);
                let sig: Signature = sk.sign(&msg);
                let sig = sig.to_bytes().to_vec();
                assert!(verify($alg, &ours, &msg, &sig), "case {i}");
                accepted += 1;
                // The reference's own checks cost time: run them on every 10th case.
                let full = i % 10 == 0;
                if full {
                    assert!(reference(&vk, &msg, &sig));
                    // High-S form (n - s) is accepted by both (no low-S rule in JWS/BoringSSL).
                    let (r, s) = Signature::from_slice(&sig).unwrap().split_scalars();
                    let high = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
                    let high = high.to_bytes().to_vec();
                    assert!(verify($alg, &ours, &msg, &high), "high-s {i}");
                    assert!(reference(&vk, &msg, &high));
                }
                let (m2, s2) = match i % 5 {
                    0 => {
                        let mut s = sig.clone();
                        let bit = (rng.next_u32() as usize) % (s.len() * 8);
                        s[bit / 8] ^= 1 << (bit % 8);
                        (msg.clone(), s)
                    }
                    1 => {
                        let mut m = msg.clone();
                        m.push(b'x');
                        (m, sig.clone())
                    }
                    2 => {
                        let mut s = vec![0u8; sig.len()];
                        rng.fill_bytes(&mut s);
                        (msg.clone(), s)
                    }
                    3 => {
                        // r and s swapped.
                        let mut s = sig[$len..].to_vec();
                        s.extend_from_slice(&sig[..$len]);
                        (msg.clone(), s)
                    }
                    _ => {
                        // Another key's valid signature.
                        let other = SigningKey::random(&mut rng);
                        let s: Signature = other.sign(&msg);
                        (msg.clone(), s.to_bytes().to_vec())
                    }
                };
                let theirs = reference(&vk, &m2, &s2);
                assert_eq!(
                    verify($alg, &ours, &m2, &s2),
                    theirs,
                    "case {i} corruption {}",
                    i % 5
                );
                if !full {
                    continue;
                }
                // r = x(Q) forgeries with s random: compare too.
                let mut forged = vec![0u8; 2 * $len];
                forged[..$len].copy_from_slice(&pt.x().unwrap()[..]);
                rng.fill_bytes(&mut forged[$len..]);
                assert_eq!(
                    verify($alg, &ours, &msg, &forged),
                    reference(&vk, &msg, &forged)
                );
            }
            assert_eq!(accepted, $n);
        }
    };
}

ecdsa_differential!(
    p256_against_p256_crate,
    p256,
    Algorithm::ES256,
    32,
    2000,
    EcPublicKey::p256,
    Sha256
);
ecdsa_differential!(
    p384_against_p384_crate,
    p384,
    Algorithm::ES384,
    48,
    300,
    EcPublicKey::p384,
    Sha384
);

/// Public keys: random (x, y) pairs and near-misses are accepted or refused
/// exactly when the reference accepts them as SEC1 points.
#[test]
fn ec_key_validation_against_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0003);
    for i in 0..500 {
        let sk = p256::ecdsa::SigningKey::random(&mut rng);
        let pt = sk.verifying_key().to_encoded_point(false);
        let (mut x, mut y) = (pt.x().unwrap().to_vec(), pt.y().unwrap().to_vec());
        match i % 3 {
            0 => {}
            1 => y[31] ^= 1 << (i % 8),
            _ => rng.fill_bytes(&mut x),
        }
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        let theirs = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).is_ok();
        assert_eq!(EcPublicKey::p256(&x, &y).is_ok(), theirs, "case {i}");
    }
}

/// Ed25519 against ed25519-compact (an independent implementation): random
/// keys and messages, valid and corrupted signatures, same answers.
#[test]
fn ed25519_against_ed25519_compact() {
    use wasmesh_jose::Ed25519PublicKey;
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0004);
    for i in 0..500 {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
        let ours = PublicKey::Ed25519(Ed25519PublicKey::from_bytes(kp.pk.as_ref()).unwrap());
        let msg = rand_msg(&mut rng);
        let sig = kp.sk.sign(&msg, None).to_vec();
        assert!(verify(Algorithm::EdDSA, &ours, &msg, &sig), "case {i}");
        let mut bad = sig.clone();
        let bit = (rng.next_u32() as usize) % (bad.len() * 8);
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut m2 = msg.clone();
        m2.push(1);
        for (m, s) in [(&msg, &bad), (&m2, &sig)] {
            let theirs = ed25519_compact::Signature::from_slice(s)
                .map(|s| kp.pk.verify(m, &s).is_ok())
                .unwrap_or(false);
            assert_eq!(verify(Algorithm::EdDSA, &ours, m, s), theirs, "case {i}");
            assert!(!theirs);
        }
    }
}
