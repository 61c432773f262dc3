//! JWT at scale (issue 19): many distinct tokens sent round-robin through
//! `jwt_authn.wasm`, so that the verified-token cache (100 entries by
//! default) never helps and every request verifies a signature — once on a
//! host with Envoy's `verify_signature` foreign function (RS*/ES* verified by
//! the host's OpenSSL), once on a host without it (everything in wasm), next
//! to `openssl speed` verify figures measured in the same run.
//!
//! Each figure is CPU time per request through the harness minus the same
//! requests through an empty chain (the filter's own cost, as the other
//! tables). Run alone with `wasmesh-benchmarks --jwt-scale [--quick|--smoke]`.

use crate::timing::{measure, Figure, Timing};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use std::path::Path;
use wasmesh::properties::PropertyMap;
use wasmesh::scenario::model::RequestSpec;
use wasmesh::scenario::{RunOptions, Scenario, Session};

/// Distinct tokens per algorithm in a full run.
pub const TOKENS: usize = 10_000;

const ISS: &str = "https://idp.example";
const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    crate::keys::b64(bytes)
}

/// A signing key and its public JWK.
struct Signing {
    alg: &'static str,
    key: PKey<Private>,
}

impl Signing {
    fn new(alg: &'static str) -> Result<Signing, String> {
        let e = |e: openssl::error::ErrorStack| format!("{alg} key: {e}");
        let key = match alg {
            "RS256" => PKey::from_rsa(Rsa::generate(2048).map_err(e)?).map_err(e)?,
            "ES256" => {
                let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(e)?;
                PKey::from_ec_key(EcKey::generate(&g).map_err(e)?).map_err(e)?
            }
            _ => PKey::generate_ed25519().map_err(e)?,
        };
        Ok(Signing { alg, key })
    }

    fn jwk(&self) -> Result<String, String> {
        let e = |e: openssl::error::ErrorStack| format!("{} jwk: {e}", self.alg);
        Ok(match self.alg {
            "RS256" => {
                let r = self.key.rsa().map_err(e)?;
                format!(
                    r#"{{"kty":"RSA","kid":"k","alg":"RS256","n":"{}","e":"{}"}}"#,
                    b64(&r.n().to_vec()),
                    b64(&r.e().to_vec())
                )
            }
            "ES256" => {
                let k = self.key.ec_key().map_err(e)?;
                let mut ctx = openssl::bn::BigNumContext::new().map_err(e)?;
                let (mut x, mut y) = (
                    openssl::bn::BigNum::new().map_err(e)?,
                    openssl::bn::BigNum::new().map_err(e)?,
                );
                k.public_key()
                    .affine_coordinates(k.group(), &mut x, &mut y, &mut ctx)
                    .map_err(e)?;
                format!(
                    r#"{{"kty":"EC","crv":"P-256","kid":"k","alg":"ES256","x":"{}","y":"{}"}}"#,
                    b64(&x.to_vec_padded(32).map_err(e)?),
                    b64(&y.to_vec_padded(32).map_err(e)?)
                )
            }
            _ => format!(
                r#"{{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"EdDSA","x":"{}"}}"#,
                b64(&self.key.raw_public_key().map_err(e)?)
            ),
        })
    }

