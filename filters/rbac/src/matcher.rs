//! Istio's string patterns, compiled once.
//!
//! Every string in an `AuthorizationPolicy` rule is one of:
//! - `abc`: exact match;
//! - `abc*`: prefix match;
//! - `*abc`: suffix match;
//! - `*`: presence. Istio turns it into a present-match for header-like
//!   fields (`hosts`, `methods`, `request.headers[..]`) and into the regex `.+`
//!   (a non-empty value) for every other field; [`Star`] says which.
//!
//! Paths may also be templates (`/api/{*}/items/{**}`), see [`PathTemplate`].
//!
//! Istio takes a `*` anywhere else literally (`/api/*/admin` is an exact
//! match that never matches a real path): such values are refused here,
//! because in a DENY rule they silently deny nothing.

use wasmesh_common::{ConfigError, FieldPath};

/// What a lone `*` means for a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Star {
    /// The attribute is present (any value, even empty).
    Present,
    /// The attribute is present and not empty (Istio's `.+`).
    NonEmpty,
}

/// A compiled Istio string pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// The value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The value ends with this.
    Suffix(String),
    /// `*` on a header-like field.
    Present,
    /// `*` elsewhere.
    NonEmpty,
}

impl Pattern {
    /// Compiles `value`; `path` names it in errors. With `lower`, the pattern
    /// is folded to lower case (the caller folds the value too).
    pub fn parse(
        value: &str,
        star: Star,
        lower: bool,
        path: &FieldPath,
    ) -> Result<Pattern, ConfigError> {
        if value.is_empty() {
            return Err(path.error("empty value not allowed"));
        }
        let v = if lower {
            value.to_ascii_lowercase()
        } else {
            value.to_string()
        };
        if v == "*" {
            return Ok(match star {
                Star::Present => Pattern::Present,
                Star::NonEmpty => Pattern::NonEmpty,
            });
        }
        let (make, inner): (fn(String) -> Pattern, &str) = if let Some(rest) = v.strip_prefix('*') {
            (Pattern::Suffix, rest)
        } else if let Some(rest) = v.strip_suffix('*') {
            (Pattern::Prefix, rest)
        } else {
            (Pattern::Exact, v.as_str())
        };
        if inner.contains('*') {
            return Err(path.error(format!(
                "`{value}`: `*` is only allowed as the whole value, or as its first or last character \
                 (Istio would take it literally and the value would never match)"
            )));
        }
        Ok(make(inner.to_string()))
    }

    /// Whether `value` (already lower-cased if the pattern is) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(e) => value == e,
            Pattern::Prefix(p) => value.starts_with(p.as_str()),
            Pattern::Suffix(s) => value.ends_with(s.as_str()),
            Pattern::Present => true,
            Pattern::NonEmpty => !value.is_empty(),
        }
    }

    /// Puts `prefix` in front of the pattern, as Istio does with `spiffe://`
    /// for principals: exact `p` becomes `prefix+p`, `p*` becomes prefix
    /// `prefix+p`, `*s` becomes "starts with `prefix` and ends with `s`";
    /// `*` is unchanged (any non-empty value).
    pub fn with_prefix(self, prefix: &str) -> PrefixedPattern {
        PrefixedPattern {
            prefix: prefix.to_string(),
            pattern: self,
        }
    }
}

/// A [`Pattern`] matched against values that must carry a fixed prefix
/// (Istio's `StringMatcherWithPrefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixedPattern {
    prefix: String,
    pattern: Pattern,
}

impl PrefixedPattern {
    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match &self.pattern {
            Pattern::Present => true,
            Pattern::NonEmpty => !value.is_empty(),
            p => value
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| p.matches(rest)),
        }
    }
}

/// A glob where `*` stands for any run of characters (possibly empty), used
/// for Istio's namespace regex `.*/ns/<namespace>/.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    parts: Vec<String>,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Glob {
        Glob {
            parts: pattern.split('*').map(str::to_string).collect(),
        }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(x) => x,
            None => return text.is_empty(),
        };
        let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return remaining.is_empty();
        };
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(i) => remaining = &remaining[i + part.len()..],
                None => return false,
            }
        }
        remaining.ends_with(last.as_str())
    }
}

/// One piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{*}`: exactly one non-empty segment.
    One,
}

/// An Istio path template: segments that are literals, `{*}` (one segment)
/// or a final `{**}` (any rest, possibly empty, followed only by literal
/// segments). `/api/{*}/items/{**}` matches `/api/v1/items/` and
/// `/api/v1/items/a/b`, not `/api/v1/items`.
///
/// Envoy's `uri_template` limits what `{*}` matches to RFC 3986 `pchar`
/// minus `=` and `*`; here `{*}` matches any non-empty segment, so a DENY
/// rule cannot be sidestepped with an unusual character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    head: Vec<Segment>,
    /// Set when the template has `{**}`: the literal text after it
    /// (e.g. `/edit` for `/{**}/edit`, empty for `/api/{**}`).
    rest_tail: Option<String>,
    trailing_slash: bool,
}

