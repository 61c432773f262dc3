//! The probe's command language, as plain Rust (unit-tested on the host).
//!
//! A command list is `cmd;cmd;...`. Each command is
//! `[plugin:]name[@label][=arg1,arg2,...]`:
//! * `plugin:` runs the command only in the plugin of that name (two probes
//!   in one chain read the same request header);
//! * `@label` names the result (`x-r-<label>`) instead of the default key;
//! * arguments are separated by `,` and percent-decoded (`%2C` is a comma,
//!   `%3B` a semicolon, `%25` a percent sign, `%0A` a newline).

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Runs only in the plugin with this name.
    pub only: Option<String>,
    /// Command name.
    pub name: String,
    /// Result key chosen by the user (`name@label`).
    pub label: Option<String>,
    /// Percent-decoded arguments.
    pub args: Vec<String>,
}

impl Command {
    /// Argument `i`, or "" if absent.
    pub fn arg(&self, i: usize) -> &str {
        self.args.get(i).map(String::as_str).unwrap_or("")
    }

    /// Whether the command applies to plugin `plugin`.
    pub fn applies_to(&self, plugin: &str) -> bool {
        self.only.as_deref().is_none_or(|p| p == plugin)
    }

    /// The result key: the label if given, else `default`.
    pub fn key(&self, default: &str) -> String {
        match &self.label {
            Some(l) => l.clone(),
            None => default.to_string(),
        }
    }
}

/// Parses a command list; empty commands are skipped.
pub fn parse(list: &str) -> Vec<Command> {
    list.split(';').filter_map(parse_one).collect()
}

fn parse_one(raw: &str) -> Option<Command> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let (head, rest) = match raw.split_once('=') {
        Some((h, r)) => (h.trim(), Some(r)),
        None => (raw, None),
    };
    let (only, head) = match head.split_once(':') {
        Some((p, h)) if !p.is_empty() => (Some(p.trim().to_string()), h.trim()),
        _ => (None, head),
    };
    let (name, label) = match head.split_once('@') {
        Some((n, l)) => (n.trim(), Some(l.trim().to_string())),
        None => (head, None),
    };
    let args = match rest {
        None => Vec::new(),
        Some(r) => r.split(',').map(percent_decode).collect(),
    };
    Some(Command {
        only,
        name: name.to_string(),
        label,
        args,
    })
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `k=v|k=v` (split at the first `=` of each item) into pairs.
pub fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('|')
        .filter(|i| !i.is_empty())
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (i.to_string(), String::new()),
        })
        .collect()
}

/// Serialises pairs in the ABI's map format.
pub fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Decodes the ABI's map format; `None` if malformed. An empty buffer is an
/// empty map (the host returns no bytes for an empty map).
pub fn decode_pairs(b: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if b.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let s = b.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let n = word(0)?;
    let mut sizes = Vec::new();
    let mut pos = 4usize;
    for _ in 0..n {
        sizes.push((word(pos)?, word(pos + 4)?));
        pos = pos.checked_add(8)?;
    }
    let mut out = Vec::with_capacity(n);
    for (kl, vl) in sizes {
        let k = b.get(pos..pos.checked_add(kl)?)?.to_vec();
        pos += kl;
        if b.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        let v = b.get(pos..pos.checked_add(vl)?)?.to_vec();
        pos += vl;
        if b.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        out.push((k, v));
    }
    (pos == b.len()).then_some(out)
}

