//! Istio `HTTPMatchRequest`: which requests a route or a fault applies to.
//!
//! The JSON vocabulary is Istio's (`networking/v1/virtual_service.proto`):
//! `uri`, `method`, `authority`, `scheme`, `headers`, `withoutHeaders`,
//! `queryParams`, `ignoreUriCase`, `name`; plus two conditions Istio cannot
//! express, `claims` (from the JWT filter's verified identity) and `sourceIp`
//! (CIDR blocks of the peer address). The semantics are those of the Envoy
//! route that Istio generates for a match:
//!
//! * `uri.prefix` is compared with the whole `:path` (Envoy's `prefix`);
//!   `uri.exact` and `uri.regex` with the path without its query string
//!   (Envoy's `path` and `safe_regex`). `ignoreUriCase` applies to `exact` and
//!   `prefix` only — Envoy ignores `case_sensitive` for regexes.
//! * `headers`: `{}` (or Istio's `regex: "*"`) means "present"; a value
//!   match needs the header. A header sent several times is matched as its
//!   values joined with `,`, as Envoy does. Names are case-insensitive.
//! * `withoutHeaders`: the inverted match; a missing header counts as empty
//!   (Istio sets `treat_missing_header_as_empty`), so `{"exact": "x"}` holds
//!   for a request without the header, and `{}` requires the header to be
//!   absent.
//! * `queryParams`: the first value of the parameter, not percent-decoded
//!   (Envoy's `QueryParameterMatcher`); `?flag` has the empty value; `{}`
//!   means present.
//! * `claims`: keyed by claim name, nested names separated by `.`
//!   (`realm_access.roles`); a list claim matches if any element matches;
//!   numbers and booleans are matched as their JSON text; `{}` means present.
//!   Without a verified identity no claim condition holds.
//! * `sourceIp`: the peer IP (Envoy's `source.address`) lies in one of the
//!   blocks.
//!
//! Within one match item every condition must hold; the items of a list are
//! ORed; an absent or empty list matches every request. Everything is compiled
//! once ([`compile_match_list`]); evaluation ([`MatchList::first_match`])
//! reads a [`RequestAttributes`] and allocates only for headers sent several
//! times and non-string claims. Conditions are evaluated cheapest first
//! (presence, then exact/prefix, then regexes).

use crate::cidr::Cidr;
use crate::config::{ConfigError, FieldPath};
use crate::identity::Identity;
use crate::matcher::{StringMatch, StringMatcher};
use crate::request::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One match item, as written in configuration (Istio's `HTTPMatchRequest`
/// plus `claims` and `sourceIp`). All conditions must hold.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Name of the match item (documentation and logs only, as in Istio).
    pub name: Option<String>,
    /// The request path: `prefix` against the whole `:path`, `exact` and
    /// `regex` against the path without its query string.
    pub uri: Option<StringMatch>,
    /// The `:method`.
    pub method: Option<StringMatch>,
    /// The `:authority` (or `host`), port included if the client sent one.
    pub authority: Option<StringMatch>,
    /// The `:scheme`.
    pub scheme: Option<StringMatch>,
    /// Request headers that must match; `{}` means the header is present.
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Request headers that must not match; a missing header counts as
    /// empty, and `{}` means the header must be absent.
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameters (first value, not percent-decoded); `{}` means the
    /// parameter is present.
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Compare `uri` `exact` and `prefix` case-insensitively.
    #[serde(default)]
    pub ignore_uri_case: bool,
    /// Claims of the verified JWT identity (nested names joined with `.`); a
    /// list claim matches if any element does; `{}` means the claim exists.
    #[serde(default)]
    pub claims: BTreeMap<String, StringMatch>,
    /// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or single addresses) one
    /// of which must contain the peer IP.
    #[serde(default)]
    pub source_ip: Vec<String>,
}

/// What a compiled match reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestAttributes<'a> {
    /// Request headers, pseudo-headers included.
    pub headers: &'a HeaderMap,
    /// The verified identity left by the JWT filter, if any.
    pub identity: Option<&'a Identity>,
    /// The peer IP (`source.address`), if known.
    pub source_ip: Option<IpAddr>,
}

