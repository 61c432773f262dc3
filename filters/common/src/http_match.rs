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

/// A full-match automaton for the simple regexes most routes use —
/// literals, `.`, classes (`[a-z0-9_]`, `\d`, `\w`, `\s`) and the
/// quantifiers `?`, `*`, `+`, `{n}`, `{n,}`, `{n,m}` on single atoms, up to
/// 63 positions — run bit-parallel (Glushkov positions in a `u64`, one
/// table lookup and a few shifts per byte). It accepts exactly the strings
/// the regex fully matches, and is only used for ASCII input; anything else
/// (groups, alternation, assertions, Unicode) stays with regex-lite.
mod fast_regex {
    /// One table entry per ASCII byte: the positions that accept it.
    #[derive(Debug, Clone)]
    pub struct FastRegex {
        accept: Box<[u64; 128]>,
        /// Positions that may repeat (`*`, `+`).
        repeat: u64,
        /// Positions that may be skipped (`?`, `*`).
        optional: u64,
        /// The bit after the last position.
        end: u64,
    }

    type Class = [bool; 128];

    fn class_of(f: impl Fn(u8) -> bool) -> Class {
        let mut c = [false; 128];
        for (b, slot) in c.iter_mut().enumerate() {
            *slot = f(b as u8);
        }
        c
    }

