//! Header maps with Envoy's semantics: names lower-cased, `get` returns the
//! first value, `add` appends a duplicate, `replace` sets (dropping other
//! values), `remove` removes all values.

/// An ordered multi-map of header names and values (bytes; Envoy allows
/// non-UTF-8 values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn lower(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from string pairs (names are lower-cased).
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.add(k.as_ref(), v.as_ref());
        }
        m
    }

    /// First value of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        let l = lower(name);
        self.entries.iter().find(|(k, _)| *k == l).map(|(_, v)| v.as_slice())
    }

    /// First value as text (lossy).
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`.
    pub fn get_all(&self, name: &[u8]) -> Vec<&[u8]> {
        let l = lower(name);
        self.entries.iter().filter(|(k, _)| *k == l).map(|(_, v)| v.as_slice()).collect()
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
        self.entries.push((lower(name), value.to_vec()));
    }

    /// Sets the value, replacing every existing one
    /// (`proxy_replace_header_map_value`). The first occurrence keeps its place.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        let l = lower(name);
        match self.entries.iter().position(|(k, _)| *k == l) {
            Some(i) => {
                self.entries[i].1 = value.to_vec();
                let mut j = 0;
                self.entries.retain(|(k, _)| {
                    let keep = *k != l || j == i;
                    j += 1;
                    keep
                });
            }
            None => self.entries.push((l, value.to_vec())),
        }
    }

    /// Removes every value (`proxy_remove_header_map_value`).
    pub fn remove(&mut self, name: &[u8]) {
        let l = lower(name);
        self.entries.retain(|(k, _)| *k != l);
    }

    /// Replaces the whole map (`proxy_set_header_map_pairs`).
    pub fn set_all(&mut self, pairs: Vec<(Vec<u8>, Vec<u8>)>) {
        self.entries = pairs.into_iter().map(|(k, v)| (lower(&k), v)).collect();
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.entries
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
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
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
        m.remove(b"b");
        assert!(m.get(b"b").is_none());
        m.replace(b"new", b"v");
        assert_eq!(m.get(b"new"), Some(&b"v"[..]));
        assert_eq!(m.byte_size(), 3 + 1 + 3 + 1);
    }
}
