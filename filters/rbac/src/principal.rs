//! Who the caller is: the mTLS peer (SPIFFE ID) and the JWT request
//! principal, matched the way Istio's authorization builder matches them.
//!
//! - Peer principals (`principals`, `source.principal`) are written
//!   `<trust-domain>/ns/<ns>/sa/<sa>` and compared with the peer
//!   certificate's URI SAN (`connection.uri_san_peer_certificate`) with
//!   `spiffe://` in front, as Istio does.
//! - Namespaces (`namespaces`, `source.namespace`) match the URI SAN against
//!   Istio's `.*/ns/<namespace>/.*`, where a `*` in the namespace stands for
//!   any characters.
//! - Request principals (`requestPrincipals`, `request.auth.principal`) are
//!   `<iss>/<sub>` of the token the JWT filter verified. As in current Istio,
//!   the value is split at its last `/` and issuer and subject are matched
//!   separately, so a `*` can never stretch across the two.

use crate::matcher::{Glob, Pattern, PrefixedPattern, Star};
use wasmesh_common::{ConfigError, FieldPath};

/// The URI prefix Istio puts in front of a peer principal.
pub const SPIFFE_PREFIX: &str = "spiffe://";

/// Compiles a `principals` value.
pub fn peer_principal(value: &str, path: &FieldPath) -> Result<PrefixedPattern, ConfigError> {
    Ok(Pattern::parse(value, Star::NonEmpty, false, path)?.with_prefix(SPIFFE_PREFIX))
}

/// Compiles a `namespaces` value.
pub fn namespace(value: &str, path: &FieldPath) -> Result<Glob, ConfigError> {
    if value.is_empty() {
        return Err(path.error("empty value not allowed"));
    }
    if value.contains('/') {
        return Err(path.error(format!(
            "`{value}` is not a namespace name (it contains `/`)"
        )));
    }
    Ok(Glob::new(&format!("*/ns/{value}/*")))
}

/// A compiled `requestPrincipals` value: issuer and subject patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPrincipal {
    iss: Pattern,
    sub: Pattern,
}

impl RequestPrincipal {
    /// Compiles `value` (`<iss>/<sub>`, with Istio's `*` forms).
    pub fn parse(value: &str, path: &FieldPath) -> Result<RequestPrincipal, ConfigError> {
        // Validates emptiness and the position of `*` with the common rules.
        Pattern::parse(value, Star::NonEmpty, false, path)?;
        let exact = |s: &str| Pattern::Exact(s.to_string());
        let (iss, sub) = match value.rfind('/') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        };
        let (iss, sub) = if value == "*" {
            (Pattern::NonEmpty, Pattern::NonEmpty)
        } else if let Some(rest) = value.strip_prefix('*') {
            match sub {
                Some(sub) => {
                    let iss = if iss == "*" {
                        Pattern::NonEmpty
                    } else {
                        Pattern::Suffix(iss[1..].to_string())
                    };
                    (iss, exact(sub))
                }
                None => (Pattern::NonEmpty, Pattern::Suffix(rest.to_string())),
            }
        } else if let Some(head) = value.strip_suffix('*') {
            match sub {
                Some(sub) => {
                    let sub = if sub == "*" {
                        Pattern::NonEmpty
                    } else {
                        Pattern::Prefix(sub[..sub.len() - 1].to_string())
                    };
                    (exact(iss), sub)
                }
                None => (Pattern::Prefix(head.to_string()), Pattern::NonEmpty),
            }
        } else {
            (exact(iss), exact(sub.unwrap_or("")))
        };
        Ok(RequestPrincipal { iss, sub })
    }

    /// Whether a verified token with this issuer and subject matches.
    pub fn matches(&self, iss: &str, sub: &str) -> bool {
        self.iss.matches(iss) && self.sub.matches(sub)
    }
}

