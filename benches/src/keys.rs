//! Keys and signed tokens for the JWT benchmarks, generated with the
//! established RustCrypto crates from fixed seeds (reproducible runs).

use hmac::Mac;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

/// The issuer of every benchmark token.
pub const ISSUER: &str = "https://idp.example.com";
/// The example configuration's HS256 secret
/// (`examples/jwt-authn/config.json`, `k` decoded).
pub const EXAMPLE_SECRET: &[u8] = b"example-secret-do-not-use-in-production";

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The signing keys of the algorithm benchmarks.
pub struct Keys {
    pub rsa: rsa::RsaPrivateKey,
    pub p256: p256::ecdsa::SigningKey,
    pub ed: ed25519_compact::KeyPair,
    pub hmac: Vec<u8>,
}

/// The JWS algorithms benchmarked (issue 10), with the `kid` of their key.
pub const ALGORITHMS: &[(&str, &str)] = &[
    ("RS256", "rsa"),
    ("PS256", "rsa"),
    ("ES256", "ec"),
    ("EdDSA", "ed"),
    ("HS256", "hs"),
];

impl Keys {
    /// Generates the keys (RSA 2048-bit: about a second).
    pub fn generate() -> Keys {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        Keys {
            rsa: rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa keygen"),
            p256: p256::ecdsa::SigningKey::random(&mut rng),
            ed: ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32])),
            hmac: b"0123456789abcdef0123456789abcdef".to_vec(),
        }
    }

    /// The public JWKS with one key per kind (`kid`s rsa, ec, ed, hs).
    pub fn jwks(&self) -> serde_json::Value {
        let p = self.p256.verifying_key().to_encoded_point(false);
        serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": b64(&self.rsa.n().to_bytes_be()), "e": b64(&self.rsa.e().to_bytes_be())},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(p.x().expect("x")), "y": b64(p.y().expect("y"))},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(self.ed.pk.as_ref())},
            {"kty": "oct", "kid": "hs", "k": b64(&self.hmac)},
        ]})
    }

    /// Signs `input` with `alg`.
    pub fn sign(&self, alg: &str, input: &[u8]) -> Vec<u8> {
        match alg {
            "RS256" => self
                .rsa
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input))
                .expect("rsa sign"),
            "PS256" => self
                .rsa
                .sign_with_rng(
                    &mut ChaCha20Rng::seed_from_u64(11),
                    rsa::Pss::new::<Sha256>(),
                    &Sha256::digest(input),
                )
                .expect("pss sign"),
            "ES256" => {
                use p256::ecdsa::signature::Signer;
                let s: p256::ecdsa::Signature = self.p256.sign(input);
                s.to_bytes().to_vec()
            }
            "EdDSA" => self.ed.sk.sign(input, None).as_ref().to_vec(),
            "HS256" => hs256(&self.hmac, input),
            other => panic!("no benchmark key for {other}"),
        }
    }

    /// A token signed with `alg` (its key's `kid`) for `payload`.
    pub fn token(&self, alg: &str, payload: &serde_json::Value) -> String {
        let kid = ALGORITHMS
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, k)| *k)
            .unwrap_or("");
        let header = serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = self.sign(alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}

/// HMAC-SHA256.
pub fn hs256(key: &[u8], input: &[u8]) -> Vec<u8> {
    let mut m =
        <hmac::Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key).expect("hmac key");
    m.update(input);
    m.finalize().into_bytes().to_vec()
}

/// A token signed with the example configuration's HS256 key (`kid` 2024).
pub fn example_token(payload: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "HS256", "kid": "2024", "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = hs256(EXAMPLE_SECRET, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

/// The standard claims of the benchmark tokens (valid until 2100).
pub fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({
        "iss": ISSUER, "sub": "alice", "aud": "orders",
        "iat": 1_700_000_000u64, "exp": 4_102_444_800u64,
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}
