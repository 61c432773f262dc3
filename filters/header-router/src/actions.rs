//! What a chosen route does to the request and the response: header
//! operations, URI and authority rewrites, redirect locations. Plain Rust on
//! a [`HeaderMutator`], so the same code edits a [`HeaderMap`] in tests and
//! the host's header map in the filter.

use wasmesh_common::http_match::{header_name, PathMatch};
use wasmesh_common::{ConfigError, FieldPath, HeaderMap};

use crate::config::HeaderOperations;

/// Somewhere headers can be changed.
pub trait HeaderMutator {
    /// Replaces every value of `name` with `value`.
    fn set(&mut self, name: &str, value: &str);
    /// Appends a value.
    fn add(&mut self, name: &str, value: &str);
    /// Removes every value of `name`.
    fn remove(&mut self, name: &str);
}

impl HeaderMutator for HeaderMap {
    fn set(&mut self, name: &str, value: &str) {
        HeaderMap::set(self, name, value)
    }
    fn add(&mut self, name: &str, value: &str) {
        HeaderMap::add(self, name, value)
    }
    fn remove(&mut self, name: &str) {
        HeaderMap::remove(self, name)
    }
}

/// Compiled header operations: remove, then set, then add (Envoy applies
/// removals before additions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    remove: Vec<String>,
    set: Vec<(String, String)>,
    add: Vec<(String, String)>,
}

/// Which side of the exchange the operations are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Request headers forwarded upstream.
    Request,
    /// Response headers sent to the client.
    Response,
}

/// A header value must not contain control characters (CR, LF, NUL...).
pub fn valid_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

impl HeaderOps {
    /// Compiles operations. On the request side a `set`/`add` of `host` or
    /// `:authority` is an authority rewrite, as Istio translates it; it is
    /// returned separately (`set` wins over `add`). Other pseudo-headers,
    /// `host` removal and `reserved` (the cluster header) are refused.
    pub fn compile(
        ops: &HeaderOperations,
        side: Side,
        reserved: &str,
        path: &FieldPath,
    ) -> Result<(HeaderOps, Option<String>), ConfigError> {
        let mut out = HeaderOps::default();
        let mut authority_set = None;
        let mut authority_add = None;
        let check = |raw: &str, p: &FieldPath| -> Result<String, ConfigError> {
            let name = header_name(raw, p)?;
            if name == reserved {
                return Err(p.error(format!(
                    "`{name}` is the cluster header; the router sets it itself"
                )));
            }
            Ok(name)
        };
        for (field, map, target) in [
            ("set", &ops.set, &mut authority_set),
            ("add", &ops.add, &mut authority_add),
        ] {
            for (raw, value) in map {
                let p = path.field(field).key(raw);
                let name = check(raw, &p)?;
                if !valid_header_value(value) {
                    return Err(p.error("header value contains control characters"));
                }
                if side == Side::Request && (name == "host" || name == ":authority") {
                    if value.is_empty() {
                        return Err(p.error("empty authority"));
                    }
                    *target = Some(value.clone());
                    continue;
                }
                if name.starts_with(':') || (side == Side::Response && name == "host") {
                    return Err(p.error(format!("cannot {field} pseudo-header `{name}`")));
                }
                let entry = (name, value.clone());
                if field == "set" {
                    out.set.push(entry);
                } else {
                    out.add.push(entry);
                }
            }
        }
        for (i, raw) in ops.remove.iter().enumerate() {
            let p = path.field("remove").index(i);
            let name = check(raw, &p)?;
            if name.starts_with(':') || name == "host" {
                return Err(p.error(format!("cannot remove `{name}`")));
            }
            out.remove.push(name);
        }
        Ok((out, authority_set.or(authority_add)))
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies the operations.
    pub fn apply(&self, out: &mut impl HeaderMutator) {
        for name in &self.remove {
            out.remove(name);
        }
        for (name, value) in &self.set {
            out.set(name, value);
        }
        for (name, value) in &self.add {
            out.add(name, value);
        }
    }
}

/// The path after `rewrite.uri`, with Envoy's `prefix_rewrite` semantics:
/// a prefix match replaces the matched prefix, any other match the whole
/// path; the query string is kept.
pub fn rewrite_path(path: &str, matched: PathMatch, replacement: &str) -> String {
    let keep_from = match matched {
        PathMatch::Prefix(n) if n <= path.len() && path.is_char_boundary(n) => n,
        _ => path.find('?').unwrap_or(path.len()),
    };
    let mut out = String::with_capacity(replacement.len() + path.len() - keep_from);
    out.push_str(replacement);
    out.push_str(&path[keep_from..]);
    out
}

/// A compiled `redirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectAction {
    /// Status code (301, 302, 303, 307, 308).
    pub status: u32,
    uri: Option<String>,
    authority: Option<String>,
    port: Option<u32>,
    scheme: Option<String>,
}

fn valid_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