/// The namespace part of a SPIFFE ID (`spiffe://td/ns/<ns>/sa/<sa>`), for
/// log lines.
pub fn spiffe_namespace(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix(SPIFFE_PREFIX)?;
    let mut parts = rest.split('/');
    parts.next()?;
    while let Some(p) = parts.next() {
        if p == "ns" {
            return parts.next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(v: &str) -> RequestPrincipal {
        RequestPrincipal::parse(v, &FieldPath::root()).unwrap()
    }

    #[test]
    fn request_principals_like_istio() {
        let cases: &[(&str, &str, &str, bool)] = &[
            // exact
            (
                "https://idp.example.com/alice",
                "https://idp.example.com",
                "alice",
                true,
            ),
            (
                "https://idp.example.com/alice",
                "https://idp.example.com",
                "bob",
                false,
            ),
            (
                "https://idp.example.com/alice",
                "https://idp.example.com/alice",
                "",
                false,
            ),
            // any subject of one issuer
            (
                "https://idp.example.com/*",
                "https://idp.example.com",
                "alice",
                true,
            ),
            (
                "https://idp.example.com/*",
                "https://idp.example.com",
                "",
                false,
            ),
            (
                "https://idp.example.com/*",
                "https://idp.example.com.evil",
                "alice",
                false,
            ),
            (
                "https://idp.example.com/*",
                "https://idp.example.com/x",
                "alice",
                false,
            ),
            // subject prefix
            ("https://idp/user-*", "https://idp", "user-1", true),
            ("https://idp/user-*", "https://idp", "admin", false),
            // any issuer, exact subject
            ("*/alice", "https://a", "alice", true),
            ("*/alice", "https://b", "alice", true),
            ("*/alice", "https://b", "alice2", false),
            // issuer suffix, exact subject
            ("*idp.com/alice", "https://idp.com", "alice", true),
            ("*idp.com/alice", "https://evil.com", "alice", false),
            // no slash: subject suffix / issuer prefix
            ("*@corp.com", "https://idp", "bob@corp.com", true),
            ("*@corp.com", "https://idp", "bob@evil.com", false),
            ("issuer-*", "issuer-1", "x", true),
            ("issuer-*", "issuer-1", "", false),
            // anything authenticated
            ("*", "i", "s", true),
            ("*", "i", "", false),
            ("*", "", "s", false),
            // a `*` cannot span issuer and subject
            (
                "https://idp.example.com/a*",
                "https://idp.example.com/alice",
                "x",
                false,
            ),
        ];
        for (pat, iss, sub, want) in cases {
            assert_eq!(rp(pat).matches(iss, sub), *want, "{pat} vs {iss} / {sub}");
        }
    }

    #[test]
    fn refused() {
        for bad in ["", "*/*", "a*/b", "https://x/*/y"] {
            assert!(
                RequestPrincipal::parse(bad, &FieldPath::root()).is_err(),
                "{bad}"
            );
        }
        assert!(namespace("", &FieldPath::root()).is_err());
        assert!(namespace("a/b", &FieldPath::root()).is_err());
    }

    #[test]
    fn peers() {
        let p = peer_principal("cluster.local/ns/prod/sa/web", &FieldPath::root()).unwrap();
        assert!(p.matches("spiffe://cluster.local/ns/prod/sa/web"));
        assert!(!p.matches("spiffe://cluster.local/ns/prod/sa/web2"));
        let ns = namespace("prod", &FieldPath::root()).unwrap();
        assert!(ns.matches("spiffe://cluster.local/ns/prod/sa/web"));
        assert!(!ns.matches("spiffe://cluster.local/ns/prod2/sa/web"));
        let ns = namespace("prod-*", &FieldPath::root()).unwrap();
        assert!(ns.matches("spiffe://cluster.local/ns/prod-eu/sa/web"));
        assert!(!ns.matches("spiffe://cluster.local/ns/prod/sa/web"));
        assert_eq!(spiffe_namespace("spiffe://td/ns/prod/sa/web"), Some("prod"));
        assert_eq!(spiffe_namespace("https://x"), None);
    }
}
