//! A JSON Web Token split, decoded and its registered claims checked for
//! type, as `jwt_verify_lib`'s `Jwt::parseFromString` does (and in the same
//! order, so that a malformed token gets the same message as in Envoy).
//!
//! Parsing verifies nothing: the signature is checked by the authenticator
//! with the provider's keys.

use crate::status::Status;
use serde_json::{Map, Value};
use wasmesh_jose::{base64url_decode, Algorithm};

/// Longest token accepted (bytes). Larger ones are refused as malformed
/// before any decoding, so a client cannot make the filter decode or hash
/// megabytes. 16 KiB is four times the largest tokens seen in practice
/// (Azure AD tokens with group claims run to about 4 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A parsed (not yet verified) JWT.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    /// `alg` header.
    pub alg: Algorithm,
    /// `kid` header, empty when absent.
    pub kid: String,
    /// `typ` header, empty when absent (not checked, as in Envoy).
    pub typ: String,
    /// `iss` claim, empty when absent.
    pub iss: String,
    /// `sub` claim, empty when absent.
    pub sub: String,
    /// `aud` claim as a list (a single string is one element).
    pub aud: Vec<String>,
    /// `azp` claim when it is a string, empty otherwise.
    pub azp: String,
    /// `exp` claim (seconds), `None` when absent.
    pub exp: Option<u64>,
    /// `nbf` claim (seconds), 0 when absent.
    pub nbf: u64,
    /// `iat` claim (seconds), 0 when absent.
    pub iat: u64,
    /// The whole payload.
    pub claims: Map<String, Value>,
    /// The base64url payload section as sent (for `outputPayloadToHeader`).
    pub payload_b64: String,
    /// Length of `header.payload`, the signing input, at the start of the token.
    pub signing_input_len: usize,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl Jwt {
    /// Parses `token`, returning the status Envoy would give a malformed one.
    pub fn parse(token: &str) -> Result<Jwt, Status> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Status::JwtBadFormat);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Status::JwtBadFormat);
        };
        if h64.is_empty() || p64.is_empty() || s64.is_empty() {
            return Err(Status::JwtBadFormat);
        }

        let header_bytes = base64url_decode(h64).ok_or(Status::JwtHeaderParseErrorBadBase64)?;
        let header = json_object(&header_bytes).ok_or(Status::JwtHeaderParseErrorBadJson)?;
        let alg_name = match header.get("alg") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(Status::JwtHeaderBadAlg),
        };
        let alg = Algorithm::from_name(alg_name).ok_or(Status::JwtHeaderNotImplementedAlg)?;
        let kid = optional_string(&header, "kid").map_err(|_| Status::JwtHeaderBadKid)?;
        // RFC 7515 §4.1.11: a recipient that does not understand every
        // extension listed in `crit` must reject the JWS. We understand none.
        if header.contains_key("crit") {
            return Err(Status::JwtVerificationFail);
        }
        let typ = match header.get("typ") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };

        let payload_bytes = base64url_decode(p64).ok_or(Status::JwtPayloadParseErrorBadBase64)?;
        let claims = json_object(&payload_bytes).ok_or(Status::JwtPayloadParseErrorBadJson)?;
        let iss = optional_string(&claims, "iss")
            .map_err(|_| Status::JwtPayloadParseErrorIssNotString)?;
        let sub = optional_string(&claims, "sub")
            .map_err(|_| Status::JwtPayloadParseErrorSubNotString)?;
        let iat = numeric_date(&claims, "iat").map_err(|bad| {
            if bad {
                Status::JwtPayloadParseErrorIatOutOfRange
            } else {
                Status::JwtPayloadParseErrorIatNotInteger
            }
        })?;
        let nbf = numeric_date(&claims, "nbf").map_err(|bad| {
            if bad {
                Status::JwtPayloadParseErrorNbfOutOfRange
            } else {
                Status::JwtPayloadParseErrorNbfNotInteger
            }
        })?;
        let exp = numeric_date(&claims, "exp").map_err(|bad| {
            if bad {
                Status::JwtPayloadParseErrorExpOutOfRange
            } else {
                Status::JwtPayloadParseErrorExpNotInteger
            }
        })?;
        optional_string(&claims, "jti").map_err(|_| Status::JwtPayloadParseErrorJtiNotString)?;
        let aud = match claims.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(Status::JwtPayloadParseErrorAudNotString)?,
            Some(_) => return Err(Status::JwtPayloadParseErrorAudNotString),
        };
        let azp = match claims.get("azp") {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };

        let signature = base64url_decode(s64).ok_or(Status::JwtSignatureParseErrorBadBase64)?;
        Ok(Jwt {
            alg,
            kid,
            typ,
            iss,
            sub,
            aud,
            azp,
            exp,
            nbf: nbf.unwrap_or(0),
            iat: iat.unwrap_or(0),
            claims,
            payload_b64: p64.to_string(),
            signing_input_len: h64.len() + 1 + p64.len(),
            signature,
        })
    }

    /// `nbf` and `exp` against `now` (Unix seconds) with `skew` seconds of
    /// tolerance each way, as `jwt_verify_lib`'s `verifyTimeConstraint`.
    pub fn check_time(&self, now: u64, skew: u64) -> Result<(), Status> {
        if now.saturating_add(skew) < self.nbf {
            return Err(Status::JwtNotYetValid);
        }
        if let Some(exp) = self.exp {
            if now > exp.saturating_add(skew) {
                return Err(Status::JwtExpired);
            }
        }
        Ok(())
    }
}

