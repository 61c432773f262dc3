//! ECDSA verification on P-256 and P-384 (FIPS 186-4 §6.4.2, SEC 1 §4.1.4)
//! with the crate's own field arithmetic.
//!
//! Field elements are `[u32; N]` little-endian limbs (N = 8 for P-256, 12 for
//! P-384): plain residues with the special-form reduction for P-256,
//! Montgomery form for P-384 and for the scalars. Points are in Jacobian coordinates; the
//! double-scalar multiplication `u1*G + u2*Q` splits each scalar in
//! `PARTS` pieces and interleaves width-w NAFs of all pieces (Straus/Shamir),
//! adding odd multiples taken from affine tables of the shifted points
//! `2^(jh) G` and `2^(jh) Q`: G's tables are built once per process, Q's
//! when the key is constructed.
//! Everything here is public (key, message, signature), so the code is
//! variable-time by design.
//!
//! One concept, one file (about 900 lines of code): field, point and
//! scalar arithmetic exist here only to serve `verify_digest`, and are tuned
//! together (limb layout, reduction, table widths); split apart they would
//! only be read together.

use crate::mont::neg_inv32;
use std::sync::OnceLock;

type Fe<const N: usize> = [u32; N];

/// Width of the wNAF for the fixed generator (tables of 2^(w-2) = 64 affine
/// points for each of the `PARTS` shifted generators, 16 KiB in all for
/// P-256, built once per process).
const G_WINDOW: u32 = 8;
/// Width of the wNAF for the public key (tables of 2^(w-2) = 16 points for
/// each of the `PARTS` shifted keys, built at key construction).
const Q_WINDOW: u32 = 6;

/// Curve constants. Everything derived (Montgomery constants, b in
/// Montgomery form) is computed at compile time.
pub(crate) struct Curve<const N: usize> {
    /// Field prime.
    p: Fe<N>,
    p_inv: u32,
    /// R^2 mod p, R = 2^(32N).
    p_rr: Fe<N>,
    /// R mod p (1 in Montgomery form).
    p_one: Fe<N>,
    /// Group order.
    n: Fe<N>,
    n_inv: u32,
    n_rr: Fe<N>,
    /// Curve coefficient b, Montgomery form (a = -3 for both curves).
    b: Fe<N>,
    /// Generator, plain affine coordinates.
    gx: Fe<N>,
    gy: Fe<N>,
}

const fn from_hex<const N: usize>(s: &str) -> Fe<N> {
    let b = s.as_bytes();
    assert!(b.len() == N * 8);
    let mut out = [0u32; N];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex"),
        } as u32;
        let pos = b.len() - 1 - i; // nibble index from the least significant
        out[pos / 8] |= v << (4 * (pos % 8));
        i += 1;
    }
    out
}

const fn c_geq<const N: usize>(a: &Fe<N>, b: &Fe<N>) -> bool {
    let mut i = N;
    while i > 0 {
        i -= 1;
        if a[i] != b[i] {
            return a[i] > b[i];
        }
    }
    true
}

const fn c_sub<const N: usize>(a: &Fe<N>, b: &Fe<N>) -> (Fe<N>, bool) {
    let mut out = [0u32; N];
    let mut borrow = 0u64;
    let mut i = 0;
    while i < N {
        let d = (a[i] as u64).wrapping_sub(b[i] as u64).wrapping_sub(borrow);
        out[i] = d as u32;
        borrow = (d >> 63) & 1;
        i += 1;
    }
    (out, borrow != 0)
}

/// `x * 2^k mod m` by repeated doubling (compile-time use only), x < m.
const fn c_mul_pow2<const N: usize>(x: Fe<N>, k: usize, m: &Fe<N>) -> Fe<N> {
    let mut x = x;
    let mut j = 0;
    while j < k {
        let mut carry = 0u32;
        let mut i = 0;
        while i < N {
            let next = x[i] >> 31;
            x[i] = (x[i] << 1) | carry;
            carry = next;
            i += 1;
        }
        if carry != 0 || c_geq(&x, m) {
            x = c_sub(&x, m).0;
        }
        j += 1;
    }
    x
}

impl<const N: usize> Curve<N> {
    /// `mont`: field elements in Montgomery form (R = 2^(32N)); otherwise
    /// plain residues (R = 1, for a field with its own reduction).
    const fn new(p: &str, n: &str, b: &str, gx: &str, gy: &str, mont: bool) -> Self {
        let p: Fe<N> = from_hex(p);
        let n: Fe<N> = from_hex(n);
        let mut one = [0u32; N];
        one[0] = 1;
        let b: Fe<N> = from_hex(b);
        Curve {
            p,
            p_inv: neg_inv32(p[0]),
            p_rr: if mont {
                c_mul_pow2(one, 64 * N, &p)
            } else {
                one
            },
            p_one: if mont {
                c_mul_pow2(one, 32 * N, &p)
            } else {
                one
            },
            n,
            n_inv: neg_inv32(n[0]),
            n_rr: c_mul_pow2(one, 64 * N, &n),
            b: if mont { c_mul_pow2(b, 32 * N, &p) } else { b },
            gx: from_hex(gx),
            gy: from_hex(gy),
        }
    }
}