impl RedirectAction {
    /// Validates and compiles a redirect; `path` names it.
    pub fn compile(r: &crate::config::Redirect, path: &FieldPath) -> Result<Self, ConfigError> {
        if r.uri.is_none() && r.authority.is_none() && r.scheme.is_none() && r.port.is_none() {
            return Err(path.error("one of `uri`, `authority`, `scheme` or `port` is required"));
        }
        let status = r.redirect_code.unwrap_or(301);
        if ![301, 302, 303, 307, 308].contains(&status) {
            return Err(path
                .field("redirectCode")
                .error(format!("{status} is not one of 301, 302, 303, 307, 308")));
        }
        if let Some(port) = r.port {
            if !(1..=65535).contains(&port) {
                return Err(path
                    .field("port")
                    .error(format!("port {port} is outside 1..65535")));
            }
        }
        if let Some(s) = &r.scheme {
            if !valid_scheme(s) {
                return Err(path.field("scheme").error(format!("invalid scheme `{s}`")));
            }
        }
        for (field, v) in [("uri", &r.uri), ("authority", &r.authority)] {
            if let Some(v) = v {
                if v.is_empty() || !valid_header_value(v) || v.contains(' ') {
                    return Err(path.field(field).error(format!("invalid {field} `{v}`")));
                }
            }
        }
        Ok(RedirectAction {
            status,
            uri: r.uri.clone(),
            authority: r.authority.clone(),
            port: r.port,
            scheme: r.scheme.as_ref().map(|s| s.to_ascii_lowercase()),
        })
    }

    /// The `location` for a request, built as Envoy's `RedirectAction` does.
    pub fn location(&self, req: &HeaderMap) -> String {
        let request_scheme = req
            .get("x-forwarded-proto")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| req.scheme());
        let request_scheme = if request_scheme.is_empty() {
            "http"
        } else {
            request_scheme
        };
        let scheme = self.scheme.as_deref().unwrap_or(request_scheme);
        // Istio leaves out the default port of the scheme.
        let port = match (self.port, scheme) {
            (Some(80), "http") | (Some(443), "https") | (None, _) => None,
            (Some(p), _) => Some(p),
        };
        let host: &str = match &self.authority {
            Some(a) => a,
            None => request_host(req.authority(), request_scheme, scheme, self.port.is_some()),
        };
        let request_path = req.path();
        let path: String = match &self.uri {
            Some(uri) if uri.contains('?') => uri.clone(),
            Some(uri) => match request_path.find('?') {
                Some(q) => format!("{uri}{}", &request_path[q..]),
                None => uri.clone(),
            },
            None => request_path.to_string(),
        };
        let slash = if path.starts_with('/') { "" } else { "/" };
        match port {
            Some(p) => format!("{scheme}://{host}:{p}{slash}{path}"),
            None => format!("{scheme}://{host}{slash}{path}"),
        }
    }
}

