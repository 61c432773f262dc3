//! The subset of an Envoy v3 bootstrap that `wasmesh serve` runs: one static
//! listener whose HTTP connection manager has `envoy.filters.http.wasm`
//! filters and the router, a route configuration with one virtual host,
//! static clusters with loopback endpoints, the admin address,
//! `stats_config.stats_tags` and `node` (as properties).
//!
//! Every key is accounted for: a key that changes behaviour and is not
//! implemented is refused with an error naming it; a key that has no effect
//! on what a client or plugin sees (access log sinks, `stat_prefix`, stats
//! sinks, ...) is ignored with a warning.

use super::config::{parse_duration, ConfigSource, ServeConfig, StatsTagSpec, StatsTags};
use crate::chain::{FailurePolicy, PluginConfig};
use crate::properties::typed;
use crate::scenario::RunOptions;
use crate::scenario::{default_wasm_dir, yaml_to_json};
use serde_yaml::{Mapping, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) type R<T> = Result<T, String>;

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
pub(super) const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub(super) struct Reader<'a> {
    pub(super) warnings: Vec<String>,
    pub(super) base: &'a Path,
    pub(super) opts: &'a RunOptions,
}

pub(super) fn map<'v>(v: &'v Value, path: &str) -> R<&'v Mapping> {
    v.as_mapping()
        .ok_or_else(|| format!("{path}: expected a mapping"))
}

pub(super) fn seq<'v>(v: &'v Value, path: &str) -> R<&'v Vec<Value>> {
    v.as_sequence()
        .ok_or_else(|| format!("{path}: expected a list"))
}

pub(super) fn get<'v>(m: &'v Mapping, key: &str) -> Option<&'v Value> {
    m.get(key)
}

pub(super) fn string(v: &Value, path: &str) -> R<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{path}: expected a string")),
    }
}

pub(super) fn boolean(v: &Value, path: &str) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(format!("{path}: expected true or false")),
    }
}

pub(super) fn duration(v: &Value, path: &str) -> R<Duration> {
    match v {
        Value::String(s) => parse_duration(s).map_err(|e| format!("{path}: {e}")),
        Value::Mapping(m) => {
            let secs = get(m, "seconds").and_then(|s| s.as_i64()).unwrap_or(0);
            let nanos = get(m, "nanos").and_then(|s| s.as_i64()).unwrap_or(0);
            Ok(Duration::from_secs(secs.max(0) as u64) + Duration::from_nanos(nanos.max(0) as u64))
        }
        _ => Err(format!("{path}: expected a duration like `5s`")),
    }
}

