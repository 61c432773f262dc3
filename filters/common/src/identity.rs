//! The verified caller identity that the JWT filter hands to later filters,
//! and its one decoder.
//!
//! After a token verifies, `jwt_authn.wasm` stores an [`Identity`] in
//! per-stream filter state with `proxy_set_property([IDENTITY_PROPERTY], ..)`.
//! Envoy keeps it under the filter-state key `wasm.wasmesh.identity`; later
//! filters in the same chain (RBAC, header router, fault injection, custom
//! metrics) read it with `proxy_get_property([IDENTITY_PROPERTY])`. A client
//! cannot set filter state, so — unlike a header — this cannot be forged from
//! outside. When several providers verified tokens, the identity of the first
//! one in requirement order is stored.
//!
//! # Encoding
//!
//! One compact JSON object, written once per verified token by
//! [`Identity::to_json`] (cached with the token's verdict, so a cached token
//! costs no encoding) with the members in this order and no whitespace:
//!
//! ```text
//! {"provider":"idp","iss":"https://idp","sub":"alice","aud":["api"],"azp":"",
//!  "principal":"https://idp/alice","claims":{ ...every claim of the payload... }}
//! ```
//!
//! `provider`, `iss` and `principal` are strings and required; `sub` and
//! `azp` strings (empty when absent); `aud` a list of strings (a reader also
//! accepts one string); `claims` the token's payload as verified, written
//! last: when every other member came before it, a reader stops there (so
//! finding the identity costs the few short members before the claims,
//! however many claims the token has); in any other order (a hand-written
//! identity with sorted keys, say) the claims are skipped and the rest read. JSON text
//! is kept (rather than a binary form) because it is what Envoy's access
//! log, `wasmesh serve`'s admin view and the scenario tests show and what a
//! test or an operator can write by hand.
//!
//! # Decoding
//!
//! [`IdentityView`] is the only reader: it borrows the bytes the host handed
//! over, walks the top-level members once (up to `claims` when it comes
//! last; the required members present and strings), remembers where they are, and builds no
//! tree and allocates nothing. A claim is found by skipping over the claims
//! before it (values skipped by their strings and brackets, nesting at most
//! [`MAX_DEPTH`]; [`IdentityView::claim`]); claims a filter never asks for are
//! never decoded. What is read is checked when it is read (escapes, UTF-8,
//! number syntax): the document comes from the JWT filter (a client cannot
//! set filter state), so a value that is malformed anyway reads as absent
//! rather than failing the whole identity. Strings are borrowed unless they
//! contain escapes. A member that occurs twice is read at its first
//! occurrence (the JWT filter never writes duplicates).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The single-segment property path under which the identity is stored.
pub const IDENTITY_PROPERTY: &str = "wasmesh.identity";

/// Deepest nesting of arrays and objects an identity may have (serde_json's
/// own limit is 128).
pub const MAX_DEPTH: usize = 64;

/// Who the caller is, as proven by a verified JWT: what the JWT filter
/// writes ([`Identity::to_json`]). Readers use [`IdentityView`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Name of the `jwtRules` provider that verified the token.
    pub provider: String,
    /// `iss` claim.
    pub iss: String,
    /// `sub` claim (empty when absent).
    #[serde(default)]
    pub sub: String,
    /// `aud` claim as a list (a single string becomes one element).
    #[serde(default)]
    pub aud: Vec<String>,
    /// `azp` claim (the presenter), empty when absent.
    #[serde(default)]
    pub azp: String,
    /// Istio's request principal: `<iss>/<sub>`.
    pub principal: String,
    /// Every claim of the payload, as verified.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

impl Identity {
    /// The encoding stored in filter state (see the module documentation).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One JSON value inside an identity, borrowed: its exact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonRef<'a> {
    raw: &'a [u8],
}

/// A scalar claim value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar<'a> {
    /// A string, unescaped.
    Str(Cow<'a, str>),
    /// A number, as written (the JWT filter writes serde_json's canonical
    /// form: integers in decimal, fractions as Rust prints an `f64`).
    Num(&'a str),
    /// `true` or `false`.
    Bool(bool),
}

impl Scalar<'_> {
    /// The value as text: a string itself, a number as written, a boolean
    /// `true`/`false`.
    pub fn text(&self) -> &str {
        match self {
            Scalar::Str(s) => s,
            Scalar::Num(n) => n,
            Scalar::Bool(true) => "true",
            Scalar::Bool(false) => "false",
        }
    }

    /// Whether this is an integer that fits `i64` or `u64` (a number written
    /// without fraction or exponent).
    pub fn is_integer(&self) -> bool {
        match self {
            Scalar::Num(n) => n.parse::<i64>().is_ok() || n.parse::<u64>().is_ok(),
            _ => false,
        }
    }
}

