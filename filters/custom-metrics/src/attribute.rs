//! Attribute expressions: what a `value`, a dimension or an access-log field
//! reads, in Envoy's attribute vocabulary.
//!
//! An expression is a path of `.`-separated names and `[key]` (or
//! `['key']`, `["key"]`) subscripts: `request.method`,
//! `request.headers[x-plan]`, `request.auth.claims[realm][role]`,
//! `node.metadata.LABELS[app]`. Expressions are parsed once at configuration
//! time into an [`Attribute`]; an unknown one refuses the configuration.

/// Which side's Istio peer metadata (`downstream_peer` / `upstream_peer`
/// filter state of Istio's metadata exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerSide {
    /// The client (`downstream_peer`).
    Downstream,
    /// The server (`upstream_peer`).
    Upstream,
}

impl PeerSide {
    /// The filter-state name.
    pub fn property(self) -> &'static str {
        match self {
            PeerSide::Downstream => "downstream_peer",
            PeerSide::Upstream => "upstream_peer",
        }
    }
}

/// Fields of Istio's peer metadata object.
pub const PEER_FIELDS: [&str; 10] = [
    "workload",
    "namespace",
    "app",
    "version",
    "service",
    "revision",
    "cluster",
    "name",
    "type",
    "identity",
];

/// How Envoy encodes a property's value (`proxy_get_property`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropKind {
    /// Raw bytes of a string.
    Str,
    /// 8-byte little-endian integer.
    Int,
    /// One byte, non-zero for true.
    Bool,
    /// Timestamp: int64 nanoseconds since the epoch, little-endian.
    Timestamp,
    /// Duration: int64 nanoseconds, little-endian.
    Duration,
}

/// Values derived from several inputs for Istio's standard labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Derived {
    /// `grpc` for gRPC requests (`content-type: application/grpc*`), else
    /// `http` — Istio's `request_protocol`.
    Protocol,
    /// The gRPC status for gRPC requests, empty otherwise — Istio's
    /// `grpc_response_status`.
    GrpcLabel,
    /// Istio's `destination_service`: the host of an Istio cluster name
    /// (`outbound|9080||reviews.default.svc.cluster.local`), else the
    /// request's authority without port.
    DestinationService,
    /// The service name: first label of a `name.namespace.svc...` host, else
    /// the host.
    DestinationServiceName,
    /// The namespace of a `name.namespace.svc...` host, else (reporter
    /// destination) the node's namespace or (reporter source) the upstream
    /// peer's namespace.
    DestinationServiceNamespace,
    /// `mutual_tls` when `connection.mtls`, `none` when not, unknown when the
    /// property is missing.
    SecurityPolicy,
    /// Istio's `response_code`: the status code, `0` when there was no
    /// response.
    CodeLabel,
    /// The client's mTLS identity (`connection.uri_san_peer_certificate`),
    /// unknown on a connection that is not mutual TLS.
    PeerPrincipal,
    /// This proxy's mTLS identity (`connection.uri_san_local_certificate`),
    /// unknown on a connection that is not mutual TLS.
    LocalPrincipal,
}

/// A parsed attribute expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// `request.headers[name]` (first value).
    RequestHeader(String),
    /// `response.headers[name]`.
    ResponseHeader(String),
    /// `response.trailers[name]`.
    ResponseTrailer(String),
    /// `request.auth.claims[a][b]..` from the verified identity; a list claim
    /// gives its elements joined with `,`.
    Claim(Vec<String>),
    /// `request.auth.principal`: `<iss>/<sub>`.
    AuthPrincipal,
    /// `request.auth.audiences`, joined with `,`.
    AuthAudiences,
    /// `request.auth.presenter`: the `azp` claim.
    AuthPresenter,
    /// `request.method`.
    Method,
    /// `request.path`, query included.
    Path,
    /// `request.url_path`, without query.
    UrlPath,
    /// `request.host` (`:authority`).
    Host,
    /// `request.scheme`.
    Scheme,
    /// `request.query`.
    Query,
    /// `request.useragent`.
    UserAgent,
    /// `request.referer`.
    Referer,
    /// `request.id` (`x-request-id`).
    RequestId,
    /// `request.path_template`: the matching `pathTemplates` entry or `other`.
    PathTemplate,
    /// `request.duration_ms`.
    DurationMs,
    /// `request.size`: request body bytes.
    RequestSize,
    /// `request.total_size`: headers and body.
    RequestTotalSize,
    /// `response.size`: response body bytes.
    ResponseSize,
    /// `response.total_size`: headers, body and trailers.
    ResponseTotalSize,
    /// `inflight`: requests in flight in this VM.
    Inflight,
    /// `response.code`.
    ResponseCode,
    /// `response.code_class`: `2xx`, `4xx`...
    ResponseCodeClass,
    /// `response.grpc_status`.
    GrpcStatus,
    /// `response.flags`: Envoy's short flags (plus the fault filter's marks),
    /// `-` when none.
    ResponseFlags,
    /// `xds.cluster_name` / `cluster_name`: the routed cluster.
    Cluster,
    /// Istio peer metadata field (`downstream_peer.workload`).
    Peer(PeerSide, &'static str),
    /// Any other Envoy property, read with `proxy_get_property`.
    Property(Vec<String>, PropKind),
    /// A standard-label value (not writable in configuration).
    Derived(Derived),
}