impl<'a> RequestAttributes<'a> {
    /// Attributes with headers only (no identity, no peer address).
    pub fn headers_only(headers: &'a HeaderMap) -> Self {
        RequestAttributes {
            headers,
            identity: None,
            source_ip: None,
        }
    }
}

/// How the path was matched, which decides what a `rewrite.uri` replaces
/// (Envoy's `prefix_rewrite` semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    /// A prefix of this many bytes of `:path` was matched (a match without
    /// `uri` counts as the prefix `/`, as the Envoy route Istio generates).
    Prefix(usize),
    /// The whole path (without query) was matched (`exact`, `regex`, ...).
    Whole,
}

/// A successful match: which item of the list matched and how the path was
/// matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// Index of the matching item; `None` when the list is empty.
    pub item: Option<usize>,
    /// What a URI rewrite replaces.
    pub path: PathMatch,
}

#[derive(Debug, Clone)]
enum ValueMatch {
    Present,
    Value(StringMatcher),
}

#[derive(Debug, Clone)]
enum Cond {
    /// `uri`; `full_path` for prefix matches (against `:path` with query).
    Path {
        m: StringMatcher,
        full_path: bool,
    },
    Header {
        name: String,
        authority: bool,
        m: ValueMatch,
        invert: bool,
    },
    Query {
        name: String,
        m: ValueMatch,
    },
    Claim {
        path: Vec<String>,
        m: ValueMatch,
    },
    SourceIp(Vec<Cidr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UriKind {
    None,
    Prefix(usize),
    Whole,
}

fn path_match(uri: UriKind, headers: &HeaderMap) -> PathMatch {
    match uri {
        UriKind::Prefix(n) => PathMatch::Prefix(n),
        UriKind::Whole => PathMatch::Whole,
        UriKind::None => PathMatch::Prefix(usize::from(headers.path().starts_with('/'))),
    }
}

/// One compiled match item.
#[derive(Debug, Clone)]
pub struct CompiledMatch {
    /// Conditions with their evaluation cost, cheapest first.
    conds: Vec<(u8, Cond)>,
    uri: UriKind,
}

/// A compiled list of match items (ORed).
#[derive(Debug, Clone, Default)]
pub struct MatchList {
    items: Vec<CompiledMatch>,
    needs_identity: bool,
    needs_source_ip: bool,
}

/// Compiles a match list; `path` names the list (e.g. `routes[2].match`).
pub fn compile_match_list(
    list: &[HttpMatchRequest],
    path: &FieldPath,
) -> Result<MatchList, ConfigError> {
    let mut out = MatchList::default();
    for (i, item) in list.iter().enumerate() {
        let compiled = item.compile(&path.index(i))?;
        out.needs_identity |= compiled
            .conds
            .iter()
            .any(|(_, c)| matches!(c, Cond::Claim { .. }));
        out.needs_source_ip |= compiled
            .conds
            .iter()
            .any(|(_, c)| matches!(c, Cond::SourceIp(_)));
        out.items.push(compiled);
    }
    Ok(out)
}

fn kind_count(m: &StringMatch) -> usize {
    [&m.exact, &m.prefix, &m.suffix, &m.contains, &m.regex]
        .iter()
        .filter(|v| v.is_some())
        .count()
}

/// `{}` and Istio's `regex: "*"` mean "present".
fn value_match(m: &StringMatch, path: &FieldPath) -> Result<ValueMatch, ConfigError> {
    if kind_count(m) == 0 || (kind_count(m) == 1 && m.regex.as_deref() == Some("*")) {
        return Ok(ValueMatch::Present);
    }
    Ok(ValueMatch::Value(m.compile(path, false)?))
}

/// Relative evaluation cost of a string match: presence and plain
/// comparisons before regexes.
fn match_cost(m: &StringMatch) -> u8 {
    if kind_count(m) == 0 || m.regex.as_deref() == Some("*") {
        0
    } else if m.regex.is_some() {
        4
    } else {
        1
    }
}

/// Checks a header name from configuration and lower-cases it.
pub fn header_name(name: &str, path: &FieldPath) -> Result<String, ConfigError> {
    let valid = !name.is_empty()
        && name.bytes().enumerate().all(|(i, b)| {
            (b == b':' && i == 0) || (b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        });
    if !valid {
        return Err(path.error(format!("invalid header name `{name}`")));
    }
    Ok(name.to_ascii_lowercase())
}

impl HttpMatchRequest {
    /// Compiles this item; `path` names it (e.g. `routes[2].match[0]`).
    pub fn compile(&self, path: &FieldPath) -> Result<CompiledMatch, ConfigError> {
        let mut conds = Vec::new();
        let mut uri = UriKind::None;
        if let Some(m) = &self.uri {
            let p = path.field("uri");
            if kind_count(m) == 0 {
                return Err(p.error("one of `exact`, `prefix` or `regex` is required"));
            }
            // Envoy ignores `case_sensitive` for regex path matches.
            let ignore_case = self.ignore_uri_case && m.regex.is_none();
            let compiled = m.compile(&p, ignore_case)?;
            let full_path = m.prefix.is_some();
            uri = match &m.prefix {
                Some(prefix) if kind_count(m) == 1 => UriKind::Prefix(prefix.len()),
                _ => UriKind::Whole,
            };
            conds.push((
                match_cost(m),
                Cond::Path {
                    m: compiled,
                    full_path,
                },
            ));
        }
        for (field, header) in [
            ("method", ":method"),
            ("authority", ":authority"),
            ("scheme", ":scheme"),
        ] {
            let m = match field {
                "method" => &self.method,
                "authority" => &self.authority,
                _ => &self.scheme,
            };
            if let Some(m) = m {
                let p = path.field(field);
                if kind_count(m) == 0 {
                    return Err(p.error("one of `exact`, `prefix` or `regex` is required"));
                }
                let cond = Cond::Header {
                    name: header.to_string(),
                    authority: header == ":authority",
                    m: ValueMatch::Value(m.compile(&p, false)?),
                    invert: false,
                };
                conds.push((match_cost(m), cond));
            }
        }
        for (invert, field, map) in [
            (false, "headers", &self.headers),
            (true, "withoutHeaders", &self.without_headers),
        ] {
            for (name, m) in map {
                let p = path.field(field).key(name);
                let name = header_name(name, &p)?;
                let cond = Cond::Header {
                    authority: name == ":authority" || name == "host",
                    name,
                    m: value_match(m, &p)?,
                    invert,
                };
                conds.push((match_cost(m), cond));
            }
        }
        for (name, m) in &self.query_params {
            let p = path.field("queryParams").key(name);
            if name.is_empty() {
                return Err(p.error("empty query parameter name"));
            }
            let cond = Cond::Query {
                name: name.clone(),
                m: value_match(m, &p)?,
            };
            conds.push((match_cost(m), cond));
        }
        for (name, m) in &self.claims {
            let p = path.field("claims").key(name);
            let segments: Vec<String> = name.split('.').map(str::to_string).collect();
            if segments.iter().any(String::is_empty) {
                return Err(p.error(format!("invalid claim name `{name}`")));
            }
            let cond = Cond::Claim {
                path: segments,
                m: value_match(m, &p)?,
            };
            conds.push((2 + match_cost(m), cond));
        }
        if !self.source_ip.is_empty() {
            let mut blocks = Vec::with_capacity(self.source_ip.len());
            for (i, text) in self.source_ip.iter().enumerate() {
                blocks
                    .push(Cidr::parse(text).map_err(|e| path.field("sourceIp").index(i).error(e))?);
            }
            conds.push((2, Cond::SourceIp(blocks)));
        }
        conds.sort_by_key(|(c, _)| *c);
        Ok(CompiledMatch { conds, uri })
    }
}

/// The value of a header for matching: the first value, or all values joined
/// with `,` when it was sent several times (Envoy's `getAllOfHeaderAsString`).
fn header_value<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
    authority: bool,
) -> Option<Cow<'a, str>> {
    if authority {
        let a = headers.authority();
        return if a.is_empty() && !headers.contains(":authority") && !headers.contains("host") {
            None
        } else {
            Some(Cow::Borrowed(a))
        };
    }
    let mut values = headers.get_all(name);
    let first = values.next()?;
    match values.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = String::with_capacity(first.len() + second.len() + 16);
            joined.push_str(first);
            joined.push(',');
            joined.push_str(second);
            for v in values {
                joined.push(',');
                joined.push_str(v);
            }
            Some(Cow::Owned(joined))
        }
    }
}

