//! Requirement trees (`rules[].requires`) and their evaluation, as Envoy's
//! `verifier.cc`:
//!
//! * `{"provider": "p"}` (optionally with `"audiences": [...]`, overriding the
//!   provider's): the token at p's locations must verify. None → `Jwt is
//!   missing`.
//! * `{"anyOf": [...]}`: one child must pass. When none does, the failure
//!   reported is the last one other than "missing"/"unknown issuer" (a token
//!   meant for another provider is not this one's failure); otherwise
//!   "unknown issuer", otherwise "missing". `allowMissing` /
//!   `allowMissingOrFailed` children are tried last and look at the
//!   locations of the providers named in the same list.
//! * `{"allOf": [...]}`: every child must pass; the first failure is reported.
//! * `{"allowMissing": true}`: no token passes; tokens present must verify,
//!   each against the provider (among those in scope) whose issuer it names.
//! * `{"allowMissingOrFailed": true}`: always passes; tokens that verify
//!   still produce their outputs and identity.
//!
//! Without `rules`, Istio semantics: every request gets `allowMissing` over
//! all providers.
//!
//! A provider accepts at most one token per request: a second one (the
//! header sent twice, header plus query parameter, ...) is refused with
//! `Found multiple Jwt tokens` rather than verifying one and forwarding the
//! other.

use crate::authenticator::{Authenticator, Verdict, Verified};
use crate::config::Audiences;
use crate::extractor::{ExtractedToken, Extractor};
use crate::jwt::Jwt;
use crate::status::Status;
use std::rc::Rc;
use wasmesh_common::{ConfigError, FieldPath};

/// `requires` as written: exactly one of the fields.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "struct JwtRequirement"
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RequirementConfig {
    /// A provider's token must verify.
    pub provider: Option<String>,
    /// With `provider`: these audiences instead of the provider's.
    pub audiences: Option<Vec<String>>,
    /// One of these must pass.
    pub any_of: Option<Vec<RequirementConfig>>,
    /// All of these must pass.
    pub all_of: Option<Vec<RequirementConfig>>,
    /// `true`: a missing token passes; a present one must verify.
    pub allow_missing: Option<bool>,
    /// `true`: always passes; verified tokens still produce outputs.
    pub allow_missing_or_failed: Option<bool>,
}

/// A compiled requirement.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    /// Provider index and optional audience override.
    Provider(usize, Option<Audiences>),
    /// One must pass (by-pass child, if any, last).
    AnyOf(Vec<Requirement>),
    /// All must pass.
    AllOf(Vec<Requirement>),
    /// Tokens of these providers' locations must verify if present.
    AllowMissing(Vec<usize>),
    /// Tokens of these providers' locations are verified; never fails.
    AllowMissingOrFailed(Vec<usize>),
}

impl RequirementConfig {
    /// Compiles against the provider `names`.
    pub fn compile(&self, at: &FieldPath, names: &[&str]) -> Result<Requirement, ConfigError> {
        self.compile_in(at, names, None)
    }

