//! Why a request was refused: Envoy's `jwt_authn` failure statuses.
//!
//! The messages are exactly those of `jwt_verify_lib` (`src/status.cc`), the
//! library Envoy's filter uses, because users match on them in logs and
//! tests. [`Status::http_code`] gives the status code Envoy answers with (403
//! for an audience mismatch, 401 otherwise) and [`Status::reason`] the
//! suffix of the `jwt_authn.denied.<reason>` counter.

/// A verification outcome other than success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No token in any location the requirement looks at.
    JwtMissed,
    /// `nbf` is in the future (beyond the clock skew).
    JwtNotYetValid,
    /// `exp` is in the past (beyond the clock skew).
    JwtExpired,
    /// Not three non-empty dot-separated sections (or longer than the size limit).
    JwtBadFormat,
    /// Header is not base64url.
    JwtHeaderParseErrorBadBase64,
    /// Header is not a JSON object.
    JwtHeaderParseErrorBadJson,
    /// `alg` missing or not a string.
    JwtHeaderBadAlg,
    /// `alg` is not one we implement (`none` included).
    JwtHeaderNotImplementedAlg,
    /// `kid` is not a string.
    JwtHeaderBadKid,
    /// Payload is not base64url.
    JwtPayloadParseErrorBadBase64,
    /// EdDSA signature is not 64 bytes.
    JwtEd25519SignatureWrongLength,
    /// Payload is not a JSON object.
    JwtPayloadParseErrorBadJson,
    /// `iss` is not a string.
    JwtPayloadParseErrorIssNotString,
    /// `sub` is not a string.
    JwtPayloadParseErrorSubNotString,
    /// `iat` is not a number.
    JwtPayloadParseErrorIatNotInteger,
    /// `iat` negative or too large.
    JwtPayloadParseErrorIatOutOfRange,
    /// `nbf` is not a number.
    JwtPayloadParseErrorNbfNotInteger,
    /// `nbf` negative or too large.
    JwtPayloadParseErrorNbfOutOfRange,
    /// `exp` is not a number.
    JwtPayloadParseErrorExpNotInteger,
    /// `exp` negative or too large.
    JwtPayloadParseErrorExpOutOfRange,
    /// `jti` is not a string.
    JwtPayloadParseErrorJtiNotString,
    /// `aud` is neither a string nor a list of strings.
    JwtPayloadParseErrorAudNotString,
    /// Signature is not base64url.
    JwtSignatureParseErrorBadBase64,
    /// `iss` does not match the provider (or no provider has it).
    JwtUnknownIssuer,
    /// No `aud` is one of the allowed audiences.
    JwtAudienceNotAllowed,
    /// The signature does not verify (also: unknown `crit`, lifetime rules).
    JwtVerificationFail,
    /// More than one token where one was expected.
    JwtMultipleTokens,
    /// The provider has no usable key.
    JwksNoValidKeys,
    /// No key fits the token's `kid` / `alg`.
    JwksKidAlgMismatch,
    /// The remote JWKS could not be fetched (and no key set is known).
    JwksFetchFail,
}

