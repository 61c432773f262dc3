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
        let d = u64::from(*x).wrapping_sub(u64::from(y)).wrapping_sub(borrow);
        *x = d as Limb;
        borrow = (d >> 63) & 1;
    }
    borrow != 0
}

impl MontModulus {
    /// `n` big-endian without leading zeros; must be odd and non-empty.
    pub(crate) fn new(n_be: &[u8]) -> Option<MontModulus> {
        if n_be.is_empty() || n_be[n_be.len() - 1] & 1 == 0 {
            return None;
        }
        let limbs = n_be.len().div_ceil(4);
        let n = limbs_from_be(n_be, limbs);
        let n0inv = neg_inv32(n[0]);
        // R^2 mod n by doubling 1 (2 * 32 * limbs) times modulo n. Done once per key.
        let mut x = vec![0; limbs];
        x[0] = 1;
        for _ in 0..64 * limbs {
            let carry = shl1(&mut x);
            if carry || geq(&x, &n) {
                sub_in_place(&mut x, &n);
            }
        }
        Some(MontModulus { n, n0inv, rr: x })
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
        for (i, &bi) in b.iter().enumerate() {
            let bi = u64::from(bi);
            let mut c = 0u64;
            for (tj, &aj) in t[i..i + l].iter_mut().zip(a) {
                let x = u64::from(*tj) + u64::from(aj) * bi + c;
                *tj = x as Limb;
                c = x >> 32;
            }
            t[i + l] = c as Limb;
        }
        self.reduce(t, out);
    }

    /// `out = a^2 * R^-1 mod n`, fully reduced; `a < n`.
    pub(crate) fn sqr(&self, a: &[Limb], t: &mut [Limb], out: &mut [Limb]) {
        let l = self.n.len();
        let t = &mut t[..2 * l];
        t.fill(0);
        // Cross products a_i * a_j, i < j.
        for i in 0..l {
            let ai = u64::from(a[i]);
            let mut c = 0u64;
            for (tj, &aj) in t[2 * i + 1..i + l].iter_mut().zip(&a[i + 1..]) {
                let x = u64::from(*tj) + u64::from(aj) * ai + c;
                *tj = x as Limb;
                c = x >> 32;
            }
            t[i + l] = c as Limb;
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

    /// Montgomery reduction of the 2l-limb `t`: `out = t * R^-1 mod n`.
    fn reduce(&self, t: &mut [Limb], out: &mut [Limb]) {
        let l = self.n.len();
        let mut top = 0u64;
        for i in 0..l {
            let m = u64::from(t[i].wrapping_mul(self.n0inv));
            let mut c = 0u64;
            for (tj, &nj) in t[i..i + l].iter_mut().zip(&self.n) {
                let x = u64::from(*tj) + m * u64::from(nj) + c;
                *tj = x as Limb;
                c = x >> 32;
            }
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
}

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
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
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
            assert_eq!(u64::from_be_bytes(bytes.try_into().unwrap()), want as u64, "n={n} base={base} e={e}");
        }
    }
}