impl<'a> JsonRef<'a> {
    /// The value's JSON text.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the value is an object.
    pub fn is_object(&self) -> bool {
        self.raw.first() == Some(&b'{')
    }

    /// Whether the value is an array.
    pub fn is_array(&self) -> bool {
        self.raw.first() == Some(&b'[')
    }

    /// The member `key` of an object (`None` for other values).
    pub fn get(&self, key: &str) -> Option<JsonRef<'a>> {
        if !self.is_object() {
            return None;
        }
        let mut members = Members::new(self.raw);
        members.find(|(k, _)| key_is(k, key)).map(|(_, v)| v)
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self.raw.first() {
            Some(b'"') => unescape(&self.raw[1..self.raw.len() - 1]),
            _ => None,
        }
    }

    /// The value as a scalar (string, number, boolean); `None` for arrays,
    /// objects and `null`.
    pub fn scalar(&self) -> Option<Scalar<'a>> {
        match self.raw.first()? {
            b'"' => self.as_str().map(Scalar::Str),
            b't' if self.raw == b"true" => Some(Scalar::Bool(true)),
            b'f' if self.raw == b"false" => Some(Scalar::Bool(false)),
            b'-' | b'0'..=b'9' if is_number(self.raw) => {
                std::str::from_utf8(self.raw).ok().map(Scalar::Num)
            }
            _ => None,
        }
    }

    /// The elements of an array (nothing for other values).
    pub fn elements(&self) -> impl Iterator<Item = JsonRef<'a>> + 'a {
        let body = if self.is_array() {
            &self.raw[1..self.raw.len() - 1]
        } else {
            &[][..]
        };
        let (mut at, mut first) = (0, true);
        std::iter::from_fn(move || {
            at = skip_ws(body, at);
            if !std::mem::take(&mut first) {
                // Elements after the first are preceded by a comma.
                if body.get(at) != Some(&b',') {
                    return None;
                }
                at = skip_ws(body, at + 1);
            }
            if at >= body.len() {
                return None;
            }
            let end = skip_value(body, at)?;
            let v = JsonRef {
                raw: &body[at..end],
            };
            at = end;
            Some(v)
        })
    }

    /// The scalar values of a claim: a scalar is one value, an array each of
    /// its scalar elements; objects and `null` give nothing.
    pub fn scalars(&self) -> impl Iterator<Item = Scalar<'a>> + 'a {
        let me = *self;
        let single = if me.is_array() { None } else { me.scalar() };
        let list = me.is_array().then(|| me.elements()).into_iter().flatten();
        single.into_iter().chain(list.filter_map(|e| e.scalar()))
    }
}

/// The members of an object's text (`{...}`), already validated.
struct Members<'a> {
    obj: &'a [u8],
    at: usize,
}

impl<'a> Members<'a> {
    fn new(obj: &'a [u8]) -> Self {
        Members { obj, at: 1 }
    }
}

impl<'a> Members<'a> {
    /// The next member's key (raw text between the quotes) and where its
    /// value starts; the value is not skipped yet.
    fn next_key(&mut self) -> Option<(&'a [u8], usize)> {
        let b = self.obj;
        let mut at = skip_ws(b, self.at);
        if self.at > 1 {
            // Members after the first are preceded by a comma.
            if b.get(at) != Some(&b',') {
                return None;
            }
            at = skip_ws(b, at + 1);
        }
        if b.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(b, at)?;
        let key = &b[at + 1..key_end - 1];
        at = skip_ws(b, key_end);
        if b.get(at) != Some(&b':') {
            return None;
        }
        Some((key, skip_ws(b, at + 1)))
    }

    /// The value starting at `v_start`, moving past it.
    fn value(&mut self, v_start: usize) -> Option<JsonRef<'a>> {
        let v_end = skip_value(self.obj, v_start)?;
        self.at = v_end;
        Some(JsonRef {
            raw: &self.obj[v_start..v_end],
        })
    }
}

impl<'a> Iterator for Members<'a> {
    /// The key's raw text (between the quotes) and the value.
    type Item = (&'a [u8], JsonRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, v_start) = self.next_key()?;
        Some((key, self.value(v_start)?))
    }
}

/// Whether a key's raw text equals `name` (keys with escapes are compared
/// unescaped).
fn key_is(raw: &[u8], name: &str) -> bool {
    if !raw.contains(&b'\\') {
        return raw == name.as_bytes();
    }
    unescape(raw).is_some_and(|k| k == name)
}

