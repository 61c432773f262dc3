//! The demo's identity provider: an Ed25519 key pair made at start, its
//! JWKS, and a signed token per demo user.

use super::*;

/// The identity provider's key and tokens.
pub struct Idp {
    pub(super) key: ed25519_compact::KeyPair,
    tokens: BTreeMap<String, String>,
}

pub(super) fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        let chars = c.len() + 1;
        for i in 0..chars {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut seed).is_ok() {
            return seed;
        }
    }
    // No /dev/urandom: the standard library's randomly keyed hasher.
    use std::hash::{BuildHasher, Hasher};
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    seed
}

impl Idp {
    /// A fresh key pair and a token per demo user, valid for 24 hours.
    pub fn generate() -> Idp {
        let key = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(random_seed()));
        let mut idp = Idp {
            key,
            tokens: BTreeMap::new(),
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        for (user, groups) in USERS {
            let claims = json!({
                "iss": ISSUER, "sub": user, "aud": AUDIENCE,
                "iat": now, "exp": now + 24 * 3600, "groups": groups,
            });
            let t = idp.sign(&claims);
            idp.tokens.insert(user.to_string(), t);
        }
        idp
    }

    /// A signed token (EdDSA) with these claims.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": KID});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.key.sk.sign(input.as_bytes(), None);
        format!("{input}.{}", b64url(sig.as_ref()))
    }

    /// The demo token of `user`.
    pub fn token(&self, user: &str) -> Option<&str> {
        self.tokens.get(user).map(|s| s.as_str())
    }

    /// The public key set.
    pub fn jwks(&self) -> String {
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": KID,
            "x": b64url(self.key.pk.as_ref()),
        }]})
        .to_string()
    }
}
