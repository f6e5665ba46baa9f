//! The dense table behind the suppression set: sharded open addressing over `AtomicU64` slots.
//!
//! Every slot is one `u64`: `0` is empty, [`TOMB`] marks a deleted entry, anything else is an
//! entry whose top 61 bits are the keyed hash of the key and whose low 3 bits are the reason code
//! (1..=6). So an entry costs 8 bytes of slot; at the load factors kept here (0.58 to 0.875 of
//! used slots, growing by 1.5x per shard) that is 9.1 to 13.8 bytes per entry.
//!
//! Readers are lock-free: they load the shard's current table through an `ArcSwap` and probe it
//! with `Acquire` loads; they never wait for a writer. Writers are serialized per shard by a
//! short, non-async mutex (never held across an `.await`: nothing here is async). In place they
//! only ever store whole slots (an insert into an empty or tombstoned slot, a reason update, a
//! tombstone for a removal), so a concurrent reader sees either the old or the new value of a
//! slot. Entries never move inside a live table: when a shard needs room (or is full of
//! tombstones) the writer builds a fresh table and swaps it in; readers still holding the old one
//! finish on a consistent, merely slightly stale, snapshot.
//!
//! Slot positions use Lemire's multiply-shift reduction, so capacities need not be powers of two
//! and linear probing walks forward with wrap-around.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

/// A deleted slot: probing continues past it, inserts may reuse it.
const TOMB: u64 = 7;
/// The low bits hold the value (1..=6); the rest is the key.
const VALUE_BITS: u64 = 7;
/// Shards: `2^SHARD_BITS`. 64 keeps each shard's rebuild small (1/64 of the set).
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
const MIN_CAPACITY: usize = 16;
/// Grow or rebuild when used slots (live + tombstones) would exceed 7/8 of the capacity.
const MAX_LOAD_NUM: usize = 7;
const MAX_LOAD_DEN: usize = 8;
/// After a rebuild, live entries fill about 7/12 of the table (0.875 / 1.5).
const REBUILD_LOAD: f64 = 0.875 / 1.5;

struct Table {
    slots: Box<[AtomicU64]>,
}

