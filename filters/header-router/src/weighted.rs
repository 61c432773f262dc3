//! Choosing one of a route's weighted destinations.
//!
//! Without a sticky key each request is a random draw in proportion to the
//! weights. With a key (`stickyBy`), the choice is weighted rendezvous
//! hashing: every destination `i` scores the key as `w_i / -ln(u_i)`, where
//! `u_i` in (0, 1) is a stable hash of the key and the destination's name,
//! and the highest score wins. The probability that a destination wins is
//! exactly its share of the weights, the same key always wins at the same
//! destination, and because a destination's score only grows with its weight,
//! raising one weight only moves keys *to* that destination: a 90/10 → 80/20
//! change moves about 10% of keys and no others. Adding or removing a
//! destination only moves the keys that it wins or held.

use wasmesh_common::sampling::{mix64, stable_hash, Rng};

/// The weights of a route's destinations, compiled.
#[derive(Debug, Clone)]
pub struct WeightedSet {
    weights: Vec<u32>,
    seeds: Vec<u64>,
    total: u32,
}

impl WeightedSet {
    /// Builds the set from `(name, weight)` pairs. The total weight must be
    /// positive (the caller validates).
    pub fn new<'a>(destinations: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut weights = Vec::new();
        let mut seeds = Vec::new();
        for (name, weight) in destinations {
            weights.push(weight);
            seeds.push(stable_hash(name.as_bytes()));
        }
        let total = weights.iter().sum();
        WeightedSet {
            weights,
            seeds,
            total,
        }
    }

    /// Number of destinations.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether there are no destinations.
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// A random destination in proportion to the weights.
    pub fn pick_random(&self, rng: &mut Rng) -> usize {
        if self.weights.len() <= 1 || self.total == 0 {
            return 0;
        }
        let mut draw = rng.below(self.total);
        for (i, w) in self.weights.iter().enumerate() {
            if draw < *w {
                return i;
            }
            draw -= w;
        }
        self.weights.len() - 1
    }

    /// The destination for a sticky key (its [`stable_hash`]).
    pub fn pick_sticky(&self, key_hash: u64) -> usize {
        if self.weights.len() <= 1 {
            return 0;
        }
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for (i, (w, seed)) in self.weights.iter().zip(&self.seeds).enumerate() {
            if *w == 0 {
                continue;
            }
            let score = f64::from(*w) / -unit(mix64(key_hash ^ *seed)).ln();
            if score > best_score {
                best = i;
                best_score = score;
            }
        }
        best
    }
}

/// Maps 64 random bits to (0, 1), both ends excluded.
fn unit(bits: u64) -> f64 {
    ((bits >> 12) as f64 + 0.5) / (1u64 << 52) as f64
}

/// Hashes a sticky key.
pub fn key_hash(key: &[u8]) -> u64 {
    stable_hash(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, u32)]) -> WeightedSet {
        WeightedSet::new(pairs.iter().copied())
    }

    #[test]
    fn random_draws_follow_weights() {
        let s = set(&[("a", 70), ("b", 20), ("c", 10), ("d", 0)]);
        let mut rng = Rng::with_seed(7);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[s.pick_random(&mut rng)] += 1;
        }
        assert!((69_000..71_000).contains(&counts[0]), "{counts:?}");
        assert!((19_000..21_000).contains(&counts[1]), "{counts:?}");
        assert!((9_300..10_700).contains(&counts[2]), "{counts:?}");
        assert_eq!(counts[3], 0);
    }

    #[test]
    fn sticky_shares_follow_weights_and_are_stable() {
        let s = set(&[("v1", 90), ("v2", 10)]);
        let mut v2 = 0;
        for k in 0..100_000u32 {
            let h = key_hash(format!("user-{k}").as_bytes());
            let d = s.pick_sticky(h);
            assert_eq!(d, s.pick_sticky(h));
            v2 += d;
        }
        assert!((9_400..10_600).contains(&v2), "{v2}");
    }

    #[test]
    fn weight_change_moves_only_the_difference() {
        let before = set(&[("v1", 90), ("v2", 10)]);
        let after = set(&[("v1", 80), ("v2", 20)]);
        let (mut moved, mut back) = (0, 0);
        for k in 0..100_000u32 {
            let h = key_hash(format!("user-{k}").as_bytes());
            match (before.pick_sticky(h), after.pick_sticky(h)) {
                (0, 1) => moved += 1,
                (1, 0) => back += 1,
                _ => {}
            }
        }
        assert_eq!(
            back, 0,
            "no key may move away from the destination that gained weight"
        );
        assert!((9_400..10_600).contains(&moved), "{moved}");
    }

    #[test]
    fn zero_weight_never_wins() {
        let s = set(&[("a", 0), ("b", 5)]);
        for k in 0..1000u64 {
            assert_eq!(s.pick_sticky(mix64(k)), 1);
        }
        let mut rng = Rng::with_seed(1);
        for _ in 0..1000 {
            assert_eq!(s.pick_random(&mut rng), 1);
        }
    }

    #[test]
    fn unit_interval_is_open() {
        assert!(unit(0) > 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
