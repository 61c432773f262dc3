//! The attack suite: forged, altered and abusive tokens against an RS256
//! provider, each refused with Envoy's status and message.

mod support;
use support::*;

struct Case {
    name: &'static str,
    headers: String,
    path: String,
    status: u32,
    body: &'static str,
}

fn case(name: &'static str, token: &str, status: u32, body: &'static str) -> Case {
    Case {
        name,
        headers: format!("{{authorization: \"Bearer {token}\"}}"),
        path: "/api".into(),
        status,
        body,
    }
}

fn with_sig(token: &str, sig: &str) -> String {
    format!("{}.{sig}", token.rsplit_once('.').unwrap().0)
}

fn replace_part(token: &str, idx: usize, new: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[idx] = new.to_string();
    parts.join(".")
}

#[test]
fn attacks_are_refused() {
    let key = Key::rsa(0);
    let other = Key::rsa(1);
    let iss = "https://idp.example";
    let ok_claims = claims(iss, r#""aud":"api""#);
    let good = token(&key, "RS256", "k1", &ok_claims);
    let (h, p, s) = {
        let v: Vec<&str> = good.split('.').collect();
        (v[0].to_string(), v[1].to_string(), v[2].to_string())
    };
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let rsa_jwk_text = key.jwk("k1", None);
    let n_bytes = match &key {
        Key::Rsa(k) => {
            use rsa::traits::PublicKeyParts;
            k.n().to_bytes_be()
        }
        _ => unreachable!(),
    };
    let big = format!(r#""aud":"api","blob":"{}""#, "A".repeat(17 * 1024));
    let mut cases = vec![
        case(
            "alg none without signature",
            &format!("{none_header}.{p}."),
            401,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
        case(
            "alg none with a signature",
            &format!("{none_header}.{p}.{s}"),
            401,
            "Jwt header [alg] is not supported",
        ),
        case(
            "alg NONE (case)",
            &format!("{}.{p}.{s}", b64(br#"{"alg":"NONE"}"#)),
            401,
            "Jwt header [alg] is not supported",
        ),
        case(
            "alg missing",
            &format!("{}.{p}.{s}", b64(br#"{"typ":"JWT"}"#)),
            401,
            "Jwt header [alg] field is required and must be a string",
        ),
        case(
            "alg confusion: HS256 keyed with the RSA public JWK",
            &token_with_header(
                &Key::Oct(rsa_jwk_text.into_bytes()),
                r#"{"alg":"HS256","kid":"k1"}"#,
                &ok_claims,
            ),
            401,
            "Jwt verification fails",
        ),
        case(
            "alg confusion: HS256 keyed with the RSA modulus",
            &token_with_header(
                &Key::Oct(n_bytes),
                r#"{"alg":"HS256","kid":"k1"}"#,
                &ok_claims,
            ),
            401,
            "Jwt verification fails",
        ),
        case(
            "ES256 header on an RSA signature",
            &format!("{}.{p}.{s}", b64(br#"{"alg":"ES256","kid":"k1"}"#)),
            401,
            "Jwt verification fails",
        ),
        case(
            "signature stripped (empty)",
            &format!("{h}.{p}."),
            401,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
        case(
            "signature removed",
            &format!("{h}.{p}"),
            401,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
        case(
            "signature truncated",
            &with_sig(
                &good,
                &b64(&wasmesh_jose::base64url_decode(&s).unwrap()[..250]),
            ),
            401,
            "Jwt verification fails",
        ),
        case(
            "signature of another key",
            &token(&other, "RS256", "k1", &ok_claims),
            401,
            "Jwt verification fails",
        ),
        case(
            "payload altered (sub changed)",
            &replace_part(
                &good,
                1,
                &b64(claims(iss, r#""aud":"api","sub":"admin""#).as_bytes()),
            ),
            401,
            "Jwt verification fails",
        ),
        case(
            "header altered (typ changed)",
            &replace_part(
                &good,
                0,
                &b64(br#"{"alg":"RS256","kid":"k1","typ":"at+jwt"}"#),
            ),
            401,
            "Jwt verification fails",
        ),
        case(
            "wrong issuer",
            &token(
                &key,
                "RS256",
                "k1",
                &claims("https://evil.example", r#""aud":"api""#),
            ),
            401,
            "Jwt issuer is not configured",
        ),
        case(
            "wrong audience",
            &token(
                &key,
                "RS256",
                "k1",
                &claims(iss, r#""aud":["web","other"]"#),
            ),
            403,
            "Audiences in Jwt are not allowed",
        ),
        case(
            "expired",
            &token(
                &key,
                "RS256",
                "k1",
                &format!(r#"{{"iss":"{iss}","aud":"api","exp":{}}}"#, NOW - 61),
            ),
            401,
            "Jwt is expired",
        ),
        case(
            "not yet valid",
            &token(
                &key,
                "RS256",
                "k1",
                &format!(
                    r#"{{"iss":"{iss}","aud":"api","nbf":{},"exp":{}}}"#,
                    NOW + 3600,
                    NOW + 7200
                ),
            ),
            401,
            "Jwt not yet valid",
        ),
        case(
            "unknown kid",
            &token(&key, "RS256", "k9", &ok_claims),
            401,
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        case(
            "malformed base64 header",
            &format!("%%%.{p}.{s}"),
            401,
            "Jwt header is an invalid Base64url encoded",
        ),
        case(
            "padded base64 header",
            &format!("{h}=.{p}.{s}"),
            401,
            "Jwt header is an invalid Base64url encoded",
        ),
        case(
            "malformed JSON header",
            &format!("{}.{p}.{s}", b64(b"{\"alg\":\"RS256\"")),
            401,
            "Jwt header is an invalid JSON",
        ),
        case(
            "malformed JSON payload",
            &format!("{h}.{}.{s}", b64(b"{\"iss\":")),
            401,
            "Jwt payload is an invalid JSON",
        ),
        case(
            "malformed base64 signature",
            &with_sig(&good, "a+b/c="),
            401,
            "Jwt signature is an invalid Base64url encoded",
        ),
        case(
            "exp as a string",
            &token(
                &key,
                "RS256",
                "k1",
                &format!(r#"{{"iss":"{iss}","aud":"api","exp":"{}"}}"#, NOW + 60),
            ),
            401,
            "Jwt payload [exp] field is not an integer",
        ),
        case(
            "unknown crit header",
            &token_with_header(
                &key,
                r#"{"alg":"RS256","kid":"k1","crit":["http://evil/x"],"http://evil/x":1}"#,
                &ok_claims,
            ),
            401,
            "Jwt verification fails",
        ),
        case(
            "jku header pointing at the attacker's keys",
            &token_with_header(
                &other,
                r#"{"alg":"RS256","kid":"k1","jku":"https://evil.example/keys"}"#,
                &ok_claims,
            ),
            401,
            "Jwt verification fails",
        ),
        case(
            "oversized token (over 16 KiB)",
            &token(&key, "RS256", "k1", &claims(iss, &big)),
            401,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
        ),
    ];
    cases.push(Case {
        name: "duplicate Authorization headers (valid + forged)",
        headers: format!(
            "{{authorization: [\"Bearer {good}\", \"Bearer {}\"]}}",
            token(&other, "RS256", "k1", &ok_claims)
        ),
        path: "/api".into(),
        status: 401,
        body: "Found multiple Jwt tokens",
    });
    cases.push(Case {
        name: "duplicate Authorization headers (same valid token twice)",
        headers: format!("{{authorization: [\"Bearer {good}\", \"Bearer {good}\"]}}"),
        path: "/api".into(),
        status: 401,
        body: "Found multiple Jwt tokens",
    });
    cases.push(Case {
        name: "several tokens at once (header and query parameter)",
        headers: format!("{{authorization: \"Bearer {good}\"}}"),
        path: format!(
            "/api?access_token={}",
            token(&other, "RS256", "k1", &ok_claims)
        ),
        status: 401,
        body: "Found multiple Jwt tokens",
    });
    cases.push(Case {
        name: "token under another scheme",
        headers: format!("{{authorization: \"Basic {good}\"}}"),
        path: "/api".into(),
        status: 401,
        body: "Jwt is missing",
    });
    assert!(cases.len() >= 20);

    let mut steps = String::new();
    for c in &cases {
        steps.push_str(&format!(
            "  - name: \"{}\"\n    request: {{path: \"{}\", headers: {}}}\n    expect: {{status: {}, body: \"{}\", reached_upstream: false, local_reply_by: authn}}\n",
            c.name, c.path, c.headers, c.status, c.body
        ));
    }
    // The genuine token still passes after all that.
    steps.push_str(&format!(
        "  - name: genuine token\n    request: {{path: /api, headers: {{authorization: \"Bearer {good}\"}}}}\n    expect: {{status: 200, reached_upstream: true}}\n"
    ));
    let n = cases.len();
    steps.push_str(&format!("  - name: counters\n    expect: {{metrics: {{jwt_authn.denied: {n}, jwt_authn.allowed: 1}}}}\n"));
    run(&format!(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules:
        - name: idp
          issuer: "{iss}"
          audiences: [api]
          jwks: '{}'
      rules: [{{match: {{prefix: /api}}, requires: {{provider: idp}}}}]
requests:
{steps}"#,
        jwks(&[key.jwk("k1", None)])
    ));
}

/// With the key's `alg` pinned in the JWKS, a token claiming another
/// algorithm finds no key at all.
#[test]
fn pinned_alg_refuses_confusion() {
    let key = Key::rsa(0);
    let forged = token_with_header(
        &Key::Oct(key.jwk("k1", None).into_bytes()),
        r#"{"alg":"HS256","kid":"k1"}"#,
        &claims("https://idp", ""),
    );
    run(&fill(
        r#"
chain:
  - name: authn
    wasm: jwt_authn
    config:
      jwtRules: [{issuer: "https://idp", jwks: '{{JWKS}}'}]
requests:
  - request: {path: /, headers: {authorization: "Bearer {{T}}"}}
    expect: {status: 401, body: "Jwks doesn't have key to match kid or alg from Jwt", response_code_details: "jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}"}
"#,
        &[
            ("JWKS", &jwks(&[key.jwk("k1", Some("RS256"))])),
            ("T", &forged),
        ],
    ));
}
