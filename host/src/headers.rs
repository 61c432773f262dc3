//! Header maps with Envoy's semantics: names lower-cased, `get` returns the
//! first value, `add` appends a duplicate, `replace` sets (dropping other
//! values), `remove` removes all values.

/// Bytes stored inline when short (header names and most values), so that
/// building and cloning header maps rarely allocates.
#[derive(Clone)]
pub enum SmallBytes {
    Inline {
        len: u8,
        buf: [u8; SmallBytes::INLINE],
    },
    Heap(Box<[u8]>),
}

impl SmallBytes {
    /// Longest value kept inline.
    pub const INLINE: usize = 30;

    /// Copies `b`.
    pub fn new(b: &[u8]) -> SmallBytes {
        if b.len() <= Self::INLINE {
            let mut buf = [0u8; Self::INLINE];
            buf[..b.len()].copy_from_slice(b);
            SmallBytes::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            SmallBytes::Heap(b.into())
        }
    }

    /// Copies `b` lower-cased (ASCII).
    pub fn lowercase(b: &[u8]) -> SmallBytes {
        let mut s = SmallBytes::new(b);
        match &mut s {
            SmallBytes::Inline { len, buf } => buf[..*len as usize].make_ascii_lowercase(),
            SmallBytes::Heap(h) => h.make_ascii_lowercase(),
        }
        s
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, buf } => &buf[..*len as usize],
            SmallBytes::Heap(h) => h,
        }
    }
}

impl std::ops::Deref for SmallBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for SmallBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, o: &SmallBytes) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl Eq for SmallBytes {}
impl std::hash::Hash for SmallBytes {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h)
    }
}
impl PartialEq<[u8]> for SmallBytes {
    fn eq(&self, o: &[u8]) -> bool {
        self.as_slice() == o
    }
}
impl PartialEq<&[u8]> for SmallBytes {
    fn eq(&self, o: &&[u8]) -> bool {
        self.as_slice() == *o
    }
}
impl<const N: usize> PartialEq<[u8; N]> for SmallBytes {
    fn eq(&self, o: &[u8; N]) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl<const N: usize> PartialEq<&[u8; N]> for SmallBytes {
    fn eq(&self, o: &&[u8; N]) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl PartialEq<Vec<u8>> for SmallBytes {
    fn eq(&self, o: &Vec<u8>) -> bool {
        self.as_slice() == o.as_slice()
    }
}
impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> SmallBytes {
        SmallBytes::new(b)
    }
}
impl From<Vec<u8>> for SmallBytes {
    fn from(b: Vec<u8>) -> SmallBytes {
        if b.len() <= Self::INLINE {
            SmallBytes::new(&b)
        } else {
            SmallBytes::Heap(b.into_boxed_slice())
        }
    }
}

/// Whether stored (lower-case) name `k` equals `name` ignoring ASCII case,
/// without allocating.
fn name_eq(k: &[u8], name: &[u8]) -> bool {
    k.len() == name.len()
        && k.iter()
            .zip(name)
            .all(|(a, b)| *a == b.to_ascii_lowercase())
}

/// An ordered multi-map of header names and values (bytes; Envoy allows
/// non-UTF-8 values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(SmallBytes, SmallBytes)>,
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from pairs (names are lower-cased).
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.add(k.as_ref(), v.as_ref());
        }
        m
    }

    /// First value of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| name_eq(k, name))
            .map(|(_, v)| v.as_slice())
    }

    /// First value as text (lossy).
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`.
    pub fn get_all(&self, name: &[u8]) -> Vec<&[u8]> {
        self.entries
            .iter()
            .filter(|(k, _)| name_eq(k, name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// All values joined by `,` as Envoy's expression attributes show a
    /// repeated header.
    pub fn get_joined(&self, name: &[u8]) -> Option<Vec<u8>> {
        let all = self.get_all(name);
        if all.is_empty() {
            None
        } else {
            Some(all.join(&b","[..]))
        }
    }

    /// Appends a value (`proxy_add_header_map_value`).
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        self.entries
            .push((SmallBytes::lowercase(name), SmallBytes::new(value)));
    }

    /// Sets the value, replacing every existing one
    /// (`proxy_replace_header_map_value`). The first occurrence keeps its place.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        match self.entries.iter().position(|(k, _)| name_eq(k, name)) {
            Some(i) => {
                self.entries[i].1 = SmallBytes::new(value);
                let mut j = 0;
                self.entries.retain(|(k, _)| {
                    let keep = j == i || !name_eq(k, name);
                    j += 1;
                    keep
                });
            }
            None => self.add(name, value),
        }
    }

    /// Removes every value (`proxy_remove_header_map_value`).
    pub fn remove(&mut self, name: &[u8]) {
        self.entries.retain(|(k, _)| !name_eq(k, name));
    }

    /// Replaces the whole map (`proxy_set_header_map_pairs`).
    pub fn set_all(&mut self, pairs: Vec<(Vec<u8>, Vec<u8>)>) {
        self.entries = pairs
            .into_iter()
            .map(|(k, v)| (SmallBytes::lowercase(&k), SmallBytes::from(v)))
            .collect();
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(SmallBytes, SmallBytes)] {
        &self.entries
    }

    /// The entries as owned byte pairs.
    pub fn to_vec_pairs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Envoy's `byteSize()`: the sum of name and value lengths.
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// The map in the ABI's serialised form.
    pub fn serialize(&self) -> Vec<u8> {
        crate::pairs::encode(&self.entries)
    }

    /// Lossy text pairs (for reports).
    pub fn to_string_pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_semantics() {
        let mut m = HeaderMap::from_pairs([("X-A", "1"), ("b", "2"), ("x-a", "3")]);
        assert_eq!(m.get(b"x-a"), Some(&b"1"[..]));
        assert_eq!(m.get_all(b"X-A"), vec![&b"1"[..], &b"3"[..]]);
        assert_eq!(m.get_joined(b"x-a"), Some(b"1,3".to_vec()));
        m.add(b"B", b"4");
        assert_eq!(m.get_all(b"b").len(), 2);
        m.replace(b"x-a", b"9");
        assert_eq!(m.get_all(b"x-a"), vec![&b"9"[..]]);
        assert_eq!(m.entries()[0].0, b"x-a".to_vec());
        assert_eq!(SmallBytes::new(&[7u8; 40]).len(), 40);
        assert_eq!(
            SmallBytes::lowercase(b"X-Long-Header-Name-Beyond-Inline-Size"),
            b"x-long-header-name-beyond-inline-size".to_vec()
        );
        m.remove(b"b");
        assert!(m.get(b"b").is_none());
        m.replace(b"new", b"v");
        assert_eq!(m.get(b"new"), Some(&b"v"[..]));
        assert_eq!(m.byte_size(), 3 + 1 + 3 + 1);
    }
}
