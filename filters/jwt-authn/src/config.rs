//! The plugin configuration: its JSON contract (Istio `RequestAuthentication`
//! vocabulary plus Envoy `jwt_authn` rules) and its compiled form.
//!
//! ```json
//! {"jwtRules": [{"issuer": "https://idp.example.com", "jwksUri": "https://idp.example.com/keys",
//!                "jwksCluster": "idp", "audiences": ["api"]}],
//!  "rules": [{"match": {"prefix": "/api"}, "requires": {"provider": "https://idp.example.com"}}],
//!  "cacheSize": 100}
//! ```
//!
//! [`FilterConfig::from_json`] parses, validates and compiles once (in
//! `on_configure`); errors name the JSON path of the field.

use crate::extractor::{Extractor, LocationKind};
use crate::jwks::KeySet;
use crate::matcher::{RouteMatchConfig, RouteMatcher};
use crate::verifier::{Requirement, RequirementConfig};
use serde_json::Value;
use std::rc::Rc;
use std::time::Duration;
use wasmesh_common::config::{nullable, parse_json, strict_value};
use wasmesh_common::duration::parse_duration;
use wasmesh_common::{ConfigError, FieldPath};

/// Default `cacheSize` (Envoy's `jwt_cache_size` default).
pub const DEFAULT_CACHE_SIZE: usize = 100;
/// Largest `cacheSize` accepted.
pub const MAX_CACHE_SIZE: usize = 100_000;
/// Default remote JWKS fetch `timeout` (Envoy's `HttpUri.timeout` is
/// required; Istio uses 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `cacheDuration` (Envoy: 10 minutes).
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);
/// Default `clockSkewSeconds` (Envoy: 60).
pub const DEFAULT_CLOCK_SKEW: u64 = 60;

/// The plugin configuration as written.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct JwtAuthnConfig"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JwtAuthnConfig {
    /// The token providers (Istio `RequestAuthentication.jwtRules`; Envoy
    /// `providers`).
    #[serde(deserialize_with = "nullable")]
    pub jwt_rules: Vec<JwtRuleConfig>,
    /// Which requests need which tokens (Envoy `rules`), first match wins. A
    /// request no rule matches needs nothing. Absent: Istio semantics — a
    /// request without a token passes (without identity), a request with a
    /// token must verify against the provider whose issuer it names.
    pub rules: Option<Vec<RuleConfig>>,
    /// Number of verified tokens remembered per VM (default 100, 0 disables
    /// the cache).
    pub cache_size: Option<usize>,
    /// Let CORS preflight requests (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) through without a token (default
    /// true, as Istio configures Envoy).
    pub bypass_cors_preflight: Option<bool>,
}

/// One provider (Istio `JWTRule`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct JwtRule"
)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(extend("required" = ["issuer"]))
)]
pub struct JwtRuleConfig {
    /// Name used in `rules[].requires.provider`; defaults to `issuer`.
    pub name: Option<String>,
    /// Required `iss` of the tokens (required, non-empty).
    #[serde(deserialize_with = "nullable")]
    pub issuer: String,
    /// Accepted `aud` values; a token must carry one of them. Empty: not checked.
    #[serde(deserialize_with = "nullable")]
    pub audiences: Vec<String>,
    /// Inline JWKS, as a JSON string or an object. Exactly one of `jwks` and
    /// `jwksUri` is required.
    #[serde(deserialize_with = "strict_value")]
    pub jwks: Option<Value>,
    /// URL of the JWKS, fetched with `proxy_http_call`.
    pub jwks_uri: Option<String>,
    /// Envoy cluster for `jwksUri`; defaults to Istio's name for the
    /// service, `outbound|<port>||<host>`.
    pub jwks_cluster: Option<String>,
    /// Fetch timeout (default `5s`).
    pub timeout: Option<String>,
    /// How long fetched keys are used before they are refreshed (default
    /// `600s`).
    pub cache_duration: Option<String>,
    /// Headers that carry the token; replaces the default locations.
    #[serde(deserialize_with = "nullable")]
    pub from_headers: Vec<FromHeaderConfig>,
    /// Query parameters that carry the token; replaces the default locations.
    #[serde(deserialize_with = "nullable")]
    pub from_params: Vec<String>,
    /// Cookies that carry the token; replaces the default locations.
    #[serde(deserialize_with = "nullable")]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request after it verified (default: removed).
    #[serde(deserialize_with = "nullable")]
    pub forward_original_token: bool,
    /// Header that receives the verified payload (base64url, as in the token).
    pub output_payload_to_header: Option<String>,
    /// Headers that receive claim values.
    #[serde(deserialize_with = "nullable")]
    pub output_claim_to_headers: Vec<ClaimToHeaderConfig>,
    /// Tolerance for `exp` and `nbf` in seconds (default 60).
    pub clock_skew_seconds: Option<u32>,
    /// Refuse tokens without `exp`.
    #[serde(deserialize_with = "nullable")]
    pub require_expiration: bool,
    /// Refuse tokens whose `exp` is further than this in the future (implies
    /// `requireExpiration`).
    pub max_lifetime: Option<String>,
}

