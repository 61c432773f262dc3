//! Published vectors (RFC 7515 appendix A, RFC 8037 appendix A.4), key rules,
//! algorithm/key-type confusion, and no-panic checks on garbage input.

use super::*;

fn b64(s: &str) -> Vec<u8> {
    base64url_decode(s).expect("valid base64url in test vector")
}

/// Splits a compact JWS into (signing input, decoded signature).
fn split(token: &str) -> (&[u8], Vec<u8>) {
    let dot = token.rfind('.').unwrap();
    (&token.as_bytes()[..dot], b64(&token[dot + 1..]))
}

const RFC7515_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

pub(crate) const RFC7515_A2_N: &str = concat!(
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx",
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs",
    "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH",
    "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV",
    "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8",
    "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
);
pub(crate) const RFC7515_A2_SIG: &str = concat!(
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
    "p0igcN_IoypGlUPQGe77Rw"
);

fn rfc_a1() -> (PublicKey, String, Vec<u8>) {
    let k = b64(
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    );
    let input = format!("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{RFC7515_PAYLOAD}");
    let sig = b64("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    (PublicKey::Oct(HmacKey::new(&k).unwrap()), input, sig)
}

fn rfc_a2() -> (PublicKey, String, Vec<u8>) {
    let key = RsaPublicKey::from_components(&b64(RFC7515_A2_N), &b64("AQAB")).unwrap();
    assert_eq!(key.bits(), 2048);
    let input = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}");
    (PublicKey::Rsa(key), input, b64(RFC7515_A2_SIG))
}

fn rfc_a3() -> (PublicKey, String, Vec<u8>) {
    let key = EcPublicKey::p256(
        &b64("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"),
        &b64("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"),
    )
    .unwrap();
    let input = format!("eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}");
    let sig = b64(
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
    );
    (PublicKey::Ec(key), input, sig)
}

fn rfc8037() -> (PublicKey, String, Vec<u8>) {
    let key =
        Ed25519PublicKey::from_bytes(&b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")).unwrap();
    let (input, sig) = split(
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    );
    (
        PublicKey::Ed25519(key),
        String::from_utf8(input.to_vec()).unwrap(),
        sig,
    )
}

/// Checks that the vector verifies, and that flipping any single bit of the
/// signature (sampled), or changing the input, or using any other algorithm
/// makes it fail.
fn check_vector(alg: Algorithm, key: &PublicKey, input: &str, sig: &[u8]) {
    assert!(
        verify(alg, key, input.as_bytes(), sig),
        "{alg} vector must verify"
    );
    let step = (sig.len() * 8 / 64).max(1);
    for bit in (0..sig.len() * 8).step_by(step) {
        let mut s = sig.to_vec();
        s[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify(alg, key, input.as_bytes(), &s),
            "{alg} flipped bit {bit}"
        );
    }
    let mut m = input.as_bytes().to_vec();
    let last = m.len() - 1;
    m[last] ^= 1;
    assert!(!verify(alg, key, &m, sig), "{alg} altered input");
    assert!(
        !verify(alg, key, input.as_bytes(), &sig[..sig.len() - 1]),
        "{alg} truncated"
    );
    let mut longer = sig.to_vec();
    longer.push(0);
    assert!(
        !verify(alg, key, input.as_bytes(), &longer),
        "{alg} extended"
    );
    assert!(
        !verify(alg, key, input.as_bytes(), &[]),
        "{alg} empty signature"
    );
    for other in Algorithm::ALL {
        if other != alg {
            assert!(
                !verify(other, key, input.as_bytes(), sig),
                "{alg} key with {other}"
            );
        }
    }
}

#[test]
fn rfc7515_a1_hs256() {
    let (k, i, s) = rfc_a1();
    check_vector(Algorithm::HS256, &k, &i, &s);
}

#[test]
fn rfc7515_a2_rs256() {
    let (k, i, s) = rfc_a2();
    check_vector(Algorithm::RS256, &k, &i, &s);
}

#[test]
fn rfc7515_a3_es256() {
    let (k, i, s) = rfc_a3();
    check_vector(Algorithm::ES256, &k, &i, &s);
}

#[test]
fn rfc8037_a4_eddsa() {
    let (k, i, s) = rfc8037();
    check_vector(Algorithm::EdDSA, &k, &i, &s);
}

#[test]
fn algorithm_names() {
    for a in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(a.name()), Some(a));
        assert_eq!(a.to_string(), a.name());
    }
    for bad in [
        "none", "None", "NONE", "rs256", "HS1", "ES512", "", "RS256 ", "EdDSA\0",
    ] {
        assert_eq!(Algorithm::from_name(bad), None, "{bad:?}");
    }
    assert_eq!(Algorithm::PS384.key_type(), KeyType::Rsa);
    assert_eq!(Algorithm::ES384.key_type(), KeyType::EcP384);
    assert_eq!(Algorithm::HS512.key_type(), KeyType::Oct);
    assert_eq!(Algorithm::EdDSA.key_type(), KeyType::Ed25519);
}

