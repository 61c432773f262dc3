//! JSON Web Key Sets (RFC 7517) decoded into verification keys.
//!
//! Decoding follows `jwt_verify_lib`'s `Jwks::createFrom`: the document must
//! be an object with a `keys` array; each key needs `kty`; `kid` and `alg` are
//! optional. A key this filter cannot use (unknown `kty` or `alg`, a curve we
//! do not implement such as P-521, `use` other than `sig`, bad base64, an RSA
//! modulus below 2048 bits, a point off the curve, ...) is skipped with a
//! reason, so that one exotic key does not make a whole identity provider
//! unusable. A set without any usable key is an error.
//!
//! Keys are decoded once (at configuration time for `jwks`, once per fetch for
//! `jwksUri`); expensive per-key precomputation happens in `wasmesh_jose`'s
//! constructors, never per request. RSA and EC keys also get their DER
//! SubjectPublicKeyInfo then, for the host's `verify_signature`
//! ([`crate::host_crypto`]).

use crate::host_crypto::{Crypto, Family, NativeKey, PathCounts};
use crate::jwt::Jwt;
use crate::status::Status;
use serde_json::{Map, Value};
use std::fmt;
use wasmesh_jose::{
    base64url_decode, verify, Algorithm, EcPublicKey, Ed25519PublicKey, HmacKey, KeyType,
    PublicKey, RsaPublicKey,
};

/// One usable key.
pub struct Jwk {
    /// `kid`, empty when absent (such a key matches any token `kid`).
    pub kid: String,
    /// `alg`, when the JWK pins one.
    pub alg: Option<Algorithm>,
    /// The decoded key.
    pub key: PublicKey,
    /// Its DER form for the host's `verify_signature` (RSA and EC keys).
    pub native: Option<NativeKey>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg.map(|a| a.name()))
            .field("kty", &self.key.key_type())
            .finish()
    }
}

/// A decoded key set.
#[derive(Debug, Default)]
pub struct KeySet {
    /// The usable keys, in document order.
    pub keys: Vec<Jwk>,
    /// Why each unusable key was skipped (`keys[2]: ...`), for logs.
    pub skipped: Vec<String>,
}

/// Why a JWKS document cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    /// Not JSON, or not an object.
    InvalidJson,
    /// No `keys` member.
    NoKeys,
    /// `keys` is not an array.
    BadKeys,
    /// No key could be used; the reasons of each.
    NoValidKeys(Vec<String>),
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::InvalidJson => f.write_str("Jwks is an invalid JSON"),
            JwksError::NoKeys => f.write_str("Jwks does not have [keys] field"),
            JwksError::BadKeys => f.write_str("[keys] in Jwks is not an array"),
            JwksError::NoValidKeys(reasons) if reasons.is_empty() => {
                f.write_str("Jwks doesn't have any valid public key")
            }
            JwksError::NoValidKeys(reasons) => {
                write!(
                    f,
                    "Jwks doesn't have any valid public key ({})",
                    reasons.join("; ")
                )
            }
        }
    }
}

impl KeySet {
    /// Decodes a JWKS document given as text.
    pub fn from_json(text: &[u8]) -> Result<KeySet, JwksError> {
        let value: Value = serde_json::from_slice(text).map_err(|_| JwksError::InvalidJson)?;
        KeySet::from_value(&value)
    }

    /// Decodes a JWKS document already parsed as JSON.
    pub fn from_value(value: &Value) -> Result<KeySet, JwksError> {
        let obj = value.as_object().ok_or(JwksError::InvalidJson)?;
        let keys = match obj.get("keys") {
            None => return Err(JwksError::NoKeys),
            Some(Value::Array(keys)) => keys,
            Some(_) => return Err(JwksError::BadKeys),
        };
        let mut set = KeySet::default();
        for (i, k) in keys.iter().enumerate() {
            match k
                .as_object()
                .ok_or_else(|| "not an object".to_string())
                .and_then(decode_jwk)
            {
                Ok(jwk) => set.keys.push(jwk),
                Err(reason) => set.skipped.push(format!("keys[{i}]: {reason}")),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoValidKeys(set.skipped));
        }
        Ok(set)
    }