    /// The JWS signature of `input`.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let e = |e: openssl::error::ErrorStack| format!("{} sign: {e}", self.alg);
        Ok(match self.alg {
            "RS256" | "ES256" => {
                let mut s = Signer::new(MessageDigest::sha256(), &self.key).map_err(e)?;
                let sig = s.sign_oneshot_to_vec(input).map_err(e)?;
                if self.alg == "ES256" {
                    let d = openssl::ecdsa::EcdsaSig::from_der(&sig).map_err(e)?;
                    let mut rs = d.r().to_vec_padded(32).map_err(e)?;
                    rs.extend(d.s().to_vec_padded(32).map_err(e)?);
                    rs
                } else {
                    sig
                }
            }
            _ => {
                let mut s = Signer::new_without_digest(&self.key).map_err(e)?;
                s.sign_oneshot_to_vec(input).map_err(e)?
            }
        })
    }

    /// `n` distinct tokens (`sub` and `jti` differ).
    fn tokens(&self, n: usize) -> Result<Vec<String>, String> {
        let header = b64(format!(r#"{{"alg":"{}","kid":"k","typ":"JWT"}}"#, self.alg).as_bytes());
        (0..n)
            .map(|i| {
                let payload = format!(
                    r#"{{"iss":"{ISS}","sub":"user-{i}","jti":"{i:08}","aud":"api","iat":{NOW},"exp":{}}}"#,
                    NOW + 10 * 365 * 86400
                );
                let input = format!("{header}.{}", b64(payload.as_bytes()));
                let sig = self.sign(input.as_bytes())?;
                Ok(format!("{input}.{}", b64(&sig)))
            })
            .collect()
    }
}

/// A harness session cycling through one request per token.
struct Chain {
    session: Session,
    requests: Vec<RequestSpec>,
    next: usize,
}

impl Chain {
    fn new(mode: &str, jwks: Option<&str>, tokens: &[String]) -> Result<Chain, String> {
        Self::with_cache(mode, jwks, tokens, 100, "jwt_authn")
    }

    fn with_cache(
        mode: &str,
        jwks: Option<&str>,
        tokens: &[String],
        cache_size: usize,
        wasm: &str,
    ) -> Result<Chain, String> {
        let chain = match jwks {
            Some(j) => format!(
                "chain:\n  - name: authn\n    wasm: {wasm}\n    config: {{cacheSize: {cache_size}, jwtRules: [{{name: idp, issuer: \"{ISS}\", audiences: [api], jwks: '{j}'}}]}}\n"
            ),
            None => "chain: []\n".into(),
        };
        let mut text = format!("verify_signature: {mode}\n{chain}requests:\n");
        for t in tokens {
            text.push_str(&format!(
                "  - request: {{path: /api, headers: {{authorization: \"Bearer {t}\"}}}}\n"
            ));
        }
        let base = Path::new(env!("CARGO_MANIFEST_DIR"));
        let s = Scenario::from_yaml_str(&text, base)?;
        let session = Session::new(&s.spec, &s.base_dir, &RunOptions::default())?;
        let requests = s
            .spec
            .requests
            .iter()
            .filter_map(|r| r.request.clone())
            .collect();
        Ok(Chain {
            session,
            requests,
            next: 0,
        })
    }

    fn request(&mut self) -> Result<Option<u32>, String> {
        let req = &self.requests[self.next];
        self.next = (self.next + 1) % self.requests.len();
        let obs = self
            .session
            .request(None, req, PropertyMap::default(), None)?;
        Ok(obs.status())
    }

    #[inline(never)]
    fn run(&mut self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            self.request()?;
        }
        Ok(())
    }

    /// Every token once: each must pass (a wrong key encoding would fail here).
    fn check_all(&mut self) -> Result<(), String> {
        for i in 0..self.requests.len() {
            match self.request()? {
                Some(200) => {}
                s => return Err(format!("token {i}: status {s:?}, want 200")),
            }
        }
        Ok(())
    }

    fn memory(&self) -> usize {
        self.session
            .workers()
            .iter()
            .flat_map(|w| w.memory_sizes())
            .map(|(_, b)| b)
            .sum()
    }

    fn metric(&self, name: &str) -> i64 {
        self.session
            .host
            .metric(name)
            .map(|m| m.value)
            .unwrap_or_default()
    }
}

/// One algorithm's figures.
#[derive(Debug, Clone)]
pub struct ScaleRow {
    pub alg: String,
    pub tokens: usize,
    /// Host with `verify_signature`: ns per request (minus empty chain).
    pub native: Figure,
    /// Host without it: ns per request (minus empty chain).
    pub wasm: Figure,
    /// The empty chain alone, ns per request.
    pub empty: Figure,
    /// Signatures each path verified over the measured requests (native, wasm).
    pub paths_native_host: (i64, i64),
    pub paths_wasm_host: (i64, i64),
    /// `openssl speed` verify, µs.
    pub openssl_us: Option<f64>,
    /// Another build of `jwt_authn.wasm` (e.g. before issue 19) on a host
    /// without `verify_signature`: ns per request (minus empty chain).
    pub baseline: Option<Figure>,
}