    fn compile_in(
        &self,
        at: &FieldPath,
        names: &[&str],
        scope: Option<&[usize]>,
    ) -> Result<Requirement, ConfigError> {
        let kinds = [
            self.provider.is_some(),
            self.any_of.is_some(),
            self.all_of.is_some(),
            self.allow_missing.is_some(),
            self.allow_missing_or_failed.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if kinds != 1 {
            return Err(at.error(
                "exactly one of `provider`, `anyOf`, `allOf`, `allowMissing` or `allowMissingOrFailed` is required",
            ));
        }
        if self.audiences.is_some() && self.provider.is_none() {
            return Err(at.field("audiences").error("only applies with `provider`"));
        }
        let all: Vec<usize> = (0..names.len()).collect();
        let scope_or_all = || scope.map(<[usize]>::to_vec).unwrap_or_else(|| all.clone());
        if let Some(name) = &self.provider {
            let idx = names.iter().position(|n| n == name).ok_or_else(|| {
                at.field("provider")
                    .error(format!("unknown provider `{name}`"))
            })?;
            let aud = match &self.audiences {
                None => None,
                Some(a) => {
                    if let Some(j) = a.iter().position(String::is_empty) {
                        return Err(at.field("audiences").index(j).error("must not be empty"));
                    }
                    Some(Audiences::new(a))
                }
            };
            return Ok(Requirement::Provider(idx, aud));
        }
        if let Some(flag) = self.allow_missing {
            if !flag {
                return Err(at.field("allowMissing").error("must be true when set"));
            }
            return Ok(Requirement::AllowMissing(scope_or_all()));
        }
        if let Some(flag) = self.allow_missing_or_failed {
            if !flag {
                return Err(at
                    .field("allowMissingOrFailed")
                    .error("must be true when set"));
            }
            return Ok(Requirement::AllowMissingOrFailed(scope_or_all()));
        }
        if let Some(list) = &self.all_of {
            let lp = at.field("allOf");
            if list.is_empty() {
                return Err(lp.error("must not be empty"));
            }
            let children = list
                .iter()
                .enumerate()
                .map(|(i, r)| r.compile_in(&lp.index(i), names, None))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Requirement::AllOf(children));
        }
        let list = self.any_of.as_deref().unwrap_or_default();
        let lp = at.field("anyOf");
        if list.is_empty() {
            return Err(lp.error("must not be empty"));
        }
        // Providers named directly in this list scope its by-pass child (Envoy).
        let mut named = Vec::new();
        for r in list {
            if let Some(i) = r
                .provider
                .as_ref()
                .and_then(|n| names.iter().position(|x| x == n))
            {
                if !named.contains(&i) {
                    named.push(i);
                }
            }
        }
        let by_pass_scope: Option<&[usize]> = if named.is_empty() { None } else { Some(&named) };
        let mut regular = Vec::new();
        let mut by_pass: Option<Requirement> = None;
        for (i, r) in list.iter().enumerate() {
            let c = r.compile_in(&lp.index(i), names, by_pass_scope)?;
            match c {
                // allowMissingOrFailed wins over allowMissing (Envoy keeps one).
                Requirement::AllowMissingOrFailed(_) => by_pass = Some(c),
                Requirement::AllowMissing(_)
                    if !matches!(by_pass, Some(Requirement::AllowMissingOrFailed(_))) =>
                {
                    by_pass = Some(c)
                }
                Requirement::AllowMissing(_) => {}
                other => regular.push(other),
            }
        }
        regular.extend(by_pass);
        Ok(Requirement::AnyOf(regular))
    }
}

/// One provider's verified token in the request.
#[derive(Debug, Clone)]
pub struct Success {
    /// Provider index.
    pub provider: usize,
    /// Where the token was (index into the extractor's locations).
    pub location: usize,
    /// The token as sent.
    pub token: String,
    /// What verification produced.
    pub verified: Rc<Verified>,
}

/// The decision for a request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Let it through; apply these successes' outputs (in requirement order).
    Allow(Vec<Success>),
    /// Refuse with this status.
    Deny(Status),
    /// Keys are being fetched; evaluate again when they arrive.
    Wait,
}

/// Evaluates `req` for the request's `tokens`.
pub fn evaluate(
    req: &Requirement,
    tokens: &[ExtractedToken],
    extractor: &Extractor,
    auth: &mut Authenticator<'_>,
) -> Outcome {
    match eval(req, tokens, extractor, auth) {
        R::Ok(s) => Outcome::Allow(s),
        R::Fail(s) => Outcome::Deny(s),
        R::Wait => Outcome::Wait,
    }
}

enum R {
    Ok(Vec<Success>),
    Fail(Status),
    Wait,
}

