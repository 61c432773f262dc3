//! The JSON configuration (a contract: names are camelCase and stable) and
//! its compilation into an [`Engine`].
//!
//! Each policy's `rules` is exactly the `spec.rules` of an Istio
//! `AuthorizationPolicy`. Configuration is refused, with the path of the
//! offending field, when a value could not mean what its author intended:
//! bad CIDRs and ports, unknown actions, unknown `when` keys (Istio ignores
//! them, which widens access), empty lists and values, misplaced `*`, bad
//! path templates, lower-case methods.

use crate::matcher::{PathPattern, Pattern, Star};
use crate::path::PathNormalization;
use crate::policy::{Action, Condition, Engine, Leaf, Needs, Policy, Rule};
use crate::principal::{namespace, peer_principal, RequestPrincipal};
use serde::{de, Deserialize, Deserializer};
use wasmesh_common::cidr::Cidr;
use wasmesh_common::config::{nullable, parse_json, unique_map};
use wasmesh_common::{ConfigError, FieldPath};

/// The plugin configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RbacConfig {
    /// The policies of the workload, in any order (evaluation order is fixed
    /// by action, not by position; position only decides which matching
    /// policy is named in logs).
    #[serde(deserialize_with = "nullable")]
    pub policies: Vec<PolicyConfig>,
    /// The answer to a denied request. Default: 403 `RBAC: access denied`.
    #[serde(deserialize_with = "nullable")]
    pub deny_response: DenyResponseConfig,
    /// How request paths are normalised before matching (Istio's
    /// `meshConfig.pathNormalization` names): `BASE`, `MERGE_SLASHES`
    /// (default) or `DECODE_AND_MERGE_SLASHES`.
    #[serde(deserialize_with = "path_normalization")]
    pub path_normalization: PathNormalization,
    /// Proxies in front of this one that append to `x-forwarded-for`; decides
    /// which entry `remoteIpBlocks` and `remote.ip` see (0, the default: the
    /// peer address itself, `x-forwarded-for` is ignored).
    #[serde(deserialize_with = "num_trusted_proxies")]
    pub num_trusted_proxies: u32,
    /// If set, the name of a response header that carries the dry-run
    /// (shadow) result: `allowed` or `denied`, followed by
    /// `; policy=<name>` when a policy decided. Only added when at least one
    /// policy is `dryRun`.
    pub dry_run_header: Option<String>,
}

/// One `AuthorizationPolicy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a map")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PolicyConfig {
    /// Unique name; appears in logs, response code details and metric names.
    pub name: String,
    /// `ALLOW` (default, as in Istio), `DENY` or `AUDIT`.
    #[serde(default, deserialize_with = "action")]
    pub action: Action,
    /// Evaluate and report, never enforce (Istio's `istio.io/dry-run`
    /// annotation, Envoy's shadow rules).
    #[serde(default, deserialize_with = "nullable")]
    pub dry_run: bool,
    /// Istio's `spec.rules`. No rules: the policy matches nothing; `[{}]`:
    /// it matches everything.
    #[serde(default, deserialize_with = "nullable")]
    pub rules: Vec<RuleConfig>,
}

/// Istio's `Rule`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RuleConfig {
    /// Sources; one must match. Absent: any source.
    pub from: Option<Vec<FromConfig>>,
    /// Operations; one must match. Absent: any operation.
    pub to: Option<Vec<ToConfig>>,
    /// Conditions; all must match.
    pub when: Option<Vec<ConditionConfig>>,
}

/// Istio's `Rule.From`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FromConfig {
    /// The source.
    pub source: Option<SourceConfig>,
}

/// Istio's `Rule.To`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ToConfig {
    /// The operation.
    pub operation: Option<OperationConfig>,
}

