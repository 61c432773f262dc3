//! Envoy's foreign function `verify_signature`
//! (`source/extensions/common/wasm/foreign.cc`), backed by the system's
//! OpenSSL through the `openssl` crate — the same EVP calls Envoy makes on
//! BoringSSL.
//!
//! Arguments and result are the protobuf messages of Envoy's
//! `ext/verify_signature.proto`, decoded and encoded here by hand:
//!
//! ```text
//! VerifySignatureArguments { string hash_function = 1; bytes public_key = 2;
//!                            bytes signature = 3; bytes text = 4; string public_key_pem = 5; }
//! VerifySignatureResult    { bool result = 1; string error = 2; }
//! ```
//!
//! Semantics, as Envoy's:
//! * arguments that do not parse as the message (including a `string` field
//!   that is not UTF-8, as protobuf's C++ parser refuses for proto3) →
//!   `BAD_ARGUMENT`; both or neither of `public_key` (DER SubjectPublicKeyInfo)
//!   and `public_key_pem` → `BAD_ARGUMENT`;
//! * otherwise `OK` with a result: the hash name (case-insensitive `sha1`,
//!   `sha224`, `sha256`, `sha384`, `sha512`) is checked first (`"<name> is not
//!   supported."`), then the key (one that does not parse, or a type
//!   BoringSSL's `EVP_parse_public_key` does not know →
//!   `"Failed to initialize digest verify."`, as is a key that cannot verify
//!   with a digest, e.g. Ed25519), then `EVP_DigestVerify`
//!   (`"Failed to verify digest. Error code: 0"`).
//!
//! RSA keys verify RSASSA-PKCS1-v1_5 (EVP's default padding); EC keys verify
//! DER `ECDSA-Sig-Value` signatures. Deliberate detail: OpenSSL's
//! `EVP_DigestVerify` returns a negative value for some malformed signatures
//! where BoringSSL returns 0; the error text always says `Error code: 0`, as
//! Envoy on BoringSSL does.
//!
//! Parsed keys are kept in a small per-thread cache keyed by their encoding
//! (OpenSSL 3's decoders cost several microseconds per key; BoringSSL's
//! parser does not): the answer is the same, only cheaper.

use crate::types::Status;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use std::cell::RefCell;
use std::collections::HashMap;

/// What the host's `verify_signature` does (a host option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifySignatureMode {
    /// Envoy's behaviour, with OpenSSL.
    #[default]
    Native,
    /// The host lacks the function: `NOT_FOUND`, like any unknown name.
    Off,
    /// Test only: a broken host that answers `result: true` to every call
    /// whose arguments parse.
    AcceptAll,
    /// Test only: a broken host that answers `result: false` to every call
    /// whose arguments parse.
    RejectAll,
}

impl VerifySignatureMode {
    /// Parses `native`, `off`, `accept_all`, `reject_all`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "native" => Self::Native,
            "off" => Self::Off,
            "accept_all" => Self::AcceptAll,
            "reject_all" => Self::RejectAll,
            _ => return None,
        })
    }

    /// The name [`VerifySignatureMode::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Off => "off",
            Self::AcceptAll => "accept_all",
            Self::RejectAll => "reject_all",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Self::Native => 0,
            Self::Off => 1,
            Self::AcceptAll => 2,
            Self::RejectAll => 3,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Off,
            2 => Self::AcceptAll,
            3 => Self::RejectAll,
            _ => Self::Native,
        }
    }
}

/// `VerifySignatureArguments`, borrowed from the argument bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Arguments<'a> {
    pub hash_function: &'a str,
    pub public_key: &'a [u8],
    pub signature: &'a [u8],
    pub text: &'a [u8],
    pub public_key_pem: &'a str,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if i == 9 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf, pos)?).ok()?;
    let end = pos.checked_add(len)?;
    let out = buf.get(*pos..end)?;
    *pos = end;
    Some(out)
}