/// The verified-token cache's memory per entry: linear memory after filling
/// a `cacheSize` of `n` with `n` distinct RS256 tokens, minus after the first
/// `n / 10`, divided by the difference. Returns (bytes per entry, token
/// length, entries).
pub fn cache_memory(n: usize) -> Result<(f64, usize, usize), String> {
    let key = Signing::new("RS256")?;
    let jwks = format!(r#"{{"keys":[{}]}}"#, key.jwk()?);
    let toks = key.tokens(n)?;
    let mut c = Chain::with_cache("native", Some(&jwks), &toks, n, "jwt_authn")?;
    let first = n / 10;
    for _ in 0..first {
        c.request()?;
    }
    let m0 = c.memory();
    for _ in first..n {
        c.request()?;
    }
    let m1 = c.memory();
    if c.metric("jwt_authn.jwt_cache_hit") != 0 {
        return Err("cache memory: unexpected cache hits".into());
    }
    let entries = n - first;
    Ok((
        m1.saturating_sub(m0) as f64 / entries as f64,
        toks[0].len(),
        entries,
    ))
}

/// `openssl speed` verify figures, µs: (RSA 2048, ECDSA P-256, Ed25519).
pub fn openssl_verify(seconds: u32) -> (Option<f64>, Option<f64>, Option<f64>, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            &seconds.to_string(),
            "rsa2048",
            "ecdsap256",
            "ed25519",
        ])
        .output();
    let Ok(out) = out else {
        return (None, None, None, String::new());
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (mut rsa, mut ec, mut ed) = (None, None, None);
    let mut columns: Vec<String> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.contains(&"verify/s") {
            columns = words.iter().map(|w| w.to_string()).collect();
            continue;
        }
        let Some(vi) = columns.iter().position(|c| c == "verify/s") else {
            continue;
        };
        if words.len() < columns.len() {
            continue;
        }
        let nums = &words[words.len() - columns.len()..];
        let us = nums
            .get(vi)
            .and_then(|w| w.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .map(|v| 1e6 / v);
        if line.contains("rsa") && line.contains("2048") {
            rsa = us;
        } else if line.contains("nistp256") {
            ec = us;
        } else if line.contains("Ed25519") {
            ed = us;
        }
    }
    let version = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    (rsa, ec, ed, version)
}

fn minus(a: &Figure, b: &Figure) -> Figure {
    Figure {
        median: (a.median - b.median).max(0.0),
        min: (a.min - b.max).max(0.0),
        max: (a.max - b.min).max(0.0),
        batch: a.batch,
        samples: a.samples,
    }
}

