//! The one configuration reader of the filters, and errors that name the
//! field they are about.
//!
//! Every filter reads its plugin configuration with [`parse_json`] into
//! serde-derived types (`#[serde(deny_unknown_fields, rename_all =
//! "camelCase")]`), through `serde_path_to_error`, so every error names the
//! JSON path of the offending field, e.g.
//! `jwtRules[0].audiences[1]: invalid type: integer `3`, expected a string`.
//! A field given twice is refused (serde's `duplicate field`); objects whose
//! keys are names chosen by the user (header names, claims, metric
//! dimensions) are read with [`unique_map`], which refuses a repeated key the
//! same way, and free-form JSON values with [`strict_value`]. Fields that
//! accept `null` as "absent" use [`nullable`].
//!
//! Semantic checks after parsing build their errors with [`ConfigError::at`]
//! and a [`FieldPath`], so the same path style is used everywhere.

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

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
/// deployed without `configuration` gets its defaults. Syntax errors keep
/// serde_json's `at line L column C` (there is no field path to name yet);
/// errors about a value name its path instead.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let trimmed = bytes.trim_ascii();
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
    de.end().map_err(|e| ConfigError::at("", e))?;
    Ok(value)
}

/// serde_json appends " at line X column Y"; for errors about a value the
/// path already says where. Syntax errors keep it.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    if e.is_syntax() || e.is_eof() {
        return s;
    }
    match s.rfind(" at line ") {
        Some(i) if e.line() > 0 => s[..i].to_string(),
        _ => s,
    }
}

/// `deserialize_with` for a field where `null` means "absent": reads `T`,
/// or `T::default()` for `null` (use with `#[serde(default)]`).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `deserialize_with` for an object whose keys are user-chosen names
/// (header names, claims, metric dimensions): the entries in document order;
/// a repeated key is refused (`duplicate key `x``), `null` reads as empty
/// (use with `#[serde(default)]`).
pub fn unique_map<'de, D, V>(d: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    Ok(Option::<UniqueMap<V>>::deserialize(d)?
        .map(|m| m.0)
        .unwrap_or_default())
}

/// A JSON object read as its entries in document order, refusing a
/// repeated key with serde's wording (`duplicate key `x``).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueMap<V>(pub Vec<(String, V)>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        UniqueMap(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(k) = map.next_key::<String>()? {
                    if out.iter().any(|(seen, _)| *seen == k) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate key `{k}`"
                        )));
                    }
                    let v = map.next_value()?;
                    out.push((k, v));
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

/// `deserialize_with` for a free-form JSON value (an inline JWKS, ...):
/// like `serde_json::Value`, but an object with a repeated key is refused
/// (`duplicate key `x``) at any depth; `null` reads as `None`.
pub fn strict_value<'de, D>(d: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: Deserializer<'de>,
{
    match StrictValue.deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        v => Ok(Some(v)),
    }
}

/// Reads any JSON value, refusing repeated object keys.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = serde_json::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = serde_json::Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{k}`"
                )));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(k, v);
        }
        Ok(serde_json::Value::Object(out))
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
    fn syntax_errors_keep_the_position() {
        let e = parse_json::<Cfg>(br#"{"jwtRules": }"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "jwtRules: expected value at line 1 column 14"
        );
        let e = parse_json::<Cfg>(b"{\"jwtRules\": [").unwrap_err();
        assert!(e.to_string().contains("EOF while parsing"), "{e}");
    }

    #[test]
    fn duplicate_field_is_refused_with_its_path() {
        let e = parse_json::<Cfg>(br#"{"jwtRules":[{"audiences":[], "audiences":["a"]}]}"#)
            .unwrap_err();
        assert_eq!(e.to_string(), "jwtRules[0]: duplicate field `audiences`");
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct WithMap {
        #[serde(default, deserialize_with = "unique_map")]
        headers: Vec<(String, String)>,
        #[serde(default, deserialize_with = "nullable")]
        names: Vec<String>,
        #[serde(default, deserialize_with = "strict_value")]
        free: Option<serde_json::Value>,
    }

    #[test]
    fn user_named_maps_refuse_a_repeated_key() {
        let ok = parse_json::<WithMap>(br#"{"headers":{"b":"1","a":"2"},"names":null}"#).unwrap();
        assert_eq!(
            ok.headers,
            vec![("b".into(), "1".into()), ("a".into(), "2".into())]
        );
        assert!(ok.names.is_empty() && ok.free.is_none());
        let e = parse_json::<WithMap>(br#"{"headers":{"a":"1","a":"2"}}"#).unwrap_err();
        assert_eq!(e.to_string(), "headers: duplicate key `a`");
        let e = parse_json::<WithMap>(br#"{"headers":{"a":1}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "headers.a: invalid type: integer `1`, expected a string"
        );
        assert!(parse_json::<WithMap>(br#"{"headers":null}"#)
            .unwrap()
            .headers
            .is_empty());
    }

    #[test]
    fn free_form_values_refuse_a_repeated_key_at_any_depth() {
        let ok = parse_json::<WithMap>(br#"{"free":{"keys":[{"kty":"RSA","n":1.5}]}}"#).unwrap();
        assert_eq!(ok.free.unwrap()["keys"][0]["kty"], "RSA");
        let e =
            parse_json::<WithMap>(br#"{"free":{"keys":[{"kty":"RSA","kty":"EC"}]}}"#).unwrap_err();
        assert!(e.message.contains("duplicate key `kty`"), "{e}");
        assert_eq!(e.path, "free.keys[0]");
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
