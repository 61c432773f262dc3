//! The `verify_signature` option of `wasmesh serve` configurations: Envoy's
//! behaviour by default, `off` for a proxy without the function, nothing else
//! (the test-only broken hosts exist in scenario files only).

use std::path::Path;
use wasmesh::abi::foreign::VerifySignatureMode;
use wasmesh::scenario::RunOptions;
use wasmesh_serve::config::ServeConfig;

fn parse(extra: &str) -> Result<ServeConfig, String> {
    let text = format!(
        "listen: 127.0.0.1:0\nclusters:\n  upstream: {{endpoints: [\"127.0.0.1:9\"]}}\n{extra}"
    );
    ServeConfig::from_yaml_str(&text, Path::new("."), &RunOptions::default())
}

#[test]
fn default_native_off_and_refused_values() {
    let c = parse("").unwrap();
    assert_eq!(c.verify_signature, VerifySignatureMode::Native);
    assert_eq!(c.to_json()["verify_signature"], "native");
    let c = parse("verify_signature: off\n").unwrap();
    assert_eq!(c.verify_signature, VerifySignatureMode::Off);
    assert_eq!(c.to_json()["verify_signature"], "off");
    for bad in ["accept_all", "reject_all", "yes"] {
        let e = parse(&format!("verify_signature: {bad}\n")).unwrap_err();
        assert!(e.contains("verify_signature"), "{e}");
    }
}