/// Istio's `Source`: every non-empty field must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SourceConfig {
    /// mTLS peer identities `<trust-domain>/ns/<ns>/sa/<sa>`.
    #[serde(deserialize_with = "nullable")]
    pub principals: Vec<String>,
    /// Peer identities that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_principals: Vec<String>,
    /// JWT principals `<iss>/<sub>` from the verified identity.
    #[serde(deserialize_with = "nullable")]
    pub request_principals: Vec<String>,
    /// JWT principals that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_request_principals: Vec<String>,
    /// Peer namespaces (from the SPIFFE ID).
    #[serde(deserialize_with = "nullable")]
    pub namespaces: Vec<String>,
    /// Peer namespaces that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_namespaces: Vec<String>,
    /// Peer address blocks (CIDR or single IP, IPv4 or IPv6).
    #[serde(deserialize_with = "nullable")]
    pub ip_blocks: Vec<String>,
    /// Peer address blocks that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_ip_blocks: Vec<String>,
    /// Original client address blocks (see `numTrustedProxies`).
    #[serde(deserialize_with = "nullable")]
    pub remote_ip_blocks: Vec<String>,
    /// Original client address blocks that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_remote_ip_blocks: Vec<String>,
}

/// Istio's `Operation`: every non-empty field must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OperationConfig {
    /// `:authority` values, case-insensitive; a request's port is ignored
    /// when the value has none.
    #[serde(deserialize_with = "nullable")]
    pub hosts: Vec<String>,
    /// Hosts that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_hosts: Vec<String>,
    /// Destination ports, as strings (`"8080"`).
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<String>,
    /// Ports that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_ports: Vec<String>,
    /// Methods (upper case).
    #[serde(deserialize_with = "nullable")]
    pub methods: Vec<String>,
    /// Methods that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_methods: Vec<String>,
    /// Normalised paths; `{*}`/`{**}` templates allowed.
    #[serde(deserialize_with = "nullable")]
    pub paths: Vec<String>,
    /// Paths that must not match.
    #[serde(deserialize_with = "nullable")]
    pub not_paths: Vec<String>,
}

/// Istio's `Condition`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", expecting = "a map")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConditionConfig {
    /// The attribute (`request.headers[x-user]`, `source.ip`, ...).
    pub key: String,
    /// Accepted values; at least one of `values`/`notValues` is required.
    #[serde(default, deserialize_with = "nullable")]
    pub values: Vec<String>,
    /// Refused values.
    #[serde(default, deserialize_with = "nullable")]
    pub not_values: Vec<String>,
}

/// The answer to a denied request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a map"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DenyResponseConfig {
    /// HTTP status, 200–599. Default 403.
    #[serde(deserialize_with = "deny_status")]
    pub status: u32,
    /// Body. Default `RBAC: access denied`.
    #[serde(deserialize_with = "deny_body")]
    pub body: String,
    /// Extra response headers (e.g. `location` for a redirect to a login
    /// page). `content-type: text/plain` is added unless given here.
    #[serde(deserialize_with = "unique_map")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "std::collections::BTreeMap<String, String>")
    )]
    pub headers: Vec<(String, String)>,
}

impl Default for DenyResponseConfig {
    fn default() -> Self {
        DenyResponseConfig {
            status: 403,
            body: "RBAC: access denied".into(),
            headers: Vec::new(),
        }
    }
}

/// The compiled deny response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyResponse {
    /// HTTP status.
    pub status: u32,
    /// Body.
    pub body: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The policies.
    pub engine: Engine,
    /// The deny response.
    pub deny: DenyResponse,
    /// Path normalisation.
    pub path_normalization: PathNormalization,
    /// Trusted proxies in front.
    pub num_trusted_proxies: u32,
    /// Dry-run result header name (lower case).
    pub dry_run_header: Option<String>,
}

impl Config {
    /// Parses and compiles a JSON configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        RbacConfig::parse(bytes)?.compile()
    }
}

impl RbacConfig {
    /// Reads the document (an empty document is `{}`; unknown fields and
    /// repeated keys refused, errors with paths), without compiling it.
    pub fn parse(bytes: &[u8]) -> Result<RbacConfig, ConfigError> {
        parse_json(bytes)
    }
}

/// A string with one of `variants` (`null`: `None`), refused with serde's
/// `unknown variant` wording.
fn variant<'de, D: Deserializer<'de>>(
    d: D,
    variants: &'static [&'static str],
) -> Result<Option<usize>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    match variants.iter().position(|v| *v == s) {
        Some(i) => Ok(Some(i)),
        None => Err(de::Error::unknown_variant(&s, variants)),
    }
}

