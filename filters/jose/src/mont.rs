//! Montgomery arithmetic modulo an odd multi-limb modulus, with 32-bit limbs
//! (32x32->64-bit products are native in wasm; 64x64->128 are not).
//!
//! Used for RSA public-key operations, where everything is public: the code
//! is straightforward, variable-time, and allocation-free per operation
//! apart from a few scratch vectors.

/// Limbs are little-endian `u32`s.
pub(crate) type Limb = u32;

/// An odd modulus with its Montgomery constants, computed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MontModulus {
    /// The modulus, little-endian limbs, the top limb non-zero.
    n: Vec<Limb>,
    /// `-n^-1 mod 2^32`.
    n0inv: Limb,
    /// `R^2 mod n` where `R = 2^(32 * limbs)`.
    rr: Vec<Limb>,
}

/// `-x^-1 mod 2^32` for odd `x` (Newton iteration).
pub(crate) const fn neg_inv32(x: Limb) -> Limb {
    let mut inv: Limb = 1;
    let mut i = 0;
    while i < 5 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(inv)));
        i += 1;
    }
    inv.wrapping_neg()
}

/// Big-endian bytes to little-endian limbs, exactly `limbs` long (the value
/// must fit).
pub(crate) fn limbs_from_be(bytes: &[u8], limbs: usize) -> Vec<Limb> {
    let mut out = vec![0; limbs];
    for (i, chunk) in bytes.rchunks(4).enumerate() {
        let mut v: Limb = 0;
        for &b in chunk {
            v = (v << 8) | Limb::from(b);
        }
        out[i] = v;
    }
    out
}

/// Little-endian limbs to exactly `len` big-endian bytes (the value must fit).
pub(crate) fn limbs_to_be(limbs: &[Limb], len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(len, 0);
    for (i, b) in out.iter_mut().rev().enumerate() {
        let limb = limbs.get(i / 4).copied().unwrap_or(0);
        *b = (limb >> (8 * (i % 4))) as u8;
    }
}