/// The request's host for a redirect: its port is dropped when a new port
/// is given, or when the scheme changes and the port was the old scheme's
/// default (`http://a:80` → `https://a`), as Envoy's `processRequestHost`.
fn request_host<'a>(host: &'a str, old_scheme: &str, new_scheme: &str, new_port: bool) -> &'a str {
    let port_at = if host.starts_with('[') {
        host.rfind("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    let Some(at) = port_at else { return host };
    let port = &host[at..];
    let mut strip = new_port;
    if new_scheme != old_scheme {
        strip |=
            (old_scheme == "https" && port == ":443") || (old_scheme == "http" && port == ":80");
    }
    if strip {
        &host[..at]
    } else {
        host
    }
}

/// Decodes standard base64 (padding optional), for `directResponse.body.bytes`.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 || trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Redirect;

    fn ops(json: &str) -> HeaderOperations {
        let route = format!(
            r#"{{"routes":[{{"route":[{{"destination":"a"}}],"headers":{{"request":{json}}}}}]}}"#
        );
        let cfg = crate::config::RouterConfig::parse(route.as_bytes()).unwrap();
        cfg.routes[0].headers.clone().unwrap().request.unwrap()
    }

    #[test]
    fn header_ops_remove_set_add() {
        let (o, auth) = HeaderOps::compile(
            &ops(r#"{"set":{"X-Variant":"v2","host":"new.example"},"add":{"x-tag":"a"},"remove":["x-debug"]}"#),
            Side::Request,
            "x-wasmesh-cluster",
            &FieldPath::root(),
        )
        .unwrap();
        assert_eq!(auth.as_deref(), Some("new.example"));
        let mut h = HeaderMap::from_slice(&[("x-debug", "1"), ("x-variant", "v1"), ("x-tag", "z")]);
        o.apply(&mut h);
        assert!(!h.contains("x-debug"));
        assert_eq!(h.get_all("x-variant").collect::<Vec<_>>(), vec!["v2"]);
        assert_eq!(h.get_all("x-tag").collect::<Vec<_>>(), vec!["z", "a"]);
    }

    #[test]
    fn header_ops_refusals() {
        let path = FieldPath::root().field("headers").field("request");
        let bad = [
            (
                r#"{"set":{"x-wasmesh-cluster":"x"}}"#,
                "headers.request.set.x-wasmesh-cluster",
            ),
            (
                r#"{"remove":["x-wasmesh-cluster"]}"#,
                "headers.request.remove[0]",
            ),
            (r#"{"set":{":path":"/x"}}"#, "headers.request.set.:path"),
            (r#"{"remove":["host"]}"#, "headers.request.remove[0]"),
            (r#"{"add":{"x-a":"a\nb"}}"#, "headers.request.add.x-a"),
            (
                r#"{"set":{"bad name":"a"}}"#,
                "headers.request.set.bad name",
            ),
        ];
        for (json, want) in bad {
            let e = HeaderOps::compile(&ops(json), Side::Request, "x-wasmesh-cluster", &path)
                .unwrap_err();
            assert_eq!(e.path, want, "{json}: {e}");
        }
        let e = HeaderOps::compile(&ops(r#"{"set":{"host":"x"}}"#), Side::Response, "c", &path)
            .unwrap_err();
        assert_eq!(e.path, "headers.request.set.host");
    }

    #[test]
    fn rewrites_follow_prefix_rewrite() {
        assert_eq!(
            rewrite_path("/old/a/b?x=1", PathMatch::Prefix(5), "/new/"),
            "/new/a/b?x=1"
        );
        assert_eq!(rewrite_path("/old", PathMatch::Prefix(4), "/new"), "/new");
        assert_eq!(
            rewrite_path("/exact?q", PathMatch::Whole, "/other"),
            "/other?q"
        );
        assert_eq!(
            rewrite_path("/x/y", PathMatch::Prefix(1), "/v2/"),
            "/v2/x/y"
        );
        // A prefix length past the path (cannot happen after a match) falls back to the whole path.
        assert_eq!(rewrite_path("/a", PathMatch::Prefix(9), "/b"), "/b");
    }

    fn parse_redirect(json: &str) -> Redirect {
        let route = format!(r#"{{"routes":[{{"redirect":{json}}}]}}"#);
        let cfg = crate::config::RouterConfig::parse(route.as_bytes()).unwrap();
        cfg.routes[0].redirect.clone().unwrap()
    }

    fn redirect(json: &str) -> RedirectAction {
        RedirectAction::compile(&parse_redirect(json), &FieldPath::root().field("redirect"))
            .unwrap()
    }

    fn req(path: &str, authority: &str, scheme: &str) -> HeaderMap {
        HeaderMap::from_slice(&[
            (":path", path),
            (":authority", authority),
            (":scheme", scheme),
        ])
    }

    #[test]
    fn redirect_locations() {
        let r = redirect(r#"{"uri":"/v2/login"}"#);
        assert_eq!(r.status, 301);
        assert_eq!(
            r.location(&req("/login?next=/a", "shop.example", "http")),
            "http://shop.example/v2/login?next=/a"
        );
        let r = redirect(r#"{"uri":"/x?y=1","redirectCode":302}"#);
        assert_eq!(r.location(&req("/a?b", "h", "https")), "https://h/x?y=1");
        let r = redirect(r#"{"scheme":"https"}"#);
        assert_eq!(r.location(&req("/a", "h:80", "http")), "https://h/a");
        assert_eq!(r.location(&req("/a", "h:8080", "http")), "https://h:8080/a");
        let r = redirect(r#"{"authority":"new.example","port":8443}"#);
        assert_eq!(
            r.location(&req("/p", "old:1", "https")),
            "https://new.example:8443/p"
        );
        let r = redirect(r#"{"port":443,"scheme":"https"}"#);
        assert_eq!(r.location(&req("/p", "h:80", "http")), "https://h/p");
        let r = redirect(r#"{"port":9000}"#);
        assert_eq!(
            r.location(&req("/p", "[::1]:80", "http")),
            "http://[::1]:9000/p"
        );
        let r = redirect(r#"{"uri":"relative"}"#);
        assert_eq!(r.location(&req("/p", "h", "http")), "http://h/relative");
    }

    #[test]
    fn redirect_refusals() {
        for (json, path) in [
            (r#"{}"#, "redirect"),
            (
                r#"{"uri":"/a","redirectCode":300}"#,
                "redirect.redirectCode",
            ),
            (r#"{"port":0}"#, "redirect.port"),
            (r#"{"scheme":"ht tp"}"#, "redirect.scheme"),
            (r#"{"authority":""}"#, "redirect.authority"),
        ] {
            let r = parse_redirect(json);
            let e = RedirectAction::compile(&r, &FieldPath::root().field("redirect")).unwrap_err();
            assert_eq!(e.path, path, "{json}");
        }
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("AAEC/w==").unwrap(), vec![0, 1, 2, 255]);
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("a*==").is_none());
    }
}