/// `policies[].action` (absent or `null`: `ALLOW`).
fn action<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    Ok(match variant(d, &["ALLOW", "DENY", "AUDIT"])? {
        Some(1) => Action::Deny,
        Some(2) => Action::Audit,
        _ => Action::Allow,
    })
}

/// `pathNormalization` (absent or `null`: `MERGE_SLASHES`).
fn path_normalization<'de, D: Deserializer<'de>>(d: D) -> Result<PathNormalization, D::Error> {
    Ok(
        match variant(d, &["BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"])? {
            Some(0) => PathNormalization::Base,
            Some(2) => PathNormalization::DecodeAndMergeSlashes,
            _ => PathNormalization::MergeSlashes,
        },
    )
}

/// A non-negative integer no larger than `max` (`null`: `None`).
fn u32_at_most<'de, D: Deserializer<'de>>(d: D, max: u32) -> Result<Option<u32>, D::Error> {
    use serde_json::Value;
    let v = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    if let Some(n) = v.as_u64() {
        return match u32::try_from(n) {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(de::Error::custom(format_args!(
                "invalid value: integer `{n}`, expected at most {max}"
            ))),
        };
    }
    if let Some(n) = v.as_i64() {
        return Err(de::Error::custom(format_args!(
            "invalid value: integer `{n}`, expected a non-negative integer"
        )));
    }
    let unexpected = match &v {
        Value::Number(n) => de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Array(_) => de::Unexpected::Seq,
        _ => de::Unexpected::Map,
    };
    Err(de::Error::invalid_type(
        unexpected,
        &"a non-negative integer",
    ))
}

/// `numTrustedProxies`: 0..=64 (`null`: 0).
fn num_trusted_proxies<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(u32_at_most(d, 64)?.unwrap_or(0))
}

/// `denyResponse.status` (`null`: 403; the range is checked when compiling).
fn deny_status<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(u32_at_most(d, u32::MAX)?.unwrap_or(DenyResponseConfig::default().status))
}

/// `denyResponse.body` (`null`: the default body).
fn deny_body<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(|| DenyResponseConfig::default().body))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn header_name(name: &str, path: &FieldPath) -> Result<String, ConfigError> {
    if !is_token(name.strip_prefix(':').unwrap_or(name)) {
        return Err(path.error(format!("`{name}` is not a valid header name")));
    }
    Ok(name.to_ascii_lowercase())
}

impl RbacConfig {
    /// Validates and compiles.
    pub fn compile(&self) -> Result<Config, ConfigError> {
        let root = FieldPath::root();
        let mut needs = Needs::default();
        let mut policies = Vec::with_capacity(self.policies.len());
        let ppath = root.field("policies");
        for (i, p) in self.policies.iter().enumerate() {
            let path = ppath.index(i);
            if p.name.is_empty() {
                return Err(path.field("name").error("must not be empty"));
            }
            if p.name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '[' || c == ']')
            {
                return Err(path.field("name").error(format!(
                    "`{}` may not contain whitespace, control characters, `[` or `]`",
                    p.name
                )));
            }
            if let Some(j) = self.policies[..i].iter().position(|q| q.name == p.name) {
                return Err(path.field("name").error(format!(
                    "duplicate policy name `{}` (also policies[{j}])",
                    p.name
                )));
            }
            let mut rules = Vec::with_capacity(p.rules.len());
            for (r, rule) in p.rules.iter().enumerate() {
                rules.push(compile_rule(
                    rule,
                    &path.field("rules").index(r),
                    &mut needs,
                )?);
            }
            policies.push(Policy {
                name: p.name.clone(),
                action: p.action,
                dry_run: p.dry_run,
                rules,
            });
        }