/// `a >= b` for equal-length limb slices.
pub(crate) fn geq(a: &[Limb], b: &[Limb]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a -= b` for equal-length slices; returns the borrow.
pub(crate) fn sub_in_place(a: &mut [Limb], b: &[Limb]) -> bool {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = u64::from(*x)
            .wrapping_sub(u64::from(y))
            .wrapping_sub(borrow);
        *x = d as Limb;
        borrow = (d >> 63) & 1;
    }
    borrow != 0
}

impl MontModulus {
    /// `n` big-endian (leading zeros ignored); must be odd and non-zero.
    pub(crate) fn new(n_be: &[u8]) -> Option<MontModulus> {
        let n_be = crate::strip_leading_zeros(n_be);
        if n_be.is_empty() || n_be[n_be.len() - 1] & 1 == 0 {
            return None;
        }
        let limbs = n_be.len().div_ceil(4);
        let n = limbs_from_be(n_be, limbs);
        let n0inv = neg_inv32(n[0]);
        // R^2 mod n, once per key. x = 2^(bits-1) < n, doubled modulo n up to
        // R mod n (the Montgomery form of 1), doubled t more times (the
        // Montgomery form of 2^t), then squared j times in Montgomery form
        // (2^(t 2^j)), with t 2^j = 32 * limbs: the Montgomery form of R.
        let bits = 8 * n_be.len() - n_be[0].leading_zeros() as usize;
        let total = 32 * limbs;
        let j = total.trailing_zeros() as usize;
        let t = total >> j;
        let mut x = vec![0; limbs];
        x[(bits - 1) / 32] = 1 << ((bits - 1) % 32);
        let double = |x: &mut Vec<Limb>| {
            let carry = shl1(x);
            if carry || geq(x, &n) {
                sub_in_place(x, &n);
            }
        };
        for _ in 0..(total - bits + 1) + t {
            double(&mut x);
        }
        let mut m = MontModulus {
            n,
            n0inv,
            rr: Vec::new(),
        };
        let mut scratch = vec![0; 2 * limbs];
        let mut y = vec![0; limbs];
        for _ in 0..j {
            m.sqr(&x, &mut scratch, &mut y);
            core::mem::swap(&mut x, &mut y);
        }
        m.rr = x;
        Some(m)
    }

    pub(crate) fn limbs(&self) -> usize {
        self.n.len()
    }

    pub(crate) fn modulus(&self) -> &[Limb] {
        &self.n
    }

    /// `out = a * b * R^-1 mod n`, fully reduced. `a`, `b` < n (or, for one of
    /// them, any value below R when the other is below n). `t` is scratch of
    /// `2 * limbs + 1`.
    pub(crate) fn mul(&self, a: &[Limb], b: &[Limb], t: &mut [Limb], out: &mut [Limb]) {
        let l = self.n.len();
        let t = &mut t[..2 * l];
        t.fill(0);
        let mut i = 0;
        while i + 1 < l {
            let (c0, c1) = mac_two_rows(
                &mut t[i..i + l + 1],
                a,
                u64::from(b[i]),
                u64::from(b[i + 1]),
            );
            // Position i + l + 1 is still zero: no overflow.
            let z = u64::from(t[i + l]) + c0;
            t[i + l] = z as Limb;
            t[i + l + 1] = (c1 + (z >> 32)) as Limb;
            i += 2;
        }
        if i < l {
            let c = mac_row(&mut t[i..i + l], a, u64::from(b[i]));
            t[i + l] = c as Limb;
        }
        self.reduce(t, out);
    }

    /// `out = a^2 * R^-1 mod n`, fully reduced; `a < n`.
    pub(crate) fn sqr(&self, a: &[Limb], t: &mut [Limb], out: &mut [Limb]) {
        let l = self.n.len();
        let t = &mut t[..2 * l];
        t.fill(0);
        // Cross products a_i * a_j, i < j; rows i and i+1 in one pass.
        let mut i = 0;
        while i + 2 < l {
            // Position 2i+1: row i alone (a_(i+1) a_i); its carry enters the pass.
            let x = u64::from(t[2 * i + 1]) + u64::from(a[i + 1]) * u64::from(a[i]);
            t[2 * i + 1] = x as Limb;
            let (c0, c1) = mac_two_rows_carry(
                &mut t[2 * i + 2..i + l + 1],
                &a[i + 2..],
                u64::from(a[i]),
                u64::from(a[i + 1]),
                x >> 32,
            );
            let z = u64::from(t[i + l]) + c0;
            t[i + l] = z as Limb;
            t[i + l + 1] = (c1 + (z >> 32)) as Limb;
            i += 2;
        }
        while i + 1 < l {
            let c = mac_row(&mut t[2 * i + 1..i + l], &a[i + 1..], u64::from(a[i]));
            t[i + l] = c as Limb;
            i += 1;
        }
        // Double them, then add the squares a_i^2.
        shl1(t);
        let mut c = 0u64;
        for (pair, &ai) in t.chunks_exact_mut(2).zip(a) {
            let sq = u64::from(ai) * u64::from(ai);
            let lo = u64::from(pair[0]) + (sq & 0xffff_ffff) + c;
            pair[0] = lo as Limb;
            let hi = u64::from(pair[1]) + (sq >> 32) + (lo >> 32);
            pair[1] = hi as Limb;
            c = hi >> 32;
        }
        self.reduce(t, out);
    }

    /// Montgomery reduction of the 2l-limb `t`: `out = t * R^-1 mod n`,
    /// two rows (two quotient digits) per pass over `t`: each limb of `t` is
    /// loaded and stored once per two multiply-accumulates.
    fn reduce(&self, t: &mut [Limb], out: &mut [Limb]) {
        let l = self.n.len();
        let n = &self.n;
        let mut top = 0u64;
        let mut i = 0;
        while i + 1 < l {
            let m0 = u64::from(t[i].wrapping_mul(self.n0inv));
            let x = u64::from(t[i]) + m0 * u64::from(n[0]);
            let x = u64::from(t[i + 1]) + m0 * u64::from(n[1]) + (x >> 32);
            let w = x as Limb;
            let m1 = u64::from(w.wrapping_mul(self.n0inv));
            let y = u64::from(w) + m1 * u64::from(n[0]);
            let (mut c0, mut c1) = (x >> 32, y >> 32);
            for (tj, nw) in t[i + 2..i + l].iter_mut().zip(n[1..].windows(2)) {
                let x = u64::from(*tj) + m0 * u64::from(nw[1]) + c0;
                c0 = x >> 32;
                let y = (x & MASK) + m1 * u64::from(nw[0]) + c1;
                c1 = y >> 32;
                *tj = y as Limb;
            }
            let x = u64::from(t[i + l]) + c0 + top;
            let y = (x & MASK) + m1 * u64::from(n[l - 1]) + c1;
            t[i + l] = y as Limb;
            let z = u64::from(t[i + l + 1]) + (x >> 32) + (y >> 32);
            t[i + l + 1] = z as Limb;
            top = z >> 32;
            i += 2;
        }
        if i < l {
            let m = u64::from(t[i].wrapping_mul(self.n0inv));
            let c = mac_row(&mut t[i..i + l], &self.n, m);
            let x = u64::from(t[i + l]) + c + top;
            t[i + l] = x as Limb;
            top = x >> 32;
        }
        let r = &mut out[..l];
        r.copy_from_slice(&t[l..2 * l]);
        if top != 0 || geq(r, &self.n) {
            sub_in_place(r, &self.n);
        }
    }

    /// `base^e mod n` for a small public exponent, with `base < n` (normal
    /// representation in and out). Left-to-right square-and-multiply.
    pub(crate) fn pow_public(&self, base: &[Limb], e: u64) -> Vec<Limb> {
        let l = self.n.len();
        let mut t = vec![0; 2 * l];
        let mut bm = vec![0; l];
        self.mul(base, &self.rr, &mut t, &mut bm); // to Montgomery form
        let mut acc = bm.clone();
        let mut tmp = vec![0; l];
        let bits = 64 - e.leading_zeros();
        for i in (0..bits.saturating_sub(1)).rev() {
            self.sqr(&acc, &mut t, &mut tmp);
            if (e >> i) & 1 == 1 {
                self.mul(&tmp, &bm, &mut t, &mut acc);
            } else {
                core::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Out of Montgomery form: multiply by 1.
        let mut one = vec![0; l];
        one[0] = 1;
        self.mul(&acc, &one, &mut t, &mut tmp);
        tmp
    }

    /// `R^e mod n`, the constant [`Self::pow_public_fast`] needs (computed
    /// once per key).
    pub(crate) fn r_pow(&self, e: u64) -> Vec<Limb> {
        let l = self.n.len();
        let mut t = vec![0; 2 * l];
        let mut r = vec![0; l];
        let mut one = vec![0; l];
        one[0] = 1;
        self.mul(&self.rr, &one, &mut t, &mut r); // R mod n
        self.pow_public(&r, e)
    }

    /// `base^e mod n` with `base < n` and `k = R^e mod n` from
    /// [`Self::r_pow`]. `base` is used as it is, as the Montgomery form of
    /// `base * R^-1`: the exponentiation yields `base^e R^(1-e)`, and one
    /// multiplication by `k` gives `base^e` — one Montgomery multiplication
    /// instead of the two conversions in and out of Montgomery form.
    pub(crate) fn pow_public_fast(&self, base: &[Limb], e: u64, k: &[Limb]) -> Vec<Limb> {
        let l = self.n.len();
        let mut t = vec![0; 2 * l];
        let mut acc = base[..l].to_vec();
        let mut tmp = vec![0; l];
        let bits = 64 - e.leading_zeros();
        for i in (0..bits.saturating_sub(1)).rev() {
            self.sqr(&acc, &mut t, &mut tmp);
            if (e >> i) & 1 == 1 {
                self.mul(&tmp, base, &mut t, &mut acc);
            } else {
                core::mem::swap(&mut acc, &mut tmp);
            }
        }
        self.mul(&acc, k, &mut t, &mut tmp);
        tmp
    }
}

/// `t += a * b` over `t.len() == a.len()` limbs; returns the carry limb.
/// The inner loop of every multiplication here.
#[inline(always)]
fn mac_row(t: &mut [Limb], a: &[Limb], b: u64) -> u64 {
    let mut c = 0u64;
    for (tj, &aj) in t.iter_mut().zip(a) {
        let x = u64::from(*tj) + u64::from(aj) * b + c;
        *tj = x as Limb;
        c = x >> 32;
    }
    c
}

/// `t[j] += a[j] * b0 + a[j-1] * b1` over `t.len() == a.len() + 1` limbs
/// (two product rows in one pass, so each limb of `t` is loaded and stored
/// once per two multiply-accumulates). Returns `(c0, c1)`: row 0's carry,
/// which still has to be added at `t[a.len()]`, and the carry out of
/// `t[a.len()]` into the next limb.
#[inline(always)]
fn mac_two_rows(t: &mut [Limb], a: &[Limb], b0: u64, b1: u64) -> (u64, u64) {
    mac_two_rows_carry(t, a, b0, b1, 0)
}

/// As [`mac_two_rows`] with a carry `c_in` entering row 0 at position 0.
/// `a` must not be empty.
#[inline(always)]
fn mac_two_rows_carry(t: &mut [Limb], a: &[Limb], b0: u64, b1: u64, c_in: u64) -> (u64, u64) {
    let l = a.len();
    // Position 0: row 0 only.
    let x = u64::from(t[0]) + u64::from(a[0]) * b0 + c_in;
    t[0] = x as Limb;
    let (mut c0, mut c1) = (x >> 32, 0u64);
    for (tj, aw) in t[1..l].iter_mut().zip(a.windows(2)) {
        let x = u64::from(*tj) + u64::from(aw[1]) * b0 + c0;
        c0 = x >> 32;
        let y = (x & MASK) + u64::from(aw[0]) * b1 + c1;
        c1 = y >> 32;
        *tj = y as Limb;
    }
    // Position l: row 1's last product; row 0's carry is returned.
    let y = u64::from(t[l]) + u64::from(a[l - 1]) * b1 + c1;
    t[l] = y as Limb;
    (c0, y >> 32)
}

const MASK: u64 = 0xffff_ffff;

/// Shifts left by one bit in place; returns the bit shifted out.
fn shl1(x: &mut [Limb]) -> bool {
    let mut carry = 0;
    for v in x.iter_mut() {
        let next = *v >> 31;
        *v = (*v << 1) | carry;
        carry = next;
    }
    carry != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neg_inv() {
        for x in [1u32, 3, 0xffff_ffff, 0x1234_5677, 0xfc63_2551] {
            assert_eq!(x.wrapping_mul(neg_inv32(x)), u32::MAX, "{x:#x}");
        }
    }

    #[test]
    fn small_modulus_pow_matches_u128() {
        // Moduli that fit in u64 so that u128 arithmetic is a reference.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (s >> (s % 40)) | 1 | (1 << 33);
            let base = s.rotate_left(17) % n;
            let e = (s >> 7) % 200_000 + 1;
            let m = MontModulus::new(&n.to_be_bytes()[n.leading_zeros() as usize / 8..]).unwrap();
            let got = m.pow_public(&limbs_from_be(&base.to_be_bytes(), m.limbs()), e);
            let mut want: u128 = 1;
            let mut b = u128::from(base);
            let mut k = e;
            while k > 0 {
                if k & 1 == 1 {
                    want = want * b % u128::from(n);
                }
                b = b * b % u128::from(n);
                k >>= 1;
            }
            let mut bytes = Vec::new();
            limbs_to_be(&got, 8, &mut bytes);
            assert_eq!(
                u64::from_be_bytes(bytes.try_into().unwrap()),
                want as u64,
                "n={n} base={base} e={e}"
            );
        }
    }
    /// mul and sqr against num-bigint: `mul(a, b) * R == a * b (mod n)`,
    /// for odd moduli of 1 to 70 limbs with random and extreme operands.
    #[test]
    fn mul_sqr_match_bigint() {
        use num_bigint_dig::BigUint;
        let mut s = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for limbs in (1..=70).chain([64, 96, 128]) {
            for round in 0..6 {
                let mut n_be: Vec<u8> = (0..limbs * 4).map(|_| next() as u8).collect();
                n_be[0] |= 0x80;
                if round == 1 {
                    n_be.iter_mut().for_each(|b| *b = 0xff);
                }
                *n_be.last_mut().unwrap() |= 1;
                let m = MontModulus::new(&n_be).unwrap();
                let n = BigUint::from_bytes_be(&n_be);
                let r = BigUint::from(1u8) << (32 * limbs);
                let rand_below_n = |next: &mut dyn FnMut() -> u64| {
                    let v: Vec<u8> = (0..limbs * 4).map(|_| next() as u8).collect();
                    BigUint::from_bytes_be(&v) % &n
                };
                let mut vals = vec![rand_below_n(&mut next), rand_below_n(&mut next)];
                vals.push(&n - 1u8);
                vals.push(BigUint::from(0u8));
                vals.push(BigUint::from(1u8));
                let to_limbs = |x: &BigUint| limbs_from_be(&x.to_bytes_be(), limbs);
                let from_limbs = |x: &[Limb]| {
                    let mut b = Vec::new();
                    limbs_to_be(x, limbs * 4, &mut b);
                    BigUint::from_bytes_be(&b)
                };
                let mut scratch = vec![0; 2 * limbs];
                let mut out = vec![0; limbs];
                for a in &vals {
                    for b in &vals {
                        m.mul(&to_limbs(a), &to_limbs(b), &mut scratch, &mut out);
                        let got = from_limbs(&out);
                        assert!(got < n);
                        assert_eq!((&got * &r) % &n, (a * b) % &n, "limbs {limbs} mul");
                    }
                    m.sqr(&to_limbs(a), &mut scratch, &mut out);
                    let got = from_limbs(&out);
                    assert!(got < n);
                    assert_eq!((&got * &r) % &n, (a * a) % &n, "limbs {limbs} sqr");
                    let e = 65537u64;
                    let got = from_limbs(&m.pow_public(&to_limbs(a), e));
                    assert_eq!(got, a.modpow(&BigUint::from(e), &n), "limbs {limbs} pow");
                    let exps: &[u64] = if limbs < 20 {
                        &[3, 65537, 0x1_0000_0001]
                    } else {
                        &[65537]
                    };
                    for &e in exps {
                        let k = m.r_pow(e);
                        let got = from_limbs(&m.pow_public_fast(&to_limbs(a), e, &k));
                        assert_eq!(
                            got,
                            a.modpow(&BigUint::from(e), &n),
                            "limbs {limbs} e {e} fast pow"
                        );
                    }
                }
            }
        }
    }
}
