//! Path templates: `/users/{id}` turns `/users/42` into the label value
//! `/users/{id}`, so that a path can be a label without one series per id.
//!
//! Syntax (a subset of Envoy's `uri_template`): a template starts with `/`
//! and is a list of `/`-separated segments; a segment is a literal, a
//! variable `{name}` (or `{name=*}`, or `*`) matching exactly one non-empty
//! segment, or — only as the last segment — `{name=**}` (or `**`) matching
//! the rest of the path (zero or more segments). Templates are tried in
//! configuration order against the request path without its query string;
//! the first that matches wins; no match gives [`OTHER`].

use wasmesh_common::{ConfigError, FieldPath};

/// The label value of a path no template matches.
pub const OTHER: &str = "other";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

#[derive(Debug, Clone)]
struct Template {
    text: String,
    segments: Vec<Segment>,
}

/// The compiled `pathTemplates`.
#[derive(Debug, Clone, Default)]
pub struct PathTemplates {
    templates: Vec<Template>,
}

impl PathTemplates {
    /// Compiles `pathTemplates`; `path` names the list for errors.
    pub fn compile(templates: &[String], path: &FieldPath) -> Result<PathTemplates, ConfigError> {
        let mut out = Vec::with_capacity(templates.len());
        for (i, t) in templates.iter().enumerate() {
            let p = path.index(i);
            let segments = parse(t).map_err(|why| p.error(format!("bad template `{t}`: {why}")))?;
            if out.iter().any(|o: &Template| o.text == *t) {
                return Err(p.error(format!("duplicate template `{t}`")));
            }
            out.push(Template {
                text: t.clone(),
                segments,
            });
        }
        Ok(PathTemplates { templates: out })
    }

    /// Whether no template is configured.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The first template matching `url_path` (no query string), or
    /// [`OTHER`].
    pub fn template_for(&self, url_path: &str) -> &str {
        self.templates
            .iter()
            .find(|t| matches(&t.segments, url_path))
            .map_or(OTHER, |t| t.text.as_str())
    }
}

fn parse(t: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = t.strip_prefix('/') else {
        return Err("must start with `/`".into());
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let mut names: Vec<&str> = Vec::new();
    let mut segs = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let seg = if *part == "*" {
            Segment::One
        } else if *part == "**" {
            Segment::Rest
        } else if let Some(inner) = part.strip_prefix('{') {
            let Some(inner) = inner.strip_suffix('}') else {
                return Err(format!(
                    "segment `{part}`: a variable must be a whole segment `{{name}}`"
                ));
            };
            let (name, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
            if !is_identifier(name) {
                return Err(format!(
                    "segment `{part}`: variable name `{name}` is not an identifier"
                ));
            }
            if names.contains(&name) {
                return Err(format!("variable `{name}` appears twice"));
            }
            names.push(name);
            match pattern {
                "*" => Segment::One,
                "**" => Segment::Rest,
                other => {
                    return Err(format!(
                        "segment `{part}`: unsupported pattern `{other}` (use `*` or `**`)"
                    ))
                }
            }
        } else {
            if part.contains(['{', '}', '*']) {
                return Err(format!(
                    "segment `{part}`: `{{`, `}}` and `*` may only form a whole-segment variable"
                ));
            }
            if part.is_empty() && !last {
                return Err("empty segment (`//`)".into());
            }
            Segment::Literal(part.to_string())
        };
        if seg == Segment::Rest && !last {
            return Err("`**` may only be the last segment".into());
        }
        segs.push(seg);
    }
    Ok(segs)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn matches(segments: &[Segment], url_path: &str) -> bool {
    let Some(rest) = url_path.strip_prefix('/') else {
        return false;
    };
    let mut parts = rest.split('/');
    for seg in segments {
        match seg {
            // `**` needs its `/`: `/static/{f=**}` matches `/static/` but
            // not `/static`.
            Segment::Rest => return parts.next().is_some(),
            Segment::One => match parts.next() {
                Some(p) if !p.is_empty() => {}
                _ => return false,
            },
            Segment::Literal(l) => match parts.next() {
                Some(p) if p == l => {}
                _ => return false,
            },
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(list: &[&str]) -> Result<PathTemplates, ConfigError> {
        let v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        PathTemplates::compile(&v, &FieldPath::root().field("pathTemplates"))
    }

    #[test]
    fn matching() {
        let t = compile(&[
            "/users/{id}",
            "/orders/{id}/items/{item}",
            "/static/{file=**}",
            "/v1/*/health",
            "/",
        ])
        .unwrap();
        assert_eq!(t.template_for("/users/42"), "/users/{id}");
        assert_eq!(t.template_for("/users/42/"), OTHER);
        assert_eq!(t.template_for("/users/"), OTHER);
        assert_eq!(t.template_for("/users"), OTHER);
        assert_eq!(
            t.template_for("/orders/7/items/abc"),
            "/orders/{id}/items/{item}"
        );
        assert_eq!(t.template_for("/orders/7/items"), OTHER);
        assert_eq!(t.template_for("/static/css/site.css"), "/static/{file=**}");
        assert_eq!(t.template_for("/static"), OTHER);
        assert_eq!(t.template_for("/static/"), "/static/{file=**}");
        assert_eq!(t.template_for("/v1/x/health"), "/v1/*/health");
        assert_eq!(t.template_for("/"), "/");
        assert_eq!(t.template_for(""), OTHER);
        assert_eq!(t.template_for("/nope"), OTHER);
    }

    #[test]
    fn first_match_wins() {
        let t = compile(&["/users/me", "/users/{id}"]).unwrap();
        assert_eq!(t.template_for("/users/me"), "/users/me");
        assert_eq!(t.template_for("/users/you"), "/users/{id}");
    }

    #[test]
    fn bad_templates_name_the_entry() {
        for (bad, why) in [
            ("users/{id}", "must start with `/`"),
            ("/users/{id", "whole segment"),
            ("/users/v{id}", "whole-segment variable"),
            ("/users/{1d}", "not an identifier"),
            ("/a/{x}/b/{x}", "appears twice"),
            ("/a/**/b", "last segment"),
            ("/a//b", "empty segment"),
            ("/a/{x=foo}", "unsupported pattern"),
        ] {
            let e = compile(&["/ok", bad]).unwrap_err();
            assert_eq!(e.path, "pathTemplates[1]", "{bad}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        let e = compile(&["/a", "/a"]).unwrap_err();
        assert!(e.message.contains("duplicate"), "{e}");
    }
}