/// `fromHeaders[]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct JwtHeader"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FromHeaderConfig {
    /// Header name.
    pub name: String,
    /// Value prefix before the token, e.g. `Bearer ` (compared ignoring case).
    #[serde(default, deserialize_with = "nullable")]
    pub prefix: String,
}

/// `outputClaimToHeaders[]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct ClaimToHeader"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClaimToHeaderConfig {
    /// Header to set.
    pub header: String,
    /// Claim name; `a.b` reaches into nested objects.
    pub claim: String,
}

/// `rules[]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct RequirementRule"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RuleConfig {
    /// Which requests the rule is for.
    #[serde(rename = "match")]
    pub route: RouteMatchConfig,
    /// What they need; absent: nothing.
    #[serde(default)]
    pub requires: Option<RequirementConfig>,
}

impl JwtAuthnConfig {
    /// Reads the document (an empty document or `null` is `{}`; unknown
    /// fields and repeated keys refused, errors with paths), without
    /// compiling it.
    pub fn parse(bytes: &[u8]) -> Result<JwtAuthnConfig, ConfigError> {
        Ok(parse_json::<Option<JwtAuthnConfig>>(bytes)?.unwrap_or_default())
    }
}

/// Audiences a token must name one of (`jwt_verify_lib`'s `CheckAudience`:
/// `http://` / `https://` prefixes and a trailing `/` are ignored on both sides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audiences(Vec<String>);

impl Audiences {
    /// From configured values.
    pub fn new(values: &[String]) -> Self {
        Audiences(
            values
                .iter()
                .map(|a| sanitize_audience(a).to_string())
                .collect(),
        )
    }
    /// Whether `aud` (the token's) is allowed; always when none are configured.
    pub fn allows(&self, aud: &[String]) -> bool {
        self.0.is_empty()
            || aud
                .iter()
                .any(|a| self.0.iter().any(|c| c == sanitize_audience(a)))
    }
}

fn sanitize_audience(a: &str) -> &str {
    let a = a
        .strip_prefix("http://")
        .or_else(|| a.strip_prefix("https://"))
        .unwrap_or(a);
    a.strip_suffix('/').unwrap_or(a)
}

/// Where a provider's keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// Inline `jwks`, decoded at configuration time.
    Local(Rc<KeySet>),
    /// `jwksUri`, fetched at run time.
    Remote(RemoteJwks),
}

/// A remote JWKS location and its fetch policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// The URL as configured.
    pub uri: String,
    /// Cluster the call goes to.
    pub cluster: String,
    /// `:authority` of the call.
    pub authority: String,
    /// `:path` of the call.
    pub path: String,
    /// Call timeout.
    pub timeout: Duration,
    /// Refresh period.
    pub cache_duration: Duration,
}

/// A compiled provider.
#[derive(Debug)]
pub struct Provider {
    /// Name (`name` or `issuer`).
    pub name: String,
    /// Required issuer.
    pub issuer: String,
    /// Allowed audiences.
    pub audiences: Audiences,
    /// Key source.
    pub keys: KeySource,
    /// Indices of this provider's locations in [`FilterConfig::extractor`].
    pub locations: Vec<usize>,
    /// `forwardOriginalToken`.
    pub forward: bool,
    /// `outputPayloadToHeader` (lower case).
    pub payload_header: Option<String>,
    /// `outputClaimToHeaders` as (lower-case header, claim path segments).
    pub claim_headers: Vec<(String, Vec<String>)>,
    /// Clock skew in seconds.
    pub clock_skew: u64,
    /// Longest accepted remaining lifetime in seconds; `Some(u64::MAX)` for
    /// `requireExpiration` alone.
    pub max_lifetime: Option<u64>,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// When it applies.
    pub route: RouteMatcher,
    /// What it needs (`None`: nothing).
    pub requirement: Option<Requirement>,
}

/// The compiled configuration, shared by every stream of a VM.
#[derive(Debug)]
pub struct FilterConfig {
    /// Providers in configuration order.
    pub providers: Vec<Provider>,
    /// All token locations.
    pub extractor: Extractor,
    /// Rules in order (Istio mode compiles to one rule for every request).
    pub rules: Vec<Rule>,
    /// Whether `rules` was absent (Istio semantics).
    pub istio_mode: bool,
    /// JWT cache capacity.
    pub cache_size: usize,
    /// Whether CORS preflights bypass authentication.
    pub bypass_cors_preflight: bool,
    /// Every output header of every provider, removed from each request first.
    pub output_headers: Vec<String>,
}