#[test]
fn rsa_key_rules() {
    let n = b64(RFC7515_A2_N);
    let e = b64("AQAB");
    // Leading zeros are fine.
    let mut n0 = vec![0, 0];
    n0.extend_from_slice(&n);
    let k = RsaPublicKey::from_components(&n0, &[0, 1, 0, 1]).unwrap();
    assert_eq!(k.bits(), 2048);
    // 2047-bit modulus refused.
    let mut small = n.clone();
    small[0] >>= 1;
    assert_eq!(
        RsaPublicKey::from_components(&small, &e).unwrap_err(),
        KeyError::RsaModulusTooSmall { bits: 2047 }
    );
    assert_eq!(
        RsaPublicKey::from_components(&n[..128], &e).unwrap_err(),
        KeyError::RsaModulusTooSmall { bits: 1024 }
    );
    assert_eq!(
        RsaPublicKey::from_components(&[], &e).unwrap_err(),
        KeyError::RsaModulusTooSmall { bits: 0 }
    );
    let mut huge = vec![0xffu8; 1025];
    huge[1024] = 0xfb;
    assert_eq!(
        RsaPublicKey::from_components(&huge, &e).unwrap_err(),
        KeyError::RsaModulusTooLarge { bits: 8200 }
    );
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    assert_eq!(
        RsaPublicKey::from_components(&even, &e).unwrap_err(),
        KeyError::RsaModulusEven
    );
    for bad_e in [
        &[][..],
        &[1],
        &[0, 1],
        &[2],
        &[1, 0, 0],
        &[2, 0, 0, 0, 1],
        &[3, 0, 0, 0, 1],
    ] {
        assert_eq!(
            RsaPublicKey::from_components(&n, bad_e).unwrap_err(),
            KeyError::RsaInvalidExponent,
            "{bad_e:?}"
        );
    }
    assert!(RsaPublicKey::from_components(&n, &[3]).is_ok());
    assert!(RsaPublicKey::from_components(&n, &[1, 0, 0, 0, 1]).is_ok()); // 33 bits
    let max8192 = {
        let mut v = vec![0xffu8; 1024];
        v[1023] = 0xfd;
        v
    };
    assert_eq!(
        RsaPublicKey::from_components(&max8192, &e).unwrap().bits(),
        8192
    );
    assert!(!KeyError::RsaInvalidExponent.to_string().is_empty());
}

#[test]
fn ec_key_rules() {
    let x = b64("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU");
    let y = b64("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
    assert_eq!(
        EcPublicKey::p256(&x, &y).unwrap().key_type(),
        KeyType::EcP256
    );
    let mut y2 = y.clone();
    y2[31] ^= 1;
    assert_eq!(
        EcPublicKey::p256(&x, &y2).unwrap_err(),
        KeyError::InvalidEcPoint
    );
    // A P-256 point is not a P-384 point.
    assert!(EcPublicKey::p384(&x, &y).is_err());
    let mut long = vec![1u8];
    long.extend_from_slice(&x);
    assert_eq!(
        EcPublicKey::p256(&long, &y).unwrap_err(),
        KeyError::InvalidEcCoordinate
    );
    // The point at infinity / zero coordinates are refused.
    assert!(EcPublicKey::p256(&[0; 32], &[0; 32]).is_err());
    assert!(EcPublicKey::p256(&[], &[]).is_err());
    // Coordinates >= p are refused.
    assert!(EcPublicKey::p256(&[0xff; 32], &y).is_err());
    assert!(EcPublicKey::p384(&[0xff; 48], &[0xff; 48]).is_err());
}

#[test]
fn ed25519_and_hmac_key_rules() {
    assert_eq!(
        Ed25519PublicKey::from_bytes(&[1; 31]).unwrap_err(),
        KeyError::InvalidEd25519Key
    );
    assert_eq!(
        Ed25519PublicKey::from_bytes(&[1; 33]).unwrap_err(),
        KeyError::InvalidEd25519Key
    );
    // The identity point (small order) and a non-canonical y (>= p) are refused.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        Ed25519PublicKey::from_bytes(&identity).unwrap_err(),
        KeyError::InvalidEd25519Key
    );
    let mut big = [0xffu8; 32];
    big[31] = 0x7f;
    assert_eq!(
        Ed25519PublicKey::from_bytes(&big).unwrap_err(),
        KeyError::InvalidEd25519Key
    );
    assert_eq!(HmacKey::new(&[]).unwrap_err(), KeyError::EmptyHmacKey);
    assert!(HmacKey::new(b"k").is_ok());
    assert_eq!(
        PublicKey::Oct(HmacKey::new(b"k").unwrap()).key_type(),
        KeyType::Oct
    );
}

