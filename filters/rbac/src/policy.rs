//! Compiled policies and the decision procedure.
//!
//! Istio's order: a matching DENY policy denies; otherwise, when at least one
//! ALLOW policy exists, one of them must match; otherwise the request is
//! allowed. AUDIT policies only mark. `dryRun` policies are evaluated but not
//! enforced; the decision they would have produced (all policies enforced,
//! dry-run ones included) is the shadow decision.
//!
//! A policy matches when one of its rules matches. A rule matches when one of
//! its `from` sources, one of its `to` operations and all of its `when`
//! conditions match (an absent list matches anything). Every field inside a
//! source or operation must match; `notX` fields negate.
//!
//! # Several readings of one request
//!
//! A header sent several times can be read as its first value, its last, or
//! Envoy's comma-joined value; upstream applications differ. For header
//! conditions, each of those readings is considered and the answer that is
//! safe for the policy's action is taken: a DENY (or AUDIT) policy sees a
//! condition as met if it is met under *some* reading, an ALLOW policy only
//! if it is met under *every* reading. With a single value this is exactly
//! Envoy's behaviour; with duplicates, DENY can only deny more and ALLOW
//! only allow less. Connection attributes the host failed to provide are
//! treated the same way (a DENY matches, an ALLOW does not).

use crate::attributes::{Attributes, Observed};
use crate::index::PathIndex;
use crate::matcher::{Glob, PathPattern, Pattern, PrefixedPattern};
use crate::principal::RequestPrincipal;
use std::net::IpAddr;
use wasmesh_common::cidr::Cidr;
use wasmesh_common::identity::{JsonRef, Scalar};

/// What a policy does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum Action {
    /// Requests must match one ALLOW policy (when there is one).
    #[default]
    Allow,
    /// Matching requests are denied.
    Deny,
    /// Matching requests are marked (log line, metric); nothing is enforced.
    Audit,
}

impl Action {
    /// The word used in configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
        }
    }

    #[cfg(test)]
    pub(crate) fn mode_for_tests(self) -> Mode {
        self.mode()
    }

    fn mode(self) -> Mode {
        match self {
            Action::Allow => Mode::Strict,
            Action::Deny | Action::Audit => Mode::Broad,
        }
    }
}

/// How ambiguous attributes are read (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// True if true under some reading (DENY, AUDIT).
    Broad,
    /// True only if true under every reading (ALLOW).
    Strict,
}

impl Mode {
    fn flip(self) -> Mode {
        match self {
            Mode::Broad => Mode::Strict,
            Mode::Strict => Mode::Broad,
        }
    }
    fn unknown(self) -> bool {
        self == Mode::Broad
    }
}

/// The attribute a condition looks at, with the values it accepts.
#[derive(Debug, Clone)]
pub(crate) enum Leaf {
    Principals(Vec<PrefixedPattern>),
    RequestPrincipals(Vec<RequestPrincipal>),
    Namespaces(Vec<Glob>),
    PeerIp(Vec<Cidr>),
    RemoteIp(Vec<Cidr>),
    DestinationIp(Vec<Cidr>),
    DestinationPort(Vec<u32>),
    Hosts(Vec<Pattern>),
    Methods(Vec<Pattern>),
    Paths(Vec<PathPattern>),
    Header {
        name: String,
        patterns: Vec<Pattern>,
    },
    Audiences(Vec<Pattern>),
    Presenter(Vec<Pattern>),
    Claim {
        path: Vec<String>,
        patterns: Vec<Pattern>,
    },
    Sni(Vec<Pattern>),
}

fn ip_in(ip: Observed<IpAddr>, blocks: &[Cidr], mode: Mode) -> bool {
    match ip {
        Observed::Known(ip) => blocks.iter().any(|b| b.contains(ip)),
        Observed::Unknown => mode.unknown(),
    }
}

fn any_pattern(patterns: &[Pattern], value: &str) -> bool {
    patterns.iter().any(|p| p.matches(value))
}

/// A claim value matches if it is a matching string, or a list with a
/// matching element; integers and booleans are compared as their JSON text.
/// Fractional numbers never match.
fn claim_matches(v: JsonRef<'_>, patterns: &[Pattern]) -> bool {
    v.scalars().any(|s| match s {
        Scalar::Num(_) if !s.is_integer() => false,
        s => any_pattern(patterns, s.text()),
    })
}

