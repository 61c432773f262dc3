//! JWS signature verification for the wasmesh JWT filter.
//!
//! Pure Rust, no proxy-wasm dependency. Keys are decoded and checked once
//! (at configuration time) into the key types below; [`verify`] then checks a
//! signature over the JWS signing input (`base64url(header).base64url(payload)`).
//!
//! Supported algorithms (RFC 7518 §3, RFC 8037): RS256/384/512, PS256/384/512,
//! ES256, ES384, EdDSA (Ed25519) and HS256/384/512. `none` is not an algorithm
//! here: [`Algorithm::from_name`] returns `None` for it.

mod b64;

pub use b64::base64url_decode;

use core::fmt;

/// A JWS signature algorithm (the `alg` header value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt length 32.
    PS256,
    /// RSASSA-PSS with SHA-384, MGF1 with SHA-384, salt length 48.
    PS384,
    /// RSASSA-PSS with SHA-512, MGF1 with SHA-512, salt length 64.
    PS512,
    /// ECDSA on P-256 with SHA-256; signature is raw `R || S` (64 bytes).
    ES256,
    /// ECDSA on P-384 with SHA-384; signature is raw `R || S` (96 bytes).
    ES384,
    /// Ed25519 (RFC 8037); signature is 64 bytes.
    EdDSA,
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
    ];

    /// Parses a JWS `alg` value (case-sensitive). `"none"` and unknown
    /// names give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The JWS `alg` name, e.g. `"RS256"`.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    /// The only key type this algorithm can be verified with.
    pub fn key_type(&self) -> KeyType {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyType::Rsa,
            Algorithm::ES256 => KeyType::EcP256,
            Algorithm::ES384 => KeyType::EcP384,
            Algorithm::EdDSA => KeyType::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyType::Oct,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of key (JWK `kty` plus, for EC, `crv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    EcP256,
    /// `kty: EC`, `crv: P-384`.
    EcP384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
    /// `kty: oct` (HMAC secret).
    Oct,
}

/// Why a key was refused at construction time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// RSA modulus below 2048 bits (RFC 7518 §3.3 requires at least 2048).
    RsaModulusTooSmall {
        /// Size of the modulus that was given.
        bits: usize,
    },
    /// RSA modulus above 8192 bits.
    RsaModulusTooLarge {
        /// Size of the modulus that was given.
        bits: usize,
    },
    /// RSA modulus is even (not a product of odd primes).
    RsaModulusEven,
    /// RSA public exponent is even, 1, larger than 33 bits, or not below the modulus.
    RsaInvalidExponent,
    /// EC coordinate longer than the curve's field size, or not below the field prime.
    InvalidEcCoordinate,
    /// The (x, y) pair is not a point on the curve.
    InvalidEcPoint,
    /// Ed25519 public key is not 32 bytes, not a canonical point encoding, or
    /// a point of small order.
    InvalidEd25519Key,
    /// HMAC secret is empty.
    EmptyHmacKey,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::RsaModulusTooSmall { bits } => write!(
                f,
                "RSA modulus is {bits} bits; at least 2048 bits are required (RFC 7518 section 3.3)"
            ),
            KeyError::RsaModulusTooLarge { bits } => {
                write!(f, "RSA modulus is {bits} bits; at most 8192 bits are supported")
            }
            KeyError::RsaModulusEven => f.write_str("RSA modulus is even"),
            KeyError::RsaInvalidExponent => f.write_str(
                "RSA public exponent must be odd, greater than 1, at most 33 bits and below the modulus",
            ),
            KeyError::InvalidEcCoordinate => {
                f.write_str("EC coordinate is too long or not below the field prime")
            }
            KeyError::InvalidEcPoint => f.write_str("EC public key is not a point on the curve"),
            KeyError::InvalidEd25519Key => {
                f.write_str("Ed25519 public key must be the 32-byte encoding of a curve point of large order")
            }
            KeyError::EmptyHmacKey => f.write_str("HMAC secret is empty"),
        }
    }
}

impl std::error::Error for KeyError {}

mod backend;
mod ec;
mod mont;
mod rsassa;

pub use backend::{Ed25519PublicKey, HmacKey};
pub use rsassa::{RsaPublicKey, MAX_RSA_BITS, MAX_RSA_EXPONENT_BITS, MIN_RSA_BITS};

/// EC public key on P-256 or P-384, validated to be a point on the curve.
/// A table of small multiples used by verification is computed here, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcPublicKey {
    inner: ec::EcInner,
}

impl EcPublicKey {
    /// P-256 key from big-endian affine coordinates (JWK `x`, `y`; RFC 7518
    /// asks for exactly 32 bytes each, shorter values with the leading zero
    /// bytes left out are accepted too). Coordinates must be below the field
    /// prime and the point must be on the curve.
    pub fn p256(x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        ec::EcInner::p256(x, y).map(|inner| EcPublicKey { inner })
    }

    /// P-384 key from big-endian affine coordinates (48 bytes each), checked
    /// as for [`EcPublicKey::p256`].
    pub fn p384(x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        ec::EcInner::p384(x, y).map(|inner| EcPublicKey { inner })
    }

    /// `KeyType::EcP256` or `KeyType::EcP384`.
    pub fn key_type(&self) -> KeyType {
        match self.inner {
            ec::EcInner::P256(_) => KeyType::EcP256,
            ec::EcInner::P384(_) => KeyType::EcP384,
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.inner.verify(msg, sig)
    }
}

/// A verification key of any supported type.
#[derive(Clone, Debug)]
pub enum PublicKey {
    /// RSA public key (RS*, PS*).
    Rsa(RsaPublicKey),
    /// EC public key on P-256 or P-384 (ES256, ES384).
    Ec(EcPublicKey),
    /// Ed25519 public key (EdDSA).
    Ed25519(Ed25519PublicKey),
    /// HMAC secret (HS*).
    Oct(HmacKey),
}

impl PublicKey {
    /// The key's type; an algorithm fits the key when `alg.key_type() == key.key_type()`.
    pub fn key_type(&self) -> KeyType {
        match self {
            PublicKey::Rsa(_) => KeyType::Rsa,
            PublicKey::Ec(k) => k.key_type(),
            PublicKey::Ed25519(_) => KeyType::Ed25519,
            PublicKey::Oct(_) => KeyType::Oct,
        }
    }
}

/// Verifies `signature` over `signing_input` (the ASCII `header.payload`).
///
/// Returns false — never panics — on any mismatch, including an algorithm
/// that does not fit the key type (HS256 with an RSA key, RS256 with an EC
/// key, ES256 with a P-384 key, ...). ECDSA signatures are JWS raw `R || S`
/// (64/96 bytes), not DER.
pub fn verify(alg: Algorithm, key: &PublicKey, signing_input: &[u8], signature: &[u8]) -> bool {
    if alg.key_type() != key.key_type() {
        return false;
    }
    match (key, alg) {
        (PublicKey::Rsa(k), Algorithm::RS256) => {
            k.verify_pkcs1(HashAlg::Sha256, signing_input, signature)
        }
        (PublicKey::Rsa(k), Algorithm::RS384) => {
            k.verify_pkcs1(HashAlg::Sha384, signing_input, signature)
        }
        (PublicKey::Rsa(k), Algorithm::RS512) => {
            k.verify_pkcs1(HashAlg::Sha512, signing_input, signature)
        }
        (PublicKey::Rsa(k), Algorithm::PS256) => {
            k.verify_pss(HashAlg::Sha256, signing_input, signature)
        }
        (PublicKey::Rsa(k), Algorithm::PS384) => {
            k.verify_pss(HashAlg::Sha384, signing_input, signature)
        }
        (PublicKey::Rsa(k), Algorithm::PS512) => {
            k.verify_pss(HashAlg::Sha512, signing_input, signature)
        }
        (PublicKey::Ec(k), Algorithm::ES256 | Algorithm::ES384) => {
            k.verify(signing_input, signature)
        }
        (PublicKey::Ed25519(k), Algorithm::EdDSA) => k.verify(signing_input, signature),
        (PublicKey::Oct(k), Algorithm::HS256) => {
            k.verify(HashAlg::Sha256, signing_input, signature)
        }
        (PublicKey::Oct(k), Algorithm::HS384) => {
            k.verify(HashAlg::Sha384, signing_input, signature)
        }
        (PublicKey::Oct(k), Algorithm::HS512) => {
            k.verify(HashAlg::Sha512, signing_input, signature)
        }
        _ => false,
    }
}

/// The SHA-2 function an algorithm uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

/// Strips leading zero bytes (JWK big-endian integers may carry them).
pub(crate) fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

#[cfg(test)]
mod tests;
