//! Envoy's response flags and gRPC status mapping, as the standard labels
//! need them.

/// Envoy's response flags in bit order (`StreamInfo::CoreResponseFlag`) with
/// their short names (`%RESPONSE_FLAGS%`).
pub const RESPONSE_FLAGS: [&str; 29] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
];

/// The bit of a short flag name (`"DI"` → `0x200`).
pub fn flag_bit(short: &str) -> Option<u64> {
    RESPONSE_FLAGS
        .iter()
        .position(|f| *f == short)
        .map(|i| 1u64 << i)
}

/// Parses a comma-separated list of short flags (as the fault filter leaves
/// in `wasmesh.fault`: `"DI"`, `"FI"` or `"DI,FI"`); unknown names are
/// ignored.
pub fn parse_flags(list: &str) -> u64 {
    list.split(',')
        .filter_map(|f| flag_bit(f.trim()))
        .fold(0, |acc, b| acc | b)
}

/// Renders a flag bit set as Envoy does: short names in bit order joined
/// with `,`; `-` when no flag is set.
pub fn render_flags(bits: u64) -> String {
    if bits == 0 {
        return "-".to_string();
    }
    let mut s = String::new();
    for (i, name) in RESPONSE_FLAGS.iter().enumerate() {
        if bits & (1 << i) != 0 {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(name);
        }
    }
    if s.is_empty() {
        "-".to_string()
    } else {
        s
    }
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`: the gRPC status a gRPC client
/// sees for an HTTP status without `grpc-status`.
pub fn http_to_grpc_status(http: i64) -> i64 {
    match http {
        400 => 13,                   // Internal
        401 => 16,                   // Unauthenticated
        403 => 7,                    // PermissionDenied
        404 => 12,                   // Unimplemented
        429 | 502 | 503 | 504 => 14, // Unavailable
        _ => 2,                      // Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_in_envoy_order() {
        assert_eq!(render_flags(0), "-");
        assert_eq!(render_flags(0x200), "DI");
        assert_eq!(render_flags(0x400 | 0x200 | 0x2), "UH,DI,FI");
        assert_eq!(render_flags(0x1000_0000), "DR");
        assert_eq!(render_flags(1 << 40), "-");
        assert_eq!(parse_flags("FI, DI,bogus"), 0x600);
        assert_eq!(flag_bit("UAEX"), Some(0x1000));
        assert_eq!(http_to_grpc_status(401), 16);
        assert_eq!(http_to_grpc_status(503), 14);
        assert_eq!(http_to_grpc_status(418), 2);
    }
}
