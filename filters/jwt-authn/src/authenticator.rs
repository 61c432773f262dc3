//! Verifies one token for one provider: Envoy's `AuthenticatorImpl`
//! (`startVerify` → `verifyKey` → `handleGoodJwt`) without the callbacks.
//!
//! Order of checks, as Envoy: parse → issuer → `nbf`/`exp` with clock skew →
//! lifetime (`requireExpiration`/`maxLifetime`) → audience (403) → keys
//! (wait for a remote fetch if needed) → signature. A verified token is
//! remembered in the [`JwtCache`]; a repeat skips parsing and the signature
//! but not the time, lifetime and audience checks.

use crate::config::{Audiences, FilterConfig, Provider};
use crate::host_crypto::{Crypto, PathCounts};
use crate::jwks_cache::KeysView;
use crate::jwt::Jwt;
use crate::jwt_cache::JwtCache;
use crate::status::Status;
use serde_json::Value;
use std::rc::Rc;
use wasmesh_common::identity::Identity;

/// A verified token and everything derived from it once.
#[derive(Debug)]
pub struct Verified {
    /// The token.
    pub jwt: Jwt,
    /// The [`Identity`] JSON handed to later filters.
    pub identity_json: String,
    /// Value of each `outputClaimToHeaders` entry of the provider (`None`:
    /// claim absent, an object, or not a valid header value).
    pub claim_values: Vec<Option<String>>,
}

/// What a provider's keys look like to the authenticator.
pub trait KeyStore {
    /// Keys of provider `p` now.
    fn view(&self, p: usize) -> KeysView;
    /// Whether a request whose `kid` is unknown to provider `p` may wait for
    /// a refetch (always false for inline keys).
    fn want_refetch(&self, p: usize) -> bool;
    /// The host's signature verification, when the glue probed one.
    fn crypto(&self) -> Option<&Crypto> {
        None
    }
}

/// The result for one token.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Verified.
    Ok(Rc<Verified>),
    /// Refused.
    Fail(Status),
    /// Keys of this provider are being fetched; ask again when they arrive.
    Wait(usize),
}

/// Cache and signature counters of one evaluation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Tokens found in the cache.
    pub hits: u32,
    /// Tokens verified from scratch.
    pub misses: u32,
    /// Signatures verified by the host (`verify_signature`) and in wasm.
    pub signatures: PathCounts,
}

/// Everything a verification needs.
pub struct Authenticator<'a> {
    /// The configuration.
    pub config: &'a FilterConfig,
    /// Key access.
    pub keys: &'a dyn KeyStore,
    /// Verified tokens.
    pub cache: &'a mut JwtCache<Verified>,
    /// Host clock, Unix seconds.
    pub now: u64,
    /// Counters.
    pub stats: CacheStats,
}