const TEMPLATE_LITERAL_EXTRA: &str = "-._~%!$&'()+,;:@=";

fn valid_template_literal(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || TEMPLATE_LITERAL_EXTRA.as_bytes().contains(&c))
}

impl PathTemplate {
    /// Whether `value` is written as a template (contains `{*}` or `{**}`).
    pub fn is_template(value: &str) -> bool {
        value.contains("{*}") || value.contains("{**}")
    }

    /// Compiles a template, with Istio's validation rules.
    pub fn parse(value: &str, path: &FieldPath) -> Result<PathTemplate, ConfigError> {
        let bad = |why: &str| path.error(format!("invalid path template `{value}`: {why}"));
        let Some(body) = value.strip_prefix('/') else {
            return Err(bad("must start with `/`"));
        };
        let (body, trailing_slash) = match body.strip_suffix('/') {
            Some(b) => (b, true),
            None => (body, false),
        };
        let mut head = Vec::new();
        let mut rest_tail: Option<String> = None;
        for seg in body.split('/') {
            match seg {
                "{*}" | "{**}" if rest_tail.is_some() => {
                    return Err(bad("`{**}` must be the last operator"));
                }
                "{*}" => head.push(Segment::One),
                "{**}" => rest_tail = Some(String::new()),
                lit => {
                    if lit.contains(['{', '}']) {
                        return Err(bad(&format!(
                            "segment `{lit}` contains `{{` or `}}` beyond a supported operator (`{{*}}` or `{{**}}` as a whole segment)"
                        )));
                    }
                    if !valid_template_literal(lit) {
                        return Err(bad(&format!("segment `{lit}` is not a valid path literal")));
                    }
                    match &mut rest_tail {
                        Some(tail) => {
                            tail.push('/');
                            tail.push_str(lit);
                        }
                        None => head.push(Segment::Literal(lit.to_string())),
                    }
                }
            }
        }
        if trailing_slash {
            if let Some(tail) = &mut rest_tail {
                tail.push('/');
            }
        }
        Ok(PathTemplate {
            head,
            rest_tail,
            trailing_slash,
        })
    }

    /// The literal text every matching path starts with: `/api/v1/` for
    /// `/api/v1/{*}/items`, `/` for `/{*}`.
    pub fn literal_prefix(&self) -> String {
        let mut out = String::from("/");
        for seg in &self.head {
            match seg {
                Segment::Literal(l) => {
                    out.push_str(l);
                    out.push('/');
                }
                Segment::One => return out,
            }
        }
        out
    }

    /// Whether the whole of `path` (normalised, no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(mut rest) = path.strip_prefix('/') else {
            return false;
        };
        let n = self.head.len();
        for (i, seg) in self.head.iter().enumerate() {
            let last_of_all = i + 1 == n && self.rest_tail.is_none();
            // The text of this segment.
            let end = rest.find('/').unwrap_or(rest.len());
            let text = &rest[..end];
            match seg {
                Segment::Literal(l) => {
                    if text != l {
                        return false;
                    }
                }
                Segment::One => {
                    if text.is_empty() {
                        return false;
                    }
                }
            }
            rest = &rest[end..];
            if last_of_all {
                return if self.trailing_slash {
                    rest == "/"
                } else {
                    rest.is_empty()
                };
            }
            // More follows: consume the separator.
            match rest.strip_prefix('/') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match &self.rest_tail {
            // `{**}` then a fixed tail: whatever is left must end with it.
            Some(tail) => rest.len() >= tail.len() && rest.ends_with(tail.as_str()),
            // No segments at all: the template was `/` (or `//`).
            None => {
                if self.trailing_slash {
                    rest == "/"
                } else {
                    rest.is_empty()
                }
            }
        }
    }
}

/// A `paths`/`notPaths` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Exact, prefix, suffix or `*`.
    Str(Pattern),
    /// A `{*}`/`{**}` template.
    Template(PathTemplate),
}

impl PathPattern {
    /// Compiles a path value.
    pub fn parse(value: &str, path: &FieldPath) -> Result<PathPattern, ConfigError> {
        if PathTemplate::is_template(value) {
            PathTemplate::parse(value, path).map(PathPattern::Template)
        } else {
            Pattern::parse(value, Star::NonEmpty, false, path).map(PathPattern::Str)
        }
    }

    /// Whether the normalised path matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Str(p) => p.matches(path),
            PathPattern::Template(t) => t.matches(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str, star: Star) -> Pattern {
        Pattern::parse(v, star, false, &FieldPath::root().field("x")).unwrap()
    }

    #[test]
    fn patterns() {
        let cases: &[(&str, Star, &str, bool)] = &[
            ("abc", Star::NonEmpty, "abc", true),
            ("abc", Star::NonEmpty, "abcd", false),
            ("abc", Star::NonEmpty, "ABC", false),
            ("abc*", Star::NonEmpty, "abc", true),
            ("abc*", Star::NonEmpty, "abcd", true),
            ("abc*", Star::NonEmpty, "xabc", false),
            ("*abc", Star::NonEmpty, "abc", true),
            ("*abc", Star::NonEmpty, "xabc", true),
            ("*abc", Star::NonEmpty, "abcx", false),
            ("*", Star::NonEmpty, "x", true),
            ("*", Star::NonEmpty, "", false),
            ("*", Star::Present, "", true),
            ("/admin/*", Star::NonEmpty, "/admin/", true),
            ("/admin/*", Star::NonEmpty, "/admin", false),
        ];
        for (pat, star, value, want) in cases {
            assert_eq!(p(pat, *star).matches(value), *want, "{pat} vs {value}");
        }
    }

