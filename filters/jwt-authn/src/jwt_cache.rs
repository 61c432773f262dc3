//! A bounded LRU cache of verified tokens, so that a token is verified once
//! and its repeats cost a hash lookup (Envoy's `jwt_cache_config`).
//!
//! Entries are keyed by (provider, token text). An entry is never used past
//! the token's `exp` (it is dropped when found expired), nor after its
//! provider's key set changed (each entry remembers the key-set generation it
//! was verified with, so a rotated-out key stops being trusted at once).
//! Time (`nbf`/`exp` with skew), audience and lifetime rules are still
//! checked on every hit; only the signature check and parsing are skipped.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

const NIL: usize = usize::MAX;

struct Slot<V> {
    provider: usize,
    token: Box<str>,
    value: Rc<V>,
    generation: u64,
    expires: Option<u64>,
    prev: usize,
    next: usize,
}

/// LRU map (provider, token) → verified value.
pub struct JwtCache<V> {
    capacity: usize,
    map: HashMap<Key, usize>,
    slots: Vec<Slot<V>>,
    head: usize,
    tail: usize,
    free: Vec<usize>,
}

/// Hash-map key: the provider and an owned copy of the token. Lookups use
/// a borrowed `(provider, &str)` through [`KeyRef`], so a cache hit copies
/// nothing.
#[derive(Clone, PartialEq, Eq)]
struct Key {
    provider: usize,
    token: Box<str>,
}

/// What [`Key`] and a borrowed lookup key have in common; hashing and
/// equality go through it so that both agree.
trait KeyRef {
    fn parts(&self) -> (usize, &str);
}

impl KeyRef for Key {
    fn parts(&self) -> (usize, &str) {
        (self.provider, &self.token)
    }
}

impl KeyRef for (usize, &str) {
    fn parts(&self) -> (usize, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn KeyRef + 'a> for Key {
    fn borrow(&self) -> &(dyn KeyRef + 'a) {
        self
    }
}

impl Hash for dyn KeyRef + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let (provider, token) = self.parts();
        provider.hash(h);
        token.hash(h);
    }
}

impl PartialEq for dyn KeyRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyRef + '_ {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn KeyRef).hash(h);
    }
}

