//! Signatures verified by the proxy's own crypto: Envoy's foreign function
//! `verify_signature` (`source/extensions/common/wasm/foreign.cc`, EVP on
//! BoringSSL), which takes a DER SubjectPublicKeyInfo, a hash name, the
//! signature and the text, as the protobuf message `VerifySignatureArguments`,
//! and answers `VerifySignatureResult { bool result; string error; }`.
//!
//! What it can verify: RSASSA-PKCS1-v1_5 (EVP's default RSA padding: RS256,
//! RS384, RS512) and ECDSA with a DER `ECDSA-Sig-Value` (ES256, ES384, after
//! converting JWS's `R || S`). Not RSASSA-PSS (Envoy sets no PSS padding),
//! not Ed25519 (Envoy always passes a digest, which EdDSA refuses), not HMAC.
//! Those, and every host without the function, use `wasmesh_jose` in wasm.
//!
//! Whether the host can be trusted with it is found out once per VM at
//! configuration time ([`probe`]): a known-good signature must be answered
//! `true` and the same signature with one bit flipped `false`, for RSA and
//! for ECDSA separately. `NOT_FOUND`, an error, or a wrong answer leaves that
//! family in wasm. The keys' DER encodings are built once when a key set is
//! decoded ([`NativeKey`]), never per request.
//!
//! Pure Rust: the glue implements [`HostCrypto`] with
//! `proxy_call_foreign_function`.

use std::cell::RefCell;
use wasmesh_jose::{base64url_decode, Algorithm};

/// The foreign function's name.
pub const FUNCTION: &str = "verify_signature";

/// What the host said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAnswer {
    /// `result: true`.
    Valid,
    /// `result: false` (bad signature, or an error text).
    Invalid,
    /// The call failed (`NOT_FOUND`, `BAD_ARGUMENT`, ...) or the result did
    /// not parse.
    Unavailable,
}

/// The host side of `verify_signature`: serialised arguments in, the host's
/// answer out.
pub trait HostCrypto {
    /// Calls the foreign function with `args`.
    fn verify_signature(&self, args: &[u8]) -> HostAnswer;
}

/// A host without the function (tests, native builds).
pub struct NoHost;

impl HostCrypto for NoHost {
    fn verify_signature(&self, _args: &[u8]) -> HostAnswer {
        HostAnswer::Unavailable
    }
}

/// The key family a native key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// RSA (RS256/384/512).
    Rsa,
    /// ECDSA on P-256 (ES256).
    P256,
    /// ECDSA on P-384 (ES384).
    P384,
}

/// A key's DER SubjectPublicKeyInfo, built once per key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeKey {
    /// Its family.
    pub family: Family,
    /// DER SubjectPublicKeyInfo.
    pub spki: Box<[u8]>,
}

