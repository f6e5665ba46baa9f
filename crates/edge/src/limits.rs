//! Replay and flood control: one email's token cannot become a flood of events.
//!
//! Anyone holding one email holds its tokens, and can replay a pixel or a link as fast as the
//! network allows. Every hit still gets its pixel or redirect (the recipient must never see a
//! broken image or a dead link), but past a rate the hit produces no event: it is counted as
//! `rate_limited` instead, so Kafka and, when the broker lags, the spool, are not filled by one
//! token.
//!
//! # Algorithm and memory
//!
//! One GCRA bucket (the "generic cell rate algorithm", equivalent to a token bucket) per
//! (tenant, campaign, message, contact, link, kind): a hit at `t` is allowed when the bucket's
//! theoretical arrival time `tat` satisfies `tat - t <= tolerance`, and then `tat` moves one
//! emission interval on. With `burst` B and `per_minute` R: interval `T = 60 000 / R` ms,
//! tolerance `T * (B - 1)`. The defaults (B = 12, R = 12) let a person open one email a dozen
//! times in a minute, then once every 5 s; a replay of 60 hits in a few seconds yields 12
//! events.
//!
//! Each bucket is one `u64 -> u64` entry (a keyed 64-bit hash of the claims -> `tat` in ms) in
//! one of [`SHARDS`] hash maps, each behind its own `std::sync::Mutex`: about 20-30 bytes per
//! tracked token with the map's overhead (BENCHMARKS.md has the measured figure at 1M tokens).
//!
//! Not `dashmap`: the limiter is shared by the request threads and by background threads that
//! run at `SCHED_IDLE` (the deferred-opens thread checks opens here, the sweeper sweeps), and
//! such a lock must put a waiting request thread to sleep rather than yield
//! ([`openclick_common::shard::lock`] says why). An entry whose `tat` has
//! passed is equivalent to no entry, so a sweeper thread removes them every
//! [`LimitConfig::sweep_every`]. The map is bounded by [`LimitConfig::max_entries`]: when it is
//! full, hits of tokens not tracked yet are allowed untracked (fail open: the limiter exists to
//! stop floods of events, never to lose a person's hits) and counted as `untracked`.
//!
//! A hash collision between two tokens (probability about n / 2^64) would make them share a
//! bucket; the key is a keyed hash with a per-process random seed, and claims come only from
//! tokens signed with our key, so nobody can aim at one.
//!
//! The limiter is state handed to the request -> event function, like the suppression set:
//! [`crate::Pipeline`] asks it, with the request's own clock reading, and stays free of
//! sockets and clocks.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Maps the buckets are spread over (by the key's top bits): two threads rarely want the same
/// one, and a sweep holds one at a time.
const SHARDS: usize = 64;

type Buckets = HashMap<u64, u64, foldhash::fast::RandomState>;

/// One map on a cache line (or two) of its own.
#[repr(align(128))]
struct Shard(Mutex<Buckets>);

/// Rate limit settings.
#[derive(Clone, Debug)]
pub struct LimitConfig {
    /// Hits per token allowed back to back.
    pub burst: u32,
    /// Sustained hits per token per minute after the burst.
    pub per_minute: u32,
    /// Most tokens tracked at once.
    pub max_entries: usize,
    /// How often expired buckets are removed.
    pub sweep_every: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            burst: 12,
            per_minute: 12,
            max_entries: 1_000_000,
            sweep_every: Duration::from_secs(10),
        }
    }
}

/// What the limiter says of one hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: produce the event.
    Allow,
    /// Over the rate: answer, but produce no event.
    Limit,
}

/// The per-token rate limiter. Cheap to share behind an `Arc`.
pub struct ReplayLimiter {
    shards: Box<[Shard]>,
    seed: foldhash::quality::RandomState,
    interval_ms: u64,
    tolerance_ms: u64,
    max_entries: usize,
    entries: AtomicUsize,
    limited: AtomicU64,
    untracked: AtomicU64,
}