/// NIST P-256 (FIPS 186-4 D.1.2.3). Field elements are plain residues,
/// reduced with the prime's special form ([`p256_reduce`]).
pub(crate) static P256: Curve<8> = Curve::new(
    "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    false,
);

/// NIST P-384 (FIPS 186-4 D.1.2.4).
pub(crate) static P384: Curve<12> = Curve::new(
    "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
    "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    true,
);

// ---------------------------------------------------------------- integers

#[inline(always)]
fn is_zero<const N: usize>(a: &Fe<N>) -> bool {
    a.iter().all(|&x| x == 0)
}

#[inline(always)]
fn geq<const N: usize>(a: &Fe<N>, b: &Fe<N>) -> bool {
    c_geq(a, b)
}

/// `a + b mod m` for a, b < m.
#[inline(always)]
fn add_mod<const N: usize>(a: &Fe<N>, b: &Fe<N>, m: &Fe<N>) -> Fe<N> {
    let mut out = [0u32; N];
    let mut c = 0u64;
    for i in 0..N {
        let s = u64::from(a[i]) + u64::from(b[i]) + c;
        out[i] = s as u32;
        c = s >> 32;
    }
    if c != 0 || geq(&out, m) {
        out = c_sub(&out, m).0;
    }
    out
}

/// `a - b mod m` for a, b < m.
#[inline(always)]
fn sub_mod<const N: usize>(a: &Fe<N>, b: &Fe<N>, m: &Fe<N>) -> Fe<N> {
    let (mut out, borrow) = c_sub(a, b);
    if borrow {
        let mut c = 0u64;
        for i in 0..N {
            let s = u64::from(out[i]) + u64::from(m[i]) + c;
            out[i] = s as u32;
            c = s >> 32;
        }
    }
    out
}

/// Montgomery reduction of a 2N-limb value `t < m * R`: `t * R^-1 mod m`.
#[inline(always)]
fn redc<const N: usize>(t: &mut [u32; 24], m: &Fe<N>, m_inv: u32) -> Fe<N> {
    let mut top = 0u64;
    for i in 0..N {
        let q = u64::from(t[i].wrapping_mul(m_inv));
        let mut c = 0u64;
        for j in 0..N {
            let x = u64::from(t[i + j]) + q * u64::from(m[j]) + c;
            t[i + j] = x as u32;
            c = x >> 32;
        }
        let x = u64::from(t[i + N]) + c + top;
        t[i + N] = x as u32;
        top = x >> 32;
    }
    let mut out = [0u32; N];
    out.copy_from_slice(&t[N..2 * N]);
    if top != 0 || geq(&out, m) {
        out = c_sub(&out, m).0;
    }
    out
}

/// `a * b * R^-1 mod m`; requires `a * b < m * R` (e.g. a < R, b < m).
#[inline(always)]
fn mont_mul<const N: usize>(a: &Fe<N>, b: &Fe<N>, m: &Fe<N>, m_inv: u32) -> Fe<N> {
    let mut t = [0u32; 24];
    for i in 0..N {
        let bi = u64::from(b[i]);
        let mut c = 0u64;
        for j in 0..N {
            let x = u64::from(t[i + j]) + u64::from(a[j]) * bi + c;
            t[i + j] = x as u32;
            c = x >> 32;
        }
        t[i + N] = c as u32;
    }
    redc(&mut t, m, m_inv)
}

/// `a^2 * R^-1 mod m`, a < m.
#[inline(always)]
fn mont_sqr<const N: usize>(a: &Fe<N>, m: &Fe<N>, m_inv: u32) -> Fe<N> {
    let mut t = [0u32; 24];
    for i in 0..N {
        let ai = u64::from(a[i]);
        let mut c = 0u64;
        for j in i + 1..N {
            let x = u64::from(t[i + j]) + u64::from(a[j]) * ai + c;
            t[i + j] = x as u32;
            c = x >> 32;
        }
        t[i + N] = c as u32;
    }
    let mut carry = 0u32;
    for x in t.iter_mut().take(2 * N) {
        let next = *x >> 31;
        *x = (*x << 1) | carry;
        carry = next;
    }
    let mut c = 0u64;
    for i in 0..N {
        let sq = u64::from(a[i]) * u64::from(a[i]);
        let lo = u64::from(t[2 * i]) + (sq & 0xffff_ffff) + c;
        t[2 * i] = lo as u32;
        let hi = u64::from(t[2 * i + 1]) + (sq >> 32) + (lo >> 32);
        t[2 * i + 1] = hi as u32;
        c = hi >> 32;
    }
    redc(&mut t, m, m_inv)
}