    #[test]
    fn refused_patterns() {
        for bad in ["", "a*b", "*a*", "**", "/api/*/x", "*/*"] {
            let e = Pattern::parse(
                bad,
                Star::NonEmpty,
                false,
                &FieldPath::root().field("paths").index(3),
            );
            let e = e.unwrap_err();
            assert_eq!(e.path, "paths[3]", "{bad}");
        }
    }

    #[test]
    fn lower_case_patterns() {
        let pat =
            Pattern::parse("API.Example.COM", Star::Present, true, &FieldPath::root()).unwrap();
        assert!(pat.matches("api.example.com"));
    }

    #[test]
    fn prefixed() {
        let mk = |v: &str| p(v, Star::NonEmpty).with_prefix("spiffe://");
        assert!(mk("cluster.local/ns/a/sa/b").matches("spiffe://cluster.local/ns/a/sa/b"));
        assert!(!mk("cluster.local/ns/a/sa/b").matches("cluster.local/ns/a/sa/b"));
        assert!(mk("cluster.local/*").matches("spiffe://cluster.local/ns/a/sa/b"));
        assert!(!mk("cluster.local/*").matches("spiffe://other/ns/a/sa/b"));
        assert!(mk("*/sa/b").matches("spiffe://td/ns/a/sa/b"));
        assert!(!mk("*/sa/b").matches("https://td/ns/a/sa/b"));
        assert!(mk("*").matches("anything"));
        assert!(!mk("*").matches(""));
    }

    #[test]
    fn globs() {
        let g = Glob::new("*/ns/prod/*");
        assert!(g.matches("spiffe://td/ns/prod/sa/x"));
        assert!(!g.matches("spiffe://td/ns/production/sa/x"));
        assert!(!g.matches("spiffe://td/ns/prod"));
        let g = Glob::new("*/ns/prod*/*");
        assert!(g.matches("spiffe://td/ns/production/sa/x"));
        let g = Glob::new("*/ns/*-test/*");
        assert!(g.matches("spiffe://td/ns/a-test/sa/x"));
        assert!(!g.matches("spiffe://td/ns/a-prod/sa/x"));
        let g = Glob::new("abc");
        assert!(g.matches("abc") && !g.matches("abcd"));
        let g = Glob::new("a*a");
        assert!(g.matches("aa") && g.matches("aba") && !g.matches("a"));
    }

    fn t(v: &str) -> PathTemplate {
        PathTemplate::parse(v, &FieldPath::root()).unwrap()
    }

    #[test]
    fn templates() {
        let cases: &[(&str, &str, bool)] = &[
            ("/api/{*}", "/api/v1", true),
            ("/api/{*}", "/api/v1/", false),
            ("/api/{*}", "/api/", false),
            ("/api/{*}", "/api", false),
            ("/api/{*}", "/api/a=b", true),
            ("/api/{*}/items", "/api/v1/items", true),
            ("/api/{*}/items", "/api/v1/v2/items", false),
            ("/api/{*}/items", "/api//items", false),
            ("/api/{**}", "/api/", true),
            ("/api/{**}", "/api/a/b/c", true),
            ("/api/{**}", "/api", false),
            ("/api/{**}", "/apix/a", false),
            ("/{**}/edit", "/a/b/edit", true),
            ("/{**}/edit", "/edit", false),
            ("/{**}/edit", "//edit", true),
            ("/{**}/edit", "/a/b/edit/x", false),
            ("/{*}/{**}", "/a/", true),
            ("/{*}/{**}", "/a/b/c", true),
            ("/{*}/{**}", "/a", false),
            ("/{*}/", "/a/", true),
            ("/{*}/", "/a", false),
            ("/api/{**}/", "/api/x/", true),
            ("/api/{**}/", "/api/x", false),
            ("/{*}", "/", false),
        ];
        for (tpl, path, want) in cases {
            assert_eq!(t(tpl).matches(path), *want, "{tpl} vs {path}");
        }
    }

    #[test]
    fn bad_templates() {
        for bad in [
            "/api/{**}/{*}",
            "/{**}/{**}",
            "/api/x{*}",
            "/api/{*}x",
            "/api/{name}/{*}",
            "api/{*}",
            "/api//{*}",
            "/api/a b/{*}",
            "/api/a*/{*}",
        ] {
            let e =
                PathTemplate::parse(bad, &FieldPath::root().field("paths").index(0)).unwrap_err();
            assert_eq!(e.path, "paths[0]", "{bad}");
            assert!(e.message.contains("invalid path template"), "{bad}: {e}");
        }
    }
}
