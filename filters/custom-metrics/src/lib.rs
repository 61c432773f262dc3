//! Custom metrics filter: Istio's standard request metrics plus user-defined
//! metrics with labels taken from the request, the response, properties and
//! verified JWT claims, recorded at stream end.

pub mod tags;
pub mod attribute;
pub mod config;
pub mod flags;
pub mod resolver;
pub mod templates;
pub mod recorder;

#[cfg(target_arch = "wasm32")]
mod filter;
