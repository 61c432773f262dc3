//! Header-based routing filter (`header_router.wasm`).
//!
//! Chooses a destination per request with Istio `VirtualService` match
//! vocabulary — plus verified JWT claims and peer CIDRs — and hands it to
//! Envoy's router in a request header (`clusterHeader`, read by a route with
//! `cluster_header`). Weighted destinations are drawn at random or, with
//! `stickyBy`, by weighted rendezvous hashing so that a key always lands on
//! the same destination. Routes can also rewrite the path and authority,
//! edit headers, redirect, or answer directly.
//!
//! The decisions are plain Rust ([`config`] → [`table`] with [`weighted`]
//! and [`actions`]); the proxy-wasm glue (`filter`) only exists on `wasm32`.

pub mod actions;
pub mod config;
pub mod table;
pub mod weighted;

#[cfg(target_arch = "wasm32")]
mod filter;

pub use config::RouterConfig;
pub use table::{Decision, RouteTable};
