//! RBAC authorization filter: Istio `AuthorizationPolicy` semantics with
//! Envoy RBAC filter behaviour.
//!
//! The decision core is plain Rust:
//! - [`config`]: the JSON contract (serde-derived types read by
//!   `wasmesh_common::parse_json`), compiled once into an [`policy::Engine`];
//! - [`path`]: request path normalisation (Istio's `BASE` and friends);
//! - [`matcher`]: Istio string patterns and path templates;
//! - [`principal`]: SPIFFE peer principals, namespaces, JWT request principals;
//! - [`headers`]: the request headers, read in place from the host's buffer;
//! - [`attributes`]: what a request is evaluated on;
//! - [`authz`]: one request start to finish (validation, normalisation,
//!   evaluation) without the host;
//! - [`policy`]: compiled policies and the DENY > ALLOW > default decision;
//! - [`index`]: a path index that skips rules which cannot match.
//!
//! The proxy-wasm glue (`filter`) only exists on `wasm32`.

pub mod attributes;
pub mod authz;
pub mod config;
pub mod headers;
pub mod index;
pub mod log_text;
pub mod matcher;
pub mod path;
pub mod policy;
pub mod principal;

#[cfg(target_arch = "wasm32")]
mod filter;
