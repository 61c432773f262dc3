//! Request path normalisation, as Envoy's HTTP connection manager does it for
//! Istio's `pathNormalization` modes, so that a DENY rule cannot be evaded and
//! an ALLOW rule cannot be widened by spelling the same path differently.
//!
//! Steps (on the raw bytes of `:path`):
//! 1. The query (`?…`) is set aside: it is not matched and is forwarded
//!    unchanged. A fragment (`#…`) is dropped.
//! 2. Percent escapes are decoded when they stand for an unreserved character
//!    (`A-Z a-z 0-9 - . _ ~`); other escapes are kept, with upper-case hex
//!    digits. `%00` is refused. `%2F` and `%5C` (encoded `/` and `\`) are
//!    refused, unless the mode decodes them to `/`. A `%` not followed by two
//!    hex digits is refused.
//! 3. `\` is treated as `/`. Bytes outside ASCII are percent-encoded; control
//!    characters and spaces are refused.
//! 4. Dot segments (`.` and `..`) are resolved as RFC 3986 §5.2.4 says.
//! 5. Runs of `/` are merged into one, if the mode says so (after step 4, as
//!    Envoy orders `normalize_path` and `merge_slashes`).
//!
//! The result is what every policy sees and, when it differs from what the
//! client sent, what the upstream receives.

use std::borrow::Cow;
use std::fmt;

/// How far normalisation goes — Istio's `meshConfig.pathNormalization` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum PathNormalization {
    /// RFC 3986 normalisation, `\` as `/`; `//` kept; `%2F`/`%5C` refused.
    Base,
    /// `BASE`, then runs of `/` merged into one (the default).
    #[default]
    MergeSlashes,
    /// `%2F` and `%5C` decoded to `/` first, then `MERGE_SLASHES`.
    DecodeAndMergeSlashes,
}

impl PathNormalization {
    fn merges(self) -> bool {
        !matches!(self, PathNormalization::Base)
    }
    fn decodes_slashes(self) -> bool {
        matches!(self, PathNormalization::DecodeAndMergeSlashes)
    }
}

/// Why a path was refused (the request is answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/` (and is not `*`).
    NotAbsolute,
    /// `%00` or a raw NUL.
    EncodedNul,
    /// `%2F` or `%5C` while the mode does not decode them.
    EncodedSlash,
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// A control character or a space.
    InvalidCharacter,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "path does not start with `/`",
            PathError::EncodedNul => "path contains an encoded NUL (%00)",
            PathError::EncodedSlash => "path contains an encoded slash or backslash (%2F, %5C)",
            PathError::InvalidEscape => "path contains an invalid percent escape",
            PathError::InvalidCharacter => "path contains a control character or a space",
        })
    }
}

/// A normalised request target (borrowing the request's own text when it
/// was already normal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    /// The normalised path, without query or fragment: what policies match.
    pub path: Cow<'a, str>,
    /// The query string as sent (without `?`), if there was one.
    pub query: Option<Cow<'a, str>>,
}

impl NormalizedPath<'_> {
    /// The `:path` to forward when it differs from `raw` (normalisation
    /// changed the path, or a fragment was dropped); `None` when `raw` can go
    /// as it is.
    pub fn forwarded_if_changed(&self, raw: &[u8]) -> Option<String> {
        if matches!(self.path, Cow::Borrowed(_)) && !raw.contains(&b'#') {
            return None;
        }
        let f = self.forwarded();
        (f.as_bytes() != raw).then_some(f)
    }

    /// The `:path` to forward: normalised path plus the original query
    /// (the fragment, if any, is dropped).
    pub fn forwarded(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.to_string(),
        }
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escape(out: &mut Vec<u8>, b: u8) {
    out.push(b'%');
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xF)]);
}