/// `a^-1 mod m` for an odd prime `m` and `0 < a < m` (binary extended
/// Euclid; variable time, inputs are public). Plain representation.
fn inv_mod<const N: usize>(a: &Fe<N>, m: &Fe<N>) -> Option<Fe<N>> {
    if is_zero(a) || geq(a, m) {
        return None;
    }
    let mut one = [0u32; N];
    one[0] = 1;
    let (mut u, mut v) = (*a, *m);
    let (mut x1, mut x2) = (one, [0u32; N]);
    // Halves x modulo m (m odd): x/2 or (x+m)/2.
    fn halve<const N: usize>(x: &mut Fe<N>, m: &Fe<N>) {
        let mut top = 0u32;
        if x[0] & 1 == 1 {
            let mut c = 0u64;
            for i in 0..N {
                let s = u64::from(x[i]) + u64::from(m[i]) + c;
                x[i] = s as u32;
                c = s >> 32;
            }
            top = c as u32;
        }
        for i in 0..N {
            let hi = if i + 1 < N { x[i + 1] } else { top };
            x[i] = (x[i] >> 1) | (hi << 31);
        }
    }
    fn shr1<const N: usize>(x: &mut Fe<N>) {
        for i in 0..N {
            let hi = if i + 1 < N { x[i + 1] } else { 0 };
            x[i] = (x[i] >> 1) | (hi << 31);
        }
    }
    while u != one && v != one {
        while u[0] & 1 == 0 {
            shr1(&mut u);
            halve(&mut x1, m);
        }
        while v[0] & 1 == 0 {
            shr1(&mut v);
            halve(&mut x2, m);
        }
        if geq(&u, &v) {
            u = c_sub(&u, &v).0;
            x1 = sub_mod(&x1, &x2, m);
        } else {
            v = c_sub(&v, &u).0;
            x2 = sub_mod(&x2, &x1, m);
        }
    }
    Some(if u == one { x1 } else { x2 })
}

fn from_be<const N: usize>(b: &[u8]) -> Option<Fe<N>> {
    if b.len() > 4 * N {
        return None;
    }
    let mut out = [0u32; N];
    for (i, chunk) in b.rchunks(4).enumerate() {
        out[i] = chunk.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x));
    }
    Some(out)
}

// ------------------------------------------------------------------ points

/// Field operations of one curve (the modulus is a compile-time constant
/// after inlining into the per-curve functions below).
trait Field<const N: usize> {
    fn curve() -> &'static Curve<N>;
    fn mul(a: &Fe<N>, b: &Fe<N>) -> Fe<N>;
    fn sqr(a: &Fe<N>) -> Fe<N>;
    /// Odd multiples of G, 2^h G, 2^2h G, 2^3h G (see [`split_tables`]).
    fn g_table() -> &'static [Vec<Affine<N>>; PARTS];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Affine<const N: usize> {
    x: Fe<N>,
    y: Fe<N>,
}

#[derive(Clone, Copy, Debug)]
struct Jacobian<const N: usize> {
    x: Fe<N>,
    y: Fe<N>,
    /// Zero for the point at infinity.
    z: Fe<N>,
}

struct P256F;
struct P384F;

/// `a * b mod p` for P-256 (plain residues).
#[inline(never)]
fn p256_mul(a: &Fe<8>, b: &Fe<8>) -> Fe<8> {
    // Rows i and i+1 in one pass: two independent carry chains.
    let mut t = [0u32; 16];
    for i in (0..8).step_by(2) {
        let (b0, b1) = (u64::from(b[i]), u64::from(b[i + 1]));
        let x = u64::from(t[i]) + u64::from(a[0]) * b0;
        t[i] = x as u32;
        let (mut c0, mut c1) = (x >> 32, 0u64);
        for j in 1..8 {
            let x = u64::from(t[i + j]) + u64::from(a[j]) * b0 + c0;
            c0 = x >> 32;
            let y = (x & 0xffff_ffff) + u64::from(a[j - 1]) * b1 + c1;
            c1 = y >> 32;
            t[i + j] = y as u32;
        }
        // t[i+8] and t[i+9] are still zero; the sum fits in 64 bits.
        let y = u64::from(a[7]) * b1 + c1 + c0;
        t[i + 8] = y as u32;
        t[i + 9] = (y >> 32) as u32;
    }
    p256_reduce(&t)
}

/// `a^2 mod p` for P-256 (plain residues): cross products once, doubled.
#[inline(never)]
fn p256_sqr(a: &Fe<8>) -> Fe<8> {
    let mut t = [0u32; 16];
    for i in 0..8 {
        let ai = u64::from(a[i]);
        let mut c = 0u64;
        for j in i + 1..8 {
            let x = u64::from(t[i + j]) + u64::from(a[j]) * ai + c;
            t[i + j] = x as u32;
            c = x >> 32;
        }
        t[i + 8] = c as u32;
    }
    let mut carry = 0u32;
    for x in t.iter_mut() {
        let next = *x >> 31;
        *x = (*x << 1) | carry;
        carry = next;
    }
    let mut c = 0u64;
    for i in 0..8 {
        let sq = u64::from(a[i]) * u64::from(a[i]);
        let lo = u64::from(t[2 * i]) + (sq & 0xffff_ffff) + c;
        t[2 * i] = lo as u32;
        let hi = u64::from(t[2 * i + 1]) + (sq >> 32) + (lo >> 32);
        t[2 * i + 1] = hi as u32;
        c = hi >> 32;
    }
    p256_reduce(&t)
}

