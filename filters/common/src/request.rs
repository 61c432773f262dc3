//! The request as the filters' pure cores see it.
//!
//! The proxy-wasm glue reads all request headers with one host call and wraps
//! them in a [`HeaderMap`]; the cores ask it questions. Names are stored as the
//! host gives them (Envoy lower-cases header names), and lookups compare names
//! case-insensitively so that a core never depends on that detail.

/// An ordered multi-map of HTTP headers (pseudo-headers included).
///
/// All names and values live in one string; the map keeps where each pair
/// is. A map read from the host ([`HeaderMap::from_host_buffer`]) takes the
/// host's buffer over as that string without copying a header, so reading a
/// request costs two allocations however many headers it has.
#[derive(Clone, Default)]
pub struct HeaderMap {
    text: String,
    /// Per pair: name start, name length, value start, value length in `text`.
    spans: Vec<[u32; 4]>,
}

/// The pairs of a [`HeaderMap`], borrowed.
#[derive(Clone, Copy)]
pub struct PairsRef<'a> {
    map: &'a HeaderMap,
}

impl<'a> PairsRef<'a> {
    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let map = self.map;
        map.spans.iter().map(move |s| map.pair(s))
    }

    /// The pairs as owned strings.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.map.spans.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.map.spans.is_empty()
    }
}

impl std::fmt::Debug for HeaderMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.pairs().iter()).finish()
    }
}

impl PartialEq for HeaderMap {
    fn eq(&self, other: &Self) -> bool {
        self.spans.len() == other.spans.len() && self.pairs().iter().eq(other.pairs().iter())
    }
}

impl Eq for HeaderMap {}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        HeaderMap::default()
    }

    #[inline]
    fn pair(&self, s: &[u32; 4]) -> (&str, &str) {
        let at = |start: u32, len: u32| {
            let (start, len) = (start as usize, len as usize);
            self.text.get(start..start + len).unwrap_or("")
        };
        (at(s[0], s[1]), at(s[2], s[3]))
    }

    fn push(&mut self, name: &str, value: &str) {
        let n = self.text.len();
        self.text.push_str(name);
        self.text.push_str(value);
        let nl = name.len();
        self.spans
            .push([n as u32, nl as u32, (n + nl) as u32, value.len() as u32]);
    }

    /// Wraps pairs as the host returned them.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut m = HeaderMap {
            text: String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len()).sum()),
            spans: Vec::with_capacity(pairs.len()),
        };
        for (k, v) in &pairs {
            m.push(k, v);
        }
        m
    }

    /// Builds a map from borrowed pairs (tests, examples).
    pub fn from_slice(pairs: &[(&str, &str)]) -> Self {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.push(k, v);
        }
        m
    }

    /// Takes over a buffer in the Proxy-Wasm map encoding (see
    /// [`crate::abi::pairs`]) without copying the headers: the pair table at
    /// its start is blanked and the buffer becomes the map's text. Values that
    /// are not UTF-8 (Envoy allows any byte but NUL, CR and LF) are decoded
    /// lossily; a malformed buffer gives the pairs read before the damage.
    pub fn from_host_buffer(mut buf: Vec<u8>) -> Self {
        let mut spans = Vec::new();
        let mut table_end = 0;
        {
            let mut pairs = crate::abi::pairs::Pairs::new(&buf);
            spans.reserve(pairs.declared_len());
            let base = buf.as_ptr() as usize;
            for (k, v) in pairs.by_ref() {
                let (ks, vs) = (k.as_ptr() as usize - base, v.as_ptr() as usize - base);
                if table_end == 0 {
                    table_end = ks;
                }
                spans.push([ks as u32, k.len() as u32, vs as u32, v.len() as u32]);
            }
        }
        if spans.is_empty() || buf.len() > u32::MAX as usize {
            return HeaderMap::new();
        }
        // The table holds binary lengths; blank it so the buffer is text.
        buf[..table_end].fill(b' ');
        match String::from_utf8(buf) {
            Ok(text) => HeaderMap { text, spans },
            Err(e) => {
                let buf = e.into_bytes();
                let lossy = |s: u32, l: u32| {
                    String::from_utf8_lossy(&buf[s as usize..(s + l) as usize]).into_owned()
                };
                HeaderMap::from_pairs(
                    spans
                        .iter()
                        .map(|s| (lossy(s[0], s[1]), lossy(s[2], s[3])))
                        .collect(),
                )
            }
        }
    }

    /// The first value of `name`, as Envoy's `get` returns it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.spans.iter().find_map(|s| {
            let (k, v) = self.pair(s);
            k.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.spans.iter().filter_map(move |s| {
            let (k, v) = self.pair(s);
            k.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// How many times `name` occurs.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// Whether `name` is present at all.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All pairs in order.
    pub fn pairs(&self) -> PairsRef<'_> {
        PairsRef { map: self }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Replaces every value of `name` with one value (Envoy's `replace`).
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.push(&name.to_ascii_lowercase(), value);
    }

    /// Appends a value (Envoy's `add`).
    pub fn add(&mut self, name: &str, value: &str) {
        self.push(&name.to_ascii_lowercase(), value);
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        let text = &self.text;
        self.spans.retain(|s| {
            let (start, len) = (s[0] as usize, s[1] as usize);
            !text
                .get(start..start + len)
                .unwrap_or("")
                .eq_ignore_ascii_case(name)
        });
    }

    /// `:method`.
    pub fn method(&self) -> &str {
        self.get(":method").unwrap_or("")
    }
    /// `:path`, query included.
    pub fn path(&self) -> &str {
        self.get(":path").unwrap_or("")
    }
    /// `:path` without its query string or fragment.
    pub fn url_path(&self) -> &str {
        let p = self.path();
        let end = p.find(['?', '#']).unwrap_or(p.len());
        &p[..end]
    }
    /// The query string (after `?`, before `#`), if any.
    pub fn query(&self) -> Option<&str> {
        let p = self.path();
        let start = p.find('?')? + 1;
        let rest = &p[start..];
        Some(&rest[..rest.find('#').unwrap_or(rest.len())])
    }
    /// `:authority` (or `host` when a client sent HTTP/1.0 without it).
    pub fn authority(&self) -> &str {
        self.get(":authority")
            .or_else(|| self.get("host"))
            .unwrap_or("")
    }
    /// `:scheme`.
    pub fn scheme(&self) -> &str {
        self.get(":scheme").unwrap_or("")
    }

    /// The value of query parameter `name` (first occurrence, percent-decoded
    /// with `+` as space, as a form would send it).
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query()?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k, true) == name).then(|| percent_decode(v, true))
        })
    }

    /// The value of cookie `name` from the `cookie` header(s).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.get_all("cookie").find_map(|h| {
            h.split(';').find_map(|c| {
                let (k, v) = c.trim().split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"'))
            })
        })
    }
}

