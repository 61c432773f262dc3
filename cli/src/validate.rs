//! `wasmesh validate`: checks a filter configuration offline with the
//! filter's own code.
//!
//! Nothing is re-implemented here: the filter's `.wasm` is loaded in the
//! harness and started as Envoy starts it (`proxy_on_vm_start`, then
//! `proxy_on_configure` with the configuration). The configuration is
//! accepted exactly when the filter accepts it, and the errors printed are
//! the filter's own log lines (`rbac: invalid configuration:
//! policies[0].action: ...`).
//!
//! Inputs:
//!
//! * a configuration file (JSON, passed byte for byte; or a YAML mapping,
//!   converted to JSON) and the filter to run it with;
//! * Istio `WasmPlugin` resources (one or several YAML documents): each
//!   `spec.pluginConfig` is converted as Istio converts it (a protobuf
//!   `Struct` printed as JSON: numbers are doubles, keys sorted) and run with
//!   the filter named by `pluginName` or by the image name in `url`;
//! * an Envoy bootstrap: every `envoy.filters.http.wasm` filter's
//!   `configuration` is run with the module its `vm_config.code.local.filename`
//!   names (or our artifact of that file name), with the bootstrap's clusters
//!   known to the host.

/// The JSON Schema of `filter`'s configuration: `schemas/<crate>.schema.json`,
/// generated from the filter's configuration types (their `schema` feature)
/// and kept fresh by `tests/artifacts_schemas.rs`, which also checks it
/// against the filter's reader field by field.
pub fn schema(filter: Filter) -> &'static str {
    match filter.crate_name {
        "jwt-authn" => include_str!("../../schemas/jwt-authn.schema.json"),
        "rbac" => include_str!("../../schemas/rbac.schema.json"),
        "header-router" => include_str!("../../schemas/header-router.schema.json"),
        "fault-injection" => include_str!("../../schemas/fault-injection.schema.json"),
        "custom-metrics" => include_str!("../../schemas/custom-metrics.schema.json"),
        other => unreachable!("no schema for {other}"),
    }
}

use crate::chain::{ChainConfig, PluginConfig, Worker};
use crate::host::{Clock, HostShared};
use crate::package::Filter;
use crate::runtime::Runtime;
use crate::scenario::yaml_to_json;
use crate::scenario::{default_wasm_dir, RunOptions};
use crate::types::LogLevel;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The Envoy type of the Wasm HTTP filter's configuration.
pub const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// The protobuf type Envoy expects for `configuration`.
pub const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// One plugin configuration to check.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where it came from, for messages: `file.yaml: WasmPlugin ns/name`.
    pub label: String,
    /// The module to run.
    pub wasm: PathBuf,
    /// Plugin name and root id.
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    /// The configuration bytes `proxy_on_configure` reads.
    pub configuration: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub env: Vec<(String, String)>,
    /// Clusters the host knows (callouts to others fail as in Envoy).
    pub clusters: Vec<String>,
    /// Notes about how the target was built (not errors).
    pub notes: Vec<String>,
}

