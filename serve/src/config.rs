//! The configuration of `wasmesh serve`: the native YAML file
//! ([`ServeFile`]) and the validated, effective configuration
//! ([`ServeConfig`]) that the server runs (also built from an Envoy
//! bootstrap by [`super::envoy`]).

use crate::chain::{ChainConfig, Route};
use crate::properties::PropertyMap;
use crate::scenario::model::{PluginSpec, Scenario as ScenarioModel, WeightedCluster};
use crate::scenario::{chain_config, typed_properties, RunOptions};
use crate::types::LogLevel;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The native `wasmesh serve` configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    /// Address of the HTTP listener (`127.0.0.1:10000` by default; port 0
    /// picks a free port).
    pub listen: Option<String>,
    /// Worker threads, each with its own VM per plugin (default 2).
    pub workers: Option<usize>,
    /// Host log level for plugin logs (default `info`).
    pub log_level: Option<String>,
    /// Where access log lines go: `stdout` (default), `stderr`, `off`, or a file path.
    pub access_log: Option<String>,
    /// The admin listener (`{listen: 127.0.0.1:9901}` or just the address); none by default.
    pub admin: Option<AdminSpec>,
    /// Plugins in request order (the shape of scenario files' `chain`).
    #[serde(default)]
    pub chain: Vec<PluginSpec>,
    /// The route table: first match wins, chosen after the request filters ran.
    #[serde(default)]
    pub routes: Vec<RouteFileSpec>,
    /// Upstream clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterFileSpec>,
    /// Host-level properties (`node.metadata.*`, ...), visible to every context.
    #[serde(default)]
    pub properties: BTreeMap<String, serde_yaml::Value>,
    /// Envoy `stats_config.stats_tags`: `{tag_name, regex}` entries applied to
    /// stat names for `/stats/prometheus`. Default: the Istio standard labels
    /// plus every other `name=.=value;.;` label found in a metric name.
    pub stats_tags: Option<Vec<StatsTagSpec>>,
    /// How long shutdown waits for in-flight requests (default `10s`).
    pub drain_timeout: Option<String>,
    /// Value of the `server` response header (Envoy's `server_name`, default `envoy`).
    pub server_name: Option<String>,
    /// Envoy's HTTP connection manager `stat_prefix` (default `ingress_http`).
    pub stat_prefix: Option<String>,
    /// Envoy's foreign function `verify_signature`: `native` (default,
    /// OpenSSL) or `off` (a proxy without it: `NOT_FOUND`).
    pub verify_signature: Option<String>,
    /// The connection manager's timeouts and limits, with Envoy's names
    /// (`per_connection_buffer_limit_bytes`, `stream_idle_timeout`, ...).
    pub limits: Option<super::limits::LimitsSpec>,
}

/// The admin listener: an address, or `{listen: address}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AdminSpec {
    Address(String),
    Full {
        /// Address of the admin listener.
        listen: String,
    },
}

/// A route of the native file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteFileSpec {
    /// Route name (`xds.route_name`).
    #[serde(default)]
    pub name: String,
    /// Path prefix to match.
    pub prefix: Option<String>,
    /// Exact path to match (without the query).
    pub path: Option<String>,
    /// Header name -> exact value (`null`: present).
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    /// A fixed cluster.
    pub cluster: Option<String>,
    /// Take the cluster from this request header (Envoy's `cluster_header`).
    #[serde(alias = "clusterHeader")]
    pub cluster_header: Option<String>,
    /// Weighted clusters, drawn per request.
    #[serde(default, alias = "weightedClusters")]
    pub weighted_clusters: Vec<WeightedCluster>,
    /// Upstream request timeout for this route (overrides the cluster's).
    pub timeout: Option<String>,
}

/// A cluster of the native file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterFileSpec {
    /// `host:port` endpoints (IP addresses or `localhost`), round robin.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// TCP connect timeout (default `5s`, Envoy's default).
    pub connect_timeout: Option<String>,
    /// Upstream request timeout, from the request start until the response
    /// is complete (default `15s`, Envoy's route timeout; `0s` disables).
    pub timeout: Option<String>,
    /// Speak HTTP/2 (prior knowledge) to the endpoints; needed for gRPC.
    #[serde(default)]
    pub http2: bool,
}