/// Percent-decodes `s` (invalid escapes are kept as written; the result is
/// lossy UTF-8). With `plus_as_space`, `+` decodes to a space.
pub fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> HeaderMap {
        HeaderMap::from_slice(&[
            (":method", "GET"),
            (":path", "/a/b?x=1&access_token=t%2Bk&y=a+b#frag"),
            (":authority", "api.example.com"),
            ("cookie", "a=1; session=abc"),
            ("x-dup", "one"),
            ("X-Dup", "two"),
        ])
    }

    #[test]
    fn takes_the_host_buffer_over() {
        let long = "v".repeat(300);
        let pairs = [
            (":path", "/a?b=1"),
            ("x-long", long.as_str()),
            ("X-Dup", "one"),
            ("x-dup", "two"),
        ];
        let buf = crate::abi::pairs::serialize(&pairs);
        let m = HeaderMap::from_host_buffer(buf);
        assert_eq!(m, HeaderMap::from_slice(&pairs));
        assert_eq!(m.get("x-long"), Some(long.as_str()));
        assert_eq!(m.get_all("x-dup").collect::<Vec<_>>(), vec!["one", "two"]);
        assert_eq!(m.url_path(), "/a");
        // Not UTF-8: decoded lossily.
        let mut buf = crate::abi::pairs::serialize(&[("x-bin", "a_b")]);
        let at = buf.len() - 3;
        buf[at] = 0xff;
        let m = HeaderMap::from_host_buffer(buf);
        assert_eq!(m.get("x-bin"), Some("a\u{fffd}b"));
        // Malformed or empty: no headers, no panic.
        assert!(HeaderMap::from_host_buffer(vec![9, 0, 0, 0, 1]).is_empty());
        assert!(HeaderMap::from_host_buffer(Vec::new()).is_empty());
    }

    #[test]
    fn lookups() {
        let r = req();
        assert_eq!(r.method(), "GET");
        assert_eq!(r.url_path(), "/a/b");
        assert_eq!(r.query(), Some("x=1&access_token=t%2Bk&y=a+b"));
        assert_eq!(r.query_param("access_token").as_deref(), Some("t+k"));
        assert_eq!(r.query_param("y").as_deref(), Some("a b"));
        assert_eq!(r.query_param("z"), None);
        assert_eq!(r.cookie("session"), Some("abc"));
        assert_eq!(r.get("x-dup"), Some("one"));
        assert_eq!(r.count("x-dup"), 2);
    }

    #[test]
    fn mutation() {
        let mut r = req();
        r.set("x-dup", "three");
        assert_eq!(r.get_all("x-dup").collect::<Vec<_>>(), vec!["three"]);
        r.add("x-dup", "four");
        assert_eq!(r.count("x-dup"), 2);
        r.remove("X-DUP");
        assert!(!r.contains("x-dup"));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("%41%2f%zz%", false), "A/%zz%");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