/// Skips a field of wire type `wt` (an unknown field); groups are skipped up
/// to their matching end, `depth` levels deep at most.
fn skip(buf: &[u8], pos: &mut usize, field: u64, wt: u64, depth: u32) -> Option<()> {
    match wt {
        0 => varint(buf, pos).map(|_| ()),
        1 | 5 => {
            let n = if wt == 1 { 8 } else { 4 };
            let end = pos.checked_add(n).filter(|&e| e <= buf.len())?;
            *pos = end;
            Some(())
        }
        2 => delimited(buf, pos).map(|_| ()),
        3 if depth < 64 => loop {
            let tag = varint(buf, pos)?;
            let (f, w) = (tag >> 3, tag & 7);
            if w == 4 {
                return (f == field).then_some(());
            }
            if f == 0 {
                return None;
            }
            skip(buf, pos, f, w, depth + 1)?;
        },
        _ => None,
    }
}

/// Parses the arguments as protobuf's `ParseFromString` would (`None`: it
/// would fail). Later occurrences of a field replace earlier ones.
pub fn parse_arguments(buf: &[u8]) -> Option<Arguments<'_>> {
    let mut a = Arguments::default();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (field, wt) = (tag >> 3, tag & 7);
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return None;
        }
        match (field, wt) {
            (1 | 5, 2) => {
                let s = std::str::from_utf8(delimited(buf, &mut pos)?).ok()?;
                if field == 1 {
                    a.hash_function = s;
                } else {
                    a.public_key_pem = s;
                }
            }
            (2, 2) => a.public_key = delimited(buf, &mut pos)?,
            (3, 2) => a.signature = delimited(buf, &mut pos)?,
            (4, 2) => a.text = delimited(buf, &mut pos)?,
            // A known field with the wrong wire type fails the parse.
            (1..=5, _) => return None,
            _ => skip(buf, &mut pos, field, wt, 0)?,
        }
    }
    Some(a)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Serialises `VerifySignatureResult` (proto3: default values are omitted).
pub fn encode_result(result: bool, error: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + error.len() + 3);
    if result {
        out.extend_from_slice(&[0x08, 0x01]);
    }
    if !error.is_empty() {
        out.push(0x12);
        put_varint(&mut out, error.len() as u64);
        out.extend_from_slice(error.as_bytes());
    }
    out
}

/// Serialises `VerifySignatureArguments` (for tests and benchmarks).
pub fn encode_arguments(a: &Arguments<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, bytes) in [
        (1u8, a.hash_function.as_bytes()),
        (2, a.public_key),
        (3, a.signature),
        (4, a.text),
        (5, a.public_key_pem.as_bytes()),
    ] {
        if !bytes.is_empty() {
            out.push(field << 3 | 2);
            put_varint(&mut out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
    }
    out
}

fn digest(name: &str) -> Option<MessageDigest> {
    Some(match name.to_ascii_lowercase().as_str() {
        "sha1" => MessageDigest::sha1(),
        "sha224" => MessageDigest::sha224(),
        "sha256" => MessageDigest::sha256(),
        "sha384" => MessageDigest::sha384(),
        "sha512" => MessageDigest::sha512(),
        _ => return None,
    })
}

/// The key types BoringSSL's `EVP_parse_public_key` accepts (RSA, EC on its
/// four named curves, DSA, Ed25519, X25519); OpenSSL knows more (RSA-PSS,
/// Ed448, SM2, other curves), which Envoy would refuse.
fn boringssl_knows(key: &PKey<Public>) -> bool {
    match key.id() {
        Id::RSA | Id::DSA | Id::ED25519 | Id::X25519 => true,
        Id::EC => key
            .ec_key()
            .ok()
            .and_then(|k| k.group().curve_name())
            .is_some_and(|n| {
                [
                    Nid::SECP224R1,
                    Nid::X9_62_PRIME256V1,
                    Nid::SECP384R1,
                    Nid::SECP521R1,
                ]
                .contains(&n)
            }),
        _ => false,
    }
}

/// Most parsed keys kept per thread (the cache is emptied when full).
const KEY_CACHE_SIZE: usize = 256;

type KeyCache = HashMap<Vec<u8>, Option<PKey<Public>>>;

thread_local! {
    /// Parsed keys by encoding: (DER, PEM).
    static KEYS: RefCell<(KeyCache, KeyCache)> = RefCell::new(Default::default());
}

fn import_key(pem: bool, bytes: &[u8]) -> Option<PKey<Public>> {
    let cached = KEYS.with(|k| {
        let k = k.borrow();
        if pem { &k.1 } else { &k.0 }.get(bytes).cloned()
    });
    if let Some(k) = cached {
        return k;
    }
    let parsed = if pem {
        PKey::public_key_from_pem(bytes)
    } else {
        PKey::public_key_from_der(bytes)
    }
    .ok()
    .filter(boringssl_knows);
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        let map = if pem { &mut k.1 } else { &mut k.0 };
        if map.len() >= KEY_CACHE_SIZE {
            map.clear();
        }
        map.insert(bytes.to_vec(), parsed.clone());
    });
    parsed
}

