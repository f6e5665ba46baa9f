//! A small, stable number per thread, for picking a per-thread buffer out of a sharded array.
//!
//! The first call on a thread takes the next number of a process-wide counter; later calls on
//! that thread return the same number. Callers take it modulo their shard count, so threads
//! spread over the shards in the order they first ask, and a thread always lands on the same
//! shard (which keeps its records in order within that shard).
//!
//! [`lock`] takes a shard shared by request threads and `SCHED_IDLE` background threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// This thread's number (see the module docs).
pub fn thread_index() -> usize {
    INDEX.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed);
            s.set(i);
        }
        i
    })
}

/// Locks a `std::sync::Mutex` shared by request threads and background threads that run at
/// `SCHED_IDLE` (`openclick serve --background-policy idle`), taking the data as it is if a
/// holder panicked (every critical section here leaves it consistent).
///
/// Why `std` and not `parking_lot` for such locks: when a request thread preempts a background
/// thread that holds the lock and then needs it, it must sleep so the holder can finish on the
/// core it leaves. `std`'s futex lock spins briefly, then sleeps in `futex_wait`, and is woken
/// by the unlock (a few microseconds). `parking_lot` (and `dashmap`) first call `sched_yield`
/// up to seven times, and a yield does not reliably run a `SCHED_IDLE` holder: measured, a
/// request thread stalled in such yields for up to 1.3 ms (BENCHMARKS.md, session 14).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_on_a_thread_distinct_across_threads() {
        let mine = thread_index();
        assert_eq!(thread_index(), mine);
        let others: Vec<usize> = (0..4)
            .map(|_| std::thread::spawn(thread_index).join().unwrap())
            .collect();
        let mut all = others.clone();
        all.push(mine);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5, "{others:?} and {mine}");
    }
}
