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
/// serde_json's `at line L column C`; errors about a value name its path.
///
/// Reading happens in two steps, both path-tracked: the document is parsed
/// into a JSON tree that keeps every member of every object in document
/// order, repeated ones included, then `T` is read from that tree by a
/// deserializer that accepts a struct only from a JSON object (serde_json
/// would also fill a struct from an array, positionally). A repeated key is
/// thus seen by the type that reads it: a derived struct refuses it as
/// `duplicate field `x``, a map of user-chosen names ([`unique_map`],
/// [`UniqueMap`]) as `duplicate key `x``, a free-form value
/// ([`strict_value`]) as `duplicate key `x``. The configuration types hold
/// no `HashMap`/`BTreeMap`/`serde_json::Value` read any other way (those
/// would keep one of the values silently).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let trimmed = bytes.trim_ascii();
    let doc: &[u8] = if trimmed.is_empty() { b"{}" } else { trimmed };
    let mut de = serde_json::Deserializer::from_slice(doc);
    let Tree(tree) = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| ConfigError::at("", e))?;
    serde_path_to_error::deserialize(StrictDeserializer(&tree)).map_err(path_error)
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    // A syntax error is about the document: its line and column say where.
    let path = if path == "." || inner.is_syntax() || inner.is_eof() {
        String::new()
    } else {
        path
    };
    ConfigError::at(path, strip_position(&inner))
}

/// A parsed document (repeated keys refused).
struct Tree(Node);

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StrictValue(false).deserialize(d).map(Tree)
    }
}

/// Reads configuration types from a parsed tree; like `serde_json::Value`'s
/// deserializer except that a struct must be a JSON object.
struct StrictDeserializer<'a>(&'a Node);

impl<'de> Deserializer<'de> for StrictDeserializer<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Node::String(s) => visitor.visit_borrowed_str(s),
            Node::Array(items) => visitor.visit_seq(StrictSeq(items.iter())),
            Node::Object(map) => visitor.visit_map(StrictMap {
                entries: map.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Node::Object(_) => self.deserialize_any(visitor),
            other => Err(serde::de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Node::String(s) => {
                visitor.visit_enum(serde::de::value::BorrowedStrDeserializer::new(s))
            }
            other => Err(serde::de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
        ignored_any
    }
}

fn unexpected(v: &Node) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match v {
        Node::Null => Unexpected::Unit,
        Node::Bool(b) => Unexpected::Bool(*b),
        Node::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Unexpected::Unsigned(u),
            (_, Some(i)) => Unexpected::Signed(i),
            _ => Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Node::String(s) => Unexpected::Str(s),
        Node::Array(_) => Unexpected::Seq,
        Node::Object(_) => Unexpected::Map,
    }
}

struct StrictSeq<'a>(std::slice::Iter<'a, Node>);

impl<'de> SeqAccess<'de> for StrictSeq<'de> {
    type Error = serde_json::Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Self::Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(StrictDeserializer(v)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct StrictMap<'a> {
    entries: std::slice::Iter<'a, (String, Node)>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for StrictMap<'de> {
    type Error = serde_json::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            None => Ok(None),
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(k))
                    .map(Some)
            }
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(StrictDeserializer(v)),
            None => Err(serde::de::Error::custom("value read before its key")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
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
                let mut seen = std::collections::BTreeSet::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
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
    match StrictValue(true).deserialize(d)?.into_value() {
        serde_json::Value::Null => Ok(None),
        v => Ok(Some(v)),
    }
}

/// A parsed JSON value whose objects keep their members in document order
/// (serde_json's `Map` sorts them unless `preserve_order` is on).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    fn into_value(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Number(n) => Value::Number(n),
            Node::String(s) => Value::String(s),
            Node::Array(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
        }
    }
}

/// Reads any JSON value; with `true`, a repeated object key is refused
/// (with `false` it is kept, for the type read from the tree to refuse:
/// serde's derived structs say `duplicate field`, [`UniqueMap`] says
/// `duplicate key`).
#[derive(Clone, Copy)]
struct StrictValue(bool);

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Node::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out: Vec<(String, Node)> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if self.0 && !seen.insert(k.clone()) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate key `{k}`"
                )));
            }
            let v = map.next_value_seed(self)?;
            out.push((k, v));
        }
        Ok(Node::Object(out))
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
            "configuration: expected value at line 1 column 14"
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
    fn a_struct_is_only_read_from_an_object() {
        let e = parse_json::<Cfg>(br#"{"jwtRules":[[["a"]]]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "jwtRules[0]: invalid type: sequence, expected struct Rule"
        );
        let e = parse_json::<Cfg>(br#"[]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configuration: invalid type: sequence, expected struct Cfg"
        );
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
