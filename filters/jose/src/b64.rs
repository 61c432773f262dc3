//! Strict base64url (RFC 4648 §5) decoding as JWS requires it (RFC 7515 §2):
//! no padding, no whitespace, no characters outside the URL-safe alphabet,
//! and the unused trailing bits of the last character must be zero so that
//! every byte string has exactly one encoding.

/// Sentinel in [`DECODE`] for bytes outside the alphabet.
const INVALID: u8 = 0xff;

/// Maps an ASCII byte to its 6-bit value, or `INVALID`.
const DECODE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t
};

/// Decodes RFC 7515 base64url without padding.
///
/// Returns `None` for padding (`=`), characters outside `A-Z a-z 0-9 - _`,
/// an impossible length (4k+1 characters) and non-canonical encodings
/// (non-zero unused bits in the last character).
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let input = s.as_bytes();
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut chunks = input.chunks_exact(4);
    for c in &mut chunks {
        let (a, b, cc, d) = (
            DECODE[c[0] as usize],
            DECODE[c[1] as usize],
            DECODE[c[2] as usize],
            DECODE[c[3] as usize],
        );
        if (a | b | cc | d) & 0xc0 != 0 {
            return None;
        }
        let v = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(cc) << 6) | u32::from(d);
        out.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
    }
    let rest = chunks.remainder();
    let mut v: u32 = 0;
    for &ch in rest {
        let x = DECODE[ch as usize];
        if x == INVALID {
            return None;
        }
        v = (v << 6) | u32::from(x);
    }
    match rest.len() {
        0 => {}
        2 => {
            // 12 bits: 8 data bits, 4 must be zero.
            if v & 0xf != 0 {
                return None;
            }
            out.push((v >> 4) as u8);
        }
        3 => {
            // 18 bits: 16 data bits, 2 must be zero.
            if v & 0x3 != 0 {
                return None;
            }
            out.push((v >> 10) as u8);
            out.push((v >> 2) as u8);
        }
        _ => return None,
    }
    Some(out)
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
