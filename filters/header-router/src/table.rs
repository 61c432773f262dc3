//! The compiled route table and the per-request decision.
//!
//! [`RouteTable::compile`] validates a [`RouterConfig`] once (errors carry
//! the field path) and builds immutable routes: compiled matches, weighted
//! destinations, header operations, rewrites, redirects and direct
//! responses, and the names of every counter the filter will touch.
//! [`RouteTable::decide`] finds the first matching route and picks a
//! destination; [`RouteTable::apply_request`] / [`RouteTable::apply_response`]
//! / [`RouteTable::local_response`] turn the decision into header changes or
//! a local reply.

use std::collections::HashSet;

use std::borrow::Cow;
use wasmesh_common::http_match::{
    compile_match_list_with, header_name, HeaderNames, MatchList, PathMatch, RequestAttributes,
};
use wasmesh_common::identity::IdentityView;
use wasmesh_common::sampling::Rng;
use wasmesh_common::{ConfigError, FieldPath, HeaderMap};

use crate::actions::{
    decode_base64, rewrite_path, valid_header_value, HeaderMutator, HeaderOps, RedirectAction, Side,
};
use crate::config::{Headers, RouterConfig, StickyBy};
use crate::weighted::{key_hash, WeightedSet};

/// Counter for requests that matched no route and had no default.
pub const NO_ROUTE_METRIC: &str = "header_router.no_route";
/// Pseudo-route name under which `defaultDestination` is counted.
pub const DEFAULT_ROUTE_NAME: &str = "default";
/// Largest direct response body (Istio's limit).
pub const MAX_DIRECT_RESPONSE_BODY: usize = 1024 * 1024;
/// Most destinations per route.
pub const MAX_DESTINATIONS: usize = 100;
/// Largest weight of one destination.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Index into [`RouteTable::metric_names`].
pub type MetricIndex = usize;

#[derive(Debug, Clone)]
struct Destination {
    cluster: String,
    request_ops: HeaderOps,
    response_ops: HeaderOps,
    authority: Option<String>,
    metric: MetricIndex,
}

#[derive(Debug, Clone)]
enum StickyKey {
    Header(String),
    Cookie(String),
    Claim(Vec<String>),
    SourceIp,
}

#[derive(Debug, Clone)]
enum Action {
    Forward {
        destinations: Vec<Destination>,
        weights: WeightedSet,
        sticky: Option<StickyKey>,
    },
    Direct {
        status: u32,
        body: Vec<u8>,
        metric: MetricIndex,
    },
    Redirect {
        redirect: RedirectAction,
        metric: MetricIndex,
    },
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    name: String,
    matches: MatchList,
    action: Action,
    request_ops: HeaderOps,
    response_ops: HeaderOps,
    rewrite_uri: Option<String>,
    authority: Option<String>,
}

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward to destination `dest` of route `route` (`None`: the default
    /// destination).
    Forward {
        /// Index of the route.
        route: Option<usize>,
        /// Index of the destination within the route.
        dest: usize,
        /// How the path was matched (for `rewrite.uri`).
        path: PathMatch,
    },
    /// Answer locally (direct response or redirect) per route `route`.
    Respond {
        /// Index of the route.
        route: usize,
    },
    /// No route matched and there is no default destination.
    NoRoute,
}

/// A local reply to send instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse<'t> {
    /// HTTP status.
    pub status: u32,
    /// Body.
    pub body: &'t [u8],
    /// Headers to add to the reply (`location`, route response headers).
    pub headers: Vec<(String, String)>,
    /// Response code details, as Envoy's router gives them.
    pub details: &'static str,
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct RouteTable {
    cluster_header: String,
    routes: Vec<CompiledRoute>,
    default: Option<Destination>,
    metric_names: Vec<String>,
    no_route_metric: MetricIndex,
    needs_identity: bool,
    needs_source_ip: bool,
    header_names: HeaderNames,
}

