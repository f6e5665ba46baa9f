//! At most one log line per interval, and a count of the lines held back.
//!
//! An outage produces one failure per event: tens of thousands a second. Logging each would
//! bury the log and cost more than the failure. Each call site that can fire per event keeps a
//! [`LogLimiter`]; the counter metric carries the rate, the log line carries the story (and how
//! many lines it stands for).
//!
//! ```
//! use openclick_common::LogLimiter;
//! use std::time::Duration;
//!
//! static REFUSED: LogLimiter = LogLimiter::new(Duration::from_secs(1));
//! if let Some(suppressed) = REFUSED.allow() {
//!     eprintln!("sink refused an event ({suppressed} similar lines suppressed)");
//! }
//! ```

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::now_ms;

/// Lets through at most one log line per interval. Lock-free; usable in a `static`.
#[derive(Debug)]
pub struct LogLimiter {
    interval_ms: i64,
    last_ms: AtomicI64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter letting one line through per `interval` (the first call always passes).
    pub const fn new(interval: Duration) -> LogLimiter {
        let ms = interval.as_millis();
        LogLimiter {
            interval_ms: if ms > i64::MAX as u128 {
                i64::MAX
            } else {
                ms as i64
            },
            last_ms: AtomicI64::new(i64::MIN),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` if a line may be logged now, else `None`
    /// (and the held-back count grows).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_ms())
    }

    /// [`allow`](Self::allow) at a given time, in milliseconds on any clock that only moves
    /// forward for this limiter.
    pub fn allow_at(&self, now_ms: i64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != i64::MIN && now_ms.saturating_sub(last) < self.interval_ms {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            // Another thread logged this very moment.
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_held_back_count() {
        let l = LogLimiter::new(Duration::from_millis(1000));
        assert_eq!(l.allow_at(10_000), Some(0));
        assert_eq!(l.allow_at(10_001), None);
        assert_eq!(l.allow_at(10_999), None);
        assert_eq!(l.allow_at(11_000), Some(2));
        assert_eq!(l.allow_at(11_500), None);
        assert_eq!(l.allow_at(12_000), Some(1));
    }

    #[test]
    fn first_call_passes_whatever_the_clock() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow_at(0), Some(0));
        assert_eq!(l.allow_at(1), None);
    }

    #[test]
    fn concurrent_callers_let_one_line_through() {
        let l = std::sync::Arc::new(LogLimiter::new(Duration::from_secs(3600)));
        let passed: u64 = (0..8)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..1000).filter(|_| l.allow_at(5).is_some()).count())
            })
            .map(|h| h.join().unwrap() as u64)
            .sum();
        assert_eq!(passed, 1);
    }
}