impl Table {
    fn with_capacity(cap: usize) -> Table {
        let cap = cap.max(MIN_CAPACITY);
        Table {
            slots: (0..cap).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        // The shard took the top bits; spread the rest over the capacity.
        (((hash << SHARD_BITS) as u128 * self.slots.len() as u128) >> 64) as usize
    }
}

struct Counts {
    /// Slots holding an entry or a tombstone.
    used: usize,
}

struct Shard {
    table: ArcSwap<Table>,
    live: AtomicUsize,
    writer: Mutex<Counts>,
}

/// A concurrent set of 61-bit keys, each with a small value (1..=6).
pub(crate) struct DenseTable {
    shards: Box<[Shard]>,
}

/// Turns a 64-bit hash into the key bits stored in a slot (never 0, so never empty or a tomb).
#[inline]
pub(crate) fn key_bits(hash: u64) -> u64 {
    let k = hash & !VALUE_BITS;
    if k == 0 {
        1 << 3
    } else {
        k
    }
}

impl DenseTable {
    pub(crate) fn new() -> DenseTable {
        DenseTable {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    table: ArcSwap::from_pointee(Table::with_capacity(MIN_CAPACITY)),
                    live: AtomicUsize::new(0),
                    writer: Mutex::new(Counts { used: 0 }),
                })
                .collect(),
        }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[(hash >> (64 - SHARD_BITS)) as usize]
    }

    /// The value stored for `hash`, if any. Lock-free.
    #[inline]
    pub(crate) fn get(&self, hash: u64) -> Option<u8> {
        let want = key_bits(hash);
        let table = self.shard(hash).table.load();
        let slots = &table.slots;
        let mut i = table.start(want);
        loop {
            let v = slots[i].load(Ordering::Acquire);
            if v == 0 {
                return None;
            }
            if v & !VALUE_BITS == want {
                return Some((v & VALUE_BITS) as u8);
            }
            i += 1;
            if i == slots.len() {
                i = 0;
            }
        }
    }

    /// Stores `value` (1..=6) for `hash`. Returns whether the key was new.
    pub(crate) fn insert(&self, hash: u64, value: u8) -> bool {
        debug_assert!((1..=6).contains(&value));
        let want = key_bits(hash);
        let entry = want | u64::from(value);
        let shard = self.shard(hash);
        let mut counts = shard.writer.lock();
        let table = shard.table.load_full();
        let slots = &table.slots;
        let mut i = table.start(want);
        let mut tomb = None;
        loop {
            let v = slots[i].load(Ordering::Relaxed);
            if v == 0 {
                break;
            }
            if v == TOMB {
                tomb.get_or_insert(i);
            } else if v & !VALUE_BITS == want {
                if v != entry {
                    slots[i].store(entry, Ordering::Release);
                }
                return false;
            }
            i += 1;
            if i == slots.len() {
                i = 0;
            }
        }
        let live = shard.live.load(Ordering::Relaxed);
        if let Some(t) = tomb {
            // Reuse the first tombstone on the probe path: used slots do not change.
            slots[t].store(entry, Ordering::Release);
        } else if (counts.used + 1) * MAX_LOAD_DEN > slots.len() * MAX_LOAD_NUM {
            let fresh = rebuild(&table, live + 1);
            put_fresh(&fresh, entry);
            counts.used = live + 1;
            shard.table.store(Arc::new(fresh));
        } else {
            slots[i].store(entry, Ordering::Release);
            counts.used += 1;
        }
        shard.live.store(live + 1, Ordering::Relaxed);
        true
    }

    /// Removes `hash`. Returns whether it was present.
    pub(crate) fn remove(&self, hash: u64) -> bool {
        let want = key_bits(hash);
        let shard = self.shard(hash);
        let mut counts = shard.writer.lock();
        let table = shard.table.load_full();
        let slots = &table.slots;
        let mut i = table.start(want);
        loop {
            let v = slots[i].load(Ordering::Relaxed);
            if v == 0 {
                return false;
            }
            if v & !VALUE_BITS == want {
                break;
            }
            i += 1;
            if i == slots.len() {
                i = 0;
            }
        }
        let next = if i + 1 == slots.len() { 0 } else { i + 1 };
        let live = shard.live.load(Ordering::Relaxed) - 1;
        if slots[next].load(Ordering::Relaxed) == 0 {
            // End of a probe chain: the slot can become empty again (no chain runs through it).
            slots[i].store(0, Ordering::Release);
            counts.used -= 1;
        } else {
            slots[i].store(TOMB, Ordering::Release);
        }
        shard.live.store(live, Ordering::Relaxed);
        // Many tombstones slow misses down: rebuild a shard once they outnumber live entries
        // and fill a quarter of it.
        let tombs = counts.used - live;
        if tombs > live && tombs * 4 > slots.len() {
            let fresh = rebuild(&table, live);
            counts.used = live;
            shard.table.store(Arc::new(fresh));
        }
        true
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.live.load(Ordering::Relaxed))
            .sum()
    }

    /// Slots allocated, all shards (8 bytes each).
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.table.load().slots.len()).sum()
    }

    /// Grows every shard so that `additional` more entries (spread evenly) need no rebuild.
    pub(crate) fn reserve(&self, additional: usize) {
        let per_shard = additional.div_ceil(SHARDS);
        for shard in self.shards.iter() {
            let mut counts = shard.writer.lock();
            let table = shard.table.load_full();
            let live = shard.live.load(Ordering::Relaxed);
            let need = (live + per_shard) * MAX_LOAD_DEN / MAX_LOAD_NUM + 1;
            if need > table.slots.len() {
                let fresh = Table::with_capacity(need);
                copy_live(&table, &fresh);
                counts.used = live;
                shard.table.store(Arc::new(fresh));
            }
        }
    }
}

/// A fresh table sized for `live` entries, holding every live entry of `old`.
fn rebuild(old: &Table, live: usize) -> Table {
    let fresh = Table::with_capacity((live as f64 / REBUILD_LOAD).ceil() as usize + 1);
    copy_live(old, &fresh);
    fresh
}

fn copy_live(old: &Table, fresh: &Table) {
    for s in old.slots.iter() {
        let v = s.load(Ordering::Relaxed);
        if v != 0 && v != TOMB {
            put_fresh(fresh, v);
        }
    }
}

/// Inserts into a table no reader can see yet (no duplicates, no tombstones).
/// Positions derive from the key bits only, so a rebuild can place an entry from its slot alone.
fn put_fresh(t: &Table, entry: u64) {
    let mut i = t.start(entry & !VALUE_BITS);
    loop {
        if t.slots[i].load(Ordering::Relaxed) == 0 {
            t.slots[i].store(entry, Ordering::Relaxed);
            return;
        }
        i += 1;
        if i == t.slots.len() {
            i = 0;
        }
    }
}