impl<V> JwtCache<V> {
    /// A cache holding at most `capacity` tokens (0: caches nothing).
    pub fn new(capacity: usize) -> Self {
        JwtCache {
            capacity,
            map: HashMap::with_capacity(capacity.min(1024)),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            free: Vec::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value for `(provider, token)` if present, verified with key-set
    /// `generation` and not expired at `now` (seconds); marks it most recently used.
    pub fn get(
        &mut self,
        provider: usize,
        token: &str,
        generation: u64,
        now: u64,
    ) -> Option<Rc<V>> {
        if self.capacity == 0 {
            return None;
        }
        let idx = *self.map.get(&(provider, token) as &dyn KeyRef)?;
        let slot = &self.slots[idx];
        if slot.generation != generation || slot.expires.is_some_and(|e| now >= e) {
            self.remove_slot(idx);
            return None;
        }
        let value = Rc::clone(&slot.value);
        self.unlink(idx);
        self.push_front(idx);
        Some(value)
    }

    /// Remembers a verified token; `expires` is its `exp`. Evicts the least
    /// recently used entry when full.
    pub fn insert(
        &mut self,
        provider: usize,
        token: &str,
        generation: u64,
        expires: Option<u64>,
        value: Rc<V>,
    ) {
        if self.capacity == 0 {
            return;
        }
        let key = Key {
            provider,
            token: token.into(),
        };
        if let Some(&idx) = self.map.get(&key) {
            self.remove_slot(idx);
        }
        if self.map.len() >= self.capacity && self.tail != NIL {
            self.remove_slot(self.tail);
        }
        let slot = Slot {
            provider,
            token: key.token.clone(),
            value,
            generation,
            expires,
            prev: NIL,
            next: NIL,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.map.insert(key, idx);
        self.push_front(idx);
    }

    fn remove_slot(&mut self, idx: usize) {
        self.unlink(idx);
        let key = Key {
            provider: self.slots[idx].provider,
            token: std::mem::take(&mut self.slots[idx].token),
        };
        self.map.remove(&key);
        self.free.push(idx);
    }

    fn unlink(&mut self, idx: usize) {
        let (prev, next) = (self.slots[idx].prev, self.slots[idx].next);
        if prev != NIL {
            self.slots[prev].next = next;
        } else if self.head == idx {
            self.head = next;
        }
        if next != NIL {
            self.slots[next].prev = prev;
        } else if self.tail == idx {
            self.tail = prev;
        }
        self.slots[idx].prev = NIL;
        self.slots[idx].next = NIL;
    }

    fn push_front(&mut self, idx: usize) {
        self.slots[idx].next = self.head;
        self.slots[idx].prev = NIL;
        if self.head != NIL {
            self.slots[self.head].prev = idx;
        }
        self.head = idx;
        if self.tail == NIL {
            self.tail = idx;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_and_miss() {
        let mut c = JwtCache::new(2);
        assert!(c.get(0, "a", 1, 0).is_none());
        c.insert(0, "a", 1, None, Rc::new(1));
        assert_eq!(*c.get(0, "a", 1, 0).unwrap(), 1);
        assert!(c.get(1, "a", 1, 0).is_none(), "keyed by provider too");
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = JwtCache::new(2);
        c.insert(0, "a", 1, None, Rc::new("a"));
        c.insert(0, "b", 1, None, Rc::new("b"));
        c.get(0, "a", 1, 0);
        c.insert(0, "c", 1, None, Rc::new("c"));
        assert_eq!(c.len(), 2);
        assert!(c.get(0, "b", 1, 0).is_none());
        assert!(c.get(0, "a", 1, 0).is_some());
        assert!(c.get(0, "c", 1, 0).is_some());
        for i in 0..100 {
            c.insert(0, &format!("t{i}"), 1, None, Rc::new("x"));
            assert!(c.len() <= 2);
        }
        assert!(c.get(0, "t99", 1, 0).is_some());
        assert!(c.get(0, "t98", 1, 0).is_some());
        assert!(c.get(0, "t97", 1, 0).is_none());
    }

    #[test]
    fn large_capacity_is_an_lru_too() {
        // Beyond Envoy's default of 100: every entry stays until the
        // capacity is reached, then the least recently used goes first.
        let n = 10_000;
        let mut c = JwtCache::new(n);
        for i in 0..n {
            c.insert(0, &format!("t{i}"), 1, None, Rc::new(i));
        }
        assert_eq!(c.len(), n);
        for i in (0..n).step_by(997) {
            assert_eq!(c.get(0, &format!("t{i}"), 1, 0).map(|v| *v), Some(i));
        }
        // t0 was just used; t1 is now the least recently used.
        c.insert(0, "new", 1, None, Rc::new(n));
        assert_eq!(c.len(), n);
        assert!(c.get(0, "t1", 1, 0).is_none());
        assert!(c.get(0, "t0", 1, 0).is_some());
        assert!(c.get(0, "new", 1, 0).is_some());
    }

    #[test]
    fn never_past_exp() {
        let mut c = JwtCache::new(4);
        c.insert(0, "a", 1, Some(100), Rc::new(()));
        assert!(c.get(0, "a", 1, 99).is_some());
        assert!(c.get(0, "a", 1, 100).is_none());
        assert_eq!(c.len(), 0, "expired entry dropped");
    }

    #[test]
    fn key_rotation_invalidates() {
        let mut c = JwtCache::new(4);
        c.insert(0, "a", 1, None, Rc::new(()));
        assert!(c.get(0, "a", 2, 0).is_none());
        assert!(c.get(0, "a", 1, 0).is_none(), "dropped on mismatch");
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = JwtCache::new(0);
        c.insert(0, "a", 1, None, Rc::new(()));
        assert!(c.get(0, "a", 1, 0).is_none());
    }

    #[test]
    fn reinsert_replaces() {
        let mut c = JwtCache::new(2);
        c.insert(0, "a", 1, None, Rc::new(1));
        c.insert(0, "a", 2, None, Rc::new(2));
        assert_eq!(c.len(), 1);
        assert_eq!(*c.get(0, "a", 2, 0).unwrap(), 2);
    }
}