/// Header condition over every reading of a possibly repeated header.
fn header_matches(a: &Attributes, name: &str, patterns: &[Pattern], mode: Mode) -> bool {
    let mut values = a.headers.get_all(name);
    let Some(first) = values.next() else {
        return false;
    };
    let Some(second) = values.next() else {
        return any_pattern(patterns, first);
    };
    // Repeated: each value, and the comma-joined value Envoy matches.
    let all: Vec<&str> = [first, second].into_iter().chain(values).collect();
    let joined = all.join(",");
    let readings = all.iter().copied().chain(std::iter::once(joined.as_str()));
    match mode {
        Mode::Broad => readings.into_iter().any(|r| any_pattern(patterns, r)),
        Mode::Strict => readings.into_iter().all(|r| any_pattern(patterns, r)),
    }
}

impl Leaf {
    fn eval(&self, a: &Attributes, mode: Mode) -> bool {
        match self {
            Leaf::Principals(ps) => a.peer_uri.is_some_and(|u| ps.iter().any(|p| p.matches(u))),
            Leaf::Namespaces(gs) => a.peer_uri.is_some_and(|u| gs.iter().any(|g| g.matches(u))),
            Leaf::RequestPrincipals(rps) => a.identity.is_some_and(|id| {
                let (iss, sub) = (id.iss(), id.sub());
                rps.iter().any(|rp| rp.matches(&iss, &sub))
            }),
            Leaf::PeerIp(b) => ip_in(a.peer_ip, b, mode),
            Leaf::RemoteIp(b) => ip_in(a.remote_ip, b, mode),
            Leaf::DestinationIp(b) => ip_in(a.destination_ip, b, mode),
            Leaf::DestinationPort(ports) => match a.destination_port {
                Observed::Known(p) => ports.contains(&p),
                Observed::Unknown => mode.unknown(),
            },
            Leaf::Hosts(ps) => a.host.forms().any(|f| any_pattern(ps, f)),
            Leaf::Methods(ps) => any_pattern(ps, a.method),
            Leaf::Paths(ps) => ps.iter().any(|p| p.matches(a.path)),
            Leaf::Header { name, patterns } => header_matches(a, name, patterns, mode),
            Leaf::Audiences(ps) => a
                .identity
                .is_some_and(|id| id.audiences().any(|aud| any_pattern(ps, &aud))),
            Leaf::Presenter(ps) => a.identity.is_some_and(|id| {
                let azp = id.azp();
                !azp.is_empty() && any_pattern(ps, &azp)
            }),
            Leaf::Claim { path, patterns } => a
                .identity
                .and_then(|id| id.claim(path))
                .is_some_and(|v| claim_matches(v, patterns)),
            Leaf::Sni(ps) => a.sni.is_some_and(|s| any_pattern(ps, s)),
        }
    }
}

/// One condition: a leaf, possibly negated (`notX`, `notValues`).
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub(crate) leaf: Leaf,
    pub(crate) negated: bool,
}

impl Condition {
    fn eval(&self, a: &Attributes, mode: Mode) -> bool {
        if self.negated {
            // "matches none of these" under some reading = not (matches under every reading).
            !self.leaf.eval(a, mode.flip())
        } else {
            self.leaf.eval(a, mode)
        }
    }
}

fn all(conds: &[Condition], a: &Attributes, mode: Mode) -> bool {
    conds.iter().all(|c| c.eval(a, mode))
}

/// A compiled rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rule {
    /// Sources (ORed), each a list of ANDed conditions; empty: any source.
    pub(crate) from: Vec<Vec<Condition>>,
    /// Operations (ORed); empty: any operation.
    pub(crate) to: Vec<Vec<Condition>>,
    /// Conditions (ANDed).
    pub(crate) when: Vec<Condition>,
}

impl Rule {
    /// Operations first: paths and methods are the cheapest and most
    /// selective checks (AND has no side effects, so order is free).
    pub(crate) fn matches(&self, a: &Attributes, mode: Mode) -> bool {
        (self.to.is_empty() || self.to.iter().any(|o| all(o, a, mode)))
            && (self.from.is_empty() || self.from.iter().any(|s| all(s, a, mode)))
            && all(&self.when, a, mode)
    }
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) name: String,
    pub(crate) action: Action,
    pub(crate) dry_run: bool,
    pub(crate) rules: Vec<Rule>,
}

impl Policy {
    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Its action.
    pub fn action(&self) -> Action {
        self.action
    }
    /// Whether it is only evaluated, not enforced.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }
}