/// The verified identity as stored, read in place (see the module
/// documentation). Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityView<'a> {
    provider: JsonRef<'a>,
    iss: JsonRef<'a>,
    principal: JsonRef<'a>,
    sub: Option<JsonRef<'a>>,
    aud: Option<JsonRef<'a>>,
    azp: Option<JsonRef<'a>>,
    claims: Option<JsonRef<'a>>,
}

impl<'a> IdentityView<'a> {
    /// Finds the top-level members (up to `claims` when every other member
    /// came before it): `None` unless `bytes` is a JSON object whose
    /// `provider`, `iss` and `principal` are strings (`sub`, `azp` must be
    /// strings and `claims` an object when present); unless reading stopped
    /// at `claims`, nothing may follow the object.
    pub fn parse(bytes: &'a [u8]) -> Option<IdentityView<'a>> {
        let start = skip_ws(bytes, 0);
        if bytes.get(start) != Some(&b'{') {
            return None;
        }
        let obj = &bytes[start..];
        let (mut provider, mut iss, mut principal) = (None, None, None);
        let (mut sub, mut aud, mut azp, mut claims) = (None, None, None, None);
        let mut members = Members::new(obj);
        let mut closed = false;
        while let Some((k, v_start)) = members.next_key() {
            if k == b"claims" {
                if obj.get(v_start) != Some(&b'{') {
                    return None;
                }
                let seen = [&provider, &iss, &principal, &sub, &aud, &azp];
                if claims.is_none() && seen.iter().all(|m| m.is_some()) {
                    // Every other member came first (the JWT filter's
                    // order): the claims are not skipped, lookups stop at
                    // their end.
                    claims = Some(JsonRef {
                        raw: &obj[v_start..],
                    });
                    closed = true;
                    break;
                }
            }
            let v = members.value(v_start)?;
            let slot = match k {
                b"provider" => &mut provider,
                b"iss" => &mut iss,
                b"principal" => &mut principal,
                b"sub" => &mut sub,
                b"aud" => &mut aud,
                b"azp" => &mut azp,
                b"claims" => &mut claims,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v);
            }
        }
        if !closed {
            // The object must end where its members end, with nothing after it.
            let close = skip_ws(obj, members.at);
            if obj.get(close) != Some(&b'}') || skip_ws(obj, close + 1) != obj.len() {
                return None;
            }
        }
        let string = |v: &Option<JsonRef<'a>>| v.is_none_or(|v| v.raw.first() == Some(&b'"'));
        let strings = [&provider, &iss, &principal, &sub, &azp];
        if !strings.into_iter().all(string) {
            return None;
        }
        Some(IdentityView {
            provider: provider?,
            iss: iss?,
            principal: principal?,
            sub,
            aud,
            azp,
            claims,
        })
    }

    fn text(v: Option<JsonRef<'a>>) -> Cow<'a, str> {
        v.and_then(|v| v.as_str()).unwrap_or(Cow::Borrowed(""))
    }

    /// The `jwtRules` provider that verified the token.
    pub fn provider(&self) -> Cow<'a, str> {
        Self::text(Some(self.provider))
    }

    /// The `iss` claim.
    pub fn iss(&self) -> Cow<'a, str> {
        Self::text(Some(self.iss))
    }

    /// The `sub` claim (empty when absent).
    pub fn sub(&self) -> Cow<'a, str> {
        Self::text(self.sub)
    }

    /// The `azp` claim (empty when absent).
    pub fn azp(&self) -> Cow<'a, str> {
        Self::text(self.azp)
    }

    /// Istio's request principal, `<iss>/<sub>`.
    pub fn principal(&self) -> Cow<'a, str> {
        Self::text(Some(self.principal))
    }

    /// The audiences: each string of `aud` (one string is one audience).
    pub fn audiences(&self) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        self.aud.into_iter().flat_map(|a| {
            a.as_str()
                .into_iter()
                .chain(a.elements().filter_map(|e| e.as_str()))
        })
    }

    /// The claim at a nested path (`["realm_access", "roles"]`); only the
    /// members on the way are looked at.
    pub fn claim<S: AsRef<str>>(&self, path: &[S]) -> Option<JsonRef<'a>> {
        let mut v = self.claims?;
        if path.is_empty() {
            return None;
        }
        for seg in path {
            v = v.get(seg.as_ref())?;
        }
        Some(v)
    }
}

// ---- the scanner ----------------------------------------------------------
//
// Values are skipped structurally (strings, brackets) without checking the
// grammar inside them: the document is written by the JWT filter with
// serde_json and cannot be set by a client. What a reader takes out is
// checked when it is read (a string's escapes and UTF-8, a number's form,
// `true`/`false`); malformed content reads as absent, never as a panic.

fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(at) {
        at += 1;
    }
    at
}

/// The end (exclusive) of the string starting at `b[at] == '"'`.
fn skip_string(b: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        i += b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// The end (exclusive) of the value starting at `b[at]` (no leading
/// whitespace), or `None` when it does not end or nests deeper than
/// [`MAX_DEPTH`].
fn skip_value(b: &[u8], at: usize) -> Option<usize> {
    match *b.get(at)? {
        b'"' => skip_string(b, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        b'}' | b']' | b',' | b':' => None,
        _ => {
            let len = b[at..]
                .iter()
                .position(|&c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(b.len() - at);
            Some(at + len)
        }
    }
}

fn skip_digits(b: &[u8], mut at: usize) -> (usize, bool) {
    let start = at;
    while b.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    (at, at > start)
}

/// Whether `b` is exactly one JSON number.
fn is_number(b: &[u8]) -> bool {
    let mut at = usize::from(b.first() == Some(&b'-'));
    let (end, any) = skip_digits(b, at);
    if !any || (b[at] == b'0' && end > at + 1) {
        return false;
    }
    at = end;
    if b.get(at) == Some(&b'.') {
        let (end, any) = skip_digits(b, at + 1);
        if !any {
            return false;
        }
        at = end;
    }
    if let Some(b'e' | b'E') = b.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = b.get(at) {
            at += 1;
        }
        let (end, any) = skip_digits(b, at);
        if !any {
            return false;
        }
        at = end;
    }
    at == b.len()
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// The text of a string's body (between the quotes, already checked by
/// [`skip_string`]), borrowed when it has no escapes; `None` if it is not
/// UTF-8 or has a lone surrogate.
fn unescape(body: &[u8]) -> Option<Cow<'_, str>> {
    if !body.contains(&b'\\') {
        return std::str::from_utf8(body).ok().map(Cow::Borrowed);
    }
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let run = body[i..]
            .iter()
            .position(|&c| c == b'\\')
            .unwrap_or(body.len() - i);
        out.push_str(std::str::from_utf8(&body[i..i + run]).ok()?);
        i += run;
        if i >= body.len() {
            break;
        }
        let c = *body.get(i + 1)?;
        i += 2;
        out.push(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(&body[i..])?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if body.get(i..i + 2) != Some(b"\\u") {
                        return None;
                    }
                    let lo = hex4(&body[i + 2..])?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                char::from_u32(code)?
            }
            _ => return None,
        });
    }
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Identity {
        let mut claims = Map::new();
        claims.insert("groups".into(), json!(["a", "b", 7, true, null, {"x": 1}]));
        claims.insert(
            "realm".into(),
            json!({"roles": ["admin"], "level": 3, "ratio": 1.5, "on": false}),
        );
        claims.insert("esc".into(), json!("a\"b\\c\u{e9}\u{1F600}\n"));
        Identity {
            provider: "idp".into(),
            iss: "https://idp".into(),
            sub: "alice".into(),
            aud: vec!["api".into(), "web".into()],
            azp: String::new(),
            principal: "https://idp/alice".into(),
            claims,
        }
    }

    fn texts(v: JsonRef) -> Vec<String> {
        v.scalars().map(|s| s.text().to_string()).collect()
    }

    #[test]
    fn reads_what_the_writer_wrote() {
        let json = sample().to_json();
        let id = IdentityView::parse(json.as_bytes()).unwrap();
        assert_eq!(id.provider(), "idp");
        assert_eq!(id.iss(), "https://idp");
        assert_eq!(id.sub(), "alice");
        assert_eq!(id.azp(), "");
        assert_eq!(id.principal(), "https://idp/alice");
        assert_eq!(id.audiences().collect::<Vec<_>>(), vec!["api", "web"]);
        assert_eq!(
            texts(id.claim(&["groups"]).unwrap()),
            vec!["a", "b", "7", "true"]
        );
        assert_eq!(texts(id.claim(&["realm", "roles"]).unwrap()), vec!["admin"]);
        assert_eq!(texts(id.claim(&["realm", "level"]).unwrap()), vec!["3"]);
        assert_eq!(texts(id.claim(&["realm", "ratio"]).unwrap()), vec!["1.5"]);
        assert_eq!(texts(id.claim(&["realm", "on"]).unwrap()), vec!["false"]);
        assert!(id.claim(&["realm"]).unwrap().is_object());
        assert!(texts(id.claim(&["realm"]).unwrap()).is_empty());
        assert!(id.claim(&["realm", "missing"]).is_none());
        assert!(id.claim(&["groups", "x"]).is_none());
        assert!(id.claim::<&str>(&[]).is_none());
        assert_eq!(
            id.claim(&["esc"]).unwrap().as_str().unwrap(),
            "a\"b\\c\u{e9}\u{1F600}\n"
        );
        let level = id.claim(&["realm", "level"]).unwrap().scalar().unwrap();
        assert!(level.is_integer());
        let ratio = id.claim(&["realm", "ratio"]).unwrap().scalar().unwrap();
        assert!(!ratio.is_integer());
        // Strings without escapes are borrowed.
        assert!(matches!(id.principal(), Cow::Borrowed(_)));
    }

    #[test]
    fn accepts_hand_written_forms() {
        let id = IdentityView::parse(
            br#" { "provider" : "p", "iss":"i", "principal":"i/", "aud":"one",
                   "claims": {"k\u0065y": [ 1 , -2.5e3 ], "s": "\ud83d\ude00"} } "#,
        )
        .unwrap();
        assert_eq!(id.sub(), "");
        assert_eq!(id.audiences().collect::<Vec<_>>(), vec!["one"]);
        assert_eq!(texts(id.claim(&["key"]).unwrap()), vec!["1", "-2.5e3"]);
        assert_eq!(texts(id.claim(&["s"]).unwrap()), vec!["\u{1F600}"]);
    }

    #[test]
    fn refuses_what_is_not_an_identity() {
        for bad in [
            &b"not json"[..],
            b"[1]",
            b"",
            br#"{"provider":"p","principal":"x"}"#,
            br#"{"provider":"p","iss":"i","principal":1}"#,
            br#"{"provider":"p","iss":"i","principal":"x","claims":[]}"#,
            br#"{"provider":"p","iss":"i","principal":"x"} x"#,
            br#"{"provider":"p","iss":"i","principal":"x""#,
            br#"{"provider":"p","iss":"i","principal":"x",}"#,
            br#"{"provider":"p","iss":"i","principal":"x" "sub":"s"}"#,
        ] {
            assert!(
                IdentityView::parse(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Too deep: refused when the claims are skipped, absent when read.
        let deep = |head: &str| {
            format!(
                r#"{{{head}"claims":{{"a":{}1{}}}}}"#,
                "[".repeat(MAX_DEPTH + 1),
                "]".repeat(MAX_DEPTH + 1)
            )
        };
        let short = deep(r#""provider":"p","iss":"i","principal":"x","#);
        assert!(IdentityView::parse(short.as_bytes()).is_none());
        let full = deep(r#""provider":"p","iss":"i","sub":"s","aud":[],"azp":"","principal":"x","#);
        let id = IdentityView::parse(full.as_bytes()).unwrap();
        assert!(id.claim(&["a"]).is_none());
        // Members after `claims` are read unless every other one came first.
        let id = IdentityView::parse(
            br#"{"aud":"a","claims":{"g":"x"},"iss":"i","principal":"i/s","provider":"p","sub":"s"}"#,
        )
        .unwrap();
        assert_eq!((id.principal(), id.sub()), ("i/s".into(), "s".into()));
        assert_eq!(texts(id.claim(&["g"]).unwrap()), vec!["x"]);
        let sorted = serde_json::to_string(&serde_json::to_value(sample()).unwrap()).unwrap();
        let id = IdentityView::parse(sorted.as_bytes()).unwrap();
        assert_eq!(id.principal(), "https://idp/alice");
        assert_eq!(texts(id.claim(&["realm", "level"]).unwrap()), vec!["3"]);
        // Malformed values inside read as absent, never as something else.
        let id = IdentityView::parse(
            br#"{"provider":"p","iss":"i","principal":"x","claims":{"n":01,"e":"\q","t":tru,"l":[1,}}}"#,
        )
        .unwrap();
        for c in ["n", "e", "t"] {
            assert!(texts(id.claim(&[c]).unwrap()).is_empty(), "{c}");
        }
        assert_eq!(texts(id.claim(&["l"]).unwrap()), vec!["1"]);
        // Not UTF-8: the string reads as absent, never as something else.
        let id = IdentityView::parse(
            b"{\"provider\":\"p\",\"iss\":\"i\",\"principal\":\"x\",\"claims\":{\"a\":\"\xff\"}}",
        )
        .unwrap();
        assert!(id.claim(&["a"]).unwrap().as_str().is_none());
        assert_eq!(texts(id.claim(&["a"]).unwrap()), Vec::<String>::new());
    }
}