    /// Whether some key carries exactly this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// Verifies the signature of `jwt` (whose text is `token`) with the keys
    /// that fit its `kid` and `alg`, as `jwt_verify_lib`'s
    /// `verifyJwtWithoutTimeChecking`: a key is a candidate unless both it
    /// and the token have a `kid` and they differ, or the key pins another
    /// `alg`. No candidate → `JwksKidAlgMismatch`; candidates but no valid
    /// signature → `JwtVerificationFail`.
    pub fn verify(&self, jwt: &Jwt, token: &str) -> Result<(), Status> {
        self.verify_with(jwt, token, &Crypto::wasm_only(), &mut PathCounts::default())
    }

    /// [`KeySet::verify`], each signature checked by the host when `crypto`
    /// covers the key and algorithm, in wasm otherwise; `counts` counts
    /// the verifications per path.
    pub fn verify_with(
        &self,
        jwt: &Jwt,
        token: &str,
        crypto: &Crypto,
        counts: &mut PathCounts,
    ) -> Result<(), Status> {
        let signing_input = token
            .as_bytes()
            .get(..jwt.signing_input_len)
            .unwrap_or_default();
        let mut matched = false;
        for jwk in &self.keys {
            if !jwt.kid.is_empty() && !jwk.kid.is_empty() && jwk.kid != jwt.kid {
                continue;
            }
            if jwk.alg.is_some_and(|a| a != jwt.alg) {
                continue;
            }
            matched = true;
            if jwt.alg == Algorithm::EdDSA
                && jwk.key.key_type() == KeyType::Ed25519
                && jwt.signature.len() != 64
            {
                return Err(Status::JwtEd25519SignatureWrongLength);
            }
            if alg_fits(jwt.alg, &jwk.key) {
                // The key and algorithm agree: verify in the host if it can.
                if let Some(valid) =
                    crypto.verify(jwt.alg, jwk.native.as_ref(), signing_input, &jwt.signature)
                {
                    counts.native += 1;
                    if valid {
                        return Ok(());
                    }
                    continue;
                }
                counts.wasm += 1;
            }
            if verify(jwt.alg, &jwk.key, signing_input, &jwt.signature) {
                return Ok(());
            }
        }
        Err(if matched {
            Status::JwtVerificationFail
        } else {
            Status::JwksKidAlgMismatch
        })
    }
}

/// Whether `alg` can verify with `key` at all (wasmesh_jose refuses the
/// others without computing anything).
fn alg_fits(alg: Algorithm, key: &PublicKey) -> bool {
    alg.key_type() == key.key_type()
}

