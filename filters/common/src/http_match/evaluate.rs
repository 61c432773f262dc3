//! Evaluating compiled matches against one request: the first item of a
//! list whose every condition holds.

use super::*;

pub(super) fn path_match(uri: UriKind, headers: &HeaderMap) -> PathMatch {
    match uri {
        UriKind::Prefix(n) => PathMatch::Prefix(n),
        UriKind::Whole => PathMatch::Whole,
        UriKind::None => PathMatch::Prefix(usize::from(headers.path().starts_with('/'))),
    }
}

/// The value of a header for matching: the first value, or all values joined
/// with `,` when it was sent several times (Envoy's `getAllOfHeaderAsString`).
pub(super) fn header_value<'a>(
    headers: &'a HeaderMap,
    name: &str,
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
pub(super) fn query_param_in<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let start = path.find('?')? + 1;
    let rest = &path[start..];
    let query = &rest[..rest.find('#').unwrap_or(rest.len())];
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// `:path`, from the resolved values when there are some.
pub(super) fn path_of<'a>(req: &RequestAttributes<'a>, id: usize) -> &'a str {
    match req.header_values.and_then(|hv| hv.values.get(id)) {
        Some(v) => v.as_deref().unwrap_or(""),
        None => req.headers.path(),
    }
}

/// A claim matches if it is a matching scalar (numbers and booleans as
/// their JSON text) or a list with a matching scalar element.
pub(super) fn claim_matches(v: JsonRef<'_>, m: &Matcher) -> bool {
    v.scalars().any(|s| m.matches(s.text()))
}

impl Cond {
    pub(super) fn holds(&self, req: &RequestAttributes<'_>) -> bool {
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
    pub(super) fn quick_reject(&self, req: &RequestAttributes<'_>) -> bool {
        match (&self.quick, req.header_values) {
            (Some((id, want)), Some(hv)) => hv
                .values
                .get(*id)
                .is_some_and(|got| got.as_deref() != Some(want.as_str())),
            _ => false,
        }
    }
}
