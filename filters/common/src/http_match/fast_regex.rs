//! A full-match automaton for the simple regexes most routes use —
//! literals, `.`, classes (`[a-z0-9_]`, `\d`, `\w`, `\s`) and the
//! quantifiers `?`, `*`, `+`, `{n}`, `{n,}`, `{n,m}` on single atoms, up to
//! 63 positions — run bit-parallel (Glushkov positions in a `u64`, one
//! table lookup and a few shifts per byte). It accepts exactly the strings
//! the regex fully matches, and is only used for ASCII input; anything else
//! (groups, alternation, assertions, Unicode) stays with regex-lite.

/// One table entry per ASCII byte: the positions that accept it.
#[derive(Debug, Clone)]
pub struct FastRegex {
    accept: Box<[u64; 128]>,
    /// Positions that may repeat (`*`, `+`).
    repeat: u64,
    /// Positions that may be skipped (`?`, `*`).
    optional: u64,
    /// The bit after the last position.
    end: u64,
}

type Class = [bool; 128];

fn class_of(f: impl Fn(u8) -> bool) -> Class {
    let mut c = [false; 128];
    for (b, slot) in c.iter_mut().enumerate() {
        *slot = f(b as u8);
    }
    c
}

fn perl_class(c: u8) -> Option<Class> {
    Some(match c {
        b'd' => class_of(|b| b.is_ascii_digit()),
        b'D' => class_of(|b| !b.is_ascii_digit()),
        b'w' => class_of(|b| b.is_ascii_alphanumeric() || b == b'_'),
        b'W' => class_of(|b| !(b.is_ascii_alphanumeric() || b == b'_')),
        b's' => class_of(|b| matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' ')),
        b'S' => class_of(|b| !matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' ')),
        _ => return None,
    })
}

/// Escapes that stand for the character itself.
fn escaped_literal(c: u8) -> bool {
    b"\\.+*?()|[]{}^$-/#&~ \"'!%,:;<=>@_`".contains(&c)
}

fn parse_class(p: &[u8], mut i: usize) -> Option<(Class, usize)> {
    // `p[i]` is just after `[`.
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut c = [false; 128];
    let mut first = true;
    loop {
        let b = *p.get(i)?;
        if b == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = match b {
            b'\\' => {
                let e = *p.get(i + 1)?;
                i += 2;
                if let Some(pc) = perl_class(e) {
                    if e.is_ascii_uppercase() {
                        return None;
                    }
                    for (x, y) in c.iter_mut().zip(pc) {
                        *x |= y;
                    }
                    continue;
                }
                if !escaped_literal(e) {
                    return None;
                }
                e
            }
            b'[' => return None, // [:alpha:] and nested classes
            _ => {
                i += 1;
                b
            }
        };
        // A range `lo-hi` (a `-` before `]` is literal).
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|n| *n != b']') {
            let hi = match p[i + 1] {
                b'\\' => {
                    let e = *p.get(i + 2)?;
                    if !escaped_literal(e) {
                        return None;
                    }
                    i += 3;
                    e
                }
                b'[' => return None,
                h => {
                    i += 2;
                    h
                }
            };
            if hi < lo {
                return None;
            }
            for x in lo..=hi {
                c[x as usize] = true;
            }
        } else {
            c[lo as usize] = true;
        }
    }
    if negate {
        for x in c.iter_mut() {
            *x = !*x;
        }
    }
    Some((c, i))
}

fn number(p: &[u8], i: &mut usize) -> Option<u32> {
    let start = *i;
    while p.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    std::str::from_utf8(&p[start..*i]).ok()?.parse().ok()
}

