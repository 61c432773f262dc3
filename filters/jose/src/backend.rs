//! Key types and verification backed by established RustCrypto crates.

use crate::{strip_leading_zeros, HashAlg, KeyError, KeyType};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// RSA public key, checked at construction: 2048..=8192-bit odd modulus,
/// odd exponent with 1 < e < n and at most 33 bits.
#[derive(Clone, Debug)]
pub struct RsaPublicKey {
    key: rsa::RsaPublicKey,
    bits: usize,
}

impl RsaPublicKey {
    /// Builds a key from the big-endian modulus `n` and exponent `e`
    /// (JWK `n`/`e` after base64url decoding; leading zero bytes allowed).
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_len(n);
        if bits < 2048 {
            return Err(KeyError::RsaModulusTooSmall { bits });
        }
        if bits > 8192 {
            return Err(KeyError::RsaModulusTooLarge { bits });
        }
        if n[n.len() - 1] & 1 == 0 {
            return Err(KeyError::RsaModulusEven);
        }
        let e_bits = bit_len(e);
        if !(2..=33).contains(&e_bits) || e[e.len() - 1] & 1 == 0 {
            return Err(KeyError::RsaInvalidExponent);
        }
        let key = rsa::RsaPublicKey::new_with_max_size(
            rsa::BigUint::from_bytes_be(n),
            rsa::BigUint::from_bytes_be(e),
            8192,
        )
        .map_err(|_| KeyError::RsaInvalidExponent)?;
        Ok(RsaPublicKey { key, bits })
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    pub(crate) fn verify_pkcs1(&self, h: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
        use rsa::traits::PublicKeyParts;
        if sig.len() != self.key.size() {
            return false;
        }
        let r = match h {
            HashAlg::Sha256 => self.key.verify(
                rsa::Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(msg),
                sig,
            ),
            HashAlg::Sha384 => self.key.verify(
                rsa::Pkcs1v15Sign::new::<Sha384>(),
                &Sha384::digest(msg),
                sig,
            ),
            HashAlg::Sha512 => self.key.verify(
                rsa::Pkcs1v15Sign::new::<Sha512>(),
                &Sha512::digest(msg),
                sig,
            ),
        };
        r.is_ok()
    }

    pub(crate) fn verify_pss(&self, h: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
        use rsa::traits::PublicKeyParts;
        if sig.len() != self.key.size() {
            return false;
        }
        let r = match h {
            HashAlg::Sha256 => {
                self.key
                    .verify(rsa::Pss::new::<Sha256>(), &Sha256::digest(msg), sig)
            }
            HashAlg::Sha384 => {
                self.key
                    .verify(rsa::Pss::new::<Sha384>(), &Sha384::digest(msg), sig)
            }
            HashAlg::Sha512 => {
                self.key
                    .verify(rsa::Pss::new::<Sha512>(), &Sha512::digest(msg), sig)
            }
        };
        r.is_ok()
    }
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&b) => (be.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
    }
}

/// EC public key on P-256 or P-384, validated to be a point on the curve.
#[derive(Clone, Debug)]
pub struct EcPublicKey {
    inner: EcInner,
}

#[derive(Clone, Debug)]
enum EcInner {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

/// Left-pads a big-endian coordinate to `size` bytes (after stripping
/// leading zeros); refuses longer ones.
fn coord(b: &[u8], size: usize, out: &mut Vec<u8>) -> Result<(), KeyError> {
    let b = strip_leading_zeros(b);
    if b.len() > size {
        return Err(KeyError::InvalidEcCoordinate);
    }
    out.extend(core::iter::repeat_n(0u8, size - b.len()));
    out.extend_from_slice(b);
    Ok(())
}

impl EcPublicKey {
    /// P-256 key from big-endian affine coordinates (JWK `x`, `y`).
    pub fn p256(x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        let mut sec1 = vec![4u8];
        coord(x, 32, &mut sec1)?;
        coord(y, 32, &mut sec1)?;
        let k = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|_| KeyError::InvalidEcPoint)?;
        Ok(EcPublicKey {
            inner: EcInner::P256(k),
        })
    }

    /// P-384 key from big-endian affine coordinates (JWK `x`, `y`).
    pub fn p384(x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        let mut sec1 = vec![4u8];
        coord(x, 48, &mut sec1)?;
        coord(y, 48, &mut sec1)?;
        let k = p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|_| KeyError::InvalidEcPoint)?;
        Ok(EcPublicKey {
            inner: EcInner::P384(k),
        })
    }

    /// `KeyType::EcP256` or `KeyType::EcP384`.
    pub fn key_type(&self) -> KeyType {
        match self.inner {
            EcInner::P256(_) => KeyType::EcP256,
            EcInner::P384(_) => KeyType::EcP384,
        }
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match &self.inner {
            EcInner::P256(k) => match p256::ecdsa::Signature::from_slice(sig) {
                Ok(s) if sig.len() == 64 => k.verify(msg, &s).is_ok(),
                _ => false,
            },
            EcInner::P384(k) => match p384::ecdsa::Signature::from_slice(sig) {
                Ok(s) if sig.len() == 96 => k.verify(msg, &s).is_ok(),
                _ => false,
            },
        }
    }
}

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
