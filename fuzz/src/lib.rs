//! Fuzz targets of wasmesh: each is a plain function from arbitrary bytes to
//! `()` that must never panic, and that checks a few properties on the way
//! (a panic is a finding).
//!
//! The same functions are run two ways:
//!
//! * coverage-guided, by libFuzzer, through the thin wrappers in
//!   `fuzz/libfuzzer/fuzz_targets/` (`scripts/fuzz.sh`);
//! * as a bounded smoke run in the test command (`tests/smoke.rs`): the
//!   committed seeds (`fuzz/seeds/<target>/`), the crash regressions
//!   (`fuzz/regressions/<target>/`) and a few thousand mutations of them
//!   from a fixed seed.
//!
//! The targets call the filters' pure cores natively (no wasm); one,
//! `jose_differential`, compares the JWS verifier with RustCrypto; except
//! `hostcalls`, which drives the wasmtime host harness with a generated
//! module (feature `host`).

pub mod input;
pub mod jose_diff;
pub mod mutate;
pub mod targets;

#[cfg(feature = "host")]
pub mod hostcalls;

/// A fuzz target: its name (the seed directory and the libFuzzer binary) and
/// its function.
#[derive(Clone, Copy)]
pub struct Target {
    /// Name, e.g. `jwt_token`.
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// The function.
    pub run: fn(&[u8]),
}

/// Every target.
#[allow(unused_mut)] // pushed to with the `host` feature
pub fn all() -> Vec<Target> {
    let mut v = vec![
        Target {
            name: "jwt_config",
            about: "jwt_authn configuration parser and compiler",
            run: targets::jwt_config,
        },
        Target {
            name: "jwt_token",
            about: "JWT parser and verifier path (fixed key set, RFC 7515/8037 keys)",
            run: targets::jwt_token,
        },
        Target {
            name: "jwks",
            about: "JWKS document parser and verification against each key",
            run: targets::jwks,
        },
        Target {
            name: "rbac_config",
            about: "rbac configuration parser and compiler",
            run: targets::rbac_config,
        },
        Target {
            name: "rbac_request",
            about: "rbac path normalisation and policy matching (fixed policies)",
            run: targets::rbac_request,
        },
        Target {
            name: "router_config",
            about: "header_router configuration parser and route table compiler",
            run: targets::router_config,
        },
        Target {
            name: "router_request",
            about: "header_router matching, weighted picks and header actions (fixed table)",
            run: targets::router_request,
        },
        Target {
            name: "fault_config",
            about: "fault_injection configuration parser and compiler",
            run: targets::fault_config,
        },
        Target {
            name: "fault_request",
            about: "fault_injection matching and x-envoy-fault-* header control (fixed policy)",
            run: targets::fault_request,
        },
        Target {
            name: "metrics_config",
            about: "custom_metrics configuration parser and compiler",
            run: targets::metrics_config,
        },
        Target {
            name: "metrics_attribute",
            about:
                "custom_metrics attribute expressions, evaluated on a stream; stat-name encoding",
            run: targets::metrics_attribute,
        },
        Target {
            name: "jose_differential",
            about: "wasmesh-jose RSA/ECDSA verification against RustCrypto (rsa, p256, p384) on random and mutated signatures",
            run: jose_diff::run,
        },
    ];
    #[cfg(feature = "host")]
    v.push(Target {
        name: "hostcalls",
        about: "the harness's host functions called by a module with arbitrary arguments",
        run: hostcalls::run,
    });
    v
}

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    all().into_iter().find(|t| t.name == name)
}