/// One `stats_tags` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StatsTagSpec {
    /// The tag (Prometheus label) name.
    pub tag_name: String,
    /// Regex whose first capture group is cut out of the stat name and whose
    /// second (or first) capture group is the value.
    pub regex: Option<String>,
    /// Envoy's fixed-value tags are not supported (refused).
    pub fixed_value: Option<String>,
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    Stderr,
    Off,
    File(PathBuf),
}

/// A validated upstream cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    /// `None`: no request timeout.
    pub timeout: Option<Duration>,
    pub http2: bool,
}

/// How stat names are tagged for `/stats/prometheus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsTags {
    /// Configured entries (Envoy's `stats_tags`), plus Envoy's default tags.
    Configured(Vec<StatsTagSpec>),
    /// The Istio standard labels plus every label found in a name.
    Auto,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Native,
    EnvoyBootstrap,
}

/// The effective configuration the server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub source: ConfigSource,
    pub listen: SocketAddr,
    pub workers: usize,
    pub log_level: LogLevel,
    pub access_log: AccessLogTarget,
    pub admin: Option<SocketAddr>,
    /// Plugins, routes and the cluster names the router may pick.
    pub chain: ChainConfig,
    /// Per route (same order as `chain.routes`): its request timeout, if set.
    pub route_timeouts: Vec<Option<Duration>>,
    pub clusters: BTreeMap<String, Cluster>,
    /// Host-level properties.
    pub properties: PropertyMap,
    pub stats_tags: StatsTags,
    pub drain_timeout: Duration,
    pub server_name: String,
    pub stat_prefix: String,
    /// What the foreign function `verify_signature` does.
    pub verify_signature: crate::abi::foreign::VerifySignatureMode,
    /// Timeouts, buffer and connection limits.
    pub limits: super::limits::Limits,
    /// Parts of the input that were ignored (printed at start).
    pub warnings: Vec<String>,
    /// Seed of the random sources (plugins' VMs, weighted route picks, load
    /// balancing): `wasmesh serve --seed`; random when `None`.
    pub seed: Option<u64>,
}

/// Envoy's default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Envoy's default route timeout.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

impl ServeConfig {
    /// A configuration with one listener on `listen`, no plugins, no routes
    /// and no clusters (for building one in code).
    pub fn new(listen: SocketAddr) -> ServeConfig {
        ServeConfig {
            source: ConfigSource::Native,
            listen,
            workers: 2,
            log_level: LogLevel::Info,
            access_log: AccessLogTarget::Stdout,
            admin: None,
            chain: ChainConfig::default(),
            route_timeouts: Vec::new(),
            seed: None,
            clusters: BTreeMap::new(),
            properties: PropertyMap::new(),
            stats_tags: StatsTags::Auto,
            drain_timeout: Duration::from_secs(10),
            server_name: "envoy".into(),
            stat_prefix: "ingress_http".into(),
            verify_signature: Default::default(),
            limits: Default::default(),
            warnings: Vec::new(),
        }
    }

