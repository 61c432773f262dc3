//! Which rule applies to a request: `rules[].match`, first match wins.
//!
//! A match is Envoy's `RouteMatch` subset that users write for JWT rules:
//! exactly one of `prefix` (on `:path`, query included, like Envoy), `path`
//! (exact, query removed) or `regex` (RE2 full match, query removed),
//! optionally `caseSensitive: false`, plus `headers` (all must match) and
//! `methods` (any).

use wasmesh_common::config::nullable;
use wasmesh_common::matcher::{Regex, StringMatch, StringMatcher};
use wasmesh_common::{ConfigError, FieldPath, HeaderMap};

/// `rules[].match` as written.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct RouteMatch"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouteMatchConfig {
    /// `:path` starts with this.
    pub prefix: Option<String>,
    /// `:path` without its query equals this.
    pub path: Option<String>,
    /// `:path` without its query fully matches this RE2 regex.
    pub regex: Option<String>,
    /// Compare `prefix`/`path`/`regex` case-sensitively (default true, as Envoy).
    pub case_sensitive: Option<bool>,
    /// Request headers that must all match.
    #[serde(deserialize_with = "nullable")]
    pub headers: Vec<HeaderMatchConfig>,
    /// HTTP methods, one of which must be the request's (empty: any).
    #[serde(deserialize_with = "nullable")]
    pub methods: Vec<String>,
}

/// One header condition: `name` plus exactly one of the string matches or
/// `present`; `invert` negates the result.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct HeaderMatcher"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HeaderMatchConfig {
    /// Header name (case-insensitive).
    pub name: String,
    /// The value equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The value ends with this.
    #[serde(default)]
    pub suffix: Option<String>,
    /// The value contains this.
    #[serde(default)]
    pub contains: Option<String>,
    /// The value fully matches this RE2 regex.
    #[serde(default)]
    pub regex: Option<String>,
    /// `true`: the header is present; `false`: it is absent.
    #[serde(default)]
    pub present: Option<bool>,
    /// Negate the condition.
    #[serde(default, deserialize_with = "nullable")]
    pub invert: bool,
}

#[derive(Debug, Clone)]
enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
enum HeaderCondition {
    Present(bool),
    Value(StringMatcher),
}

#[derive(Debug, Clone)]
struct HeaderMatcher {
    name: String,
    condition: HeaderCondition,
    invert: bool,
}

/// A compiled `rules[].match`.
#[derive(Debug, Clone)]
pub struct RouteMatcher {
    path: PathMatch,
    case_sensitive: bool,
    headers: Vec<HeaderMatcher>,
    methods: Vec<String>,
}

impl RouteMatchConfig {
    /// Compiles; `at` names this object in errors.
    pub fn compile(&self, at: &FieldPath) -> Result<RouteMatcher, ConfigError> {
        let case_sensitive = self.case_sensitive.unwrap_or(true);
        let fold = |s: &str| {
            if case_sensitive {
                s.to_string()
            } else {
                s.to_ascii_lowercase()
            }
        };
        let path = match (&self.prefix, &self.path, &self.regex) {
            (Some(p), None, None) => PathMatch::Prefix(fold(p)),
            (None, Some(p), None) => PathMatch::Exact(fold(p)),
            (None, None, Some(r)) => PathMatch::Regex(
                Regex::full_match(r, !case_sensitive).map_err(|e| at.field("regex").error(e))?,
            ),
            (None, None, None) => {
                return Err(at.error("one of `prefix`, `path` or `regex` is required"))
            }
            _ => return Err(at.error("only one of `prefix`, `path` or `regex` may be set")),
        };
        let mut headers = Vec::with_capacity(self.headers.len());
        for (i, h) in self.headers.iter().enumerate() {
            let hp = at.field("headers").index(i);
            if h.name.is_empty() {
                return Err(hp.field("name").error("must not be empty"));
            }
            let sm = StringMatch {
                exact: h.exact.clone(),
                prefix: h.prefix.clone(),
                suffix: h.suffix.clone(),
                contains: h.contains.clone(),
                regex: h.regex.clone(),
            };
            let has_value = sm != StringMatch::default();
            let condition = match (h.present, has_value) {
                (Some(p), false) => HeaderCondition::Present(p),
                (None, true) => HeaderCondition::Value(sm.compile(&hp, false)?),
                (None, false) => {
                    return Err(hp.error("one of `exact`, `prefix`, `suffix`, `contains`, `regex` or `present` is required"))
                }
                (Some(_), true) => return Err(hp.error("`present` cannot be combined with a value match")),
            };
            headers.push(HeaderMatcher {
                name: h.name.to_ascii_lowercase(),
                condition,
                invert: h.invert,
            });
        }
        let mut methods = Vec::with_capacity(self.methods.len());
        for (i, m) in self.methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(at
                    .field("methods")
                    .index(i)
                    .error(format!("`{m}` is not an HTTP method")));
            }
            methods.push(m.to_ascii_uppercase());
        }
        Ok(RouteMatcher {
            path,
            case_sensitive,
            headers,
            methods,
        })
    }
}