    fn perl_class(c: u8) -> Option<Class> {
        Some(match c {
            b'd' => class_of(|b| b.is_ascii_digit()),
            b'D' => class_of(|b| !b.is_ascii_digit()),
            b'w' => class_of(|b| b.is_ascii_alphanumeric() || b == b'_'),
            b'W' => class_of(|b| !(b.is_ascii_alphanumeric() || b == b'_')),
            b's' => class_of(|b| matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' ')),
            b'S' => class_of(|b| !matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' ')),
            _ => return None,
        })
    }

    /// Escapes that stand for the character itself.
    fn escaped_literal(c: u8) -> bool {
        b"\\.+*?()|[]{}^$-/#&~ \"'!%,:;<=>@_`".contains(&c)
    }

    fn parse_class(p: &[u8], mut i: usize) -> Option<(Class, usize)> {
        // `p[i]` is just after `[`.
        let negate = p.get(i) == Some(&b'^');
        if negate {
            i += 1;
        }
        let mut c = [false; 128];
        let mut first = true;
        loop {
            let b = *p.get(i)?;
            if b == b']' && !first {
                i += 1;
                break;
            }
            first = false;
            let lo = match b {
                b'\\' => {
                    let e = *p.get(i + 1)?;
                    i += 2;
                    if let Some(pc) = perl_class(e) {
                        if e.is_ascii_uppercase() {
                            return None;
                        }
                        for (x, y) in c.iter_mut().zip(pc) {
                            *x |= y;
                        }
                        continue;
                    }
                    if !escaped_literal(e) {
                        return None;
                    }
                    e
                }
                b'[' => return None, // [:alpha:] and nested classes
                _ => {
                    i += 1;
                    b
                }
            };
            // A range `lo-hi` (a `-` before `]` is literal).
            if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|n| *n != b']') {
                let hi = match p[i + 1] {
                    b'\\' => {
                        let e = *p.get(i + 2)?;
                        if !escaped_literal(e) {
                            return None;
                        }
                        i += 3;
                        e
                    }
                    b'[' => return None,
                    h => {
                        i += 2;
                        h
                    }
                };
                if hi < lo {
                    return None;
                }
                for x in lo..=hi {
                    c[x as usize] = true;
                }
            } else {
                c[lo as usize] = true;
            }
        }
        if negate {
            for x in c.iter_mut() {
                *x = !*x;
            }
        }
        Some((c, i))
    }

    fn number(p: &[u8], i: &mut usize) -> Option<u32> {
        let start = *i;
        while p.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        std::str::from_utf8(&p[start..*i]).ok()?.parse().ok()
    }

    impl FastRegex {
        /// Builds the automaton, or `None` if the pattern is outside the
        /// supported subset.
        pub fn new(pattern: &str) -> Option<FastRegex> {
            if !pattern.is_ascii() {
                return None;
            }
            let mut p = pattern.as_bytes();
            if let Some(rest) = p.strip_prefix(b"^") {
                p = rest;
            }
            if p.ends_with(b"$") && !p.ends_with(b"\\$") {
                p = &p[..p.len() - 1];
            }
            // (class, optional, repeat) per position.
            let mut pos: Vec<(Class, bool, bool)> = Vec::new();
            let mut i = 0;
            while i < p.len() {
                let (atom, next) = match p[i] {
                    b'.' => (class_of(|b| b != b'\n'), i + 1),
                    b'[' => parse_class(p, i + 1)?,
                    b'\\' => {
                        let e = *p.get(i + 1)?;
                        match perl_class(e) {
                            Some(c) => (c, i + 2),
                            None if escaped_literal(e) => (class_of(|b| b == e), i + 2),
                            None => return None,
                        }
                    }
                    b'(' | b')' | b'|' | b'^' | b'$' | b'{' | b'}' | b'*' | b'+' | b'?' | b']' => {
                        return None
                    }
                    c => (class_of(|b| b == c), i + 1),
                };
                i = next;
                let (min, max): (u32, Option<u32>) = match p.get(i) {
                    Some(b'?') => {
                        i += 1;
                        (0, Some(1))
                    }
                    Some(b'*') => {
                        i += 1;
                        (0, None)
                    }
                    Some(b'+') => {
                        i += 1;
                        (1, None)
                    }
                    Some(b'{') => {
                        i += 1;
                        let min = number(p, &mut i)?;
                        let max = match p.get(i) {
                            Some(b'}') => Some(min),
                            Some(b',') => {
                                i += 1;
                                if p.get(i) == Some(&b'}') {
                                    None
                                } else {
                                    Some(number(p, &mut i)?)
                                }
                            }
                            _ => return None,
                        };
                        if p.get(i) != Some(&b'}') || max.is_some_and(|m| m < min) {
                            return None;
                        }
                        i += 1;
                        (min, max)
                    }
                    _ => (1, Some(1)),
                };
                // A lazy quantifier accepts the same strings.
                if min != 1 || max != Some(1) {
                    if p.get(i) == Some(&b'?') {
                        i += 1;
                    }
                    if matches!(p.get(i), Some(b'*' | b'+' | b'?' | b'{')) {
                        return None;
                    }
                }
                for _ in 0..min {
                    pos.push((atom, false, false));
                }
                match max {
                    None if min == 0 => pos.push((atom, true, true)),
                    None => {
                        if let Some(last) = pos.last_mut() {
                            last.2 = true;
                        }
                    }
                    Some(m) => {
                        for _ in min..m {
                            pos.push((atom, true, false));
                        }
                    }
                }
                if pos.len() > 63 {
                    return None;
                }
            }
            let mut accept = Box::new([0u64; 128]);
            let (mut repeat, mut optional) = (0u64, 0u64);
            for (k, (class, opt, rep)) in pos.iter().enumerate() {
                let bit = 1u64 << k;
                for (b, yes) in class.iter().enumerate() {
                    if *yes {
                        accept[b] |= bit;
                    }
                }
                if *opt {
                    optional |= bit;
                }
                if *rep {
                    repeat |= bit;
                }
            }
            Some(FastRegex {
                accept,
                repeat,
                optional,
                end: 1u64 << pos.len(),
            })
        }

        /// Adds every position reachable by skipping optional ones.
        fn close(&self, mut set: u64) -> u64 {
            loop {
                let more = (set & self.optional) << 1;
                if more & !set == 0 {
                    return set;
                }
                set |= more;
            }
        }

        /// Whether the whole of `text` (ASCII) matches.
        pub fn full_match(&self, text: &[u8]) -> bool {
            // Positions that may consume the next byte.
            let mut next = self.close(1);
            for &b in text {
                let Some(acc) = self.accept.get(b as usize) else {
                    return false;
                };
                let at = next & acc;
                if at == 0 {
                    return false;
                }
                next = self.close((at << 1) | (at & self.repeat));
            }
            next & self.end != 0
        }
    }
}

