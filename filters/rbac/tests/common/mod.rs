//! Helpers shared by the native tests: build a request, run the real
//! pipeline ([`rbac::authz::authorize`]), summarise the verdict.

#![allow(dead_code)]

use rbac::authz::{authorize, Connection, Verdict};
use rbac::config::Config;
use serde_json::json;
use wasmesh_common::identity::Identity;
use wasmesh_common::HeaderMap;

/// A request under test.
#[derive(Clone, Default)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub headers: Vec<(String, String)>,
    pub conn: Connection,
}

pub fn get(path: &str) -> Req {
    Req {
        method: "GET".into(),
        path: path.into(),
        authority: "api.example.com".into(),
        ..Default::default()
    }
}

impl Req {
    pub fn method(mut self, m: &str) -> Self {
        self.method = m.into();
        self
    }
    pub fn host(mut self, h: &str) -> Self {
        self.authority = h.into();
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn peer(mut self, ip: &str) -> Self {
        self.conn.peer_ip = Some(ip.parse().unwrap());
        self
    }
    pub fn spiffe(mut self, uri: &str) -> Self {
        self.conn.peer_uri = Some(uri.into());
        self
    }
    pub fn port(mut self, p: u32) -> Self {
        self.conn.destination_port = Some(p);
        self
    }
    pub fn dest(mut self, ip: &str) -> Self {
        self.conn.destination_ip = Some(ip.parse().unwrap());
        self
    }
    pub fn sni(mut self, s: &str) -> Self {
        self.conn.sni = Some(s.into());
        self
    }
    pub fn jwt(mut self, iss: &str, sub: &str, claims: serde_json::Value) -> Self {
        let claims = claims.as_object().cloned().unwrap_or_default();
        let aud = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec![],
        };
        let azp = claims
            .get("azp")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        self.conn.identity = Some(
            Identity {
                provider: "idp".into(),
                iss: iss.into(),
                sub: sub.into(),
                aud,
                azp,
                principal: format!("{iss}/{sub}"),
                claims,
            }
            .to_json()
            .into_bytes(),
        );
        self
    }

    pub fn header_map(&self) -> HeaderMap {
        let mut pairs = vec![
            (":method".to_string(), self.method.clone()),
            (":path".to_string(), self.path.clone()),
            (":authority".to_string(), self.authority.clone()),
            (":scheme".to_string(), "http".to_string()),
        ];
        pairs.extend(self.headers.iter().cloned());
        HeaderMap::from_pairs(pairs)
    }
}

pub fn config(v: serde_json::Value) -> Config {
    Config::from_json(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("config refused: {e}"))
}

pub fn verdict<'r>(c: &Config, r: &'r Req) -> Verdict<'r> {
    let map = r.header_map();
    authorize(
        c,
        &rbac::headers::Headers::from_map(&map),
        r.path.as_bytes(),
        &r.conn,
    )
}

/// `allow`, `allow[<policy>]`, `deny[<policy>]`, `deny[none]` or `400`.
pub fn outcome(c: &Config, r: &Req) -> String {
    match verdict(c, r) {
        Verdict::BadRequest(_) => "400".into(),
        Verdict::Checked { decision, .. } => {
            let o = decision.enforced;
            let name =
                o.by.map(|m| c.engine.policies()[m.policy].name().to_string());
            match (o.allowed, name) {
                (true, None) => "allow".into(),
                (true, Some(n)) => format!("allow[{n}]"),
                (false, Some(n)) => format!("deny[{n}]"),
                (false, None) => "deny[none]".into(),
            }
        }
    }
}

/// Whether the request is let through (any `allow…`).
pub fn allowed(c: &Config, r: &Req) -> bool {
    outcome(c, r).starts_with("allow")
}

/// A config with one policy of `action` and one rule.
pub fn one(action: &str, rule: serde_json::Value) -> Config {
    config(json!({"policies": [{"name": "p", "action": action, "rules": [rule]}]}))
}