impl FilterConfig {
    /// Parses and compiles the plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
        JwtAuthnConfig::parse(bytes)?.compile()
    }

    /// The index of the provider named `name`.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.name == name)
    }
}

impl JwtAuthnConfig {
    /// Validates and compiles.
    pub fn compile(&self) -> Result<FilterConfig, ConfigError> {
        let root = FieldPath::root();
        let mut extractor = Extractor::default();
        let mut providers: Vec<Provider> = Vec::with_capacity(self.jwt_rules.len());
        let mut output_headers: Vec<String> = Vec::new();
        for (i, r) in self.jwt_rules.iter().enumerate() {
            let at = root.field("jwtRules").index(i);
            let p = compile_provider(r, &at, i, &mut extractor)?;
            if providers.iter().any(|q| q.name == p.name) {
                let which = if r.name.is_some() { "name" } else { "issuer" };
                return Err(at
                    .field(which)
                    .error(format!("duplicate provider name `{}`", p.name)));
            }
            for h in p
                .payload_header
                .iter()
                .chain(p.claim_headers.iter().map(|(h, _)| h))
            {
                if !output_headers.contains(h) {
                    output_headers.push(h.clone());
                }
            }
            providers.push(p);
        }
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let (rules, istio_mode) = match &self.rules {
            None => {
                let requirement = (!providers.is_empty())
                    .then(|| Requirement::AllowMissing((0..providers.len()).collect()));
                (
                    vec![Rule {
                        route: RouteMatcher::any(),
                        requirement,
                    }],
                    true,
                )
            }
            Some(rules) => {
                let mut out = Vec::with_capacity(rules.len());
                for (i, r) in rules.iter().enumerate() {
                    let at = root.field("rules").index(i);
                    let route = r.route.compile(&at.field("match"))?;
                    let requirement = match &r.requires {
                        None => None,
                        Some(req) => Some(req.compile(&at.field("requires"), &names)?),
                    };
                    out.push(Rule { route, requirement });
                }
                (out, false)
            }
        };
        let cache_size = self.cache_size.unwrap_or(DEFAULT_CACHE_SIZE);
        if cache_size > MAX_CACHE_SIZE {
            return Err(root
                .field("cacheSize")
                .error(format!("must be at most {MAX_CACHE_SIZE}")));
        }
        Ok(FilterConfig {
            providers,
            extractor,
            rules,
            istio_mode,
            cache_size,
            bypass_cors_preflight: self.bypass_cors_preflight.unwrap_or(true),
            output_headers,
        })
    }
}