/// Which attributes the policies look at, so the glue fetches only those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// `source.address`.
    pub peer_ip: bool,
    /// `x-forwarded-for` and `source.address`.
    pub remote_ip: bool,
    /// `destination.address`.
    pub destination_ip: bool,
    /// `destination.port`.
    pub destination_port: bool,
    /// `connection.requested_server_name`.
    pub sni: bool,
    /// `connection.uri_san_peer_certificate`.
    pub peer_uri: bool,
    /// The verified JWT identity.
    pub identity: bool,
    /// `:authority` forms.
    pub host: bool,
}

/// A policy that matched, and the rule that did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index of the policy in configuration order.
    pub policy: usize,
    /// Index of its first matching rule.
    pub rule: usize,
}

/// The outcome of one set of policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy that decided: the matching DENY policy, or the matching
    /// ALLOW policy. `None` when allowed because there is no ALLOW policy,
    /// or denied because none of the ALLOW policies matched.
    pub by: Option<Match>,
}

/// Everything the glue needs to act on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What is enforced.
    pub enforced: Outcome,
    /// What would happen if `dryRun` policies were enforced too; present
    /// only when there is at least one `dryRun` policy.
    pub shadow: Option<Outcome>,
    /// The first matching AUDIT policy; `None` also when there is none.
    pub audit: Option<Match>,
    /// Every policy that matched (for per-policy counters), in order.
    pub matched: Vec<Match>,
}

/// All policies, compiled.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    policies: Vec<Policy>,
    needs: Needs,
    /// Policy and rule index of each rule number.
    owner: Vec<(u32, u32)>,
    pub(crate) index: PathIndex,
    has_dry_run: bool,
    has_audit: bool,
}

fn outcome(policies: &[Policy], matched: &[Match], include_dry_run: bool) -> Outcome {
    let counts = |p: &Policy| include_dry_run || !p.dry_run;
    if let Some(m) = matched
        .iter()
        .find(|m| policies[m.policy].action == Action::Deny && counts(&policies[m.policy]))
    {
        return Outcome {
            allowed: false,
            by: Some(*m),
        };
    }
    let has_allow = policies
        .iter()
        .any(|p| p.action == Action::Allow && counts(p));
    if !has_allow {
        return Outcome {
            allowed: true,
            by: None,
        };
    }
    match matched
        .iter()
        .find(|m| policies[m.policy].action == Action::Allow && counts(&policies[m.policy]))
    {
        Some(m) => Outcome {
            allowed: true,
            by: Some(*m),
        },
        None => Outcome {
            allowed: false,
            by: None,
        },
    }
}

impl Engine {
    /// The compiled policies, in configuration order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The attributes the glue has to provide.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// Compiles the engine: numbers the rules and indexes their paths.
    pub(crate) fn new(policies: Vec<Policy>, needs: Needs) -> Engine {
        let mut owner = Vec::new();
        for (pi, p) in policies.iter().enumerate() {
            for ri in 0..p.rules.len() {
                owner.push((pi as u32, ri as u32));
            }
        }
        let index = PathIndex::build(policies.iter().flat_map(|p| p.rules.iter()));
        Engine {
            has_dry_run: policies.iter().any(|p| p.dry_run),
            has_audit: policies.iter().any(|p| p.action == Action::Audit),
            policies,
            needs,
            owner,
            index,
        }
    }

    /// Whether any policy is `dryRun`.
    pub fn has_dry_run(&self) -> bool {
        self.has_dry_run
    }

    /// Whether any policy is AUDIT.
    pub fn has_audit(&self) -> bool {
        self.has_audit
    }

    /// Evaluates every policy against the request (every rule the path
    /// index does not rule out).
    pub fn evaluate(&self, a: &Attributes) -> Decision {
        let candidates = self.index.candidates(a.path);
        let mut matched: Vec<Match> = Vec::new();
        // Rule numbers ascend by policy, then rule: the first match of a
        // policy is its first matching rule, and its other rules are skipped.
        let mut done = u32::MAX;
        for n in candidates.iter() {
            let Some(&(pi, ri)) = self.owner.get(n as usize) else {
                break;
            };
            if pi == done {
                continue;
            }
            let p = &self.policies[pi as usize];
            if p.rules[ri as usize].matches(a, p.action.mode()) {
                matched.push(Match {
                    policy: pi as usize,
                    rule: ri as usize,
                });
                done = pi;
            }
        }
        let enforced = outcome(&self.policies, &matched, false);
        let shadow = self
            .has_dry_run
            .then(|| outcome(&self.policies, &matched, true));
        let audit = matched
            .iter()
            .find(|m| self.policies[m.policy].action == Action::Audit)
            .copied();
        Decision {
            enforced,
            shadow,
            audit,
            matched,
        }
    }
}