impl NativeKey {
    /// An RSA key from its big-endian modulus and exponent.
    pub fn rsa(n: &[u8], e: &[u8]) -> NativeKey {
        let mut rsa_key = Vec::with_capacity(n.len() + 16);
        der_uint(&mut rsa_key, n);
        der_uint(&mut rsa_key, e);
        let mut seq = Vec::with_capacity(rsa_key.len() + 4);
        der_tlv(&mut seq, 0x30, &rsa_key);
        // AlgorithmIdentifier { rsaEncryption, NULL }.
        const ALG: &[u8] = &[
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        NativeKey {
            family: Family::Rsa,
            spki: spki(ALG, &seq),
        }
    }

    /// An EC key from its big-endian affine coordinates (shorter values are
    /// left-padded to the field size).
    pub fn ec(family: Family, x: &[u8], y: &[u8]) -> Option<NativeKey> {
        // AlgorithmIdentifier { id-ecPublicKey, prime256v1 / secp384r1 }.
        const P256: &[u8] = &[
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
            0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ];
        const P384: &[u8] = &[
            0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
            0x81, 0x04, 0x00, 0x22,
        ];
        let (alg, size) = match family {
            Family::P256 => (P256, 32),
            Family::P384 => (P384, 48),
            Family::Rsa => return None,
        };
        let (x, y) = (strip_zeros(x), strip_zeros(y));
        if x.len() > size || y.len() > size {
            return None;
        }
        let mut point = vec![0u8; 1 + 2 * size];
        point[0] = 0x04;
        point[1 + size - x.len()..1 + size].copy_from_slice(x);
        point[1 + 2 * size - y.len()..].copy_from_slice(y);
        Some(NativeKey {
            family,
            spki: spki(alg, &point),
        })
    }

    /// Whether this key can verify `alg` natively.
    pub fn fits(&self, alg: Algorithm) -> bool {
        matches!(
            (self.family, alg),
            (
                Family::Rsa,
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
            ) | (Family::P256, Algorithm::ES256)
                | (Family::P384, Algorithm::ES384)
        )
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_tlv(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    der_len(out, body.len());
    out.extend_from_slice(body);
}

/// A non-negative DER INTEGER from big-endian bytes.
fn der_uint(out: &mut Vec<u8>, v: &[u8]) {
    let v = strip_zeros(v);
    out.push(0x02);
    if v.is_empty() {
        out.extend_from_slice(&[1, 0]);
    } else if v[0] & 0x80 != 0 {
        der_len(out, v.len() + 1);
        out.push(0);
        out.extend_from_slice(v);
    } else {
        der_len(out, v.len());
        out.extend_from_slice(v);
    }
}

/// SubjectPublicKeyInfo { algorithm, BIT STRING (0 unused bits) key }.
fn spki(alg: &[u8], key: &[u8]) -> Box<[u8]> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    let mut body = Vec::with_capacity(alg.len() + bits.len() + 4);
    body.extend_from_slice(alg);
    der_tlv(&mut body, 0x03, &bits);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_tlv(&mut out, 0x30, &body);
    out.into_boxed_slice()
}

/// JWS ECDSA `R || S` (each `size` bytes) as DER `ECDSA-Sig-Value`, into
/// `out`; `false` when the length is not `2 * size`.
pub fn ecdsa_der(rs: &[u8], size: usize, out: &mut Vec<u8>) -> bool {
    if rs.len() != 2 * size {
        return false;
    }
    let mut body = Vec::with_capacity(2 * size + 6);
    der_uint(&mut body, &rs[..size]);
    der_uint(&mut body, &rs[size..]);
    der_tlv(out, 0x30, &body);
    true
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | 2);
    put_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Serialises `VerifySignatureArguments` into `out` (cleared first).
pub fn encode_args(out: &mut Vec<u8>, hash: &str, spki: &[u8], signature: &[u8], text: &[u8]) {
    out.clear();
    put_bytes(out, 1, hash.as_bytes());
    put_bytes(out, 2, spki);
    put_bytes(out, 3, signature);
    put_bytes(out, 4, text);
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Parses `VerifySignatureResult`: its `result`, or `None` when the bytes
/// are not that message.
pub fn decode_result(b: &[u8]) -> Option<bool> {
    let mut result = false;
    let mut pos = 0;
    while pos < b.len() {
        let tag = varint(b, &mut pos)?;
        match (tag >> 3, tag & 7) {
            (1, 0) => result = varint(b, &mut pos)? != 0,
            (_, 0) => {
                varint(b, &mut pos)?;
            }
            (f, 2) if f != 0 => {
                let len = usize::try_from(varint(b, &mut pos)?).ok()?;
                pos = pos.checked_add(len).filter(|&e| e <= b.len())?;
            }
            _ => return None,
        }
    }
    Some(result)
}

/// Which key families the host verifies (found by [`probe`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// RS256/384/512.
    pub rsa: bool,
    /// ES256/384.
    pub ec: bool,
}

impl Capabilities {
    /// Whether `key` verifies in the host.
    pub fn covers(&self, key: &NativeKey) -> bool {
        match key.family {
            Family::Rsa => self.rsa,
            Family::P256 | Family::P384 => self.ec,
        }
    }
}

/// The probe's message, signed below with RS256 and ES256 (keys made for
/// this purpose only).
const PROBE_TEXT: &[u8] = b"wasmesh: is verify_signature there?";
const PROBE_RSA_N: &str = "4UsM3A0QM_Yxs865adk3TCZ62UXKjXYkQpbIibhy1zt7iTlKS3mx7jvhb-VYfWXGqK1AohonKMFzkKp5beZB3DI4Y4BPLI3cdx61GznV2AX8W7ZHOMQrX9PunVECM885kgKSRM021UMioEcIK_UoBpf_XawRrnGVffZPTIfwhmSqw0dzCpbmjlquodeWH0se-2awkwzAe-zU7DrgSklM5Nj4kZgj6GaYRxSmmc1r4Wux0f_piPwJra6Tx_isJIlhz2hHyifq9o0Oja4zEGP5hrvO5jhtGgzWLj4YNVTXg7knj6Mp5o8het_eeY9FmKPCDWzZ04ODK2X3H88FyA9qIQ";
const PROBE_RSA_E: &str = "AQAB";
const PROBE_RSA_SIG: &str = "TXnP5mjNsxtzXPHd3clCpPfjOn3-1sX0fcmE2vHzvM_80qTPdVo9LJ92QGuwYQ-0uXA623LVgNdGJ2xjVhKizhSDqitOwAfbjxQCnKcg-phL54u_oY1PUe3HvKoG_U-EC3K0ezVa_HoUCbr-wk8PgSEstX4N4z1vHoSgmTO8gD_QVOAG7IPoWai8Kacd8yS1KCkinY0v7T3hE4uwgLTIyq0dCmiM2HusfC4dwUieZ71wzVM8Y6Vo6O7eENCx5xdaiGKVwFU5XlSk116snaYQ1E0ZsitXHP6ysi9xVh0u8mGMIETQKAMISmHkBPV75uBsEjai9a9w1H7RNFCUvXx8qw";
const PROBE_EC_X: &str = "A9Pm77IvdJNcPWEfoeK5XZlYAJMffIR0gQfwwgr9zww";
const PROBE_EC_Y: &str = "mStVLmVQdZJNJr6HAcvHdbABExu4bueVPpWDAQM6MXA";
const PROBE_EC_SIG: &str =
    "aC5pzT_cP7sPZaKN8TppRuCsZ5tXLw9puVvCvOo5LCUw-Hny1UKO17qNN79g0oPc0YVH8sWvBzgYqwRlVSpxYw";

/// The probe's vectors: (alg, key, JWS signature) — public for the tests.
pub fn probe_vectors() -> [(Algorithm, NativeKey, Vec<u8>); 2] {
    let d = |s: &str| base64url_decode(s).unwrap_or_default();
    [
        (
            Algorithm::RS256,
            NativeKey::rsa(&d(PROBE_RSA_N), &d(PROBE_RSA_E)),
            d(PROBE_RSA_SIG),
        ),
        (
            Algorithm::ES256,
            NativeKey::ec(Family::P256, &d(PROBE_EC_X), &d(PROBE_EC_Y))
                .unwrap_or_else(|| NativeKey::rsa(&[], &[])),
            d(PROBE_EC_SIG),
        ),
    ]
}

/// The probe's message.
pub fn probe_text() -> &'static [u8] {
    PROBE_TEXT
}

/// Asks the host about each family: a good signature must be valid and the
/// same with one bit flipped invalid.
pub fn probe(host: &dyn HostCrypto) -> Capabilities {
    let mut caps = Capabilities::default();
    let mut buf = Vec::new();
    for (alg, key, sig) in probe_vectors() {
        let mut bad = sig.clone();
        if let Some(b) = bad.last_mut() {
            *b ^= 1;
        }
        let ok = call(host, &mut buf, alg, &key, PROBE_TEXT, &sig) == HostAnswer::Valid
            && call(host, &mut buf, alg, &key, PROBE_TEXT, &bad) == HostAnswer::Invalid;
        match key.family {
            Family::Rsa => caps.rsa = ok,
            _ => caps.ec = ok,
        }
    }
    caps
}

fn hash_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS384 | Algorithm::ES384 => "sha384",
        Algorithm::RS512 => "sha512",
        _ => "sha256",
    }
}

