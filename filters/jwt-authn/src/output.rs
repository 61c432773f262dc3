//! What a successful verification changes in the request (Envoy's
//! `handleGoodJwt` and the extractor's `sanitizeHeaders`), as a list of
//! header operations the glue applies with host calls.
//!
//! * Every output header of every provider (`outputPayloadToHeader`,
//!   `outputClaimToHeaders`) is removed from every request first, so a
//!   client can never supply them.
//! * For each verified token: the payload header gets the base64url payload,
//!   each claim header its value, and the token is removed from where it was
//!   found (header, query parameter or cookie) unless `forwardOriginalToken`.

use crate::config::FilterConfig;
use crate::extractor::{remove_cookie, remove_query_param, LocationKind};
use crate::verifier::Success;
use wasmesh_common::HeaderMap;

/// One change to the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Remove every value of the header.
    Remove(String),
    /// Add a value.
    Add(String, String),
    /// Replace every value with this one.
    Set(String, String),
}

/// Output headers the client sent, to remove before anything else.
pub fn sanitize(config: &FilterConfig, headers: &HeaderMap) -> Vec<HeaderOp> {
    config
        .output_headers
        .iter()
        .filter(|h| headers.contains(h))
        .map(|h| HeaderOp::Remove(h.clone()))
        .collect()
}

/// The changes for the verified tokens `successes` of a request with `headers`.
pub fn plan(config: &FilterConfig, headers: &HeaderMap, successes: &[Success]) -> Vec<HeaderOp> {
    let mut ops = Vec::new();
    let mut path: Option<String> = None;
    let mut cookies: Option<Vec<String>> = None;
    let mut removed: Vec<usize> = Vec::new();
    for s in successes {
        let p = &config.providers[s.provider];
        let v = &s.verified;
        if let Some(h) = &p.payload_header {
            ops.push(HeaderOp::Add(h.clone(), v.jwt.payload_b64.clone()));
        }
        for ((h, _), value) in p.claim_headers.iter().zip(&v.claim_values) {
            if let Some(value) = value {
                ops.push(HeaderOp::Add(h.clone(), value.clone()));
            }
        }
        if p.forward || removed.contains(&s.location) {
            continue;
        }
        removed.push(s.location);
        match &config.extractor.locations[s.location].kind {
            LocationKind::Header { name, .. } => ops.push(HeaderOp::Remove(name.clone())),
            LocationKind::Param(param) => {
                let current = path.take().unwrap_or_else(|| headers.path().to_string());
                path = Some(remove_query_param(&current, param));
            }
            LocationKind::Cookie(name) => {
                let current = cookies
                    .take()
                    .unwrap_or_else(|| headers.get_all("cookie").map(str::to_string).collect());
                cookies = Some(
                    current
                        .iter()
                        .filter_map(|c| remove_cookie(c, name))
                        .collect(),
                );
            }
        }
    }
    if let Some(p) = path {
        if p != headers.path() {
            ops.push(HeaderOp::Set(":path".into(), p));
        }
    }
    if let Some(c) = cookies {
        ops.push(HeaderOp::Remove("cookie".into()));
        for v in c {
            ops.push(HeaderOp::Add("cookie".into(), v));
        }
    }
    ops
}

/// The identity to store in filter state: that of the first verified token.
pub fn identity_json(successes: &[Success]) -> Option<&str> {
    successes.first().map(|s| s.verified.identity_json.as_str())
}
