//! Flow control: Envoy's watermark buffers between the two sides of a
//! stream.
//!
//! Each direction of a stream has a [`Watermark`]: the bytes the chain
//! handed to the slower side (the upstream request body, the response
//! body to the client) that it has not taken yet. Above the high
//! watermark (`per_connection_buffer_limit_bytes`) the faster side stops
//! being read; below the low watermark (half of it) it is read again.
//! Not reading is the back pressure: an HTTP/1.1 socket is not read (TCP
//! fills up and the peer's writes block), an HTTP/2 stream's window is not
//! replenished (the peer runs out of send window), exactly as in Envoy's
//! `readDisable`.

use std::cell::Cell;
use tokio::sync::Notify;

/// Envoy's default `per_connection_buffer_limit_bytes`: 1 MiB.
pub const DEFAULT_BUFFER_LIMIT: u32 = 1024 * 1024;

/// The bytes queued in one direction of a stream.
#[derive(Debug)]
pub struct Watermark {
    bytes: Cell<usize>,
    high: usize,
    low: usize,
    drained: Notify,
}

impl Watermark {
    /// A buffer with high watermark `limit` and low watermark `limit / 2`
    /// (Envoy's `WatermarkBuffer`).
    pub fn new(limit: usize) -> Watermark {
        Watermark {
            bytes: Cell::new(0),
            high: limit,
            low: limit / 2,
            drained: Notify::new(),
        }
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.bytes.get()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.bytes.get() == 0
    }

    /// The producer queued `n` bytes.
    pub fn add(&self, n: usize) {
        self.bytes.set(self.bytes.get() + n);
    }

    /// The consumer took `n` bytes; crossing the low watermark wakes the
    /// producer.
    pub fn sub(&self, n: usize) {
        let before = self.bytes.get();
        let after = before.saturating_sub(n);
        self.bytes.set(after);
        if before > self.low && after <= self.low {
            self.drained.notify_waiters();
        }
    }

    /// Above the high watermark: the producer must stop.
    pub fn above_high(&self) -> bool {
        self.bytes.get() > self.high
    }

    /// Waits until the queue is at or below the low watermark, or `closed`
    /// says the consumer is gone. Returns at once when not above the high
    /// watermark. Returns whether it had to wait (for the
    /// `flow_control_paused_reading` stats).
    pub async fn wait_for_drain(&self, closed: impl Fn() -> bool) -> bool {
        if !self.above_high() {
            return false;
        }
        loop {
            let n = self.drained.notified();
            if self.bytes.get() <= self.low || closed() {
                return true;
            }
            n.await;
        }
    }

    /// Wakes a waiting producer (the consumer went away).
    pub fn close(&self) {
        self.bytes.set(0);
        self.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_and_low_watermarks() {
        let w = Watermark::new(100);
        w.add(100);
        assert!(!w.above_high());
        w.add(1);
        assert!(w.above_high());
        w.sub(50);
        assert!(!w.above_high());
        assert_eq!(w.len(), 51);
        w.sub(60);
        assert!(w.is_empty());
    }

    #[test]
    fn producer_waits_until_the_low_watermark() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let w = std::rc::Rc::new(Watermark::new(100));
            w.add(150);
            let w2 = w.clone();
            let waiter = tokio::task::spawn_local(async move { w2.wait_for_drain(|| false).await });
            tokio::task::yield_now().await;
            w.sub(40); // 110: still above the low watermark
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished());
            w.sub(60); // 50: at the low watermark
            assert!(waiter.await.unwrap());
            assert!(!w.wait_for_drain(|| false).await);
        });
    }
}