/// A compiled string match with, for regexes, the literal prefix every
/// match must start with: most values are rejected without running the
/// regex (regex-lite has no literal optimisations of its own).
#[derive(Debug, Clone)]
struct Matcher {
    m: StringMatcher,
    must_start: Option<String>,
    fast: Option<fast_regex::FastRegex>,
}

impl Matcher {
    fn compile(
        m: &StringMatch,
        path: &FieldPath,
        ignore_case: bool,
    ) -> Result<Matcher, ConfigError> {
        let compiled = m.compile(path, ignore_case)?;
        let (must_start, fast) = match (&m.regex, ignore_case, kind_count(m)) {
            (Some(re), false, 1) => (literal_prefix(re), fast_regex::FastRegex::new(re)),
            _ => (None, None),
        };
        Ok(Matcher {
            m: compiled,
            must_start,
            fast,
        })
    }

    fn matches(&self, value: &str) -> bool {
        if let Some(p) = &self.must_start {
            if !value.starts_with(p.as_str()) {
                return false;
            }
        }
        match &self.fast {
            Some(f) if value.is_ascii() => f.full_match(value.as_bytes()),
            _ => self.m.matches(value),
        }
    }
}

/// The literal text every full match of `pattern` starts with: the leading
/// characters up to the first metacharacter (without the last one when a
/// quantifier follows). `None` when the pattern has an alternation anywhere
/// (conservative) or no literal start.
pub fn literal_prefix(pattern: &str) -> Option<String> {
    if pattern.contains('|') {
        return None;
    }
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let mut prefix = String::new();
    for c in body.chars() {
        match c {
            '*' | '?' | '{' => {
                prefix.pop();
                break;
            }
            '+' => break,
            '\\' | '.' | '(' | ')' | '[' | ']' | '}' | '^' | '$' => break,
            c => prefix.push(c),
        }
    }
    (!prefix.is_empty()).then_some(prefix)
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

/// Compiles a match list; `path` names the list (e.g. `routes[2].match`).
pub fn compile_match_list(
    list: &[HttpMatchRequest],
    path: &FieldPath,
) -> Result<MatchList, ConfigError> {
    compile_match_list_with(list, path, &mut HeaderNames::default())
}

/// Compiles a match list, interning the header names it reads in `names`
/// (shared by every list of a filter, so that one [`HeaderValues`] serves
/// them all).
pub fn compile_match_list_with(
    list: &[HttpMatchRequest],
    path: &FieldPath,
    names: &mut HeaderNames,
) -> Result<MatchList, ConfigError> {
    let mut out = MatchList::default();
    for (i, item) in list.iter().enumerate() {
        let compiled = item.compile_with(&path.index(i), names)?;
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
    if let [only] = out.items.as_slice() {
        out.quick = only.exact_header.clone();
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
    Ok(ValueMatch::Value(Matcher::compile(m, path, false)?))
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
        self.compile_with(path, &mut HeaderNames::default())
    }

    /// Compiles this item, interning its header names in `names`.
    pub fn compile_with(
        &self,
        path: &FieldPath,
        names: &mut HeaderNames,
    ) -> Result<CompiledMatch, ConfigError> {
        let mut conds = Vec::new();
        let mut uri = UriKind::None;
        if let Some(m) = &self.uri {
            let p = path.field("uri");
            if kind_count(m) == 0 {
                return Err(p.error("one of `exact`, `prefix` or `regex` is required"));
            }
            // Envoy ignores `case_sensitive` for regex path matches.
            let ignore_case = self.ignore_uri_case && m.regex.is_none();
            let compiled = Matcher::compile(m, &p, ignore_case)?;
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
                    id: names.intern(":path"),
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
                    id: names.intern(header),
                    name: header.to_string(),
                    authority: header == ":authority",
                    m: ValueMatch::Value(Matcher::compile(m, &p, false)?),
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
                    id: names.intern(&name),
                    authority: is_authority(&name),
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
                id: names.intern(":path"),
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
        let exact_header = self
            .headers
            .iter()
            .filter(|(_, m)| kind_count(m) == 1)
            .find_map(|(name, m)| {
                Some((names.intern(&name.to_ascii_lowercase()), m.exact.clone()?))
            });
        Ok(CompiledMatch {
            conds,
            uri,
            exact_header,
        })
    }
}

/// The value of a header for matching: the first value, or all values joined
/// with `,` when it was sent several times (Envoy's `getAllOfHeaderAsString`).
fn header_value<'a>(headers: &'a HeaderMap, name: &str, authority: bool) -> Option<Cow<'a, str>> {
    if authority {
        let a = headers.authority();
        return if a.is_empty() && !headers.contains(":authority") && !headers.contains("host") {
            None
        } else {
            Some(Cow::Borrowed(a))
        };
    }
    let mut values = headers
        .pairs()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v);
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
    query_param_in(headers.path(), name)
}