        let dpath = root.field("denyResponse");
        let d = &self.deny_response;
        if !(200..=599).contains(&d.status) {
            return Err(dpath
                .field("status")
                .error(format!("{} is not an HTTP status in 200..599", d.status)));
        }
        let mut headers = Vec::new();
        for (k, v) in &d.headers {
            let hp = dpath.field("headers").key(k);
            let name = header_name(k, &hp)?;
            if v.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
                return Err(hp.error("header value contains CR, LF or NUL"));
            }
            headers.push((name, v.clone()));
        }

        let dry_run_header = match &self.dry_run_header {
            Some(h) => Some(header_name(h, &root.field("dryRunHeader"))?),
            None => None,
        };
        if self.num_trusted_proxies > 64 {
            return Err(root.field("numTrustedProxies").error("at most 64"));
        }
        Ok(Config {
            engine: Engine::new(policies, needs),
            deny: DenyResponse {
                status: d.status,
                body: d.body.clone(),
                headers,
            },
            path_normalization: self.path_normalization,
            num_trusted_proxies: self.num_trusted_proxies,
            dry_run_header,
        })
    }
}

fn compile_rule(
    rule: &RuleConfig,
    path: &FieldPath,
    needs: &mut Needs,
) -> Result<Rule, ConfigError> {
    let mut out = Rule::default();
    if let Some(from) = &rule.from {
        let fpath = path.field("from");
        if from.is_empty() {
            return Err(fpath.error("must not be empty (leave `from` out to match any source)"));
        }
        for (i, f) in from.iter().enumerate() {
            let spath = fpath.index(i).field("source");
            let Some(s) = &f.source else {
                return Err(spath.error("must be set"));
            };
            out.from.push(compile_source(s, &spath, needs)?);
        }
    }
    if let Some(to) = &rule.to {
        let tpath = path.field("to");
        if to.is_empty() {
            return Err(tpath.error("must not be empty (leave `to` out to match any operation)"));
        }
        for (i, t) in to.iter().enumerate() {
            let opath = tpath.index(i).field("operation");
            let Some(o) = &t.operation else {
                return Err(opath.error("must be set"));
            };
            out.to.push(compile_operation(o, &opath, needs)?);
        }
    }
    if let Some(when) = &rule.when {
        let wpath = path.field("when");
        if when.is_empty() {
            return Err(wpath.error("must not be empty (leave `when` out for no conditions)"));
        }
        for (i, c) in when.iter().enumerate() {
            compile_condition(c, &wpath.index(i), needs, &mut out.when)?;
        }
    }
    Ok(out)
}

/// The attribute a field or `when` key is about; builds the [`Leaf`].
enum Kind {
    Principals,
    RequestPrincipals,
    Namespaces,
    PeerIp,
    RemoteIp,
    DestinationIp,
    DestinationPort,
    Hosts,
    Methods,
    Paths,
    Header(String),
    Audiences,
    Presenter,
    Claim(Vec<String>),
    Sni,
}

fn each<T>(
    list: &[String],
    path: &FieldPath,
    f: fn(&str, &FieldPath) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        out.push(f(v, &path.index(i))?);
    }
    Ok(out)
}

fn cidr(v: &str, p: &FieldPath) -> Result<Cidr, ConfigError> {
    Cidr::parse(v).map_err(|e| p.error(e))
}

fn port(v: &str, p: &FieldPath) -> Result<u32, ConfigError> {
    match v.parse::<u32>() {
        Ok(n) if n <= 65535 && !v.starts_with('+') => Ok(n),
        _ => Err(p.error(format!("bad port `{v}`: expected a number in 0..65535"))),
    }
}

fn non_empty_pattern(v: &str, p: &FieldPath) -> Result<Pattern, ConfigError> {
    Pattern::parse(v, Star::NonEmpty, false, p)
}

fn header_pattern(v: &str, p: &FieldPath) -> Result<Pattern, ConfigError> {
    Pattern::parse(v, Star::Present, false, p)
}

fn host_pattern(v: &str, p: &FieldPath) -> Result<Pattern, ConfigError> {
    Pattern::parse(v, Star::Present, true, p)
}

fn method_pattern(v: &str, p: &FieldPath) -> Result<Pattern, ConfigError> {
    let bare = v.trim_start_matches('*').trim_end_matches('*');
    if !bare.is_empty() && !crate::attributes::valid_method(bare) {
        return Err(p.error(format!(
            "`{v}` is not an upper-case method name (requests with other methods are refused)"
        )));
    }
    Pattern::parse(v, Star::Present, false, p)
}