impl Attribute {
    /// Whether the attribute can give a number (a metric `value`). Headers,
    /// trailers and claims are parsed as integers when recorded.
    pub fn is_numeric(&self) -> bool {
        use Attribute::*;
        match self {
            RequestHeader(_) | ResponseHeader(_) | ResponseTrailer(_) | Claim(_) => true,
            DurationMs | RequestSize | RequestTotalSize | ResponseSize | ResponseTotalSize
            | Inflight | ResponseCode | GrpcStatus => true,
            Property(_, kind) => {
                matches!(kind, PropKind::Int | PropKind::Bool | PropKind::Duration)
            }
            _ => false,
        }
    }
}

/// A resolved attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// The attribute does not exist for this request.
    Missing,
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A timestamp in nanoseconds since the epoch.
    Time(i64),
}

impl Value {
    /// The value as a label: missing values are `unknown`.
    pub fn write_label(&self, out: &mut String) {
        match self {
            Value::Missing => out.push_str("unknown"),
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => push_int(out, *i),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Time(ns) => out.push_str(&rfc3339(*ns)),
        }
    }

    /// The value as a metric sample: integers, booleans (0/1) and strings
    /// holding an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Missing | Value::Time(_) => None,
        }
    }

    /// Whether the value is missing or an empty string.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Missing => true,
            Value::Str(s) => s.is_empty(),
            _ => false,
        }
    }
}

/// Appends the decimal form of `i` (without the formatting machinery: this
/// runs for every integer label of every request).
pub fn push_int(out: &mut String, i: i64) {
    let mut buf = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push('-');
    }
    for &d in &buf[pos..] {
        out.push(d as char);
    }
}