/// Runs the case for RS256, ES256 and EdDSA with `tokens` distinct tokens each.
/// `baseline`: the path of another `jwt_authn.wasm` build, measured on a
/// host without `verify_signature` too.
pub fn run(
    t: &Timing,
    tokens: usize,
    baseline: Option<&str>,
    say: &dyn Fn(&str),
) -> Result<(Vec<ScaleRow>, String), String> {
    let (rsa_us, ec_us, ed_us, version) = openssl_verify(if t.samples > 3 { 3 } else { 1 });
    let mut rows = Vec::new();
    for (alg, ossl) in [("RS256", rsa_us), ("ES256", ec_us), ("EdDSA", ed_us)] {
        say(&format!("jwt at scale: {alg}, signing {tokens} tokens"));
        let key = Signing::new(alg)?;
        let jwks = format!(r#"{{"keys":[{}]}}"#, key.jwk()?);
        let toks = key.tokens(tokens)?;
        let mut empty = Chain::new("native", None, &toks)?;
        let mut figs = Vec::new();
        for mode in ["native", "off"] {
            let mut c = Chain::new(mode, Some(&jwks), &toks)?;
            c.check_all()?;
            let before = (
                c.metric("jwt_authn.signature_verify_native"),
                c.metric("jwt_authn.signature_verify_wasm"),
            );
            let f = measure(t, |n| c.run(n))?;
            let after = (
                c.metric("jwt_authn.signature_verify_native"),
                c.metric("jwt_authn.signature_verify_wasm"),
            );
            figs.push((f, (after.0 - before.0, after.1 - before.1)));
        }
        let e = measure(t, |n| empty.run(n))?;
        let base = match baseline {
            Some(path) => {
                let mut c = Chain::with_cache("off", Some(&jwks), &toks, 100, path)?;
                c.check_all()?;
                Some(minus(&measure(t, |n| c.run(n))?, &e))
            }
            None => None,
        };
        rows.push(ScaleRow {
            alg: alg.into(),
            tokens,
            native: minus(&figs[0].0, &e),
            wasm: minus(&figs[1].0, &e),
            empty: e,
            paths_native_host: figs[0].1,
            paths_wasm_host: figs[1].1,
            openssl_us: ossl,
            baseline: base,
        });
    }
    Ok((rows, version))
}

/// The Markdown section.
pub fn markdown(rows: &[ScaleRow], openssl_version: &str) -> String {
    let us = |ns: f64| format!("{:.1} µs", ns / 1000.0);
    let mut s = String::new();
    s.push_str("## JWT at scale: every request a cache miss (issue 19)\n\n");
    s.push_str(&format!(
        "{} distinct tokens per algorithm sent round-robin through `jwt_authn.wasm` \
         (`cacheSize` 100, so the verified-token cache never helps): CPU time per request minus \
         the empty chain, on a host with Envoy's `verify_signature` foreign function (RS*/ES* \
         verified by the host's OpenSSL) and on a host without it (everything in wasm, \
         `filters/jose`), next to `openssl speed` verify on this machine in the same run \
         ({}). \"paths\" counts the signatures each path verified during the measurement \
         (`jwt_authn.signature_verify_native` / `_wasm`). Reproduce: \
         `target/host/wasmesh-benchmarks --jwt-scale [--baseline-wasm OLD/jwt_authn.wasm]`; \
         the baseline column is another build of the filter (the one before issue 19) on a host \
         without the function, in the same run.\n\n",
        rows.first().map(|r| r.tokens).unwrap_or(TOKENS),
        if openssl_version.is_empty() {
            "openssl absent"
        } else {
            openssl_version
        }
    ));
    s.push_str(
        "| alg | host with `verify_signature` | paths (native/wasm) | host without it (in wasm) | paths | in wasm ÷ native | `openssl speed` verify | native ÷ OpenSSL | baseline build, host without it | without ÷ baseline | empty chain |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let ossl = r
            .openssl_us
            .map(|u| format!("{u:.1} µs"))
            .unwrap_or("—".into());
        let ratio = r
            .openssl_us
            .map(|u| format!("{:.1}×", r.native.median / 1000.0 / u))
            .unwrap_or("—".into());
        s.push_str(&format!(
            "| {} | {} | {}/{} | {} | {}/{} | {:.1}× | {} | {} | {} | {} | {} |\n",
            r.alg,
            us(r.native.median),
            r.paths_native_host.0,
            r.paths_native_host.1,
            us(r.wasm.median),
            r.paths_wasm_host.0,
            r.paths_wasm_host.1,
            r.wasm.median / r.native.median.max(1.0),
            ossl,
            ratio,
            r.baseline
                .as_ref()
                .map(|b| us(b.median))
                .unwrap_or("—".into()),
            r.baseline
                .as_ref()
                .map(|b| format!("{:.2}×", r.wasm.median / b.median.max(1.0)))
                .unwrap_or("—".into()),
            us(r.empty.median),
        ));
    }
    s
}