/// Reduces a 512-bit product modulo p = 2^256 - 2^224 + 2^192 + 2^96 - 1
/// (FIPS 186-4 D.2.3: T + 2 S1 + 2 S2 + S3 + S4 - D1 - D2 - D3 - D4, here
/// summed per 32-bit word in signed 64-bit columns).
#[inline(always)]
fn p256_reduce(t: &[u32; 16]) -> Fe<8> {
    let c: [i64; 16] = core::array::from_fn(|i| i64::from(t[i]));
    let w: [i64; 8] = [
        c[0] + c[8] + c[9] - c[11] - c[12] - c[13] - c[14],
        c[1] + c[9] + c[10] - c[12] - c[13] - c[14] - c[15],
        c[2] + c[10] + c[11] - c[13] - c[14] - c[15],
        c[3] + 2 * c[11] + 2 * c[12] + c[13] - c[15] - c[8] - c[9],
        c[4] + 2 * c[12] + 2 * c[13] + c[14] - c[9] - c[10],
        c[5] + 2 * c[13] + 2 * c[14] + c[15] - c[10] - c[11],
        c[6] + 3 * c[14] + 2 * c[15] + c[13] - c[8] - c[9],
        c[7] + 3 * c[15] + c[8] - c[10] - c[11] - c[12] - c[13],
    ];
    let (mut x, mut top) = p256_carry(w);
    // x + top * 2^256 with 2^256 = 2^224 - 2^192 - 2^96 + 1 (mod p): fold
    // until the top word is gone (a few rounds at most), then subtract p once.
    let mut rounds = 0;
    while top != 0 && rounds < 8 {
        let mut w: [i64; 8] = core::array::from_fn(|i| i64::from(x[i]));
        w[0] += top;
        w[3] -= top;
        w[6] -= top;
        w[7] += top;
        (x, top) = p256_carry(w);
        rounds += 1;
    }
    if geq(&x, &P256.p) {
        x = c_sub(&x, &P256.p).0;
    }
    x
}

/// Signed carry propagation of 8 columns into 32-bit words plus a signed top.
#[inline(always)]
fn p256_carry(w: [i64; 8]) -> (Fe<8>, i64) {
    let mut out = [0u32; 8];
    let mut carry = 0i64;
    for i in 0..8 {
        let v = w[i] + carry;
        out[i] = v as u32;
        carry = v >> 32;
    }
    (out, carry)
}

#[inline(never)]
fn p384_mul(a: &Fe<12>, b: &Fe<12>) -> Fe<12> {
    const P: Fe<12> = P384.p;
    const PINV: u32 = P384.p_inv;
    mont_mul(a, b, &P, PINV)
}
#[inline(never)]
fn p384_sqr(a: &Fe<12>) -> Fe<12> {
    const P: Fe<12> = P384.p;
    const PINV: u32 = P384.p_inv;
    mont_sqr(a, &P, PINV)
}

impl Field<8> for P256F {
    fn curve() -> &'static Curve<8> {
        &P256
    }
    fn mul(a: &Fe<8>, b: &Fe<8>) -> Fe<8> {
        p256_mul(a, b)
    }
    fn sqr(a: &Fe<8>) -> Fe<8> {
        p256_sqr(a)
    }
    fn g_table() -> &'static [Vec<Affine<8>>; PARTS] {
        static T: OnceLock<[Vec<Affine<8>>; PARTS]> = OnceLock::new();
        T.get_or_init(|| {
            let g = to_mont_affine::<8, P256F>(&P256.gx, &P256.gy);
            split_tables::<8, P256F>(&g, G_WINDOW)
        })
    }
}

impl Field<12> for P384F {
    fn curve() -> &'static Curve<12> {
        &P384
    }
    fn mul(a: &Fe<12>, b: &Fe<12>) -> Fe<12> {
        p384_mul(a, b)
    }
    fn sqr(a: &Fe<12>) -> Fe<12> {
        p384_sqr(a)
    }
    fn g_table() -> &'static [Vec<Affine<12>>; PARTS] {
        static T: OnceLock<[Vec<Affine<12>>; PARTS]> = OnceLock::new();
        T.get_or_init(|| {
            let g = to_mont_affine::<12, P384F>(&P384.gx, &P384.gy);
            split_tables::<12, P384F>(&g, G_WINDOW)
        })
    }
}

fn to_mont_affine<const N: usize, F: Field<N>>(x: &Fe<N>, y: &Fe<N>) -> Affine<N> {
    let c = F::curve();
    Affine {
        x: F::mul(x, &c.p_rr),
        y: F::mul(y, &c.p_rr),
    }
}

#[inline(always)]
fn fadd<const N: usize, F: Field<N>>(a: &Fe<N>, b: &Fe<N>) -> Fe<N> {
    add_mod(a, b, &F::curve().p)
}

