//! Property values as Envoy serialises them for `proxy_get_property`:
//! strings and bytes raw, integers 8-byte little-endian, booleans one byte,
//! timestamps and durations as int64 nanoseconds, maps and lists in the ABI's
//! pairs form.

use std::collections::BTreeMap;

/// A typed property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Bytes(Vec<u8>),
    Int(i64),
    Uint(u64),
    Double(f64),
    Bool(bool),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i64),
    /// Nanoseconds.
    Duration(i64),
    /// A map (e.g. `request.headers`): serialised as pairs.
    Map(Vec<(Vec<u8>, Vec<u8>)>),
    /// A list: serialised as pairs whose values are empty, as Envoy does.
    List(Vec<Vec<u8>>),
}

impl Value {
    /// The bytes `proxy_get_property` returns.
    pub fn serialize(&self) -> Vec<u8> {
        match self {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
            Value::Int(i) | Value::Timestamp(i) | Value::Duration(i) => i.to_le_bytes().to_vec(),
            Value::Uint(u) => u.to_le_bytes().to_vec(),
            Value::Double(d) => d.to_le_bytes().to_vec(),
            Value::Bool(b) => vec![u8::from(*b)],
            Value::Map(pairs) => crate::pairs::encode(pairs),
            Value::List(items) => {
                let pairs: Vec<(&[u8], &[u8])> =
                    items.iter().map(|i| (i.as_slice(), &b""[..])).collect();
                crate::pairs::encode(&pairs)
            }
        }
    }

    /// Human-readable form (reports).
    pub fn display(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Int(i) | Value::Timestamp(i) | Value::Duration(i) => i.to_string(),
            Value::Uint(u) => u.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Map(p) => format!("{} entries", p.len()),
            Value::List(l) => format!("{} items", l.len()),
        }
    }
}

/// How a configured property (scenario `properties`, node metadata) is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Int,
    Uint,
    Bool,
    Timestamp,
    Duration,
}

/// Envoy's type for an attribute path written with dots.
pub fn kind_of(path: &str) -> Kind {
    match path {
        "source.port"
        | "destination.port"
        | "upstream.port"
        | "upstream.local_port"
        | "response.code"
        | "response.grpc_status"
        | "request.size"
        | "request.total_size"
        | "response.size"
        | "response.total_size"
        | "listener_direction"
        | "xds.listener_direction"
        | "upstream.request_attempt_count" => Kind::Int,
        "connection.id" | "connection_id" | "response.flags" => Kind::Uint,
        "connection.mtls" => Kind::Bool,
        "request.time" => Kind::Timestamp,
        "request.duration" | "response.backend_latency" => Kind::Duration,
        _ => Kind::String,
    }
}

/// Converts a configured (YAML/JSON) scalar into a typed value for `path`.
pub fn typed(path: &str, raw: &serde_json::Value) -> Result<Value, String> {
    let as_text = || match raw {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(match kind_of(path) {
        Kind::String => Value::String(as_text()),
        Kind::Int => Value::Int(
            raw.as_i64()
                .or_else(|| as_text().parse().ok())
                .ok_or_else(|| format!("property `{path}` must be an integer"))?,
        ),
        Kind::Uint => Value::Uint(
            raw.as_u64()
                .or_else(|| as_text().parse().ok())
                .ok_or_else(|| format!("property `{path}` must be an unsigned integer"))?,
        ),
        Kind::Bool => Value::Bool(
            raw.as_bool()
                .or_else(|| as_text().parse().ok())
                .ok_or_else(|| format!("property `{path}` must be true or false"))?,
        ),
        Kind::Timestamp | Kind::Duration => {
            let n = raw
                .as_i64()
                .or_else(|| as_text().parse().ok())
                .ok_or_else(|| {
                    format!("property `{path}` must be an integer number of nanoseconds")
                })?;
            if kind_of(path) == Kind::Timestamp {
                Value::Timestamp(n)
            } else {
                Value::Duration(n)
            }
        }
    })
}

/// Properties configured for a stream, keyed by their dotted path.
pub type PropertyMap = BTreeMap<String, Value>;

/// Collects the entries of `map` below `prefix.` into one map value (e.g.
/// `node.metadata` from `node.metadata.NAMESPACE`, ...). Nested keys keep
/// their remaining dotted path as the map key.
pub fn subtree(map: &PropertyMap, prefix: &str) -> Option<Value> {
    let p = format!("{prefix}.");
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = map
        .range(p.clone()..)
        .take_while(|(k, _)| k.starts_with(&p))
        .map(|(k, v)| (k.as_bytes()[p.len()..].to_vec(), v.serialize()))
        .collect();
    if pairs.is_empty() {
        None
    } else {
        Some(Value::Map(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(Value::Int(8080).serialize(), 8080i64.to_le_bytes().to_vec());
        assert_eq!(Value::Bool(true).serialize(), vec![1]);
        assert_eq!(Value::String("x".into()).serialize(), b"x".to_vec());
        assert_eq!(
            Value::List(vec![b"a".to_vec()]).serialize(),
            crate::pairs::encode(&[(&b"a"[..], &b""[..])])
        );
    }

    #[test]
    fn typing() {
        assert_eq!(
            typed("source.port", &serde_json::json!(40000)).unwrap(),
            Value::Int(40000)
        );
        assert_eq!(
            typed("source.port", &serde_json::json!("40000")).unwrap(),
            Value::Int(40000)
        );
        assert_eq!(
            typed("connection.mtls", &serde_json::json!(true)).unwrap(),
            Value::Bool(true)
        );
        assert!(typed("connection.mtls", &serde_json::json!("maybe")).is_err());
        assert_eq!(
            typed("node.metadata.NAMESPACE", &serde_json::json!("prod")).unwrap(),
            Value::String("prod".into())
        );
    }

    #[test]
    fn subtrees() {
        let mut m = PropertyMap::new();
        m.insert(
            "node.metadata.NAMESPACE".into(),
            Value::String("prod".into()),
        );
        m.insert(
            "node.metadata.LABELS.app".into(),
            Value::String("web".into()),
        );
        m.insert("node.id".into(), Value::String("n1".into()));
        match subtree(&m, "node.metadata").unwrap() {
            Value::Map(p) => assert_eq!(p.len(), 2),
            _ => panic!(),
        }
        assert!(subtree(&m, "node.other").is_none());
    }
}
