//! Custom metrics filter: Istio's standard request metrics plus user-defined
//! metrics with labels taken from the request, the response, properties and
//! verified JWT claims, recorded at stream end.

pub mod tags;