/// The outcome for one target.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub label: String,
    pub wasm: PathBuf,
    /// Whether the filter accepted the configuration.
    pub accepted: bool,
    /// The filter's error and critical log lines (the field paths are here).
    pub errors: Vec<String>,
    /// The filter's warning lines (and its error lines when it accepted the
    /// configuration, e.g. a callout to a cluster that does not exist).
    pub warnings: Vec<String>,
    /// Why the plugin did not start, if not only its configuration (a missing
    /// export, a trap...).
    pub failure: Option<String>,
    pub notes: Vec<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let module = self
            .wasm
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        writeln!(
            f,
            "{} ({module}): {}",
            self.label,
            if self.accepted { "OK" } else { "INVALID" }
        )?;
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        if !self.accepted && self.errors.is_empty() {
            if let Some(why) = &self.failure {
                writeln!(f, "  error: {why}")?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

/// Starts the target's plugin alone in a fresh host and reports whether its
/// configuration was accepted, with the filter's own log lines.
pub fn check(target: &Target) -> Outcome {
    let mut out = Outcome {
        label: target.label.clone(),
        wasm: target.wasm.clone(),
        accepted: false,
        errors: Vec::new(),
        warnings: Vec::new(),
        failure: None,
        notes: target.notes.clone(),
    };
    let runtime = match Runtime::shared() {
        Ok(r) => r,
        Err(e) => {
            out.failure = Some(e);
            return out;
        }
    };
    let host = HostShared::new(Clock::virtual_at(1_700_000_000), LogLevel::Info);
    for c in &target.clusters {
        host.add_cluster(c);
    }
    let mut pc = PluginConfig::new(&target.name, &target.wasm, target.configuration.clone());
    pc.root_id = target.root_id.clone();
    pc.vm_id = target.vm_id.clone();
    pc.vm_config = target.vm_config.clone();
    pc.env = target.env.clone();
    let config = ChainConfig {
        plugins: vec![pc],
        ..Default::default()
    };
    match Worker::new(0, runtime, host.clone(), config) {
        Ok(mut w) => {
            out.accepted = true;
            w.shutdown();
        }
        Err(e) => out.failure = Some(e),
    }
    for line in host.logs_since(0) {
        match line.level {
            LogLevel::Error | LogLevel::Critical => out.errors.push(line.message),
            LogLevel::Warn => out.warnings.push(line.message),
            _ => {}
        }
    }
    if out.accepted && !out.errors.is_empty() {
        // Accepted, but the filter complained (e.g. a callout it could not
        // send): not a configuration error, so report it as a warning.
        out.warnings.splice(0..0, std::mem::take(&mut out.errors));
    }
    out
}

/// Where a module comes from when none is named: the artifact directory.
fn artifact(filter: Filter, opts: &RunOptions) -> PathBuf {
    opts.wasm_dir
        .clone()
        .unwrap_or_else(default_wasm_dir)
        .join(format!("{}.wasm", filter.artifact))
}

/// Reads `file` and returns what to check in it. `filter` is required for a
/// plain configuration file; for `WasmPlugin`s it overrides the filter named
/// by `pluginName`/`url`.
pub fn targets_from_file(
    filter: Option<Filter>,
    file: &Path,
    opts: &RunOptions,
) -> Result<Vec<Target>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let label = file.display().to_string();
    let base = file.parent().unwrap_or(Path::new("."));
    targets_from_bytes(filter, &bytes, &label, base, opts)
}

/// As [`targets_from_file`], for content already read.
pub fn targets_from_bytes(
    filter: Option<Filter>,
    bytes: &[u8],
    label: &str,
    base: &Path,
    opts: &RunOptions,
) -> Result<Vec<Target>, String> {
    let plain = |filter: Option<Filter>, configuration: Vec<u8>| -> Result<Vec<Target>, String> {
        let f = filter.ok_or_else(|| {
            format!(
                "{label}: a plain configuration needs the filter to run it with: `wasmesh validate FILTER {label}` (FILTER: {})",
                Filter::names()
            )
        })?;
        Ok(vec![Target {
            label: label.to_string(),
            wasm: artifact(f, opts),
            name: f.artifact.to_string(),
            root_id: f.artifact.to_string(),
            vm_id: String::new(),
            configuration,
            vm_config: Vec::new(),
            env: Vec::new(),
            clusters: Vec::new(),
            notes: Vec::new(),
        }])
    };
    // JSON first: a JSON configuration goes to the filter byte for byte.
    if let Ok(j) = serde_json::from_slice::<Json>(bytes) {
        if j.get("static_resources").is_some() {
            let y: Yaml = serde_yaml::from_slice(bytes).map_err(|e| format!("{label}: {e}"))?;
            return bootstrap_targets(&y, label, base, opts);
        }
        return plain(filter, bytes.to_vec());
    }
    let docs = match parse_yaml_docs(bytes) {
        Ok(d) => d,
        // Neither JSON nor YAML: let the filter say what is wrong with it.
        Err(_) => return plain(filter, bytes.to_vec()),
    };
    let mut out = Vec::new();
    let mut recognised = false;
    for (i, doc) in docs.iter().enumerate() {
        let doc_label = if docs.len() > 1 {
            format!("{label}[{i}]")
        } else {
            label.to_string()
        };
        if doc.get("kind").and_then(Yaml::as_str) == Some("WasmPlugin") {
            recognised = true;
            out.push(wasm_plugin_target(filter, doc, label, opts)?);
        } else if doc.get("static_resources").is_some() {
            recognised = true;
            out.extend(bootstrap_targets(doc, &doc_label, base, opts)?);
        }
    }
    if recognised {
        return Ok(out);
    }
    match docs.as_slice() {
        // A YAML configuration (not a resource): converted to JSON.
        [doc] if doc.is_mapping() && doc.get("apiVersion").is_none() => {
            let j = yaml_to_json(doc)?;
            plain(filter, serde_json::to_vec(&j).map_err(|e| e.to_string())?)
        }
        _ => Ok(Vec::new()),
    }
}

fn parse_yaml_docs(bytes: &[u8]) -> Result<Vec<Yaml>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let mut docs = Vec::new();
    for d in serde_yaml::Deserializer::from_str(text) {
        let v = <Yaml as serde::Deserialize>::deserialize(d).map_err(|e| e.to_string())?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// The filter a `WasmPlugin` runs: `pluginName`, else the image name of
/// `url` (`oci://registry/wasmesh/jwt-authn:0.1.0` -> `jwt-authn`).
pub fn filter_of_wasm_plugin(spec: &Yaml) -> Option<Filter> {
    if let Some(f) = spec
        .get("pluginName")
        .and_then(Yaml::as_str)
        .and_then(Filter::find)
    {
        return Some(f);
    }
    let url = spec.get("url").and_then(Yaml::as_str)?;
    let last = url.rsplit('/').next()?;
    let last = last.split(['@', ':']).next()?;
    Filter::find(last)
}

fn wasm_plugin_target(
    filter: Option<Filter>,
    doc: &Yaml,
    file_label: &str,
    opts: &RunOptions,
) -> Result<Target, String> {
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Yaml::as_str)
        .unwrap_or("");
    let ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Yaml::as_str)
        .unwrap_or("default");
    let label = format!("{file_label}: WasmPlugin {ns}/{name}");
    let spec = doc.get("spec").ok_or_else(|| format!("{label}: no spec"))?;
    let f = filter.or_else(|| filter_of_wasm_plugin(spec)).ok_or_else(|| {
        format!(
            "{label}: cannot tell which filter it runs (pluginName or url naming one of {}); name it: `wasmesh validate FILTER FILE`",
            Filter::names()
        )
    })?;
    let configuration = match spec.get("pluginConfig") {
        None | Some(Yaml::Null) => Vec::new(),
        Some(pc) => {
            let j = struct_json(pc).map_err(|e| format!("{label}: spec.pluginConfig: {e}"))?;
            match &j {
                Json::Object(m) if m.is_empty() => Vec::new(),
                Json::Object(_) => serde_json::to_vec(&j).map_err(|e| e.to_string())?,
                _ => return Err(format!("{label}: spec.pluginConfig must be a mapping")),
            }
        }
    };
    let mut env = Vec::new();
    if let Some(vars) = spec
        .get("vmConfig")
        .and_then(|v| v.get("env"))
        .and_then(Yaml::as_sequence)
    {
        for v in vars {
            if let (Some(k), Some(val)) = (
                v.get("name").and_then(Yaml::as_str),
                v.get("value").and_then(Yaml::as_str),
            ) {
                env.push((k.to_string(), val.to_string()));
            }
        }
    }
    let mut notes = Vec::new();
    let clusters = istio_clusters(&configuration);
    if !clusters.is_empty() {
        notes.push(format!(
            "assumed to exist in the mesh (a ServiceEntry or Service must provide them): {}",
            clusters.join(", ")
        ));
    }
    let root_id = spec
        .get("pluginName")
        .and_then(Yaml::as_str)
        .unwrap_or("")
        .to_string();
    Ok(Target {
        label,
        wasm: artifact(f, opts),
        // Istio names the plugin `<namespace>.<name>`.
        name: format!("{ns}.{name}"),
        root_id,
        vm_id: String::new(),
        configuration,
        vm_config: Vec::new(),
        env,
        clusters,
        notes,
    })
}