    /// Reads a configuration file: an Envoy bootstrap (it has
    /// `static_resources`) or the native format. Relative `wasm:` paths are
    /// relative to the file.
    pub fn from_file(path: &Path, opts: &RunOptions) -> Result<ServeConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml_str(&text, base, opts).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses YAML text (native format or Envoy bootstrap).
    pub fn from_yaml_str(
        text: &str,
        base: &Path,
        opts: &RunOptions,
    ) -> Result<ServeConfig, String> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
        let is_bootstrap = value
            .as_mapping()
            .is_some_and(|m| m.contains_key("static_resources"));
        if is_bootstrap {
            return super::envoy::from_bootstrap(&value, base, opts);
        }
        let file: ServeFile = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("invalid configuration: {}", e.inner())
            } else {
                format!("{path}: {}", e.inner())
            }
        })?;
        Self::from_native(&file, base, opts)
    }

    /// Validates a native file.
    pub fn from_native(
        f: &ServeFile,
        base: &Path,
        opts: &RunOptions,
    ) -> Result<ServeConfig, String> {
        let mut c = ServeConfig::new(
            parse_address(f.listen.as_deref().unwrap_or("127.0.0.1:10000"))
                .map_err(|e| format!("listen: {e}"))?,
        );
        c.workers = match f.workers {
            Some(0) => return Err("workers: must be at least 1".into()),
            Some(n) => n,
            None => 2,
        };
        if let Some(l) = &f.log_level {
            c.log_level =
                LogLevel::parse(l).ok_or_else(|| format!("log_level: unknown level `{l}`"))?;
        }
        if let Some(a) = &f.access_log {
            c.access_log = parse_access_log(a);
        }
        if let Some(a) = &f.admin {
            let addr = match a {
                AdminSpec::Address(s) | AdminSpec::Full { listen: s } => s,
            };
            c.admin = Some(parse_address(addr).map_err(|e| format!("admin.listen: {e}"))?);
        }
        for (name, spec) in &f.clusters {
            let at = |field: &str| format!("clusters.{name}.{field}");
            let mut endpoints = Vec::new();
            for (i, e) in spec.endpoints.iter().enumerate() {
                endpoints.push(
                    parse_address(e).map_err(|err| format!("{}[{i}]: {err}", at("endpoints")))?,
                );
            }
            let connect_timeout = match &spec.connect_timeout {
                Some(t) => {
                    parse_duration(t).map_err(|e| format!("{}: {e}", at("connect_timeout")))?
                }
                None => DEFAULT_CONNECT_TIMEOUT,
            };
            let timeout = match &spec.timeout {
                Some(t) => {
                    let d = parse_duration(t).map_err(|e| format!("{}: {e}", at("timeout")))?;
                    (!d.is_zero()).then_some(d)
                }
                None => Some(DEFAULT_REQUEST_TIMEOUT),
            };
            c.clusters.insert(
                name.clone(),
                Cluster {
                    name: name.clone(),
                    endpoints,
                    connect_timeout,
                    timeout,
                    http2: spec.http2,
                },
            );
        }
        let mut model = ScenarioModel {
            chain: f.chain.clone(),
            ..Default::default()
        };
        for (i, r) in f.routes.iter().enumerate() {
            model.routes.push(crate::scenario::model::RouteSpec {
                name: r.name.clone(),
                prefix: r.prefix.clone(),
                path: r.path.clone(),
                headers: r.headers.clone(),
                cluster: r.cluster.clone(),
                cluster_header: r.cluster_header.clone(),
                weighted_clusters: r.weighted_clusters.clone(),
            });
            c.route_timeouts.push(match &r.timeout {
                Some(t) => {
                    let d = parse_duration(t).map_err(|e| format!("routes[{i}].timeout: {e}"))?;
                    Some(d)
                }
                None => None,
            });
        }
        c.chain = chain_config(&model, base, opts)?;
        if c.chain.routes.is_empty() {
            // Without routes every request goes to `upstream`, as in scenarios.
            c.route_timeouts.clear();
        }
        c.properties = typed_properties(&f.properties)?;
        if let Some(tags) = &f.stats_tags {
            for (i, t) in tags.iter().enumerate() {
                if t.fixed_value.is_some() {
                    return Err(format!("stats_tags[{i}].fixed_value: not supported"));
                }
                if t.regex.is_none() {
                    return Err(format!("stats_tags[{i}].regex: required"));
                }
            }
            c.stats_tags = StatsTags::Configured(tags.clone());
        }
        if let Some(d) = &f.drain_timeout {
            c.drain_timeout = parse_duration(d).map_err(|e| format!("drain_timeout: {e}"))?;
        }
        if let Some(s) = &f.server_name {
            c.server_name = s.clone();
        }
        if let Some(v) = &f.verify_signature {
            use crate::abi::foreign::VerifySignatureMode as M;
            c.verify_signature = match M::parse(v) {
                Some(m @ (M::Native | M::Off)) => m,
                _ => return Err(format!("verify_signature: `{v}` is not `native` or `off`")),
            };
        }
        if let Some(s) = &f.stat_prefix {
            c.stat_prefix = s.clone();
        }
        if let Some(l) = &f.limits {
            l.apply(&mut c.limits)?;
        }
        c.finish()?;
        Ok(c)
    }

    /// Checks references between parts (routes -> clusters) and fills the
    /// router's list of known clusters.
    pub fn finish(&mut self) -> Result<(), String> {
        use crate::chain::RouteAction;
        for (i, r) in self.chain.routes.iter().enumerate() {
            let named: Vec<&String> = match &r.action {
                RouteAction::Cluster(c) => vec![c],
                RouteAction::Weighted(ws) => ws.iter().map(|(c, _)| c).collect(),
                RouteAction::ClusterHeader(_) => Vec::new(),
            };
            for c in named {
                if !self.clusters.contains_key(c) {
                    return Err(format!("routes[{i}]: unknown cluster `{c}`"));
                }
            }
        }
        if self.chain.routes.is_empty() && !self.clusters.contains_key("upstream") {
            return Err(
                "no routes: every request would go to cluster `upstream`, which is not configured"
                    .into(),
            );
        }
        self.chain.upstream_clusters = self.clusters.keys().cloned().collect();
        while self.route_timeouts.len() < self.chain.routes.len() {
            self.route_timeouts.push(None);
        }
        Ok(())
    }

    /// The route the router picks for `headers` (the same first-match rule
    /// as the chain's router), as an index.
    pub fn route_index(&self, headers: &crate::headers::HeaderMap) -> Option<usize> {
        route_index(&self.chain.routes, headers)
    }

    /// The effective configuration as JSON (`/config_dump`).
    pub fn to_json(&self) -> serde_json::Value {
        use crate::chain::RouteAction;
        use serde_json::json;
        let plugins: Vec<_> = self
            .chain
            .plugins
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "root_id": p.root_id,
                    "vm_id": p.vm_id,
                    "wasm": p.wasm.display().to_string(),
                    "configuration": String::from_utf8_lossy(&p.configuration),
                    "vm_config": String::from_utf8_lossy(&p.vm_config),
                    "env": p.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "failure_policy": match p.failure_policy {
                        crate::chain::FailurePolicy::FailClosed => "fail_closed",
                        crate::chain::FailurePolicy::FailOpen => "fail_open",
                        crate::chain::FailurePolicy::FailReload => "fail_reload",
                    },
                })
            })
            .collect();
        let routes: Vec<_> = self
            .chain
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut o = serde_json::Map::new();
                o.insert("name".into(), json!(r.name));
                if let Some(p) = &r.prefix {
                    o.insert("prefix".into(), json!(p));
                }
                if let Some(p) = &r.path {
                    o.insert("path".into(), json!(p));
                }
                if !r.headers.is_empty() {
                    o.insert(
                        "headers".into(),
                        json!(r
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect::<serde_json::Map<_, _>>()),
                    );
                }
                match &r.action {
                    RouteAction::Cluster(c) => o.insert("cluster".into(), json!(c)),
                    RouteAction::ClusterHeader(h) => o.insert("cluster_header".into(), json!(h)),
                    RouteAction::Weighted(ws) => o.insert(
                        "weighted_clusters".into(),
                        json!(ws
                            .iter()
                            .map(|(n, w)| json!({"name": n, "weight": w}))
                            .collect::<Vec<_>>()),
                    ),
                };
                if let Some(Some(t)) = self.route_timeouts.get(i) {
                    o.insert("timeout".into(), json!(format_duration(*t)));
                }
                serde_json::Value::Object(o)
            })
            .collect();
        let clusters: serde_json::Map<_, _> = self
            .clusters
            .values()
            .map(|c| {
                (
                    c.name.clone(),
                    json!({
                        "endpoints": c.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                        "connect_timeout": format_duration(c.connect_timeout),
                        "timeout": c.timeout.map(format_duration).unwrap_or_else(|| "0s".into()),
                        "http2": c.http2,
                    }),
                )
            })
            .collect();
        let props: serde_json::Map<_, _> = self
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.display())))
            .collect();
        json!({
            "source": match self.source {
                ConfigSource::Native => "wasmesh",
                ConfigSource::EnvoyBootstrap => "envoy_bootstrap",
            },
            "listen": self.listen.to_string(),
            "admin": self.admin.map(|a| a.to_string()),
            "workers": self.workers,
            "log_level": self.log_level.name(),
            "access_log": match &self.access_log {
                AccessLogTarget::Stdout => "stdout".to_string(),
                AccessLogTarget::Stderr => "stderr".to_string(),
                AccessLogTarget::Off => "off".to_string(),
                AccessLogTarget::File(p) => p.display().to_string(),
            },
            "stat_prefix": self.stat_prefix,
            "verify_signature": self.verify_signature.name(),
            "server_name": self.server_name,
            "drain_timeout": format_duration(self.drain_timeout),
            "chain": plugins,
            "routes": routes,
            "clusters": clusters,
            "properties": props,
            "stats_tags": match &self.stats_tags {
                StatsTags::Auto => json!("auto"),
                StatsTags::Configured(t) => json!(t),
            },
            "limits": self.limits.to_json(),
            "warnings": self.warnings,
        })
    }
}

