//! RSA signature verification (RSASSA-PKCS1-v1_5 and RSASSA-PSS, RFC 8017)
//! on the crate's own Montgomery arithmetic.

use crate::mont::{geq, limbs_from_be, limbs_to_be, MontModulus};
use crate::{strip_leading_zeros, HashAlg, KeyError};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Smallest accepted modulus (RFC 7518 §3.3: "A key of size 2048 bits or
/// larger MUST be used with these algorithms").
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted modulus.
pub const MAX_RSA_BITS: usize = 8192;
/// Largest accepted public exponent size (as BoringSSL, which Envoy uses).
pub const MAX_RSA_EXPONENT_BITS: usize = 33;

/// RSA public key, checked at construction: 2048..=8192-bit odd modulus,
/// odd exponent with 1 < e < n and at most 33 bits. The Montgomery
/// constants (`-n^-1 mod 2^32`, `R^2 mod n`) are computed here, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublicKey {
    m: MontModulus,
    e: u64,
    /// `R^e mod n` (see `MontModulus::pow_public_fast`).
    r_e: Vec<u32>,
    bits: usize,
    /// Modulus length in bytes (`k` in RFC 8017).
    k: usize,
}

fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&b) => (be.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
    }
}

/// DER `DigestInfo` prefixes (RFC 8017 §9.2 note 1).
const SHA256_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
const SHA384_PREFIX: &[u8] = &[
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
const SHA512_PREFIX: &[u8] = &[
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

impl RsaPublicKey {
    /// Builds a key from the big-endian modulus `n` and exponent `e`
    /// (JWK `n`/`e` after base64url decoding; leading zero bytes allowed).
    pub fn from_components(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_len(n);
        if bits < MIN_RSA_BITS {
            return Err(KeyError::RsaModulusTooSmall { bits });
        }
        if bits > MAX_RSA_BITS {
            return Err(KeyError::RsaModulusTooLarge { bits });
        }
        if n[n.len() - 1] & 1 == 0 {
            return Err(KeyError::RsaModulusEven);
        }
        let e_bits = bit_len(e);
        // e < n holds: e has at most 33 bits and n at least 2048.
        if !(2..=MAX_RSA_EXPONENT_BITS).contains(&e_bits) || e[e.len() - 1] & 1 == 0 {
            return Err(KeyError::RsaInvalidExponent);
        }
        let e = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let m = MontModulus::new(n).ok_or(KeyError::RsaModulusEven)?;
        let r_e = m.r_pow(e);
        Ok(RsaPublicKey {
            r_e,
            m,
            e,
            bits,
            k: n.len(),
        })
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// RSAVP1: `s^e mod n` as `k` big-endian bytes, or `None` when the
    /// signature is not `k` bytes long or not below `n` (RFC 8017 §5.2.2).
    fn public_op(&self, sig: &[u8]) -> Option<Vec<u8>> {
        if sig.len() != self.k {
            return None;
        }
        let s = limbs_from_be(sig, self.m.limbs());
        if geq(&s, self.m.modulus()) {
            return None;
        }
        let m = self.m.pow_public_fast(&s, self.e, &self.r_e);
        let mut em = Vec::with_capacity(self.k);
        limbs_to_be(&m, self.k, &mut em);
        Some(em)
    }

    /// RSASSA-PKCS1-v1_5-VERIFY: the whole expected encoding
    /// `00 01 FF..FF 00 DigestInfo H` is built and compared byte for byte.
    pub(crate) fn verify_pkcs1(&self, h: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
        let Some(em) = self.public_op(sig) else {
            return false;
        };
        let (prefix, digest): (&[u8], Vec<u8>) = match h {
            HashAlg::Sha256 => (SHA256_PREFIX, Sha256::digest(msg).to_vec()),
            HashAlg::Sha384 => (SHA384_PREFIX, Sha384::digest(msg).to_vec()),
            HashAlg::Sha512 => (SHA512_PREFIX, Sha512::digest(msg).to_vec()),
        };
        let t_len = prefix.len() + digest.len();
        // k >= 256 always (2048-bit minimum), so the padding is long enough.
        let ps_len = self.k - t_len - 3;
        let mut expected = Vec::with_capacity(self.k);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(2 + ps_len, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&digest);
        em == expected
    }

    /// RSASSA-PSS-VERIFY with MGF1 over the same hash and a salt as long as
    /// the hash (RFC 7518 §3.5; BoringSSL's `RSA_PSS_SALTLEN_DIGEST`, which
    /// Envoy uses).
    pub(crate) fn verify_pss(&self, h: HashAlg, msg: &[u8], sig: &[u8]) -> bool {
        let Some(em_full) = self.public_op(sig) else {
            return false;
        };
        match h {
            HashAlg::Sha256 => emsa_pss_verify::<Sha256>(msg, &em_full, self.bits - 1),
            HashAlg::Sha384 => emsa_pss_verify::<Sha384>(msg, &em_full, self.bits - 1),
            HashAlg::Sha512 => emsa_pss_verify::<Sha512>(msg, &em_full, self.bits - 1),
        }
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with sLen = hLen. `em_full` is the
/// k-byte output of RSAVP1; `em_bits = modBits - 1`.
fn emsa_pss_verify<D: Digest>(msg: &[u8], em_full: &[u8], em_bits: usize) -> bool {
    let h_len = <D as Digest>::output_size();
    let s_len = h_len;
    let em_len = em_bits.div_ceil(8);
    // When modBits - 1 is a multiple of 8, EM is one byte shorter than k and
    // the leading byte of the integer must be zero.
    let (lead, em) = em_full.split_at(em_full.len() - em_len);
    if lead.iter().any(|&b| b != 0) {
        return false;
    }
    if em_len < h_len + s_len + 2 || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, rest) = em.split_at(em_len - h_len - 1);
    let hash = &rest[..h_len];
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    // DB = maskedDB xor MGF1(H, len).
    let mut db = masked_db.to_vec();
    let mut counter = 0u32;
    let mut off = 0;
    while off < db.len() {
        let block = D::new()
            .chain_update(hash)
            .chain_update(counter.to_be_bytes())
            .finalize();
        for (d, m) in db[off..].iter_mut().zip(block.iter()) {
            *d ^= m;
        }
        off += h_len;
        counter += 1;
    }
    db[0] &= top_mask;
    let ps_len = em_len - h_len - s_len - 2;
    if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    let salt = &db[ps_len + 1..];
    let m_hash = D::digest(msg);
    let h2 = D::new()
        .chain_update([0u8; 8])
        .chain_update(&m_hash)
        .chain_update(salt)
        .finalize();
    h2.as_slice() == hash
}
