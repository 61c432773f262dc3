//! Where tokens are found in a request, and how they are removed again.
//!
//! Each provider (`jwtRules` entry) names its locations with `fromHeaders`,
//! `fromParams` and `fromCookies`; a provider that names none uses the
//! defaults `Authorization: Bearer <token>` and `?access_token=<token>`, as
//! Envoy and Istio do (naming any location replaces both defaults). Equal
//! locations of several providers are merged, so a request's token is
//! extracted once and attributed to the providers that look there.
//!
//! Every occurrence counts: a header sent twice, a query parameter or cookie
//! repeated, each is a token of its own (the authenticator refuses more than
//! one token per provider, see `authenticator`).

use wasmesh_common::request::percent_decode;
use wasmesh_common::HeaderMap;

/// Where a token is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationKind {
    /// A request header, its value after `prefix` (e.g. `Bearer `).
    Header {
        /// Lower-case header name.
        name: String,
        /// Value prefix; empty means the whole value is the token.
        prefix: String,
    },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// A location and the providers (indices into the provider list) that look there.
#[derive(Debug, Clone)]
pub struct Location {
    /// What and where.
    pub kind: LocationKind,
    /// Providers configured with this location, in configuration order.
    pub providers: Vec<usize>,
}

/// A token found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedToken {
    /// Index into [`Extractor::locations`].
    pub location: usize,
    /// The token text.
    pub token: String,
}

/// All token locations of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Extractor {
    /// Distinct locations in configuration order.
    pub locations: Vec<Location>,
}

impl Extractor {
    /// Registers that `provider` looks at `kind`; returns the location index.
    pub fn add(&mut self, kind: LocationKind, provider: usize) -> usize {
        if let Some(i) = self.locations.iter().position(|l| l.kind == kind) {
            if !self.locations[i].providers.contains(&provider) {
                self.locations[i].providers.push(provider);
            }
            return i;
        }
        self.locations.push(Location {
            kind,
            providers: vec![provider],
        });
        self.locations.len() - 1
    }

