//! The ABI's serialisation of header maps ("Serialization" in the spec).
//!
//! Decoding follows proxy-wasm-cpp-host: a malformed buffer, more than 1,024
//! pairs or more than 1 MiB decodes to *no pairs* (not an error), exactly as
//! Envoy treats it.

/// Most pairs a serialised map may carry (cpp-host's `PAIRS_MAX_COUNT`).
pub const MAX_PAIRS: usize = 1024;
/// Largest serialised map accepted (cpp-host's `PAIRS_MAX_BYTES`).
pub const MAX_PAIRS_BYTES: usize = 1024 * 1024;

/// Serialised size of `pairs`.
pub fn size<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> usize {
    4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.as_ref().len() + 1 + v.as_ref().len() + 1)
        .sum::<usize>()
}

/// Serialises pairs: count, then (key length, value length) pairs, then
/// NUL-terminated keys and values.
pub fn encode<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(size(pairs));
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

/// Decodes a serialised map; anything malformed gives an empty list.
pub fn decode(buf: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    try_decode(buf).unwrap_or_default()
}

fn try_decode(buf: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if buf.len() > MAX_PAIRS_BYTES || buf.len() < 4 {
        return None;
    }
    let n = u32::from_le_bytes(buf[0..4].try_into().ok()?) as usize;
    if n > MAX_PAIRS {
        return None;
    }
    let mut pos = 4usize;
    let sizes_end = pos.checked_add(n.checked_mul(8)?)?;
    if sizes_end > buf.len() {
        return None;
    }
    let mut sizes = Vec::with_capacity(n);
    for _ in 0..n {
        let k = u32::from_le_bytes(buf[pos..pos + 4].try_into().ok()?) as usize;
        let v = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().ok()?) as usize;
        sizes.push((k, v));
        pos += 8;
    }
    let mut out = Vec::with_capacity(n);
    for (k, v) in sizes {
        let kend = pos.checked_add(k)?;
        if kend >= buf.len() || buf[kend] != 0 {
            return None;
        }
        let key = buf[pos..kend].to_vec();
        pos = kend + 1;
        let vend = pos.checked_add(v)?;
        if vend >= buf.len() || buf[vend] != 0 {
            return None;
        }
        let value = buf[pos..vend].to_vec();
        pos = vend + 1;
        out.push((key, value));
    }
    if pos != buf.len() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        let enc = encode(&[("a", "1"), ("b", "22")]);
        assert_eq!(
            enc,
            vec![
                2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b',
                0, b'2', b'2', 0
            ]
        );
        assert_eq!(size(&[("a", "1"), ("b", "22")]), enc.len());
        let dec = decode(&enc);
        assert_eq!(
            dec,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"22".to_vec())
            ]
        );
    }

    #[test]
    fn malformed_is_empty() {
        let mut enc = encode(&[("a", "1")]);
        assert_eq!(decode(&enc[..enc.len() - 1]), vec![]);
        enc.push(0);
        assert_eq!(decode(&enc), vec![]);
        assert_eq!(decode(&[]), vec![]);
        assert_eq!(decode(&[0]), vec![]);
        assert_eq!(decode(&[255, 255, 255, 255]), vec![]);
        let mut bad_nul = encode(&[("a", "1")]);
        let l = bad_nul.len();
        bad_nul[l - 1] = b'x';
        assert_eq!(decode(&bad_nul), vec![]);
    }
}
