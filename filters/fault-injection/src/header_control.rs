//! Envoy's header-controlled faults (`header_delay` / `header_abort`,
//! `source/extensions/filters/common/fault/fault_config.cc`):
//!
//! * `x-envoy-fault-delay-request: <ms>` — a delay in milliseconds (`0`
//!   means no delay);
//! * `x-envoy-fault-abort-request: <status>` — an HTTP status in [200, 600);
//! * `x-envoy-fault-abort-grpc-request: <code>` — a gRPC status (0..16),
//!   used only when no valid HTTP status was given;
//! * `x-envoy-fault-delay-request-percentage` /
//!   `x-envoy-fault-abort-request-percentage: <integer percent>` — capped by
//!   `headerControl.maxPercentage`, which also applies when absent.
//!
//! As in Envoy, only the first value of each header counts (they are
//! untrusted), and a value that is not a non-negative integer (or an
//! out-of-range status) is ignored as if the header were absent.

use wasmesh_common::sampling::PPM;
use wasmesh_common::HeaderMap;

use crate::policy::{AbortSpec, AbortStatus, DelaySpec, Source};

/// Delay in milliseconds.
pub const DELAY_REQUEST: &str = "x-envoy-fault-delay-request";
/// Delay percentage.
pub const DELAY_REQUEST_PERCENTAGE: &str = "x-envoy-fault-delay-request-percentage";
/// HTTP status of an abort.
pub const ABORT_REQUEST: &str = "x-envoy-fault-abort-request";
/// gRPC status of an abort.
pub const ABORT_GRPC_REQUEST: &str = "x-envoy-fault-abort-grpc-request";
/// Abort percentage.
pub const ABORT_REQUEST_PERCENTAGE: &str = "x-envoy-fault-abort-request-percentage";

/// `absl::SimpleAtoi` on the first value: optional surrounding whitespace,
/// optional `+`, decimal digits.
/// What every control header's name starts with.
const PREFIX: &[u8] = b"x-envoy-fault-";

