//! The header router's configuration as users write it (JSON, camelCase).
//!
//! The vocabulary is Istio's `VirtualService` `HTTPRoute`: `match`, `route`
//! (weighted destinations), `headers`, `rewrite`, `redirect`,
//! `directResponse`; plus `stickyBy` for consistent weighted routing and the
//! filter-level `clusterHeader` and `defaultDestination`. [`crate::table`]
//! validates and compiles it.

use serde_json::Value;
use wasmesh_common::http_match::json::{parse_document, Obj};
use wasmesh_common::http_match::HttpMatchRequest;
use wasmesh_common::{ConfigError, FieldPath};

/// The header Envoy's route reads with `cluster_header` when none is
/// configured.
pub const DEFAULT_CLUSTER_HEADER: &str = "x-wasmesh-cluster";

/// The plugin configuration.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct RouterConfig {
    /// Request header that carries the chosen destination to Envoy's router
    /// (a route with `cluster_header: <this>`). A copy sent by the client is
    /// always removed first. Default `x-wasmesh-cluster`.
    pub cluster_header: String,
    /// Routes, tried in order; the first whose `match` holds is applied.
    pub routes: Vec<Route>,
    /// Destination for requests that match no route. Without it such requests
    /// continue without `clusterHeader`, so Envoy's own route table decides.
    pub default_destination: Option<String>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            cluster_header: DEFAULT_CLUSTER_HEADER.to_string(),
            routes: Vec::new(),
            default_destination: None,
        }
    }
}

/// One route (Istio's `HTTPRoute`). Exactly one of `route`, `redirect` and
/// `directResponse` is required.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Route {
    /// Name used in stats (`header_router.route.<name>.<destination>`);
    /// letters, digits, `_` and `-`. Default `route-<index>`.
    pub name: Option<String>,
    /// Match items, ORed; absent or empty matches every request.
    #[cfg_attr(feature = "schema", schemars(rename = "match"))]
    pub matches: Vec<HttpMatchRequest>,
    /// Destinations: one, or several with relative `weight`s.
    pub route: Vec<RouteDestination>,
    /// Makes the weighted choice consistent per key instead of random.
    pub sticky_by: Option<StickyBy>,
    /// Header operations for requests (before forwarding) and responses.
    pub headers: Option<Headers>,
    /// Path and authority rewrite before forwarding.
    pub rewrite: Option<Rewrite>,
    /// Answer with this response instead of forwarding.
    pub direct_response: Option<DirectResponse>,
    /// Answer with a redirect instead of forwarding.
    pub redirect: Option<Redirect>,
}

/// A destination with its weight (Istio's `HTTPRouteDestination`).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct RouteDestination {
    /// The Envoy cluster name written into `clusterHeader`.
    pub destination: String,
    /// Relative weight (ignored for a single destination; default 0 when
    /// there are several, as in Istio).
    pub weight: Option<u32>,
    /// Header operations applied when this destination is chosen, after the
    /// route's own.
    pub headers: Option<Headers>,
}

/// What a sticky route hashes. Exactly one field must be set.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct StickyBy {
    /// The first value of this request header.
    pub header: Option<String>,
    /// The value of this cookie.
    pub cookie: Option<String>,
    /// This claim of the verified JWT identity (nested names joined with
    /// `.`).
    pub claim: Option<String>,
    /// The peer IP address (`source.address`).
    pub source_ip: Option<bool>,
}

/// Istio's `Headers`.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Headers {
    /// Operations on the request forwarded upstream.
    pub request: Option<HeaderOperations>,
    /// Operations on the response sent to the client.
    pub response: Option<HeaderOperations>,
}

/// Istio's `HeaderOperations`: `remove` first, then `set`, then `add`.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct HeaderOperations {
    /// Replace every value of the header with this one.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, String>")
    )]
    pub set: Vec<(String, String)>,
    /// Append a value.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, String>")
    )]
    pub add: Vec<(String, String)>,
    /// Remove the header.
    pub remove: Vec<String>,
}

/// Istio's `HTTPRewrite`.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Rewrite {
    /// Replaces the matched prefix when the route matched `uri.prefix`,
    /// otherwise the whole path; the query string is kept.
    pub uri: Option<String>,
    /// New `:authority`.
    pub authority: Option<String>,
}

/// Istio's `HTTPDirectResponse`.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(deny_unknown_fields, rename_all = "camelCase")
)]
pub struct DirectResponse {
    /// Status code, in [200, 600).
    pub status: u32,
    /// Response body.
    pub body: Option<HttpBody>,
}

/// Istio's `HTTPBody`: exactly one of `string` and `bytes`.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct HttpBody {
    /// Body text.
    pub string: Option<String>,
    /// Body bytes, base64-encoded.
    pub bytes: Option<String>,
}