impl Reader<'_> {
    /// Checks every key of `m`: `known` keys are handled by the caller,
    /// `ignored` keys are reported as warnings, anything else is an error.
    pub(super) fn keys(
        &mut self,
        m: &Mapping,
        path: &str,
        known: &[&str],
        ignored: &[&str],
    ) -> R<()> {
        for k in m.keys() {
            let k = k.as_str().unwrap_or("");
            if known.contains(&k) {
                continue;
            }
            if ignored.contains(&k) {
                self.warnings.push(format!(
                    "{}{k} is ignored (no effect on what clients and plugins see)",
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!("{path}.")
                    }
                ));
                continue;
            }
            let at = if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            };
            return Err(format!("{at}: not supported by wasmesh serve"));
        }
        Ok(())
    }

    pub(super) fn socket_address(&mut self, v: &Value, path: &str) -> R<SocketAddr> {
        let m = map(v, path)?;
        self.keys(m, path, &["socket_address"], &[])?;
        let sa_path = format!("{path}.socket_address");
        let sa = map(
            get(m, "socket_address").ok_or_else(|| format!("{sa_path}: required"))?,
            &sa_path,
        )?;
        self.keys(
            sa,
            &sa_path,
            &["address", "port_value", "protocol"],
            &["ipv4_compat", "resolver_name"],
        )?;
        if let Some(p) = get(sa, "protocol") {
            if string(p, &format!("{sa_path}.protocol"))? != "TCP" {
                return Err(format!("{sa_path}.protocol: only TCP is supported"));
            }
        }
        let addr = string(
            get(sa, "address").ok_or_else(|| format!("{sa_path}.address: required"))?,
            &format!("{sa_path}.address"),
        )?;
        let port = get(sa, "port_value")
            .and_then(|p| {
                p.as_u64()
                    .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or_else(|| format!("{sa_path}.port_value: required"))?;
        let port =
            u16::try_from(port).map_err(|_| format!("{sa_path}.port_value: out of range"))?;
        let ip: IpAddr = if addr == "localhost" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            addr.parse().map_err(|_| {
                format!("{sa_path}.address: `{addr}` is not an IP address (only IP addresses and localhost are supported)")
            })?
        };
        Ok(SocketAddr::new(ip, port))
    }

    /// A listening address: anything but loopback is served on 127.0.0.1.
    pub(super) fn listen_address(&mut self, v: &Value, path: &str) -> R<SocketAddr> {
        let a = self.socket_address(v, path)?;
        if a.ip().is_loopback() {
            return Ok(a);
        }
        self.warnings.push(format!(
            "{path}: {a} is served on 127.0.0.1:{} (wasmesh serve listens on loopback only)",
            a.port()
        ));
        Ok(SocketAddr::from(([127, 0, 0, 1], a.port())))
    }

    pub(super) fn resolve_wasm(&mut self, filename: &str, path: &str) -> R<PathBuf> {
        let p = Path::new(filename);
        let candidates = if p.is_absolute() {
            vec![p.to_path_buf()]
        } else {
            vec![self.base.join(p), p.to_path_buf()]
        };
        if let Some(found) = candidates.iter().find(|c| c.exists()) {
            return Ok(found.clone());
        }
        // `/etc/envoy/jwt_authn.wasm` in a manifest: run our artifact of that name.
        if let Some(name) = p.file_name() {
            let dir = self.opts.wasm_dir.clone().unwrap_or_else(default_wasm_dir);
            let local = dir.join(name);
            if local.exists() {
                self.warnings.push(format!(
                    "{path}: {filename} does not exist here; using {}",
                    local.display()
                ));
                return Ok(local);
            }
        }
        Err(format!(
            "{path}: wasm module `{filename}` not found (also looked for {} in the artifact directory; build it with `bash scripts/build-wasm.sh`)",
            p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ))
    }

    pub(super) fn any_string(&mut self, v: &Value, path: &str) -> R<Vec<u8>> {
        let m = map(v, path)?;
        self.keys(m, path, &["@type", "value"], &[])?;
        let t = get(m, "@type").map(|t| string(t, path)).transpose()?;
        match t.as_deref() {
            Some(STRING_VALUE) => {}
            Some(other) => {
                return Err(format!(
                    "{path}.@type: `{other}` is not supported (use {STRING_VALUE})"
                ))
            }
            None => return Err(format!("{path}.@type: required")),
        }
        Ok(match get(m, "value") {
            Some(v) => string(v, &format!("{path}.value"))?.into_bytes(),
            None => Vec::new(),
        })
    }

    pub(super) fn wasm_filter(&mut self, tc: &Mapping, path: &str) -> R<PluginConfig> {
        self.keys(tc, path, &["@type", "config"], &[])?;
        let cpath = format!("{path}.config");
        let c = map(
            get(tc, "config").ok_or_else(|| format!("{cpath}: required"))?,
            &cpath,
        )?;
        self.keys(
            c,
            &cpath,
            &[
                "name",
                "root_id",
                "vm_config",
                "configuration",
                "fail_open",
                "failure_policy",
            ],
            &["capability_restriction_config"],
        )?;
        let name = match get(c, "name") {
            Some(n) => string(n, &format!("{cpath}.name"))?,
            None => String::new(),
        };
        let root_id = match get(c, "root_id") {
            Some(n) => string(n, &format!("{cpath}.root_id"))?,
            None => String::new(),
        };
        let vpath = format!("{cpath}.vm_config");
        let vm = map(
            get(c, "vm_config").ok_or_else(|| format!("{vpath}: required"))?,
            &vpath,
        )?;
        self.keys(
            vm,
            &vpath,
            &[
                "vm_id",
                "runtime",
                "code",
                "configuration",
                "environment_variables",
            ],
            &["allow_precompiled", "nack_on_code_cache_miss"],
        )?;
        if let Some(rt) = get(vm, "runtime") {
            let rt = string(rt, &format!("{vpath}.runtime"))?;
            match rt.as_str() {
                "envoy.wasm.runtime.v8"
                | "envoy.wasm.runtime.wasmtime"
                | "envoy.wasm.runtime.wamr"
                | "envoy.wasm.runtime.wavm" => {}
                other => {
                    return Err(format!(
                        "{vpath}.runtime: `{other}` is not supported (wasmesh runs Wasm modules on wasmtime)"
                    ))
                }
            }
        }
        let code_path = format!("{vpath}.code");
        let code = map(
            get(vm, "code").ok_or_else(|| format!("{code_path}: required"))?,
            &code_path,
        )?;
        self.keys(code, &code_path, &["local"], &[])?;
        let local_path = format!("{code_path}.local");
        let local = map(
            get(code, "local").ok_or_else(|| format!("{local_path}: required"))?,
            &local_path,
        )?;
        self.keys(local, &local_path, &["filename"], &[])?;
        let filename = string(
            get(local, "filename").ok_or_else(|| format!("{local_path}.filename: required"))?,
            &format!("{local_path}.filename"),
        )?;
        let wasm = self.resolve_wasm(&filename, &format!("{local_path}.filename"))?;
        let configuration = match get(c, "configuration") {
            Some(v) => self.any_string(v, &format!("{cpath}.configuration"))?,
            None => Vec::new(),
        };
        let mut pc = PluginConfig::new(&name, wasm, configuration);
        pc.root_id = root_id;
        if let Some(v) = get(vm, "vm_id") {
            pc.vm_id = string(v, &format!("{vpath}.vm_id"))?;
        }
        if let Some(v) = get(vm, "configuration") {
            pc.vm_config = self.any_string(v, &format!("{vpath}.configuration"))?;
        }
        if let Some(env) = get(vm, "environment_variables") {
            let epath = format!("{vpath}.environment_variables");
            let e = map(env, &epath)?;
            self.keys(e, &epath, &["host_env_keys", "key_values"], &[])?;
            if let Some(keys) = get(e, "host_env_keys") {
                for (i, k) in seq(keys, &format!("{epath}.host_env_keys"))?
                    .iter()
                    .enumerate()
                {
                    let k = string(k, &format!("{epath}.host_env_keys[{i}]"))?;
                    if let Ok(v) = std::env::var(&k) {
                        pc.env.push((k, v));
                    }
                }
            }
            if let Some(kv) = get(e, "key_values") {
                for (k, v) in map(kv, &format!("{epath}.key_values"))? {
                    let k = string(k, &format!("{epath}.key_values"))?;
                    let v = string(v, &format!("{epath}.key_values.{k}"))?;
                    pc.env.push((k, v));
                }
            }
        }
        let fail_open = match get(c, "fail_open") {
            Some(v) => boolean(v, &format!("{cpath}.fail_open"))?,
            None => false,
        };
        pc.failure_policy = if fail_open {
            FailurePolicy::FailOpen
        } else {
            FailurePolicy::FailClosed
        };
        if let Some(p) = get(c, "failure_policy") {
            let s = string(p, &format!("{cpath}.failure_policy"))?;
            if s != "UNSPECIFIED" {
                pc.failure_policy = FailurePolicy::parse(&s).ok_or_else(|| {
                    format!("{cpath}.failure_policy: unknown value `{s}` (FAIL_CLOSED, FAIL_OPEN, FAIL_RELOAD)")
                })?;
            }
        }
        Ok(pc)
    }

    fn hcm(&mut self, tc: &Mapping, path: &str, c: &mut ServeConfig) -> R<()> {
        self.keys(
            tc,
            path,
            &[
                "@type",
                "stat_prefix",
                "codec_type",
                "route_config",
                "http_filters",
                "server_name",
                "normalize_path",
                "merge_slashes",
                "request_headers_timeout",
                "request_timeout",
                "stream_idle_timeout",
                "max_request_headers_kb",
                "common_http_protocol_options",
                "http2_protocol_options",
            ],
            &[
                "access_log",
                "use_remote_address",
                "xff_num_trusted_hops",
                "generate_request_id",
                "preserve_external_request_id",
                "always_set_request_id_in_response",
                "tracing",
                "http_protocol_options",
                "drain_timeout",
                "delayed_close_timeout",
                "internal_address_config",
                "forward_client_cert_details",
                "set_current_client_cert_details",
                "upgrade_configs",
                "server_header_transformation",
                "path_with_escaped_slashes_action",
            ],
        )?;
        if let Some(p) = get(tc, "stat_prefix") {
            c.stat_prefix = string(p, &format!("{path}.stat_prefix"))?;
        }
        if let Some(s) = get(tc, "server_name") {
            c.server_name = string(s, &format!("{path}.server_name"))?;
        }
        super::envoy_limits::hcm(tc, path, &mut c.limits, &mut self.warnings)?;
        for k in ["normalize_path", "merge_slashes"] {
            if let Some(v) = get(tc, k) {
                if boolean(v, &format!("{path}.{k}"))? {
                    return Err(format!("{path}.{k}: path normalisation is not supported"));
                }
            }
        }
        if let Some(ct) = get(tc, "codec_type") {
            let ct = string(ct, &format!("{path}.codec_type"))?;
            if ct != "AUTO" {
                self.warnings.push(format!(
                    "{path}.codec_type {ct}: wasmesh serve accepts HTTP/1.1 and HTTP/2 (prior knowledge) on every listener"
                ));
            }
        }
        let rpath = format!("{path}.route_config");
        let rc = map(
            get(tc, "route_config")
                .ok_or_else(|| format!("{rpath}: required (RDS is not supported)"))?,
            &rpath,
        )?;
        self.keys(
            rc,
            &rpath,
            &["name", "virtual_hosts"],
            &["validate_clusters"],
        )?;
        let vhs = seq(
            get(rc, "virtual_hosts").ok_or_else(|| format!("{rpath}.virtual_hosts: required"))?,
            &format!("{rpath}.virtual_hosts"),
        )?;
        if vhs.len() != 1 {
            return Err(format!(
                "{rpath}.virtual_hosts: exactly one virtual host is supported (host-based routing is not)"
            ));
        }
        let vpath = format!("{rpath}.virtual_hosts[0]");
        let vh = map(&vhs[0], &vpath)?;
        self.keys(vh, &vpath, &["name", "domains", "routes"], &[])?;
        if let Some(d) = get(vh, "domains") {
            let ds = seq(d, &format!("{vpath}.domains"))?;
            if !ds.iter().any(|d| d.as_str() == Some("*")) {
                self.warnings.push(format!(
                    "{vpath}.domains: every request is routed by this virtual host, whatever its host"
                ));
            }
        }
        if let Some(routes) = get(vh, "routes") {
            for (i, r) in seq(routes, &format!("{vpath}.routes"))?.iter().enumerate() {
                let (route, timeout) = self.route(r, &format!("{vpath}.routes[{i}]"))?;
                c.chain.routes.push(route);
                c.route_timeouts.push(timeout);
            }
        }
        if c.chain.routes.is_empty() {
            return Err(format!("{vpath}.routes: at least one route is required"));
        }
        let fpath = format!("{path}.http_filters");
        let filters = seq(
            get(tc, "http_filters").ok_or_else(|| format!("{fpath}: required"))?,
            &fpath,
        )?;
        let mut router = false;
        for (i, f) in filters.iter().enumerate() {
            let p = format!("{fpath}[{i}]");
            let fm = map(f, &p)?;
            self.keys(
                fm,
                &p,
                &["name", "typed_config", "disabled", "is_optional"],
                &[],
            )?;
            if router {
                return Err(format!("{p}: the router must be the last HTTP filter"));
            }
            let name = get(fm, "name")
                .map(|n| string(n, &format!("{p}.name")))
                .transpose()?
                .unwrap_or_default();
            if let Some(d) = get(fm, "disabled") {
                if boolean(d, &format!("{p}.disabled"))? {
                    return Err(format!("{p}.disabled: disabled filters are not supported"));
                }
            }
            let tpath = format!("{p}.typed_config");
            let tc = get(fm, "typed_config")
                .map(|t| map(t, &tpath))
                .transpose()?;
            let ty = tc
                .and_then(|t| get(t, "@type"))
                .map(|t| string(t, &format!("{tpath}.@type")))
                .transpose()?;
            match (name.as_str(), ty.as_deref()) {
                (_, Some(WASM_TYPE)) | ("envoy.filters.http.wasm", None) => {
                    let tc = tc.ok_or_else(|| format!("{tpath}: required"))?;
                    let mut pc = self.wasm_filter(tc, &tpath)?;
                    if pc.name.is_empty() {
                        pc.name = if name.is_empty() {
                            format!("wasm{i}")
                        } else {
                            name.clone()
                        };
                    }
                    c.chain.plugins.push(pc);
                }
                (_, Some(ROUTER_TYPE)) | ("envoy.filters.http.router", None) => {
                    if let Some(tc) = tc {
                        self.keys(tc, &tpath, &["@type"], &["dynamic_stats", "suppress_envoy_headers", "start_child_span"])?;
                    }
                    router = true;
                }
                (n, t) => {
                    return Err(format!(
                        "{p}: unsupported HTTP filter `{}` (only envoy.filters.http.wasm and envoy.filters.http.router)",
                        t.unwrap_or(n)
                    ))
                }
            }
        }
        if !router {
            return Err(format!(
                "{fpath}: the last HTTP filter must be envoy.filters.http.router"
            ));
        }
        Ok(())
    }

    fn listener(&mut self, v: &Value, path: &str, c: &mut ServeConfig) -> R<()> {
        let m = map(v, path)?;
        self.keys(
            m,
            path,
            &[
                "name",
                "address",
                "filter_chains",
                "per_connection_buffer_limit_bytes",
            ],
            &["traffic_direction", "access_log", "stat_prefix"],
        )?;
        super::envoy_limits::listener(m, path, &mut c.limits)?;
        c.listen = self.listen_address(
            get(m, "address").ok_or_else(|| format!("{path}.address: required"))?,
            &format!("{path}.address"),
        )?;
        let fcp = format!("{path}.filter_chains");
        let fcs = seq(
            get(m, "filter_chains").ok_or_else(|| format!("{fcp}: required"))?,
            &fcp,
        )?;
        if fcs.len() != 1 {
            return Err(format!("{fcp}: exactly one filter chain is supported"));
        }
        let fc_path = format!("{fcp}[0]");
        let fc = map(&fcs[0], &fc_path)?;
        self.keys(fc, &fc_path, &["filters"], &["name"])?;
        let np = format!("{fc_path}.filters");
        let nfs = seq(
            get(fc, "filters").ok_or_else(|| format!("{np}: required"))?,
            &np,
        )?;
        if nfs.len() != 1 {
            return Err(format!(
                "{np}: exactly one network filter (the HTTP connection manager) is supported"
            ));
        }
        let fp = format!("{np}[0]");
        let f = map(&nfs[0], &fp)?;
        self.keys(f, &fp, &["name", "typed_config"], &[])?;
        let tp = format!("{fp}.typed_config");
        let tc = map(
            get(f, "typed_config").ok_or_else(|| format!("{tp}: required"))?,
            &tp,
        )?;
        let ty = get(tc, "@type").and_then(|t| t.as_str()).unwrap_or("");
        if ty != HCM_TYPE {
            return Err(format!(
                "{fp}: unsupported network filter `{}` (only the HTTP connection manager)",
                if ty.is_empty() {
                    get(f, "name").and_then(|n| n.as_str()).unwrap_or("?")
                } else {
                    ty
                }
            ));
        }
        self.hcm(tc, &tp, c)
    }

    fn node(&mut self, v: &Value, c: &mut ServeConfig) -> R<()> {
        let m = map(v, "node")?;
        self.keys(
            m,
            "node",
            &["id", "cluster", "metadata"],
            &["locality", "user_agent_name"],
        )?;
        for k in ["id", "cluster"] {
            if let Some(x) = get(m, k) {
                let s = string(x, &format!("node.{k}"))?;
                c.properties
                    .insert(format!("node.{k}"), crate::properties::Value::String(s));
            }
        }
        if let Some(md) = get(m, "metadata") {
            flatten(md, "node.metadata", c)?;
        }
        Ok(())
    }
}