/// Normalises a raw `:path` value (query and fragment included).
pub fn normalize(raw: &[u8], mode: PathNormalization) -> Result<NormalizedPath<'_>, PathError> {
    let end = raw
        .iter()
        .position(|&c| c == b'?' || c == b'#')
        .unwrap_or(raw.len());
    let (path, rest) = raw.split_at(end);
    let query = if rest.first() == Some(&b'?') {
        let q = &rest[1..];
        let q_end = q.iter().position(|&c| c == b'#').unwrap_or(q.len());
        Some(String::from_utf8_lossy(&q[..q_end]))
    } else {
        None
    };
    if path == b"*" {
        return Ok(NormalizedPath {
            path: Cow::Borrowed("*"),
            query,
        });
    }
    if path.first() != Some(&b'/') && path.first() != Some(&b'\\') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path, mode.merges()) {
        // Nothing to decode, resolve or merge (most requests): borrowed.
        if let Ok(p) = std::str::from_utf8(path) {
            return Ok(NormalizedPath {
                path: Cow::Borrowed(p),
                query,
            });
        }
    }

    // Steps 2 and 3: decode, escape, validate.
    let mut decoded: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let c = path[i];
        match c {
            b'%' => {
                let (h, l) = match (
                    path.get(i + 1).copied().and_then(hex_value),
                    path.get(i + 2).copied().and_then(hex_value),
                ) {
                    (Some(h), Some(l)) => (h, l),
                    _ => return Err(PathError::InvalidEscape),
                };
                let v = h << 4 | l;
                if v == 0 {
                    return Err(PathError::EncodedNul);
                } else if v == b'/' || v == b'\\' {
                    if !mode.decodes_slashes() {
                        return Err(PathError::EncodedSlash);
                    }
                    decoded.push(b'/');
                } else if is_unreserved(v) {
                    decoded.push(v);
                } else {
                    push_escape(&mut decoded, v);
                }
                i += 3;
                continue;
            }
            b'\\' => decoded.push(b'/'),
            0 => return Err(PathError::EncodedNul),
            0x01..=0x20 | 0x7F => return Err(PathError::InvalidCharacter),
            0x80..=0xFF => push_escape(&mut decoded, c),
            _ => decoded.push(c),
        }
        i += 1;
    }

    // Step 4: dot segments, on segments between slashes.
    let resolved = remove_dot_segments(&decoded);
    // Step 5: merge slashes.
    let out = if mode.merges() {
        merge_slashes(&resolved)
    } else {
        resolved
    };
    // Every byte is ASCII by construction (non-ASCII was escaped).
    let path = Cow::Owned(String::from_utf8(out).unwrap_or_default());
    Ok(NormalizedPath { path, query })
}

/// Whether `path` (starting with `/`) is already in normal form: plain
/// printable ASCII without `%` or `\\`, no `.`/`..` segment, and no `//` when
/// slashes are merged.
fn is_normal(path: &[u8], merge: bool) -> bool {
    let mut prev = 0u8;
    let mut seg_start = 0usize;
    for (i, &c) in path.iter().enumerate() {
        if !(0x21..0x7f).contains(&c) || c == b'%' || c == b'\\' {
            return false;
        }
        if c == b'/' {
            if merge && prev == b'/' {
                return false;
            }
            if is_dot_segment(&path[seg_start..i]) {
                return false;
            }
            seg_start = i + 1;
        }
        prev = c;
    }
    !is_dot_segment(&path[seg_start..])
}