/// The first raw (not percent-decoded) value of query parameter `name`;
/// `?flag` gives `""`.
pub fn raw_query_param<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let query = headers.query()?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

fn claim_matches(v: &Value, m: &StringMatcher) -> bool {
    fn scalar(v: &Value, m: &StringMatcher) -> bool {
        match v {
            Value::String(s) => m.matches(s),
            Value::Number(n) => m.matches(&n.to_string()),
            Value::Bool(b) => m.matches(if *b { "true" } else { "false" }),
            _ => false,
        }
    }
    match v {
        Value::Array(items) => items.iter().any(|i| scalar(i, m)),
        other => scalar(other, m),
    }
}

fn claim_at<'a>(identity: &'a Identity, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = identity.claims.get(first.as_str())?;
    for seg in rest {
        v = v.as_object()?.get(seg.as_str())?;
    }
    Some(v)
}

impl Cond {
    fn holds(&self, req: &RequestAttributes<'_>) -> bool {
        match self {
            Cond::Path { m, full_path } => {
                let h = req.headers;
                m.matches(if *full_path { h.path() } else { h.url_path() })
            }
            Cond::Header {
                name,
                authority,
                m,
                invert,
            } => {
                let value = header_value(req.headers, name, *authority);
                match (m, invert) {
                    (ValueMatch::Present, false) => value.is_some(),
                    (ValueMatch::Present, true) => value.is_none(),
                    (ValueMatch::Value(m), false) => value.is_some_and(|v| m.matches(&v)),
                    (ValueMatch::Value(m), true) => !m.matches(value.as_deref().unwrap_or("")),
                }
            }
            Cond::Query { name, m } => match (raw_query_param(req.headers, name), m) {
                (None, _) => false,
                (Some(_), ValueMatch::Present) => true,
                (Some(v), ValueMatch::Value(m)) => m.matches(v),
            },
            Cond::Claim { path, m } => match (req.identity.and_then(|id| claim_at(id, path)), m) {
                (None, _) => false,
                (Some(_), ValueMatch::Present) => true,
                (Some(v), ValueMatch::Value(m)) => claim_matches(v, m),
            },
            Cond::SourceIp(blocks) => req
                .source_ip
                .is_some_and(|ip| blocks.iter().any(|b| b.contains(ip))),
        }
    }
}

