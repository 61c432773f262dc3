//! Keys, signed tokens and scenario runs for the integration tests.
//!
//! Keys are generated here with the RustCrypto crates (fixed seeds, so runs
//! are reproducible); tokens are signed with them; scenarios are YAML
//! templates whose `{{NAME}}` placeholders are filled in, then run by the
//! harness against the real `jwt_authn.wasm`.

#![allow(dead_code)]

use hmac::{Hmac, Mac};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Virtual clock of every generated scenario (the harness default).
pub const NOW: u64 = 1_700_000_000;

pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A signing key of any supported kind.
pub enum Key {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed(ed25519_compact::KeyPair),
    Oct(Vec<u8>),
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The shared RSA key (2048 bits), generated once per test binary.
pub fn rsa_key(which: usize) -> &'static RsaPrivateKey {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..2)
            .map(|i| RsaPrivateKey::new(&mut rng(1000 + i), 2048).expect("rsa keygen"))
            .collect()
    })[which]
}

impl Key {
    pub fn rsa(which: usize) -> Key {
        Key::Rsa(Box::new(rsa_key(which).clone()))
    }
    pub fn p256(seed: u64) -> Key {
        Key::P256(p256::ecdsa::SigningKey::random(&mut rng(seed)))
    }
    pub fn p384(seed: u64) -> Key {
        Key::P384(p384::ecdsa::SigningKey::random(&mut rng(seed)))
    }
    pub fn ed(seed: u8) -> Key {
        Key::Ed(ed25519_compact::KeyPair::from_seed(
            ed25519_compact::Seed::new([seed; 32]),
        ))
    }
    pub fn oct(secret: &str) -> Key {
        Key::Oct(secret.as_bytes().to_vec())
    }

    /// The public JWK (with `kid`, and `alg` when given).
    pub fn jwk(&self, kid: &str, alg: Option<&str>) -> String {
        let mut m = BTreeMap::new();
        if !kid.is_empty() {
            m.insert("kid", kid.to_string());
        }
        if let Some(a) = alg {
            m.insert("alg", a.to_string());
        }
        match self {
            Key::Rsa(k) => {
                m.insert("kty", "RSA".into());
                m.insert("n", b64(&k.n().to_bytes_be()));
                m.insert("e", b64(&k.e().to_bytes_be()));
            }
            Key::P256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                m.insert("kty", "EC".into());
                m.insert("crv", "P-256".into());
                m.insert("x", b64(p.x().unwrap()));
                m.insert("y", b64(p.y().unwrap()));
            }
            Key::P384(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                m.insert("kty", "EC".into());
                m.insert("crv", "P-384".into());
                m.insert("x", b64(p.x().unwrap()));
                m.insert("y", b64(p.y().unwrap()));
            }
            Key::Ed(k) => {
                m.insert("kty", "OKP".into());
                m.insert("crv", "Ed25519".into());
                m.insert("x", b64(k.pk.as_ref()));
            }
            Key::Oct(s) => {
                m.insert("kty", "oct".into());
                m.insert("k", b64(s));
            }
        }
        serde_json::to_string(&m).unwrap()
    }

    /// Signs `input` with `alg`.
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        match (self, alg) {
            (Key::Rsa(k), "RS256") => k
                .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input))
                .unwrap(),
            (Key::Rsa(k), "RS384") => k
                .sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(input))
                .unwrap(),
            (Key::Rsa(k), "RS512") => k
                .sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(input))
                .unwrap(),
            (Key::Rsa(k), "PS256") => k
                .sign_with_rng(&mut rng(7), Pss::new::<Sha256>(), &Sha256::digest(input))
                .unwrap(),
            (Key::Rsa(k), "PS384") => k
                .sign_with_rng(&mut rng(7), Pss::new::<Sha384>(), &Sha384::digest(input))
                .unwrap(),
            (Key::Rsa(k), "PS512") => k
                .sign_with_rng(&mut rng(7), Pss::new::<Sha512>(), &Sha512::digest(input))
                .unwrap(),
            (Key::P256(k), "ES256") => {
                use p256::ecdsa::signature::Signer;
                let s: p256::ecdsa::Signature = k.sign(input);
                s.to_bytes().to_vec()
            }
            (Key::P384(k), "ES384") => {
                use p384::ecdsa::signature::Signer;
                let s: p384::ecdsa::Signature = k.sign(input);
                s.to_bytes().to_vec()
            }
            (Key::Ed(k), "EdDSA") => k.sk.sign(input, None).as_ref().to_vec(),
            (Key::Oct(s), "HS256") => hmac::<Hmac<Sha256>>(s, input),
            (Key::Oct(s), "HS384") => hmac::<Hmac<Sha384>>(s, input),
            (Key::Oct(s), "HS512") => hmac::<Hmac<Sha512>>(s, input),
            // Anything else: sign with HMAC-SHA256 over the key's JWK text,
            // which is what an algorithm-confusion attacker would do.
            (k, _) => hmac::<Hmac<Sha256>>(k.jwk("", None).as_bytes(), input),
        }
    }
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], input: &[u8]) -> Vec<u8> {
    let mut m = <M as Mac>::new_from_slice(key).unwrap();
    m.update(input);
    m.finalize().into_bytes().to_vec()
}

/// A JWKS document from JWKs.
pub fn jwks(keys: &[String]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

/// A token with the given header and payload JSON, signed with `key` using
/// the header's `alg`.
pub fn token_with_header(key: &Key, header: &str, payload: &str) -> String {
    let h: serde_json::Value = serde_json::from_str(header).unwrap();
    let alg = h["alg"].as_str().unwrap_or("none").to_string();
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = key.sign(&alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// A token signed with `alg` and `kid` (empty: no kid).
pub fn token(key: &Key, alg: &str, kid: &str, payload: &str) -> String {
    let header = if kid.is_empty() {
        format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)
    } else {
        format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"JWT"}}"#)
    };
    token_with_header(key, &header, payload)
}

/// A standard payload: issuer, subject `alice`, expiring in an hour, plus `extra` members.
pub fn claims(iss: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"iss":"{iss}","sub":"alice","iat":{NOW},"exp":{}{sep}{extra}}}"#,
        NOW + 3600
    )
}

/// Fills `{{NAME}}` placeholders.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!s.contains("{{"), "unfilled placeholder in:\n{s}");
    s
}

/// The host options every scenario of these tests runs under: with Envoy's
/// `verify_signature` (RS*/ES* verified by the host) and without it
/// (everything in wasm). Verdicts must be identical.
pub const HOST_MODES: [&str; 2] = ["native", "off"];

/// Runs a scenario given as YAML text once per [`HOST_MODES`] entry; panics
/// with the harness report if it fails.
pub fn run(yaml: &str) {
    for mode in HOST_MODES {
        run_as_is(&format!("verify_signature: {mode}\n{yaml}"));
    }
}

/// Runs a scenario given as YAML text as it is (it may set
/// `verify_signature` itself); panics with the harness report if it fails.
pub fn run_as_is(yaml: &str) {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let s = wasmesh::scenario::Scenario::from_yaml_str(yaml, &base)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let report = wasmesh::scenario::run(&s, &wasmesh::scenario::RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.passed(),
        "{}\n{report}",
        yaml.lines().next().unwrap_or_default()
    );
}
