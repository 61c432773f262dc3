//! Custom metrics filter: Istio's standard request metrics plus user-defined
//! metrics with labels taken from the request, the response, properties and
//! verified JWT claims, recorded at stream end.

pub mod attribute;
pub mod config;
pub mod flags;
pub mod json;
pub mod pairs;
pub mod recorder;
pub mod resolver;
pub mod tags;
pub mod templates;

#[cfg(target_arch = "wasm32")]
mod filter;