impl FastRegex {
    /// Builds the automaton, or `None` if the pattern is outside the
    /// supported subset.
    pub fn new(pattern: &str) -> Option<FastRegex> {
        if !pattern.is_ascii() {
            return None;
        }
        let mut p = pattern.as_bytes();
        if let Some(rest) = p.strip_prefix(b"^") {
            p = rest;
        }
        if p.ends_with(b"$") && !p.ends_with(b"\\$") {
            p = &p[..p.len() - 1];
        }
        // (class, optional, repeat) per position.
        let mut pos: Vec<(Class, bool, bool)> = Vec::new();
        let mut i = 0;
        while i < p.len() {
            let (atom, next) = match p[i] {
                b'.' => (class_of(|b| b != b'\n'), i + 1),
                b'[' => parse_class(p, i + 1)?,
                b'\\' => {
                    let e = *p.get(i + 1)?;
                    match perl_class(e) {
                        Some(c) => (c, i + 2),
                        None if escaped_literal(e) => (class_of(|b| b == e), i + 2),
                        None => return None,
                    }
                }
                b'(' | b')' | b'|' | b'^' | b'$' | b'{' | b'}' | b'*' | b'+' | b'?' | b']' => {
                    return None
                }
                c => (class_of(|b| b == c), i + 1),
            };
            i = next;
            let (min, max): (u32, Option<u32>) = match p.get(i) {
                Some(b'?') => {
                    i += 1;
                    (0, Some(1))
                }
                Some(b'*') => {
                    i += 1;
                    (0, None)
                }
                Some(b'+') => {
                    i += 1;
                    (1, None)
                }
                Some(b'{') => {
                    i += 1;
                    let min = number(p, &mut i)?;
                    let max = match p.get(i) {
                        Some(b'}') => Some(min),
                        Some(b',') => {
                            i += 1;
                            if p.get(i) == Some(&b'}') {
                                None
                            } else {
                                Some(number(p, &mut i)?)
                            }
                        }
                        _ => return None,
                    };
                    if p.get(i) != Some(&b'}') || max.is_some_and(|m| m < min) {
                        return None;
                    }
                    i += 1;
                    (min, max)
                }
                _ => (1, Some(1)),
            };
            // A lazy quantifier accepts the same strings.
            if min != 1 || max != Some(1) {
                if p.get(i) == Some(&b'?') {
                    i += 1;
                }
                if matches!(p.get(i), Some(b'*' | b'+' | b'?' | b'{')) {
                    return None;
                }
            }
            for _ in 0..min {
                pos.push((atom, false, false));
            }
            match max {
                None if min == 0 => pos.push((atom, true, true)),
                None => {
                    if let Some(last) = pos.last_mut() {
                        last.2 = true;
                    }
                }
                Some(m) => {
                    for _ in min..m {
                        pos.push((atom, true, false));
                    }
                }
            }
            if pos.len() > 63 {
                return None;
            }
        }
        let mut accept = Box::new([0u64; 128]);
        let (mut repeat, mut optional) = (0u64, 0u64);
        for (k, (class, opt, rep)) in pos.iter().enumerate() {
            let bit = 1u64 << k;
            for (b, yes) in class.iter().enumerate() {
                if *yes {
                    accept[b] |= bit;
                }
            }
            if *opt {
                optional |= bit;
            }
            if *rep {
                repeat |= bit;
            }
        }
        Some(FastRegex {
            accept,
            repeat,
            optional,
            end: 1u64 << pos.len(),
        })
    }

    /// Adds every position reachable by skipping optional ones.
    fn close(&self, mut set: u64) -> u64 {
        loop {
            let more = (set & self.optional) << 1;
            if more & !set == 0 {
                return set;
            }
            set |= more;
        }
    }

    /// Whether the whole of `text` (ASCII) matches.
    pub fn full_match(&self, text: &[u8]) -> bool {
        // Positions that may consume the next byte.
        let mut next = self.close(1);
        for &b in text {
            let Some(acc) = self.accept.get(b as usize) else {
                return false;
            };
            let at = next & acc;
            if at == 0 {
                return false;
            }
            next = self.close((at << 1) | (at & self.repeat));
        }
        next & self.end != 0
    }
}
