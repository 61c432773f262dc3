//! `body_rewrite`: a small Proxy-Wasm plugin that upper-cases HTTP bodies as
//! they stream through it, chunk by chunk, and counts the chunks it saw.
//!
//! Configuration: words separated by spaces or commas (default
//! `request response`):
//!
//! * `request` / `response` — rewrite that direction's body;
//! * `buffer-request` / `buffer-response` — instead of rewriting each chunk,
//!   pause (StopIterationAndBuffer) until the end of the body and rewrite it
//!   whole.
//!
//! Per direction it counts body callbacks in the counters
//! `body_rewrite.request_chunks` / `body_rewrite.response_chunks` and the
//! bytes in `body_rewrite.request_bytes` / `body_rewrite.response_bytes`, and
//! adds the response header `x-body-rewrite-request-chunks` (the number of
//! request body callbacks the stream had when the response started).
//!
//! The core ([`Settings`], [`upper`]) is plain Rust; the glue exists only on
//! `wasm32`.

/// What the plugin does, from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    pub request: bool,
    pub response: bool,
    pub buffer_request: bool,
    pub buffer_response: bool,
}

impl Settings {
    /// Parses the configuration words; unknown words are an error.
    pub fn parse(config: &str) -> Result<Settings, String> {
        let mut s = Settings::default();
        let mut any = false;
        for w in config
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
        {
            any = true;
            match w {
                "request" => s.request = true,
                "response" => s.response = true,
                "buffer-request" => s.buffer_request = true,
                "buffer-response" => s.buffer_response = true,
                other => return Err(format!("unknown word `{other}`")),
            }
        }
        if !any {
            s.request = true;
            s.response = true;
        }
        Ok(s)
    }
}

/// ASCII upper case of a chunk.
pub fn upper(b: &[u8]) -> Vec<u8> {
    b.to_ascii_uppercase()
}

#[cfg(target_arch = "wasm32")]
mod filter;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        assert_eq!(
            Settings::parse("").unwrap(),
            Settings {
                request: true,
                response: true,
                ..Default::default()
            }
        );
        let s = Settings::parse("request, buffer-response").unwrap();
        assert!(s.request && !s.response && s.buffer_response);
        assert!(Settings::parse("sideways").is_err());
        assert_eq!(upper(b"abc-1"), b"ABC-1");
    }
}
