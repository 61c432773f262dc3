//! Ed25519 (`ed25519-dalek`, whose 32-bit backend is used on wasm32) and
//! HMAC (RustCrypto `hmac`) keys.

use crate::{HashAlg, KeyError};
use sha2::{Sha256, Sha384, Sha512};

/// Ed25519 public key (32 bytes).
#[derive(Clone, Debug)]
pub struct Ed25519PublicKey {
    key: ed25519_dalek::VerifyingKey,
}

impl Ed25519PublicKey {
    /// Key from its 32-byte encoding (JWK `x`). The encoding must be the
    /// canonical encoding of a curve point that is not of small order (such a key could never verify a
    /// signature under the strict rules, so it is refused here, at
    /// configuration).
    pub fn from_bytes(b: &[u8]) -> Result<Self, KeyError> {
        let bytes: &[u8; 32] = b.try_into().map_err(|_| KeyError::InvalidEd25519Key)?;
        // Canonical encoding: the y coordinate (low 255 bits) below 2^255 - 19.
        let non_canonical =
            bytes[0] >= 0xed && bytes[1..31].iter().all(|&x| x == 0xff) && bytes[31] & 0x7f == 0x7f;
        if non_canonical {
            return Err(KeyError::InvalidEd25519Key);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| KeyError::InvalidEd25519Key)?;
        if key.is_weak() {
            return Err(KeyError::InvalidEd25519Key);
        }
        Ok(Ed25519PublicKey { key })
    }

    /// RFC 8032 verification with the strict checks (canonical `S`, `R` not
    /// of small order).
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match ed25519_dalek::Signature::from_slice(sig) {
            Ok(s) => self.key.verify_strict(msg, &s).is_ok(),
            Err(_) => false,
        }
    }
}

/// HMAC secret (JWK `k`), not empty.
#[derive(Clone)]
pub struct HmacKey {
    secret: Vec<u8>,
}

impl core::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "HmacKey({} bytes)", self.secret.len())
    }
}

impl HmacKey {
    /// Key from the raw secret; an empty secret is refused.
    pub fn new(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptyHmacKey);
        }
        Ok(HmacKey {
            secret: secret.to_vec(),
        })
    }

    pub(crate) fn verify(&self, h: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
        use hmac::{Hmac, Mac};
        fn check<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
            match <M as hmac::digest::KeyInit>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(msg);
                    m.verify_slice(sig).is_ok()
                }
                Err(_) => false,
            }
        }
        match h {
            HashAlg::Sha256 => check::<Hmac<Sha256>>(&self.secret, msg, sig),
            HashAlg::Sha384 => check::<Hmac<Sha384>>(&self.secret, msg, sig),
            HashAlg::Sha512 => check::<Hmac<Sha512>>(&self.secret, msg, sig),
        }
    }
}