/// Envoy's `Crypto::Utility::verifySignature`: `Ok(())` or the error text.
fn verify(a: &Arguments<'_>) -> Result<(), String> {
    let md =
        digest(a.hash_function).ok_or_else(|| format!("{} is not supported.", a.hash_function))?;
    const INIT: &str = "Failed to initialize digest verify.";
    let pem = !a.public_key_pem.is_empty();
    let key = if pem {
        import_key(true, a.public_key_pem.as_bytes())
    } else {
        import_key(false, a.public_key)
    }
    .ok_or(INIT)?;
    let mut verifier = Verifier::new(md, &key).map_err(|_| INIT)?;
    match verifier.verify_oneshot(a.signature, a.text) {
        Ok(true) => Ok(()),
        _ => Err("Failed to verify digest. Error code: 0".into()),
    }
}

/// The foreign function: its status and, with `OK`, the serialised result.
pub fn verify_signature(mode: VerifySignatureMode, args: &[u8]) -> (Status, Option<Vec<u8>>) {
    if mode == VerifySignatureMode::Off {
        return (Status::NotFound, None);
    }
    let Some(a) = parse_arguments(args) else {
        return (Status::BadArgument, None);
    };
    // Envoy: both or neither key encoding → BAD_ARGUMENT.
    if a.public_key.is_empty() == a.public_key_pem.is_empty() {
        return (Status::BadArgument, None);
    }
    let out = match mode {
        VerifySignatureMode::AcceptAll => encode_result(true, ""),
        VerifySignatureMode::RejectAll => {
            encode_result(false, "Failed to verify digest. Error code: 0")
        }
        _ => match verify(&a) {
            Ok(()) => encode_result(true, ""),
            Err(e) => encode_result(false, &e),
        },
    };
    (Status::Ok, Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::pkey::Private;
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;

    fn rsa() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn sign(key: &PKey<Private>, md: MessageDigest, text: &[u8]) -> Vec<u8> {
        let mut s = Signer::new(md, key).unwrap();
        s.sign_oneshot_to_vec(text).unwrap()
    }

    fn call(mode: VerifySignatureMode, a: &Arguments<'_>) -> (Status, Option<Vec<u8>>) {
        verify_signature(mode, &encode_arguments(a))
    }

    fn answer(a: &Arguments<'_>) -> (bool, String) {
        let (status, out) = call(VerifySignatureMode::Native, a);
        assert_eq!(status, Status::Ok);
        decode_result(&out.unwrap())
    }

    /// Test-side decoder of `VerifySignatureResult`.
    fn decode_result(b: &[u8]) -> (bool, String) {
        let mut pos = 0;
        let (mut r, mut e) = (false, String::new());
        while pos < b.len() {
            match varint(b, &mut pos).unwrap() {
                0x08 => r = varint(b, &mut pos).unwrap() != 0,
                0x12 => e = String::from_utf8(delimited(b, &mut pos).unwrap().to_vec()).unwrap(),
                t => panic!("tag {t}"),
            }
        }
        (r, e)
    }

    #[test]
    fn rsa_pkcs1_with_each_hash_der_and_pem() {
        let key = rsa();
        let der = key.public_key_to_der().unwrap();
        let pem = String::from_utf8(key.public_key_to_pem().unwrap()).unwrap();
        let text = b"hello, world";
        for (name, md) in [
            ("sha1", MessageDigest::sha1()),
            ("sha224", MessageDigest::sha224()),
            ("SHA256", MessageDigest::sha256()),
            ("sha384", MessageDigest::sha384()),
            ("Sha512", MessageDigest::sha512()),
        ] {
            let sig = sign(&key, md, text);
            let a = Arguments {
                hash_function: name,
                public_key: &der,
                signature: &sig,
                text,
                ..Default::default()
            };
            assert_eq!(answer(&a), (true, String::new()), "{name}");
            let a = Arguments {
                public_key: &[],
                public_key_pem: &pem,
                ..a
            };
            assert_eq!(answer(&a), (true, String::new()), "{name} pem");
        }
    }

    #[test]
    fn failures_carry_envoys_messages() {
        let key = rsa();
        let der = key.public_key_to_der().unwrap();
        let text = b"hello";
        let sig = sign(&key, MessageDigest::sha256(), text);
        let good = Arguments {
            hash_function: "sha256",
            public_key: &der,
            signature: &sig,
            text,
            ..Default::default()
        };
        let mut bad_sig = sig.clone();
        bad_sig[10] ^= 1;
        let fail = "Failed to verify digest. Error code: 0".to_string();
        let init = "Failed to initialize digest verify.".to_string();
        for (what, a, want) in [
            (
                "bad signature",
                Arguments {
                    signature: &bad_sig,
                    ..good
                },
                (false, fail.clone()),
            ),
            (
                "short signature",
                Arguments {
                    signature: &sig[1..],
                    ..good
                },
                (false, fail.clone()),
            ),
            (
                "other text",
                Arguments {
                    text: b"hellO",
                    ..good
                },
                (false, fail.clone()),
            ),
            (
                "wrong hash",
                Arguments {
                    hash_function: "sha384",
                    ..good
                },
                (false, fail.clone()),
            ),
            (
                "unknown hash",
                Arguments {
                    hash_function: "md5",
                    ..good
                },
                (false, "md5 is not supported.".into()),
            ),
            (
                "unknown hash before a bad key",
                Arguments {
                    hash_function: "sha3-256",
                    public_key: b"junk",
                    ..good
                },
                (false, "sha3-256 is not supported.".into()),
            ),
            (
                "bad key",
                Arguments {
                    public_key: &der[..der.len() - 1],
                    ..good
                },
                (false, init.clone()),
            ),
            (
                "not a key",
                Arguments {
                    public_key: b"junk",
                    ..good
                },
                (false, init.clone()),
            ),
            (
                "bad pem",
                Arguments {
                    public_key: &[],
                    public_key_pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                    ..good
                },
                (false, init.clone()),
            ),
        ] {
            assert_eq!(answer(&a), want, "{what}");
        }
    }

    #[test]
    fn ecdsa_takes_der_signatures_and_ed25519_cannot_use_a_digest() {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let der = key.public_key_to_der().unwrap();
        let sig = sign(&key, MessageDigest::sha256(), b"msg");
        let a = Arguments {
            hash_function: "sha256",
            public_key: &der,
            signature: &sig,
            text: b"msg",
            ..Default::default()
        };
        assert_eq!(answer(&a), (true, String::new()));
        // Raw R||S (JWS form) is not what EVP expects.
        let ecdsa = openssl::ecdsa::EcdsaSig::from_der(&sig).unwrap();
        let mut raw = ecdsa.r().to_vec_padded(32).unwrap();
        raw.extend(ecdsa.s().to_vec_padded(32).unwrap());
        assert!(
            !answer(&Arguments {
                signature: &raw,
                ..a
            })
            .0
        );

        let ed = PKey::generate_ed25519().unwrap();
        let der = ed.public_key_to_der().unwrap();
        let mut s = Signer::new_without_digest(&ed).unwrap();
        let sig = s.sign_oneshot_to_vec(b"msg").unwrap();
        assert_eq!(
            answer(&Arguments {
                hash_function: "sha512",
                public_key: &der,
                signature: &sig,
                text: b"msg",
                ..Default::default()
            }),
            (false, "Failed to initialize digest verify.".into())
        );
    }

    #[test]
    fn key_types_boringssl_does_not_parse_are_bad_keys() {
        // An RSA-PSS SubjectPublicKeyInfo: OpenSSL parses it, BoringSSL not.
        let pss = openssl::pkey_ctx::PkeyCtx::new_id(Id::RSA_PSS).and_then(|mut c| {
            c.keygen_init()?;
            c.set_rsa_keygen_bits(2048)?;
            c.keygen()
        });
        if let Ok(pss) = pss {
            let der = pss.public_key_to_der().unwrap();
            assert_eq!(
                answer(&Arguments {
                    hash_function: "sha256",
                    public_key: &der,
                    signature: b"x",
                    text: b"msg",
                    ..Default::default()
                }),
                (false, "Failed to initialize digest verify.".into())
            );
        }
    }

    #[test]
    fn bad_arguments_and_modes() {
        let key = rsa();
        let der = key.public_key_to_der().unwrap();
        let sig = sign(&key, MessageDigest::sha256(), b"t");
        let good = Arguments {
            hash_function: "sha256",
            public_key: &der,
            signature: &sig,
            text: b"t",
            ..Default::default()
        };
        let bad = |a: &[u8]| verify_signature(VerifySignatureMode::Native, a).0;
        // Neither key, or both.
        assert_eq!(
            call(
                VerifySignatureMode::Native,
                &Arguments {
                    public_key: &[],
                    ..good
                }
            )
            .0,
            Status::BadArgument
        );
        assert_eq!(
            call(
                VerifySignatureMode::Native,
                &Arguments {
                    public_key_pem: "x",
                    ..good
                }
            )
            .0,
            Status::BadArgument
        );
        assert_eq!(bad(b""), Status::BadArgument);
        // Truncated, wrong wire types, bad UTF-8 in a string field, field 0.
        let full = encode_arguments(&good);
        assert_eq!(bad(&full[..full.len() - 1]), Status::BadArgument);
        assert_eq!(bad(b"\x08\x01"), Status::BadArgument);
        assert_eq!(bad(b"\x0a\x01\xff"), Status::BadArgument);
        assert_eq!(bad(b"\x00\x00"), Status::BadArgument);
        assert_eq!(bad(b"abc"), Status::BadArgument);
        // Unknown fields (varint, fixed, group) are skipped.
        let mut extra = full.clone();
        extra.extend_from_slice(b"\x30\x05\x39\x01\x02\x03\x04\x05\x06\x07\x08\x43\x30\x01\x44");
        assert_eq!(
            decode_result(
                &verify_signature(VerifySignatureMode::Native, &extra)
                    .1
                    .unwrap()
            ),
            (true, String::new())
        );
        // Later fields win.
        let mut twice = encode_arguments(&Arguments {
            hash_function: "md5",
            ..Default::default()
        });
        twice.extend_from_slice(&full);
        assert_eq!(
            decode_result(
                &verify_signature(VerifySignatureMode::Native, &twice)
                    .1
                    .unwrap()
            ),
            (true, String::new())
        );

        assert_eq!(
            call(VerifySignatureMode::Off, &good),
            (Status::NotFound, None)
        );
        let mut bad_sig = sig.clone();
        bad_sig[0] ^= 1;
        let tampered = Arguments {
            signature: &bad_sig,
            ..good
        };
        let (s, out) = call(VerifySignatureMode::AcceptAll, &tampered);
        assert_eq!((s, decode_result(&out.unwrap()).0), (Status::Ok, true));
        let (s, out) = call(VerifySignatureMode::RejectAll, &good);
        assert_eq!((s, decode_result(&out.unwrap()).0), (Status::Ok, false));
    }

    #[test]
    fn result_encoding() {
        assert_eq!(encode_result(true, ""), b"\x08\x01");
        assert_eq!(encode_result(false, ""), b"");
        let long = "e".repeat(200);
        let enc = encode_result(false, &long);
        assert_eq!(&enc[..3], b"\x12\xc8\x01");
        assert_eq!(decode_result(&enc), (false, long));
    }
}
