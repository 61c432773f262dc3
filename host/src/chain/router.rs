//! The router filter at the end of the chain: the route table (first
//! match wins, weighted clusters), the route cache, and the sinks that hand
//! headers, data and trailers to the upstream or the client.

use super::*;

impl Worker {
    pub(super) fn sink_headers(&mut self, sid: u64, dir: Dir, eos: bool) {
        match dir {
            Dir::Req => {
                let headers = self.streams[&sid].data.borrow().req_headers.clone();
                match self.route_for(sid) {
                    Ok((_route, cluster)) => {
                        self.push(
                            sid,
                            StreamEvent::UpstreamHeaders {
                                headers,
                                end_stream: eos,
                                cluster,
                            },
                        );
                    }
                    Err((status, details, flag)) => {
                        if let Some(s) = self.streams.get(&sid) {
                            s.data.borrow_mut().response_flags |= flag;
                        }
                        let n = self.plugins.len();
                        self.local_reply(
                            sid,
                            n,
                            LocalReply {
                                status,
                                body: Vec::new(),
                                headers: Vec::new(),
                                grpc_status: None,
                                details: details.into(),
                            },
                        );
                    }
                }
            }
            Dir::Resp => {
                let headers = self.streams[&sid]
                    .data
                    .borrow()
                    .resp_headers
                    .clone()
                    .unwrap_or_default();
                if let Some(s) = self.streams.get_mut(&sid) {
                    s.downstream_headers_sent = true;
                }
                self.push(
                    sid,
                    StreamEvent::DownstreamHeaders {
                        headers,
                        end_stream: eos,
                    },
                );
                if eos {
                    self.downstream_complete(sid);
                }
            }
        }
    }

    pub(super) fn sink_data(&mut self, sid: u64, dir: Dir, data: Vec<u8>, eos: bool) {
        match dir {
            Dir::Req => self.push(
                sid,
                StreamEvent::UpstreamData {
                    data,
                    end_stream: eos,
                },
            ),
            Dir::Resp => {
                if let Some(s) = self.streams.get(&sid) {
                    s.data.borrow_mut().resp_body_bytes += data.len() as u64;
                }
                self.push(
                    sid,
                    StreamEvent::DownstreamData {
                        data,
                        end_stream: eos,
                    },
                );
                if eos {
                    self.downstream_complete(sid);
                }
            }
        }
    }

    pub(super) fn sink_trailers(&mut self, sid: u64, dir: Dir) {
        let s = &self.streams[&sid];
        let d = s.data.borrow();
        let t = match dir {
            Dir::Req => d.req_trailers.clone(),
            Dir::Resp => d.resp_trailers.clone(),
        }
        .unwrap_or_default();
        drop(d);
        match dir {
            Dir::Req => self.push(sid, StreamEvent::UpstreamTrailers(t)),
            Dir::Resp => {
                self.push(sid, StreamEvent::DownstreamTrailers(t));
                self.downstream_complete(sid);
            }
        }
    }

    /// The stream's route, as Envoy's connection manager caches it: picked
    /// before the filters run (so `xds.route_name` / `xds.cluster_name` are
    /// known from the first callback) and picked again when a filter cleared
    /// the route cache since.
    pub(super) fn route_for(&mut self, sid: u64) -> RouteResult {
        let Some(s) = self.streams.get(&sid) else {
            return Err((503, "stream_gone", 0));
        };
        let data = s.data.clone();
        let generation = data.borrow().route_cache_cleared;
        if let Some((g, r)) = &s.route {
            if *g == generation {
                return r.clone();
            }
        }
        let r = pick_route(
            &self.config,
            &mut self.route_rng,
            &data.borrow().req_headers,
        );
        if let Some(s) = self.streams.get_mut(&sid) {
            {
                let mut d = s.data.borrow_mut();
                match &r {
                    Ok((route, cluster)) => {
                        d.route_name = Some(route.clone());
                        d.upstream_cluster = Some(cluster.clone());
                    }
                    Err(_) => {
                        d.route_name = None;
                        d.upstream_cluster = None;
                    }
                }
            }
            s.route = Some((generation, r.clone()));
        }
        r
    }
}

/// The router: first matching route, then its cluster.
pub(super) fn pick_route(config: &ChainConfig, rng: &mut u64, headers: &HeaderMap) -> RouteResult {
    if config.routes.is_empty() {
        return Ok((String::new(), "upstream".into()));
    }
    let path = headers.get_str(":path").unwrap_or_default();
    let url_path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    let route = config
        .routes
        .iter()
        .find(|r| {
            r.prefix
                .as_ref()
                .is_none_or(|p| url_path.starts_with(p.as_str()))
                && r.path.as_ref().is_none_or(|p| url_path == p)
                && r.headers
                    .iter()
                    .all(|(n, v)| match (headers.get_str(n.as_str()), v) {
                        (Some(_), None) => true,
                        (Some(a), Some(b)) => a == *b,
                        (None, _) => false,
                    })
        })
        .cloned()
        .ok_or((404, "route_not_found", response_flags::NO_ROUTE_FOUND))?;
    let cluster = match &route.action {
        RouteAction::Cluster(c) => c.clone(),
        RouteAction::ClusterHeader(h) => headers.get_str(h.as_str()).ok_or((
            503,
            "cluster_not_found",
            response_flags::NO_CLUSTER_FOUND,
        ))?,
        RouteAction::Weighted(ws) => {
            let total: u64 = ws.iter().map(|(_, w)| u64::from(*w)).sum();
            *rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut pick = if total == 0 { 0 } else { (*rng >> 33) % total };
            let mut chosen = ws.first().map(|(c, _)| c.clone()).unwrap_or_default();
            for (c, w) in ws.iter().map(|(c, w)| (c, *w)) {
                if pick < u64::from(w) {
                    chosen = c.clone();
                    break;
                }
                pick -= u64::from(w);
            }
            chosen
        }
    };
    if !config.upstream_clusters.is_empty() && !config.upstream_clusters.contains(&cluster) {
        return Err((503, "cluster_not_found", response_flags::NO_CLUSTER_FOUND));
    }
    Ok((route.name.clone(), cluster))
}

/// Envoy's connection-manager checks before any filter runs: `:method` and
/// `:path` must be present (`400`), header names must be valid tokens and
/// values must not contain NUL, CR or LF (the codec refuses them).
pub(super) fn invalid_request(h: &HeaderMap) -> Option<(u32, &'static str)> {
    if h.get(b":method").is_none_or(|m| m.is_empty())
        || h.get(b":path").is_none_or(|p| p.is_empty())
    {
        return Some((400, "missing_required_header"));
    }
    for (k, v) in h.entries() {
        let name = k.strip_prefix(b":").unwrap_or(k);
        let token = !name.is_empty()
            && name
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c));
        if !token {
            return Some((400, "http1.invalid_characters"));
        }
        if v.iter().any(|c| matches!(c, 0 | b'\r' | b'\n')) {
            return Some((400, "http1.invalid_characters"));
        }
    }
    None
}
