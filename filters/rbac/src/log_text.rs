//! Client-supplied text made safe for a log line.

/// Escapes control characters, `"` and `\` (like `{:?}` for ASCII text,
/// without pulling in Unicode tables).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(
            super::escape("a\"b\\c\nd\u{1}e\u{7f}é"),
            "a\\\"b\\\\c\\nd\\x01e\\x7fé"
        );
    }
}