/// Whether the request has any `x-envoy-fault-*` header (one pass over the
/// headers; most requests have none, and the four lookups are skipped).
pub fn any_present(headers: &HeaderMap) -> bool {
    headers.pairs().iter().any(|(k, _)| {
        k.as_bytes()
            .get(..PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
    })
}

fn integer(headers: &HeaderMap, name: &str) -> Option<u64> {
    let v = headers.get(name)?.trim();
    let digits = v.strip_prefix('+').unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The percentage a header asks for, capped at `max_ppm`; `max_ppm` when
/// absent or invalid.
fn percentage(headers: &HeaderMap, name: &str, max_ppm: u32) -> u32 {
    match integer(headers, name).and_then(|p| u32::try_from(p).ok()) {
        Some(p) => (u64::from(p) * u64::from(PPM / 100)).min(u64::from(max_ppm)) as u32,
        None => max_ppm,
    }
}

/// The delay the request asks for, if it asks validly.
pub fn delay(headers: &HeaderMap, max_ppm: u32) -> Option<DelaySpec> {
    let ms = integer(headers, DELAY_REQUEST)?.min(u64::from(u32::MAX));
    Some(DelaySpec {
        ms,
        ppm: percentage(headers, DELAY_REQUEST_PERCENTAGE, max_ppm),
        source: Source::Header,
    })
}

/// The abort the request asks for, if it asks validly.
pub fn abort(headers: &HeaderMap, max_ppm: u32) -> Option<AbortSpec> {
    let http = integer(headers, ABORT_REQUEST).filter(|s| (200..600).contains(s));
    let status = match http {
        Some(s) => AbortStatus::Http(s as u32),
        None => {
            AbortStatus::Grpc(integer(headers, ABORT_GRPC_REQUEST).filter(|g| *g <= 16)? as u32)
        }
    };
    Some(AbortSpec {
        status,
        ppm: percentage(headers, ABORT_REQUEST_PERCENTAGE, max_ppm),
        source: Source::Header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::from_slice(pairs)
    }

    #[test]
    fn presence() {
        assert!(!any_present(&h(&[(":path", "/"), ("x-envoy-faul", "1")])));
        assert!(any_present(&h(&[
            (":path", "/"),
            ("X-Envoy-Fault-Abort-Request", "503")
        ])));
        for name in [
            DELAY_REQUEST,
            DELAY_REQUEST_PERCENTAGE,
            ABORT_REQUEST,
            ABORT_GRPC_REQUEST,
            ABORT_REQUEST_PERCENTAGE,
        ] {
            assert!(any_present(&h(&[(name, "1")])), "{name}");
        }
    }

    #[test]
    fn delays() {
        assert_eq!(delay(&h(&[]), PPM), None);
        let d = delay(&h(&[(DELAY_REQUEST, "200")]), PPM).unwrap();
        assert_eq!((d.ms, d.ppm, d.source), (200, PPM, Source::Header));
        assert_eq!(delay(&h(&[(DELAY_REQUEST, " +5 ")]), PPM).unwrap().ms, 5);
        assert_eq!(delay(&h(&[(DELAY_REQUEST, "0")]), PPM).unwrap().ms, 0);
        for bad in ["-1", "1.5", "abc", "", "2s"] {
            assert_eq!(delay(&h(&[(DELAY_REQUEST, bad)]), PPM), None, "{bad}");
        }
        // Only the first value counts.
        let two = h(&[(DELAY_REQUEST, "x"), (DELAY_REQUEST, "100")]);
        assert_eq!(delay(&two, PPM), None);
    }

    #[test]
    fn percentages_are_capped() {
        let max = 250_000; // 25 %
        let p = |v: &str| {
            delay(
                &h(&[(DELAY_REQUEST, "1"), (DELAY_REQUEST_PERCENTAGE, v)]),
                max,
            )
            .unwrap()
            .ppm
        };
        assert_eq!(p("10"), 100_000);
        assert_eq!(p("25"), 250_000);
        assert_eq!(p("90"), 250_000);
        assert_eq!(p("4294967295"), 250_000);
        assert_eq!(p("0"), 0);
        assert_eq!(p("ten"), 250_000);
        assert_eq!(p("-5"), 250_000);
        assert_eq!(
            delay(&h(&[(DELAY_REQUEST, "1")]), max).unwrap().ppm,
            250_000
        );
        let a = abort(
            &h(&[(ABORT_REQUEST, "503"), (ABORT_REQUEST_PERCENTAGE, "5")]),
            max,
        )
        .unwrap();
        assert_eq!(a.ppm, 50_000);
    }

    #[test]
    fn aborts() {
        assert_eq!(abort(&h(&[]), PPM), None);
        assert_eq!(
            abort(&h(&[(ABORT_REQUEST, "503")]), PPM).unwrap().status,
            AbortStatus::Http(503)
        );
        for bad in ["199", "600", "abc", "-503"] {
            assert_eq!(abort(&h(&[(ABORT_REQUEST, bad)]), PPM), None, "{bad}");
        }
        assert_eq!(
            abort(&h(&[(ABORT_GRPC_REQUEST, "14")]), PPM)
                .unwrap()
                .status,
            AbortStatus::Grpc(14)
        );
        assert_eq!(abort(&h(&[(ABORT_GRPC_REQUEST, "17")]), PPM), None);
        // A valid HTTP status wins over a gRPC status; an invalid one does not.
        let both = h(&[(ABORT_REQUEST, "429"), (ABORT_GRPC_REQUEST, "8")]);
        assert_eq!(abort(&both, PPM).unwrap().status, AbortStatus::Http(429));
        let bad_http = h(&[(ABORT_REQUEST, "42"), (ABORT_GRPC_REQUEST, "8")]);
        assert_eq!(abort(&bad_http, PPM).unwrap().status, AbortStatus::Grpc(8));
    }
}