/// A YAML value as Istio hands a `google.protobuf.Struct` to the plugin
/// (`protomarshal.ToJSON`): every number is a double (integral values print
/// without a fraction), object keys come out sorted.
pub fn struct_json(v: &Yaml) -> Result<Json, String> {
    Ok(match v {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => {
            let f = n.as_f64().ok_or("number out of range")?;
            if !f.is_finite() {
                return Err(format!("{n}: not a finite number"));
            }
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Json::from(f as i64)
            } else {
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or("number out of range")?
            }
        }
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(s) => Json::Array(s.iter().map(struct_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(m) => {
            let mut entries = Vec::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                entries.push((key, struct_json(v)?));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut o = serde_json::Map::new();
            for (k, v) in entries {
                o.insert(k, v);
            }
            Json::Object(o)
        }
        Yaml::Tagged(t) => struct_json(&t.value)?,
    })
}

/// Istio cluster names a configuration refers to: every string of the form
/// `outbound|port|subset|host`, and for every `http(s)://host[:port]/...`
/// URL the cluster Istio generates for it (`outbound|443||host`).
fn istio_clusters(configuration: &[u8]) -> Vec<String> {
    let mut set = BTreeSet::new();
    if let Ok(j) = serde_json::from_slice::<Json>(configuration) {
        collect_clusters(&j, false, &mut set);
    }
    set.into_iter().collect()
}

/// Istio cluster names written out, and the clusters Istio derives for
/// URLs (`url` true: the value of a `...Uri`/`...Url` field such as
/// `jwksUri`; other strings that look like URLs, e.g. an RBAC
/// `requestPrincipals` entry `https://idp.example.com/*`, are not called).
fn collect_clusters(v: &Json, url: bool, set: &mut BTreeSet<String>) {
    match v {
        Json::String(s) => {
            if s.starts_with("outbound|") || s.starts_with("inbound|") {
                set.insert(s.clone());
            } else if let Some((scheme, rest)) = s.split_once("://").filter(|_| url) {
                let default_port = match scheme {
                    "https" => 443,
                    "http" => 80,
                    _ => return,
                };
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                if authority.is_empty() || authority.contains('@') {
                    return;
                }
                let (host, port) = match authority.rsplit_once(':') {
                    Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => {
                        match p.parse::<u16>() {
                            Ok(p) => (h.to_string(), p),
                            Err(_) => (authority.to_string(), default_port),
                        }
                    }
                    _ => (authority.to_string(), default_port),
                };
                set.insert(format!("outbound|{port}||{host}"));
            }
        }
        Json::Array(a) => a.iter().for_each(|x| collect_clusters(x, url, set)),
        Json::Object(o) => o.iter().for_each(|(k, x)| {
            let url = ["Uri", "Url", "uri", "url"]
                .iter()
                .any(|u| k.ends_with(u) && k.len() > u.len());
            collect_clusters(x, url, set)
        }),
        _ => {}
    }
}

/// The Wasm HTTP filters of an Envoy bootstrap.
fn bootstrap_targets(
    doc: &Yaml,
    label: &str,
    base: &Path,
    opts: &RunOptions,
) -> Result<Vec<Target>, String> {
    let clusters: Vec<String> = doc
        .get("static_resources")
        .and_then(|s| s.get("clusters"))
        .and_then(Yaml::as_sequence)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Yaml::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    find_wasm_filters(doc, "", &mut found);
    let mut out = Vec::new();
    for (path, cfg) in found {
        let at = format!("{label}: {path}");
        let name = cfg
            .get("name")
            .and_then(Yaml::as_str)
            .unwrap_or("")
            .to_string();
        let root_id = cfg
            .get("root_id")
            .and_then(Yaml::as_str)
            .unwrap_or("")
            .to_string();
        let vm = cfg
            .get("vm_config")
            .ok_or_else(|| format!("{at}.config.vm_config: required"))?;
        let filename = vm
            .get("code")
            .and_then(|c| c.get("local"))
            .and_then(|l| l.get("filename"))
            .and_then(Yaml::as_str)
            .ok_or_else(|| {
                format!("{at}.config.vm_config.code.local.filename: required (remote code is not fetched offline)")
            })?;
        let mut notes = Vec::new();
        let wasm = resolve_module(filename, base, opts, &mut notes)
            .map_err(|e| format!("{at}.config.vm_config.code.local.filename: {e}"))?;
        let configuration = string_value(cfg.get("configuration"))
            .map_err(|e| format!("{at}.config.configuration: {e}"))?;
        let vm_config = string_value(vm.get("configuration"))
            .map_err(|e| format!("{at}.config.vm_config.configuration: {e}"))?;
        let mut env = Vec::new();
        if let Some(kv) = vm
            .get("environment_variables")
            .and_then(|e| e.get("key_values"))
            .and_then(Yaml::as_mapping)
        {
            for (k, v) in kv {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    env.push((k.to_string(), v.to_string()));
                }
            }
        }
        out.push(Target {
            label: format!("{label}: http filter `{name}`"),
            wasm,
            name,
            root_id,
            vm_id: vm
                .get("vm_id")
                .and_then(Yaml::as_str)
                .unwrap_or("")
                .to_string(),
            configuration,
            vm_config,
            env,
            clusters: clusters.clone(),
            notes,
        });
    }
    Ok(out)
}

