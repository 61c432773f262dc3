//! Percentages, random draws and stable hashing.

use serde::Deserialize;

/// One million: percentages are kept as parts per million, so `0.0001` %
/// (one in a million) is the finest share that can be expressed.
pub const PPM: u32 = 1_000_000;

/// Converts a percentage in `[0, 100]` to parts per million (rounded to the
/// nearest part).
pub fn percent_to_ppm(percent: f64) -> Result<u32, String> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return Err(format!("percentage {percent} is outside 0..100"));
    }
    Ok((percent * 10_000.0).round() as u32)
}

/// Istio's `Percent` (`{"value": 12.5}`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    /// Percentage in `[0, 100]`.
    pub value: f64,
}

/// A small, fast pseudo-random generator (wyrand). Seeded from the host's
/// randomness (WASI `random_get` inside the VM) once per VM; per-request
/// draws cost a multiplication.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed (tests, reproducible runs).
    pub fn with_seed(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator seeded from the platform's randomness.
    pub fn from_entropy() -> Rng {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        Rng(RandomState::new().hash_one(0x5eed_u64))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A uniform draw in `[0, n)` (n > 0), without modulo bias worth noting.
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u64() as u32) * u64::from(n)) >> 32) as u32
    }

    /// True with probability `ppm / 1_000_000`.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        ppm >= PPM || (ppm > 0 && self.below(PPM) < ppm)
    }
}

/// A stable 64-bit hash (FNV-1a followed by a splitmix64 finaliser): the same
/// bytes give the same value in every VM, build and version, as sticky
/// routing requires.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// splitmix64's finaliser: spreads the bits of `x` over the whole word.
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_conversion() {
        assert_eq!(percent_to_ppm(100.0).unwrap(), PPM);
        assert_eq!(percent_to_ppm(0.0001).unwrap(), 1);
        assert_eq!(percent_to_ppm(12.5).unwrap(), 125_000);
        assert!(percent_to_ppm(100.1).is_err());
        assert!(percent_to_ppm(-1.0).is_err());
        assert!(percent_to_ppm(f64::NAN).is_err());
    }

    #[test]
    fn chance_is_roughly_right() {
        let mut r = Rng::with_seed(42);
        let hits = (0..100_000).filter(|_| r.chance_ppm(250_000)).count();
        assert!((23_500..26_500).contains(&hits), "{hits}");
        assert!((0..1000).all(|_| r.chance_ppm(PPM)));
        assert!((0..1000).all(|_| !r.chance_ppm(0)));
    }

    #[test]
    fn stable_hash_is_stable() {
        // Pinned values: changing them would move every sticky user.
        assert_eq!(stable_hash(b""), mix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(stable_hash(b"user-1"), stable_hash(b"user-1"));
        assert_ne!(stable_hash(b"user-1"), stable_hash(b"user-2"));
    }
}
