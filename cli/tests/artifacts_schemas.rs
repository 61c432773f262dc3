//! `schemas/<filter>.schema.json` are generated from the Rust types each
//! filter reads its configuration into (`schemars` derive behind the
//! filters' `schema` feature), and cannot drift from the filters' readers:
//!
//! * the committed files are what the types generate now (regenerate with
//!   `WASMESH_UPDATE_SCHEMAS=1 cargo test --profile host -p wasmesh-cli --test artifacts_schemas`);
//! * a document with every property the schema lists (recursively) is
//!   accepted by the filter's reader (the same code `proxy_on_configure`
//!   runs, compiled natively);
//! * each object of it reduced to the schema's `required` properties is
//!   accepted too (the schema does not call a field optional that the reader
//!   needs);
//! * an unknown field added to any object is refused, at its path, and the
//!   reader's list of expected fields there is exactly the schema's
//!   properties (a field the reader accepts but the schema lacks fails too).
//!
//! `wasmesh schema FILTER` prints the committed file.

use serde_json::{json, Map, Value};
use std::path::PathBuf;
use wasmesh::scenario::workspace_root;
use wasmesh_cli::package::FILTERS;

type Reader = fn(&[u8]) -> Result<(), String>;

fn read_jwt(b: &[u8]) -> Result<(), String> {
    jwt_authn::config::JwtAuthnConfig::parse(b)
        .map(drop)
        .map_err(|e| e.to_string())
}
fn read_rbac(b: &[u8]) -> Result<(), String> {
    rbac::config::RbacConfig::parse(b)
        .map(drop)
        .map_err(|e| e.to_string())
}
fn read_router(b: &[u8]) -> Result<(), String> {
    header_router::config::RouterConfig::parse(b)
        .map(drop)
        .map_err(|e| e.to_string())
}
fn read_fault(b: &[u8]) -> Result<(), String> {
    fault_injection::config::FaultConfig::parse(b)
        .map(drop)
        .map_err(|e| e.to_string())
}
fn read_metrics(b: &[u8]) -> Result<(), String> {
    custom_metrics::config::PluginConfig::parse(b)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// (crate name, schema generated now, reader).
fn filters() -> Vec<(&'static str, Value, Reader)> {
    let v = |s: schemars::Schema| s.to_value();
    vec![
        (
            "jwt-authn",
            v(schemars::schema_for!(jwt_authn::config::JwtAuthnConfig)),
            read_jwt as Reader,
        ),
        (
            "rbac",
            v(schemars::schema_for!(rbac::config::RbacConfig)),
            read_rbac,
        ),
        (
            "header-router",
            v(schemars::schema_for!(header_router::config::RouterConfig)),
            read_router,
        ),
        (
            "fault-injection",
            v(schemars::schema_for!(fault_injection::config::FaultConfig)),
            read_fault,
        ),
        (
            "custom-metrics",
            v(schemars::schema_for!(custom_metrics::config::PluginConfig)),
            read_metrics,
        ),
    ]
}

fn schema_path(crate_name: &str) -> PathBuf {
    workspace_root()
        .unwrap()
        .join("schemas")
        .join(format!("{crate_name}.schema.json"))
}

/// The file as committed: pretty JSON and a final newline.
fn render(schema: &Value) -> String {
    serde_json::to_string_pretty(schema).unwrap() + "\n"
}

#[test]
fn committed_schemas_are_generated_from_the_config_types() {
    let update = std::env::var_os("WASMESH_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    let all = filters();
    assert_eq!(all.len(), FILTERS.len());
    for (name, schema, _) in &all {
        assert!(
            FILTERS.iter().any(|f| f.crate_name == *name),
            "{name} is not a filter"
        );
        let path = schema_path(name);
        let want = render(schema);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &want).unwrap();
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale schema files (the configuration types changed): {stale:?}\n\
         regenerate with: WASMESH_UPDATE_SCHEMAS=1 cargo test --profile host -p wasmesh-cli --test artifacts_schemas"
    );
}

#[test]
fn the_command_prints_the_committed_schema() {
    for f in FILTERS {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmesh"))
            .args(["schema", f.artifact])
            .output()
            .unwrap();
        assert!(out.status.success());
        let file = std::fs::read_to_string(schema_path(f.crate_name)).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), file, "{}", f.artifact);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmesh"))
        .args(["schema", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Instances built from a schema.
struct Gen<'a> {
    root: &'a Value,
    /// `$ref`s being expanded (recursion ends in required-only objects).
    stack: Vec<String>,
}

impl Gen<'_> {
    fn resolve<'s>(&'s self, s: &'s Value) -> (&'s Value, Option<String>) {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                let target = &self.root["$defs"][name];
                assert!(!target.is_null(), "unresolved {r}");
                (target, Some(name.to_string()))
            }
            None => (s, None),
        }
    }

    /// A value of schema `s`; objects with every property when `full`
    /// (and not recursing), else with the required ones only.
    fn sample(&mut self, s: &Value, full: bool) -> Value {
        let (s, name) = self.resolve(s);
        let s = s.clone();
        let recursing = name.as_ref().is_some_and(|n| self.stack.contains(n));
        if let Some(n) = &name {
            self.stack.push(n.clone());
        }
        let v = self.sample_resolved(&s, full && !recursing);
        if name.is_some() {
            self.stack.pop();
        }
        v
    }

    fn sample_resolved(&mut self, s: &Value, full: bool) -> Value {
        if s == &Value::Bool(true) || s.as_object().is_some_and(|o| o.is_empty()) {
            return json!({});
        }
        for k in ["anyOf", "oneOf"] {
            if let Some(alts) = s.get(k).and_then(Value::as_array) {
                let alt = alts
                    .iter()
                    .find(|a| a.get("type") != Some(&json!("null")))
                    .unwrap();
                return self.sample(alt, full);
            }
        }
        if s.get("type").is_none() && s.get("enum").is_none() && s.get("const").is_none() {
            return json!({}); // any JSON value (e.g. an inline JWKS)
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e[0].clone();
        }
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        let ty = match &s["type"] {
            Value::String(t) => t.clone(),
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap()
                .to_string(),
            other => panic!("no type in {s} ({other})"),
        };
        match ty.as_str() {
            "string" => json!("x"),
            "integer" => json!(1),
            "number" => json!(1.5),
            "boolean" => json!(true),
            "array" => json!([self.sample(&s["items"], full)]),
            "object" => {
                let mut m = Map::new();
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    let required: Vec<&str> = s
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|r| r.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    for (k, p) in props {
                        if full || required.contains(&k.as_str()) {
                            m.insert(k.clone(), self.sample(p, full));
                        }
                    }
                } else if let Some(ap) = s.get("additionalProperties") {
                    m.insert("k".into(), self.sample(ap, full));
                }
                Value::Object(m)
            }
            t => panic!("type {t}"),
        }
    }

    /// The struct schema (with `properties`) of the value at `path` in an
    /// instance generated by `sample`, if it is one.
    fn object_schema_at(&self, path: &[Step]) -> Option<Value> {
        let mut s = self.root.clone();
        for step in path {
            s = self.unwrap(&s);
            s = match step {
                Step::Field(k) => match s["properties"].get(k) {
                    Some(p) => p.clone(),
                    None => s["additionalProperties"].clone(),
                },
                Step::Index(_) => s["items"].clone(),
            };
        }
        let s = self.unwrap(&s);
        if s.get("properties").is_some() {
            Some(s)
        } else {
            None
        }
    }

    /// Follows `$ref`s and the non-null branch of `anyOf`.
    fn unwrap(&self, s: &Value) -> Value {
        let mut s = self.resolve(s).0.clone();
        loop {
            let alt = ["anyOf", "oneOf"]
                .iter()
                .find_map(|k| s.get(*k).and_then(Value::as_array).cloned());
            match alt {
                Some(alts) => {
                    let a = alts
                        .iter()
                        .find(|a| a.get("type") != Some(&json!("null")))
                        .unwrap();
                    s = self.resolve(a).0.clone();
                }
                None => return s,
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Field(String),
    Index(usize),
}

/// Every object in `v` with its path.
fn objects(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(m) => {
            out.push(path.clone());
            for (k, x) in m {
                path.push(Step::Field(k.clone()));
                objects(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Step::Index(i));
                objects(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'v>(v: &'v mut Value, path: &[Step]) -> &'v mut Value {
    let mut v = v;
    for s in path {
        v = match s {
            Step::Field(k) => &mut v[k.as_str()],
            Step::Index(i) => &mut v[*i],
        };
    }
    v
}

/// The path as the filters' errors write it (`jwtRules[0].fromHeaders[0]`).
fn render_path(path: &[Step]) -> String {
    let mut p = String::new();
    for s in path {
        match s {
            Step::Field(k) if p.is_empty() => p.push_str(k),
            Step::Field(k) => p.push_str(&format!(".{k}")),
            Step::Index(i) => p.push_str(&format!("[{i}]")),
        }
    }
    p
}

/// The backquoted names after "expected" in an unknown-field error.
fn expected_fields(err: &str) -> Vec<String> {
    let tail = err.split("expected").nth(1).unwrap_or("");
    let mut names: Vec<String> = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[test]
fn schemas_and_readers_agree_on_every_field() {
    let mut checked = 0;
    for (name, schema, read) in filters() {
        let mut g = Gen {
            root: &schema,
            stack: Vec::new(),
        };
        let full = g.sample(&schema, true);
        let text = |v: &Value| serde_json::to_vec(v).unwrap();
        read(&text(&full)).unwrap_or_else(|e| {
            panic!("{name}: a document with every schema property is refused: {e}\n{full:#}")
        });
        let mut paths = Vec::new();
        objects(&full, &mut Vec::new(), &mut paths);
        for path in paths {
            let Some(os) = g.object_schema_at(&path) else {
                continue; // a map (header names, labels, ...): any key goes
            };
            let where_ = render_path(&path);
            // Only the required properties.
            let mut doc = full.clone();
            *at(&mut doc, &path) = g.sample_resolved(&os, false);
            read(&text(&doc)).unwrap_or_else(|e| {
                panic!("{name}: `{where_}` with only the schema's required fields is refused: {e}")
            });
            // An unknown field.
            let mut doc = full.clone();
            at(&mut doc, &path)
                .as_object_mut()
                .unwrap()
                .insert("zzUnknown".into(), json!(1));
            let err = read(&text(&doc)).expect_err(&format!(
                "{name}: an unknown field at `{where_}` is accepted"
            ));
            let field = if where_.is_empty() {
                "zzUnknown".to_string()
            } else {
                format!("{where_}.zzUnknown")
            };
            assert!(
                err.starts_with(&format!("{field}: unknown field `zzUnknown`")),
                "{name}: {err}"
            );
            let mut props: Vec<String> = os["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            props.sort();
            assert_eq!(
                expected_fields(&err),
                props,
                "{name}: at `{where_}` the reader knows other fields than the schema: {err}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} objects checked");
}

#[test]
fn manifest_and_example_configs_use_only_schema_fields() {
    // Cheap structural check against the schemas (every key is a property
    // of its object, or a map key): the examples users copy are described
    // by the schema they would validate against in an editor.
    fn walk(g: &Gen<'_>, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let s = g.unwrap(s);
        match v {
            Value::Object(m) => {
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    for (k, x) in m {
                        match props.get(k) {
                            Some(p) => walk(g, p, x, &format!("{at}.{k}"), errs),
                            None => errs.push(format!("{at}.{k}: not in the schema")),
                        }
                    }
                } else if let Some(ap) = s.get("additionalProperties") {
                    for (k, x) in m {
                        walk(g, ap, x, &format!("{at}.{k}"), errs);
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(g, &s["items"], x, &format!("{at}[{i}]"), errs);
                }
            }
            _ => {}
        }
    }
    let root = workspace_root().unwrap();
    let opts = wasmesh::scenario::RunOptions::default();
    let mut files: Vec<(Option<wasmesh_cli::package::Filter>, PathBuf)> =
        wasmesh::scenario::discover(&[root.join("manifests/istio")])
            .into_iter()
            .map(|f| (None, f))
            .collect();
    files.push((None, root.join("manifests/envoy/envoy.yaml")));
    for f in FILTERS {
        files.push((
            Some(*f),
            root.join("examples").join(f.crate_name).join("config.json"),
        ));
    }
    let all = filters();
    let mut errs = Vec::new();
    let mut n = 0;
    for (filter, file) in files {
        for t in wasmesh_cli::validate::targets_from_file(filter, &file, &opts).unwrap() {
            let stem = t.wasm.file_stem().unwrap().to_string_lossy().into_owned();
            let f = wasmesh_cli::package::Filter::find(&stem).unwrap();
            let (_, schema, _) = all.iter().find(|(c, _, _)| *c == f.crate_name).unwrap();
            let g = Gen {
                root: schema,
                stack: Vec::new(),
            };
            let v: Value = serde_json::from_slice(&t.configuration).unwrap();
            walk(&g, schema, &v, &file.display().to_string(), &mut errs);
            n += 1;
        }
    }
    assert!(n >= 15, "{n} configurations");
    assert!(errs.is_empty(), "{errs:#?}");
}
