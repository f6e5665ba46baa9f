//! Cross-cutting helpers shared by every openclick crate, written once.
//!
//! - [`clock`]: wall-clock milliseconds since the Unix epoch (what events, suppression changes
//!   and spool records carry) and a monotonic millisecond clock for deadlines and health
//!   timers.
//! - [`ids`]: the one rule for tenant, campaign and contact ids (so every id that can be
//!   tracked can be opted out).
//! - [`log_limit`]: at most one log line per interval per call site, counting what it held
//!   back, so an outage or a flood cannot turn the log into a second flood.
//! - [`shard`]: a stable number per thread, to pick its buffer in a sharded array (the sink's
//!   hand-off, the edge's deferred opens and counters), and `shard::lock`, the lock rule for
//!   state shared with `SCHED_IDLE` background threads.
//!
//! Nothing here allocates or does I/O; `shard::lock` waits only for another thread's short
//! critical section. Everything is safe to call from the request hot path.

pub mod clock;
pub mod ids;
pub mod log_limit;
pub mod shard;

pub use clock::{now_ms, MonotonicClock};
pub use log_limit::LogLimiter;