#[inline(always)]
fn fsub<const N: usize, F: Field<N>>(a: &Fe<N>, b: &Fe<N>) -> Fe<N> {
    sub_mod(a, b, &F::curve().p)
}

/// Point doubling, a = -3 ("dbl-2001-b": 3M + 5S).
fn double<const N: usize, F: Field<N>>(p: &Jacobian<N>) -> Jacobian<N> {
    if is_zero(&p.z) {
        return *p;
    }
    let delta = F::sqr(&p.z);
    let gamma = F::sqr(&p.y);
    let beta = F::mul(&p.x, &gamma);
    let t = F::mul(&fsub::<N, F>(&p.x, &delta), &fadd::<N, F>(&p.x, &delta));
    let alpha = fadd::<N, F>(&fadd::<N, F>(&t, &t), &t);
    let beta2 = fadd::<N, F>(&beta, &beta);
    let beta4 = fadd::<N, F>(&beta2, &beta2);
    let beta8 = fadd::<N, F>(&beta4, &beta4);
    let x3 = fsub::<N, F>(&F::sqr(&alpha), &beta8);
    let yz = fadd::<N, F>(&p.y, &p.z);
    let z3 = fsub::<N, F>(&fsub::<N, F>(&F::sqr(&yz), &gamma), &delta);
    let g2 = F::sqr(&gamma);
    let g2x2 = fadd::<N, F>(&g2, &g2);
    let g2x4 = fadd::<N, F>(&g2x2, &g2x2);
    let g2x8 = fadd::<N, F>(&g2x4, &g2x4);
    let y3 = fsub::<N, F>(&F::mul(&alpha, &fsub::<N, F>(&beta4, &x3)), &g2x8);
    Jacobian {
        x: x3,
        y: y3,
        z: z3,
    }
}

/// `p + q` for affine `q` (negated when `neg`); "madd-2007-bl" (7M + 4S),
/// with the exceptional cases (p at infinity, p == ±q) handled.
fn add_affine<const N: usize, F: Field<N>>(
    p: &Jacobian<N>,
    q: &Affine<N>,
    neg: bool,
) -> Jacobian<N> {
    let c = F::curve();
    let qy = if neg {
        fsub::<N, F>(&[0; N], &q.y)
    } else {
        q.y
    };
    if is_zero(&p.z) {
        return Jacobian {
            x: q.x,
            y: qy,
            z: c.p_one,
        };
    }
    let z1z1 = F::sqr(&p.z);
    let u2 = F::mul(&q.x, &z1z1);
    let s2 = F::mul(&qy, &F::mul(&p.z, &z1z1));
    let h = fsub::<N, F>(&u2, &p.x);
    let sy = fsub::<N, F>(&s2, &p.y);
    if is_zero(&h) {
        return if is_zero(&sy) {
            double::<N, F>(p)
        } else {
            Jacobian {
                x: c.p_one,
                y: c.p_one,
                z: [0; N],
            }
        };
    }
    let r = fadd::<N, F>(&sy, &sy);
    let hh = F::sqr(&h);
    let hh2 = fadd::<N, F>(&hh, &hh);
    let i = fadd::<N, F>(&hh2, &hh2);
    let j = F::mul(&h, &i);
    let v = F::mul(&p.x, &i);
    let v2 = fadd::<N, F>(&v, &v);
    let x3 = fsub::<N, F>(&fsub::<N, F>(&F::sqr(&r), &j), &v2);
    let y1j = F::mul(&p.y, &j);
    let y3 = fsub::<N, F>(
        &F::mul(&r, &fsub::<N, F>(&v, &x3)),
        &fadd::<N, F>(&y1j, &y1j),
    );
    let zh = fadd::<N, F>(&p.z, &h);
    let z3 = fsub::<N, F>(&fsub::<N, F>(&F::sqr(&zh), &z1z1), &hh);
    Jacobian {
        x: x3,
        y: y3,
        z: z3,
    }
}

/// Affine (Montgomery) coordinates of a finite Jacobian point.
fn to_affine<const N: usize, F: Field<N>>(p: &Jacobian<N>) -> Option<Affine<N>> {
    let c = F::curve();
    let mut one = [0u32; N];
    one[0] = 1;
    let z_plain = F::mul(&p.z, &one);
    let zi = F::mul(&inv_mod(&z_plain, &c.p)?, &c.p_rr);
    let zi2 = F::sqr(&zi);
    let zi3 = F::mul(&zi2, &zi);
    Some(Affine {
        x: F::mul(&p.x, &zi2),
        y: F::mul(&p.y, &zi3),
    })
}

/// `a^-1` in the field's representation (Montgomery or plain), a != 0.
fn field_inv<const N: usize, F: Field<N>>(a: &Fe<N>) -> Option<Fe<N>> {
    let c = F::curve();
    let mut one = [0u32; N];
    one[0] = 1;
    let plain = F::mul(a, &one);
    Some(F::mul(&inv_mod(&plain, &c.p)?, &c.p_rr))
}