/// One verification through the host, with `buf` as scratch space.
fn call(
    host: &dyn HostCrypto,
    buf: &mut Vec<u8>,
    alg: Algorithm,
    key: &NativeKey,
    text: &[u8],
    signature: &[u8],
) -> HostAnswer {
    let mut der = Vec::new();
    let sig = match key.family {
        Family::Rsa => signature,
        Family::P256 | Family::P384 => {
            let size = if key.family == Family::P256 { 32 } else { 48 };
            if !ecdsa_der(signature, size, &mut der) {
                // JWS requires exactly 2 * size bytes.
                return HostAnswer::Invalid;
            }
            &der
        }
    };
    encode_args(buf, hash_name(alg), &key.spki, sig, text);
    host.verify_signature(buf)
}

/// Verifications per path (for the stats).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PathCounts {
    /// Signatures verified by the host.
    pub native: u32,
    /// Signatures verified in wasm.
    pub wasm: u32,
}

/// The host's crypto as the key sets use it: the probed capabilities and a
/// reusable argument buffer.
pub struct Crypto {
    host: Box<dyn HostCrypto>,
    /// What the probe found.
    pub caps: Capabilities,
    buf: RefCell<Vec<u8>>,
}

impl Default for Crypto {
    fn default() -> Self {
        Crypto::wasm_only()
    }
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto").field("caps", &self.caps).finish()
    }
}