fn is_dot_segment(seg: &[u8]) -> bool {
    seg == b"." || seg == b".."
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments vanish, `..` removes
/// the segment before it (never above the root). A trailing `.` or `..`
/// leaves a trailing `/`, as the RFC says (`/a/b/..` is `/a/`).
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    // Segments after the leading '/'.
    let body = &path[1..];
    let mut segments: Vec<&[u8]> = Vec::new();
    let parts: Vec<&[u8]> = body.split(|&c| c == b'/').collect();
    let last = parts.len() - 1;
    let mut trailing_slash = false;
    for (n, seg) in parts.iter().enumerate() {
        match *seg {
            b"." => trailing_slash = n == last,
            b".." => {
                segments.pop();
                trailing_slash = n == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    out
}

fn merge_slashes(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &c in path {
        if c == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathNormalization::*;

    fn norm(raw: &str, mode: PathNormalization) -> Result<String, PathError> {
        normalize(raw.as_bytes(), mode).map(|n| n.path.into_owned())
    }

    #[test]
    fn table() {
        let cases: &[(&str, PathNormalization, Result<&str, PathError>)] = &[
            ("/", Base, Ok("/")),
            ("/a/b", Base, Ok("/a/b")),
            ("/a/b/", Base, Ok("/a/b/")),
            // query and fragment
            ("/admin?x=1", Base, Ok("/admin")),
            ("/admin#frag", Base, Ok("/admin")),
            ("/admin?/../public", Base, Ok("/admin")),
            ("/public#/../admin", Base, Ok("/public")),
            ("/a?b#c?d", Base, Ok("/a")),
            // dot segments
            ("/a/./b", Base, Ok("/a/b")),
            ("/a/../b", Base, Ok("/b")),
            ("/../admin", Base, Ok("/admin")),
            ("/../../admin", Base, Ok("/admin")),
            ("/a/b/..", Base, Ok("/a/")),
            ("/a/b/.", Base, Ok("/a/b/")),
            ("/..", Base, Ok("/")),
            ("/.", Base, Ok("/")),
            ("/a/...", Base, Ok("/a/...")),
            ("/a/.b", Base, Ok("/a/.b")),
            ("/a/..b/c", Base, Ok("/a/..b/c")),
            // percent-encoded unreserved characters are decoded
            ("/%61dmin", Base, Ok("/admin")),
            ("/%41dmin", Base, Ok("/Admin")),
            ("/api/%2e%2e/admin", Base, Ok("/admin")),
            ("/api/%2E%2E/admin", Base, Ok("/admin")),
            ("/api/.%2e/admin", Base, Ok("/admin")),
            ("/api/%2e/admin", Base, Ok("/api/admin")),
            ("/%7Euser", Base, Ok("/~user")),
            // reserved escapes are kept, hex upper-cased; no double decoding
            ("/a%3fb", Base, Ok("/a%3Fb")),
            ("/a%20b", Base, Ok("/a%20b")),
            ("/a%252Fb", Base, Ok("/a%252Fb")),
            ("/a%25", Base, Ok("/a%25")),
            // backslash
            ("\\admin", Base, Ok("/admin")),
            ("/api\\..\\admin", Base, Ok("/admin")),
            ("/a\\b", Base, Ok("/a/b")),
            // slashes
            ("//admin", Base, Ok("//admin")),
            ("//admin", MergeSlashes, Ok("/admin")),
            ("/a//b///c", MergeSlashes, Ok("/a/b/c")),
            ("/a//../b", Base, Ok("/a/b")),
            ("/a//../b", MergeSlashes, Ok("/a/b")),
            ("/a/b//", MergeSlashes, Ok("/a/b/")),
            // encoded slashes
            ("/a%2Fb", Base, Err(PathError::EncodedSlash)),
            ("/a%2fb", MergeSlashes, Err(PathError::EncodedSlash)),
            ("/a%5Cb", Base, Err(PathError::EncodedSlash)),
            ("/a%5cb", MergeSlashes, Err(PathError::EncodedSlash)),
            ("/a%2Fb", DecodeAndMergeSlashes, Ok("/a/b")),
            ("/a%5cb", DecodeAndMergeSlashes, Ok("/a/b")),
            ("/api%2F..%2Fadmin", DecodeAndMergeSlashes, Ok("/admin")),
            ("/api/%2F%2Fadmin", DecodeAndMergeSlashes, Ok("/api/admin")),
            // NUL
            ("/a%00b", Base, Err(PathError::EncodedNul)),
            ("/a%00b", DecodeAndMergeSlashes, Err(PathError::EncodedNul)),
            ("/a\0b", Base, Err(PathError::EncodedNul)),
            // bad escapes and characters
            ("/a%zzb", Base, Err(PathError::InvalidEscape)),
            ("/a%4", Base, Err(PathError::InvalidEscape)),
            ("/a%", Base, Err(PathError::InvalidEscape)),
            ("/a b", Base, Err(PathError::InvalidCharacter)),
            ("/a\tb", Base, Err(PathError::InvalidCharacter)),
            ("/a\x7fb", Base, Err(PathError::InvalidCharacter)),
            // non-ASCII is escaped
            ("/caf\u{e9}", Base, Ok("/caf%C3%A9")),
            // absolute-form and relative paths are refused
            ("admin", Base, Err(PathError::NotAbsolute)),
            ("http://x/admin", Base, Err(PathError::NotAbsolute)),
            ("", Base, Err(PathError::NotAbsolute)),
            ("?x", Base, Err(PathError::NotAbsolute)),
            ("*", Base, Ok("*")),
        ];
        for (raw, mode, want) in cases {
            let got = norm(raw, *mode);
            let want = want.map(str::to_string);
            assert_eq!(got, want, "{raw:?} in {mode:?}");
        }
    }

    #[test]
    fn query_is_kept_for_forwarding() {
        let n = normalize(b"/a/../b?x=%2F&y#frag", PathNormalization::Base).unwrap();
        assert_eq!(n.path, "/b");
        assert_eq!(n.query.as_deref(), Some("x=%2F&y"));
        assert_eq!(
            n.forwarded_if_changed(b"/a/../b?x=%2F&y#frag").as_deref(),
            Some("/b?x=%2F&y")
        );
        let same = normalize(b"/b?q", PathNormalization::Base).unwrap();
        assert_eq!(same.forwarded_if_changed(b"/b?q"), None);
        let frag = normalize(b"/b?q#f", PathNormalization::Base).unwrap();
        assert_eq!(
            frag.forwarded_if_changed(b"/b?q#f").as_deref(),
            Some("/b?q")
        );
        assert_eq!(n.forwarded(), "/b?x=%2F&y");
        let n = normalize(b"/b#frag", PathNormalization::Base).unwrap();
        assert_eq!(n.forwarded(), "/b");
        let n = normalize(b"/b?", PathNormalization::Base).unwrap();
        assert_eq!(n.forwarded(), "/b?");
    }

    #[test]
    fn idempotent() {
        for raw in [
            "/a/../b/./c//d",
            "/%61/%2e%2e/x%3f",
            "\\a\\..\\b",
            "/caf\u{e9}/x",
            "/a/b/..",
        ] {
            for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
                let once = norm(raw, mode).unwrap();
                let twice = norm(&once, mode).unwrap();
                assert_eq!(once, twice, "{raw} {mode:?}");
            }
        }
    }

    #[test]
    fn result_never_contains_dot_segments() {
        // Exhaustive over short paths built from tricky pieces.
        let pieces = ["/", ".", "..", "%2e", "a", "\\", "%2F", "//"];
        let mut stack: Vec<String> = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &stack {
                for p in pieces {
                    next.push(format!("{s}{p}"));
                }
            }
            stack = next;
        }
        for s in stack {
            let raw = format!("/{s}");
            // The fast path only takes paths the full procedure leaves alone.
            for merge in [false, true] {
                if is_normal(raw.as_bytes(), merge) {
                    let slow = remove_dot_segments(raw.as_bytes());
                    let slow = if merge { merge_slashes(&slow) } else { slow };
                    assert_eq!(slow, raw.as_bytes(), "{raw} merge={merge}");
                }
            }
            for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
                if let Ok(n) = norm(&raw, mode) {
                    assert!(n.starts_with('/'), "{raw} -> {n}");
                    for seg in n.split('/') {
                        assert!(seg != "." && seg != "..", "{raw} -> {n}");
                    }
                    assert!(
                        !n.contains('\\') && !n.contains("%2e") && !n.contains("%2E"),
                        "{raw} -> {n}"
                    );
                    if mode != Base {
                        assert!(!n.contains("//"), "{raw} -> {n}");
                    }
                }
            }
        }
    }
}
