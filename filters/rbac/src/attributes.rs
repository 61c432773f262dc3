//! The request attributes policies are evaluated against, and the small
//! derivations the glue needs to build them (client address behind trusted
//! proxies, host forms, method check).

use crate::headers::Headers;
use std::borrow::Cow;
use std::net::IpAddr;
use wasmesh_common::cidr::parse_address_ip;
use wasmesh_common::identity::IdentityView;

/// A connection attribute the host may fail to provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed<T> {
    /// The host gave this value.
    Known(T),
    /// The host did not say. Envoy always knows these, so this only happens
    /// on a misconfigured host; a DENY rule then treats the attribute as
    /// matching and an ALLOW rule as not matching (Istio's rule for
    /// attributes it cannot evaluate).
    Unknown,
}

impl<T> Observed<T> {
    /// `Known` for `Some`, `Unknown` for `None`.
    pub fn from_option(v: Option<T>) -> Self {
        match v {
            Some(v) => Observed::Known(v),
            None => Observed::Unknown,
        }
    }
}

/// The ways the `:authority` of a request can be written for host matching:
/// lower-cased as sent; without a trailing dot on the name; and without the
/// port. A `hosts` value matches when it matches any of them, so
/// `api.example.com` matches `API.example.com:8443` and `api.example.com.`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostForms<'a> {
    /// The authority, lower-cased.
    lower: Cow<'a, str>,
    /// `name:port` when the name had a trailing dot and a port (rare).
    undotted_with_port: Option<String>,
    /// Length of the bare name (no port, no trailing dot) within `lower`,
    /// when it differs from `lower`.
    bare: Option<usize>,
}

impl<'a> HostForms<'a> {
    /// Derives the forms of `authority`.
    pub fn new(authority: &'a str) -> HostForms<'a> {
        let lower = if authority.bytes().any(|c| c.is_ascii_uppercase()) {
            Cow::Owned(authority.to_ascii_lowercase())
        } else {
            Cow::Borrowed(authority)
        };
        let (name, port) = split_host_port(&lower);
        let name_nodot = name.strip_suffix('.').unwrap_or(name);
        let undotted_with_port = match port {
            Some(p) if name_nodot.len() != name.len() => Some(format!("{name_nodot}:{p}")),
            _ => None,
        };
        let bare = (name_nodot.len() != lower.len()).then_some(name_nodot.len());
        HostForms {
            lower,
            undotted_with_port,
            bare,
        }
    }

    /// The distinct forms, the request's own (lower-cased) first.
    pub fn forms(&self) -> impl Iterator<Item = &str> + '_ {
        std::iter::once(self.lower.as_ref())
            .chain(self.undotted_with_port.as_deref())
            .chain(self.bare.map(|n| &self.lower[..n]))
    }
}

/// Splits `host[:port]` (`[v6]:port` included); the port must be all digits.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let rest = &authority[end + 1..];
            return match rest.strip_prefix(':') {
                Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
                    (&authority[..=end], Some(p))
                }
                _ => (authority, None),
            };
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && !h.contains(':') =>
        {
            (h, Some(p))
        }
        _ => (authority, None),
    }
}

/// Whether `method` is an upper-case HTTP token (`GET`, `M-SEARCH`); other
/// methods are refused with 400 before any policy runs, so `get` cannot
/// slip past a rule about `GET`.
pub fn valid_method(method: &str) -> bool {
    !method.is_empty()
        && method.bytes().all(|c| {
            c.is_ascii_uppercase() || c.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&c)
        })
}

/// The original client address: the `x-forwarded-for` entries (every
/// `x-forwarded-for` header, in order, comma-separated) followed by the
/// peer address form a chain; with `trusted` proxies in front of this one,
/// the client is the entry `trusted` places from the right (0: the peer
/// itself, 1: the last `x-forwarded-for` entry, ...). When the chain is
/// shorter, or that entry is not an IP address, the peer address is used, as
/// Envoy does with `xff_num_trusted_hops`.
pub fn remote_ip(headers: &Headers, peer: Observed<IpAddr>, trusted: u32) -> Observed<IpAddr> {
    if trusted == 0 {
        return peer;
    }
    let mut entries: Vec<&str> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        entries.extend(v.split(',').map(str::trim));
    }
    let trusted = trusted as usize;
    // entries + [peer]: index from the right `trusted` → entries[len - trusted].
    if trusted > entries.len() {
        return peer;
    }
    match parse_address_ip(entries[entries.len() - trusted]) {
        Some(ip) => Observed::Known(ip),
        None => peer,
    }
}

/// Everything a policy may look at, gathered once per request.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    /// Request headers (pseudo-headers included).
    pub headers: &'a Headers<'a>,
    /// `:method`.
    pub method: &'a str,
    /// The normalised path (no query).
    pub path: &'a str,
    /// Forms of `:authority` (empty when no policy matches hosts).
    pub host: HostForms<'a>,
    /// Peer address (`source.address`).
    pub peer_ip: Observed<IpAddr>,
    /// Original client address (see [`remote_ip`]).
    pub remote_ip: Observed<IpAddr>,
    /// Local address the request arrived on (`destination.address`).
    pub destination_ip: Observed<IpAddr>,
    /// Local port (`destination.port`).
    pub destination_port: Observed<u32>,
    /// TLS SNI (`connection.requested_server_name`), if any.
    pub sni: Option<&'a str>,
    /// The peer certificate's URI SAN, if the connection is mTLS.
    pub peer_uri: Option<&'a str>,
    /// The identity the JWT filter verified, if any.
    pub identity: Option<IdentityView<'a>>,
}

