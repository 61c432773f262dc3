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
use crate::identity::{IdentityView, JsonRef};
use crate::matcher::{StringMatch, StringMatcher};
use crate::request::HeaderMap;
use std::borrow::Cow;
use std::net::IpAddr;

/// One match item, as written in configuration (Istio's `HTTPMatchRequest`
/// plus `claims` and `sourceIp`). All conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    #[serde(deserialize_with = "crate::config::unique_map")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, StringMatch>")
    )]
    pub headers: Vec<(String, StringMatch)>,
    /// Request headers that must not match; a missing header counts as
    /// empty, and `{}` means the header must be absent.
    #[serde(deserialize_with = "crate::config::unique_map")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, StringMatch>")
    )]
    pub without_headers: Vec<(String, StringMatch)>,
    /// Query parameters (first value, not percent-decoded); `{}` means the
    /// parameter is present.
    #[serde(deserialize_with = "crate::config::unique_map")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, StringMatch>")
    )]
    pub query_params: Vec<(String, StringMatch)>,
    /// Compare `uri` `exact` and `prefix` case-insensitively.
    #[serde(deserialize_with = "crate::config::nullable")]
    pub ignore_uri_case: bool,
    /// Claims of the verified JWT identity (nested names joined with `.`); a
    /// list claim matches if any element does; `{}` means the claim exists.
    #[serde(deserialize_with = "crate::config::unique_map")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, StringMatch>")
    )]
    pub claims: Vec<(String, StringMatch)>,
    /// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or single addresses) one
    /// of which must contain the peer IP.
    #[serde(deserialize_with = "crate::config::nullable")]
    pub source_ip: Vec<String>,
}

/// What a compiled match reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestAttributes<'a> {
    /// Request headers, pseudo-headers included.
    pub headers: &'a HeaderMap,
    /// The verified identity left by the JWT filter, if any.
    pub identity: Option<IdentityView<'a>>,
    /// The peer IP (`source.address`), if known.
    pub source_ip: Option<IpAddr>,
    /// The values of the interned header names, looked up once for the
    /// request ([`HeaderNames::resolve`]); without them every header
    /// condition searches `headers`.
    pub header_values: Option<&'a HeaderValues<'a>>,
}

impl<'a> RequestAttributes<'a> {
    /// Attributes with headers only (no identity, no peer address).
    pub fn headers_only(headers: &'a HeaderMap) -> Self {
        RequestAttributes {
            headers,
            identity: None,
            source_ip: None,
            header_values: None,
        }
    }
}

/// The header names that the compiled conditions of a filter read, each
/// with a small id. A request's values are then looked up once per name
/// ([`HeaderNames::resolve`]) instead of once per condition: 50 routes on
/// `x-tenant` read `x-tenant` once.
#[derive(Debug, Clone, Default)]
pub struct HeaderNames {
    names: Vec<String>,
}

/// A request's values of the interned header names, by id.
#[derive(Debug, Clone, Default)]
pub struct HeaderValues<'a> {
    values: Vec<Option<Cow<'a, str>>>,
    /// Where the path ends in `:path` (before `?` or `#`), if `:path` is
    /// interned.
    path_end: Option<usize>,
}

/// Where the path part of a `:path` value ends (before `?` or `#`).
fn path_end(p: &str) -> usize {
    p.bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(p.len())
}

fn is_authority(name: &str) -> bool {
    name == ":authority" || name == "host"
}

impl HeaderNames {
    /// The id of `name` (lower-case), adding it if new.
    pub fn intern(&mut self, name: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        }
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name is interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Looks every interned name up in `headers`, once.
    pub fn resolve<'a>(&self, headers: &'a HeaderMap) -> HeaderValues<'a> {
        let values: Vec<Option<Cow<'a, str>>> = self
            .names
            .iter()
            .map(|n| header_value(headers, n, is_authority(n)))
            .collect();
        let path_end = self
            .names
            .iter()
            .position(|n| n == ":path")
            .map(|i| values[i].as_deref().map_or(0, path_end));
        HeaderValues { values, path_end }
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
    Value(Matcher),
}

mod compile;
mod evaluate;
mod fast_regex;

pub use compile::{compile_match_list, compile_match_list_with, header_name, literal_prefix};
use evaluate::header_value;
pub use evaluate::raw_query_param;

/// A compiled string match with, for regexes, the literal prefix every
/// match must start with: most values are rejected without running the
/// regex (regex-lite has no literal optimisations of its own).
#[derive(Debug, Clone)]
struct Matcher {
    m: StringMatcher,
    must_start: Option<String>,
    fast: Option<fast_regex::FastRegex>,
}

#[derive(Debug, Clone)]
enum Cond {
    /// `uri`; `full_path` for prefix matches (against `:path` with query).
    Path {
        m: Matcher,
        full_path: bool,
        /// Interned id of `:path`.
        id: usize,
    },
    Header {
        id: usize,
        name: String,
        authority: bool,
        m: ValueMatch,
        invert: bool,
    },
    Query {
        name: String,
        m: ValueMatch,
        /// Interned id of `:path`.
        id: usize,
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

/// One compiled match item.
#[derive(Debug, Clone)]
pub struct CompiledMatch {
    /// Conditions with their evaluation cost, cheapest first.
    conds: Vec<(u8, Cond)>,
    uri: UriKind,
    /// An exact header condition (interned id, value), if the item has one.
    exact_header: Option<(usize, String)>,
}

/// A compiled list of match items (ORed).
#[derive(Debug, Clone, Default)]
pub struct MatchList {
    items: Vec<CompiledMatch>,
    needs_identity: bool,
    needs_source_ip: bool,
    /// For a single item with an exact header condition: that condition,
    /// checked first against the resolved header values (routes keyed on
    /// one header cost a comparison each).
    quick: Option<(usize, String)>,
}

#[cfg(test)]
mod tests;
