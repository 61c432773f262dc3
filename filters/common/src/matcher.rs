//! String matchers compiled once at configuration time.
//!
//! [`StringMatch`] is the JSON shape shared by the filters (Istio's
//! `StringMatch`: `exact`, `prefix`, `regex`; plus Envoy's `suffix` and
//! `contains`). It compiles into a [`StringMatcher`] that does no allocation
//! per request. Regexes have RE2 semantics as in Istio and Envoy: the whole
//! value must match (the pattern is anchored), and they are built with a size
//! limit so that a hostile configuration cannot blow up memory.

use crate::config::ConfigError;
use crate::config::FieldPath;
use serde::Deserialize;

/// Compiled-program size limit for one regex (bytes of the compiled form).
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;
/// Longest regex source accepted.
pub const REGEX_MAX_LEN: usize = 4096;

/// A full-match regular expression (RE2 syntax, no backreferences or
/// look-around), compiled with a size limit.
#[derive(Debug, Clone)]
pub struct Regex {
    re: regex_lite::Regex,
    source: String,
}

impl Regex {
    /// Compiles `pattern` anchored at both ends (`^(?:pattern)$`).
    pub fn full_match(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
        if pattern.len() > REGEX_MAX_LEN {
            return Err(format!("regex longer than {REGEX_MAX_LEN} bytes"));
        }
        let anchored = format!("^(?:{pattern})$");
        let re = regex_lite::RegexBuilder::new(&anchored)
            .case_insensitive(case_insensitive)
            .size_limit(REGEX_SIZE_LIMIT)
            .nest_limit(64)
            .build()
            .map_err(|e| format!("invalid regex `{pattern}`: {}", first_line(&e.to_string())))?;
        Ok(Regex {
            re,
            source: pattern.to_string(),
        })
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

/// How to match a string, as written in configuration. Exactly one field must
/// be set.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StringMatch {
    /// The value equals this.
    pub exact: Option<String>,
    /// The value starts with this.
    pub prefix: Option<String>,
    /// The value ends with this.
    pub suffix: Option<String>,
    /// The value contains this.
    pub contains: Option<String>,
    /// The whole value matches this RE2 regex.
    pub regex: Option<String>,
}

impl StringMatch {
    /// Compiles the match; `path` names this object in errors.
    pub fn compile(
        &self,
        path: &FieldPath,
        ignore_case: bool,
    ) -> Result<StringMatcher, ConfigError> {
        let set = [
            self.exact.is_some(),
            self.prefix.is_some(),
            self.suffix.is_some(),
            self.contains.is_some(),
            self.regex.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set == 0 {
            return Err(
                path.error("one of `exact`, `prefix`, `suffix`, `contains` or `regex` is required")
            );
        }
        if set > 1 {
            return Err(path.error(
                "only one of `exact`, `prefix`, `suffix`, `contains` or `regex` may be set",
            ));
        }
        let fold = |s: &String| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.clone()
            }
        };
        let kind = if let Some(v) = &self.exact {
            MatchKind::Exact(fold(v))
        } else if let Some(v) = &self.prefix {
            MatchKind::Prefix(fold(v))
        } else if let Some(v) = &self.suffix {
            MatchKind::Suffix(fold(v))
        } else if let Some(v) = &self.contains {
            MatchKind::Contains(fold(v))
        } else {
            let pattern = self.regex.as_deref().unwrap_or_default();
            MatchKind::Regex(
                Regex::full_match(pattern, ignore_case)
                    .map_err(|e| path.field("regex").error(e))?,
            )
        };
        Ok(StringMatcher { kind, ignore_case })
    }
}

#[derive(Debug, Clone)]
enum MatchKind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

/// A compiled [`StringMatch`].
#[derive(Debug, Clone)]
pub struct StringMatcher {
    kind: MatchKind,
    ignore_case: bool,
}

impl StringMatcher {
    /// An exact matcher (used by code that builds matchers itself).
    pub fn exact(value: &str) -> Self {
        StringMatcher {
            kind: MatchKind::Exact(value.to_string()),
            ignore_case: false,
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        if self.ignore_case {
            match &self.kind {
                MatchKind::Exact(e) => value.eq_ignore_ascii_case(e),
                MatchKind::Prefix(p) => {
                    value.len() >= p.len()
                        && value.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                }
                MatchKind::Suffix(s) => {
                    value.len() >= s.len()
                        && value.as_bytes()[value.len() - s.len()..]
                            .eq_ignore_ascii_case(s.as_bytes())
                }
                MatchKind::Contains(c) => value.to_ascii_lowercase().contains(c.as_str()),
                MatchKind::Regex(r) => r.is_match(value),
            }
        } else {
            match &self.kind {
                MatchKind::Exact(e) => value == e,
                MatchKind::Prefix(p) => value.starts_with(p.as_str()),
                MatchKind::Suffix(s) => value.ends_with(s.as_str()),
                MatchKind::Contains(c) => value.contains(c.as_str()),
                MatchKind::Regex(r) => r.is_match(value),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(json: &str, ic: bool) -> StringMatcher {
        let m: StringMatch = serde_json::from_str(json).unwrap();
        m.compile(&FieldPath::root().field("m"), ic).unwrap()
    }

    #[test]
    fn kinds() {
        assert!(sm(r#"{"exact":"a"}"#, false).matches("a"));
        assert!(!sm(r#"{"exact":"a"}"#, false).matches("A"));
        assert!(sm(r#"{"exact":"a"}"#, true).matches("A"));
        assert!(sm(r#"{"prefix":"/api"}"#, false).matches("/api/x"));
        assert!(sm(r#"{"prefix":"/API"}"#, true).matches("/api/x"));
        assert!(sm(r#"{"suffix":".js"}"#, false).matches("a.js"));
        assert!(sm(r#"{"contains":"mid"}"#, false).matches("amidb"));
        assert!(sm(r#"{"regex":"/v[0-9]+/.*"}"#, false).matches("/v2/users"));
    }

    #[test]
    fn regex_is_full_match() {
        let m = sm(r#"{"regex":"abc"}"#, false);
        assert!(m.matches("abc"));
        assert!(!m.matches("xabcx"));
        let alt = sm(r#"{"regex":"a|b"}"#, false);
        assert!(alt.matches("a") && alt.matches("b") && !alt.matches("ab"));
    }

    #[test]
    fn errors_name_the_field() {
        let m: StringMatch = serde_json::from_str(r#"{"regex":"(unclosed"}"#).unwrap();
        let e = m
            .compile(
                &FieldPath::root().field("routes").index(0).field("uri"),
                false,
            )
            .unwrap_err();
        assert_eq!(e.path, "routes[0].uri.regex");
        let m: StringMatch = serde_json::from_str(r#"{"exact":"a","prefix":"b"}"#).unwrap();
        assert!(m.compile(&FieldPath::root(), false).is_err());
        let m: StringMatch = serde_json::from_str(r#"{}"#).unwrap();
        assert!(m.compile(&FieldPath::root(), false).is_err());
    }

    #[test]
    fn huge_regex_refused() {
        let pattern = "(a{1000}){1000}";
        let m = StringMatch {
            regex: Some(pattern.into()),
            ..Default::default()
        };
        assert!(m.compile(&FieldPath::root(), false).is_err());
    }
}
