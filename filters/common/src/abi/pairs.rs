//! The Proxy-Wasm map serialisation (header maps, `proxy_send_local_response`
//! headers, `proxy_http_call` headers), read in place and written in one
//! allocation.
//!
//! Layout: `count: u32`, then `count` × (`name_len: u32`, `value_len: u32`),
//! then every name and value, each followed by a NUL byte; integers
//! little-endian. An empty buffer is an empty map.
//!
//! [`Pairs`] borrows names and values from the buffer (no allocation per
//! header) and never panics on a malformed buffer: it yields the pairs that
//! could be read and then reports [`Pairs::is_malformed`].

/// The pairs of a serialised map, borrowed from it, in order.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    buf: &'a [u8],
    count: usize,
    /// Index of the next pair.
    next: usize,
    /// Where the next pair's name starts.
    data: usize,
    malformed: bool,
}

#[inline]
fn word(buf: &[u8], at: usize) -> Option<usize> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

impl<'a> Pairs<'a> {
    /// Reads the header of `buf`; a count that the buffer cannot hold makes
    /// an empty, malformed map.
    pub fn new(buf: &'a [u8]) -> Pairs<'a> {
        let mut p = Pairs {
            buf,
            count: 0,
            next: 0,
            data: 0,
            malformed: false,
        };
        if buf.is_empty() {
            return p;
        }
        match word(buf, 0) {
            Some(n) if n <= (buf.len() - 4) / 8 => {
                p.count = n;
                p.data = 4 + n * 8;
            }
            _ => p.malformed = true,
        }
        p
    }

    /// How many pairs the buffer says it holds.
    pub fn declared_len(&self) -> usize {
        self.count
    }

    /// Whether reading stopped at a malformed entry (or header).
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    /// The first value of `name` (ASCII case-insensitive), from the start.
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        Pairs::new(self.buf)
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every pair, or `None` if the buffer is malformed anywhere.
    pub fn collect_all(buf: &'a [u8]) -> Option<Vec<(&'a [u8], &'a [u8])>> {
        let mut it = Pairs::new(buf);
        let mut out = Vec::with_capacity(it.count);
        for pair in it.by_ref() {
            out.push(pair);
        }
        (!it.malformed).then_some(out)
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.malformed || self.next >= self.count {
            return None;
        }
        let sizes = 4 + self.next * 8;
        let read = || -> Option<(&'a [u8], &'a [u8], usize)> {
            let (kl, vl) = (word(self.buf, sizes)?, word(self.buf, sizes + 4)?);
            let k_end = self.data.checked_add(kl)?;
            let v_start = k_end.checked_add(1)?;
            let v_end = v_start.checked_add(vl)?;
            let next = v_end.checked_add(1)?;
            if next > self.buf.len() {
                return None;
            }
            Some((&self.buf[self.data..k_end], &self.buf[v_start..v_end], next))
        };
        match read() {
            Some((k, v, next)) => {
                self.next += 1;
                self.data = next;
                Some((k, v))
            }
            None => {
                self.malformed = true;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.count - self.next.min(self.count)))
    }
}

/// The serialised size of `pairs`.
pub fn serialized_len<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> usize {
    pairs
        .iter()
        .fold(4, |n, (k, v)| n + 10 + k.as_ref().len() + v.as_ref().len())
}

/// Serialises `pairs` into `out` (appended).
pub fn serialize_into<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)], out: &mut Vec<u8>) {
    out.reserve(serialized_len(pairs));
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
}

/// Serialises `pairs` (`&[(&str, &str)]`, `&[(String, String)]`, bytes...).
pub fn serialize<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    serialize_into(pairs, &mut out);
    out
}

/// The serialisation of an empty map.
pub const EMPTY: [u8; 4] = [0; 4];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: [(&[u8], &[u8]); 4] = [
            (b":status", b"200"),
            (b"Content-Type", b"text/plain"),
            (b"x-empty", b""),
            (b"x-bin", b"\xff\x01"),
        ];
        let buf = serialize(&pairs);
        assert_eq!(buf.len(), serialized_len(&pairs));
        let got: Vec<_> = Pairs::new(&buf).collect();
        assert_eq!(got, pairs.to_vec());
        let p = Pairs::new(&buf);
        assert_eq!(p.declared_len(), 4);
        assert_eq!(p.get(b"content-type"), Some(&b"text/plain"[..]));
        assert_eq!(p.get(b"x-empty"), Some(&b""[..]));
        assert_eq!(p.get(b"missing"), None);
        assert!(!p.is_malformed());
        assert_eq!(Pairs::collect_all(&buf).unwrap(), pairs.to_vec());
    }

    #[test]
    fn empty_maps() {
        assert_eq!(Pairs::new(&[]).count(), 0);
        assert!(!Pairs::new(&[]).is_malformed());
        assert_eq!(Pairs::new(&EMPTY).count(), 0);
        assert_eq!(serialize::<&str, &str>(&[]), EMPTY.to_vec());
        assert_eq!(Pairs::collect_all(&EMPTY).unwrap().len(), 0);
    }

    #[test]
    fn strings_serialize_like_bytes() {
        let a = serialize(&[("a", "1"), ("bb", "22")]);
        let b = serialize(&[
            (String::from("a"), String::from("1")),
            ("bb".into(), "22".into()),
        ]);
        assert_eq!(a, b);
        assert_eq!(
            a,
            [
                2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b',
                b'b', 0, b'2', b'2', 0
            ]
        );
    }

    #[test]
    fn malformed_buffers_never_panic() {
        let good = serialize(&[("a", "1"), ("bb", "22")]);
        for cut in 1..good.len() {
            let mut it = Pairs::new(&good[..cut]);
            let n = it.by_ref().count();
            assert!(n < 2, "cut at {cut}");
            assert!(it.is_malformed(), "cut at {cut}");
            assert!(Pairs::collect_all(&good[..cut]).is_none());
        }
        // A count the buffer cannot hold.
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Pairs::new(&huge).count(), 0);
        assert!(Pairs::new(&huge).is_malformed());
        // A name length beyond the buffer: the pairs before it are read.
        let mut long = good.clone();
        long[12..16].copy_from_slice(&1000u32.to_le_bytes());
        let mut it = Pairs::new(&long);
        assert_eq!(it.next(), Some((&b"a"[..], &b"1"[..])));
        assert_eq!(it.next(), None);
        assert!(it.is_malformed());
        // Lengths that overflow.
        let mut wrap = good.clone();
        wrap[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        wrap[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Pairs::new(&wrap).count(), 0);
        assert_eq!(Pairs::new(&[1, 2, 3]).count(), 0);
    }
}
