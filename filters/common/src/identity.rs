//! The verified caller identity that the JWT filter hands to later filters.
//!
//! After a token verifies, `jwt_authn.wasm` stores an [`Identity`] as JSON in
//! per-stream filter state with `proxy_set_property([IDENTITY_PROPERTY], ..)`.
//! Envoy keeps it under the filter-state key `wasm.wasmesh.identity`; later
//! filters in the same chain (RBAC, header router, custom metrics) read it with
//! `proxy_get_property([IDENTITY_PROPERTY])`. A client cannot set filter state,
//! so — unlike a header — this cannot be forged from outside. When several
//! providers verified tokens, the identity of the first one in requirement
//! order is stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The single-segment property path under which the identity is stored.
pub const IDENTITY_PROPERTY: &str = "wasmesh.identity";

/// Who the caller is, as proven by a verified JWT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Name of the `jwtRules` provider that verified the token.
    pub provider: String,
    /// `iss` claim.
    pub iss: String,
    /// `sub` claim (empty when absent).
    #[serde(default)]
    pub sub: String,
    /// `aud` claim as a list (a single string becomes one element).
    #[serde(default)]
    pub aud: Vec<String>,
    /// `azp` claim (the presenter), empty when absent.
    #[serde(default)]
    pub azp: String,
    /// Istio's request principal: `<iss>/<sub>`.
    pub principal: String,
    /// Every claim of the payload, as verified.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

impl Identity {
    /// Parses the JSON stored in filter state.
    pub fn from_json(bytes: &[u8]) -> Option<Identity> {
        serde_json::from_slice(bytes).ok()
    }

    /// Serialises for filter state.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The claim at a nested path (`["realm_access", "roles"]`).
    pub fn claim(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.claims.get(*first)?;
        for seg in rest {
            v = v.as_object()?.get(*seg)?;
        }
        Some(v)
    }
}

/// The string values of a claim: a string is one value, a number or boolean
/// its JSON text, a list each of its scalar elements; objects and nulls give
/// nothing.
pub fn claim_strings(v: &Value) -> Vec<String> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_claims() {
        let mut claims = Map::new();
        claims.insert("groups".into(), serde_json::json!(["a", "b"]));
        claims.insert(
            "realm".into(),
            serde_json::json!({"roles": ["admin"], "level": 3}),
        );
        let id = Identity {
            provider: "idp".into(),
            iss: "https://idp".into(),
            sub: "alice".into(),
            aud: vec!["api".into()],
            azp: String::new(),
            principal: "https://idp/alice".into(),
            claims,
        };
        let back = Identity::from_json(id.to_json().as_bytes()).unwrap();
        assert_eq!(back, id);
        assert_eq!(
            claim_strings(back.claim(&["groups"]).unwrap()),
            vec!["a", "b"]
        );
        assert_eq!(
            claim_strings(back.claim(&["realm", "roles"]).unwrap()),
            vec!["admin"]
        );
        assert_eq!(
            claim_strings(back.claim(&["realm", "level"]).unwrap()),
            vec!["3"]
        );
        assert!(back.claim(&["realm", "missing"]).is_none());
        assert!(Identity::from_json(b"not json").is_none());
    }
}
