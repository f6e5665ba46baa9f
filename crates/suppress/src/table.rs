//! The dense table behind the suppression set: sharded open addressing over `AtomicU64` slots,
//! probed one cache line at a time.
//!
//! Every occupied slot is one `u64` whose top 61 bits are the keyed hash of the key and whose low
//! 3 bits are the reason code (1..=6). Load factors are kept between 0.58 and 0.875 of used slots,
//! growing by 1.5x per shard.
//!
//! Slots come in groups of eight, one 64-byte cache line each (`Group`), and every group has a
//! tag word beside it in a separate, 8x smaller array: one byte per slot, `0` for empty, `1` for
//! a tombstone, and `0x80` plus 7 more bits of the hash for an entry. A key hashes to a group; a
//! probe reads the group's tag word first, compares all eight tags at once (SWAR), and touches
//! the slots only for a matching tag (a 1-in-128 false match per occupied slot, settled by the
//! full 61-bit compare). A lookup of an absent key, by far the common case at the edge, almost
//! always ends on the tag word alone; the tag array (1 byte per slot, about 14 MB at 10 million
//! entries) is small enough to mostly stay in cache, while the slots (about 110 MB) are not, so
//! a present key costs one DRAM miss. The next group is probed only when a group has no empty
//! slot. Tags cost 1 more byte per slot: 9 bytes per slot, 10.3 to 15.4 per entry.
//!
//! Readers are lock-free: they get the shard's current table from their thread's cached
//! snapshot (`ReaderCache`: one plain load to check that the shard's `ArcSwap` still points at
//! it, a full `ArcSwap` load only after a swap) and probe it with `Acquire` loads; they never
//! wait for a writer. Writers are serialized per shard by a short, non-async mutex (never held
//! across an `.await`: nothing here is async). In place they only ever store whole slots and
//! whole tag words (an insert into an empty or tombstoned slot, a reason update, a tombstone or
//! an empty tag for a removal), so a concurrent reader sees either the old or the new value of
//! each. Entries never move inside a live table: when a shard needs room (or is full of
//! tombstones) the writer builds a fresh table and swaps it in; readers still holding the old one
//! finish on a consistent, merely slightly stale, snapshot.
//!
//! Group positions use Lemire's multiply-shift reduction, so capacities need not be powers of
//! two, and probing walks forward a group at a time with wrap-around. A removal may empty its
//! slot outright only while its group still has another empty slot: such a group has never been
//! full since the table was built, so no probe chain runs through it. Otherwise it leaves a
//! tombstone, which a later insert on the same chain reuses. Writers store a slot before its tag
//! (`Release`), readers load the tag before the slot (`Acquire`), so a matching tag never leads
//! to a slot older than it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::cache::Cache;
use arc_swap::ArcSwap;
use parking_lot::Mutex;

/// The low bits of a slot hold the value (1..=6); the rest is the key.
const VALUE_BITS: u64 = 7;
/// Tag bytes: empty, tombstone; an entry's tag is `0x80 | 7 hash bits`.
const TAG_EMPTY: u8 = 0;
const TAG_TOMB: u8 = 1;
const LSB: u64 = 0x0101_0101_0101_0101;
const MSB: u64 = 0x8080_8080_8080_8080;
/// Shards: `2^SHARD_BITS`. 64 keeps each shard's rebuild small (1/64 of the set).
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
/// Slots per group: one 64-byte cache line, and one byte each in the group's tag word.
const GROUP: usize = 8;
const MIN_GROUPS: usize = 2;
/// Shards bigger than this many groups (512 bytes) shrink when under 1/8 full.
const SHRINK_ABOVE_GROUPS: usize = 8;
/// Grow or rebuild when used slots (live + tombstones) would exceed 7/8 of the capacity.
const MAX_LOAD_NUM: usize = 7;
const MAX_LOAD_DEN: usize = 8;
/// After a rebuild, live entries fill about 7/12 of the table (0.875 / 1.5).
const REBUILD_LOAD: f64 = 0.875 / 1.5;

/// Eight slots on one cache line.
#[repr(C, align(64))]
struct Group([AtomicU64; GROUP]);

