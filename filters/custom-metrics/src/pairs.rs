//! The Proxy-Wasm map serialisation (`proxy_get_header_map_pairs`), read
//! defensively: a malformed buffer gives the pairs that could be read, never
//! a panic.
//!
//! Layout: `count: u32`, then `count` × (`key_len: u32`, `value_len: u32`),
//! then every key and value, each followed by a NUL byte; integers
//! little-endian.

/// The pairs of a serialised map (invalid UTF-8 replaced).
pub fn deserialize(buf: &[u8]) -> Vec<(String, String)> {
    let u32_at = |at: usize| -> Option<usize> {
        let b = buf.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(count) = u32_at(0) else {
        return Vec::new();
    };
    // Each pair needs 8 bytes of sizes: a count larger than the buffer allows
    // is malformed.
    if count > buf.len() / 8 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(count);
    let mut data = 4 + count * 8;
    for i in 0..count {
        let (Some(kl), Some(vl)) = (u32_at(4 + i * 8), u32_at(8 + i * 8)) else {
            break;
        };
        let Some(k) = buf.get(data..data.saturating_add(kl)) else {
            break;
        };
        let vstart = data + kl + 1;
        let Some(v) = buf.get(vstart..vstart.saturating_add(vl)) else {
            break;
        };
        out.push((
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ));
        data = vstart + vl + 1;
    }
    out
}

/// Where the first value of `name` (ASCII case-insensitive) is in a
/// serialized map, without copying anything: `Ok(range)` for a UTF-8 value,
/// `Err(())` when the value is not UTF-8, `None` when absent (or the buffer
/// ends first). Finds what [`deserialize`] would give first.
pub fn find(buf: &[u8], name: &[u8]) -> Option<Result<std::ops::Range<usize>, ()>> {
    let mut found = None;
    walk(buf, |k, v| {
        if k.eq_ignore_ascii_case(name) {
            found = Some(v);
            return false;
        }
        true
    });
    // A key equal to the (UTF-8) name up to ASCII case is UTF-8 itself.
    let v = found?;
    Some(match std::str::from_utf8(&buf[v.clone()]) {
        Ok(_) => Ok(v),
        Err(_) => Err(()),
    })
}

/// Envoy's `HeaderMap::byteSize` of a serialized map: the lengths of every
/// name and value.
pub fn byte_size(buf: &[u8]) -> i64 {
    let mut n = 0i64;
    walk(buf, |k, v| {
        n += (k.len() + v.len()) as i64;
        true
    });
    n
}

/// Calls `f(key, value range)` for each pair [`deserialize`] would read,
/// in order, until it returns false.
fn walk(buf: &[u8], mut f: impl FnMut(&[u8], std::ops::Range<usize>) -> bool) {
    let u32_at = |at: usize| -> Option<usize> {
        let b = buf.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(count) = u32_at(0) else {
        return;
    };
    if count > buf.len() / 8 {
        return;
    }
    let mut data = 4 + count * 8;
    for i in 0..count {
        let (Some(kl), Some(vl)) = (u32_at(4 + i * 8), u32_at(8 + i * 8)) else {
            return;
        };
        let Some(k) = buf.get(data..data.saturating_add(kl)) else {
            return;
        };
        let vstart = data + kl + 1;
        if buf.get(vstart..vstart.saturating_add(vl)).is_none() {
            return;
        }
        if !f(k, vstart..vstart + vl) {
            return;
        }
        data = vstart + vl + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn round_trip() {
        let pairs = [
            (":status", "200"),
            ("content-type", "text/plain"),
            ("x-empty", ""),
        ];
        let got = deserialize(&serialize(&pairs));
        let want: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(deserialize(&serialize(&[])).is_empty());
    }

    #[test]
    fn find_in_place() {
        let buf = serialize(&[
            (":status", "200"),
            ("X-Plan", "pro"),
            ("x-plan", "free"),
            ("e", ""),
        ]);
        let at = |name: &str| find(&buf, name.as_bytes()).map(|r| r.map(|r| &buf[r]));
        assert_eq!(at("x-plan"), Some(Ok(&b"pro"[..])), "first value, any case");
        assert_eq!(at(":STATUS"), Some(Ok(&b"200"[..])));
        assert_eq!(at("e"), Some(Ok(&b""[..])));
        assert_eq!(at("none"), None);
        assert_eq!(byte_size(&buf), (7 + 3 + 6 + 3 + 6 + 4 + 1) as i64);
        let mut bad = serialize(&[("k", "v\u{e9}")]);
        let n = bad.len();
        bad[n - 3] = 0xff; // not UTF-8
        assert_eq!(find(&bad, b"k"), Some(Err(())));
        for cut in 0..buf.len() {
            let _ = find(&buf[..cut], b"e");
            assert!(byte_size(&buf[..cut]) <= byte_size(&buf));
        }
    }

    #[test]
    fn malformed_buffers_do_not_panic() {
        let good = serialize(&[("a", "1"), ("bb", "22")]);
        for cut in 0..good.len() {
            let got = deserialize(&good[..cut]);
            assert!(got.len() <= 2);
        }
        assert!(deserialize(&[0xff, 0xff, 0xff, 0xff]).is_empty());
        let mut lying = good.clone();
        lying[4] = 200; // first key length beyond the buffer
        assert!(deserialize(&lying).is_empty());
        assert!(deserialize(&[]).is_empty());
    }
}
