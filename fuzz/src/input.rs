//! Turning raw fuzz bytes into requests.
//!
//! A request is written as lines: the method, the raw `:path` bytes, the
//! authority, then `name: value` header lines (a name may start with `:`).
//! Bytes that are not UTF-8 stay in the raw path; header maps of the cores
//! hold strings, so other lines are read lossily, as the hosts' SDKs do.

use wasmesh_common::HeaderMap;

/// A request decoded from fuzz bytes.
#[derive(Debug, Clone)]
pub struct Request {
    /// Headers, pseudo-headers first.
    pub headers: HeaderMap,
    /// The exact `:path` bytes.
    pub raw_path: Vec<u8>,
}

/// Splits `data` into lines (`\n`).
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n').collect()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Decodes a request: `method\npath\nauthority\nname: value\n...`.
pub fn request(data: &[u8]) -> Request {
    let l = lines(data);
    let method = l.first().map(|m| lossy(m)).unwrap_or_else(|| "GET".into());
    let raw_path = l
        .get(1)
        .map(|p| p.to_vec())
        .unwrap_or_else(|| b"/".to_vec());
    let authority = l
        .get(2)
        .map(|a| lossy(a))
        .unwrap_or_else(|| "api.example.com".into());
    let mut pairs = vec![
        (":method".to_string(), method),
        (":scheme".to_string(), "https".to_string()),
        (":authority".to_string(), authority),
        (":path".to_string(), lossy(&raw_path)),
    ];
    for line in l.iter().skip(3) {
        if let Some((k, v)) = split_header(line) {
            pairs.push((lossy(k).to_ascii_lowercase(), lossy(v)));
        }
    }
    Request {
        headers: HeaderMap::from_pairs(pairs),
        raw_path,
    }
}

/// `name: value` (the name may start with `:`); the value's leading spaces
/// are dropped.
pub fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let from = usize::from(line.first() == Some(&b':'));
    let colon = line.iter().skip(from).position(|&b| b == b':')? + from;
    let (k, v) = (&line[..colon], &line[colon + 1..]);
    let start = v.iter().position(|&b| b != b' ').unwrap_or(v.len());
    Some((k, &v[start..]))
}

/// A small deterministic generator (splitmix64).
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lines() {
        let r = request(b"POST\n/a%2fb?x=1\nhost:80\n:odd: 1\nx-a: b: c\nbad");
        assert_eq!(r.headers.method(), "POST");
        assert_eq!(r.raw_path, b"/a%2fb?x=1");
        assert_eq!(r.headers.authority(), "host:80");
        assert_eq!(r.headers.get(":odd"), Some("1"));
        assert_eq!(r.headers.get("x-a"), Some("b: c"));
        assert!(!r.headers.contains("bad"));
    }
}