fn json_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// A string member: absent → empty, a string → it, anything else → error.
fn optional_string(obj: &Map<String, Value>, name: &str) -> Result<String, ()> {
    match obj.get(name) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(()),
    }
}

/// A NumericDate: absent → None; a number in [0, 2^64) → its integer part;
/// Err(false) when not a number, Err(true) when out of range.
fn numeric_date(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, bool> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            let f = n.as_f64().ok_or(true)?;
            if !(0.0..18_446_744_073_709_551_615.0).contains(&f) {
                return Err(true);
            }
            Ok(Some(f as u64))
        }
        Some(_) => Err(false),
    }
}

/// Base64url without padding (for tests and the payload header).
pub fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64url_encode(s.as_bytes())
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), b64("sig"))
    }

    const H: &str = r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#;

    #[test]
    fn parses_registered_claims() {
        let t = token(
            H,
            r#"{"iss":"https://idp","sub":"alice","aud":["a","b"],"exp":2000,"nbf":1000,"iat":999,"azp":"web","x":{"y":1}}"#,
        );
        let jwt = Jwt::parse(&t).unwrap();
        assert_eq!(jwt.alg, Algorithm::RS256);
        assert_eq!(jwt.kid, "k1");
        assert_eq!(jwt.typ, "JWT");
        assert_eq!(jwt.iss, "https://idp");
        assert_eq!(jwt.sub, "alice");
        assert_eq!(jwt.aud, vec!["a", "b"]);
        assert_eq!(jwt.azp, "web");
        assert_eq!((jwt.exp, jwt.nbf, jwt.iat), (Some(2000), 1000, 999));
        assert_eq!(jwt.signature, b"sig");
        assert_eq!(&t[..jwt.signing_input_len], t.rsplit_once('.').unwrap().0);
        assert_eq!(jwt.payload_b64, t.split('.').nth(1).unwrap());
        assert_eq!(jwt.claims["x"]["y"], 1);
    }

    #[test]
    fn single_audience_string() {
        let jwt = Jwt::parse(&token(H, r#"{"aud":"api"}"#)).unwrap();
        assert_eq!(jwt.aud, vec!["api"]);
        assert_eq!(jwt.exp, None);
    }

    #[test]
    fn format_errors() {
        for bad in ["", "a", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b.c."] {
            assert_eq!(Jwt::parse(bad), Err(Status::JwtBadFormat), "{bad}");
        }
        let huge = format!("{}.{}.{}", b64(H), "A".repeat(MAX_TOKEN_BYTES), b64("s"));
        assert_eq!(Jwt::parse(&huge), Err(Status::JwtBadFormat));
    }

    #[test]
    fn header_errors() {
        let p = b64("{}");
        let s = b64("sig");
        let case = |h: &str| Jwt::parse(&format!("{h}.{p}.{s}"));
        assert_eq!(case("!!!"), Err(Status::JwtHeaderParseErrorBadBase64));
        assert_eq!(
            case(&format!("{}=", b64("{}x"))),
            Err(Status::JwtHeaderParseErrorBadBase64)
        );
        assert_eq!(
            case(&b64("not json")),
            Err(Status::JwtHeaderParseErrorBadJson)
        );
        assert_eq!(case(&b64("[1]")), Err(Status::JwtHeaderParseErrorBadJson));
        assert_eq!(case(&b64("{}")), Err(Status::JwtHeaderBadAlg));
        assert_eq!(case(&b64(r#"{"alg":1}"#)), Err(Status::JwtHeaderBadAlg));
        assert_eq!(
            case(&b64(r#"{"alg":"none"}"#)),
            Err(Status::JwtHeaderNotImplementedAlg)
        );
        assert_eq!(
            case(&b64(r#"{"alg":"ES512"}"#)),
            Err(Status::JwtHeaderNotImplementedAlg)
        );
        assert_eq!(
            case(&b64(r#"{"alg":"rs256"}"#)),
            Err(Status::JwtHeaderNotImplementedAlg)
        );
        assert_eq!(
            case(&b64(r#"{"alg":"RS256","kid":5}"#)),
            Err(Status::JwtHeaderBadKid)
        );
        assert_eq!(
            case(&b64(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#)),
            Err(Status::JwtVerificationFail)
        );
    }

    #[test]
    fn payload_errors() {
        let case = |p: &str| Jwt::parse(&format!("{}.{}.{}", b64(H), p, b64("s")));
        assert_eq!(case("***"), Err(Status::JwtPayloadParseErrorBadBase64));
        assert_eq!(case(&b64("{")), Err(Status::JwtPayloadParseErrorBadJson));
        assert_eq!(
            case(&b64("\"str\"")),
            Err(Status::JwtPayloadParseErrorBadJson)
        );
        assert_eq!(
            case(&b64(r#"{"iss":1}"#)),
            Err(Status::JwtPayloadParseErrorIssNotString)
        );
        assert_eq!(
            case(&b64(r#"{"sub":[]}"#)),
            Err(Status::JwtPayloadParseErrorSubNotString)
        );
        assert_eq!(
            case(&b64(r#"{"iat":"1"}"#)),
            Err(Status::JwtPayloadParseErrorIatNotInteger)
        );
        assert_eq!(
            case(&b64(r#"{"iat":-1}"#)),
            Err(Status::JwtPayloadParseErrorIatOutOfRange)
        );
        assert_eq!(
            case(&b64(r#"{"nbf":null}"#)),
            Err(Status::JwtPayloadParseErrorNbfNotInteger)
        );
        assert_eq!(
            case(&b64(r#"{"nbf":-5}"#)),
            Err(Status::JwtPayloadParseErrorNbfOutOfRange)
        );
        assert_eq!(
            case(&b64(r#"{"exp":"123456789"}"#)),
            Err(Status::JwtPayloadParseErrorExpNotInteger)
        );
        assert_eq!(
            case(&b64(r#"{"exp":1e30}"#)),
            Err(Status::JwtPayloadParseErrorExpOutOfRange)
        );
        assert_eq!(
            case(&b64(r#"{"jti":2}"#)),
            Err(Status::JwtPayloadParseErrorJtiNotString)
        );
        assert_eq!(
            case(&b64(r#"{"aud":3}"#)),
            Err(Status::JwtPayloadParseErrorAudNotString)
        );
        assert_eq!(
            case(&b64(r#"{"aud":["a",3]}"#)),
            Err(Status::JwtPayloadParseErrorAudNotString)
        );
        assert_eq!(
            Jwt::parse(&format!("{}.{}.{}", b64(H), b64("{}"), "a+b")),
            Err(Status::JwtSignatureParseErrorBadBase64)
        );
    }

    #[test]
    fn fractional_times_truncate() {
        let jwt = Jwt::parse(&token(H, r#"{"exp":1500.9}"#)).unwrap();
        assert_eq!(jwt.exp, Some(1500));
    }

    #[test]
    fn time_constraints_with_skew() {
        let jwt = Jwt::parse(&token(H, r#"{"nbf":1000,"exp":2000}"#)).unwrap();
        assert_eq!(jwt.check_time(939, 60), Err(Status::JwtNotYetValid));
        assert_eq!(jwt.check_time(940, 60), Ok(()));
        assert_eq!(jwt.check_time(2060, 60), Ok(()));
        assert_eq!(jwt.check_time(2061, 60), Err(Status::JwtExpired));
        assert_eq!(jwt.check_time(2001, 0), Err(Status::JwtExpired));
        let no_exp = Jwt::parse(&token(H, "{}")).unwrap();
        assert_eq!(no_exp.check_time(u64::MAX, 60), Ok(()));
    }

    #[test]
    fn encoder_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(base64url_decode(&b64(s)).unwrap(), s.as_bytes());
        }
        assert_eq!(b64("\u{ff}\u{fe}"), "w7_Dvg");
    }
}
