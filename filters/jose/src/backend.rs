//! Ed25519 (ed25519-compact) and HMAC (RustCrypto `hmac`) keys.

use crate::{HashAlg, KeyError};
use sha2::{Sha256, Sha384, Sha512};

/// Ed25519 public key (32 bytes).
#[derive(Clone, Debug)]
pub struct Ed25519PublicKey {
    key: ed25519_compact::PublicKey,
}

impl Ed25519PublicKey {
    /// Key from its 32-byte encoding (JWK `x`).
    pub fn from_bytes(b: &[u8]) -> Result<Self, KeyError> {
        let key =
            ed25519_compact::PublicKey::from_slice(b).map_err(|_| KeyError::InvalidEd25519Key)?;
        Ok(Ed25519PublicKey { key })
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match ed25519_compact::Signature::from_slice(sig) {
            Ok(s) => self.key.verify(msg, &s).is_ok(),
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