/// `[P, 3P, 5P, ..., (2^(w-1) - 1) P]` in affine coordinates. The Jacobian
/// multiples are normalised together with one field inversion (Montgomery's
/// batch inversion), so this costs two inversions in all.
fn odd_multiples<const N: usize, F: Field<N>>(p: &Affine<N>, w: u32) -> Vec<Affine<N>> {
    let count = 1usize << (w - 2);
    let jp = Jacobian {
        x: p.x,
        y: p.y,
        z: F::curve().p_one,
    };
    let Some(p2) = to_affine::<N, F>(&double::<N, F>(&jp)) else {
        return vec![*p];
    };
    let mut jac = Vec::with_capacity(count);
    jac.push(jp);
    for i in 1..count {
        let next = add_affine::<N, F>(&jac[i - 1], &p2, false);
        if is_zero(&next.z) {
            break; // cannot happen for a point of prime order > 2^w
        }
        jac.push(next);
    }
    // prefix[i] = z_0 * ... * z_i
    let mut prefix = Vec::with_capacity(jac.len());
    let mut acc = F::curve().p_one;
    for j in &jac {
        acc = F::mul(&acc, &j.z);
        prefix.push(acc);
    }
    let Some(mut inv) = field_inv::<N, F>(&acc) else {
        return vec![*p];
    };
    let mut out = vec![*p; jac.len()];
    for i in (0..jac.len()).rev() {
        // inv = (z_0 ... z_i)^-1
        let zi = if i == 0 {
            inv
        } else {
            F::mul(&inv, &prefix[i - 1])
        };
        inv = F::mul(&inv, &jac[i].z);
        let zi2 = F::sqr(&zi);
        let zi3 = F::mul(&zi2, &zi);
        out[i] = Affine {
            x: F::mul(&jac[i].x, &zi2),
            y: F::mul(&jac[i].y, &zi3),
        };
    }
    out
}

/// Width-w non-adjacent form of `k` (plain, < 2^(32N)): digits are zero or
/// odd in (-2^(w-1), 2^(w-1)); `out[i]` weighs 2^i. Returns the length used.
fn wnaf<const N: usize>(k: &Fe<N>, w: u32, out: &mut [i8; 390]) -> usize {
    let bits = 32 * N;
    let width = 1i32 << w;
    let mask = (1u64 << w) - 1;
    let mut carry = 0i32;
    let mut pos = 0usize;
    let mut len = 0;
    out.fill(0);
    while pos <= bits {
        let limb = pos / 32;
        let lo = k.get(limb).copied().unwrap_or(0);
        let hi = k.get(limb + 1).copied().unwrap_or(0);
        let buf = ((u64::from(hi) << 32) | u64::from(lo)) >> (pos % 32);
        let window = carry + (buf & mask) as i32;
        if window & 1 == 0 {
            pos += 1;
            continue;
        }
        let d = if window < width / 2 {
            carry = 0;
            window
        } else {
            carry = 1;
            window - width
        };
        out[pos] = d as i8;
        len = pos + 1;
        pos += w as usize;
    }
    len
}

/// Number of pieces scalars are split into (see [`split_tables`]).
const PARTS: usize = 4;

/// Tables for a point P with the scalar split in `PARTS` pieces of
/// `h = 32N / PARTS` bits: the odd multiples of `P, 2^h P, 2^2h P, ...`. A
/// scalar `u = sum u_j 2^(jh)` then needs only h doublings:
/// `u P = sum u_j (2^(jh) P)` (computed once per key, or once per process
/// for G, instead of 32N doublings per verification).
fn split_tables<const N: usize, F: Field<N>>(p: &Affine<N>, w: u32) -> [Vec<Affine<N>>; PARTS] {
    let mut out: [Vec<Affine<N>>; PARTS] = core::array::from_fn(|_| Vec::new());
    let mut base = Some(*p);
    for table in out.iter_mut() {
        // 2^(jh) P is never infinity for a point of prime order n > 2^(jh);
        // an empty table would only make verification fail.
        let Some(b) = base else { break };
        *table = odd_multiples::<N, F>(&b, w);
        let mut jp = Jacobian {
            x: b.x,
            y: b.y,
            z: F::curve().p_one,
        };
        for _ in 0..32 * N / PARTS {
            jp = double::<N, F>(&jp);
        }
        base = to_affine::<N, F>(&jp);
    }
    out
}

/// The `PARTS` pieces of a scalar, `32N / PARTS` bits each, lowest first.
fn pieces<const N: usize>(k: &Fe<N>) -> [Fe<N>; PARTS] {
    let per = N / PARTS;
    core::array::from_fn(|j| {
        let mut v = [0u32; N];
        v[..per].copy_from_slice(&k[j * per..(j + 1) * per]);
        v
    })
}

/// A validated public key with its precomputed tables (see [`split_tables`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EcKey<const N: usize> {
    tables: [Vec<Affine<N>>; PARTS],
}

