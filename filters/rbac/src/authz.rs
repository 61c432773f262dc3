//! One request, start to finish, without the host: validate the method and
//! path, normalise the path, gather attributes, evaluate the policies.
//!
//! The glue reads headers and the connection properties the policies need
//! ([`crate::policy::Needs`]) and hands them to [`authorize`]; tests call it
//! directly, so they exercise exactly what runs in the proxy.

use crate::attributes::{remote_ip, valid_method, Attributes, HostForms, Observed};
use crate::config::Config;
use crate::headers::Headers;
use crate::path::{normalize, NormalizedPath};
use crate::policy::Decision;
use std::borrow::Cow;
use std::net::IpAddr;
use wasmesh_common::identity::IdentityView;

/// Connection attributes, as the host reported them. Fields the policies do
/// not need may be left at their defaults.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `source.address` (the peer).
    pub peer_ip: Option<IpAddr>,
    /// `destination.address`.
    pub destination_ip: Option<IpAddr>,
    /// `destination.port`.
    pub destination_port: Option<u32>,
    /// `connection.requested_server_name` (empty: none).
    pub sni: Option<String>,
    /// `connection.uri_san_peer_certificate` (empty: no mTLS peer).
    pub peer_uri: Option<String>,
    /// The identity the JWT filter verified, as stored in filter state (read
    /// with [`IdentityView`]; not an identity unless it parses).
    pub identity: Option<Vec<u8>>,
}

/// The outcome for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Refused with 400 before any policy ran.
    BadRequest(String),
    /// Policies evaluated.
    Checked {
        /// The normalised path (and the query to forward).
        path: NormalizedPath<'a>,
        /// What the policies decided.
        decision: Decision,
    },
}

/// Validates, normalises and evaluates one request. `raw_path` is the exact
/// bytes of `:path` (the header map may hold a lossy copy).
pub fn authorize<'a>(
    config: &Config,
    headers: &Headers,
    raw_path: &'a [u8],
    conn: &Connection,
) -> Verdict<'a> {
    let (methods, paths) = headers.pseudo_counts();
    let method = headers.method();
    if methods != 1 || !valid_method(method) {
        return Verdict::BadRequest("method must be one upper-case token".into());
    }
    if paths > 1 {
        return Verdict::BadRequest("several :path headers".into());
    }
    let path = if paths == 0 && method == "CONNECT" {
        NormalizedPath {
            path: Cow::Borrowed(""),
            query: None,
        }
    } else {
        match normalize(raw_path, config.path_normalization) {
            Ok(p) => p,
            Err(e) => return Verdict::BadRequest(e.to_string()),
        }
    };
    let needs = config.engine.needs();
    let peer_ip = Observed::from_option(conn.peer_ip);
    let attrs = Attributes {
        headers,
        method,
        path: &path.path,
        host: if needs.host {
            HostForms::new(headers.authority())
        } else {
            HostForms::default()
        },
        peer_ip,
        remote_ip: if needs.remote_ip {
            remote_ip(headers, peer_ip, config.num_trusted_proxies)
        } else {
            Observed::Unknown
        },
        destination_ip: Observed::from_option(conn.destination_ip),
        destination_port: Observed::from_option(conn.destination_port),
        sni: conn.sni.as_deref().filter(|s| !s.is_empty()),
        peer_uri: conn.peer_uri.as_deref().filter(|s| !s.is_empty()),
        identity: if needs.identity {
            conn.identity.as_deref().and_then(IdentityView::parse)
        } else {
            None
        },
    };
    let decision = config.engine.evaluate(&attrs);
    Verdict::Checked { path, decision }
}