impl<'a> Attributes<'a> {
    /// Attributes with only headers, method and path known; connection
    /// attributes `Unknown`, no TLS, no identity (tests and benchmarks fill
    /// in the rest).
    pub fn new(headers: &'a Headers<'a>, method: &'a str, path: &'a str) -> Self {
        Attributes {
            headers,
            method,
            path,
            host: HostForms::new(headers.authority()),
            peer_ip: Observed::Unknown,
            remote_ip: Observed::Unknown,
            destination_ip: Observed::Unknown,
            destination_port: Observed::Unknown,
            sni: None,
            peer_uri: None,
            identity: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn identity_round_trip() {
        use wasmesh_common::identity::Identity;
        let mut claims = serde_json::Map::new();
        claims.insert("groups".into(), serde_json::json!(["a", "b"]));
        let id = Identity {
            provider: "idp".into(),
            iss: "https://idp".into(),
            sub: "alice".into(),
            aud: vec!["api".into(), "web".into()],
            azp: "app".into(),
            principal: "https://idp/alice".into(),
            claims,
        };
        let json = id.to_json();
        let view = IdentityView::parse(json.as_bytes()).unwrap();
        assert_eq!(
            (view.provider(), view.iss(), view.sub(), view.azp()),
            (
                "idp".into(),
                "https://idp".into(),
                "alice".into(),
                "app".into()
            )
        );
        assert_eq!(view.principal(), "https://idp/alice");
        assert_eq!(view.audiences().collect::<Vec<_>>(), vec!["api", "web"]);
        let min =
            IdentityView::parse(br#"{"provider":"p","iss":"i","principal":"i/","aud":"one"}"#)
                .unwrap();
        assert_eq!(min.audiences().collect::<Vec<_>>(), vec!["one"]);
        assert_eq!(min.sub(), "");
        assert!(IdentityView::parse(br#"{"provider":"p","principal":"x"}"#).is_none());
        assert!(IdentityView::parse(b"[1]").is_none());
        assert!(IdentityView::parse(b"not json").is_none());
    }

    #[test]
    fn host_forms() {
        let cases: &[(&str, &[&str])] = &[
            ("api.example.com", &["api.example.com"]),
            ("API.Example.com", &["api.example.com"]),
            (
                "api.example.com:8443",
                &["api.example.com:8443", "api.example.com"],
            ),
            ("api.example.com.", &["api.example.com.", "api.example.com"]),
            (
                "api.example.com.:80",
                &[
                    "api.example.com.:80",
                    "api.example.com:80",
                    "api.example.com",
                ],
            ),
            ("[2001:db8::1]:443", &["[2001:db8::1]:443", "[2001:db8::1]"]),
            ("[2001:db8::1]", &["[2001:db8::1]"]),
            ("2001:db8::1", &["2001:db8::1"]),
            ("host:", &["host:"]),
            ("host:abc", &["host:abc"]),
            ("", &[""]),
        ];
        for (authority, want) in cases {
            let forms = HostForms::new(authority);
            let got: Vec<&str> = forms.forms().collect();
            assert_eq!(got, *want, "{authority}");
        }
    }

    #[test]
    fn methods() {
        for ok in ["GET", "POST", "M-SEARCH", "PROPFIND", "X_1"] {
            assert!(valid_method(ok), "{ok}");
        }
        for bad in ["", "get", "Get", "GET ", "G ET", "GET\n", "\u{e9}"] {
            assert!(!valid_method(bad), "{bad:?}");
        }
    }

    #[test]
    fn client_address_behind_proxies() {
        let peer = Observed::Known(ip("10.0.0.9"));
        use wasmesh_common::HeaderMap;
        let one = HeaderMap::from_slice(&[("x-forwarded-for", "203.0.113.7, 198.51.100.2")]);
        let two = HeaderMap::from_slice(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        let (one, two) = (Headers::from_map(&one), Headers::from_map(&two));
        for h in [&one, &two] {
            assert_eq!(remote_ip(h, peer, 0), peer);
            assert_eq!(remote_ip(h, peer, 1), Observed::Known(ip("198.51.100.2")));
            assert_eq!(remote_ip(h, peer, 2), Observed::Known(ip("203.0.113.7")));
            assert_eq!(remote_ip(h, peer, 3), peer, "chain too short: the peer");
        }
        let none = Headers::default();
        assert_eq!(remote_ip(&none, peer, 1), peer);
        let junk = HeaderMap::from_slice(&[("x-forwarded-for", "unknown")]);
        let junk = Headers::from_map(&junk);
        assert_eq!(remote_ip(&junk, peer, 1), peer);
        let v6 = HeaderMap::from_slice(&[("x-forwarded-for", "2001:db8::7")]);
        let v6 = Headers::from_map(&v6);
        assert_eq!(remote_ip(&v6, peer, 1), Observed::Known(ip("2001:db8::7")));
        assert_eq!(remote_ip(&v6, Observed::Unknown, 0), Observed::Unknown);
    }
}