/// [`raw_query_param`] on a `:path` value.
fn query_param_in<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let start = path.find('?')? + 1;
    let rest = &path[start..];
    let query = &rest[..rest.find('#').unwrap_or(rest.len())];
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// `:path`, from the resolved values when there are some.
fn path_of<'a>(req: &RequestAttributes<'a>, id: usize) -> &'a str {
    match req.header_values.and_then(|hv| hv.values.get(id)) {
        Some(v) => v.as_deref().unwrap_or(""),
        None => req.headers.path(),
    }
}

/// A claim matches if it is a matching scalar (numbers and booleans as
/// their JSON text) or a list with a matching scalar element.
fn claim_matches(v: JsonRef<'_>, m: &Matcher) -> bool {
    v.scalars().any(|s| m.matches(s.text()))
}

impl Cond {
    fn holds(&self, req: &RequestAttributes<'_>) -> bool {
        match self {
            Cond::Path { m, full_path, id } => {
                let p = path_of(req, *id);
                if *full_path {
                    m.matches(p)
                } else {
                    let end = match req.header_values.and_then(|hv| hv.path_end) {
                        Some(e) if e <= p.len() && p.is_char_boundary(e) => e,
                        _ => path_end(p),
                    };
                    m.matches(&p[..end])
                }
            }
            Cond::Header {
                id,
                name,
                authority,
                m,
                invert,
            } => {
                let searched;
                let value: Option<&str> = match req.header_values.and_then(|hv| hv.values.get(*id))
                {
                    Some(v) => v.as_deref(),
                    None => {
                        searched = header_value(req.headers, name, *authority);
                        searched.as_deref()
                    }
                };
                match (m, invert) {
                    (ValueMatch::Present, false) => value.is_some(),
                    (ValueMatch::Present, true) => value.is_none(),
                    (ValueMatch::Value(m), false) => value.is_some_and(|v| m.matches(v)),
                    (ValueMatch::Value(m), true) => !m.matches(value.unwrap_or("")),
                }
            }
            Cond::Query { name, m, id } => match (query_param_in(path_of(req, *id), name), m) {
                (None, _) => false,
                (Some(_), ValueMatch::Present) => true,
                (Some(v), ValueMatch::Value(m)) => m.matches(v),
            },
            Cond::Claim { path, m } => match (req.identity.and_then(|id| id.claim(path)), m) {
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
        if self.quick_reject(req) {
            return None;
        }
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
        !self.quick_reject(req)
            && (self.items.is_empty() || self.items.iter().any(|m| m.matches(req)))
    }

    /// Whether the resolved value of the quick header differs from the
    /// required one (so no item can match).
    fn quick_reject(&self, req: &RequestAttributes<'_>) -> bool {
        match (&self.quick, req.header_values) {
            (Some((id, want)), Some(hv)) => hv
                .values
                .get(*id)
                .is_some_and(|got| got.as_deref() != Some(want.as_str())),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<HttpMatchRequest>, ConfigError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            #[serde(rename = "match")]
            items: Vec<HttpMatchRequest>,
        }
        crate::config::parse_json::<Doc>(format!(r#"{{"match":{json}}}"#).as_bytes())
            .map(|d| d.items)
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

    /// The identity as the JWT filter stores it.
    fn identity(claims: serde_json::Value) -> String {
        crate::identity::Identity {
            provider: "idp".into(),
            iss: "https://idp".into(),
            sub: "alice".into(),
            principal: "https://idp/alice".into(),
            claims: claims.as_object().unwrap().clone(),
            ..Default::default()
        }
        .to_json()
    }

    #[test]
    fn claims_nested_lists_and_scalars() {
        let id = identity(serde_json::json!({
            "groups": ["dev", "beta"], "realm": {"roles": ["admin"], "level": 3}, "email_verified": true
        }));
        let h = req(&[]);
        let at = |json: &str, identity: Option<&String>| {
            list(json).matches(&RequestAttributes {
                headers: &h,
                identity: identity.map(|b| IdentityView::parse(b.as_bytes()).unwrap()),
                source_ip: None,
                header_values: None,
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
                header_values: None,
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
    fn repeated_keys_are_refused() {
        let e = err(r#"[{"uri":{"exact":"/a"},"uri":{"prefix":"/"}}]"#);
        assert_eq!(e.to_string(), "match[0]: duplicate field `uri`");
        let e = err(r#"[{"headers":{"x-a":{"exact":"1"},"x-a":{"exact":"2"}}}]"#);
        assert_eq!(e.to_string(), "match[0].headers: duplicate key `x-a`");
        let e = err(r#"[{"claims":{"role":{},"role":{"exact":"admin"}}}]"#);
        assert_eq!(e.to_string(), "match[0].claims: duplicate key `role`");
        let e = err(r#"[{"uri":{"exact":"/a","exact":"/b"}}]"#);
        assert_eq!(e.to_string(), "match[0].uri: duplicate field `exact`");
        assert!(
            parse(r#"[{"name":null,"headers":null,"ignoreUriCase":null,"sourceIp":null}]"#).is_ok()
        );
    }

    #[test]
    fn fast_regexes_agree_with_regex_lite() {
        use crate::matcher::Regex;
        use crate::sampling::Rng;
        let patterns = [
            "/api/v[0-9]+/t49/[a-z]+",
            "abc",
            "a*",
            "a+b?c*",
            "x.y",
            ".*",
            ".+/x",
            "[^/]+/[^/]*",
            "\\d{3}-\\d{2,4}",
            "[a-f0-9]{8}",
            "a{2,}b{0,2}",
            "a{0}b",
            "v[12]\\.[0-9]+",
            "[]a]+",
            "[a-]x",
            "[\\w.-]+@[\\w.-]+",
            "\\s*x\\S?",
            "^ab$",
            "a*?b+?",
            "[^a-c]*z",
            "(a|b)",
            "a|b",
            "\\bx",
            "[[:alpha:]]",
            "é+",
        ];
        let alphabet = b"abcxyz/.-_019 \n@eVv2t4[]";
        let mut rng = Rng::with_seed(5);
        for p in patterns {
            let slow = Regex::full_match(p, false).unwrap();
            let Some(fast) = fast_regex::FastRegex::new(p) else {
                assert!(
                    ["(a|b)", "a|b", "\\bx", "[[:alpha:]]", "é+"].contains(&p),
                    "{p} should be fast"
                );
                continue;
            };
            let mut inputs: Vec<String> = vec![
                String::new(),
                "/api/v2/t49/items".into(),
                "/api/v/t49/x".into(),
                "123-4567".into(),
                "deadbeef".into(),
                "v1.22".into(),
                "a@b.c".into(),
                "aab".into(),
                "ab".into(),
                "xzy".into(),
            ];
            for _ in 0..3000 {
                let len = rng.below(12) as usize;
                inputs.push(
                    (0..len)
                        .map(|_| alphabet[rng.below(alphabet.len() as u32) as usize] as char)
                        .collect(),
                );
            }
            for input in inputs {
                assert_eq!(
                    fast.full_match(input.as_bytes()),
                    slow.is_match(&input),
                    "{p:?} on {input:?}"
                );
            }
        }
    }

    #[test]
    fn regex_literal_prefixes() {
        assert_eq!(
            literal_prefix("/api/v[0-9]+/t49/[a-z]+").as_deref(),
            Some("/api/v")
        );
        assert_eq!(literal_prefix("^/api/.*").as_deref(), Some("/api/"));
        assert_eq!(literal_prefix("abc*").as_deref(), Some("ab"));
        assert_eq!(literal_prefix("ab+").as_deref(), Some("ab"));
        assert_eq!(literal_prefix("a{2}b"), None);
        assert_eq!(literal_prefix("/x\\.y").as_deref(), Some("/x"));
        assert_eq!(literal_prefix("(?i)abc"), None);
        assert_eq!(literal_prefix("ab|cd"), None);
        assert_eq!(literal_prefix("/(a|b)"), None);
        assert_eq!(literal_prefix(".*"), None);
        // The prefilter never changes a result.
        let l = list(r#"[{"uri":{"regex":"/api/v[0-9]+/.*"}}]"#);
        assert!(matches(&l, &req(&[(":path", "/api/v2/x")])));
        assert!(!matches(&l, &req(&[(":path", "/api/x")])));
        assert!(!matches(&l, &req(&[(":path", "/static/x")])));
    }

    #[test]
    fn interned_header_values_give_the_same_answers() {
        let mut names = HeaderNames::default();
        let items = parse(
            r#"[{"headers":{"x-a":{"exact":"1"}},"withoutHeaders":{"x-b":{}}},
                {"authority":{"exact":"shop.example.com"},"headers":{"x-a":{"regex":"[0-9]+"}}},
                {"uri":{"regex":"/q/[a-z]+"},"queryParams":{"v":{"exact":"2"}}},
                {"uri":{"prefix":"/p?x"}}]"#,
        )
        .unwrap();
        let l = compile_match_list_with(&items, &FieldPath::root(), &mut names).unwrap();
        assert_eq!(names.len(), 4); // x-a, x-b, :authority, :path
                                    // A single item with an exact header condition is checked first.
        let one =
            parse(r#"[{"uri":{"prefix":"/"},"headers":{"X-A":{"exact":"1"},"x-b":{}}}]"#).unwrap();
        let quick = compile_match_list_with(&one, &FieldPath::root(), &mut names).unwrap();
        assert_eq!(quick.quick.as_ref().map(|(_, v)| v.as_str()), Some("1"));
        for pairs in [
            vec![(":path", "/q/abc?v=2")],
            vec![(":path", "/q/abc?v=3")],
            vec![(":path", "/q/ab1?v=2")],
            vec![(":path", "/p?x=1")],
            vec![("x-a", "1")],
            vec![("x-a", "1"), ("x-b", "")],
            vec![("x-a", "22")],
            vec![("x-a", "1"), ("x-a", "2")],
            vec![],
        ] {
            let h = req(&pairs);
            let values = names.resolve(&h);
            let fast = RequestAttributes {
                header_values: Some(&values),
                ..RequestAttributes::headers_only(&h)
            };
            assert_eq!(
                l.first_match(&fast),
                l.first_match(&RequestAttributes::headers_only(&h)),
                "{pairs:?}"
            );
            assert_eq!(
                quick.first_match(&fast),
                quick.first_match(&RequestAttributes::headers_only(&h)),
                "{pairs:?}"
            );
        }
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