/// Renders pairs as `k=v|k=v` (lossy text).
pub fn render_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Proxy-Wasm status names (proxy-wasm-cpp-host's `WasmResult`).
pub fn status_name(code: u32) -> String {
    match code {
        0 => "OK",
        1 => "NOT_FOUND",
        2 => "BAD_ARGUMENT",
        3 => "SERIALIZATION_FAILURE",
        4 => "PARSE_FAILURE",
        5 => "BAD_EXPRESSION",
        6 => "INVALID_MEMORY_ACCESS",
        7 => "EMPTY",
        8 => "CAS_MISMATCH",
        9 => "RESULT_MISMATCH",
        10 => "INTERNAL_FAILURE",
        11 => "BROKEN_CONNECTION",
        12 => "UNIMPLEMENTED",
        n => return format!("STATUS_{n}"),
    }
    .to_string()
}

/// WASI errno names.
pub fn errno_name(code: u32) -> String {
    match code {
        0 => "SUCCESS",
        8 => "BADF",
        20 => "NOTDIR",
        21 => "FAULT",
        28 => "INVAL",
        44 => "NOENT",
        52 => "NOSYS",
        58 => "NOTSUP",
        n => return format!("ERRNO_{n}"),
    }
    .to_string()
}

/// Map types by name or number: `req`, `reqtrailers`, `resp`,
/// `resptrailers`, `grpcinit`, `grpctrail`, `call`, `calltrailers`.
pub fn map_type(s: &str) -> Option<u32> {
    Some(match s {
        "req" | "request" => 0,
        "reqtrailers" => 1,
        "resp" | "response" => 2,
        "resptrailers" => 3,
        "grpcinit" => 4,
        "grpctrail" => 5,
        "call" => 6,
        "calltrailers" => 7,
        n => return n.parse().ok(),
    })
}

/// Buffer types by name or number: `reqbody`, `respbody`, `downstream`,
/// `upstream`, `call`, `grpc`, `vmconfig`, `config`, `foreign`.
pub fn buffer_type(s: &str) -> Option<u32> {
    Some(match s {
        "reqbody" => 0,
        "respbody" => 1,
        "downstream" => 2,
        "upstream" => 3,
        "call" => 4,
        "grpc" => 5,
        "vmconfig" => 6,
        "config" => 7,
        "foreign" => 8,
        n => return n.parse().ok(),
    })
}

/// Log levels by name or number.
pub fn log_level(s: &str) -> Option<u32> {
    Some(match s {
        "trace" => 0,
        "debug" => 1,
        "info" => 2,
        "warn" => 3,
        "error" => 4,
        "critical" => 5,
        n => return n.parse().ok(),
    })
}

/// Metric types by name or number.
pub fn metric_type(s: &str) -> Option<u32> {
    Some(match s {
        "counter" => 0,
        "gauge" => 1,
        "histogram" => 2,
        n => return n.parse().ok(),
    })
}

/// Makes a value safe for a header: control characters become `?`.
pub fn header_safe(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Renders a property value as `kind`: `str` (default), `int`, `uint`,
/// `bool`, `double`, `pairs`, `hex`, `len`.
pub fn render_value(kind: &str, v: &[u8]) -> String {
    let eight = || -> Option<[u8; 8]> { v.try_into().ok() };
    match kind {
        "int" => eight().map_or_else(
            || format!("BADLEN {}", v.len()),
            |b| i64::from_le_bytes(b).to_string(),
        ),
        "uint" => eight().map_or_else(
            || format!("BADLEN {}", v.len()),
            |b| u64::from_le_bytes(b).to_string(),
        ),
        "double" => eight().map_or_else(
            || format!("BADLEN {}", v.len()),
            |b| f64::from_le_bytes(b).to_string(),
        ),
        "bool" => match v {
            [0] => "false".into(),
            [1] => "true".into(),
            _ => format!("BADLEN {}", v.len()),
        },
        "pairs" => decode_pairs(v).map_or_else(|| "MALFORMED".into(), |p| render_pairs(&p)),
        "count" => decode_pairs(v).map_or_else(|| "MALFORMED".into(), |p| p.len().to_string()),
        "hex" => hex(v),
        "len" => v.len().to_string(),
        _ => String::from_utf8_lossy(v).into_owned(),
    }
}

/// Parses a configuration string `key=value key=value` (separated by spaces
/// or commas); a bare word is a key with an empty value.
pub fn parse_config(s: &str) -> Vec<(String, String)> {
    s.split([' ', ',', '\n', '\t'])
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (t.to_string(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let c = parse("a:get@x=:path ; log=info,hello%2C world;;pairs");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].only.as_deref(), Some("a"));
        assert_eq!(c[0].name, "get");
        assert_eq!(c[0].label.as_deref(), Some("x"));
        assert_eq!(c[0].args, vec![":path"]);
        assert_eq!(c[1].args, vec!["info", "hello, world"]);
        assert_eq!(c[2].name, "pairs");
        assert!(c[2].args.is_empty());
        assert!(c[1].applies_to("anything"));
        assert!(!c[0].applies_to("b"));
        assert_eq!(c[0].key("get-:path"), "x");
        assert_eq!(c[1].key("log"), "log");
        // `=` inside arguments is kept.
        assert_eq!(parse("setpairs=:path=/x|a=1")[0].args, vec![":path=/x|a=1"]);
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%3Bb%25"), "a;b%");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("x%0Ay"), "x\ny");
    }

    #[test]
    fn pairs_round_trip() {
        let p = parse_pairs(":path=/x|a=1=2|b");
        assert_eq!(p[0], (":path".into(), "/x".into()));
        assert_eq!(p[1], ("a".into(), "1=2".into()));
        assert_eq!(p[2], ("b".into(), "".into()));
        let enc = encode_pairs(&p);
        let dec = decode_pairs(&enc).unwrap();
        assert_eq!(render_pairs(&dec), ":path=/x|a=1=2|b=");
        assert_eq!(decode_pairs(&[]), Some(vec![]));
        assert_eq!(decode_pairs(&enc[..enc.len() - 1]), None);
        assert_eq!(decode_pairs(&[9, 0, 0, 0]), None);
    }

    #[test]
    fn names_and_values() {
        assert_eq!(status_name(6), "INVALID_MEMORY_ACCESS");
        assert_eq!(status_name(99), "STATUS_99");
        assert_eq!(errno_name(21), "FAULT");
        assert_eq!(map_type("resp"), Some(2));
        assert_eq!(map_type("99"), Some(99));
        assert_eq!(map_type("nope"), None);
        assert_eq!(buffer_type("vmconfig"), Some(6));
        assert_eq!(render_value("int", &8080i64.to_le_bytes()), "8080");
        assert_eq!(render_value("int", b"abc"), "BADLEN 3");
        assert_eq!(render_value("bool", &[1]), "true");
        assert_eq!(render_value("hex", b"\x01\xff"), "01ff");
        assert_eq!(render_value("str", b"x"), "x");
        assert_eq!(render_value("count", &encode_pairs(&[("a", "b")])), "1");
        assert_eq!(header_safe("a\nb"), "a?b");
        assert_eq!(
            parse_config("tick=100, queue=q fail-configure"),
            vec![
                ("tick".to_string(), "100".to_string()),
                ("queue".to_string(), "q".to_string()),
                ("fail-configure".to_string(), String::new())
            ]
        );
    }
}
