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
use serde_json::Value;
use std::borrow::Cow;
use std::net::IpAddr;

/// One match item, as written in configuration (Istio's `HTTPMatchRequest`
/// plus `claims` and `sourceIp`). All conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub headers: Vec<(String, StringMatch)>,
    /// Request headers that must not match; a missing header counts as
    /// empty, and `{}` means the header must be absent.
    pub without_headers: Vec<(String, StringMatch)>,
    /// Query parameters (first value, not percent-decoded); `{}` means the
    /// parameter is present.
    pub query_params: Vec<(String, StringMatch)>,
    /// Compare `uri` `exact` and `prefix` case-insensitively.
    pub ignore_uri_case: bool,
    /// Claims of the verified JWT identity (nested names joined with `.`); a
    /// list claim matches if any element does; `{}` means the claim exists.
    pub claims: Vec<(String, StringMatch)>,
    /// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or single addresses) one
    /// of which must contain the peer IP.
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

/// The JSON field names of a match item.
pub const MATCH_FIELDS: &[&str] = &[
    "name",
    "uri",
    "method",
    "authority",
    "scheme",
    "headers",
    "withoutHeaders",
    "queryParams",
    "ignoreUriCase",
    "claims",
    "sourceIp",
];

impl HttpMatchRequest {
    /// Reads a match item from JSON (`path` names it in errors).
    pub fn from_json(v: &serde_json::Value, path: &FieldPath) -> Result<Self, ConfigError> {
        use json::{string_match, Obj};
        let o = Obj::new(v, path, MATCH_FIELDS)?;
        let one = |name: &str| -> Result<Option<StringMatch>, ConfigError> {
            o.get(name)
                .map(|v| string_match(v, &o.at(name)))
                .transpose()
        };
        let map = |name: &str| -> Result<Vec<(String, StringMatch)>, ConfigError> {
            o.entries(name)?
                .into_iter()
                .map(|(k, p, v)| Ok((k, string_match(v, &p)?)))
                .collect()
        };
        Ok(HttpMatchRequest {
            name: o.string("name")?,
            uri: one("uri")?,
            method: one("method")?,
            authority: one("authority")?,
            scheme: one("scheme")?,
            headers: map("headers")?,
            without_headers: map("withoutHeaders")?,
            query_params: map("queryParams")?,
            ignore_uri_case: o.boolean("ignoreUriCase")?.unwrap_or(false),
            claims: map("claims")?,
            source_ip: o.strings("sourceIp")?,
        })
    }

    /// Reads a list of match items (`match`); absent means empty.
    pub fn list_from_json(
        v: Option<&serde_json::Value>,
        path: &FieldPath,
    ) -> Result<Vec<Self>, ConfigError> {
        match v {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| HttpMatchRequest::from_json(item, &path.index(i)))
                .collect(),
            Some(other) => Err(json::invalid_type(path, other, "a sequence")),
        }
    }

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
        // Stable insertion sort (a handful of conditions; `sort` would add
        // several KiB of code to the .wasm).
        for i in 1..conds.len() {
            let mut j = i;
            while j > 0 && conds[j - 1].0 > conds[j].0 {
                conds.swap(j - 1, j);
                j -= 1;
            }
        }
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

/// Reading configuration from a parsed JSON document, with field paths in
/// every error and unknown fields refused.
///
/// The filters read their configuration with these helpers instead of
/// `#[derive(Deserialize)]` + `serde_path_to_error`: the derived code is
/// instantiated per type and per wrapper and cost the header router about
/// 100 KiB of its 300 KiB `.wasm` budget; walking a `serde_json::Value`
/// costs a few KiB. The messages follow serde's (`invalid type: integer
/// `3`, expected a string`, ``unknown field `x`, expected one of ...``).
pub mod json {
    use crate::config::{ConfigError, FieldPath};
    use crate::matcher::StringMatch;
    use serde_json::{Map, Value};

