//! Configuration errors that name the field they are about.
//!
//! Every filter parses its plugin configuration with [`parse_json`], which
//! refuses unknown fields (when the types say `deny_unknown_fields`) and
//! reports the JSON path of the offending field, e.g.
//! `jwtRules[0].audiences[1]: invalid type: integer `3`, expected a string`.
//! Semantic checks after parsing build their errors with [`ConfigError::at`]
//! and a [`FieldPath`], so the same path style is used everywhere.

use serde::de::DeserializeOwned;
use std::fmt;

/// A configuration error: where (a JSON path such as `rules[2].match.prefix`)
/// and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the field, empty for the document itself.
    pub path: String,
    /// Human readable reason.
    pub message: String,
}

impl ConfigError {
    /// An error about the field at `path`.
    pub fn at(path: impl fmt::Display, message: impl fmt::Display) -> Self {
        ConfigError {
            path: path.to_string(),
            message: message.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "configuration: {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses a JSON configuration into `T`, reporting errors with the field path.
///
/// An empty (or all-whitespace) document is treated as `{}` so that a plugin
/// deployed without `configuration` gets its defaults.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let trimmed = trim_ascii(bytes);
    let doc: &[u8] = if trimmed.is_empty() { b"{}" } else { trimmed };
    let mut de = serde_json::Deserializer::from_slice(doc);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::at(
            if path == "." { String::new() } else { path },
            strip_position(&inner),
        )
    })?;
    de.end()
        .map_err(|e| ConfigError::at("", strip_position(&e)))?;
    Ok(value)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// serde_json appends " at line X column Y"; the path already says where.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) if e.line() > 0 => s[..i].to_string(),
        _ => s,
    }
}

/// Builds JSON paths while walking a parsed configuration:
/// `FieldPath::root().field("jwtRules").index(0).field("issuer")` displays as
/// `jwtRules[0].issuer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// The document itself.
    pub fn root() -> Self {
        FieldPath(String::new())
    }
    /// A named field below this one.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{}", self.0, name))
        }
    }
    /// An element of a list.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{}]", self.0, i))
    }
    /// A key of a map (rendered like a field).
    pub fn key(&self, k: &str) -> Self {
        self.field(k)
    }
    /// An error at this path.
    pub fn error(&self, message: impl fmt::Display) -> ConfigError {
        ConfigError::at(&self.0, message)
    }
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Rule {
        #[allow(dead_code)]
        audiences: Vec<String>,
    }
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Cfg {
        #[allow(dead_code)]
        jwt_rules: Vec<Rule>,
    }

    #[test]
    fn error_names_the_field() {
        let e = parse_json::<Cfg>(br#"{"jwtRules":[{"audiences":["a", 3]}]}"#).unwrap_err();
        assert_eq!(e.path, "jwtRules[0].audiences[1]");
        assert!(e.message.contains("expected a string"), "{e}");
        assert!(!e.message.contains("line"), "{e}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = parse_json::<Cfg>(br#"{"jwtRules":[], "bogus": 1}"#).unwrap_err();
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn empty_document_is_empty_object() {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct D {
            #[allow(dead_code)]
            x: u32,
        }
        assert!(parse_json::<D>(b"  ").is_ok());
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(parse_json::<Cfg>(br#"{"jwtRules":[]} x"#).is_err());
    }

    #[test]
    fn field_path_renders_like_serde() {
        let p = FieldPath::root()
            .field("jwtRules")
            .index(0)
            .field("audiences")
            .index(1);
        assert_eq!(p.to_string(), "jwtRules[0].audiences[1]");
        assert_eq!(p.error("bad").to_string(), "jwtRules[0].audiences[1]: bad");
    }
}