fn valid_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn valid_destination(d: &str) -> bool {
    !d.is_empty() && d.len() <= 1024 && d.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

struct Metrics {
    names: Vec<String>,
}

impl Metrics {
    fn add(&mut self, name: String) -> MetricIndex {
        if let Some(i) = self.names.iter().position(|n| *n == name) {
            return i;
        }
        self.names.push(name);
        self.names.len() - 1
    }
}

fn compile_headers(
    headers: Option<&Headers>,
    reserved: &str,
    path: &FieldPath,
) -> Result<(HeaderOps, HeaderOps, Option<String>), ConfigError> {
    let Some(h) = headers else {
        return Ok(Default::default());
    };
    let (request, authority) = match &h.request {
        Some(ops) => HeaderOps::compile(ops, Side::Request, reserved, &path.field("request"))?,
        None => Default::default(),
    };
    let (response, _) = match &h.response {
        Some(ops) => HeaderOps::compile(ops, Side::Response, reserved, &path.field("response"))?,
        None => Default::default(),
    };
    Ok((request, response, authority))
}

impl RouteTable {
    /// Validates and compiles the configuration.
    pub fn compile(cfg: &RouterConfig) -> Result<RouteTable, ConfigError> {
        let root = FieldPath::root();
        let cluster_header = header_name(&cfg.cluster_header, &root.field("clusterHeader"))?;
        if cluster_header.starts_with(':') || cluster_header == "host" {
            return Err(root
                .field("clusterHeader")
                .error(format!("`{cluster_header}` cannot carry the destination")));
        }
        let mut metrics = Metrics { names: Vec::new() };
        let no_route_metric = metrics.add(NO_ROUTE_METRIC.to_string());
        let mut names = HashSet::new();
        let mut routes = Vec::with_capacity(cfg.routes.len());
        let mut needs_identity = false;
        let mut needs_source_ip = false;
        let mut header_names = HeaderNames::default();
        for (i, r) in cfg.routes.iter().enumerate() {
            let path = root.field("routes").index(i);
            let name = match &r.name {
                Some(n) => {
                    if !valid_route_name(n) {
                        return Err(path.field("name").error(format!(
                            "route name `{n}` may only contain letters, digits, `_` and `-`"
                        )));
                    }
                    if n == DEFAULT_ROUTE_NAME {
                        return Err(path
                            .field("name")
                            .error("`default` is reserved for the default destination's stats"));
                    }
                    n.clone()
                }
                None => format!("route-{i}"),
            };
            if !names.insert(name.clone()) {
                return Err(path
                    .field("name")
                    .error(format!("duplicate route name `{name}`")));
            }
            let matches =
                compile_match_list_with(&r.matches, &path.field("match"), &mut header_names)?;
            needs_identity |= matches.needs_identity();
            needs_source_ip |= matches.needs_source_ip();
            let (request_ops, response_ops, header_authority) =
                compile_headers(r.headers.as_ref(), &cluster_header, &path.field("headers"))?;
            let kinds = [
                !r.route.is_empty(),
                r.redirect.is_some(),
                r.direct_response.is_some(),
            ];
            match kinds.iter().filter(|k| **k).count() {
                0 => {
                    return Err(
                        path.error("one of `route`, `redirect` or `directResponse` is required")
                    )
                }
                1 => {}
                _ => {
                    return Err(path
                        .error("only one of `route`, `redirect` or `directResponse` may be set"))
                }
            }
            if r.route.is_empty() {
                if r.rewrite.is_some() {
                    return Err(path
                        .field("rewrite")
                        .error("`rewrite` only applies to routes with destinations"));
                }
                if r.sticky_by.is_some() {
                    return Err(path
                        .field("stickyBy")
                        .error("`stickyBy` only applies to routes with destinations"));
                }
            }
            let mut rewrite_uri = None;
            let mut authority = header_authority;
            if let Some(rw) = &r.rewrite {
                let p = path.field("rewrite");
                if rw.uri.is_none() && rw.authority.is_none() {
                    return Err(p.error("one of `uri` or `authority` is required"));
                }
                if let Some(uri) = &rw.uri {
                    if uri.is_empty() || !valid_header_value(uri) || uri.contains(' ') {
                        return Err(p.field("uri").error(format!("invalid uri `{uri}`")));
                    }
                    rewrite_uri = Some(uri.clone());
                }
                if let Some(a) = &rw.authority {
                    if a.is_empty() || !valid_header_value(a) || a.contains(' ') {
                        return Err(p
                            .field("authority")
                            .error(format!("invalid authority `{a}`")));
                    }
                    authority = Some(a.clone());
                }
            }
            let action = if let Some(d) = &r.direct_response {
                let p = path.field("directResponse");
                if !(200..600).contains(&d.status) {
                    return Err(p
                        .field("status")
                        .error(format!("status {} is outside [200, 600)", d.status)));
                }
                let body = match &d.body {
                    None => Vec::new(),
                    Some(b) => match (&b.string, &b.bytes) {
                        (Some(s), None) => s.as_bytes().to_vec(),
                        (None, Some(b64)) => decode_base64(b64).ok_or_else(|| {
                            p.field("body").field("bytes").error("invalid base64")
                        })?,
                        _ => {
                            return Err(p
                                .field("body")
                                .error("exactly one of `string` or `bytes` is required"))
                        }
                    },
                };
                if body.len() > MAX_DIRECT_RESPONSE_BODY {
                    return Err(p.field("body").error("body larger than 1 MiB"));
                }
                Action::Direct {
                    status: d.status,
                    body,
                    metric: metrics.add(format!("header_router.route.{name}.direct_response")),
                }
            } else if let Some(rd) = &r.redirect {
                Action::Redirect {
                    redirect: RedirectAction::compile(rd, &path.field("redirect"))?,
                    metric: metrics.add(format!("header_router.route.{name}.redirect")),
                }
            } else {
                if r.route.len() > MAX_DESTINATIONS {
                    return Err(path
                        .field("route")
                        .error(format!("more than {MAX_DESTINATIONS} destinations")));
                }
                let single = r.route.len() == 1;
                let mut destinations = Vec::with_capacity(r.route.len());
                let mut weights = Vec::with_capacity(r.route.len());
                let mut seen = HashSet::new();
                for (j, d) in r.route.iter().enumerate() {
                    let p = path.field("route").index(j);
                    if !valid_destination(&d.destination) {
                        return Err(p
                            .field("destination")
                            .error(format!("invalid destination `{}`", d.destination)));
                    }
                    if !seen.insert(d.destination.as_str()) {
                        return Err(p
                            .field("destination")
                            .error(format!("duplicate destination `{}`", d.destination)));
                    }
                    let weight = if single { 1 } else { d.weight.unwrap_or(0) };
                    if weight > MAX_WEIGHT {
                        return Err(p
                            .field("weight")
                            .error(format!("weight {weight} is above {MAX_WEIGHT}")));
                    }
                    let (dreq, dresp, dauth) =
                        compile_headers(d.headers.as_ref(), &cluster_header, &p.field("headers"))?;
                    weights.push(weight);
                    destinations.push(Destination {
                        cluster: d.destination.clone(),
                        request_ops: dreq,
                        response_ops: dresp,
                        authority: dauth,
                        metric: metrics
                            .add(format!("header_router.route.{name}.{}", d.destination)),
                    });
                }
                if weights.iter().all(|w| *w == 0) {
                    return Err(path
                        .field("route")
                        .error("the total weight of the destinations is 0"));
                }
                let sticky = match &r.sticky_by {
                    None => None,
                    Some(s) => Some(compile_sticky(s, &path.field("stickyBy"))?),
                };
                needs_identity |= matches!(sticky, Some(StickyKey::Claim(_)));
                needs_source_ip |= matches!(sticky, Some(StickyKey::SourceIp));
                Action::Forward {
                    weights: WeightedSet::new(
                        destinations.iter().map(|d| d.cluster.as_str()).zip(weights),
                    ),
                    destinations,
                    sticky,
                }
            };
            routes.push(CompiledRoute {
                name,
                matches,
                action,
                request_ops,
                response_ops,
                rewrite_uri,
                authority,
            });
        }
        let default = match &cfg.default_destination {
            None => None,
            Some(d) => {
                if !valid_destination(d) {
                    return Err(root
                        .field("defaultDestination")
                        .error(format!("invalid destination `{d}`")));
                }
                Some(Destination {
                    cluster: d.clone(),
                    request_ops: HeaderOps::default(),
                    response_ops: HeaderOps::default(),
                    authority: None,
                    metric: metrics.add(format!("header_router.route.{DEFAULT_ROUTE_NAME}.{d}")),
                })
            }
        };
        Ok(RouteTable {
            cluster_header,
            routes,
            default,
            metric_names: metrics.names,
            no_route_metric,
            needs_identity,
            needs_source_ip,
            header_names,
        })
    }

    /// The header names the routes' conditions read: resolve them once per
    /// request and pass the values in [`RequestAttributes::header_values`].
    pub fn header_names(&self) -> &HeaderNames {
        &self.header_names
    }

    /// The header that carries the destination.
    pub fn cluster_header(&self) -> &str {
        &self.cluster_header
    }

    /// Every counter the filter increments, in index order.
    pub fn metric_names(&self) -> &[String] {
        &self.metric_names
    }

    /// Whether matching or stickiness reads the verified identity.
    pub fn needs_identity(&self) -> bool {
        self.needs_identity
    }

    /// Whether matching or stickiness reads the peer address.
    pub fn needs_source_ip(&self) -> bool {
        self.needs_source_ip
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the first matching route and picks its destination.
    pub fn decide(&self, req: &RequestAttributes<'_>, rng: &mut Rng) -> Decision {
        for (i, route) in self.routes.iter().enumerate() {
            let Some(m) = route.matches.first_match(req) else {
                continue;
            };
            return match &route.action {
                Action::Forward {
                    weights,
                    sticky,
                    destinations,
                } => {
                    let dest = if destinations.len() == 1 {
                        0
                    } else {
                        match sticky.as_ref().and_then(|s| sticky_hash(s, req)) {
                            Some(h) => weights.pick_sticky(h),
                            None => weights.pick_random(rng),
                        }
                    };
                    Decision::Forward {
                        route: Some(i),
                        dest,
                        path: m.path,
                    }
                }
                Action::Direct { .. } | Action::Redirect { .. } => Decision::Respond { route: i },
            };
        }
        if self.default.is_some() {
            Decision::Forward {
                route: None,
                dest: 0,
                path: PathMatch::Prefix(0),
            }
        } else {
            Decision::NoRoute
        }
    }

    fn destination(
        &self,
        route: Option<usize>,
        dest: usize,
    ) -> Option<(Option<&CompiledRoute>, &Destination)> {
        match route {
            None => self.default.as_ref().map(|d| (None, d)),
            Some(r) => {
                let route = self.routes.get(r)?;
                match &route.action {
                    Action::Forward { destinations, .. } => {
                        destinations.get(dest).map(|d| (Some(route), d))
                    }
                    _ => None,
                }
            }
        }
    }

    /// The counter to increment for a decision.
    pub fn metric(&self, d: &Decision) -> MetricIndex {
        match *d {
            Decision::Forward { route, dest, .. } => self
                .destination(route, dest)
                .map_or(self.no_route_metric, |(_, dst)| dst.metric),
            Decision::Respond { route } => match self.routes.get(route).map(|r| &r.action) {
                Some(Action::Direct { metric, .. }) | Some(Action::Redirect { metric, .. }) => {
                    *metric
                }
                _ => self.no_route_metric,
            },
            Decision::NoRoute => self.no_route_metric,
        }
    }

    /// The route's name (`default` for the default destination).
    pub fn route_name(&self, d: &Decision) -> Option<&str> {
        match *d {
            Decision::Forward { route: None, .. } => Some(DEFAULT_ROUTE_NAME),
            Decision::Forward { route: Some(r), .. } | Decision::Respond { route: r } => {
                self.routes.get(r).map(|r| r.name.as_str())
            }
            Decision::NoRoute => None,
        }
    }

    /// The chosen cluster of a forwarding decision.
    pub fn cluster(&self, d: &Decision) -> Option<&str> {
        match *d {
            Decision::Forward { route, dest, .. } => self
                .destination(route, dest)
                .map(|(_, dst)| dst.cluster.as_str()),
            _ => None,
        }
    }

    /// Applies a forwarding decision to the request headers: route then
    /// destination header operations, path and authority rewrites, and the
    /// cluster header. `req` is the request as received (the client's copy
    /// of the cluster header is removed here as well). Returns whether the
    /// routing-relevant headers changed (always, for a forward).
    pub fn apply_request(
        &self,
        d: &Decision,
        req: &HeaderMap,
        out: &mut impl HeaderMutator,
    ) -> bool {
        let Decision::Forward { route, dest, path } = *d else {
            if req.contains(&self.cluster_header) {
                out.remove(&self.cluster_header);
                return true;
            }
            return false;
        };
        let Some((route, dst)) = self.destination(route, dest) else {
            return false;
        };
        if req.contains(&self.cluster_header) {
            out.remove(&self.cluster_header);
        }
        if let Some(r) = route {
            r.request_ops.apply(out);
        }
        dst.request_ops.apply(out);
        if let Some(uri) = route.and_then(|r| r.rewrite_uri.as_deref()) {
            out.set(":path", &rewrite_path(req.path(), path, uri));
        }
        if let Some(authority) = route
            .and_then(|r| r.authority.as_deref())
            .or(dst.authority.as_deref())
        {
            out.set(":authority", authority);
        }
        out.set(&self.cluster_header, &dst.cluster);
        true
    }

    /// Applies the response header operations of a forwarding decision.
    pub fn apply_response(&self, d: &Decision, out: &mut impl HeaderMutator) {
        if let Decision::Forward { route, dest, .. } = *d {
            if let Some((route, dst)) = self.destination(route, dest) {
                if let Some(r) = route {
                    r.response_ops.apply(out);
                }
                dst.response_ops.apply(out);
            }
        }
    }

    /// Whether a forwarding decision has response header operations.
    pub fn has_response_ops(&self, d: &Decision) -> bool {
        match *d {
            Decision::Forward { route, dest, .. } => {
                self.destination(route, dest).is_some_and(|(r, dst)| {
                    !dst.response_ops.is_empty() || r.is_some_and(|r| !r.response_ops.is_empty())
                })
            }
            _ => false,
        }
    }

    /// The local reply of a direct response or redirect decision.
    pub fn local_response(&self, d: &Decision, req: &HeaderMap) -> Option<LocalResponse<'_>> {
        let Decision::Respond { route } = *d else {
            return None;
        };
        let route = self.routes.get(route)?;
        let mut headers = HeaderMap::new();
        let (status, body): (u32, &[u8]) = match &route.action {
            Action::Direct { status, body, .. } => (*status, body),
            Action::Redirect { redirect, .. } => {
                headers.set("location", &redirect.location(req));
                (redirect.status, &[])
            }
            Action::Forward { .. } => return None,
        };
        route.response_ops.apply(&mut headers);
        Some(LocalResponse {
            status,
            body,
            headers: headers.pairs().to_vec(),
            details: "direct_response",
        })
    }
}

fn compile_sticky(s: &StickyBy, path: &FieldPath) -> Result<StickyKey, ConfigError> {
    let set = [
        s.header.is_some(),
        s.cookie.is_some(),
        s.claim.is_some(),
        s.source_ip.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(
            path.error("exactly one of `header`, `cookie`, `claim` or `sourceIp` is required")
        );
    }
    if let Some(h) = &s.header {
        return Ok(StickyKey::Header(header_name(h, &path.field("header"))?));
    }
    if let Some(c) = &s.cookie {
        if c.is_empty()
            || c.bytes()
                .any(|b| !b.is_ascii_graphic() || b == b'=' || b == b';')
        {
            return Err(path
                .field("cookie")
                .error(format!("invalid cookie name `{c}`")));
        }
        return Ok(StickyKey::Cookie(c.clone()));
    }
    if let Some(c) = &s.claim {
        let segments: Vec<String> = c.split('.').map(str::to_string).collect();
        if segments.iter().any(String::is_empty) {
            return Err(path
                .field("claim")
                .error(format!("invalid claim name `{c}`")));
        }
        return Ok(StickyKey::Claim(segments));
    }
    if s.source_ip == Some(false) {
        return Err(path
            .field("sourceIp")
            .error("`sourceIp` must be true when set"));
    }
    Ok(StickyKey::SourceIp)
}

/// The sticky key of a claim: a non-empty string's text; a number, boolean,
/// non-empty list or object its JSON text as stored; nothing for an empty
/// string, an empty list or `null`.
fn claim_key<'a>(identity: IdentityView<'a>, path: &[String]) -> Option<Cow<'a, [u8]>> {
    let v = identity.claim(path)?;
    match v.raw() {
        b"null" | b"\"\"" | b"[]" => None,
        raw if raw.first() == Some(&b'"') => v.as_str().map(|s| match s {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }),
        raw => Some(Cow::Borrowed(raw)),
    }
}

/// The hash of the request's sticky key; `None` (random draw) when the key is
/// missing or empty.
fn sticky_hash(key: &StickyKey, req: &RequestAttributes<'_>) -> Option<u64> {
    match key {
        StickyKey::Header(name) => req
            .headers
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| key_hash(v.as_bytes())),
        StickyKey::Cookie(name) => req
            .headers
            .cookie(name)
            .filter(|v| !v.is_empty())
            .map(|v| key_hash(v.as_bytes())),
        StickyKey::Claim(path) => req
            .identity
            .and_then(|id| claim_key(id, path))
            .map(|k| key_hash(&k)),
        StickyKey::SourceIp => req.source_ip.map(|ip| match ip {
            std::net::IpAddr::V4(v4) => key_hash(&v4.octets()),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => key_hash(&v4.octets()),
                None => key_hash(&v6.octets()),
            },
        }),
    }
}

#[cfg(test)]
mod tests;