impl CompiledMatch {
    /// Whether every condition holds.
    pub fn matches(&self, req: &RequestAttributes<'_>) -> bool {
        self.conds.iter().all(|(_, c)| c.holds(req))
    }

    /// How the path was matched (call after [`CompiledMatch::matches`]).
    pub fn path_match(&self, headers: &HeaderMap) -> PathMatch {
        path_match(self.uri, headers)
    }
}

impl MatchList {
    /// A list that matches everything.
    pub fn any() -> Self {
        MatchList::default()
    }

    /// Whether the list has no items (and so matches every request).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether some item has `claims` conditions (the glue then reads the
    /// identity before matching).
    pub fn needs_identity(&self) -> bool {
        self.needs_identity
    }

    /// Whether some item has `sourceIp` conditions.
    pub fn needs_source_ip(&self) -> bool {
        self.needs_source_ip
    }

    /// The first item that matches, or `None`. An empty list matches.
    pub fn first_match(&self, req: &RequestAttributes<'_>) -> Option<Matched> {
        if self.items.is_empty() {
            return Some(Matched {
                item: None,
                path: path_match(UriKind::None, req.headers),
            });
        }
        self.items.iter().enumerate().find_map(|(i, m)| {
            m.matches(req).then(|| Matched {
                item: Some(i),
                path: m.path_match(req.headers),
            })
        })
    }