/// Istio's `HTTPRedirect`. At least one of `uri`, `authority`, `scheme` and
/// `port` is required.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(default, deny_unknown_fields, rename_all = "camelCase")
)]
pub struct Redirect {
    /// Replaces the whole path (the request's query string is kept unless
    /// this contains one).
    pub uri: Option<String>,
    /// Replaces the authority.
    pub authority: Option<String>,
    /// Replaces the port.
    pub port: Option<u32>,
    /// Replaces the scheme.
    pub scheme: Option<String>,
    /// 301 (default), 302, 303, 307 or 308.
    pub redirect_code: Option<u32>,
}

// Reading the JSON document (hand-written rather than derived: see
// `wasmesh_common::http_match::json` for why).

impl RouterConfig {
    /// Parses the plugin configuration; an empty document gives the
    /// defaults. Errors name the field (`routes[2].route[0].weight`).
    pub fn parse(bytes: &[u8]) -> Result<RouterConfig, ConfigError> {
        let doc = parse_document(bytes)?;
        let root = FieldPath::root();
        let o = Obj::new(
            &doc,
            &root,
            &["clusterHeader", "routes", "defaultDestination"],
        )?;
        let mut routes = Vec::new();
        for (p, v) in o.list("routes")? {
            routes.push(Route::from_json(v, &p)?);
        }
        Ok(RouterConfig {
            cluster_header: o
                .string("clusterHeader")?
                .unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_string()),
            routes,
            default_destination: o.string("defaultDestination")?,
        })
    }
}

impl Route {
    fn from_json(v: &Value, path: &FieldPath) -> Result<Route, ConfigError> {
        let o = Obj::new(
            v,
            path,
            &[
                "name",
                "match",
                "route",
                "stickyBy",
                "headers",
                "rewrite",
                "directResponse",
                "redirect",
            ],
        )?;
        let mut route = Vec::new();
        for (p, v) in o.list("route")? {
            let d = Obj::new(v, &p, &["destination", "weight", "headers"])?;
            route.push(RouteDestination {
                destination: d
                    .string("destination")?
                    .ok_or_else(|| p.error("missing field `destination`"))?,
                weight: d.u32("weight")?,
                headers: headers(&d)?,
            });
        }
        let sticky_by = match o.object("stickyBy", &["header", "cookie", "claim", "sourceIp"])? {
            None => None,
            Some(s) => Some(StickyBy {
                header: s.string("header")?,
                cookie: s.string("cookie")?,
                claim: s.string("claim")?,
                source_ip: s.boolean("sourceIp")?,
            }),
        };
        let rewrite = match o.object("rewrite", &["uri", "authority"])? {
            None => None,
            Some(r) => Some(Rewrite {
                uri: r.string("uri")?,
                authority: r.string("authority")?,
            }),
        };
        let direct_response = match o.object("directResponse", &["status", "body"])? {
            None => None,
            Some(d) => Some(DirectResponse {
                status: d
                    .u32("status")?
                    .ok_or_else(|| d.path().error("missing field `status`"))?,
                body: match d.object("body", &["string", "bytes"])? {
                    None => None,
                    Some(b) => Some(HttpBody {
                        string: b.string("string")?,
                        bytes: b.string("bytes")?,
                    }),
                },
            }),
        };
        let redirect = match o.object(
            "redirect",
            &["uri", "authority", "port", "scheme", "redirectCode"],
        )? {
            None => None,
            Some(r) => Some(Redirect {
                uri: r.string("uri")?,
                authority: r.string("authority")?,
                port: r.u32("port")?,
                scheme: r.string("scheme")?,
                redirect_code: r.u32("redirectCode")?,
            }),
        };
        Ok(Route {
            name: o.string("name")?,
            matches: HttpMatchRequest::list_from_json(o.get("match"), &o.at("match"))?,
            route,
            sticky_by,
            headers: headers(&o)?,
            rewrite,
            direct_response,
            redirect,
        })
    }
}

fn headers(o: &Obj<'_>) -> Result<Option<Headers>, ConfigError> {
    let Some(h) = o.object("headers", &["request", "response"])? else {
        return Ok(None);
    };
    let ops = |name: &str| -> Result<Option<HeaderOperations>, ConfigError> {
        let Some(x) = h.object(name, &["set", "add", "remove"])? else {
            return Ok(None);
        };
        Ok(Some(HeaderOperations {
            set: x.string_map("set")?,
            add: x.string_map("add")?,
            remove: x.strings("remove")?,
        }))
    };
    Ok(Some(Headers {
        request: ops("request")?,
        response: ops("response")?,
    }))
}
