//! JWT authentication filter (`jwt_authn.wasm`): Envoy `jwt_authn` behaviour
//! with Istio `RequestAuthentication` configuration words.
//!
//! The decision core is plain Rust, one concept per module (after Envoy's
//! `source/extensions/filters/http/jwt_authn/`):
//!
//! * [`config`] — the JSON contract, validated and compiled once;
//! * [`extractor`] — where tokens are in a request;
//! * [`jwt`] — parsing a token; [`jwks`] — decoding key sets;
//! * [`host_crypto`] — signatures verified by the host's `verify_signature`;
//! * [`matcher`] — which rule applies; [`verifier`] — requirement trees;
//! * [`authenticator`] — one token against one provider;
//! * [`jwt_cache`] — verified tokens; [`jwks_cache`] — remote key sets shared
//!   between workers;
//! * [`output`] — header changes after success; [`status`] — Envoy's
//!   failure statuses and messages; [`stats`] — metric names.
//!
//! `filter` is the proxy-wasm glue (wasm32 only).

pub mod authenticator;
pub mod config;
pub mod extractor;
pub mod host_crypto;
pub mod jwks;
pub mod jwks_cache;
pub mod jwt;
pub mod jwt_cache;
pub mod matcher;
pub mod output;
pub mod stats;
pub mod status;
pub mod verifier;

#[cfg(target_arch = "wasm32")]
mod filter;

use authenticator::Authenticator;
use config::FilterConfig;
use output::HeaderOp;
use status::Status;
use verifier::Outcome;
use wasmesh_common::HeaderMap;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through after applying `ops`; store `identity` (JSON) in
    /// filter state when present.
    Allow {
        /// Header changes (token removal, outputs).
        ops: Vec<HeaderOp>,
        /// The verified identity.
        identity: Option<String>,
    },
    /// A CORS preflight, let through unchecked.
    CorsBypass,
    /// Refuse with this status.
    Deny(Status),
    /// Keys are being fetched: pause and decide again when they arrive.
    Wait,
}

/// Decides for a request (its headers after sanitising). Pure apart from the
/// JWT cache in `auth`.
pub fn decide(
    config: &FilterConfig,
    headers: &HeaderMap,
    auth: &mut Authenticator<'_>,
) -> Decision {
    if config.bypass_cors_preflight && is_cors_preflight(headers) {
        return Decision::CorsBypass;
    }
    let Some(rule) = config.rules.iter().find(|r| r.route.matches(headers)) else {
        return Decision::Allow {
            ops: Vec::new(),
            identity: None,
        };
    };
    let Some(requirement) = &rule.requirement else {
        return Decision::Allow {
            ops: Vec::new(),
            identity: None,
        };
    };
    let tokens = config.extractor.extract(headers);
    match verifier::evaluate(requirement, &tokens, &config.extractor, auth) {
        Outcome::Allow(successes) => Decision::Allow {
            ops: output::plan(config, headers, &successes),
            identity: output::identity_json(&successes).map(str::to_string),
        },
        Outcome::Deny(s) => Decision::Deny(s),
        Outcome::Wait => Decision::Wait,
    }
}

/// `OPTIONS` with `Origin` and `Access-Control-Request-Method` (Envoy's
/// `isCorsPreflightRequest`).
pub fn is_cors_preflight(headers: &HeaderMap) -> bool {
    headers.method() == "OPTIONS"
        && headers.get("origin").is_some_and(|v| !v.is_empty())
        && headers
            .get("access-control-request-method")
            .is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