/// Decodes one JWK or says why it is unusable.
fn decode_jwk(k: &Map<String, Value>) -> Result<Jwk, String> {
    let kty = match k.get("kty") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("[kty] is bad in [keys]".into()),
        None => return Err("[kty] is missing in [keys]".into()),
    };
    let kid = string_member(k, "kid")?.unwrap_or_default();
    let alg_name = string_member(k, "alg")?;
    if let Some(u) = string_member(k, "use")? {
        if u != "sig" {
            return Err(format!("[use] is `{u}`, not `sig`"));
        }
    }
    let alg = match alg_name.as_deref() {
        None => None,
        Some(name) => Some(
            Algorithm::from_name(name).ok_or_else(|| format!("[alg] `{name}` is not supported"))?,
        ),
    };
    let mut native = None;
    let key = match kty {
        "RSA" => {
            if alg.is_some_and(|a| a.key_type() != KeyType::Rsa) {
                return Err("[alg] is not started with [RS] or [PS] for an RSA key".into());
            }
            let n = b64_member(k, "n", "RSA")?;
            let e = b64_member(k, "e", "RSA")?;
            let key = RsaPublicKey::from_components(&n, &e).map_err(|e| e.to_string())?;
            native = Some(NativeKey::rsa(&n, &e));
            PublicKey::Rsa(key)
        }
        "EC" => {
            let crv = string_member(k, "crv")?;
            let want = match (alg, crv.as_deref()) {
                (Some(Algorithm::ES256), None | Some("P-256")) | (None, None | Some("P-256")) => {
                    KeyType::EcP256
                }
                (Some(Algorithm::ES384), None | Some("P-384")) | (None, Some("P-384")) => {
                    KeyType::EcP384
                }
                (Some(a), _)
                    if a.key_type() != KeyType::EcP256 && a.key_type() != KeyType::EcP384 =>
                {
                    return Err("[alg] is not started with [ES] for an EC key".into())
                }
                (Some(_), Some(c)) if c == "P-256" || c == "P-384" => {
                    return Err(
                        "[crv] field specified is not compatible with [alg] for an EC key".into(),
                    )
                }
                (_, Some(c)) => return Err(format!("[crv] `{c}` is not supported for an EC key")),
                _ => return Err("[crv] or [alg] field is not supported for an EC key".into()),
            };
            let x = b64_member(k, "x", "EC")?;
            let y = b64_member(k, "y", "EC")?;
            let (key, family) = if want == KeyType::EcP256 {
                (EcPublicKey::p256(&x, &y), Family::P256)
            } else {
                (EcPublicKey::p384(&x, &y), Family::P384)
            };
            let key = key.map_err(|e| e.to_string())?;
            native = NativeKey::ec(family, &x, &y);
            PublicKey::Ec(key)
        }
        "OKP" => {
            if alg.is_some_and(|a| a != Algorithm::EdDSA) {
                return Err("[alg] is not [EdDSA] for an OKP key".into());
            }
            match string_member(k, "crv")?.as_deref() {
                Some("Ed25519") => {}
                Some(c) => return Err(format!("[crv] `{c}` is not supported for an OKP key")),
                None => return Err("[crv] field is missing for an OKP key".into()),
            }
            let x = b64_member(k, "x", "OKP")?;
            PublicKey::Ed25519(Ed25519PublicKey::from_bytes(&x).map_err(|e| e.to_string())?)
        }
        "oct" => {
            if alg.is_some_and(|a| a.key_type() != KeyType::Oct) {
                return Err("[alg] does not start with [HS] for an HMAC key".into());
            }
            let secret = b64_member(k, "k", "HMAC")?;
            PublicKey::Oct(HmacKey::new(&secret).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("[kty] `{other}` is not supported in [keys]")),
    };
    Ok(Jwk {
        kid,
        alg,
        key,
        native,
    })
}

fn string_member(k: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match k.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("[{name}] field is not a string")),
    }
}