impl Crypto {
    /// Everything in wasm.
    pub fn wasm_only() -> Crypto {
        Crypto {
            host: Box::new(NoHost),
            caps: Capabilities::default(),
            buf: RefCell::new(Vec::new()),
        }
    }

    /// Probes `host` once and keeps it for what it verifies correctly.
    pub fn probed(host: Box<dyn HostCrypto>) -> Crypto {
        let caps = probe(host.as_ref());
        Crypto {
            host,
            caps,
            buf: RefCell::new(Vec::new()),
        }
    }

    /// Verifies natively when `key` is covered and fits `alg`: `Some(valid)`;
    /// `None` when the signature must be checked in wasm (not covered, or
    /// the host failed to answer).
    pub fn verify(
        &self,
        alg: Algorithm,
        key: Option<&NativeKey>,
        text: &[u8],
        signature: &[u8],
    ) -> Option<bool> {
        let key = key.filter(|k| k.fits(alg) && self.caps.covers(k))?;
        let mut buf = self.buf.try_borrow_mut().ok()?;
        match call(self.host.as_ref(), &mut buf, alg, key, text, signature) {
            HostAnswer::Valid => Some(true),
            HostAnswer::Invalid => Some(false),
            HostAnswer::Unavailable => None,
        }
    }

    /// A line for the log: where each algorithm is verified.
    pub fn describe(&self) -> String {
        let native: Vec<&str> = [
            (self.caps.rsa, "RS256, RS384, RS512"),
            (self.caps.ec, "ES256, ES384"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if native.is_empty() {
            "signatures are verified in wasm (the host's verify_signature is absent or did not pass the probe)".into()
        } else {
            format!(
                "signatures {} are verified by the host's verify_signature, the others in wasm",
                native.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmesh_jose::{verify, EcPublicKey, PublicKey, RsaPublicKey};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn probe_vectors_are_valid_signatures() {
        let d = |s: &str| base64url_decode(s).unwrap();
        let rsa = PublicKey::Rsa(
            RsaPublicKey::from_components(&d(PROBE_RSA_N), &d(PROBE_RSA_E)).unwrap(),
        );
        assert!(verify(
            Algorithm::RS256,
            &rsa,
            PROBE_TEXT,
            &d(PROBE_RSA_SIG)
        ));
        let ec = PublicKey::Ec(EcPublicKey::p256(&d(PROBE_EC_X), &d(PROBE_EC_Y)).unwrap());
        assert!(verify(Algorithm::ES256, &ec, PROBE_TEXT, &d(PROBE_EC_SIG)));
    }

    #[test]
    fn spki_encodings_match_openssl() {
        // `openssl ec -pubout -outform DER` of the probe's P-256 key.
        let [(_, rsa, _), (_, ec, _)] = probe_vectors();
        assert_eq!(
            &ec.spki[..],
            &hex("3059301306072a8648ce3d020106082a8648ce3d0301070342000403d3e6efb22f74935c3d611fa1e2b95d995800931f7c84748107f0c20afdcf0c992b552e655075924d26be8701cbc775b001131bb86ee7953e958301033a3170")[..]
        );
        // RSA-2048 with e = 65537: the fixed prefix, n, and the exponent.
        let prefix = hex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100");
        assert_eq!(rsa.spki.len(), 294);
        assert_eq!(&rsa.spki[..prefix.len()], &prefix[..]);
        assert_eq!(
            &rsa.spki[prefix.len()..prefix.len() + 256],
            &base64url_decode(PROBE_RSA_N).unwrap()[..]
        );
        assert_eq!(&rsa.spki[prefix.len() + 256..], &hex("0203010001")[..]);
        // Leading zeros of JWK integers do not change the encoding.
        let n = base64url_decode(PROBE_RSA_N).unwrap();
        let padded = [&[0u8, 0][..], &n].concat();
        assert_eq!(NativeKey::rsa(&padded, &[0, 1, 0, 1]).spki, rsa.spki);
        // Short EC coordinates are padded.
        assert_eq!(
            NativeKey::ec(Family::P256, &[1], &[2]).unwrap().spki.len(),
            ec.spki.len()
        );
        assert!(NativeKey::ec(Family::P256, &[1; 33], &[2]).is_none());
    }

    #[test]
    fn ecdsa_signatures_become_der() {
        let mut out = Vec::new();
        let mut rs = vec![0u8; 64];
        rs[31] = 5;
        rs[32] = 0x80;
        assert!(ecdsa_der(&rs, 32, &mut out));
        let mut want = hex("3026020105022100");
        want.push(0x80);
        want.extend_from_slice(&[0; 31]);
        assert_eq!(out, want);
        // Zero stays a (refused) INTEGER 0.
        out.clear();
        assert!(ecdsa_der(&[0; 64], 32, &mut out));
        assert_eq!(out, hex("3006020100020100"));
        assert!(!ecdsa_der(&[1; 63], 32, &mut out));
    }

    #[test]
    fn results_and_arguments() {
        assert_eq!(decode_result(b""), Some(false));
        assert_eq!(decode_result(b"\x08\x01"), Some(true));
        assert_eq!(decode_result(b"\x12\x03abc"), Some(false));
        assert_eq!(decode_result(b"\x08\x01\x12\x03ab"), None);
        assert_eq!(decode_result(b"\x0d\x00"), None);
        let mut buf = vec![9; 3];
        encode_args(&mut buf, "sha256", b"K", b"S", b"T");
        assert_eq!(buf, b"\x0a\x06sha256\x12\x01K\x1a\x01S\x22\x01T");
    }

    /// A host answering with a fixed function of the arguments.
    struct Fake(fn(&[u8]) -> HostAnswer);
    impl HostCrypto for Fake {
        fn verify_signature(&self, args: &[u8]) -> HostAnswer {
            (self.0)(args)
        }
    }

    #[test]
    fn the_probe_refuses_hosts_that_answer_wrongly() {
        assert_eq!(probe(&NoHost), Capabilities::default());
        assert_eq!(probe(&Fake(|_| HostAnswer::Valid)), Capabilities::default());
        assert_eq!(
            probe(&Fake(|_| HostAnswer::Invalid)),
            Capabilities::default()
        );
        let c = Crypto::probed(Box::new(Fake(|_| HostAnswer::Valid)));
        let [(alg, key, sig), _] = probe_vectors();
        assert_eq!(c.verify(alg, Some(&key), PROBE_TEXT, &sig), None);
    }
}
