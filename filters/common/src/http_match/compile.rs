//! Compiling match items once, at configuration time: regexes built (with
//! their literal prefixes and the bit-parallel automaton where it applies),
//! header names interned, conditions ordered cheapest first.

use super::*;

impl Matcher {
    pub(super) fn compile(
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

    pub(super) fn matches(&self, value: &str) -> bool {
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

pub(super) fn kind_count(m: &StringMatch) -> usize {
    [&m.exact, &m.prefix, &m.suffix, &m.contains, &m.regex]
        .iter()
        .filter(|v| v.is_some())
        .count()
}

/// `{}` and Istio's `regex: "*"` mean "present".
pub(super) fn value_match(m: &StringMatch, path: &FieldPath) -> Result<ValueMatch, ConfigError> {
    if kind_count(m) == 0 || (kind_count(m) == 1 && m.regex.as_deref() == Some("*")) {
        return Ok(ValueMatch::Present);
    }
    Ok(ValueMatch::Value(Matcher::compile(m, path, false)?))
}

/// Relative evaluation cost of a string match: presence and plain
/// comparisons before regexes.
pub(super) fn match_cost(m: &StringMatch) -> u8 {
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
