//! A small reader of JSON values that reports errors with the field path,
//! in the words serde uses (`unknown field`, `invalid type`, ...).
//!
//! The configuration types are read with it instead of
//! `#[derive(Deserialize)]` + `serde_path_to_error`: the derived, path
//! tracking deserializers cost about 90 KiB of `.wasm` for this many types,
//! which the filter's 300 KiB budget cannot afford. The contract is the
//! same: camelCase names, unknown fields refused, errors carry the path.

use serde_json::{Map, Value};
use wasmesh_common::{ConfigError, FieldPath};

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "floating point",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "map",
    }
}

fn invalid_type(v: &Value, expected: &str, path: &FieldPath) -> ConfigError {
    let shown = match v {
        Value::Bool(b) => format!(" `{b}`"),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => format!(" `{i}`"),
            (_, Some(u)) => format!(" `{u}`"),
            _ => String::new(),
        },
        Value::String(s) => format!(" \"{}\"", escape(s)),
        _ => String::new(),
    };
    path.error(format!(
        "invalid type: {}{shown}, expected {expected}",
        kind(v)
    ))
}

/// Parses a configuration document; an empty document is `{}`.
pub fn parse_document(bytes: &[u8]) -> Result<Value, ConfigError> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(trimmed).map_err(|e| {
        let s = e.to_string();
        let msg = match s.rfind(" at line ") {
            Some(i) => format!("{} (line {}, column {})", &s[..i], e.line(), e.column()),
            None => s,
        };
        ConfigError::at("", msg)
    })
}

/// An object whose fields are all among `fields`.
pub struct Object<'a> {
    map: &'a Map<String, Value>,
    path: FieldPath,
}

impl<'a> Object<'a> {
    /// Checks that `v` is an object with known fields only.
    pub fn new(v: &'a Value, path: &FieldPath, fields: &[&str]) -> Result<Object<'a>, ConfigError> {
        let Value::Object(map) = v else {
            return Err(invalid_type(v, "a map", path));
        };
        for k in map.keys() {
            if !fields.contains(&k.as_str()) {
                let expected = fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(path
                    .field(k)
                    .error(format!("unknown field `{k}`, expected one of {expected}")));
            }
        }
        Ok(Object {
            map,
            path: path.clone(),
        })
    }

    /// The path of field `name`.
    pub fn path(&self, name: &str) -> FieldPath {
        self.path.field(name)
    }

    /// Field `name`, `None` when absent or `null`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.get(name)
            .map(|v| string(v, &self.path(name)))
            .transpose()
    }

    /// A required string field.
    pub fn required_string(&self, name: &str) -> Result<String, ConfigError> {
        self.string(name)?
            .ok_or_else(|| self.path.error(format!("missing field `{name}`")))
    }

    /// A boolean field (default false).
    pub fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(invalid_type(v, "a boolean", &self.path(name))),
        }
    }

    /// An unsigned integer field no larger than `max`.
    pub fn u32(&self, name: &str, max: u32) -> Result<Option<u32>, ConfigError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let path = self.path(name);
        match v.as_u64() {
            Some(n) if n <= u64::from(max) => Ok(Some(n as u32)),
            Some(n) => Err(path.error(format!(
                "invalid value: integer `{n}`, expected at most {max}"
            ))),
            None => match v.as_i64() {
                Some(n) => Err(path.error(format!(
                    "invalid value: integer `{n}`, expected a non-negative integer"
                ))),
                _ => Err(invalid_type(v, "a non-negative integer", &path)),
            },
        }
    }

    /// A list of strings (absent: empty).
    pub fn strings(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) => {
                let path = self.path(name);
                let items = array(v, &path)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, s) in items.iter().enumerate() {
                    out.push(string(s, &path.index(i))?);
                }
                Ok(out)
            }
        }
    }

    /// A list of objects read with `read` (absent: `None`).
    pub fn list<T>(
        &self,
        name: &str,
        mut read: impl FnMut(&'a Value, &FieldPath) -> Result<T, ConfigError>,
    ) -> Result<Option<Vec<T>>, ConfigError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let path = self.path(name);
        let items = array(v, &path)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(read(item, &path.index(i))?);
        }
        Ok(Some(out))
    }

    /// A map of string values (absent: empty), in document order.
    pub fn string_map(&self, name: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(v) = self.get(name) else {
            return Ok(Vec::new());
        };
        let path = self.path(name);
        let Value::Object(m) = v else {
            return Err(invalid_type(v, "a map", &path));
        };
        let mut out = Vec::with_capacity(m.len());
        for (k, v) in m {
            out.push((k.clone(), string(v, &path.key(k))?));
        }
        Ok(out)
    }

    /// A string field with one of `variants` (absent: `None`).
    pub fn variant(&self, name: &str, variants: &[&str]) -> Result<Option<usize>, ConfigError> {
        let Some(s) = self.string(name)? else {
            return Ok(None);
        };
        match variants.iter().position(|v| *v == s) {
            Some(i) => Ok(Some(i)),
            None => {
                let expected = variants
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(self
                    .path(name)
                    .error(format!("unknown variant `{s}`, expected one of {expected}")))
            }
        }
    }
}

/// Escapes control characters, `"` and `\` (like `{:?}` for ASCII text,
/// without pulling in Unicode tables); used for client-supplied text in log
/// lines too.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn string(v: &Value, path: &FieldPath) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(invalid_type(other, "a string", path)),
    }
}

fn array<'a>(v: &'a Value, path: &FieldPath) -> Result<&'a Vec<Value>, ConfigError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(invalid_type(other, "a sequence", path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_serde() {
        let v: Value =
            serde_json::from_str(r#"{"a": 3, "b": ["x", 1], "c": "s", "d": -1, "e": 1.5}"#)
                .unwrap();
        let root = FieldPath::root().field("top");
        let o = Object::new(&v, &root, &["a", "b", "c", "d", "e"]).unwrap();
        assert_eq!(
            o.string("a").unwrap_err().to_string(),
            "top.a: invalid type: integer `3`, expected a string"
        );
        assert_eq!(o.strings("b").unwrap_err().path, "top.b[1]");
        assert_eq!(
            o.bool("c").unwrap_err().to_string(),
            "top.c: invalid type: string \"s\", expected a boolean"
        );
        assert!(o
            .u32("d", 10)
            .unwrap_err()
            .message
            .contains("invalid value: integer `-1`"));
        assert!(o
            .u32("e", 10)
            .unwrap_err()
            .message
            .contains("invalid type: floating point"));
        assert!(o
            .u32("a", 2)
            .unwrap_err()
            .message
            .contains("expected at most 2"));
        assert_eq!(o.u32("a", 5).unwrap(), Some(3));
        assert_eq!(
            o.variant("c", &["X", "Y"]).unwrap_err().message,
            "unknown variant `s`, expected one of `X`, `Y`"
        );
        let e = Object::new(&v, &root, &["a"]).err().unwrap();
        assert_eq!(e.path, "top.b");
        assert!(e
            .message
            .starts_with("unknown field `b`, expected one of `a`"));
        assert!(o
            .required_string("zz")
            .unwrap_err()
            .message
            .contains("missing field `zz`"));
    }

    #[test]
    fn documents() {
        assert_eq!(parse_document(b"  ").unwrap(), Value::Object(Map::new()));
        let e = parse_document(b"{\"a\": }").unwrap_err();
        assert!(e.message.contains("line 1"), "{e}");
        assert!(parse_document(b"{} x").is_err());
    }
}