/// A base64url member. Trailing `=` padding, which a few key servers add, is
/// tolerated here (key material is operator-provided, not client input).
fn b64_member(k: &Map<String, Value>, name: &str, kind: &str) -> Result<Vec<u8>, String> {
    let s = string_member(k, name)?
        .ok_or_else(|| format!("[{name}] field is missing for an {kind} key"))?;
    base64url_decode(s.trim_end_matches('='))
        .ok_or_else(|| format!("[{name}] field of an {kind} key is an invalid Base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::base64url_encode;

    // RFC 7515 appendix A.1 (HS256) key and token.
    pub const A1_KEY: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;
    pub const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // RFC 7515 appendix A.3 (ES256).
    pub const A3_KEY: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
    pub const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    // RFC 8037 appendix A.4 (Ed25519).
    pub const ED_KEY: &str =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    pub const ED_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn set(keys: &[&str]) -> Result<KeySet, JwksError> {
        KeySet::from_json(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes())
    }

    fn check(keys: &[&str], token: &str) -> Result<(), Status> {
        // RFC 8037's payload is not JSON, so only the signature path is used here.
        let jwt = match Jwt::parse(token) {
            Ok(j) => j,
            Err(_) => fake_jwt(token),
        };
        set(keys).unwrap().verify(&jwt, token)
    }

    fn fake_jwt(token: &str) -> Jwt {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let header = base64url_decode(input.split('.').next().unwrap()).unwrap();
        let h: Value = serde_json::from_slice(&header).unwrap();
        Jwt {
            alg: Algorithm::from_name(h["alg"].as_str().unwrap()).unwrap(),
            kid: String::new(),
            typ: String::new(),
            iss: String::new(),
            sub: String::new(),
            aud: vec![],
            azp: String::new(),
            exp: None,
            nbf: 0,
            iat: 0,
            claims: Map::new(),
            payload_b64: String::new(),
            signing_input_len: input.len(),
            signature: base64url_decode(sig).unwrap(),
        }
    }

    #[test]
    fn rfc_vectors_verify() {
        assert_eq!(check(&[A1_KEY], A1_TOKEN), Ok(()));
        assert_eq!(check(&[A3_KEY], A3_TOKEN), Ok(()));
        assert_eq!(check(&[ED_KEY], ED_TOKEN), Ok(()));
    }

    #[test]
    fn wrong_key_type_fails_verification() {
        // HS256 token against an EC key: a candidate, but the types do not fit.
        assert_eq!(check(&[A3_KEY], A1_TOKEN), Err(Status::JwtVerificationFail));
        assert_eq!(check(&[A1_KEY], A3_TOKEN), Err(Status::JwtVerificationFail));
    }

    #[test]
    fn altered_signature_fails() {
        let mut t = A1_TOKEN.to_string();
        t.pop();
        t.push('Y');
        assert_eq!(check(&[A1_KEY], &t), Err(Status::JwtVerificationFail));
    }

    #[test]
    fn kid_and_alg_select_keys() {
        let key_a = r#"{"kty":"oct","kid":"a","alg":"HS256","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;
        let ks = set(&[key_a]).unwrap();
        assert!(ks.has_kid("a"));
        assert!(!ks.has_kid("b"));
        let mut jwt = Jwt::parse(A1_TOKEN).unwrap();
        assert_eq!(ks.verify(&jwt, A1_TOKEN), Ok(()));
        jwt.kid = "b".into();
        assert_eq!(ks.verify(&jwt, A1_TOKEN), Err(Status::JwksKidAlgMismatch));
        jwt.kid = "a".into();
        jwt.alg = Algorithm::HS384;
        assert_eq!(ks.verify(&jwt, A1_TOKEN), Err(Status::JwksKidAlgMismatch));
    }

    #[test]
    fn ed25519_signature_length() {
        let mut jwt = fake_jwt(ED_TOKEN);
        jwt.signature.truncate(63);
        assert_eq!(
            set(&[ED_KEY]).unwrap().verify(&jwt, ED_TOKEN),
            Err(Status::JwtEd25519SignatureWrongLength)
        );
    }

    #[test]
    fn document_errors() {
        assert_eq!(
            KeySet::from_json(b"nope").unwrap_err(),
            JwksError::InvalidJson
        );
        assert_eq!(
            KeySet::from_json(b"[]").unwrap_err(),
            JwksError::InvalidJson
        );
        assert_eq!(KeySet::from_json(b"{}").unwrap_err(), JwksError::NoKeys);
        assert_eq!(
            KeySet::from_json(br#"{"keys":{}}"#).unwrap_err(),
            JwksError::BadKeys
        );
        assert!(matches!(
            KeySet::from_json(br#"{"keys":[]}"#).unwrap_err(),
            JwksError::NoValidKeys(_)
        ));
    }

    #[test]
    fn unusable_keys_are_skipped_with_reasons() {
        let ks = set(&[
            r#"{"kid":"no-kty"}"#,
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#,
            r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#,
            r#"{"kty":"EC","alg":"ES384","crv":"P-256","x":"AA","y":"AA"}"#,
            r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#,
            r#"{"kty":"oct","k":""}"#,
            r#"{"kty":"oct","alg":"RS256","k":"AAAA"}"#,
            r#"{"kty":"oct","use":"enc","k":"AAAA"}"#,
            r#"{"kty":"oct","alg":"none","k":"AAAA"}"#,
            r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}"#,
            r#"{"kty":"RSA","n":"!","e":"AQAB"}"#,
            r#"{"kty":"XYZ"}"#,
            A1_KEY,
        ])
        .unwrap();
        assert_eq!(ks.keys.len(), 1);
        assert_eq!(ks.skipped.len(), 12, "{:?}", ks.skipped);
        assert!(ks.skipped[0].contains("[kty] is missing"));
        assert!(ks.skipped[2].contains("P-521"));
        assert!(ks.skipped[3].contains("not compatible"));
        assert!(ks.skipped[7].contains("use"));
    }

    #[test]
    fn padded_key_material_is_tolerated() {
        let k = format!(
            r#"{{"kty":"oct","k":"{}=="}}"#,
            base64url_encode(b"0123456789")
        );
        assert!(set(&[&k]).is_ok());
    }

    #[test]
    fn ec_defaults_to_p256() {
        let k = A3_KEY.replace(r#""crv":"P-256","#, "");
        assert_eq!(check(&[&k], A3_TOKEN), Ok(()));
    }
}