fn compile_provider(
    r: &JwtRuleConfig,
    at: &FieldPath,
    index: usize,
    extractor: &mut Extractor,
) -> Result<Provider, ConfigError> {
    if r.issuer.is_empty() {
        return Err(at.field("issuer").error("is required"));
    }
    let name = match &r.name {
        Some(n) if n.is_empty() => return Err(at.field("name").error("must not be empty")),
        Some(n) => n.clone(),
        None => r.issuer.clone(),
    };
    for (j, a) in r.audiences.iter().enumerate() {
        if a.is_empty() {
            return Err(at.field("audiences").index(j).error("must not be empty"));
        }
    }
    let keys = match (&r.jwks, &r.jwks_uri) {
        (Some(_), Some(_)) => return Err(at.error("only one of `jwks` and `jwksUri` may be set")),
        (None, None) => return Err(at.error("one of `jwks` or `jwksUri` is required")),
        (Some(jwks), None) => {
            let set = match jwks {
                Value::String(s) => KeySet::from_json(s.as_bytes()),
                other => KeySet::from_value(other),
            }
            .map_err(|e| at.field("jwks").error(e))?;
            KeySource::Local(Rc::new(set))
        }
        (None, Some(uri)) => {
            let (scheme, authority, path) =
                split_url(uri).map_err(|e| at.field("jwksUri").error(e))?;
            let cluster = match &r.jwks_cluster {
                Some(c) if c.is_empty() => {
                    return Err(at.field("jwksCluster").error("must not be empty"))
                }
                Some(c) => c.clone(),
                None => {
                    let (host, port) = match authority.rsplit_once(':') {
                        Some((h, p))
                            if !h.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            (h.to_string(), p.to_string())
                        }
                        _ => (
                            authority.clone(),
                            if scheme == "https" {
                                "443".into()
                            } else {
                                "80".into()
                            },
                        ),
                    };
                    format!("outbound|{port}||{host}")
                }
            };
            let timeout = duration(&r.timeout, DEFAULT_TIMEOUT, &at.field("timeout"))?;
            if timeout.is_zero() {
                return Err(at.field("timeout").error("must be greater than 0"));
            }
            let cache_duration = duration(
                &r.cache_duration,
                DEFAULT_CACHE_DURATION,
                &at.field("cacheDuration"),
            )?;
            if cache_duration < Duration::from_millis(1) {
                return Err(at.field("cacheDuration").error("must be at least 1ms"));
            }
            KeySource::Remote(RemoteJwks {
                uri: uri.clone(),
                cluster,
                authority,
                path,
                timeout,
                cache_duration,
            })
        }
    };
    if r.jwks_uri.is_none() {
        for (field, set) in [
            ("jwksCluster", r.jwks_cluster.is_some()),
            ("timeout", r.timeout.is_some()),
            ("cacheDuration", r.cache_duration.is_some()),
        ] {
            if set {
                return Err(at.field(field).error("only applies with `jwksUri`"));
            }
        }
    }

    let mut locations = Vec::new();
    for (j, h) in r.from_headers.iter().enumerate() {
        let name = header_name(&h.name)
            .map_err(|e| at.field("fromHeaders").index(j).field("name").error(e))?;
        locations.push(extractor.add(
            LocationKind::Header {
                name,
                prefix: h.prefix.clone(),
            },
            index,
        ));
    }
    for (j, p) in r.from_params.iter().enumerate() {
        if p.is_empty() {
            return Err(at.field("fromParams").index(j).error("must not be empty"));
        }
        locations.push(extractor.add(LocationKind::Param(p.clone()), index));
    }
    for (j, c) in r.from_cookies.iter().enumerate() {
        if c.is_empty() || c.contains([';', '=', ' ']) {
            return Err(at
                .field("fromCookies")
                .index(j)
                .error(format!("`{c}` is not a cookie name")));
        }
        locations.push(extractor.add(LocationKind::Cookie(c.clone()), index));
    }
    if locations.is_empty() {
        locations.push(extractor.add(
            LocationKind::Header {
                name: "authorization".into(),
                prefix: "Bearer ".into(),
            },
            index,
        ));
        locations.push(extractor.add(LocationKind::Param("access_token".into()), index));
    }

    let payload_header = match &r.output_payload_to_header {
        None => None,
        Some(h) => Some(header_name(h).map_err(|e| at.field("outputPayloadToHeader").error(e))?),
    };
    let mut claim_headers = Vec::with_capacity(r.output_claim_to_headers.len());
    for (j, c) in r.output_claim_to_headers.iter().enumerate() {
        let cp = at.field("outputClaimToHeaders").index(j);
        let header = header_name(&c.header).map_err(|e| cp.field("header").error(e))?;
        if c.claim.is_empty() || c.claim.split('.').any(str::is_empty) {
            return Err(cp
                .field("claim")
                .error(format!("`{}` is not a claim name", c.claim)));
        }
        claim_headers.push((header, c.claim.split('.').map(str::to_string).collect()));
    }
    let max_lifetime = match &r.max_lifetime {
        Some(s) => {
            let d = parse_duration(s).map_err(|e| at.field("maxLifetime").error(e))?;
            if d.is_zero() {
                return Err(at.field("maxLifetime").error("must be greater than 0"));
            }
            Some(d.as_secs().max(1))
        }
        None if r.require_expiration => Some(u64::MAX),
        None => None,
    };
    Ok(Provider {
        name,
        issuer: r.issuer.clone(),
        audiences: Audiences::new(&r.audiences),
        keys,
        locations,
        forward: r.forward_original_token,
        payload_header,
        claim_headers,
        clock_skew: r.clock_skew_seconds.map_or(DEFAULT_CLOCK_SKEW, u64::from),
        max_lifetime,
    })
}

fn duration(
    v: &Option<String>,
    default: Duration,
    at: &FieldPath,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| at.error(e)),
    }
}

/// A header name we may read or write: an RFC 7230 token, not a
/// pseudo-header, lower-cased.
fn header_name(name: &str) -> Result<String, String> {
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || TCHAR.contains(&b))
    {
        return Err(format!("`{name}` is not a valid header name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// Splits `http(s)://authority/path?query` into (scheme, authority, path).
fn split_url(uri: &str) -> Result<(String, String, String), String> {
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or_else(|| format!("`{uri}` is not an http(s) URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{uri}` is not an http(s) URL"));
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(format!("`{uri}` has no valid host"));
    }
    Ok((scheme, authority.to_string(), path))
}

#[cfg(test)]
mod tests;
