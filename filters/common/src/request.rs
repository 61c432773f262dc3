//! The request as the filters' pure cores see it.
//!
//! The proxy-wasm glue reads all request headers with one host call and wraps
//! them in a [`HeaderMap`]; the cores ask it questions. Names are stored as the
//! host gives them (Envoy lower-cases header names), and lookups compare names
//! case-insensitively so that a core never depends on that detail.

/// An ordered multi-map of HTTP headers (pseudo-headers included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    pairs: Vec<(String, String)>,
}

impl HeaderMap {
    /// An empty map.
    pub fn new() -> Self {
        HeaderMap { pairs: Vec::new() }
    }

    /// Wraps pairs as the host returned them.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        HeaderMap { pairs }
    }

    /// Builds a map from borrowed pairs (tests, examples).
    pub fn from_slice(pairs: &[(&str, &str)]) -> Self {
        HeaderMap {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The first value of `name`, as Envoy's `get` returns it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Replaces every value of `name` with one value (Envoy's `replace`).
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.pairs
            .push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// Appends a value (Envoy's `add`).
    pub fn add(&mut self, name: &str, value: &str) {
        self.pairs
            .push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        self.pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
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
