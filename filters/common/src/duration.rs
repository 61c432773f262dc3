//! Durations as users write them in Envoy/Istio configuration.
//!
//! Protobuf JSON durations are `"<seconds>s"` with up to nine fractional
//! digits (`"5s"`, `"0.250s"`). Istio users also write Go-style `"100ms"`,
//! `"1m"`, `"1h30m"`, so those units are accepted too: `ns`, `us`/`µs`, `ms`,
//! `s`, `m`, `h`, in any combination, each with an optional fraction.
//! Negative durations and values without a unit are refused.

use std::time::Duration;

/// Parses a duration string, or explains why it cannot be one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("negative duration `{text}`"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ns: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        if number.is_empty() || number.matches('.').count() > 1 || number == "." {
            return Err(format!("invalid duration `{text}`: expected a number"));
        }
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit = &s[ustart..i];
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => {
                return Err(format!(
                    "invalid duration `{text}`: missing unit (e.g. `5s`)"
                ))
            }
            other => return Err(format!("invalid duration `{text}`: unknown unit `{other}`")),
        };
        let (int_part, frac_part) = match number.split_once('.') {
            Some((a, b)) => (a, b),
            None => (number, ""),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| format!("invalid duration `{text}`: number too large"))?
        };
        let mut frac_ns: u128 = 0;
        let mut scale = unit_ns;
        for d in frac_part.bytes().take(18) {
            scale /= 10;
            frac_ns += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns
            .checked_add(
                int.checked_mul(unit_ns)
                    .ok_or_else(|| format!("duration `{text}` too large"))?,
            )
            .and_then(|t| t.checked_add(frac_ns))
            .ok_or_else(|| format!("duration `{text}` too large"))?;
    }
    if total_ns > u128::from(u64::MAX) {
        return Err(format!("duration `{text}` too large"));
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_protobuf_and_go_forms() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_duration("0.250s").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2us").unwrap(), Duration::from_micros(2));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("600s").unwrap(), Duration::from_secs(600));
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "5",
            "-1s",
            "5x",
            "s",
            "1..2s",
            ".s",
            "99999999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }
}