fn eval(
    req: &Requirement,
    tokens: &[ExtractedToken],
    ex: &Extractor,
    auth: &mut Authenticator<'_>,
) -> R {
    match req {
        Requirement::Provider(p, aud) => {
            let mine: Vec<&ExtractedToken> = tokens
                .iter()
                .filter(|t| auth.config.providers[*p].locations.contains(&t.location))
                .collect();
            match mine.as_slice() {
                [] => R::Fail(Status::JwtMissed),
                [t] => match auth.verify(*p, &t.token, aud.as_ref(), None) {
                    Verdict::Ok(v) => R::Ok(vec![success(*p, t, v)]),
                    Verdict::Fail(s) => R::Fail(s),
                    Verdict::Wait(_) => R::Wait,
                },
                _ => R::Fail(Status::JwtMultipleTokens),
            }
        }
        Requirement::AnyOf(children) => {
            let mut waiting = false;
            let mut fail: Option<Status> = None;
            let mut unknown_issuer = false;
            for c in children {
                match eval(c, tokens, ex, auth) {
                    R::Ok(s) => return R::Ok(s),
                    R::Wait => waiting = true,
                    R::Fail(Status::JwtMissed) => {}
                    R::Fail(Status::JwtUnknownIssuer) => unknown_issuer = true,
                    R::Fail(s) => fail = Some(s),
                }
            }
            if waiting {
                R::Wait
            } else {
                R::Fail(fail.unwrap_or(if unknown_issuer {
                    Status::JwtUnknownIssuer
                } else {
                    Status::JwtMissed
                }))
            }
        }
        Requirement::AllOf(children) => {
            let mut waiting = false;
            let mut all = Vec::new();
            for c in children {
                match eval(c, tokens, ex, auth) {
                    R::Ok(s) => all.extend(s),
                    R::Fail(s) => return R::Fail(s),
                    R::Wait => waiting = true,
                }
            }
            if waiting {
                R::Wait
            } else {
                R::Ok(all)
            }
        }
        Requirement::AllowMissing(scope) => group(scope, false, tokens, ex, auth),
        Requirement::AllowMissingOrFailed(scope) => group(scope, true, tokens, ex, auth),
    }
}

fn success(p: usize, t: &ExtractedToken, verified: Rc<Verified>) -> Success {
    Success {
        provider: p,
        location: t.location,
        token: t.token.clone(),
        verified,
    }
}

/// `allowMissing` / `allowMissingOrFailed` over the providers in `scope`:
/// each token at their locations is attributed to the first provider (of
/// those looking at that location) whose issuer it names.
fn group(
    scope: &[usize],
    allow_failed: bool,
    tokens: &[ExtractedToken],
    ex: &Extractor,
    auth: &mut Authenticator<'_>,
) -> R {
    let mut successes = Vec::new();
    let mut attributed: Vec<usize> = Vec::new();
    let mut waiting = false;
    let mut failure: Option<Status> = None;
    for t in tokens {
        let candidates: Vec<usize> = ex.locations[t.location]
            .providers
            .iter()
            .copied()
            .filter(|p| scope.contains(p))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let verdict = attribute(&candidates, t, auth).map(|(p, parsed)| {
            if attributed.contains(&p) {
                return (p, Verdict::Fail(Status::JwtMultipleTokens));
            }
            attributed.push(p);
            (p, auth.verify(p, &t.token, None, parsed))
        });
        match verdict {
            Err(s) => failure = failure.or(Some(s)),
            Ok((p, Verdict::Ok(v))) => successes.push(success(p, t, v)),
            Ok((_, Verdict::Fail(s))) => failure = failure.or(Some(s)),
            Ok((_, Verdict::Wait(_))) => waiting = true,
        }
    }
    if allow_failed {
        // Only wait when the wait could add outputs; failures are forgiven.
        return if waiting { R::Wait } else { R::Ok(successes) };
    }
    if let Some(s) = failure {
        return R::Fail(s);
    }
    if waiting {
        return R::Wait;
    }
    R::Ok(successes)
}

/// The provider a token belongs to, with the token parsed if that was needed.
fn attribute(
    candidates: &[usize],
    t: &ExtractedToken,
    auth: &mut Authenticator<'_>,
) -> Result<(usize, Option<Jwt>), Status> {
    for &p in candidates {
        if auth.cached(p, &t.token).is_some() {
            return Ok((p, None));
        }
    }
    let jwt = Jwt::parse(&t.token)?;
    let p = candidates
        .iter()
        .copied()
        .find(|&p| auth.config.providers[p].issuer == jwt.iss)
        .ok_or(Status::JwtUnknownIssuer)?;
    Ok((p, Some(jwt)))
}
