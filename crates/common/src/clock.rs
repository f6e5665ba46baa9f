//! The clock, read in one place.
//!
//! The request -> event function never reads a clock itself: the server reads [`now_ms`] once
//! per request and hands it in, so tests pass any time they like. Background threads that need
//! elapsed time (health timers, back-offs) use a [`MonotonicClock`], which never jumps when
//! the wall clock is stepped.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is set before it).
#[inline]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the clock was made, from the monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    started: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MonotonicClock {
    /// A clock reading 0 now.
    pub fn new() -> Self {
        MonotonicClock {
            started: Instant::now(),
        }
    }

    /// Milliseconds since [`new`](Self::new); saturates below `u64::MAX` (which callers use
    /// as a "never" marker).
    #[inline]
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_is_after_2020() {
        // 2020-01-01T00:00:00Z: a clock reading before it is broken, not "now".
        assert!(now_ms() > 1_577_836_800_000);
    }

    #[test]
    fn monotonic_clock_starts_near_zero_and_grows() {
        let c = MonotonicClock::new();
        let a = c.now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = c.now_ms();
        assert!(a < 5, "{a}");
        assert!(b >= a + 5, "{a} -> {b}");
    }
}