    /// Parses a configuration document; an empty document is `{}`. Syntax
    /// errors keep serde_json's line and column.
    pub fn parse_document(bytes: &[u8]) -> Result<Value, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_slice(bytes).map_err(|e| ConfigError::at("", format!("invalid JSON: {e}")))
    }

    /// How a JSON value is described in type errors.
    pub fn describe(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
            Value::Number(n) => format!("integer `{n}`"),
            Value::String(s) => format!("string {s:?}"),
            Value::Array(_) => "sequence".into(),
            Value::Object(_) => "map".into(),
        }
    }

    /// A type error at `path`.
    pub fn invalid_type(path: &FieldPath, v: &Value, expected: &str) -> ConfigError {
        path.error(format!(
            "invalid type: {}, expected {expected}",
            describe(v)
        ))
    }

    /// A JSON object being read, with its path.
    pub struct Obj<'a> {
        map: &'a Map<String, Value>,
        path: FieldPath,
    }

    impl<'a> Obj<'a> {
        /// Reads `v` at `path` as an object whose fields are all in
        /// `fields`.
        pub fn new(
            v: &'a Value,
            path: &FieldPath,
            fields: &[&str],
        ) -> Result<Obj<'a>, ConfigError> {
            let Value::Object(map) = v else {
                return Err(invalid_type(path, v, "a map"));
            };
            for key in map.keys() {
                if !fields.contains(&key.as_str()) {
                    let expected = fields
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(path
                        .field(key)
                        .error(format!("unknown field `{key}`, expected one of {expected}")));
                }
            }
            Ok(Obj {
                map,
                path: path.clone(),
            })
        }

        /// The object's own path.
        pub fn path(&self) -> &FieldPath {
            &self.path
        }

        /// The path of field `name`.
        pub fn at(&self, name: &str) -> FieldPath {
            self.path.field(name)
        }

        /// Field `name`, unless absent or `null`.
        pub fn get(&self, name: &str) -> Option<&'a Value> {
            self.map.get(name).filter(|v| !v.is_null())
        }

        /// An optional string field.
        pub fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
            match self.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(invalid_type(&self.at(name), v, "a string")),
            }
        }

        /// An optional boolean field.
        pub fn boolean(&self, name: &str) -> Result<Option<bool>, ConfigError> {
            match self.get(name) {
                None => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(v) => Err(invalid_type(&self.at(name), v, "a boolean")),
            }
        }

        /// An optional unsigned 32-bit integer field.
        pub fn u32(&self, name: &str) -> Result<Option<u32>, ConfigError> {
            match self.get(name) {
                None => Ok(None),
                Some(v) => match v.as_u64().map(u32::try_from) {
                    Some(Ok(n)) => Ok(Some(n)),
                    _ => Err(invalid_type(
                        &self.at(name),
                        v,
                        "an integer in 0..=4294967295",
                    )),
                },
            }
        }

        /// An optional number field.
        pub fn number(&self, name: &str) -> Result<Option<f64>, ConfigError> {
            match self.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| invalid_type(&self.at(name), v, "a number")),
            }
        }

        /// An optional object field, read with `fields`.
        pub fn object(&self, name: &str, fields: &[&str]) -> Result<Option<Obj<'a>>, ConfigError> {
            match self.get(name) {
                None => Ok(None),
                Some(v) => Obj::new(v, &self.at(name), fields).map(Some),
            }
        }

        /// A list field (absent means empty), with each element's path.
        pub fn list(&self, name: &str) -> Result<Vec<(FieldPath, &'a Value)>, ConfigError> {
            match self.get(name) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => {
                    let p = self.at(name);
                    Ok(items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (p.index(i), v))
                        .collect())
                }
                Some(v) => Err(invalid_type(&self.at(name), v, "a sequence")),
            }
        }

        /// A list of strings (absent means empty).
        pub fn strings(&self, name: &str) -> Result<Vec<String>, ConfigError> {
            self.list(name)?
                .into_iter()
                .map(|(p, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(invalid_type(&p, other, "a string")),
                })
                .collect()
        }

        /// A map field (absent means empty): key, the value's path, value.
        pub fn entries(
            &self,
            name: &str,
        ) -> Result<Vec<(String, FieldPath, &'a Value)>, ConfigError> {
            match self.get(name) {
                None => Ok(Vec::new()),
                Some(Value::Object(map)) => {
                    let p = self.at(name);
                    Ok(map.iter().map(|(k, v)| (k.clone(), p.key(k), v)).collect())
                }
                Some(v) => Err(invalid_type(&self.at(name), v, "a map")),
            }
        }

        /// A map of strings to strings (absent means empty).
        pub fn string_map(&self, name: &str) -> Result<Vec<(String, String)>, ConfigError> {
            self.entries(name)?
                .into_iter()
                .map(|(k, p, v)| match v {
                    Value::String(s) => Ok((k, s.clone())),
                    other => Err(invalid_type(&p, other, "a string")),
                })
                .collect()
        }
    }

    /// Reads the identity the JWT filter stored (the JSON of
    /// [`crate::identity::Identity`]) without the derived deserializer;
    /// `None` if it is not an object.
    pub fn identity_from_json(bytes: &[u8]) -> Option<crate::identity::Identity> {
        let Value::Object(map) = serde_json::from_slice::<Value>(bytes).ok()? else {
            return None;
        };
        let text = |k: &str| match map.get(k) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let (provider, iss, sub, azp, principal) = (
            text("provider"),
            text("iss"),
            text("sub"),
            text("azp"),
            text("principal"),
        );
        let aud = match map.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let claims = match map.get("claims") {
            Some(Value::Object(c)) => c.clone(),
            _ => Map::new(),
        };
        Some(crate::identity::Identity {
            provider,
            iss,
            sub,
            aud,
            azp,
            principal,
            claims,
        })
    }

    /// Reads a [`StringMatch`] (`{"exact": ..}`, ... or `{}`).
    pub fn string_match(v: &Value, path: &FieldPath) -> Result<StringMatch, ConfigError> {
        let o = Obj::new(v, path, &["exact", "prefix", "suffix", "contains", "regex"])?;
        Ok(StringMatch {
            exact: o.string("exact")?,
            prefix: o.string("prefix")?,
            suffix: o.string("suffix")?,
            contains: o.string("contains")?,
            regex: o.string("regex")?,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn errors_look_like_serde() {
            let v: Value =
                serde_json::from_str(r#"{"a": 3, "b": [1, "x"], "c": {"d": 1.5}}"#).unwrap();
            let root = FieldPath::root().field("cfg");
            let e = Obj::new(&v, &root, &["a", "b"]).err().unwrap();
            assert_eq!(
                e.to_string(),
                "cfg.c: unknown field `c`, expected one of `a`, `b`"
            );
            let o = Obj::new(&v, &root, &["a", "b", "c"]).unwrap();
            assert_eq!(
                o.string("a").unwrap_err().to_string(),
                "cfg.a: invalid type: integer `3`, expected a string"
            );
            assert_eq!(o.strings("b").unwrap_err().path, "cfg.b[0]");
            assert_eq!(o.u32("a").unwrap(), Some(3));
            assert_eq!(o.u32("missing").unwrap(), None);
            let c = o.object("c", &["d"]).unwrap().unwrap();
            assert!(c
                .u32("d")
                .unwrap_err()
                .to_string()
                .contains("floating point `1.5`"));
            assert_eq!(c.number("d").unwrap(), Some(1.5));
            assert!(parse_document(b"  ")
                .unwrap()
                .as_object()
                .unwrap()
                .is_empty());
            assert!(parse_document(b"{} x").is_err());
        }

        #[test]
        fn identity_round_trip() {
            let mut claims = Map::new();
            claims.insert("groups".into(), serde_json::json!(["a", "b"]));
            let id = crate::identity::Identity {
                provider: "idp".into(),
                iss: "https://idp".into(),
                sub: "alice".into(),
                aud: vec!["api".into()],
                azp: "web".into(),
                principal: "https://idp/alice".into(),
                claims,
            };
            assert_eq!(identity_from_json(id.to_json().as_bytes()), Some(id));
            assert_eq!(identity_from_json(b"[]"), None);
            assert_eq!(identity_from_json(b"not json"), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<HttpMatchRequest>, ConfigError> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        HttpMatchRequest::list_from_json(Some(&v), &FieldPath::root().field("match"))
    }

    fn list(json: &str) -> MatchList {
        compile_match_list(&parse(json).unwrap(), &FieldPath::root().field("match")).unwrap()
    }

    fn err(json: &str) -> ConfigError {
        match parse(json) {
            Err(e) => e,
            Ok(items) => compile_match_list(&items, &FieldPath::root().field("match")).unwrap_err(),
        }
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
        let e = err(r#"[{"sourceLabels":{}}]"#);
        assert_eq!(e.path, "match[0].sourceLabels");
        assert!(e.message.contains("unknown field"), "{e}");
        assert_eq!(
            err(r#"[{"headers":{"x":{"exact":1}}}]"#).path,
            "match[0].headers.x.exact"
        );
        assert_eq!(
            err(r#"[{"ignoreUriCase":"yes"}]"#).path,
            "match[0].ignoreUriCase"
        );
        assert_eq!(err(r#"{"uri":{}}"#).path, "match");
    }

    #[test]
    fn cheap_conditions_first() {
        let items = parse(r#"[{"uri":{"regex":"/a.*"},"headers":{"x-b":{"exact":"1"},"x-c":{}}}]"#)
            .unwrap();
        let c = items[0].compile(&FieldPath::root()).unwrap();
        let costs: Vec<u8> = c.conds.iter().map(|(c, _)| *c).collect();
        assert_eq!(costs, vec![0, 1, 4]);
    }
}