/// Finds `typed_config` blocks of the Wasm HTTP filter anywhere in `v`,
/// returning their `config` with a path for messages.
fn find_wasm_filters<'a>(v: &'a Yaml, path: &str, out: &mut Vec<(String, &'a Yaml)>) {
    match v {
        Yaml::Mapping(m) => {
            if v.get("@type").and_then(Yaml::as_str) == Some(WASM_FILTER_TYPE) {
                if let Some(c) = v.get("config") {
                    out.push((path.to_string(), c));
                }
                return;
            }
            for (k, child) in m {
                let key = k.as_str().unwrap_or("?");
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                find_wasm_filters(child, &p, out);
            }
        }
        Yaml::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                find_wasm_filters(child, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A `google.protobuf.StringValue` in an `Any` (`{"@type": ..., value: "..."}`).
fn string_value(v: Option<&Yaml>) -> Result<Vec<u8>, String> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    match v.get("@type").and_then(Yaml::as_str) {
        Some(STRING_VALUE_TYPE) => {}
        Some(other) => return Err(format!("`{other}` is not {STRING_VALUE_TYPE}")),
        None => return Err("`@type` is required".into()),
    }
    match v.get("value") {
        None => Ok(Vec::new()),
        Some(Yaml::String(s)) => Ok(s.clone().into_bytes()),
        Some(_) => Err("`value` must be a string".into()),
    }
}

/// The module a bootstrap names: the path as written (relative to the
/// current directory, as Envoy reads it, or to the bootstrap's directory),
/// else our artifact of that file name.
fn resolve_module(
    filename: &str,
    base: &Path,
    opts: &RunOptions,
    notes: &mut Vec<String>,
) -> Result<PathBuf, String> {
    let p = Path::new(filename);
    let mut candidates = vec![p.to_path_buf()];
    if p.is_relative() {
        candidates.push(base.join(p));
        if let Some(root) = crate::scenario::workspace_root() {
            candidates.push(root.join(p));
        }
    }
    if let Some(found) = candidates.into_iter().find(|c| c.is_file()) {
        return Ok(found);
    }
    if let Some(name) = p.file_name() {
        let local = opts
            .wasm_dir
            .clone()
            .unwrap_or_else(default_wasm_dir)
            .join(name);
        if local.is_file() {
            notes.push(format!(
                "{filename} does not exist here; checked with {}",
                local.display()
            ));
            return Ok(local);
        }
    }
    Err(format!("wasm module `{filename}` not found"))
}

/// Checks every target of every file; `Err` if a file cannot be read or
/// understood. Files in directories are those ending in `.yaml`, `.yml` or
/// `.json` that hold a `WasmPlugin` or a bootstrap.
pub fn validate_paths(
    filter: Option<Filter>,
    paths: &[PathBuf],
    opts: &RunOptions,
) -> Result<Vec<Outcome>, String> {
    let mut outcomes = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = crate::scenario::discover(std::slice::from_ref(p))
                .into_iter()
                .filter(|f| {
                    matches!(
                        f.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect();
            files.sort();
            for f in files {
                // In a directory only resources count; plain configurations
                // need to be named with their filter.
                let targets = targets_from_file(None, &f, opts).unwrap_or_default();
                outcomes.extend(targets.iter().map(check));
            }
        } else {
            let targets = targets_from_file(filter, p, opts)?;
            if targets.is_empty() {
                return Err(format!(
                    "{}: no WasmPlugin, Envoy bootstrap or configuration found",
                    p.display()
                ));
            }
            outcomes.extend(targets.iter().map(check));
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_conversion_is_istios() {
        let y: Yaml = serde_yaml::from_str(
            "b: 403\na: {z: 1.5, y: [1, 2.0, true, null, x]}\nbig: 1e300\nneg: -3",
        )
        .unwrap();
        let j = struct_json(&y).unwrap();
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"a":{"y":[1,2,true,null,"x"],"z":1.5},"b":403,"big":1e+300,"neg":-3}"#
        );
    }

    #[test]
    fn istio_cluster_names() {
        let c = istio_clusters(
            br#"{"jwtRules":[{"jwksUri":"https://idp.example.com/keys"},
                {"jwksUri":"http://idp.local:8080/k","jwksCluster":"outbound|8080||idp.local"}],
                "x":"not a url",
                "requestPrincipals":["https://other.example.com/*"]}"#,
        );
        assert_eq!(
            c,
            vec![
                "outbound|443||idp.example.com".to_string(),
                "outbound|8080||idp.local".to_string()
            ]
        );
    }

    #[test]
    fn plugin_filter_from_name_or_url() {
        let spec: Yaml =
            serde_yaml::from_str("pluginName: rbac\nurl: oci://r/x/jwt-authn:1").unwrap();
        assert_eq!(filter_of_wasm_plugin(&spec).unwrap().artifact, "rbac");
        let spec: Yaml =
            serde_yaml::from_str("pluginName: mine\nurl: oci://r.example/wasmesh/jwt-authn:0.1.0")
                .unwrap();
        assert_eq!(filter_of_wasm_plugin(&spec).unwrap().artifact, "jwt_authn");
        let spec: Yaml =
            serde_yaml::from_str("url: oci://r.example/wasmesh/header-router@sha256:abcd").unwrap();
        assert_eq!(
            filter_of_wasm_plugin(&spec).unwrap().artifact,
            "header_router"
        );
        let spec: Yaml = serde_yaml::from_str("url: oci://r.example/other:1").unwrap();
        assert!(filter_of_wasm_plugin(&spec).is_none());
    }

    #[test]
    fn inputs_are_recognised() {
        let opts = RunOptions {
            wasm_dir: Some(PathBuf::from("/nonexistent")),
            echo_logs: false,
        };
        let rbac = Filter::find("rbac");
        // JSON is passed byte for byte.
        let t = targets_from_bytes(
            rbac,
            b" {\"policies\": []} ",
            "c.json",
            Path::new("."),
            &opts,
        )
        .unwrap();
        assert_eq!(t[0].configuration, b" {\"policies\": []} ");
        // Invalid JSON too (the filter reports it).
        let t =
            targets_from_bytes(rbac, b"{\"policies\": [", "c.json", Path::new("."), &opts).unwrap();
        assert_eq!(t[0].configuration, b"{\"policies\": [");
        assert!(targets_from_bytes(None, b"{}", "c.json", Path::new("."), &opts).is_err());
        // WasmPlugins, several per file, filter from pluginName.
        let y = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: a, namespace: n}\nspec:\n  pluginName: rbac\n  pluginConfig: {policies: []}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\nkind: WasmPlugin\nmetadata: {name: b}\nspec: {url: 'oci://x/wasmesh/fault-injection:1'}\n";
        let t = targets_from_bytes(None, y.as_bytes(), "p.yaml", Path::new("."), &opts).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].label, "p.yaml: WasmPlugin n/a");
        assert_eq!(t[0].name, "n.a");
        assert_eq!(t[0].configuration, br#"{"policies":[]}"#);
        assert!(t[1].wasm.ends_with("fault_injection.wasm"));
        assert!(t[1].configuration.is_empty());
    }
}