fn new_key<const N: usize, F: Field<N>>(x: &[u8], y: &[u8]) -> Result<EcKey<N>, crate::KeyError> {
    let c = F::curve();
    let x: Fe<N> = from_be(x).ok_or(crate::KeyError::InvalidEcCoordinate)?;
    let y: Fe<N> = from_be(y).ok_or(crate::KeyError::InvalidEcCoordinate)?;
    if geq(&x, &c.p) || geq(&y, &c.p) {
        return Err(crate::KeyError::InvalidEcCoordinate);
    }
    let q = to_mont_affine::<N, F>(&x, &y);
    // y^2 == x^3 - 3x + b
    let lhs = F::sqr(&q.y);
    let x3 = F::mul(&F::sqr(&q.x), &q.x);
    let x3x = fadd::<N, F>(&fadd::<N, F>(&q.x, &q.x), &q.x);
    let rhs = fadd::<N, F>(&fsub::<N, F>(&x3, &x3x), &c.b);
    if lhs != rhs {
        return Err(crate::KeyError::InvalidEcPoint);
    }
    // Prime order and cofactor 1: every point on the curve other than
    // infinity (which has no affine coordinates) generates the group.
    // Build the generator's table now (once per process) rather than on the
    // first verification.
    let _ = F::g_table();
    Ok(EcKey {
        tables: split_tables::<N, F>(&q, Q_WINDOW),
    })
}

/// `a * b * R^-1 mod n` (kept out of line: three calls per verification).
#[inline(never)]
fn scalar_mul<const N: usize>(a: &Fe<N>, b: &Fe<N>, c: &Curve<N>) -> Fe<N> {
    mont_mul(a, b, &c.n, c.n_inv)
}

fn verify_digest<const N: usize, F: Field<N>>(key: &EcKey<N>, digest: &[u8], sig: &[u8]) -> bool {
    let c = F::curve();
    if sig.len() != 8 * N || digest.len() != 4 * N {
        return false;
    }
    let (Some(r), Some(s), Some(mut z)) = (
        from_be::<N>(&sig[..4 * N]),
        from_be::<N>(&sig[4 * N..]),
        from_be::<N>(digest),
    ) else {
        return false;
    };
    if is_zero(&r) || is_zero(&s) || geq(&r, &c.n) || geq(&s, &c.n) {
        return false;
    }
    if geq(&z, &c.n) {
        z = c_sub(&z, &c.n).0;
    }
    let Some(w) = inv_mod(&s, &c.n) else {
        return false;
    };
    let w_m = scalar_mul(&w, &c.n_rr, c); // w * R mod n
    let u1 = scalar_mul(&z, &w_m, c);
    let u2 = scalar_mul(&r, &w_m, c);

    // u1 G + u2 Q = sum_j u1_j (2^(jh) G) + u2_j (2^(jh) Q): 2 * PARTS
    // interleaved wNAFs over h = 32N / PARTS bits, h doublings in all.
    let g = F::g_table();
    let (p1, p2) = (pieces(&u1), pieces(&u2));
    let mut nafs = [[0i8; 390]; 2 * PARTS];
    let mut lens = [0usize; 2 * PARTS];
    let mut tables: [&[Affine<N>]; 2 * PARTS] = [&[]; 2 * PARTS];
    for j in 0..PARTS {
        lens[2 * j] = wnaf(&p1[j], G_WINDOW, &mut nafs[2 * j]);
        tables[2 * j] = &g[j];
        lens[2 * j + 1] = wnaf(&p2[j], Q_WINDOW, &mut nafs[2 * j + 1]);
        tables[2 * j + 1] = &key.tables[j];
    }
    let mut acc = Jacobian {
        x: c.p_one,
        y: c.p_one,
        z: [0u32; N],
    };
    let top = lens.iter().copied().max().unwrap_or(0);
    for i in (0..top).rev() {
        acc = double::<N, F>(&acc);
        // Digits are odd with |d| < 2^(w-1): index |d|/2 is inside the
        // tables (checked anyway: a missing entry fails verification).
        for (naf, table) in nafs.iter().zip(tables) {
            let d = naf[i];
            if d != 0 {
                let Some(pt) = table.get((d.unsigned_abs() >> 1) as usize) else {
                    return false;
                };
                acc = add_affine::<N, F>(&acc, pt, d < 0);
            }
        }
    }
    if is_zero(&acc.z) {
        return false;
    }
    // x(acc) mod n == r  <=>  x(acc) is r or r + n (x < p < 2n)
    // <=>  X == c * Z^2 (mod p) for c in {r, r + n} with c < p.
    let z2 = F::sqr(&acc.z);
    let matches = |cand: &Fe<N>| F::mul(&F::mul(cand, &c.p_rr), &z2) == acc.x;
    if matches(&r) {
        return true;
    }
    let mut rn = [0u32; N];
    let mut carry = 0u64;
    for i in 0..N {
        let s = u64::from(r[i]) + u64::from(c.n[i]) + carry;
        rn[i] = s as u32;
        carry = s >> 32;
    }
    carry == 0 && !geq(&rn, &c.p) && matches(&rn)
}

/// A P-256 or P-384 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EcInner {
    P256(EcKey<8>),
    P384(EcKey<12>),
}