impl std::fmt::Debug for ReplayLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayLimiter")
            .field("interval_ms", &self.interval_ms)
            .field("tolerance_ms", &self.tolerance_ms)
            .field("entries", &self.entries.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ReplayLimiter {
    /// A limiter with `config` (burst and rate at least 1).
    pub fn new(config: &LimitConfig) -> ReplayLimiter {
        let interval_ms = (60_000 / u64::from(config.per_minute.max(1))).max(1);
        ReplayLimiter {
            shards: (0..SHARDS)
                .map(|_| Shard(Mutex::new(Buckets::default())))
                .collect(),
            seed: foldhash::quality::RandomState::default(),
            interval_ms,
            tolerance_ms: interval_ms * u64::from(config.burst.max(1) - 1),
            max_entries: config.max_entries,
            entries: AtomicUsize::new(0),
            limited: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        }
    }

    /// The bucket key of a token's claims: a keyed hash, fields separated unambiguously.
    pub fn key(&self, parts: &[&str]) -> u64 {
        let mut h = self.seed.build_hasher();
        for p in parts {
            h.write_usize(p.len());
            h.write(p.as_bytes());
        }
        h.finish()
    }

    /// Shard `i`'s map, locked.
    fn shard(&self, i: usize) -> MutexGuard<'_, Buckets> {
        openclick_common::shard::lock(&self.shards[i].0)
    }

    /// Counts a hit of `key` at `now_ms` and says whether it may produce an event.
    #[inline]
    pub fn check(&self, key: u64, now_ms: i64) -> Verdict {
        let now = u64::try_from(now_ms).unwrap_or(0);
        // The key is a keyed hash: its top bits spread the shards evenly.
        let mut map = self.shard((key >> (64 - SHARDS.trailing_zeros())) as usize);
        match map.entry(key) {
            Entry::Occupied(mut e) => {
                let tat = (*e.get()).max(now);
                if tat - now > self.tolerance_ms {
                    drop(map);
                    self.limited.fetch_add(1, Ordering::Relaxed);
                    Verdict::Limit
                } else {
                    *e.get_mut() = tat + self.interval_ms;
                    Verdict::Allow
                }
            }
            Entry::Vacant(v) => {
                if self.entries.load(Ordering::Relaxed) >= self.max_entries {
                    drop(map);
                    self.untracked.fetch_add(1, Ordering::Relaxed);
                } else {
                    v.insert(now + self.interval_ms);
                    self.entries.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::Allow
            }
        }
    }

    /// Removes buckets that are back to full at `now_ms` (equivalent to absent). Returns how
    /// many were removed.
    pub fn sweep(&self, now_ms: i64) -> usize {
        let now = u64::try_from(now_ms).unwrap_or(0);
        let mut removed = 0usize;
        for i in 0..self.shards.len() {
            let mut map = self.shard(i);
            let before = map.len();
            map.retain(|_, tat| *tat > now);
            let n = before - map.len();
            drop(map);
            self.entries.fetch_sub(n, Ordering::Relaxed);
            removed += n;
        }
        removed
    }

    /// Tokens tracked now.
    pub fn entries(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Starts the sweeper thread (`openclick-limit-sweep`); it stops when the handle drops.
    pub fn start_sweeper(self: &Arc<Self>, every: Duration) -> std::io::Result<Sweeper> {
        let stop = Arc::new(AtomicBool::new(false));
        let (me, s) = (Arc::downgrade(self), stop.clone());
        let thread = std::thread::Builder::new()
            .name("openclick-limit-sweep".into())
            .spawn(move || {
                let tick = Duration::from_millis(100).min(every);
                let mut waited = Duration::ZERO;
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    waited += tick;
                    if waited < every {
                        continue;
                    }
                    waited = Duration::ZERO;
                    match me.upgrade() {
                        Some(l) => {
                            l.sweep(openclick_common::now_ms());
                        }
                        None => return,
                    }
                }
            })?;
        Ok(Sweeper {
            stop,
            thread: Some(thread),
        })
    }

    /// Emits the limiter's series through the `metrics` macros.
    pub fn export_metrics(&self) {
        metrics::gauge!("openclick_rate_limit_tracked_tokens").set(self.entries() as f64);
        metrics::counter!("openclick_rate_limit_untracked_total")
            .absolute(self.untracked.load(Ordering::Relaxed));
        metrics::counter!("openclick_rate_limited_total")
            .absolute(self.limited.load(Ordering::Relaxed));
    }
}

/// The sweeper thread; stops and joins when dropped.
#[derive(Debug)]
pub struct Sweeper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_minute: u32, max: usize) -> ReplayLimiter {
        ReplayLimiter::new(&LimitConfig {
            burst,
            per_minute,
            max_entries: max,
            ..LimitConfig::default()
        })
    }

    #[test]
    fn a_replay_of_60_hits_in_3_seconds_yields_the_burst() {
        let l = limiter(12, 12, 100);
        let k = l.key(&["acme", "spring", "m1", "c1", "", "open"]);
        let allowed = (0..60)
            .filter(|i| l.check(k, 1_000_000 + i * 50) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 12);
    }

    #[test]
    fn a_person_opening_a_dozen_times_in_a_minute_is_never_limited() {
        let l = limiter(12, 12, 100);
        let k = l.key(&["t", "c", "m", "x", "", "open"]);
        // Twelve opens spread over one minute, then one every five seconds for a minute more.
        for i in 0..12 {
            assert_eq!(l.check(k, i * 5_000), Verdict::Allow, "open {i}");
        }
        for i in 0..12 {
            assert_eq!(
                l.check(k, 60_000 + i * 5_000),
                Verdict::Allow,
                "later open {i}"
            );
        }
    }

    #[test]
    fn the_rate_refills_after_the_burst() {
        // Burst 3, one per second (60/min): 3 at once, then exactly one per second.
        let l = limiter(3, 60, 100);
        let k = 7;
        let t0 = 10_000;
        let got: Vec<Verdict> = (0..5).map(|_| l.check(k, t0)).collect();
        assert_eq!(
            got,
            [
                Verdict::Allow,
                Verdict::Allow,
                Verdict::Allow,
                Verdict::Limit,
                Verdict::Limit
            ]
        );
        assert_eq!(l.check(k, t0 + 999), Verdict::Limit);
        assert_eq!(l.check(k, t0 + 1_000), Verdict::Allow);
        assert_eq!(l.check(k, t0 + 1_000), Verdict::Limit);
    }

    #[test]
    fn tokens_are_independent_and_keys_unambiguous() {
        let l = limiter(1, 1, 100);
        assert_ne!(l.key(&["ab", "c"]), l.key(&["a", "bc"]));
        let (a, b) = (l.key(&["a"]), l.key(&["b"]));
        assert_eq!(l.check(a, 0), Verdict::Allow);
        assert_eq!(l.check(a, 0), Verdict::Limit);
        assert_eq!(l.check(b, 0), Verdict::Allow);
    }

    #[test]
    fn full_map_fails_open_and_sweeping_frees_room() {
        let l = limiter(1, 60, 2);
        assert_eq!(l.check(1, 0), Verdict::Allow);
        assert_eq!(l.check(2, 0), Verdict::Allow);
        // Full: a third token is allowed but not tracked, so it is never limited.
        assert_eq!(l.check(3, 0), Verdict::Allow);
        assert_eq!(l.check(3, 0), Verdict::Allow);
        assert_eq!(l.entries(), 2);
        assert_eq!(l.untracked.load(Ordering::Relaxed), 2);
        // One second on, both buckets are full again: swept.
        assert_eq!(l.sweep(999), 0);
        assert_eq!(l.sweep(1_000), 2);
        assert_eq!(l.entries(), 0);
        assert_eq!(l.check(3, 1_000), Verdict::Allow);
        assert_eq!(l.check(3, 1_000), Verdict::Limit);
    }
}
