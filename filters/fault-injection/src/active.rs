//! The number of active faults, shared by every worker.
//!
//! Envoy keeps `fault.active_faults` as a process-wide gauge and compares it
//! with `max_active_faults` before injecting. Wasm VMs (one per worker) share
//! nothing but the host's shared data, so the count lives there as a decimal
//! string, changed with compare-and-swap: read the value and its CAS token,
//! write the new value with that token, and start again when another worker
//! changed it in between (`CAS_MISMATCH`). Unlike Envoy's fuzzy check this
//! limit is exact.

/// Shared-data key of the count (suffixed with the plugin name).
pub const KEY_PREFIX: &str = "wasmesh.fault_injection.active_faults";

/// Attempts before giving up on a contended counter.
pub const MAX_ATTEMPTS: usize = 64;

/// Outcome of a CAS write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Written.
    Ok,
    /// Someone else wrote first.
    CasMismatch,
    /// The host refused.
    Failed,
}

/// Where the count is kept (the host's shared data, or a test double).
pub trait SharedCounter {
    /// The stored bytes and their CAS token; `None` if the key is missing.
    fn read(&mut self) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if the CAS token still matches (`0`: unconditionally).
    fn write(&mut self, value: &[u8], cas: u32) -> Write;
}

/// Why an increment did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCounted {
    /// The limit is reached: do not inject (count `faults_overflow`).
    Overflow,
    /// The host kept failing or the counter stayed contended.
    Unavailable,
}

fn parse(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Adds one active fault unless `max` are already active; returns the new
/// count.
pub fn try_increment(store: &mut impl SharedCounter, max: Option<u32>) -> Result<u64, NotCounted> {
    for _ in 0..MAX_ATTEMPTS {
        let (current, cas) = store.read().map_or((0, 0), |(v, cas)| (parse(&v), cas));
        if max.is_some_and(|m| current >= u64::from(m)) {
            return Err(NotCounted::Overflow);
        }
        let next = current + 1;
        match store.write(next.to_string().as_bytes(), cas) {
            Write::Ok => return Ok(next),
            Write::CasMismatch => continue,
            Write::Failed => return Err(NotCounted::Unavailable),
        }
    }
    Err(NotCounted::Unavailable)
}

/// Removes one active fault (never below zero); returns the new count.
pub fn decrement(store: &mut impl SharedCounter) -> Option<u64> {
    for _ in 0..MAX_ATTEMPTS {
        let (current, cas) = store.read().map_or((0, 0), |(v, cas)| (parse(&v), cas));
        let next = current.saturating_sub(1);
        match store.write(next.to_string().as_bytes(), cas) {
            Write::Ok => return Some(next),
            Write::CasMismatch => continue,
            Write::Failed => return None,
        }
    }
    None
}

/// Creates the key with `0` if it is missing (configure time), so that the
/// first increments are CAS-protected.
pub fn initialise(store: &mut impl SharedCounter) {
    if store.read().is_none() {
        let _ = store.write(b"0", 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shared data as the host keeps it, with a hook that lets "another
    /// worker" write between a read and a write.
    struct Fake {
        value: Option<Vec<u8>>,
        cas: u32,
        interfere: usize,
        writes: usize,
    }

    impl SharedCounter for Fake {
        fn read(&mut self) -> Option<(Vec<u8>, u32)> {
            let v = self.value.clone().map(|v| (v, self.cas));
            if self.interfere > 0 {
                self.interfere -= 1;
                let other = parse(self.value.as_deref().unwrap_or(b"0")) + 1;
                self.value = Some(other.to_string().into_bytes());
                self.cas += 1;
            }
            v
        }
        fn write(&mut self, value: &[u8], cas: u32) -> Write {
            if cas != 0 && cas != self.cas {
                return Write::CasMismatch;
            }
            self.writes += 1;
            self.value = Some(value.to_vec());
            self.cas += 1;
            Write::Ok
        }
    }

    fn fake() -> Fake {
        let mut f = Fake {
            value: None,
            cas: 0,
            interfere: 0,
            writes: 0,
        };
        initialise(&mut f);
        f
    }

    #[test]
    fn counts_up_to_the_limit() {
        let mut f = fake();
        assert_eq!(try_increment(&mut f, Some(2)), Ok(1));
        assert_eq!(try_increment(&mut f, Some(2)), Ok(2));
        assert_eq!(try_increment(&mut f, Some(2)), Err(NotCounted::Overflow));
        assert_eq!(decrement(&mut f), Some(1));
        assert_eq!(try_increment(&mut f, Some(2)), Ok(2));
        assert_eq!(try_increment(&mut f, None), Ok(3));
        assert_eq!(try_increment(&mut f, Some(0)), Err(NotCounted::Overflow));
    }

    #[test]
    fn retries_on_cas_mismatch_without_losing_updates() {
        let mut f = fake();
        f.interfere = 3; // three other workers increment meanwhile
        assert_eq!(try_increment(&mut f, None), Ok(4));
        f.interfere = 2;
        assert_eq!(decrement(&mut f), Some(5));
        // The limit is checked against the value seen after the others wrote.
        f.interfere = 1;
        assert_eq!(try_increment(&mut f, Some(6)), Err(NotCounted::Overflow));
    }

    #[test]
    fn never_below_zero() {
        let mut f = fake();
        assert_eq!(decrement(&mut f), Some(0));
        f.value = Some(b"garbage".to_vec());
        assert_eq!(try_increment(&mut f, None), Ok(1));
    }

    #[test]
    fn gives_up_on_endless_contention() {
        let mut f = fake();
        f.interfere = usize::MAX;
        assert_eq!(try_increment(&mut f, None), Err(NotCounted::Unavailable));
    }
}