/// `2023-11-14T22:13:20.000Z` for a timestamp in nanoseconds.
pub fn rfc3339(ns: i64) -> String {
    let ms_total = ns.div_euclid(1_000_000);
    let secs = ms_total.div_euclid(1000);
    let ms = ms_total.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Attributes the filter computes (or reads with fallbacks), by dotted name.
const COMPUTED: [(&str, Attribute); 25] = [
    ("request.auth.principal", Attribute::AuthPrincipal),
    ("request.auth.audiences", Attribute::AuthAudiences),
    ("request.auth.presenter", Attribute::AuthPresenter),
    ("request.method", Attribute::Method),
    ("request.path", Attribute::Path),
    ("request.url_path", Attribute::UrlPath),
    ("request.host", Attribute::Host),
    ("request.scheme", Attribute::Scheme),
    ("request.query", Attribute::Query),
    ("request.useragent", Attribute::UserAgent),
    ("request.referer", Attribute::Referer),
    ("request.id", Attribute::RequestId),
    ("request.path_template", Attribute::PathTemplate),
    ("request.duration_ms", Attribute::DurationMs),
    ("request.size", Attribute::RequestSize),
    ("request.total_size", Attribute::RequestTotalSize),
    ("response.code", Attribute::ResponseCode),
    ("response.code_class", Attribute::ResponseCodeClass),
    ("response.grpc_status", Attribute::GrpcStatus),
    ("response.flags", Attribute::ResponseFlags),
    ("response.size", Attribute::ResponseSize),
    ("response.total_size", Attribute::ResponseTotalSize),
    ("inflight", Attribute::Inflight),
    ("xds.cluster_name", Attribute::Cluster),
    ("cluster_name", Attribute::Cluster),
];

/// Envoy properties read as they are, by dotted name.
const PROPERTIES: [(&str, PropKind); 44] = [
    ("request.time", PropKind::Timestamp),
    ("request.duration", PropKind::Duration),
    ("request.protocol", PropKind::Str),
    ("response.code_details", PropKind::Str),
    ("xds.route_name", PropKind::Str),
    ("route_name", PropKind::Str),
    ("xds.virtual_host_name", PropKind::Str),
    ("source.address", PropKind::Str),
    ("source.port", PropKind::Int),
    ("destination.address", PropKind::Str),
    ("destination.port", PropKind::Int),
    ("connection.id", PropKind::Int),
    ("connection.mtls", PropKind::Bool),
    ("connection.requested_server_name", PropKind::Str),
    ("connection.tls_version", PropKind::Str),
    ("connection.subject_local_certificate", PropKind::Str),
    ("connection.subject_peer_certificate", PropKind::Str),
    ("connection.dns_san_local_certificate", PropKind::Str),
    ("connection.dns_san_peer_certificate", PropKind::Str),
    ("connection.uri_san_local_certificate", PropKind::Str),
    ("connection.uri_san_peer_certificate", PropKind::Str),
    ("connection.sha256_peer_certificate", PropKind::Str),
    ("connection.termination_details", PropKind::Str),
    ("connection.transport_failure_reason", PropKind::Str),
    ("upstream.address", PropKind::Str),
    ("upstream.port", PropKind::Int),
    ("upstream.request_attempt_count", PropKind::Int),
    ("upstream.tls_version", PropKind::Str),
    ("upstream.subject_local_certificate", PropKind::Str),
    ("upstream.subject_peer_certificate", PropKind::Str),
    ("upstream.dns_san_local_certificate", PropKind::Str),
    ("upstream.dns_san_peer_certificate", PropKind::Str),
    ("upstream.uri_san_local_certificate", PropKind::Str),
    ("upstream.uri_san_peer_certificate", PropKind::Str),
    ("upstream.sha256_peer_certificate", PropKind::Str),
    ("upstream.local_address", PropKind::Str),
    ("upstream.transport_failure_reason", PropKind::Str),
    ("node.id", PropKind::Str),
    ("node.cluster", PropKind::Str),
    ("plugin_name", PropKind::Str),
    ("plugin_root_id", PropKind::Str),
    ("plugin_vm_id", PropKind::Str),
    ("listener_direction", PropKind::Int),
    ("xds.listener_direction", PropKind::Int),
];

/// Parses an attribute expression. The error explains what is wrong.
pub fn parse(expr: &str) -> Result<Attribute, String> {
    let segs = split(expr)?;
    let s: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    match s.as_slice() {
        ["request", "headers", h] => return Ok(Attribute::RequestHeader(header_name(h)?)),
        ["response", "headers", h] => return Ok(Attribute::ResponseHeader(header_name(h)?)),
        ["response", "trailers", h] => return Ok(Attribute::ResponseTrailer(header_name(h)?)),
        ["request", "auth", "claims", _, ..] => return Ok(Attribute::Claim(segs[3..].to_vec())),
        ["node", "metadata", _, ..] => return Ok(Attribute::Property(segs, PropKind::Str)),
        [side @ ("downstream_peer" | "upstream_peer"), f] => {
            let side = if *side == "downstream_peer" {
                PeerSide::Downstream
            } else {
                PeerSide::Upstream
            };
            if let Some(field) = PEER_FIELDS.iter().find(|p| **p == *f) {
                return Ok(Attribute::Peer(side, field));
            }
        }
        _ => {}
    }
    let dotted = s.join(".");
    if let Some((_, a)) = COMPUTED.iter().find(|(n, _)| *n == dotted) {
        return Ok(a.clone());
    }
    if let Some((_, kind)) = PROPERTIES.iter().find(|(n, _)| *n == dotted) {
        return Ok(Attribute::Property(segs, *kind));
    }
    Err(format!("unknown attribute `{expr}`"))
}

/// Checks and lower-cases a header name (Envoy stores them lower-case).
pub fn header_name(h: &str) -> Result<String, String> {
    let body = h.strip_prefix(':').unwrap_or(h);
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if body.is_empty() || !body.chars().all(token) {
        return Err(format!("`{h}` is not a valid header name"));
    }
    Ok(h.to_ascii_lowercase())
}

/// Splits `a.b[c]['d.e']` into `["a", "b", "c", "d.e"]`.
fn split(expr: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| Err(format!("attribute `{expr}`: {why}"));
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = Vec::new();
    let mut rest = expr;
    let mut first = true;
    while !rest.is_empty() || first {
        if first || rest.starts_with('.') {
            if !first {
                rest = &rest[1..];
            }
            first = false;
            let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
            if end == 0 {
                return bad("expected a name");
            }
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let (key, tail) =
                if let Some(q) = after.chars().next().filter(|c| *c == '\'' || *c == '"') {
                    let inner = &after[1..];
                    let Some(close) = inner.find(q) else {
                        return bad("unterminated quote");
                    };
                    let tail = &inner[close + 1..];
                    let Some(tail) = tail.strip_prefix(']') else {
                        return bad("expected `]` after the quoted key");
                    };
                    (&inner[..close], tail)
                } else {
                    let Some(close) = after.find(']') else {
                        return bad("missing `]`");
                    };
                    (&after[..close], &after[close + 1..])
                };
            if key.is_empty() || key.contains('[') {
                return bad("empty or malformed `[key]`");
            }
            out.push(key.to_string());
            rest = tail;
        } else {
            return bad("expected `.` or `[`");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vocabulary() {
        assert_eq!(parse("request.method"), Ok(Attribute::Method));
        assert_eq!(
            parse("request.headers[X-Plan]"),
            Ok(Attribute::RequestHeader("x-plan".into()))
        );
        assert_eq!(
            parse("request.headers['x-plan']"),
            Ok(Attribute::RequestHeader("x-plan".into()))
        );
        assert_eq!(
            parse("request.auth.claims[tenant]"),
            Ok(Attribute::Claim(vec!["tenant".into()]))
        );
        assert_eq!(
            parse("request.auth.claims[realm_access][\"a.b\"]"),
            Ok(Attribute::Claim(vec!["realm_access".into(), "a.b".into()]))
        );
        assert_eq!(parse("cluster_name"), Ok(Attribute::Cluster));
        assert_eq!(parse("xds.cluster_name"), Ok(Attribute::Cluster));
        assert_eq!(
            parse("source.port"),
            Ok(Attribute::Property(
                vec!["source".into(), "port".into()],
                PropKind::Int
            ))
        );
        assert_eq!(
            parse("node.metadata.LABELS[app]"),
            Ok(Attribute::Property(
                vec![
                    "node".into(),
                    "metadata".into(),
                    "LABELS".into(),
                    "app".into()
                ],
                PropKind::Str
            ))
        );
        assert_eq!(
            parse("downstream_peer.workload"),
            Ok(Attribute::Peer(PeerSide::Downstream, "workload"))
        );
        assert_eq!(parse("connection.mtls").map(|a| a.is_numeric()), Ok(true));
        assert_eq!(parse("request.method").map(|a| a.is_numeric()), Ok(false));
        assert_eq!(parse("request.size").map(|a| a.is_numeric()), Ok(true));
        assert_eq!(parse("inflight"), Ok(Attribute::Inflight));
    }

    #[test]
    fn refuses_unknown_and_malformed() {
        for bad in [
            "request.foo",
            "request",
            "",
            "request.headers",
            "request.headers[]",
            "request.headers[a b]",
            "request.auth.claims",
            "downstream_peer.bogus",
            "request.method.",
            "request..method",
            "request.headers['x",
            "request.headers[x",
            "node.metadata",
            "response.code extra",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            parse("request.foo").unwrap_err(),
            "unknown attribute `request.foo`"
        );
    }

    #[test]
    fn values() {
        let mut s = String::new();
        Value::Int(-3).write_label(&mut s);
        Value::Missing.write_label(&mut s);
        Value::Bool(true).write_label(&mut s);
        assert_eq!(s, "-3unknowntrue");
        for i in [0, 7, 10, 200, -1, i64::MAX, i64::MIN] {
            let mut s = String::new();
            push_int(&mut s, i);
            assert_eq!(s, i.to_string());
        }
        assert_eq!(Value::Str(" 42 ".into()).as_i64(), Some(42));
        assert_eq!(Value::Str("x".into()).as_i64(), None);
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }
}
