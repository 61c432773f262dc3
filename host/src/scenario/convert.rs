//! From the scenario file's YAML to the host's types: JSON plugin
//! configurations, typed properties, the chain configuration, request
//! header maps.

use super::artifacts::{resolve_wasm, RunOptions};
use super::model::*;
use crate::chain::{ChainConfig, FailurePolicy, PluginConfig, Route, RouteAction};
use crate::headers::HeaderMap;
use crate::properties::{typed, PropertyMap};
use std::collections::BTreeMap;
use std::path::Path;

fn yaml_to_bytes(v: &serde_yaml::Value) -> Result<Vec<u8>, String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.as_bytes().to_vec(),
        serde_yaml::Value::Null => Vec::new(),
        other => serde_json::to_vec(&yaml_to_json(other)?).map_err(|e| e.to_string())?,
    })
}

/// Converts YAML to JSON (mapping keys become strings).
pub fn yaml_to_json(v: &serde_yaml::Value) -> Result<serde_json::Value, String> {
    Ok(match v {
        serde_yaml::Value::Null => serde_json::Value::Null,
        serde_yaml::Value::Bool(b) => serde_json::Value::Bool(*b),
        serde_yaml::Value::Number(n) => serde_json::to_value(n).map_err(|e| e.to_string())?,
        serde_yaml::Value::String(s) => serde_json::Value::String(s.clone()),
        serde_yaml::Value::Sequence(seq) => {
            serde_json::Value::Array(seq.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        serde_yaml::Value::Mapping(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .map_err(|e| e.to_string())?
                        .trim()
                        .to_string(),
                };
                o.insert(key, yaml_to_json(v)?);
            }
            serde_json::Value::Object(o)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(&t.value)?,
    })
}

/// Converts scenario properties to typed values.
pub fn typed_properties(
    props: &BTreeMap<String, serde_yaml::Value>,
) -> Result<PropertyMap, String> {
    let mut out = PropertyMap::new();
    for (k, v) in props {
        out.insert(k.clone(), typed(k, &yaml_to_json(v)?)?);
    }
    Ok(out)
}

/// Builds the chain configuration of a scenario.
pub fn chain_config(s: &Scenario, base: &Path, opts: &RunOptions) -> Result<ChainConfig, String> {
    let mut plugins = Vec::new();
    for p in &s.chain {
        let wasm = resolve_wasm(&p.wasm, base, opts)
            .map_err(|e| format!("chain plugin `{}`: {e}", p.name))?;
        let mut pc = PluginConfig::new(
            &p.name,
            wasm,
            p.config
                .as_ref()
                .map(yaml_to_bytes)
                .transpose()?
                .unwrap_or_default(),
        );
        if let Some(r) = &p.root_id {
            pc.root_id = r.clone();
        }
        if let Some(v) = &p.vm_id {
            pc.vm_id = v.clone();
        }
        if let Some(v) = &p.vm_config {
            pc.vm_config = yaml_to_bytes(v)?;
        }
        pc.env = p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(f) = &p.failure_policy {
            pc.failure_policy = FailurePolicy::parse(f).ok_or_else(|| {
                format!("chain plugin `{}`: unknown failure_policy `{f}`", p.name)
            })?;
        }
        plugins.push(pc);
    }
    let mut routes = Vec::new();
    for (i, r) in s.routes.iter().enumerate() {
        let action = if let Some(c) = &r.cluster {
            RouteAction::Cluster(c.clone())
        } else if let Some(h) = &r.cluster_header {
            RouteAction::ClusterHeader(h.clone())
        } else if !r.weighted_clusters.is_empty() {
            RouteAction::Weighted(
                r.weighted_clusters
                    .iter()
                    .map(|w| (w.name.clone(), w.weight))
                    .collect(),
            )
        } else {
            return Err(format!(
                "routes[{i}]: one of cluster, cluster_header, weighted_clusters is required"
            ));
        };
        routes.push(Route {
            name: r.name.clone(),
            prefix: r.prefix.clone(),
            path: r.path.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            action,
        });
    }
    Ok(ChainConfig {
        plugins,
        routes,
        upstream_clusters: Vec::new(),
    })
}

/// The request headers of a request spec, pseudo-headers first.
pub fn request_headers(req: &RequestSpec) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.add(
        b":method",
        req.method.as_deref().unwrap_or("GET").as_bytes(),
    );
    h.add(
        b":scheme",
        req.scheme.as_deref().unwrap_or("http").as_bytes(),
    );
    h.add(
        b":authority",
        req.authority.as_deref().unwrap_or("example.com").as_bytes(),
    );
    h.add(b":path", req.path.as_deref().unwrap_or("/").as_bytes());
    for (k, v) in &req.headers {
        let name = match k {
            serde_yaml::Value::String(s) => s.clone(),
            other => return Err(format!("request header name {other:?} is not a string")),
        };
        let values: Vec<String> = match v {
            serde_yaml::Value::Sequence(seq) => seq.iter().map(scalar).collect::<Result<_, _>>()?,
            other => vec![scalar(other)?],
        };
        for val in values {
            h.add(name.as_bytes(), val.as_bytes());
        }
    }
    Ok(h)
}

fn scalar(v: &serde_yaml::Value) -> Result<String, String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => String::new(),
        other => return Err(format!("header value {other:?} is not a scalar")),
    })
}