#[test]
fn garbage_never_panics() {
    let keys = [rfc_a1().0, rfc_a2().0, rfc_a3().0, rfc8037().0];
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..400 {
        let len = (next() % 600) as usize;
        let sig: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let msg: Vec<u8> = (0..(next() % 100)).map(|_| next() as u8).collect();
        for k in &keys {
            for a in Algorithm::ALL {
                assert!(!verify(a, k, &msg, &sig), "round {round}");
            }
        }
        // Random key material.
        let n: Vec<u8> = (0..(next() % 300)).map(|_| next() as u8).collect();
        let _ = RsaPublicKey::from_components(&n, &sig[..sig.len().min(5)]);
        let _ = EcPublicKey::p256(&n[..n.len().min(32)], &sig[..sig.len().min(32)]);
        let _ = EcPublicKey::p384(&n[..n.len().min(48)], &sig[..sig.len().min(48)]);
        let _ = Ed25519PublicKey::from_bytes(&n[..n.len().min(32)]);
    }
    // Special signature values for RSA: 0, 1, n-1, n, all ones.
    let (k, input, _) = rfc_a2();
    let n = b64(RFC7515_A2_N);
    let mut n_minus_1 = n.clone();
    *n_minus_1.last_mut().unwrap() -= 1;
    let one = {
        let mut v = vec![0u8; 256];
        v[255] = 1;
        v
    };
    for s in [vec![0u8; 256], one, n_minus_1, n.clone(), vec![0xff; 256]] {
        for a in [Algorithm::RS256, Algorithm::PS256, Algorithm::RS512] {
            assert!(!verify(a, &k, input.as_bytes(), &s));
        }
    }
    // ECDSA: r or s zero / equal to n / all ones.
    let (k, input, sig) = rfc_a3();
    let n = b64("_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE");
    for (r, s) in [
        (vec![0u8; 32], sig[32..].to_vec()),
        (sig[..32].to_vec(), vec![0u8; 32]),
        (n.clone(), sig[32..].to_vec()),
        (sig[..32].to_vec(), n.clone()),
        (vec![0xff; 32], vec![0xff; 32]),
    ] {
        let mut rs = r.clone();
        rs.extend_from_slice(&s);
        assert!(!verify(Algorithm::ES256, &k, input.as_bytes(), &rs));
    }
}

