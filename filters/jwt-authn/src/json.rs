//! A small typed reader over a parsed JSON document, used to read the
//! configuration with the same errors as `wasmesh_common::parse_json`
//! (`jwtRules[0].audiences[1]: invalid type: integer `3`, expected a string`,
//! `jwtRules[0].colour: unknown field `colour`, expected one of ...`).
//!
//! Hand-written instead of serde-derived to keep `jwt_authn.wasm` small: the
//! derived visitors of a dozen configuration structs cost about 100 KB of
//! wasm, while `serde_json::Value` is linked anyway for tokens and keys.

use serde_json::{Map, Value};
use wasmesh_common::{ConfigError, FieldPath};

/// How serde describes a JSON value in "invalid type" errors.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

fn invalid(at: &FieldPath, v: &Value, expected: &str) -> ConfigError {
    at.error(format!(
        "invalid type: {}, expected {expected}",
        describe(v)
    ))
}

/// An object being read; [`Obj::finish`] refuses members nobody asked for.
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: FieldPath,
    fields: &'static [&'static str],
}

impl<'a> Obj<'a> {
    /// `v` as an object with the given known `fields`; `null` reads as `{}`
    /// only when `null_ok`.
    pub fn new(
        v: &'a Value,
        at: FieldPath,
        what: &str,
        fields: &'static [&'static str],
    ) -> Result<Obj<'a>, ConfigError> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let map = match v {
            Value::Object(m) => m,
            Value::Null if at.as_str().is_empty() => EMPTY.get_or_init(Map::new),
            other => return Err(invalid(&at, other, what)),
        };
        for k in map.keys() {
            if !fields.contains(&k.as_str()) {
                let list: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                let expected = match list.len() {
                    0 => "there are no fields".to_string(),
                    1 => format!("expected {}", list[0]),
                    2 => format!("expected {} or {}", list[0], list[1]),
                    _ => format!("expected one of {}", list.join(", ")),
                };
                return Err(at
                    .field(k)
                    .error(format!("unknown field `{k}`, {expected}")));
            }
        }
        Ok(Obj { map, at, fields })
    }

    /// Path of member `k`.
    pub fn path(&self, k: &str) -> FieldPath {
        debug_assert!(self.fields.contains(&k));
        self.at.field(k)
    }

    /// The path of this object.
    pub fn at(&self) -> &FieldPath {
        &self.at
    }

    /// Member `k` if present and not null.
    pub fn get(&self, k: &str) -> Option<&'a Value> {
        self.map.get(k).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub fn string(&self, k: &str) -> Result<Option<String>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(invalid(&self.path(k), v, "a string")),
        }
    }

    /// A required string.
    pub fn required_string(&self, k: &str) -> Result<String, ConfigError> {
        self.string(k)?
            .ok_or_else(|| self.at.error(format!("missing field `{k}`")))
    }

    /// An optional boolean.
    pub fn bool(&self, k: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(invalid(&self.path(k), v, "a boolean")),
        }
    }

    /// An optional unsigned integer no larger than `max`.
    pub fn uint(&self, k: &str, max: u64, what: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => match n.as_u64() {
                Some(u) if u <= max => Ok(Some(u)),
                Some(u) => Err(self
                    .path(k)
                    .error(format!("invalid value: integer `{u}`, expected {what}"))),
                None => Err(invalid(&self.path(k), v, what)),
            },
            Some(v) => Err(invalid(&self.path(k), v, what)),
        }
    }

    /// An optional list; each element read by `item`.
    pub fn list<T>(
        &self,
        k: &str,
        mut item: impl FnMut(&'a Value, FieldPath) -> Result<T, ConfigError>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                let at = self.path(k);
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| item(v, at.index(i)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
            Some(v) => Err(invalid(&self.path(k), v, "a sequence")),
        }
    }

    /// An optional list of strings.
    pub fn strings(&self, k: &str) -> Result<Option<Vec<String>>, ConfigError> {
        self.list(k, |v, at| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(invalid(&at, other, "a string")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_look_like_serde() {
        let v: Value = serde_json::from_str(r#"{"a":["x",3],"b":1.5,"c":true}"#).unwrap();
        let o = Obj::new(&v, FieldPath::root(), "a map", &["a", "b", "c"]).unwrap();
        assert_eq!(
            o.strings("a").unwrap_err().to_string(),
            "a[1]: invalid type: integer `3`, expected a string"
        );
        assert_eq!(
            o.string("b").unwrap_err().to_string(),
            "b: invalid type: floating point `1.5`, expected a string"
        );
        assert_eq!(o.bool("c").unwrap(), Some(true));
        assert_eq!(
            o.uint("b", 10, "u32").unwrap_err().to_string(),
            "b: invalid type: floating point `1.5`, expected u32"
        );
        let e = Obj::new(&v, FieldPath::root().field("x"), "a map", &["a", "b"])
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "x.c: unknown field `c`, expected `a` or `b`");
        let s = Value::String("s".into());
        let e = Obj::new(&s, FieldPath::root().field("y"), "struct Y", &[])
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "y: invalid type: string \"s\", expected struct Y"
        );
    }
}