impl Status {
    /// The message Envoy sends as the response body.
    pub fn message(self) -> &'static str {
        use Status::*;
        match self {
            JwtMissed => "Jwt is missing",
            JwtNotYetValid => "Jwt not yet valid",
            JwtExpired => "Jwt is expired",
            JwtBadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            JwtHeaderParseErrorBadBase64 => "Jwt header is an invalid Base64url encoded",
            JwtHeaderParseErrorBadJson => "Jwt header is an invalid JSON",
            JwtHeaderBadAlg => "Jwt header [alg] field is required and must be a string",
            JwtHeaderNotImplementedAlg => "Jwt header [alg] is not supported",
            JwtHeaderBadKid => "Jwt header [kid] field is not a string",
            JwtPayloadParseErrorBadBase64 => "Jwt payload is an invalid Base64url encoded",
            JwtEd25519SignatureWrongLength => "Jwt ED25519 signature is wrong length",
            JwtPayloadParseErrorBadJson => "Jwt payload is an invalid JSON",
            JwtPayloadParseErrorIssNotString => "Jwt payload [iss] field is not a string",
            JwtPayloadParseErrorSubNotString => "Jwt payload [sub] field is not a string",
            JwtPayloadParseErrorIatNotInteger => "Jwt payload [iat] field is not an integer",
            JwtPayloadParseErrorIatOutOfRange => {
                "Jwt payload [iat] field is not a positive 64 bit integer"
            }
            JwtPayloadParseErrorNbfNotInteger => "Jwt payload [nbf] field is not an integer",
            JwtPayloadParseErrorNbfOutOfRange => {
                "Jwt payload [nbf] field is not a positive 64 bit integer"
            }
            JwtPayloadParseErrorExpNotInteger => "Jwt payload [exp] field is not an integer",
            JwtPayloadParseErrorExpOutOfRange => {
                "Jwt payload [exp] field is not a positive 64 bit integer"
            }
            JwtPayloadParseErrorJtiNotString => "Jwt payload [jti] field is not a string",
            JwtPayloadParseErrorAudNotString => {
                "Jwt payload [aud] field is not a string or string list"
            }
            JwtSignatureParseErrorBadBase64 => "Jwt signature is an invalid Base64url encoded",
            JwtUnknownIssuer => "Jwt issuer is not configured",
            JwtAudienceNotAllowed => "Audiences in Jwt are not allowed",
            JwtVerificationFail => "Jwt verification fails",
            JwtMultipleTokens => "Found multiple Jwt tokens",
            JwksNoValidKeys => "Jwks doesn't have any valid public key",
            JwksKidAlgMismatch => "Jwks doesn't have key to match kid or alg from Jwt",
            JwksFetchFail => "Jwks remote fetch is failed",
        }
    }

    /// 403 for an audience mismatch, 401 for everything else (as Envoy).
    pub fn http_code(self) -> u32 {
        if self == Status::JwtAudienceNotAllowed {
            403
        } else {
            401
        }
    }

    /// Envoy's `response_code_details`: `jwt_authn_access_denied{<message
    /// with whitespace replaced by underscores>}`.
    pub fn details(self) -> String {
        let msg: String = self
            .message()
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        format!("jwt_authn_access_denied{{{msg}}}")
    }

    /// The `WWW-Authenticate` value for a request to `realm` (the request
    /// URL): `Bearer realm="<url>"`, plus `, error="invalid_token"` unless the
    /// token was missing (RFC 6750 §3.1).
    pub fn www_authenticate(self, realm: &str) -> String {
        if self == Status::JwtMissed {
            format!("Bearer realm=\"{realm}\"")
        } else {
            format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
        }
    }

    /// The reason suffix of the `jwt_authn.denied.<reason>` counter. Parse
    /// errors of every kind share `jwt_malformed`.
    pub fn reason(self) -> &'static str {
        use Status::*;
        match self {
            JwtMissed => "jwt_missing",
            JwtNotYetValid => "jwt_not_yet_valid",
            JwtExpired => "jwt_expired",
            JwtHeaderNotImplementedAlg => "jwt_alg_not_supported",
            JwtUnknownIssuer => "jwt_unknown_issuer",
            JwtAudienceNotAllowed => "jwt_audience_not_allowed",
            JwtVerificationFail | JwtEd25519SignatureWrongLength => "jwt_verification_fail",
            JwtMultipleTokens => "jwt_multiple_tokens",
            JwksNoValidKeys => "jwks_no_valid_keys",
            JwksKidAlgMismatch => "jwks_kid_alg_mismatch",
            JwksFetchFail => "jwks_fetch_failed",
            _ => "jwt_malformed",
        }
    }

    /// Every distinct [`Status::reason`], for defining the counters up front.
    pub const REASONS: [&'static str; 12] = [
        "jwt_missing",
        "jwt_not_yet_valid",
        "jwt_expired",
        "jwt_malformed",
        "jwt_alg_not_supported",
        "jwt_unknown_issuer",
        "jwt_audience_not_allowed",
        "jwt_verification_fail",
        "jwt_multiple_tokens",
        "jwks_no_valid_keys",
        "jwks_kid_alg_mismatch",
        "jwks_fetch_failed",
    ];
}

/// Builds the realm Envoy puts in `WWW-Authenticate`: `<scheme>://<host><path>`
/// with the path (query included) cut to 256 bytes, as
/// `Http::Utility::buildOriginalUri(headers, 256)`. Double quotes and control
/// characters, which would break the quoted string, are percent-encoded.
pub fn realm(scheme: &str, host: &str, path: &str) -> String {
    const MAX_PATH: usize = 256;
    let mut cut = path.len().min(MAX_PATH);
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(scheme.len() + host.len() + cut + 3);
    for part in [scheme, "://", host, &path[..cut]] {
        for c in part.chars() {
            match c {
                '"' => out.push_str("%22"),
                '\\' => out.push_str("%5C"),
                c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32 & 0xff)),
                c => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_codes() {
        assert_eq!(Status::JwtMissed.message(), "Jwt is missing");
        assert_eq!(Status::JwtExpired.message(), "Jwt is expired");
        assert_eq!(
            Status::JwksFetchFail.message(),
            "Jwks remote fetch is failed"
        );
        assert_eq!(Status::JwtAudienceNotAllowed.http_code(), 403);
        assert_eq!(Status::JwtVerificationFail.http_code(), 401);
        assert!(Status::JwtBadFormat
            .message()
            .starts_with("Jwt is not in the form of Header.Payload.Signature"));
    }

    #[test]
    fn details_replace_spaces() {
        assert_eq!(
            Status::JwtMissed.details(),
            "jwt_authn_access_denied{Jwt_is_missing}"
        );
        assert_eq!(
            Status::JwksKidAlgMismatch.details(),
            "jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}"
        );
    }

    #[test]
    fn www_authenticate_forms() {
        assert_eq!(
            Status::JwtMissed.www_authenticate("http://a/b"),
            "Bearer realm=\"http://a/b\""
        );
        assert_eq!(
            Status::JwtExpired.www_authenticate("http://a/b"),
            "Bearer realm=\"http://a/b\", error=\"invalid_token\""
        );
    }

    #[test]
    fn realm_is_cut_and_escaped() {
        assert_eq!(
            realm("https", "api.example.com", "/x?y=1"),
            "https://api.example.com/x?y=1"
        );
        let long = format!("/{}", "a".repeat(400));
        assert_eq!(realm("http", "h", &long).len(), "http://h".len() + 256);
        assert_eq!(realm("http", "h", "/\"x"), "http://h/%22x");
    }

    #[test]
    fn every_reason_is_listed() {
        use Status::*;
        for s in [
            JwtMissed,
            JwtNotYetValid,
            JwtExpired,
            JwtBadFormat,
            JwtHeaderNotImplementedAlg,
            JwtUnknownIssuer,
            JwtAudienceNotAllowed,
            JwtVerificationFail,
            JwtMultipleTokens,
            JwksNoValidKeys,
            JwksKidAlgMismatch,
            JwksFetchFail,
            JwtPayloadParseErrorAudNotString,
        ] {
            assert!(Status::REASONS.contains(&s.reason()), "{s:?}");
        }
    }
}
