//! Everything a user copies from `manifests/` and `examples/` is accepted by
//! the filters it configures, and what must stay in sync with the code does:
//!
//! * every `WasmPlugin.pluginConfig` in `manifests/istio/` and every Wasm
//!   filter configuration of `manifests/envoy/envoy.yaml` is loaded into its
//!   filter in the harness (`proxy_on_configure`, the filter's own code);
//! * every `examples/<filter>/config.json` likewise;
//! * `WasmPlugin.sha256` is the digest `wasmesh package` gives the current
//!   build of that filter;
//! * the `stats_tags` of the Envoy bootstrap and of the Istio bootstrap
//!   override are the ones `custom_metrics` generates for its configuration;
//! * the kustomization lists every resource file.

use std::path::{Path, PathBuf};
use wasmesh::scenario::{default_wasm_dir, ensure_artifacts, workspace_root, RunOptions};
use wasmesh_cli::package::{build_image, sync_wasm_plugin_digests, Filter, FILTERS};
use wasmesh_cli::validate::{check, struct_json, targets_from_file, Outcome};

fn root() -> PathBuf {
    workspace_root().expect("workspace root")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    wasmesh::scenario::discover(&[dir.to_path_buf()])
}

fn report(outcomes: &[Outcome]) -> String {
    outcomes.iter().map(|o| o.to_string()).collect()
}

fn docs(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect()
}