    /// Every token in the request, location by location.
    pub fn extract(&self, headers: &HeaderMap) -> Vec<ExtractedToken> {
        let mut out = Vec::new();
        for (i, loc) in self.locations.iter().enumerate() {
            match &loc.kind {
                LocationKind::Header { name, prefix } => {
                    for value in headers.get_all(name) {
                        if let Some(token) = strip_prefix(value, prefix) {
                            out.push(ExtractedToken {
                                location: i,
                                token: token.to_string(),
                            });
                        }
                    }
                }
                LocationKind::Param(param) => {
                    if let Some(q) = headers.query() {
                        for token in query_values(q, param) {
                            out.push(ExtractedToken { location: i, token });
                        }
                    }
                }
                LocationKind::Cookie(cookie) => {
                    for token in cookie_values(headers, cookie) {
                        out.push(ExtractedToken {
                            location: i,
                            token: token.to_string(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// The token in a header value: after `prefix` (compared ignoring ASCII case,
/// since HTTP auth schemes are case-insensitive) and any spaces; `None` when
/// the value does not start with the prefix or nothing follows it.
fn strip_prefix<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let v = value.trim_matches(|c| c == ' ' || c == '\t');
    let rest = if prefix.is_empty() {
        v
    } else {
        let head = v.as_bytes().get(..prefix.len())?;
        if !head.eq_ignore_ascii_case(prefix.as_bytes()) {
            // A prefix with a trailing space also matches when the value is
            // only the scheme ("Bearer"): that is a missing token.
            return None;
        }
        v.get(prefix.len()..)?.trim_start_matches([' ', '\t'])
    };
    (!rest.is_empty()).then_some(rest)
}

/// Every (percent-decoded) value of query parameter `name`.
fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true) == name).then(|| percent_decode(v, true))
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Every value of cookie `name` across all `cookie` headers.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.get_all("cookie").flat_map(move |h| {
        h.split(';').filter_map(move |c| {
            let (k, v) = c.trim().split_once('=')?;
            let v = v.trim().trim_matches('"');
            (k.trim() == name && !v.is_empty()).then_some(v)
        })
    })
}

/// Removes query parameter `name` (every occurrence) from a `:path`.
pub fn remove_query_param(path: &str, name: &str) -> String {
    let Some((base, rest)) = path.split_once('?') else {
        return path.to_string();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let k = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !kv.is_empty() && percent_decode(k, true) != name
        })
        .collect();
    let mut out = base.to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A `cookie` header value without cookie `name`; `None` if nothing is left.
pub fn remove_cookie(value: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.split_once('=').map_or(*c, |(k, _)| k).trim() != name)
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Extractor {
        let mut e = Extractor::default();
        e.add(
            LocationKind::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            0,
        );
        e.add(LocationKind::Param("access_token".into()), 0);
        e
    }

    fn tokens(e: &Extractor, h: &[(&str, &str)]) -> Vec<(usize, String)> {
        e.extract(&HeaderMap::from_slice(h))
            .into_iter()
            .map(|t| (t.location, t.token))
            .collect()
    }

    #[test]
    fn bearer_header_and_param() {
        let e = defaults();
        assert_eq!(
            tokens(&e, &[(":path", "/"), ("authorization", "Bearer abc")]),
            vec![(0, "abc".into())]
        );
        assert_eq!(
            tokens(&e, &[(":path", "/"), ("authorization", "bearer  abc ")]),
            vec![(0, "abc".into())]
        );
        assert_eq!(
            tokens(&e, &[(":path", "/x?a=1&access_token=t%2Ek")]),
            vec![(1, "t.k".into())]
        );
        assert!(tokens(&e, &[(":path", "/"), ("authorization", "Basic abc")]).is_empty());
        assert!(tokens(&e, &[(":path", "/"), ("authorization", "Bearer")]).is_empty());
        assert!(tokens(&e, &[(":path", "/"), ("authorization", "Bearer ")]).is_empty());
        assert!(tokens(&e, &[(":path", "/?access_token=")]).is_empty());
    }

    #[test]
    fn every_occurrence_counts() {
        let e = defaults();
        let t = tokens(
            &e,
            &[
                (":path", "/?access_token=p1&access_token=p2"),
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b"),
            ],
        );
        assert_eq!(
            t,
            vec![
                (0, "a".into()),
                (0, "b".into()),
                (1, "p1".into()),
                (1, "p2".into())
            ]
        );
    }

    #[test]
    fn custom_header_cookie_and_sharing() {
        let mut e = Extractor::default();
        let h = e.add(
            LocationKind::Header {
                name: "x-token".into(),
                prefix: String::new(),
            },
            0,
        );
        let c = e.add(LocationKind::Cookie("session".into()), 1);
        assert_eq!(e.add(LocationKind::Cookie("session".into()), 2), c);
        assert_eq!(e.locations[c].providers, vec![1, 2]);
        let t = tokens(
            &e,
            &[
                (":path", "/"),
                ("x-token", "tok"),
                ("cookie", "a=1; session=\"s1\""),
                ("cookie", "session=s2"),
            ],
        );
        assert_eq!(
            t,
            vec![(h, "tok".into()), (c, "s1".into()), (c, "s2".into())]
        );
    }

    #[test]
    fn removal() {
        assert_eq!(
            remove_query_param("/a?x=1&access_token=t&y=2", "access_token"),
            "/a?x=1&y=2"
        );
        assert_eq!(
            remove_query_param("/a?access_token=t", "access_token"),
            "/a"
        );
        assert_eq!(
            remove_query_param("/a?access_token=t#f", "access_token"),
            "/a#f"
        );
        assert_eq!(
            remove_query_param("/a?access%5Ftoken=t&b", "access_token"),
            "/a?b"
        );
        assert_eq!(remove_query_param("/a", "access_token"), "/a");
        assert_eq!(
            remove_cookie("a=1; session=x; b=2", "session").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(remove_cookie("session=x", "session"), None);
    }
}