impl Kind {
    fn leaf(&self, list: &[String], p: &FieldPath, needs: &mut Needs) -> Result<Leaf, ConfigError> {
        Ok(match self {
            Kind::Principals => {
                needs.peer_uri = true;
                Leaf::Principals(each(list, p, peer_principal)?)
            }
            Kind::RequestPrincipals => {
                needs.identity = true;
                Leaf::RequestPrincipals(each(list, p, RequestPrincipal::parse)?)
            }
            Kind::Namespaces => {
                needs.peer_uri = true;
                Leaf::Namespaces(each(list, p, namespace)?)
            }
            Kind::PeerIp => {
                needs.peer_ip = true;
                Leaf::PeerIp(each(list, p, cidr)?)
            }
            Kind::RemoteIp => {
                needs.remote_ip = true;
                Leaf::RemoteIp(each(list, p, cidr)?)
            }
            Kind::DestinationIp => {
                needs.destination_ip = true;
                Leaf::DestinationIp(each(list, p, cidr)?)
            }
            Kind::DestinationPort => {
                needs.destination_port = true;
                Leaf::DestinationPort(each(list, p, port)?)
            }
            Kind::Hosts => {
                needs.host = true;
                Leaf::Hosts(each(list, p, host_pattern)?)
            }
            Kind::Methods => Leaf::Methods(each(list, p, method_pattern)?),
            Kind::Paths => Leaf::Paths(each(list, p, PathPattern::parse)?),
            Kind::Header(name) => Leaf::Header {
                name: name.clone(),
                patterns: each(list, p, header_pattern)?,
            },
            Kind::Audiences => {
                needs.identity = true;
                Leaf::Audiences(each(list, p, non_empty_pattern)?)
            }
            Kind::Presenter => {
                needs.identity = true;
                Leaf::Presenter(each(list, p, non_empty_pattern)?)
            }
            Kind::Claim(path) => {
                needs.identity = true;
                Leaf::Claim {
                    path: path.clone(),
                    patterns: each(list, p, non_empty_pattern)?,
                }
            }
            Kind::Sni => {
                needs.sni = true;
                Leaf::Sni(each(list, p, non_empty_pattern)?)
            }
        })
    }
}

/// Compiles the `values` and `notValues` of one field into at most two
/// conditions.
fn field(
    conds: &mut Vec<Condition>,
    parent: &FieldPath,
    names: (&str, &str),
    lists: (&[String], &[String]),
    kind: Kind,
    needs: &mut Needs,
) -> Result<(), ConfigError> {
    for (negated, name, list) in [(false, names.0, lists.0), (true, names.1, lists.1)] {
        if list.is_empty() {
            continue;
        }
        let lpath = parent.field(name);
        for (i, v) in list.iter().enumerate() {
            if v.is_empty() {
                return Err(lpath.index(i).error("empty value not allowed"));
            }
        }
        conds.push(Condition {
            leaf: kind.leaf(list, &lpath, needs)?,
            negated,
        });
    }
    Ok(())
}

/// A field: its name, its `not` name, both value lists, and its attribute.
type FieldSpec<'a> = (&'a str, &'a str, &'a [String], &'a [String], Kind);

fn compile_source(
    s: &SourceConfig,
    path: &FieldPath,
    needs: &mut Needs,
) -> Result<Vec<Condition>, ConfigError> {
    let mut c = Vec::new();
    let fields: [FieldSpec; 5] = [
        (
            "principals",
            "notPrincipals",
            &s.principals,
            &s.not_principals,
            Kind::Principals,
        ),
        (
            "requestPrincipals",
            "notRequestPrincipals",
            &s.request_principals,
            &s.not_request_principals,
            Kind::RequestPrincipals,
        ),
        (
            "namespaces",
            "notNamespaces",
            &s.namespaces,
            &s.not_namespaces,
            Kind::Namespaces,
        ),
        (
            "ipBlocks",
            "notIpBlocks",
            &s.ip_blocks,
            &s.not_ip_blocks,
            Kind::PeerIp,
        ),
        (
            "remoteIpBlocks",
            "notRemoteIpBlocks",
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            Kind::RemoteIp,
        ),
    ];
    for (yes, no, values, not_values, kind) in fields {
        field(&mut c, path, (yes, no), (values, not_values), kind, needs)?;
    }
    if c.is_empty() {
        return Err(path.error("must not be empty (set at least one field)"));
    }
    Ok(c)
}