/// First route whose `prefix`/`path`/`headers` all match (what the chain's
/// router does).
pub fn route_index(routes: &[Route], headers: &crate::headers::HeaderMap) -> Option<usize> {
    let path = headers.get(b":path").unwrap_or_default();
    let end = path
        .iter()
        .position(|c| *c == b'?' || *c == b'#')
        .unwrap_or(path.len());
    let url_path = &path[..end];
    routes.iter().position(|r| {
        r.prefix
            .as_ref()
            .is_none_or(|p| url_path.starts_with(p.as_bytes()))
            && r.path.as_ref().is_none_or(|p| url_path == p.as_bytes())
            && r.headers
                .iter()
                .all(|(n, v)| match (headers.get(n.as_bytes()), v) {
                    (Some(_), None) => true,
                    (Some(a), Some(b)) => a == b.as_bytes(),
                    (None, _) => false,
                })
    })
}

/// `stdout`, `stderr`, `off`/`none`, or a file path.
pub fn parse_access_log(s: &str) -> AccessLogTarget {
    match s {
        "stdout" | "-" => AccessLogTarget::Stdout,
        "stderr" => AccessLogTarget::Stderr,
        "off" | "none" | "" => AccessLogTarget::Off,
        p => AccessLogTarget::File(PathBuf::from(p)),
    }
}

