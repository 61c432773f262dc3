//! Strict base64url (RFC 4648 §5) decoding as JWS requires it (RFC 7515 §2):
//! no padding, no whitespace, no characters outside the URL-safe alphabet,
//! and the unused trailing bits of the last character must be zero so that
//! every byte string has exactly one encoding.
//!
//! The `base64` crate's `URL_SAFE_NO_PAD` engine is exactly that: its
//! padding mode refuses `=`, and it refuses non-zero trailing bits
//! (`decode_allow_trailing_bits` is off).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Decodes RFC 7515 base64url without padding.
///
/// Returns `None` for padding (`=`), characters outside `A-Z a-z 0-9 - _`,
/// an impossible length (4k+1 characters) and non-canonical encodings
/// (non-zero unused bits in the last character).
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::base64url_decode as d;

    #[test]
    fn rfc4648_vectors_without_padding() {
        assert_eq!(d("").unwrap(), b"");
        assert_eq!(d("Zg").unwrap(), b"f");
        assert_eq!(d("Zm8").unwrap(), b"fo");
        assert_eq!(d("Zm9v").unwrap(), b"foo");
        assert_eq!(d("Zm9vYg").unwrap(), b"foob");
        assert_eq!(d("Zm9vYmE").unwrap(), b"fooba");
        assert_eq!(d("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(d("-_8").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn refuses_padding_bad_chars_bad_length_noncanonical() {
        assert_eq!(d("Zg=="), None);
        assert_eq!(d("Zm8="), None);
        assert_eq!(d("Zm9v\n"), None);
        assert_eq!(d("Zm+v"), None);
        assert_eq!(d("Zm/v"), None);
        assert_eq!(d("Z"), None);
        assert_eq!(d("Zm9vY"), None);
        assert_eq!(d("Zh"), None); // 'h' leaves non-zero trailing bits
        assert_eq!(d("Zm9"), None);
        assert_eq!(d("Zm é"), None);
    }

    #[test]
    fn roundtrips_every_byte_value() {
        // Encode with a tiny reference encoder and decode back.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for len in 0..70usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + len * 11) as u8).collect();
            let mut s = String::new();
            for c in data.chunks(3) {
                let v = (u32::from(c[0]) << 16)
                    | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                    | u32::from(*c.get(2).unwrap_or(&0));
                let n = c.len() + 1;
                for k in 0..n {
                    s.push(A[((v >> (18 - 6 * k)) & 63) as usize] as char);
                }
            }
            assert_eq!(d(&s).unwrap(), data, "{s}");
        }
    }
}