fn compile_operation(
    o: &OperationConfig,
    path: &FieldPath,
    needs: &mut Needs,
) -> Result<Vec<Condition>, ConfigError> {
    let mut c = Vec::new();
    // Paths and methods first: cheapest and most selective.
    let fields: [FieldSpec; 4] = [
        ("paths", "notPaths", &o.paths, &o.not_paths, Kind::Paths),
        (
            "methods",
            "notMethods",
            &o.methods,
            &o.not_methods,
            Kind::Methods,
        ),
        ("hosts", "notHosts", &o.hosts, &o.not_hosts, Kind::Hosts),
        (
            "ports",
            "notPorts",
            &o.ports,
            &o.not_ports,
            Kind::DestinationPort,
        ),
    ];
    for (yes, no, values, not_values, kind) in fields {
        field(&mut c, path, (yes, no), (values, not_values), kind, needs)?;
    }
    if c.is_empty() {
        return Err(path.error("must not be empty (set at least one field)"));
    }
    Ok(c)
}

/// Splits `[a][b]...` into `["a", "b", ...]`; every name non-empty.
fn bracketed(rest: &str, nested: bool) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut r = rest;
    while !r.is_empty() {
        let inner = r.strip_prefix('[')?;
        let end = inner.find(']')?;
        let name = &inner[..end];
        if name.is_empty() || name.contains('[') {
            return None;
        }
        names.push(name.to_string());
        r = &inner[end + 1..];
    }
    if names.is_empty() || (!nested && names.len() > 1) {
        return None;
    }
    Some(names)
}

/// The `when` keys, as the issue and Istio's documentation list them.
pub const WHEN_KEYS: &[&str] = &[
    "request.headers[<name>]",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[<name>]",
    "destination.ip",
    "destination.port",
    "connection.sni",
];

fn when_kind(key: &str, path: &FieldPath) -> Result<Kind, ConfigError> {
    let kpath = path.field("key");
    if let Some(rest) = key.strip_prefix("request.headers") {
        let Some(mut names) = bracketed(rest, false) else {
            return Err(kpath.error(format!(
                "bad key `{key}`: expected `request.headers[<name>]`"
            )));
        };
        return Ok(Kind::Header(header_name(&names.remove(0), &kpath)?));
    }
    if let Some(rest) = key.strip_prefix("request.auth.claims") {
        let Some(names) = bracketed(rest, true) else {
            return Err(kpath.error(format!(
                "bad key `{key}`: expected `request.auth.claims[<name>]` or `request.auth.claims[<a>][<b>]`"
            )));
        };
        return Ok(Kind::Claim(names));
    }
    Ok(match key {
        "source.ip" => Kind::PeerIp,
        "remote.ip" => Kind::RemoteIp,
        "destination.ip" => Kind::DestinationIp,
        "destination.port" => Kind::DestinationPort,
        "source.namespace" => Kind::Namespaces,
        "source.principal" => Kind::Principals,
        "request.auth.principal" => Kind::RequestPrincipals,
        "request.auth.audiences" => Kind::Audiences,
        "request.auth.presenter" => Kind::Presenter,
        "connection.sni" => Kind::Sni,
        _ => {
            return Err(kpath.error(format!(
                "unknown key `{key}` (a condition that cannot be evaluated would change what the policy allows); \
                 supported keys: {}",
                WHEN_KEYS.join(", ")
            )))
        }
    })
}

fn compile_condition(
    c: &ConditionConfig,
    path: &FieldPath,
    needs: &mut Needs,
    out: &mut Vec<Condition>,
) -> Result<(), ConfigError> {
    let key = c.key.as_str();
    if key.is_empty() {
        return Err(path.field("key").error("must not be empty"));
    }
    let kind = when_kind(key, path)?;
    if c.values.is_empty() && c.not_values.is_empty() {
        return Err(path.error(format!(
            "at least one of `values` or `notValues` must be set for key `{key}`"
        )));
    }
    field(
        out,
        path,
        ("values", "notValues"),
        (&c.values, &c.not_values),
        kind,
        needs,
    )
}

#[cfg(test)]
mod tests;
