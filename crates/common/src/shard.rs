//! A small, stable number per thread, for picking a per-thread buffer out of a sharded array.
//!
//! The first call on a thread takes the next number of a process-wide counter; later calls on
//! that thread return the same number. Callers take it modulo their shard count, so threads
//! spread over the shards in the order they first ask, and a thread always lands on the same
//! shard (which keeps its records in order within that shard).

use std::sync::atomic::{AtomicUsize, Ordering};

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