fn flatten(v: &Value, prefix: &str, c: &mut ServeConfig) -> R<()> {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let k = string(k, prefix)?;
                flatten(v, &format!("{prefix}.{k}"), c)?;
            }
        }
        other => {
            let j = yaml_to_json(other)?;
            c.properties.insert(prefix.to_string(), typed(prefix, &j)?);
        }
    }
    Ok(())
}

/// Reads an Envoy bootstrap.
pub fn from_bootstrap(v: &Value, base: &Path, opts: &RunOptions) -> R<ServeConfig> {
    let mut r = Reader {
        warnings: Vec::new(),
        base,
        opts,
    };
    let top = map(v, "bootstrap")?;
    r.keys(
        top,
        "",
        &[
            "static_resources",
            "admin",
            "stats_config",
            "node",
            "layered_runtime",
            "overload_manager",
        ],
        &[
            "stats_sinks",
            "stats_flush_interval",
            "watchdog",
            "watchdogs",
            "cluster_manager",
            "tracing",
            "enable_dispatcher_stats",
            "header_prefix_is_ignored",
        ],
    )?;
    let mut c = ServeConfig::new(SocketAddr::from(([127, 0, 0, 1], 10000)));
    c.source = ConfigSource::EnvoyBootstrap;
    let sr = map(
        get(top, "static_resources").ok_or("static_resources: required")?,
        "static_resources",
    )?;
    r.keys(sr, "static_resources", &["listeners", "clusters"], &[])?;
    let ls = seq(
        get(sr, "listeners").ok_or("static_resources.listeners: required")?,
        "static_resources.listeners",
    )?;
    if ls.len() != 1 {
        return Err("static_resources.listeners: exactly one listener is supported".into());
    }
    r.listener(&ls[0], "static_resources.listeners[0]", &mut c)?;
    if let Some(cs) = get(sr, "clusters") {
        for (i, cl) in seq(cs, "static_resources.clusters")?.iter().enumerate() {
            let cluster = r.cluster(cl, &format!("static_resources.clusters[{i}]"))?;
            if c.clusters.contains_key(&cluster.name) {
                return Err(format!(
                    "static_resources.clusters[{i}].name: duplicate cluster `{}`",
                    cluster.name
                ));
            }
            c.clusters.insert(cluster.name.clone(), cluster);
        }
    }
    if let Some(a) = get(top, "admin") {
        let am = map(a, "admin")?;
        r.keys(
            am,
            "admin",
            &["address"],
            &[
                "access_log_path",
                "access_log",
                "profile_path",
                "socket_options",
                "ignore_global_conn_limit",
            ],
        )?;
        if let Some(addr) = get(am, "address") {
            c.admin = Some(r.listen_address(addr, "admin.address")?);
        }
    }
    if let Some(s) = get(top, "stats_config") {
        let sm = map(s, "stats_config")?;
        r.keys(
            sm,
            "stats_config",
            &["stats_tags", "use_all_default_tags"],
            &["stats_matcher", "histogram_bucket_settings"],
        )?;
        let mut tags = Vec::new();
        if let Some(t) = get(sm, "stats_tags") {
            for (i, e) in seq(t, "stats_config.stats_tags")?.iter().enumerate() {
                let p = format!("stats_config.stats_tags[{i}]");
                let em = map(e, &p)?;
                r.keys(em, &p, &["tag_name", "regex", "fixed_value"], &[])?;
                let tag = StatsTagSpec {
                    tag_name: string(
                        get(em, "tag_name").ok_or_else(|| format!("{p}.tag_name: required"))?,
                        &format!("{p}.tag_name"),
                    )?,
                    regex: get(em, "regex")
                        .map(|x| string(x, &format!("{p}.regex")))
                        .transpose()?,
                    fixed_value: get(em, "fixed_value")
                        .map(|x| string(x, &format!("{p}.fixed_value")))
                        .transpose()?,
                };
                if tag.fixed_value.is_some() {
                    return Err(format!("{p}.fixed_value: not supported by wasmesh serve"));
                }
                if tag.regex.is_none() {
                    return Err(format!("{p}.regex: required"));
                }
                tags.push(tag);
            }
        }
        c.stats_tags = StatsTags::Configured(tags);
    } else {
        c.stats_tags = StatsTags::Configured(Vec::new());
    }
    if let Some(n) = get(top, "node") {
        r.node(n, &mut c)?;
    }
    if let Some(o) = get(top, "overload_manager") {
        super::envoy_limits::overload_manager(o, &mut c.limits, &mut r.warnings)?;
    }
    if let Some(l) = get(top, "layered_runtime") {
        super::envoy_limits::runtime(l, &mut c.limits, &mut r.warnings)?;
    }
    c.access_log = super::config::AccessLogTarget::Stdout;
    c.warnings = r.warnings;
    c.finish()?;
    Ok(c)
}
