//! Every algorithm end to end through `jwt_authn.wasm`: keys generated here,
//! tokens signed here, plus the RFC 8037 Ed25519 key. Each valid token
//! passes with its provider's identity; the same token with one signature
//! byte changed is refused.

mod support;
use support::*;

const ALGS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

fn key_for(alg: &str) -> Key {
    match alg {
        a if a.starts_with("RS") || a.starts_with("PS") => Key::rsa(0),
        "ES256" => Key::p256(1),
        "ES384" => Key::p384(2),
        "EdDSA" => Key::ed(3),
        _ => Key::oct("hmac-secret-for-the-tests-0123456789"),
    }
}

fn flip_last_sig_byte(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut raw = wasmesh_jose::base64url_decode(sig).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    format!("{input}.{}", b64(&raw))
}

#[test]
fn each_algorithm_verifies_and_detects_tampering() {
    let mut rules = String::new();
    let mut steps = String::new();
    for alg in ALGS {
        let key = key_for(alg);
        let iss = format!("https://{}.example", alg.to_lowercase());
        rules.push_str(&format!(
            "    - {{name: {alg}, issuer: \"{iss}\", jwks: '{}', fromHeaders: [{{name: x-{alg}, prefix: \"Bearer \"}}]}}\n",
            jwks(&[key.jwk("k1", Some(alg))])
        ));
        let good = token(&key, alg, "k1", &claims(&iss, ""));
        let bad = flip_last_sig_byte(&good);
        steps.push_str(&format!(
            r#"  - name: {alg} valid
    request: {{path: /, headers: {{x-{alg}: "Bearer {good}"}}}}
    expect:
      status: 200
      upstream_headers_absent: [x-{alg}]
      filter_state: {{wasmesh.identity: {{contains: '"provider":"{alg}","iss":"{iss}","sub":"alice"'}}}}
  - name: {alg} altered signature
    request: {{path: /, headers: {{x-{alg}: "Bearer {bad}"}}}}
    expect: {{status: 401, body: Jwt verification fails}}
"#
        ));
    }
    run(&format!("chain:\n  - name: authn\n    wasm: jwt_authn\n    config:\n      jwtRules:\n{}\nrequests:\n{steps}", rules.replace("    - ", "        - ")));
}

/// RFC 8037 appendix A: the published Ed25519 key pair. Our signer
/// reproduces the RFC's signature (A.4), and a JWT signed with that key
/// verifies against the RFC's public JWK.
#[test]
fn rfc8037_ed25519_key() {
    let d = wasmesh_jose::base64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
    let kp = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::from_slice(&d).unwrap());
    assert_eq!(
        b64(kp.pk.as_ref()),
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    let key = Key::Ed(kp);
    let a4 = token_with_header(&key, r#"{"alg":"EdDSA"}"#, "Example of Ed25519 signing");
    assert_eq!(
        a4,
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
    let jwt = token_with_header(&key, r#"{"alg":"EdDSA"}"#, &claims("https://rfc8037", ""));
    run(&fill(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - issuer: https://rfc8037
          jwks: '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}'
      rules: [{match: {prefix: /}, requires: {provider: "https://rfc8037"}}]
requests:
  - name: JWT signed with the RFC 8037 key
    request: {path: /, headers: {authorization: "Bearer {{JWT}}"}}
    expect: {status: 200, filter_state: {wasmesh.identity: {contains: '"iss":"https://rfc8037"'}}}
  - name: the RFC's own JWS is not a JWT (payload is not JSON)
    request: {path: /, headers: {authorization: "Bearer {{A4}}"}}
    expect: {status: 401, body: Jwt payload is an invalid JSON}
"#,
        &[("JWT", &jwt), ("A4", &a4)],
    ));
}
