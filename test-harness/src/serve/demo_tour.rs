//! The demo's tour: the requests it sends ([`tour_steps`]), what each must
//! give, and the report that prints as a table ([`TourReport`]).

use super::demo::{b64url, Idp, AUDIENCE, ISSUER};
use serde_json::json;
use std::fmt;
use std::time::Duration;

/// The request headers the tour shows from the upstream's point of view.
pub const SEEN_HEADERS: &[&str] = &["x-user", "x-groups", "x-wasmesh-cluster", "authorization"];

/// One request of the tour and what it must give.
pub struct StepSpec {
    pub name: &'static str,
    pub path: &'static str,
    /// The `Bearer` token sent, if any.
    pub token: Option<String>,
    /// Who the token belongs to (for the table).
    pub who: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub status: u16,
    /// The plugin that answered locally, or `upstream`.
    pub decided_by: &'static str,
    /// The start of the response code details.
    pub details_prefix: Option<&'static str>,
    /// The cluster whose upstream must answer (`None`: a local reply).
    pub cluster: Option<&'static str>,
    /// Headers the upstream must have seen (`None`: absent).
    pub seen: Vec<(&'static str, Option<&'static str>)>,
    pub min_duration: Option<Duration>,
}

impl StepSpec {
    pub(super) fn describe(&self) -> String {
        let mut s = format!("GET {}", self.path);
        s.push_str(&format!(" [{}]", self.who));
        for (k, v) in &self.headers {
            s.push_str(&format!(" {k}: {v}"));
        }
        s
    }
}

/// The tour: what the README's demo shows.
pub fn tour_steps(idp: &Idp) -> Vec<StepSpec> {
    let t = |u: &str| idp.token(u).map(str::to_string);
    // Alice edits her token's claims to join `admin` and keeps the signature.
    let tampered = t("alice").and_then(|tok| {
        let mut parts = tok.split('.');
        let (h, _, s) = (parts.next()?, parts.next()?, parts.next()?);
        let claims = json!({"iss": ISSUER, "sub": "alice", "aud": AUDIENCE,
            "exp": 4_102_444_800u64, "groups": ["users", "admin"]});
        Some(format!("{h}.{}.{s}", b64url(claims.to_string().as_bytes())))
    });
    let step = |name, path, token: Option<String>, who| StepSpec {
        name,
        path,
        token,
        who,
        headers: Vec::new(),
        status: 200,
        decided_by: "upstream",
        details_prefix: Some("via_upstream"),
        cluster: Some("reviews-v1"),
        seen: Vec::new(),
        min_duration: None,
    };
    vec![
        StepSpec {
            status: 401,
            decided_by: "jwt-authn",
            details_prefix: Some("jwt_authn_access_denied{Jwt_is_missing}"),
            cluster: None,
            ..step("no token", "/reviews/1", None, "no token")
        },
        StepSpec {
            seen: vec![
                ("x-user", Some("alice")),
                ("x-groups", Some("users")),
                ("x-wasmesh-cluster", Some("reviews-v1")),
                ("authorization", None),
            ],
            ..step("valid token", "/reviews/1", t("alice"), "alice")
        },
        StepSpec {
            cluster: Some("reviews-v2"),
            seen: vec![
                ("x-user", Some("bob")),
                ("x-groups", Some("users,beta")),
                ("x-wasmesh-cluster", Some("reviews-v2")),
            ],
            ..step("beta group", "/reviews/1", t("bob"), "bob")
        },
        StepSpec {
            status: 403,
            decided_by: "rbac",
            details_prefix: Some("rbac_access_denied_matched_policy[admin-only]"),
            cluster: None,
            ..step("non-admin on /admin", "/admin", t("alice"), "alice")
        },
        StepSpec {
            seen: vec![("x-user", Some("carol"))],
            ..step("admin on /admin", "/admin", t("carol"), "carol")
        },
        StepSpec {
            headers: vec![("x-chaos", "delay")],
            min_duration: Some(Duration::from_millis(500)),
            seen: vec![("x-user", Some("alice"))],
            ..step("chaos: delay", "/reviews/1", t("alice"), "alice")
        },
        StepSpec {
            headers: vec![("x-chaos", "abort")],
            status: 503,
            decided_by: "fault-injection",
            details_prefix: Some("fault_filter_abort"),
            cluster: None,
            ..step("chaos: abort", "/reviews/1", t("alice"), "alice")
        },
        StepSpec {
            headers: vec![("x-user", "admin"), ("x-groups", "admin")],
            seen: vec![("x-user", Some("alice")), ("x-groups", Some("users"))],
            ..step("forged identity headers", "/reviews/1", t("alice"), "alice")
        },
        StepSpec {
            headers: vec![("x-wasmesh-cluster", "reviews-v2")],
            seen: vec![("x-wasmesh-cluster", Some("reviews-v1"))],
            ..step("forged routing header", "/reviews/1", t("alice"), "alice")
        },
        StepSpec {
            status: 401,
            decided_by: "jwt-authn",
            details_prefix: Some("jwt_authn_access_denied{Jwt_verification_fails}"),
            cluster: None,
            ..step(
                "tampered token",
                "/admin",
                tampered,
                "alice, claims edited to admin",
            )
        },
    ]
}