impl Authenticator<'_> {
    /// Looks `token` up in the cache for provider `p` (any key generation
    /// that is current).
    pub fn cached(&mut self, p: usize, token: &str) -> Option<Rc<Verified>> {
        let generation = match self.keys.view(p) {
            KeysView::Ready(_, g) => g,
            _ => return None,
        };
        self.cache.get(p, token, generation, self.now)
    }

    /// Verifies `token` for provider `p`. `audiences` overrides the
    /// provider's (Envoy's `provider_and_audiences`); `parsed` is the token
    /// already parsed by the caller, if it had to.
    pub fn verify(
        &mut self,
        p: usize,
        token: &str,
        audiences: Option<&Audiences>,
        parsed: Option<Jwt>,
    ) -> Verdict {
        let provider = &self.config.providers[p];
        let audiences = audiences.unwrap_or(&provider.audiences);
        if let Some(hit) = self.cached(p, token) {
            self.stats.hits += 1;
            return match check_claims(provider, audiences, &hit.jwt, self.now) {
                Ok(()) => Verdict::Ok(hit),
                Err(s) => Verdict::Fail(s),
            };
        }
        self.stats.misses += 1;
        let jwt = match parsed {
            Some(j) => j,
            None => match Jwt::parse(token) {
                Ok(j) => j,
                Err(s) => return Verdict::Fail(s),
            },
        };
        if jwt.iss != provider.issuer {
            return Verdict::Fail(Status::JwtUnknownIssuer);
        }
        if let Err(s) = check_claims(provider, audiences, &jwt, self.now) {
            return Verdict::Fail(s);
        }
        let (keys, generation) = match self.keys.view(p) {
            KeysView::Ready(k, g) => (k, g),
            KeysView::Pending => return Verdict::Wait(p),
            KeysView::Failed => return Verdict::Fail(Status::JwksFetchFail),
        };
        let wasm_only;
        let crypto = match self.keys.crypto() {
            Some(c) => c,
            None => {
                wasm_only = Crypto::wasm_only();
                &wasm_only
            }
        };
        match keys.verify_with(&jwt, token, crypto, &mut self.stats.signatures) {
            Ok(()) => {}
            Err(Status::JwksKidAlgMismatch) if !jwt.kid.is_empty() && !keys.has_kid(&jwt.kid) => {
                // Perhaps the provider rotated to a key we have not fetched yet.
                return if self.keys.want_refetch(p) {
                    Verdict::Wait(p)
                } else {
                    Verdict::Fail(Status::JwksKidAlgMismatch)
                };
            }
            Err(s) => return Verdict::Fail(s),
        }
        let verified = Rc::new(derive(provider, jwt));
        self.cache
            .insert(p, token, generation, verified.jwt.exp, Rc::clone(&verified));
        Verdict::Ok(verified)
    }
}

/// Time, lifetime and audience checks (done on every use, cached or not).
fn check_claims(
    provider: &Provider,
    audiences: &Audiences,
    jwt: &Jwt,
    now: u64,
) -> Result<(), Status> {
    jwt.check_time(now, provider.clock_skew)?;
    if let Some(max) = provider.max_lifetime {
        // Envoy: the remaining lifetime (exp - now) must be below the
        // maximum; a token without exp fails. Both are "Jwt verification fails".
        match jwt.exp {
            None => return Err(Status::JwtVerificationFail),
            Some(exp) if max != u64::MAX && exp.saturating_sub(now) >= max => {
                return Err(Status::JwtVerificationFail)
            }
            Some(_) => {}
        }
    }
    if !audiences.allows(&jwt.aud) {
        return Err(Status::JwtAudienceNotAllowed);
    }
    Ok(())
}

/// Builds the identity and claim header values once per verified token.
fn derive(provider: &Provider, jwt: Jwt) -> Verified {
    let identity = Identity {
        provider: provider.name.clone(),
        iss: jwt.iss.clone(),
        sub: jwt.sub.clone(),
        aud: jwt.aud.clone(),
        azp: jwt.azp.clone(),
        principal: format!("{}/{}", jwt.iss, jwt.sub),
        claims: jwt.claims.clone(),
    };
    let claim_values = provider
        .claim_headers
        .iter()
        .map(|(_, path)| claim_value(&jwt, path))
        .collect();
    Verified {
        identity_json: identity.to_json(),
        claim_values,
        jwt,
    }
}

/// The header value of the claim at `path`: strings as they are, numbers as
/// Envoy prints them (integers plainly, other numbers with six decimals),
/// booleans as `true`/`false`, arrays as their scalar elements joined with
/// `,`. Objects, nulls and values with control characters give nothing.
pub fn claim_value(jwt: &Jwt, path: &[String]) -> Option<String> {
    // A claim whose name contains dots (a URL, say) is looked up whole
    // first, as Envoy does; otherwise the dots separate nested names.
    let v = match jwt.claims.get(&path.join(".")) {
        Some(v) => v,
        None => {
            let (first, rest) = path.split_first()?;
            let mut v = jwt.claims.get(first)?;
            for seg in rest {
                v = v.as_object()?.get(seg)?;
            }
            v
        }
    };
    let out = match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar).collect();
            parts.join(",")
        }
        other => scalar(other)?,
    };
    (!out.is_empty() && !out.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)).then_some(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match n.as_u64() {
            Some(u) => u.to_string(),
            None => format!("{:.6}", n.as_f64()?),
        }),
        _ => None,
    }
}
