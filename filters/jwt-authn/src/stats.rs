//! Metric names, after Envoy's `jwt_authn` stats (`http.<prefix>.jwt_authn.*`
//! in Envoy; here the names the module defines, e.g. `jwt_authn.allowed`).
//!
//! | counter | when |
//! |---|---|
//! | `jwt_authn.allowed` | a request passed (including requests no rule requires anything of) |
//! | `jwt_authn.denied` | a request was refused |
//! | `jwt_authn.denied.<reason>` | ... by reason, see [`crate::status::Status::reason`] |
//! | `jwt_authn.cors_preflight_bypassed` | a CORS preflight passed without checks |
//! | `jwt_authn.jwks_fetch_success` | a remote JWKS fetch returned usable keys |
//! | `jwt_authn.jwks_fetch_failed` | a remote JWKS fetch failed (status, timeout, reset, unusable document) |
//! | `jwt_authn.jwt_cache_hit` / `jwt_authn.jwt_cache_miss` | a token was found in / missing from the cache |
//! | `jwt_authn.signature_verify_native` | a signature was checked by the host's `verify_signature` |
//! | `jwt_authn.signature_verify_wasm` | a signature was checked in wasm (`wasmesh_jose`) |

use crate::status::Status;

/// Counter names defined once per VM.
pub const ALLOWED: &str = "jwt_authn.allowed";
/// See module docs.
pub const DENIED: &str = "jwt_authn.denied";
/// See module docs.
pub const CORS_PREFLIGHT_BYPASSED: &str = "jwt_authn.cors_preflight_bypassed";
/// See module docs.
pub const JWKS_FETCH_SUCCESS: &str = "jwt_authn.jwks_fetch_success";
/// See module docs.
pub const JWKS_FETCH_FAILED: &str = "jwt_authn.jwks_fetch_failed";
/// See module docs.
pub const JWT_CACHE_HIT: &str = "jwt_authn.jwt_cache_hit";
/// See module docs.
pub const JWT_CACHE_MISS: &str = "jwt_authn.jwt_cache_miss";

/// See module docs.
pub const SIGNATURE_VERIFY_NATIVE: &str = "jwt_authn.signature_verify_native";
/// See module docs.
pub const SIGNATURE_VERIFY_WASM: &str = "jwt_authn.signature_verify_wasm";

/// `jwt_authn.denied.<reason>` for each reason, in [`Status::REASONS`] order.
pub fn denied_by_reason() -> Vec<String> {
    Status::REASONS
        .iter()
        .map(|r| format!("{DENIED}.{r}"))
        .collect()
}

/// Index of `status`'s reason counter in [`denied_by_reason`].
pub fn reason_index(status: Status) -> usize {
    Status::REASONS
        .iter()
        .position(|r| *r == status.reason())
        .unwrap_or(0)
}