#[test]
fn every_istio_plugin_config_is_accepted_by_its_filter() {
    ensure_artifacts().expect("artifacts");
    let opts = RunOptions::default();
    let mut outcomes = Vec::new();
    for f in yaml_files(&root().join("manifests/istio")) {
        for t in targets_from_file(None, &f, &opts).expect("manifest") {
            outcomes.push(check(&t));
        }
    }
    assert!(
        outcomes.iter().all(|o| o.accepted),
        "a manifest the filter refuses:\n{}",
        report(&outcomes)
    );
    // One WasmPlugin per filter.
    let mut modules: Vec<String> = outcomes
        .iter()
        .map(|o| o.wasm.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    modules.sort();
    let mut expected: Vec<String> = FILTERS
        .iter()
        .map(|f| format!("{}.wasm", f.artifact))
        .collect();
    expected.sort();
    assert_eq!(modules, expected, "{}", report(&outcomes));
    // No warnings either (e.g. a callout to a cluster the config does not name).
    for o in &outcomes {
        assert!(o.warnings.is_empty(), "{o}");
    }
}

#[test]
fn every_envoy_filter_config_is_accepted_by_its_filter() {
    ensure_artifacts().expect("artifacts");
    let targets = targets_from_file(
        None,
        &root().join("manifests/envoy/envoy.yaml"),
        &RunOptions::default(),
    )
    .expect("bootstrap");
    let outcomes: Vec<Outcome> = targets.iter().map(check).collect();
    assert_eq!(outcomes.len(), 5, "{}", report(&outcomes));
    for o in &outcomes {
        assert!(o.accepted && o.warnings.is_empty(), "{o}");
    }
    // In the documented order, each with its own module.
    let order: Vec<String> = outcomes
        .iter()
        .map(|o| o.wasm.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        order,
        [
            "jwt_authn",
            "rbac",
            "fault_injection",
            "custom_metrics",
            "header_router"
        ]
    );
}

#[test]
fn every_example_config_is_accepted_by_its_filter() {
    ensure_artifacts().expect("artifacts");
    let mut outcomes = Vec::new();
    for f in FILTERS {
        let path = root()
            .join("examples")
            .join(f.crate_name)
            .join("config.json");
        assert!(path.exists(), "{} is missing", path.display());
        for t in targets_from_file(Some(*f), &path, &RunOptions::default()).unwrap() {
            outcomes.push(check(&t));
        }
    }
    assert_eq!(outcomes.len(), FILTERS.len());
    assert!(outcomes.iter().all(|o| o.accepted), "{}", report(&outcomes));
}

#[test]
fn a_refused_manifest_fails_with_the_field_path() {
    ensure_artifacts().expect("artifacts");
    // The real rbac manifest with one typo: the check must refuse it and name
    // the field, or the tests above could not catch a broken manifest.
    let text = std::fs::read_to_string(root().join("manifests/istio/rbac.yaml")).unwrap();
    let broken = text.replacen("action: DENY", "action: DENNY", 1);
    assert_ne!(text, broken);
    let targets = wasmesh_cli::validate::targets_from_bytes(
        None,
        broken.as_bytes(),
        "rbac.yaml",
        Path::new("."),
        &RunOptions::default(),
    )
    .unwrap();
    let o = check(&targets[0]);
    assert!(!o.accepted, "{o}");
    assert!(
        o.errors.iter().any(|e| e.contains("policies[0].action")),
        "{o}"
    );
    // And the command's exit status says so.
    let dir = std::env::temp_dir().join(format!("wasmesh-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rbac.yaml");
    std::fs::write(&file, &broken).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmesh"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("INVALID") && stdout.contains("policies[0].action"),
        "{stdout}"
    );
}

#[test]
fn validate_refuses_a_repeated_key_with_its_path() {
    ensure_artifacts().expect("artifacts");
    // Issue 16: a repeated key was read as its last value (a DENY policy that
    // repeats `action: ALLOW` became an ALLOW policy). Every filter refuses
    // it, naming the object and the key; so do maps of user-chosen names.
    let cases: &[(&str, &str, &str)] = &[
        (
            "rbac",
            r#"{"policies":[{"name":"p","action":"DENY","action":"ALLOW","rules":[{}]}]}"#,
            "policies[0]: duplicate field `action`",
        ),
        (
            "rbac",
            r#"{"denyResponse":{"headers":{"location":"/a","location":"/b"}}}"#,
            "denyResponse.headers: duplicate key `location`",
        ),
        (
            "jwt-authn",
            r#"{"jwtRules":[{"issuer":"https://a","issuer":"https://b","jwksUri":"https://a/keys"}]}"#,
            "jwtRules[0]: duplicate field `issuer`",
        ),
        (
            "header-router",
            r#"{"routes":[{"match":[{"headers":{"x-a":{"exact":"1"},"x-a":{"exact":"2"}}}],"route":[{"destination":"a"}]}]}"#,
            "routes[0].match[0].headers: duplicate key `x-a`",
        ),
        (
            "fault-injection",
            r#"{"faults":[{"abort":{"httpStatus":503,"httpStatus":200}}]}"#,
            "faults[0].abort: duplicate field `httpStatus`",
        ),
        (
            "custom-metrics",
            r#"{"metrics":[{"name":"m","type":"COUNTER","dimensions":{"a":"request.method","a":"request.path"}}]}"#,
            "metrics[0].dimensions: duplicate key `a`",
        ),
    ];
    let dir = std::env::temp_dir().join(format!("wasmesh-duplicate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (filter, config, expected)) in cases.iter().enumerate() {
        let file = dir.join(format!("{i}.json"));
        std::fs::write(&file, config).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmesh"))
            .arg("validate")
            .arg(filter)
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success(),
            "{filter} accepted {config}: {stdout}"
        );
        assert!(
            stdout.contains("INVALID") && stdout.contains(expected),
            "{filter}: expected `{expected}` in:\n{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wasm_plugin_sha256_is_the_image_digest_of_the_current_build() {
    ensure_artifacts().expect("artifacts");
    let dir = root().join("manifests/istio");
    let digest = |f: Filter| -> Result<String, String> {
        let wasm = std::fs::read(default_wasm_dir().join(format!("{}.wasm", f.artifact)))
            .map_err(|e| e.to_string())?;
        Ok(build_image(f.artifact, &wasm, "0.1.0")?.digest_hex())
    };
    let stale = sync_wasm_plugin_digests(&dir, &digest, false).expect("manifests");
    assert!(
        stale.is_empty(),
        "WasmPlugin.sha256 no longer matches the filters built from this tree:\n{}\n\
         update them with: cargo run --profile host -p wasmesh-cli -- package --update-manifests manifests/istio",
        stale
            .iter()
            .map(|s| format!(
                "  {} {} ({}): {} -> {}\n",
                s.file.display(),
                s.plugin,
                s.filter,
                s.written,
                s.expected
            ))
            .collect::<String>()
    );
}

/// `stats_tags` entries as (tag_name, regex).
fn tags_of(v: &serde_yaml::Value) -> Vec<(String, String)> {
    v.as_sequence()
        .expect("stats_tags is a list")
        .iter()
        .map(|t| {
            (
                t["tag_name"].as_str().unwrap().to_string(),
                t["regex"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected_tags(metrics_config: &[u8]) -> Vec<(String, String)> {
    custom_metrics::config::stats_tags_for_config(metrics_config)
        .expect("metrics config")
        .into_iter()
        .map(|t| (t.tag_name, t.regex))
        .collect()
}

fn yaml_listing(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(n, r)| format!("  - {{tag_name: {n}, regex: '{r}'}}\n"))
        .collect()
}

#[test]
fn envoy_stats_tags_come_from_the_metrics_config() {
    let path = root().join("manifests/envoy/envoy.yaml");
    let targets = targets_from_file(None, &path, &RunOptions::default()).unwrap();
    let metrics = targets
        .iter()
        .find(|t| t.wasm.ends_with("custom_metrics.wasm"))
        .expect("custom_metrics in the bootstrap");
    let doc = &docs(&path)[0];
    let written = tags_of(&doc["stats_config"]["stats_tags"]);
    let expected = expected_tags(&metrics.configuration);
    assert_eq!(
        written,
        expected,
        "manifests/envoy/envoy.yaml stats_config.stats_tags should be:\n{}",
        yaml_listing(&expected)
    );
}

#[test]
fn istio_stats_tags_come_from_the_metrics_config() {
    let dir = root().join("manifests/istio");
    let plugin = docs(&dir.join("custom-metrics.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "WasmPlugin")
        .unwrap();
    let config =
        serde_json::to_vec(&struct_json(&plugin["spec"]["pluginConfig"]).unwrap()).unwrap();
    let expected = expected_tags(&config);
    let cm = docs(&dir.join("stats-tags.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("ConfigMap");
    let json = cm["data"]["custom_bootstrap.json"]
        .as_str()
        .expect("custom_bootstrap.json");
    let bootstrap: serde_yaml::Value =
        serde_yaml::from_str(json).expect("custom_bootstrap.json parses");
    let written = tags_of(&bootstrap["stats_config"]["stats_tags"]);
    assert_eq!(
        written,
        expected,
        "manifests/istio/stats-tags.yaml custom_bootstrap.json should list:\n{}",
        serde_json::to_string_pretty(
            &expected
                .iter()
                .map(|(n, r)| serde_json::json!({"tag_name": n, "regex": r}))
                .collect::<Vec<_>>()
        )
        .unwrap()
    );
    // Only the tags: the override is merged into Istio's bootstrap.
    assert_eq!(bootstrap.as_mapping().unwrap().len(), 1);
    assert_eq!(bootstrap["stats_config"].as_mapping().unwrap().len(), 1);
}

#[test]
fn kustomizations_list_every_resource() {
    for dir in ["manifests/istio", "manifests/istio/bookinfo"] {
        let dir = root().join(dir);
        let k = &docs(&dir.join("kustomization.yaml"))[0];
        let mut listed: Vec<String> = k["resources"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        listed.sort();
        let mut present: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        present.sort();
        assert_eq!(listed, present, "{}", dir.display());
        // Every resource parses and names its kind, version and namespace.
        for f in &present {
            for d in docs(&dir.join(f)) {
                assert!(d["apiVersion"].is_string(), "{f}: apiVersion");
                assert!(d["kind"].is_string(), "{f}: kind");
                assert!(d["metadata"]["name"].is_string(), "{f}: name");
                assert!(d["metadata"]["namespace"].is_string(), "{f}: namespace");
            }
        }
    }
}

#[test]
fn wasm_plugins_are_placed_deliberately() {
    // Phase and priority decide the order; the order is part of the design
    // (docs/deploy.md): jwt -> rbac -> fault -> metrics -> router.
    let dir = root().join("manifests/istio");
    let mut plugins = Vec::new();
    for f in yaml_files(&dir) {
        for d in docs(&f) {
            if d["kind"] == "WasmPlugin" {
                let spec = &d["spec"];
                let phase = match spec["phase"].as_str() {
                    Some("AUTHN") => 1,
                    Some("AUTHZ") => 2,
                    Some("STATS") => 3,
                    None => 4, // unspecified: at the end, before the router
                    Some(other) => panic!("unknown phase {other}"),
                };
                let priority = spec["priority"].as_i64().unwrap_or(0);
                plugins.push((
                    phase,
                    -priority,
                    spec["pluginName"].as_str().unwrap().to_string(),
                ));
                assert!(spec["failStrategy"].is_string(), "failStrategy is explicit");
                assert!(spec["url"].as_str().unwrap().starts_with("oci://"));
                assert_eq!(spec["imagePullPolicy"], "IfNotPresent");
                assert_eq!(spec["selector"]["matchLabels"]["istio"], "ingressgateway");
            }
        }
    }
    plugins.sort();
    let order: Vec<&str> = plugins.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(
        order,
        [
            "jwt_authn",
            "rbac",
            "fault_injection",
            "custom_metrics",
            "header_router"
        ]
    );
}