/// `ip:port` or `localhost:port`.
pub fn parse_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("`{s}`: invalid port"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    match s.to_socket_addrs() {
        Ok(mut it) => it.next().ok_or_else(|| format!("`{s}`: no address")),
        Err(_) => Err(format!("`{s}` is not an address (expected ip:port)")),
    }
}

/// Durations as Envoy and Istio write them: `5s`, `0.25s`, `100ms`, `1m`,
/// `1h30m`, `2us`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}`: missing unit (e.g. `5s`, `100ms`)"))?;
        if num_end == 0 {
            return Err(format!("`{s}` is not a duration"));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("`{s}` is not a duration"))?;
        let after = &rest[num_end..];
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let scale = match &after[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            u => return Err(format!("`{s}`: unknown unit `{u}`")),
        };
        total += n * scale;
        rest = &after[unit_end..];
    }
    if !total.is_finite() || total > 1e10 {
        return Err(format!("`{s}`: out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// `1.5s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("0.25s").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_address("localhost:81").unwrap(),
            "127.0.0.1:81".parse().unwrap()
        );
        assert!(parse_address("nope").is_err());
    }

    #[test]
    fn native_file_validation() {
        let opts = RunOptions::default();
        let base = Path::new(".");
        let ok = ServeConfig::from_yaml_str(
            "listen: 127.0.0.1:0\nclusters: {a: {endpoints: [127.0.0.1:1], timeout: 2s}}\nroutes: [{prefix: /, cluster: a, timeout: 1s}, {prefix: /h, clusterHeader: x-c}]\n",
            base,
            &opts,
        )
        .unwrap();
        assert_eq!(ok.chain.routes.len(), 2);
        assert_eq!(ok.route_timeouts, vec![Some(Duration::from_secs(1)), None]);
        assert_eq!(ok.chain.upstream_clusters, vec!["a".to_string()]);
        let e = ServeConfig::from_yaml_str("routes: [{prefix: /, cluster: nope}]\n", base, &opts)
            .unwrap_err();
        assert!(e.contains("unknown cluster `nope`"), "{e}");
        let e = ServeConfig::from_yaml_str("listn: x\n", base, &opts).unwrap_err();
        assert!(e.contains("unknown field `listn`"), "{e}");
        let e = ServeConfig::from_yaml_str("chain: []\n", base, &opts).unwrap_err();
        assert!(e.contains("cluster `upstream`"), "{e}");
        let e = ServeConfig::from_yaml_str(
            "clusters: {upstream: {endpoints: [127.0.0.1:1], connect_timeout: 5}}\n",
            base,
            &opts,
        )
        .unwrap_err();
        assert!(e.contains("clusters.upstream.connect_timeout"), "{e}");
    }
}
