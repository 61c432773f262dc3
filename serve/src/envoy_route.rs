//! Routes of an Envoy bootstrap's route configuration: `match.prefix`,
//! `match.path`, `match.headers`; `route.cluster`, `route.cluster_header`,
//! `route.weighted_clusters`, `route.timeout`.

use super::envoy::{boolean, duration, get, map, seq, string, Reader, R};
use crate::chain::{Route, RouteAction};
use serde_yaml::Value;
use std::time::Duration;

impl Reader<'_> {
    pub(super) fn header_matcher(&mut self, v: &Value, path: &str) -> R<(String, Option<String>)> {
        let m = map(v, path)?;
        self.keys(
            m,
            path,
            &["name", "exact_match", "string_match", "present_match"],
            &[],
        )?;
        let name = string(
            get(m, "name").ok_or_else(|| format!("{path}.name: required"))?,
            &format!("{path}.name"),
        )?
        .to_ascii_lowercase();
        if let Some(v) = get(m, "exact_match") {
            return Ok((name, Some(string(v, &format!("{path}.exact_match"))?)));
        }
        if let Some(sm) = get(m, "string_match") {
            let sp = format!("{path}.string_match");
            let s = map(sm, &sp)?;
            self.keys(s, &sp, &["exact"], &[])?;
            let e = get(s, "exact").ok_or_else(|| format!("{sp}: only `exact` is supported"))?;
            return Ok((name, Some(string(e, &format!("{sp}.exact"))?)));
        }
        if let Some(p) = get(m, "present_match") {
            if !boolean(p, &format!("{path}.present_match"))? {
                return Err(format!("{path}.present_match: only `true` is supported"));
            }
        }
        Ok((name, None))
    }

    pub(super) fn route(&mut self, v: &Value, path: &str) -> R<(Route, Option<Duration>)> {
        let m = map(v, path)?;
        self.keys(
            m,
            path,
            &["name", "match", "route"],
            &["metadata", "decorator"],
        )?;
        let mut r = Route::default();
        if let Some(n) = get(m, "name") {
            r.name = string(n, &format!("{path}.name"))?;
        }
        let mpath = format!("{path}.match");
        let mm = map(
            get(m, "match").ok_or_else(|| format!("{mpath}: required"))?,
            &mpath,
        )?;
        self.keys(
            mm,
            &mpath,
            &["prefix", "path", "headers", "case_sensitive"],
            &[],
        )?;
        if let Some(cs) = get(mm, "case_sensitive") {
            if !boolean(cs, &format!("{mpath}.case_sensitive"))? {
                return Err(format!(
                    "{mpath}.case_sensitive: only case-sensitive matching is supported"
                ));
            }
        }
        r.prefix = get(mm, "prefix")
            .map(|p| string(p, &format!("{mpath}.prefix")))
            .transpose()?;
        r.path = get(mm, "path")
            .map(|p| string(p, &format!("{mpath}.path")))
            .transpose()?;
        if r.prefix.is_none() && r.path.is_none() {
            return Err(format!("{mpath}: one of prefix, path is required"));
        }
        if let Some(hs) = get(mm, "headers") {
            for (i, h) in seq(hs, &format!("{mpath}.headers"))?.iter().enumerate() {
                r.headers
                    .push(self.header_matcher(h, &format!("{mpath}.headers[{i}]"))?);
            }
        }
        let apath = format!("{path}.route");
        let a = map(
            get(m, "route").ok_or_else(|| {
                format!(
                    "{path}: only `route` actions are supported (not redirect or direct_response)"
                )
            })?,
            &apath,
        )?;
        self.keys(
            a,
            &apath,
            &["cluster", "cluster_header", "weighted_clusters", "timeout"],
            &["hash_policy"],
        )?;
        r.action = if let Some(c) = get(a, "cluster") {
            RouteAction::Cluster(string(c, &format!("{apath}.cluster"))?)
        } else if let Some(h) = get(a, "cluster_header") {
            RouteAction::ClusterHeader(
                string(h, &format!("{apath}.cluster_header"))?.to_ascii_lowercase(),
            )
        } else if let Some(w) = get(a, "weighted_clusters") {
            let wpath = format!("{apath}.weighted_clusters");
            let wm = map(w, &wpath)?;
            self.keys(wm, &wpath, &["clusters", "total_weight"], &[])?;
            let mut out = Vec::new();
            let list = get(wm, "clusters").ok_or_else(|| format!("{wpath}.clusters: required"))?;
            for (i, c) in seq(list, &format!("{wpath}.clusters"))?.iter().enumerate() {
                let cp = format!("{wpath}.clusters[{i}]");
                let cm = map(c, &cp)?;
                self.keys(cm, &cp, &["name", "weight"], &[])?;
                let name = string(
                    get(cm, "name").ok_or_else(|| format!("{cp}.name: required"))?,
                    &format!("{cp}.name"),
                )?;
                let weight = get(cm, "weight")
                    .and_then(|w| w.as_u64())
                    .ok_or_else(|| format!("{cp}.weight: required"))?;
                out.push((
                    name,
                    u32::try_from(weight).map_err(|_| format!("{cp}.weight: too large"))?,
                ));
            }
            RouteAction::Weighted(out)
        } else {
            return Err(format!(
                "{apath}: one of cluster, cluster_header, weighted_clusters is required"
            ));
        };
        let timeout = get(a, "timeout")
            .map(|t| duration(t, &format!("{apath}.timeout")))
            .transpose()?;
        Ok((r, timeout))
    }
}
