//! Signatures verified by the host's `verify_signature` (Envoy's foreign
//! function) against the same tokens verified in wasm: valid, tampered,
//! wrong-key and wrong-algorithm tokens get the same verdict, status and
//! message on every host, and the stats show which path verified them. The
//! configuration-time probe is covered with a host that has the function, one
//! that lacks it, and broken hosts that answer `true` (or `false`) to
//! everything — those must not be trusted, so a tampered token is still
//! refused.

mod support;
use support::*;

struct Case {
    name: String,
    token: String,
    status: u32,
    body: &'static str,
    /// Whether a host with `verify_signature` verifies this signature.
    native: bool,
    /// Whether a signature is verified at all (a kid/alg mismatch is not).
    verified: bool,
}

fn flip_last_sig_byte(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut raw = wasmesh_jose::base64url_decode(sig).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    format!("{input}.{}", b64(&raw))
}

fn cases(iss: &str) -> Vec<Case> {
    let mut out = Vec::new();
    let ok = |name: &str, token: String, native: bool| Case {
        name: name.into(),
        token,
        status: 200,
        body: "",
        native,
        verified: true,
    };
    let fail = |name: &str, token: String, native: bool| Case {
        name: name.into(),
        token,
        status: 401,
        body: "Jwt verification fails",
        native,
        verified: true,
    };
    for (alg, key, other, native) in [
        ("RS256", Key::rsa(0), Key::rsa(1), true),
        ("RS384", Key::rsa(0), Key::rsa(1), true),
        ("RS512", Key::rsa(0), Key::rsa(1), true),
        ("ES256", Key::p256(1), Key::p256(11), true),
        ("ES384", Key::p384(2), Key::p384(12), true),
        ("PS256", Key::rsa(0), Key::rsa(1), false),
        ("EdDSA", Key::ed(3), Key::ed(13), false),
    ] {
        let kid = kid_of(alg);
        let claims = |n: u32| claims(iss, &format!(r#""n":{n}"#));
        let good = token(&key, alg, kid, &claims(1));
        out.push(ok(&format!("{alg} valid"), good.clone(), native));
        out.push(fail(
            &format!("{alg} tampered signature"),
            flip_last_sig_byte(&token(&key, alg, kid, &claims(2))),
            native,
        ));
        out.push(fail(
            &format!("{alg} payload altered"),
            {
                let parts: Vec<&str> = good.split('.').collect();
                format!("{}.{}.{}", parts[0], b64(claims(99).as_bytes()), parts[2])
            },
            native,
        ));
        out.push(fail(
            &format!("{alg} signed by another key"),
            token(&other, alg, kid, &claims(3)),
            native,
        ));
    }
    // Wrong algorithms against the RSA key `rsa` (no `alg` pinned).
    let rsa = Key::rsa(0);
    let good = token(&rsa, "RS256", "rsa", &claims(iss, r#""n":4"#));
    let (_, p, s) = {
        let v: Vec<&str> = good.split('.').collect();
        (v[0].to_string(), v[1].to_string(), v[2].to_string())
    };
    out.push(fail(
        "RS256 signature labelled RS384",
        format!("{}.{p}.{s}", b64(br#"{"alg":"RS384","kid":"rsa"}"#)),
        true,
    ));
    out.push(fail(
        "RS256 signature labelled PS256",
        format!("{}.{p}.{s}", b64(br#"{"alg":"PS256","kid":"rsa"}"#)),
        false,
    ));
    out.push(Case {
        name: "RS256 signature labelled ES256 (no such key type)".into(),
        token: format!("{}.{p}.{s}", b64(br#"{"alg":"ES256","kid":"rsa"}"#)),
        status: 401,
        body: "Jwt verification fails",
        native: false,
        verified: false,
    });
    out.push(Case {
        name: "alg confusion: HS256 keyed with the RSA public JWK".into(),
        token: token_with_header(
            &Key::Oct(rsa.jwk("rsa", None).into_bytes()),
            r#"{"alg":"HS256","kid":"rsa"}"#,
            &claims(iss, r#""n":5"#),
        ),
        status: 401,
        body: "Jwt verification fails",
        native: false,
        verified: false,
    });
    out
}

fn kid_of(alg: &str) -> &'static str {
    match alg {
        a if a.starts_with("RS") || a.starts_with("PS") => "rsa",
        "ES256" => "p256",
        "ES384" => "p384",
        _ => "ed",
    }
}

/// One scenario under host option `mode`; `native_expected` says whether the
/// filter should use the host for RS*/ES* there.
fn scenario(mode: &str, native_expected: bool) -> String {
    let iss = "https://idp.example";
    let keys = jwks(&[
        Key::rsa(0).jwk("rsa", None),
        Key::p256(1).jwk("p256", None),
        Key::p384(2).jwk("p384", None),
        Key::ed(3).jwk("ed", None),
    ]);
    let mut steps = String::new();
    let (mut native, mut wasm) = (0, 0);
    for c in cases(iss) {
        if c.verified {
            if c.native && native_expected {
                native += 1;
            } else {
                wasm += 1;
            }
        }
        let body = if c.status == 200 {
            String::new()
        } else {
            format!(", body: {}", c.body)
        };
        steps.push_str(&format!(
            "  - name: \"{} ({mode})\"\n    request: {{path: /api, headers: {{authorization: \"Bearer {}\"}}}}\n    expect: {{status: {}{body}}}\n",
            c.name, c.token, c.status
        ));
    }
    let log = if native_expected {
        "signatures RS256, RS384, RS512, ES256, ES384 are verified by the host's verify_signature"
    } else {
        "signatures are verified in wasm"
    };
    format!(
        r#"verify_signature: {mode}
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - {{name: idp, issuer: "{iss}", jwks: '{keys}'}}
start:
  logs_contain: ["{log}"]
requests:
{steps}  - name: signatures per path ({mode})
    expect:
      metrics:
        jwt_authn.signature_verify_native: {native}
        jwt_authn.signature_verify_wasm: {wasm}
"#
    )
}

#[test]
fn a_host_with_verify_signature_verifies_rs_and_es_with_the_same_verdicts() {
    run_as_is(&scenario("native", true));
}

#[test]
fn a_host_without_it_verifies_everything_in_wasm() {
    run_as_is(&scenario("off", false));
}

#[test]
fn a_host_that_answers_true_to_everything_is_not_trusted() {
    // Tampered and wrong-key tokens are still refused: the probe saw the
    // host accept a bad signature.
    run_as_is(&scenario("accept_all", false));
}

#[test]
fn a_host_that_answers_false_to_everything_is_not_used() {
    run_as_is(&scenario("reject_all", false));
}

#[test]
fn the_rfc_vectors_scenario_passes_on_both_hosts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/rfc_vectors.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(!text.contains("verify_signature:"));
    run(&text);
}
