//! A small mutator for the smoke run: libFuzzer-style byte edits (flip,
//! insert, erase, duplicate, splice, interesting values, dictionary
//! tokens) on seed inputs, from a fixed seed so that every run of the test
//! command tries the same inputs.

use crate::input::SplitMix;

/// Tokens that matter to the parsers (JSON syntax, path tricks, JWT parts,
/// header names of the filters), inserted whole.
pub const DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"false",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"%2e%2e",
    b"%2F",
    b"%5c",
    b"%00",
    b"%",
    b"/../",
    b"/./",
    b"//",
    b"\\",
    b"?",
    b"#",
    b"*",
    b"{*}",
    b"{**}",
    b".",
    b"eyJ",
    b"==",
    b"Bearer ",
    b"\xff\xfe",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\n",
    b"\r\n",
    b"\t",
    b"authorization: ",
    b"x-envoy-fault-abort-request: ",
    b"x-envoy-fault-delay-request: ",
    b"x-envoy-fault-abort-grpc-request: ",
    b"x-envoy-fault-throughput-response: ",
    b"x-forwarded-for: ",
    b"cookie: ",
    b"request.headers[",
    b"request.auth.claims[",
    b"regex",
    b"(a+)+$",
    b"0.0.0.0/0",
    b"::ffff:",
    b"ms",
    b"h",
    b"9999999999s",
];

/// Produces one mutated input from `seeds` (non-empty).
pub fn mutate(rng: &mut SplitMix, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut data = if seeds.is_empty() {
        Vec::new()
    } else {
        rng.pick(seeds).clone()
    };
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        edit(rng, &mut data, seeds);
    }
    data.truncate(max_len);
    data
}

fn edit(rng: &mut SplitMix, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = data.len();
    match rng.below(10) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        2 => {
            let i = rng.below(len + 1);
            data.insert(i, rng.next_u64() as u8);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(16));
            data.drain(i..i + n);
        }
        4 | 5 => {
            let tok = rng.pick(DICTIONARY);
            let i = rng.below(len + 1);
            data.splice(i..i, tok.iter().copied());
        }
        6 if len > 0 => {
            // Duplicate a chunk (long values, repeated fields).
            let i = rng.below(len);
            let n = 1 + rng.below((len - i).min(64));
            let chunk = data[i..i + n].to_vec();
            let times = 1 + rng.below(8);
            let at = rng.below(len + 1);
            for _ in 0..times {
                data.splice(at..at, chunk.iter().copied());
            }
        }
        7 if !seeds.is_empty() => {
            // Splice with another seed.
            let other = rng.pick(seeds);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        8 if len > 0 => {
            // An interesting number in place of a digit run.
            const NUMS: &[&[u8]] = &[
                b"0",
                b"-0",
                b"4294967295",
                b"4294967296",
                b"-2147483649",
                b"9223372036854775807",
                b"1e308",
                b"0.0000001",
                b"100.5",
                b"600",
            ];
            let i = rng.below(len);
            if data[i].is_ascii_digit() {
                let end = data[i..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |p| i + p);
                let n = rng.pick(NUMS);
                data.splice(i..end, n.iter().copied());
            }
        }
        _ => {
            if len > 1 {
                // Swap two bytes.
                let (a, b) = (rng.below(len), rng.below(len));
                data.swap(a, b);
            }
        }
    }
}
