//! `examples/rbac/config.json` is the configuration the example scenario
//! runs with; this keeps the two from drifting apart, and checks that the
//! configuration compiles natively too.

use std::path::Path;
use wasmesh::scenario::yaml_to_json;
use wasmesh::scenario::Scenario;

#[test]
fn example_config_is_the_scenario_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rbac");
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    let file: serde_json::Value = serde_json::from_str(&text).expect("config.json is JSON");
    let s = Scenario::from_file(&dir.join("scenario.yaml")).expect("scenario.yaml");
    let inline =
        yaml_to_json(s.spec.chain[0].config.as_ref().expect("config")).expect("config as JSON");
    assert_eq!(
        file, inline,
        "examples/rbac/config.json and scenario.yaml differ"
    );
    rbac::config::Config::from_json(text.as_bytes()).expect("the example configuration compiles");
}