    /// Whether any item matches.
    pub fn matches(&self, req: &RequestAttributes<'_>) -> bool {
        self.items.is_empty() || self.items.iter().any(|m| m.matches(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: &str) -> MatchList {
        let items: Vec<HttpMatchRequest> = serde_json::from_str(json).unwrap();
        compile_match_list(&items, &FieldPath::root().field("match")).unwrap()
    }

    fn err(json: &str) -> ConfigError {
        let items: Vec<HttpMatchRequest> = serde_json::from_str(json).unwrap();
        compile_match_list(&items, &FieldPath::root().field("match")).unwrap_err()
    }

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::from_slice(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "shop.example.com"),
        ]);
        for (k, v) in pairs {
            if k.starts_with(':') {
                h.set(k, v);
            } else {
                h.add(k, v);
            }
        }
        h
    }

    fn hit(l: &MatchList, h: &HeaderMap) -> Option<usize> {
        l.first_match(&RequestAttributes::headers_only(h))
            .and_then(|m| m.item)
    }

    fn matches(l: &MatchList, h: &HeaderMap) -> bool {
        l.matches(&RequestAttributes::headers_only(h))
    }

    #[test]
    fn empty_list_matches_everything() {
        let l = list("[]");
        let h = req(&[(":path", "/x")]);
        let m = l.first_match(&RequestAttributes::headers_only(&h)).unwrap();
        assert_eq!(m.item, None);
        assert_eq!(m.path, PathMatch::Prefix(1));
        // An item with no conditions also matches everything.
        assert_eq!(hit(&list("[{}]"), &h), Some(0));
    }

    #[test]
    fn uri_kinds_follow_envoy() {
        let prefix = list(r#"[{"uri":{"prefix":"/reviews"}}]"#);
        assert!(matches(&prefix, &req(&[(":path", "/reviews/1?x=1")])));
        assert!(matches(&prefix, &req(&[(":path", "/reviewsX")])));
        assert!(!matches(&prefix, &req(&[(":path", "/Reviews")])));
        // Exact and regex compare the path without its query string.
        let exact = list(r#"[{"uri":{"exact":"/a"}}]"#);
        assert!(matches(&exact, &req(&[(":path", "/a?b=1")])));
        assert!(!matches(&exact, &req(&[(":path", "/a/")])));
        let regex = list(r#"[{"uri":{"regex":"/v[0-9]+/.*"}}]"#);
        assert!(matches(&regex, &req(&[(":path", "/v2/users?x=/y")])));
        assert!(!matches(&regex, &req(&[(":path", "/x/v2/users")])));
    }

    #[test]
    fn ignore_uri_case_applies_to_exact_and_prefix_only() {
        let l = list(r#"[{"uri":{"prefix":"/API"},"ignoreUriCase":true}]"#);
        assert!(matches(&l, &req(&[(":path", "/api/x")])));
        let l = list(r#"[{"uri":{"exact":"/Login"},"ignoreUriCase":true}]"#);
        assert!(matches(&l, &req(&[(":path", "/LOGIN")])));
        let l = list(r#"[{"uri":{"regex":"/abc"},"ignoreUriCase":true}]"#);
        assert!(!matches(&l, &req(&[(":path", "/ABC")])));
        assert!(matches(&l, &req(&[(":path", "/abc")])));
    }

    #[test]
    fn method_authority_scheme() {
        let l = list(
            r#"[{"method":{"exact":"POST"},"authority":{"prefix":"shop."},"scheme":{"exact":"https"}}]"#,
        );
        assert!(matches(
            &l,
            &req(&[(":method", "POST"), (":scheme", "https")])
        ));
        assert!(!matches(
            &l,
            &req(&[(":method", "GET"), (":scheme", "https")])
        ));
        assert!(!matches(&l, &req(&[(":method", "POST")])));
        assert!(!matches(
            &l,
            &req(&[
                (":method", "POST"),
                (":scheme", "https"),
                (":authority", "api.x")
            ])
        ));
        // HTTP/1.0 without :authority falls back to host.
        let mut h = HeaderMap::from_slice(&[
            (":method", "POST"),
            (":scheme", "https"),
            ("host", "shop.a"),
        ]);
        assert!(matches(&l, &h));
        h.remove("host");
        assert!(!matches(&l, &h));
    }

    #[test]
    fn headers_present_value_and_multi() {
        let l = list(r#"[{"headers":{"X-Beta":{"exact":"true"},"x-tenant":{}}}]"#);
        assert!(matches(&l, &req(&[("x-beta", "true"), ("x-tenant", "")])));
        assert!(!matches(&l, &req(&[("x-beta", "true")])));
        assert!(!matches(&l, &req(&[("x-beta", "TRUE"), ("x-tenant", "a")])));
        // Istio's `regex: "*"` is a presence match.
        let l = list(r#"[{"headers":{"x-a":{"regex":"*"}}}]"#);
        assert!(matches(&l, &req(&[("x-a", "anything")])));
        // Several values are joined with a comma, as Envoy does.
        let l = list(r#"[{"headers":{"x-a":{"exact":"1,2"}}}]"#);
        assert!(matches(&l, &req(&[("x-a", "1"), ("x-a", "2")])));
        assert!(!matches(&l, &req(&[("x-a", "1")])));
    }

    #[test]
    fn without_headers_treat_missing_as_empty() {
        let l = list(r#"[{"withoutHeaders":{"x-canary":{"exact":"off"}}}]"#);
        assert!(matches(&l, &req(&[])));
        assert!(matches(&l, &req(&[("x-canary", "on")])));
        assert!(!matches(&l, &req(&[("x-canary", "off")])));
        let l = list(r#"[{"withoutHeaders":{"x-debug":{}}}]"#);
        assert!(matches(&l, &req(&[])));
        assert!(!matches(&l, &req(&[("x-debug", "")])));
        let l = list(r#"[{"withoutHeaders":{"x-a":{"exact":""}}}]"#);
        assert!(!matches(&l, &req(&[])));
    }

    #[test]
    fn query_params_raw_first_value() {
        let l = list(r#"[{"queryParams":{"v":{"exact":"2"},"debug":{}}}]"#);
        assert!(matches(&l, &req(&[(":path", "/x?debug&v=2&v=3")])));
        assert!(!matches(&l, &req(&[(":path", "/x?v=3&v=2&debug")])));
        assert!(!matches(&l, &req(&[(":path", "/x?v=2")])));
        assert!(!matches(&l, &req(&[(":path", "/x")])));
        let l = list(r#"[{"queryParams":{"q":{"exact":"a%20b"}}}]"#);
        assert!(matches(&l, &req(&[(":path", "/s?q=a%20b")])));
        let l = list(r#"[{"queryParams":{"flag":{"exact":""}}}]"#);
        assert!(matches(&l, &req(&[(":path", "/s?flag")])));
        let l = list(r#"[{"queryParams":{"id":{"regex":"[0-9]+"}}}]"#);
        assert!(matches(&l, &req(&[(":path", "/s?id=42")])));
        assert!(!matches(&l, &req(&[(":path", "/s?id=4x")])));
    }

    fn identity(claims: serde_json::Value) -> Identity {
        Identity {
            provider: "idp".into(),
            iss: "https://idp".into(),
            sub: "alice".into(),
            principal: "https://idp/alice".into(),
            claims: claims.as_object().unwrap().clone(),
            ..Default::default()
        }
    }

    #[test]
    fn claims_nested_lists_and_scalars() {
        let id = identity(serde_json::json!({
            "groups": ["dev", "beta"], "realm": {"roles": ["admin"], "level": 3}, "email_verified": true
        }));
        let h = req(&[]);
        let at = |json: &str, identity: Option<&Identity>| {
            list(json).matches(&RequestAttributes {
                headers: &h,
                identity,
                source_ip: None,
            })
        };
        assert!(at(r#"[{"claims":{"groups":{"exact":"beta"}}}]"#, Some(&id)));
        assert!(!at(r#"[{"claims":{"groups":{"exact":"ops"}}}]"#, Some(&id)));
        assert!(at(
            r#"[{"claims":{"realm.roles":{"exact":"admin"}}}]"#,
            Some(&id)
        ));
        assert!(at(
            r#"[{"claims":{"realm.level":{"exact":"3"}}}]"#,
            Some(&id)
        ));
        assert!(at(
            r#"[{"claims":{"email_verified":{"exact":"true"}}}]"#,
            Some(&id)
        ));
        assert!(at(r#"[{"claims":{"realm":{}}}]"#, Some(&id)));
        assert!(!at(r#"[{"claims":{"missing":{}}}]"#, Some(&id)));
        assert!(!at(r#"[{"claims":{"groups":{"exact":"beta"}}}]"#, None));
        assert!(list(r#"[{"claims":{"groups":{}}}]"#).needs_identity());
    }

    #[test]
    fn source_ip_blocks() {
        let l = list(r#"[{"sourceIp":["10.0.0.0/8","2001:db8::/32"]}]"#);
        assert!(l.needs_source_ip());
        let h = req(&[]);
        let with = |ip: Option<&str>| {
            l.matches(&RequestAttributes {
                headers: &h,
                identity: None,
                source_ip: ip.map(|s| s.parse().unwrap()),
            })
        };
        assert!(with(Some("10.1.2.3")));
        assert!(with(Some("2001:db8::1")));
        assert!(!with(Some("192.168.0.1")));
        assert!(!with(None));
    }

    #[test]
    fn items_are_ored_and_first_wins() {
        let l = list(r#"[{"headers":{"x-a":{}}},{"uri":{"prefix":"/b"}},{"uri":{"prefix":"/"}}]"#);
        assert_eq!(hit(&l, &req(&[(":path", "/b"), ("x-a", "1")])), Some(0));
        assert_eq!(hit(&l, &req(&[(":path", "/b")])), Some(1));
        assert_eq!(hit(&l, &req(&[(":path", "/c")])), Some(2));
        assert_eq!(hit(&l, &req(&[(":path", "*")])), None);
    }

    #[test]
    fn path_match_for_rewrites() {
        let l =
            list(r#"[{"uri":{"prefix":"/old/"}},{"uri":{"exact":"/x"}},{"headers":{"x-a":{}}}]"#);
        let at = |path: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![(":path", path)];
            pairs.extend_from_slice(extra);
            let h = req(&pairs);
            l.first_match(&RequestAttributes::headers_only(&h))
                .unwrap()
                .path
        };
        assert_eq!(at("/old/a", &[]), PathMatch::Prefix(5));
        assert_eq!(at("/x?q", &[]), PathMatch::Whole);
        assert_eq!(at("/z", &[("x-a", "1")]), PathMatch::Prefix(1));
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(r#"[{}, {"headers":{"x-a":{"regex":"(bad"}}}]"#);
        assert_eq!(e.path, "match[1].headers.x-a.regex");
        let e = err(r#"[{"uri":{}}]"#);
        assert_eq!(e.path, "match[0].uri");
        let e = err(r#"[{"sourceIp":["10.0.0.0/8","10.0.0.1/8"]}]"#);
        assert_eq!(e.path, "match[0].sourceIp[1]");
        let e = err(r#"[{"headers":{"bad name":{}}}]"#);
        assert_eq!(e.path, "match[0].headers.bad name");
        let e = err(r#"[{"claims":{"a..b":{}}}]"#);
        assert_eq!(e.path, "match[0].claims.a..b");
        let e = err(r#"[{"method":{"exact":"GET","prefix":"G"}}]"#);
        assert_eq!(e.path, "match[0].method");
        let huge = format!(r#"[{{"uri":{{"regex":"{}"}}}}]"#, "(a{1000}){1000}");
        assert_eq!(err(&huge).path, "match[0].uri.regex");
        let e =
            serde_json::from_str::<Vec<HttpMatchRequest>>(r#"[{"sourceLabels":{}}]"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn cheap_conditions_first() {
        let items: Vec<HttpMatchRequest> = serde_json::from_str(
            r#"[{"uri":{"regex":"/a.*"},"headers":{"x-b":{"exact":"1"},"x-c":{}}}]"#,
        )
        .unwrap();
        let c = items[0].compile(&FieldPath::root()).unwrap();
        let costs: Vec<u8> = c.conds.iter().map(|(c, _)| *c).collect();
        assert_eq!(costs, vec![0, 1, 4]);
    }
}