/// The tag byte of a key (never empty or a tombstone).
#[inline]
fn tag_of(key: u64) -> u8 {
    0x80 | ((key >> 3) & 0x7f) as u8
}

/// Bytes of `word` equal to `byte`: a mask with the high bit of each such byte set, plus
/// possibly false positives above a true match (callers verify each candidate). Nonzero exactly
/// when some byte matches.
#[inline]
fn match_byte(word: u64, byte: u8) -> u64 {
    let x = word ^ (LSB * u64::from(byte));
    x.wrapping_sub(LSB) & !x & MSB
}

/// The exact index of the first byte of `word` equal to `byte`.
fn first_byte(word: u64, byte: u8) -> Option<usize> {
    word.to_le_bytes().iter().position(|&b| b == byte)
}

/// What a probe of one group found.
enum Probe {
    /// The key is in this slot (index within the group), with this value.
    Found(usize, u64),
    /// Not in this group, and the group has an empty slot: the key is not in the table.
    Absent,
    /// Not in this group, which is full: go on to the next one.
    Next,
}

struct Table {
    groups: Box<[Group]>,
    tags: Box<[AtomicU64]>,
}

impl Table {
    /// A table with room for at least `slots` slots.
    fn with_slots(slots: usize) -> Table {
        let groups = slots.div_ceil(GROUP).max(MIN_GROUPS);
        Table {
            groups: (0..groups)
                .map(|_| Group(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            tags: (0..groups).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slots(&self) -> usize {
        self.groups.len() * GROUP
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        // The shard took the top bits; spread the rest over the groups.
        (((key << SHARD_BITS) as u128 * self.groups.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, g: usize) -> usize {
        if g + 1 == self.groups.len() {
            0
        } else {
            g + 1
        }
    }

    /// Looks for `key` (with tag `tag`) in group `g`.
    #[inline]
    fn probe(&self, g: usize, key: u64, tag: u8, order: Ordering) -> Probe {
        let tags = self.tags[g].load(order);
        let mut m = match_byte(tags, tag);
        while m != 0 {
            let j = (m.trailing_zeros() / 8) as usize;
            let v = self.groups[g].0[j].load(order);
            if v & !VALUE_BITS == key {
                return Probe::Found(j, v);
            }
            m &= m - 1;
        }
        if match_byte(tags, TAG_EMPTY) != 0 {
            Probe::Absent
        } else {
            Probe::Next
        }
    }

    /// Sets the tag byte of slot `j` of group `g` (writers only, serialized by the shard lock).
    fn set_tag(&self, g: usize, j: usize, tag: u8) {
        let shift = j * 8;
        let w = self.tags[g].load(Ordering::Relaxed);
        let w = (w & !(0xff << shift)) | (u64::from(tag) << shift);
        self.tags[g].store(w, Ordering::Release);
    }

    /// Writes an entry into slot `j` of group `g`: the slot first, then its tag.
    fn put(&self, g: usize, j: usize, entry: u64) {
        self.groups[g].0[j].store(entry, Ordering::Release);
        self.set_tag(g, j, tag_of(entry & !VALUE_BITS));
    }
}

struct Counts {
    /// Slots holding an entry or a tombstone.
    used: usize,
}

struct Shard {
    /// Shared with the reader caches of the threads that looked this shard up.
    table: Arc<ArcSwap<Table>>,
    live: AtomicUsize,
    writer: Mutex<Counts>,
}

/// A concurrent set of 61-bit keys, each with a small value (1..=6).
pub(crate) struct DenseTable {
    /// Tells this table's entries in the per-thread reader caches apart from other tables'.
    id: u64,
    shards: Box<[Shard]>,
}

/// One thread's view of one table's shards: each `Cache` holds the shard table it last saw and
/// revalidates it with a plain load of the shard's pointer (no atomic read-modify-write, no
/// fence), so back-to-back lookups do not serialize on a barrier and their memory accesses can
/// overlap. The price: a thread keeps the last version of a shard it looked up alive until its
/// next lookup in that shard (at most one stale version per shard per reading thread, and only
/// after the shard grew or was rebuilt).
struct ReaderCache {
    table: u64,
    shards: Box<[ShardCache]>,
}

/// A thread's cached view of one shard's current table.
type ShardCache = Cache<Arc<ArcSwap<Table>>, Arc<Table>>;

/// Tables a thread keeps reader caches for (most recently used first).
const CACHED_TABLES: usize = 4;

thread_local! {
    static READERS: RefCell<Vec<ReaderCache>> = const { RefCell::new(Vec::new()) };
}

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(0);

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
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            shards: (0..SHARDS)
                .map(|_| Shard {
                    table: Arc::new(ArcSwap::from_pointee(Table::with_slots(0))),
                    live: AtomicUsize::new(0),
                    writer: Mutex::new(Counts { used: 0 }),
                })
                .collect(),
        }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        &self.shards[shard_index(hash)]
    }

    /// The value stored for `hash`, if any. Lock-free, and fence-free on the thread's cached
    /// view of the shard (see `ReaderCache`).
    #[inline]
    pub(crate) fn get(&self, hash: u64) -> Option<u8> {
        let key = key_bits(hash);
        let shard = shard_index(hash);
        let cached = READERS.try_with(|readers| {
            let mut readers = readers.try_borrow_mut().ok()?;
            if readers.first().map(|r| r.table) != Some(self.id) {
                self.promote(&mut readers);
            }
            Some(lookup(readers[0].shards[shard].load(), key))
        });
        match cached {
            Ok(Some(found)) => found,
            // Thread-local storage being torn down: take the (fenced) shared path.
            _ => lookup(&self.shards[shard].table.load(), key),
        }
    }

    /// Moves (or creates) this table's reader cache to the front of the thread's list.
    #[cold]
    fn promote(&self, readers: &mut Vec<ReaderCache>) {
        let cache = match readers.iter().position(|r| r.table == self.id) {
            Some(i) => readers.remove(i),
            None => {
                readers.truncate(CACHED_TABLES - 1);
                ReaderCache {
                    table: self.id,
                    shards: self
                        .shards
                        .iter()
                        .map(|s| Cache::new(Arc::clone(&s.table)))
                        .collect(),
                }
            }
        };
        readers.insert(0, cache);
    }

    /// Stores `value` (1..=6) for `hash`. Returns whether the key was new.
    pub(crate) fn insert(&self, hash: u64, value: u8) -> bool {
        debug_assert!((1..=6).contains(&value));
        let key = key_bits(hash);
        let tag = tag_of(key);
        let entry = key | u64::from(value);
        let shard = self.shard(hash);
        let mut counts = shard.writer.lock();
        let table = shard.table.load_full();
        let mut g = table.start(key);
        // The first tombstone on the probe path, reused if the key is not found.
        let mut tomb = None;
        let empty = loop {
            match table.probe(g, key, tag, Ordering::Relaxed) {
                Probe::Found(j, v) => {
                    if v != entry {
                        table.groups[g].0[j].store(entry, Ordering::Release);
                    }
                    return false;
                }
                probe => {
                    let tags = table.tags[g].load(Ordering::Relaxed);
                    if tomb.is_none() {
                        tomb = first_byte(tags, TAG_TOMB).map(|j| (g, j));
                    }
                    if let Probe::Absent = probe {
                        let j = first_byte(tags, TAG_EMPTY)
                            .expect("an absent probe ends on a group with an empty slot");
                        break (g, j);
                    }
                    g = table.next(g);
                }
            }
        };
        let live = shard.live.load(Ordering::Relaxed);
        if let Some((g, j)) = tomb {
            // Reuse the first tombstone on the probe path: used slots do not change.
            table.put(g, j, entry);
        } else if (counts.used + 1) * MAX_LOAD_DEN > table.slots() * MAX_LOAD_NUM {
            let fresh = rebuild(&table, live + 1);
            put_fresh(&fresh, entry);
            counts.used = live + 1;
            shard.table.store(Arc::new(fresh));
        } else {
            let (g, j) = empty;
            table.put(g, j, entry);
            counts.used += 1;
        }
        shard.live.store(live + 1, Ordering::Relaxed);
        true
    }

    /// Removes `hash`. Returns whether it was present.
    pub(crate) fn remove(&self, hash: u64) -> bool {
        let key = key_bits(hash);
        let tag = tag_of(key);
        let shard = self.shard(hash);
        let mut counts = shard.writer.lock();
        let table = shard.table.load_full();
        let mut g = table.start(key);
        let j = loop {
            match table.probe(g, key, tag, Ordering::Relaxed) {
                Probe::Found(j, _) => break j,
                Probe::Absent => return false,
                Probe::Next => g = table.next(g),
            }
        };
        let live = shard.live.load(Ordering::Relaxed) - 1;
        if match_byte(table.tags[g].load(Ordering::Relaxed), TAG_EMPTY) != 0 {
            // This group was never full since the table was built: no probe chain runs
            // through it, so the slot can become empty again.
            table.set_tag(g, j, TAG_EMPTY);
            counts.used -= 1;
        } else {
            table.set_tag(g, j, TAG_TOMB);
        }
        table.groups[g].0[j].store(0, Ordering::Release);
        shard.live.store(live, Ordering::Relaxed);
        // Many tombstones slow misses down: rebuild a shard once they outnumber live entries
        // and fill a quarter of it. And give memory back once a big shard is mostly empty.
        let tombs = counts.used - live;
        let sparse = live * 8 < table.slots() && table.groups.len() > SHRINK_ABOVE_GROUPS;
        if (tombs > live && tombs * 4 > table.slots()) || sparse {
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
        self.shards.iter().map(|s| s.table.load().slots()).sum()
    }

    /// Grows every shard so that `additional` more entries (spread evenly) need no rebuild.
    pub(crate) fn reserve(&self, additional: usize) {
        let per_shard = additional.div_ceil(SHARDS);
        for shard in self.shards.iter() {
            let mut counts = shard.writer.lock();
            let table = shard.table.load_full();
            let live = shard.live.load(Ordering::Relaxed);
            let need = (live + per_shard) * MAX_LOAD_DEN / MAX_LOAD_NUM + 1;
            if need > table.slots() {
                let fresh = Table::with_slots(need);
                copy_live(&table, &fresh);
                counts.used = live;
                shard.table.store(Arc::new(fresh));
            }
        }
    }
}

#[inline]
fn shard_index(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

/// Probes `table` for `key`.
#[inline]
fn lookup(table: &Table, key: u64) -> Option<u8> {
    let tag = tag_of(key);
    let mut g = table.start(key);
    prefetch(&table.groups[g]);
    loop {
        match table.probe(g, key, tag, Ordering::Acquire) {
            Probe::Found(_, v) => return Some((v & VALUE_BITS) as u8),
            Probe::Absent => return None,
            Probe::Next => g = table.next(g),
        }
    }
}

/// Starts loading a group's cache line while its tag word is read, so that a present key costs
/// one memory round trip, not two in a row.
#[inline(always)]
fn prefetch(group: &Group) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: `_mm_prefetch` is only a hint: it never faults and has no effect on memory
    // contents; the pointer comes from a live reference. SSE is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(group).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = group;
}

/// A fresh table sized for `live` entries, holding every live entry of `old`.
fn rebuild(old: &Table, live: usize) -> Table {
    let fresh = Table::with_slots((live as f64 / REBUILD_LOAD).ceil() as usize + 1);
    copy_live(old, &fresh);
    fresh
}

fn copy_live(old: &Table, fresh: &Table) {
    for (g, group) in old.groups.iter().enumerate() {
        let tags = old.tags[g].load(Ordering::Relaxed);
        for (j, s) in group.0.iter().enumerate() {
            if tags.to_le_bytes()[j] & 0x80 != 0 {
                put_fresh(fresh, s.load(Ordering::Relaxed));
            }
        }
    }
}

/// Inserts into a table no reader can see yet (no duplicates, no tombstones).
/// Positions derive from the key bits only, so a rebuild can place an entry from its slot alone.
fn put_fresh(t: &Table, entry: u64) {
    let mut g = t.start(entry & !VALUE_BITS);
    loop {
        if let Some(j) = first_byte(t.tags[g].load(Ordering::Relaxed), TAG_EMPTY) {
            t.put(g, j, entry);
            return;
        }
        g = t.next(g);
    }
}