/// What one tour request gave.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub request: String,
    pub status: u16,
    /// The plugin that answered locally, `upstream`, or `proxy (<details>)`.
    pub decided_by: String,
    /// Response code details from the access log.
    pub details: String,
    /// Response flags from the access log.
    pub flags: String,
    /// The cluster whose upstream answered.
    pub cluster: String,
    /// The identity and routing headers the upstream saw.
    pub seen: String,
    pub duration: Duration,
    /// Empty when the step gave what it should.
    pub problems: Vec<String>,
}

impl Step {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The tour's result.
#[derive(Debug, Clone)]
pub struct TourReport {
    pub steps: Vec<Step>,
    /// The `istio_requests_total` and `demo_requests_total` lines.
    pub metrics: Vec<String>,
    /// Problems with the metrics.
    pub problems: Vec<String>,
}

impl TourReport {
    pub fn passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(Step::ok) && self.problems.is_empty()
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map(|s| s.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (cols.max(1) - 1)));
            out.push('\n');
        }
    }
    out
}

impl fmt::Display for TourReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![vec![
            "".into(),
            "step".into(),
            "request".into(),
            "status".into(),
            "decided by (response code details)".into(),
            "upstream".into(),
            "time".into(),
            "upstream saw".into(),
        ]];
        for (i, s) in self.steps.iter().enumerate() {
            rows.push(vec![
                if s.ok() { "ok".into() } else { "FAIL".into() },
                format!("{}. {}", i + 1, s.name),
                s.request.clone(),
                s.status.to_string(),
                if s.decided_by == "upstream" {
                    s.decided_by.clone()
                } else {
                    format!("{} ({})", s.decided_by, s.details)
                },
                s.cluster.clone(),
                format!("{} ms", s.duration.as_millis()),
                s.seen.clone(),
            ]);
        }
        write!(f, "{}", table(&rows))?;
        for (i, s) in self.steps.iter().enumerate() {
            for p in &s.problems {
                writeln!(f, "FAIL step {} ({}): {p}", i + 1, s.name)?;
            }
        }
        writeln!(f, "\nGET /stats/prometheus (admin listener):")?;
        for l in &self.metrics {
            writeln!(f, "  {l}")?;
        }
        for p in &self.problems {
            writeln!(f, "FAIL metrics: {p}")?;
        }
        let failed =
            self.steps.iter().filter(|s| !s.ok()).count() + usize::from(!self.problems.is_empty());
        if failed == 0 {
            writeln!(
                f,
                "\nall {} steps and the metrics as expected",
                self.steps.len()
            )
        } else {
            writeln!(f, "\n{failed} check(s) FAILED")
        }
    }
}
