//! Delayed requests waiting for their deadline, and the tick period that
//! wakes the root context in time.
//!
//! A delayed request is paused in `on_http_request_headers` and entered here
//! with its deadline. The root context's timer (`proxy_set_tick_period_milliseconds`,
//! re-armed from "now" each time it is set, as Envoy does) is set to fire at
//! the earliest deadline; `on_tick` takes every request whose deadline has
//! passed and sets the period for the next one, or switches the timer off.
//! So a delay is exact to the millisecond, and an idle filter has no ticks.

/// Delayed requests of one VM: (context id, deadline in ns).
#[derive(Debug, Default)]
pub struct DelayQueue {
    entries: Vec<(u32, u64)>,
    /// When the timer is set to fire next (ns), if it is set.
    armed_at: Option<u64>,
}

/// What to do with the root context's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Leave it as it is.
    Keep,
    /// Set the period to this many milliseconds (0: off).
    Set(u32),
}

fn ms_until(now: u64, deadline: u64) -> u32 {
    let ns = deadline.saturating_sub(now);
    (ns.div_ceil(1_000_000)).clamp(1, u64::from(u32::MAX)) as u32
}

impl DelayQueue {
    /// An empty queue.
    pub fn new() -> Self {
        DelayQueue::default()
    }

    /// Number of waiting requests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `ctx` waits.
    pub fn contains(&self, ctx: u32) -> bool {
        self.entries.iter().any(|(c, _)| *c == ctx)
    }

    /// Adds a request; says how to set the timer.
    pub fn insert(&mut self, ctx: u32, deadline: u64, now: u64) -> Timer {
        self.entries.push((ctx, deadline));
        match self.armed_at {
            Some(at) if at <= deadline => Timer::Keep,
            _ => {
                let ms = ms_until(now, deadline);
                self.armed_at = Some(now + u64::from(ms) * 1_000_000);
                Timer::Set(ms)
            }
        }
    }

    /// Removes a request (reset or finished early); whether it was there.
    /// The timer is left alone: a tick with nothing due only re-arms.
    pub fn remove(&mut self, ctx: u32) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(c, _)| *c != ctx);
        before != self.entries.len()
    }

    /// On a tick: the requests whose deadline has passed (earliest first),
    /// and how to set the timer for the rest.
    pub fn take_due(&mut self, now: u64) -> (Vec<u32>, Timer) {
        let mut due: Vec<(u32, u64)> = Vec::new();
        self.entries.retain(|e| {
            if e.1 <= now {
                due.push(*e);
                false
            } else {
                true
            }
        });
        // Earliest first (insertion sort: few entries, no sort code in the .wasm).
        for i in 1..due.len() {
            let mut j = i;
            while j > 0 && due[j - 1].1 > due[j].1 {
                due.swap(j - 1, j);
                j -= 1;
            }
        }
        let timer = match self.entries.iter().map(|(_, d)| *d).min() {
            None => {
                self.armed_at = None;
                Timer::Set(0)
            }
            Some(next) => {
                let ms = ms_until(now, next);
                self.armed_at = Some(now + u64::from(ms) * 1_000_000);
                Timer::Set(ms)
            }
        };
        (due.into_iter().map(|(c, _)| c).collect(), timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn arms_for_the_earliest_deadline() {
        let mut q = DelayQueue::new();
        assert_eq!(q.insert(1, 2000 * MS, 0), Timer::Set(2000));
        assert_eq!(q.insert(2, 3000 * MS, 100 * MS), Timer::Keep);
        assert_eq!(q.insert(3, 600 * MS, 100 * MS), Timer::Set(500));
        assert_eq!(q.len(), 3);
        let (due, t) = q.take_due(600 * MS);
        assert_eq!(due, vec![3]);
        assert_eq!(t, Timer::Set(1400));
        let (due, t) = q.take_due(2000 * MS);
        assert_eq!(due, vec![1]);
        assert_eq!(t, Timer::Set(1000));
        let (due, t) = q.take_due(3000 * MS);
        assert_eq!(due, vec![2]);
        assert_eq!(t, Timer::Set(0));
        assert!(q.is_empty());
    }

    #[test]
    fn sub_millisecond_remainders_round_up() {
        let mut q = DelayQueue::new();
        assert_eq!(q.insert(1, 1_500_000, 0), Timer::Set(2));
        let (due, _) = q.take_due(1_000_000);
        assert!(due.is_empty());
    }

    #[test]
    fn removed_requests_do_not_fire() {
        let mut q = DelayQueue::new();
        q.insert(1, 10 * MS, 0);
        q.insert(2, 10 * MS, 0);
        assert!(q.remove(1));
        assert!(!q.remove(1));
        let (due, t) = q.take_due(10 * MS);
        assert_eq!(due, vec![2]);
        assert_eq!(t, Timer::Set(0));
        // A tick with nothing due re-arms for what is left.
        q.insert(3, 50 * MS, 10 * MS);
        let (due, t) = q.take_due(20 * MS);
        assert!(due.is_empty());
        assert_eq!(t, Timer::Set(30));
        assert!(q.contains(3));
    }

    #[test]
    fn same_deadline_fires_together_in_order() {
        let mut q = DelayQueue::new();
        q.insert(7, 5 * MS, 0);
        q.insert(4, 3 * MS, 0);
        q.insert(9, 5 * MS, 0);
        let (due, _) = q.take_due(5 * MS);
        assert_eq!(due, vec![4, 7, 9]);
    }
}
