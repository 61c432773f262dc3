//! The request headers as policies read them: a borrowed, ordered multimap.
//!
//! In the proxy the headers arrive as one buffer in the Proxy-Wasm map
//! encoding; [`Headers::parse`] reads it in place (no copy per header), which
//! matters at a few microseconds per request. Names are matched
//! case-insensitively; values that are not UTF-8 are read lossily (they can
//! never equal a configured value).

use std::borrow::Cow;
use wasmesh_common::HeaderMap;

/// Request headers, pseudo-headers included, in the order sent.
#[derive(Debug, Clone, Default)]
pub struct Headers<'a> {
    pairs: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Headers<'a> {
    /// Borrows the pairs of a [`HeaderMap`] (tests, native callers).
    pub fn from_map(map: &'a HeaderMap) -> Headers<'a> {
        Headers {
            pairs: map
                .pairs()
                .iter()
                .map(|(k, v)| (k, Cow::Borrowed(v)))
                .collect(),
        }
    }

    /// Reads the Proxy-Wasm map encoding: a count, then a (name length, value
    /// length) pair of little-endian `u32` per entry, then each name and value
    /// followed by a NUL. `None` if the buffer is malformed.
    pub fn parse(buf: &'a [u8]) -> Option<Headers<'a>> {
        let word = |at: usize| -> Option<usize> {
            let b = buf.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        if buf.is_empty() {
            return Some(Headers::default());
        }
        let n = word(0)?;
        let mut sizes = 4usize;
        let mut data = 4usize.checked_add(n.checked_mul(8)?)?;
        if data > buf.len() {
            return None;
        }
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let (kl, vl) = (word(sizes)?, word(sizes + 4)?);
            sizes += 8;
            let k = buf.get(data..data.checked_add(kl)?)?;
            data += kl + 1;
            let v = buf.get(data..data.checked_add(vl)?)?;
            data += vl + 1;
            if data > buf.len() {
                return None;
            }
            let k = std::str::from_utf8(k).ok()?;
            let v = match std::str::from_utf8(v) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => Cow::Owned(String::from_utf8_lossy(v).into_owned()),
            };
            pairs.push((k, v));
        }
        Some(Headers { pairs })
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// How many times `name` occurs.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// How many `:method` and `:path` headers there are (one pass).
    pub fn pseudo_counts(&self) -> (usize, usize) {
        let (mut m, mut p) = (0, 0);
        for (k, _) in &self.pairs {
            match *k {
                ":method" => m += 1,
                ":path" => p += 1,
                _ => {}
            }
        }
        (m, p)
    }

    /// `:method` (empty if absent).
    pub fn method(&self) -> &str {
        self.get(":method").unwrap_or("")
    }

    /// `:authority`, or `host` when there is none.
    pub fn authority(&self) -> &str {
        self.get(":authority")
            .or_else(|| self.get("host"))
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn parses_the_map_encoding() {
        let buf = encode(&[
            (b":method", b"GET"),
            (b":path", b"/a"),
            (b"X-Dup", b"1"),
            (b"x-dup", b"\xff2"),
            (b"empty", b""),
        ]);
        let h = Headers::parse(&buf).unwrap();
        assert_eq!(h.method(), "GET");
        assert_eq!(h.get(":path"), Some("/a"));
        assert_eq!(
            h.get_all("x-dup").collect::<Vec<_>>(),
            vec!["1", "\u{fffd}2"]
        );
        assert_eq!(h.get("empty"), Some(""));
        assert_eq!(h.count("x-dup"), 2);
        assert_eq!(h.authority(), "");
        assert!(Headers::parse(b"").unwrap().get("x").is_none());
    }

    #[test]
    fn refuses_malformed_buffers() {
        let good = encode(&[(b"a", b"b")]);
        for cut in 1..good.len() {
            assert!(Headers::parse(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Headers::parse(&huge).is_none());
        let mut long = good.clone();
        long[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert!(Headers::parse(&long).is_none());
    }

    #[test]
    fn borrows_a_header_map() {
        let m = HeaderMap::from_slice(&[(":authority", "a"), ("host", "b")]);
        let h = Headers::from_map(&m);
        assert_eq!(h.authority(), "a");
        let m = HeaderMap::from_slice(&[("host", "b")]);
        assert_eq!(Headers::from_map(&m).authority(), "b");
    }
}