/// Signs with the established crates (dev-dependencies) and verifies with
/// this crate, for every algorithm.
#[test]
fn every_algorithm_with_generated_keys() {
    use rand_core::SeedableRng;
    use rsa::traits::PublicKeyParts;
    use sha2::{Digest, Sha256, Sha384, Sha512};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let msg = b"eyJhbGciOiJYIn0.eyJzdWIiOiJ0ZXN0In0";

    let sk = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let pk = sk.to_public_key();
    let key = PublicKey::Rsa(
        RsaPublicKey::from_components(&pk.n().to_bytes_be(), &pk.e().to_bytes_be()).unwrap(),
    );
    let cases: Vec<(Algorithm, Vec<u8>)> = vec![
        (
            Algorithm::RS256,
            sk.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg))
                .unwrap(),
        ),
        (
            Algorithm::RS384,
            sk.sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg))
                .unwrap(),
        ),
        (
            Algorithm::RS512,
            sk.sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg))
                .unwrap(),
        ),
        (
            Algorithm::PS256,
            sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha256>(), &Sha256::digest(msg))
                .unwrap(),
        ),
        (
            Algorithm::PS384,
            sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha384>(), &Sha384::digest(msg))
                .unwrap(),
        ),
        (
            Algorithm::PS512,
            sk.sign_with_rng(&mut rng, rsa::Pss::new::<Sha512>(), &Sha512::digest(msg))
                .unwrap(),
        ),
    ];
    for (alg, sig) in &cases {
        assert!(verify(*alg, &key, msg, sig), "{alg}");
        for (other, _) in &cases {
            if other != alg {
                assert!(
                    !verify(*other, &key, msg, sig),
                    "{alg} signature as {other}"
                );
            }
        }
    }
    // PSS with a salt length other than the digest length is refused (as Envoy/BoringSSL).
    let short_salt = sk
        .sign_with_rng(
            &mut rng,
            rsa::Pss::new_with_salt::<Sha256>(20),
            &Sha256::digest(msg),
        )
        .unwrap();
    assert!(!verify(Algorithm::PS256, &key, msg, &short_salt));

    // ES256 / ES384.
    {
        use p256::ecdsa::signature::Signer;
        let sk = p256::ecdsa::SigningKey::random(&mut rng);
        let pt = sk.verifying_key().to_encoded_point(false);
        let key = PublicKey::Ec(EcPublicKey::p256(pt.x().unwrap(), pt.y().unwrap()).unwrap());
        let sig: p256::ecdsa::Signature = sk.sign(msg);
        check_vector(
            Algorithm::ES256,
            &key,
            core::str::from_utf8(msg).unwrap(),
            &sig.to_bytes(),
        );
    }
    {
        use p384::ecdsa::signature::Signer;
        let sk = p384::ecdsa::SigningKey::random(&mut rng);
        let pt = sk.verifying_key().to_encoded_point(false);
        let key = PublicKey::Ec(EcPublicKey::p384(pt.x().unwrap(), pt.y().unwrap()).unwrap());
        let sig: p384::ecdsa::Signature = sk.sign(msg);
        check_vector(
            Algorithm::ES384,
            &key,
            core::str::from_utf8(msg).unwrap(),
            &sig.to_bytes(),
        );
    }
    // EdDSA.
    {
        let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([9; 32]));
        let key = PublicKey::Ed25519(Ed25519PublicKey::from_bytes(kp.pk.as_ref()).unwrap());
        let sig = kp.sk.sign(msg, None);
        check_vector(
            Algorithm::EdDSA,
            &key,
            core::str::from_utf8(msg).unwrap(),
            sig.as_ref(),
        );
    }
}

/// RFC 4231 test case 2 ("Jefe") for HMAC-SHA-256/384/512.
#[test]
fn rfc4231_hmac() {
    let key = PublicKey::Oct(HmacKey::new(b"Jefe").unwrap());
    let msg = b"what do ya want for nothing?";
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let m = core::str::from_utf8(msg).unwrap();
    check_vector(
        Algorithm::HS256,
        &key,
        m,
        &hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    );
    check_vector(
        Algorithm::HS384,
        &key,
        m,
        &hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
    );
    check_vector(
        Algorithm::HS512,
        &key,
        m,
        &hex("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
    );
}

/// Random structurally valid keys (odd moduli of every size around the
/// limits, random exponents; random curve points) with random signatures of
/// the right and wrong lengths: always refused, never a panic.
#[test]
fn random_keys_and_signatures_never_panic() {
    let mut x: u64 = 0x0ddb_a11c_afe0_f00d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let msg = b"eyJhbGciOiJQUzI1NiJ9.e30";
    for bits in (2048usize..=2080).chain([3072, 4095, 4096, 8191, 8192]) {
        let len = bits.div_ceil(8);
        let mut n: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let top_bit = (bits - 1) % 8;
        n[0] &= ((1u16 << (top_bit + 1)) - 1) as u8;
        n[0] |= 1 << top_bit;
        *n.last_mut().unwrap() |= 1;
        let e_bits = 2 + (next() % 32) as u32;
        let e = ((next() & ((1u64 << e_bits) - 1)) | (1u64 << (e_bits - 1)) | 1).to_be_bytes();
        let key = RsaPublicKey::from_components(&n, &e).unwrap();
        assert_eq!(key.bits(), bits);
        let key = PublicKey::Rsa(key);
        for sig_len in [len - 1, len, len, len, len + 1] {
            let mut sig: Vec<u8> = (0..sig_len).map(|_| next() as u8).collect();
            if sig_len == len && next() % 2 == 0 {
                sig[0] &= n[0] >> 1; // below n
            }
            for alg in Algorithm::ALL {
                assert!(!verify(alg, &key, msg, &sig), "{bits} bits {alg}");
            }
        }
    }
    // EC: multiples of random valid points are not needed; random signatures
    // against the RFC key and a generated one.
    let (k, _, _) = rfc_a3();
    for _ in 0..300 {
        let len = [0, 1, 63, 64, 64, 64, 65, 96, 128][(next() % 9) as usize];
        let sig: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(!verify(Algorithm::ES256, &k, msg, &sig));
        assert!(!verify(Algorithm::ES384, &k, msg, &sig));
    }
}
