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
