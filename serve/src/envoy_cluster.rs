//! Static clusters of an Envoy bootstrap: loopback endpoints, connect
//! timeout, HTTP/2 protocol options.

use super::config::{Cluster, DEFAULT_CONNECT_TIMEOUT};
use super::envoy::{duration, get, map, seq, string, Reader, HTTP_OPTIONS, R};
use serde_yaml::Value;

impl Reader<'_> {
    pub(super) fn cluster(&mut self, v: &Value, path: &str) -> R<Cluster> {
        let m = map(v, path)?;
        self.keys(
            m,
            path,
            &[
                "name",
                "type",
                "connect_timeout",
                "load_assignment",
                "http2_protocol_options",
                "typed_extension_protocol_options",
                "lb_policy",
            ],
            &[
                "circuit_breakers",
                "dns_lookup_family",
                "common_lb_config",
                "per_connection_buffer_limit_bytes",
                "upstream_connection_options",
                "close_connections_on_host_health_failure",
                "ignore_health_on_host_removal",
                "respect_dns_ttl",
                "dns_refresh_rate",
            ],
        )?;
        let name = string(
            get(m, "name").ok_or_else(|| format!("{path}.name: required"))?,
            &format!("{path}.name"),
        )?;
        if let Some(t) = get(m, "type") {
            let t = string(t, &format!("{path}.type"))?;
            if !matches!(t.as_str(), "STATIC" | "STRICT_DNS" | "LOGICAL_DNS") {
                return Err(format!("{path}.type: `{t}` is not supported (STATIC)"));
            }
        }
        if let Some(lb) = get(m, "lb_policy") {
            let lb = string(lb, &format!("{path}.lb_policy"))?;
            if lb != "ROUND_ROBIN" {
                self.warnings.push(format!(
                    "{path}.lb_policy {lb}: endpoints are picked round robin"
                ));
            }
        }
        let connect_timeout = get(m, "connect_timeout")
            .map(|t| duration(t, &format!("{path}.connect_timeout")))
            .transpose()?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let mut http2 = false;
        if let Some(h) = get(m, "http2_protocol_options") {
            map(h, &format!("{path}.http2_protocol_options"))?;
            http2 = true;
        }
        if let Some(t) = get(m, "typed_extension_protocol_options") {
            let tp = format!("{path}.typed_extension_protocol_options");
            let tm = map(t, &tp)?;
            self.keys(tm, &tp, &[HTTP_OPTIONS], &[])?;
            if let Some(o) = get(tm, HTTP_OPTIONS) {
                let op = format!("{tp}.{HTTP_OPTIONS}");
                let om = map(o, &op)?;
                self.keys(
                    om,
                    &op,
                    &["@type", "explicit_http_config"],
                    &["common_http_protocol_options"],
                )?;
                if let Some(e) = get(om, "explicit_http_config") {
                    let ep = format!("{op}.explicit_http_config");
                    let em = map(e, &ep)?;
                    self.keys(
                        em,
                        &ep,
                        &["http_protocol_options", "http2_protocol_options"],
                        &[],
                    )?;
                    http2 = em.contains_key("http2_protocol_options");
                }
            }
        }
        let mut endpoints = Vec::new();
        if let Some(la) = get(m, "load_assignment") {
            let lp = format!("{path}.load_assignment");
            let lm = map(la, &lp)?;
            self.keys(lm, &lp, &["cluster_name", "endpoints"], &["policy"])?;
            if let Some(eps) = get(lm, "endpoints") {
                for (i, e) in seq(eps, &format!("{lp}.endpoints"))?.iter().enumerate() {
                    let ep = format!("{lp}.endpoints[{i}]");
                    let em = map(e, &ep)?;
                    self.keys(
                        em,
                        &ep,
                        &["lb_endpoints"],
                        &["locality", "priority", "load_balancing_weight"],
                    )?;
                    let Some(lbs) = get(em, "lb_endpoints") else {
                        continue;
                    };
                    for (j, lb) in seq(lbs, &format!("{ep}.lb_endpoints"))?.iter().enumerate() {
                        let lbp = format!("{ep}.lb_endpoints[{j}]");
                        let lbm = map(lb, &lbp)?;
                        self.keys(
                            lbm,
                            &lbp,
                            &["endpoint"],
                            &["load_balancing_weight", "health_status", "metadata"],
                        )?;
                        let epp = format!("{lbp}.endpoint");
                        let epm = map(
                            get(lbm, "endpoint").ok_or_else(|| format!("{epp}: required"))?,
                            &epp,
                        )?;
                        self.keys(
                            epm,
                            &epp,
                            &["address"],
                            &["hostname", "health_check_config"],
                        )?;
                        let addr = self.socket_address(
                            get(epm, "address")
                                .ok_or_else(|| format!("{epp}.address: required"))?,
                            &format!("{epp}.address"),
                        )?;
                        if !addr.ip().is_loopback() {
                            return Err(format!(
                                "{epp}.address: {addr} is not a loopback address (wasmesh serve only talks to loopback endpoints)"
                            ));
                        }
                        endpoints.push(addr);
                    }
                }
            }
        }
        Ok(Cluster {
            name,
            endpoints,
            connect_timeout,
            timeout: Some(super::config::DEFAULT_REQUEST_TIMEOUT),
            http2,
        })
    }
}