impl RouteMatcher {
    /// A matcher for every request (`prefix: "/"`).
    pub fn any() -> RouteMatcher {
        RouteMatcher {
            path: PathMatch::Prefix("/".into()),
            case_sensitive: true,
            headers: Vec::new(),
            methods: Vec::new(),
        }
    }

    /// Whether the request matches.
    pub fn matches(&self, req: &HeaderMap) -> bool {
        let ok = match &self.path {
            PathMatch::Prefix(p) => starts_with(req.path(), p, self.case_sensitive),
            PathMatch::Exact(p) => {
                let u = req.url_path();
                if self.case_sensitive {
                    u == p
                } else {
                    u.eq_ignore_ascii_case(p)
                }
            }
            PathMatch::Regex(r) => r.is_match(req.url_path()),
        };
        if !ok {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method()) {
            return false;
        }
        self.headers.iter().all(|h| h.matches(req))
    }
}

fn starts_with(value: &str, prefix: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        value.starts_with(prefix)
    } else {
        value.len() >= prefix.len()
            && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }
}

impl HeaderMatcher {
    fn matches(&self, req: &HeaderMap) -> bool {
        let mut values = req.get_all(&self.name).peekable();
        let present = values.peek().is_some();
        let result = match &self.condition {
            HeaderCondition::Present(want) => present == *want,
            HeaderCondition::Value(m) => {
                if !present {
                    false
                } else {
                    // Several values are matched as one, joined with ",", as Envoy does.
                    let joined: Vec<&str> = values.collect();
                    m.matches(&joined.join(","))
                }
            }
        };
        result != self.invert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(json: &str) -> RouteMatcher {
        wasmesh_common::parse_json::<RouteMatchConfig>(json.as_bytes())
            .unwrap()
            .compile(&FieldPath::root().field("match"))
            .unwrap()
    }

    fn req(method: &str, path: &str, extra: &[(&str, &str)]) -> HeaderMap {
        let mut v = vec![(":method", method), (":path", path)];
        v.extend_from_slice(extra);
        HeaderMap::from_slice(&v)
    }

    #[test]
    fn path_kinds() {
        assert!(m(r#"{"prefix":"/api"}"#).matches(&req("GET", "/api/x", &[])));
        assert!(!m(r#"{"prefix":"/api"}"#).matches(&req("GET", "/API/x", &[])));
        assert!(
            m(r#"{"prefix":"/api","caseSensitive":false}"#).matches(&req("GET", "/API/x", &[]))
        );
        assert!(m(r#"{"path":"/lenient"}"#).matches(&req("GET", "/lenient?x=1", &[])));
        assert!(!m(r#"{"path":"/lenient"}"#).matches(&req("GET", "/lenient/x", &[])));
        assert!(m(r#"{"regex":"/v[0-9]+/.*"}"#).matches(&req("GET", "/v2/u?q", &[])));
        assert!(!m(r#"{"regex":"/v[0-9]+"}"#).matches(&req("GET", "/v2/u", &[])));
    }

    #[test]
    fn methods_and_headers() {
        let r = m(
            r#"{"prefix":"/","methods":["post","PUT"],"headers":[{"name":"X-Env","exact":"prod"},{"name":"x-debug","present":false}]}"#,
        );
        assert!(r.matches(&req("POST", "/", &[("x-env", "prod")])));
        assert!(!r.matches(&req("GET", "/", &[("x-env", "prod")])));
        assert!(!r.matches(&req("PUT", "/", &[("x-env", "dev")])));
        assert!(!r.matches(&req("PUT", "/", &[("x-env", "prod"), ("x-debug", "1")])));
        let inv = m(r#"{"prefix":"/","headers":[{"name":"x-env","prefix":"pr","invert":true}]}"#);
        assert!(inv.matches(&req("GET", "/", &[])));
        assert!(!inv.matches(&req("GET", "/", &[("x-env", "prod")])));
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |json: &str| {
            wasmesh_common::parse_json::<RouteMatchConfig>(json.as_bytes())
                .unwrap()
                .compile(&FieldPath::root().field("rules").index(1).field("match"))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("{}").starts_with("rules[1].match: one of"));
        assert!(bad(r#"{"prefix":"/","path":"/"}"#).contains("only one"));
        assert!(bad(r#"{"regex":"("}"#).starts_with("rules[1].match.regex:"));
        assert!(bad(r#"{"prefix":"/","headers":[{"name":"a"}]}"#)
            .starts_with("rules[1].match.headers[0]:"));
        assert!(
            bad(r#"{"prefix":"/","methods":["G T"]}"#).starts_with("rules[1].match.methods[0]:")
        );
    }
}