impl EcInner {
    pub(crate) fn p256(x: &[u8], y: &[u8]) -> Result<Self, crate::KeyError> {
        new_key::<8, P256F>(crate::strip_leading_zeros(x), crate::strip_leading_zeros(y))
            .map(EcInner::P256)
    }

    pub(crate) fn p384(x: &[u8], y: &[u8]) -> Result<Self, crate::KeyError> {
        new_key::<12, P384F>(crate::strip_leading_zeros(x), crate::strip_leading_zeros(y))
            .map(EcInner::P384)
    }

    /// ES256 / ES384 verification: SHA-256 / SHA-384 of `msg`, raw `r || s`.
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use sha2::Digest;
        match self {
            EcInner::P256(k) => verify_digest::<8, P256F>(k, &sha2::Sha256::digest(msg), sig),
            EcInner::P384(k) => verify_digest::<12, P384F>(k, &sha2::Sha384::digest(msg), sig),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain<const N: usize, F: Field<N>>(a: &Fe<N>) -> Fe<N> {
        let mut one = [0u32; N];
        one[0] = 1;
        F::mul(a, &one)
    }

    #[test]
    fn constants_match_p256_crate() {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let g = p256::AffinePoint::GENERATOR.to_encoded_point(false);
        assert_eq!(from_be::<8>(g.x().unwrap()).unwrap(), P256.gx);
        assert_eq!(from_be::<8>(g.y().unwrap()).unwrap(), P256.gy);
        assert!(new_key::<8, P256F>(g.x().unwrap(), g.y().unwrap()).is_ok());
    }

    #[test]
    fn constants_match_p384_crate() {
        use p384::elliptic_curve::sec1::ToEncodedPoint;
        let g = p384::AffinePoint::GENERATOR.to_encoded_point(false);
        assert_eq!(from_be::<12>(g.x().unwrap()).unwrap(), P384.gx);
        assert_eq!(from_be::<12>(g.y().unwrap()).unwrap(), P384.gy);
        assert!(new_key::<12, P384F>(g.x().unwrap(), g.y().unwrap()).is_ok());
    }

    #[test]
    fn field_inverse() {
        let mut x: Fe<8> = [3, 1, 4, 1, 5, 9, 2, 6];
        for _ in 0..50 {
            let inv = inv_mod(&x, &P256.p).unwrap();
            let xm = P256F::mul(&x, &P256.p_rr);
            let im = P256F::mul(&inv, &P256.p_rr);
            assert_eq!(
                plain::<8, P256F>(&P256F::mul(&xm, &im)),
                [1, 0, 0, 0, 0, 0, 0, 0]
            );
            x = plain::<8, P256F>(&P256F::sqr(&xm));
            x[0] |= 1;
        }
        assert_eq!(inv_mod(&[0u32; 8], &P256.p), None);
    }

    #[test]
    fn n_times_g_is_infinity() {
        // (n-1) G = -G: check via the wNAF ladder with the G table.
        let nm1 = c_sub(&P256.n, &[1, 0, 0, 0, 0, 0, 0, 0]).0;
        let mut naf = [0i8; 390];
        let l = wnaf(&nm1, G_WINDOW, &mut naf);
        let g = &P256F::g_table()[0];
        let mut acc = Jacobian {
            x: P256.p_one,
            y: P256.p_one,
            z: [0u32; 8],
        };
        for i in (0..l).rev() {
            acc = double::<8, P256F>(&acc);
            let d = naf[i];
            if d != 0 {
                acc = add_affine::<8, P256F>(&acc, &g[(d.unsigned_abs() >> 1) as usize], d < 0);
            }
        }
        let a = to_affine::<8, P256F>(&acc).unwrap();
        assert_eq!(plain::<8, P256F>(&a.x), P256.gx);
        assert_eq!(plain::<8, P256F>(&a.y), c_sub(&P256.p, &P256.gy).0);
        // Adding G gives infinity.
        let inf = add_affine::<8, P256F>(&acc, &g[0], false);
        assert!(is_zero(&inf.z));
    }

    #[test]
    fn wnaf_reconstructs() {
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..200 {
            let mut k = [0u32; 8];
            for x in k.iter_mut() {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *x = (s >> 32) as u32;
            }
            for w in [2u32, 4, 5, 7] {
                let mut naf = [0i8; 390];
                let len = wnaf(&k, w, &mut naf);
                // Rebuild as i128 pieces: sum d_i 2^i, compare limb-wise via a big accumulator.
                let mut acc = [0i64; 10];
                for (i, &d) in naf[..len].iter().enumerate() {
                    if d != 0 {
                        assert!(d % 2 != 0 && i32::from(d).abs() < (1 << (w - 1)));
                        acc[i / 32] += i64::from(d) << (i % 32);
                    }
                }
                let mut carry = 0i64;
                for (i, a) in acc.iter().enumerate() {
                    let v = a + carry;
                    let limb = v.rem_euclid(1 << 32);
                    carry = (v - limb) >> 32;
                    assert_eq!(
                        limb as u32,
                        k.get(i).copied().unwrap_or(0),
                        "w={w} limb {i}"
                    );
                }
            }
        }
    }
}
