//! The header router's configuration as users write it (JSON, camelCase).
//!
//! The vocabulary is Istio's `VirtualService` `HTTPRoute`: `match`, `route`
//! (weighted destinations), `headers`, `rewrite`, `redirect`,
//! `directResponse`; plus `stickyBy` for consistent weighted routing and the
//! filter-level `clusterHeader` and `defaultDestination`. [`crate::table`]
//! validates and compiles it.

use wasmesh_common::config::{nullable, parse_json, unique_map};
use wasmesh_common::http_match::HttpMatchRequest;
use wasmesh_common::ConfigError;

/// The header Envoy's route reads with `cluster_header` when none is
/// configured.
pub const DEFAULT_CLUSTER_HEADER: &str = "x-wasmesh-cluster";

/// The plugin configuration.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouterConfig {
    /// Request header that carries the chosen destination to Envoy's router
    /// (a route with `cluster_header: <this>`). A copy sent by the client is
    /// always removed first. Default `x-wasmesh-cluster`.
    #[serde(deserialize_with = "cluster_header")]
    pub cluster_header: String,
    /// Routes, tried in order; the first whose `match` holds is applied.
    #[serde(deserialize_with = "nullable")]
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
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Route {
    /// Name used in stats (`header_router.route.<name>.<destination>`);
    /// letters, digits, `_` and `-`. Default `route-<index>`.
    pub name: Option<String>,
    /// Match items, ORed; absent or empty matches every request.
    #[serde(rename = "match", default, deserialize_with = "nullable")]
    pub matches: Vec<HttpMatchRequest>,
    /// Destinations: one, or several with relative `weight`s.
    #[serde(deserialize_with = "nullable")]
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
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a map")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Headers {
    /// Operations on the request forwarded upstream.
    pub request: Option<HeaderOperations>,
    /// Operations on the response sent to the client.
    pub response: Option<HeaderOperations>,
}

/// Istio's `HeaderOperations`: `remove` first, then `set`, then `add`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HeaderOperations {
    /// Replace every value of the header with this one.
    #[serde(deserialize_with = "unique_map")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, String>")
    )]
    pub set: Vec<(String, String)>,
    /// Append a value.
    #[serde(deserialize_with = "unique_map")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, String>")
    )]
    pub add: Vec<(String, String)>,
    /// Remove the header.
    #[serde(deserialize_with = "nullable")]
    pub remove: Vec<String>,
}

/// Istio's `HTTPRewrite`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rewrite {
    /// Replaces the matched prefix when the route matched `uri.prefix`,
    /// otherwise the whole path; the query string is kept.
    pub uri: Option<String>,
    /// New `:authority`.
    pub authority: Option<String>,
}

/// Istio's `HTTPDirectResponse`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a map")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DirectResponse {
    /// Status code, in [200, 600).
    pub status: u32,
    /// Response body.
    pub body: Option<HttpBody>,
}

/// Istio's `HTTPBody`: exactly one of `string` and `bytes`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HttpBody {
    /// Body text.
    pub string: Option<String>,
    /// Body bytes, base64-encoded.
    pub bytes: Option<String>,
}

/// Istio's `HTTPRedirect`. At least one of `uri`, `authority`, `scheme` and
/// `port` is required.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// `clusterHeader`: `null` means the default.
fn cluster_header<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(<Option<String> as serde::Deserialize>::deserialize(d)?
        .unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_string()))
}

impl RouterConfig {
    /// Parses the plugin configuration (an empty document is `{}`); errors
    /// name the field (`routes[1].route[0].weight`).
    pub fn parse(bytes: &[u8]) -> Result<RouterConfig, ConfigError> {
        parse_json(bytes)
    }
}
