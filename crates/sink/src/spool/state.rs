//! Bookkeeping shared by the writer thread and the reader side: the live segments, the reader
//! cursor, what is handed out, and the counters behind [`SpoolStats`](super::SpoolStats).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::RecordId;

/// One segment file on disk.
#[derive(Debug)]
pub(crate) struct SegState {
    pub(crate) path: PathBuf,
    /// Bytes readable as whole frames (always on a frame boundary for segments written by this
    /// process; the file length for recovered ones).
    pub(crate) visible_len: u64,
    /// Bytes of disk this segment is charged for in `max_bytes` accounting.
    pub(crate) disk_bytes: u64,
    /// No more records will be written to it.
    pub(crate) sealed: bool,
    /// Found on disk at open (its damage was already counted by the open-time scan).
    pub(crate) recovered: bool,
    /// Good records in it (written, or found by the open-time scan).
    pub(crate) records: u64,
    /// Records acknowledged.
    pub(crate) acked: u64,
    /// Next offset the reader will parse.
    pub(crate) read_off: u64,
    /// The reader has parsed all of it (only possible once sealed).
    pub(crate) reader_done: bool,
    /// Records handed out (or waiting for redelivery) and not yet acknowledged.
    pub(crate) outstanding: u64,
    /// Write time of its first record, if known.
    pub(crate) first_written_ms: Option<i64>,
    /// A roll was asked of the writer because everything in it is acknowledged.
    pub(crate) roll_requested: bool,
}

/// What a state change asks the caller to do once the lock is released.
#[derive(Debug, Default)]
pub(crate) struct Chores {
    /// Segment files to delete, with the bytes they are charged for.
    pub(crate) delete: Vec<(u64, PathBuf, u64)>,
    /// Ask the writer to seal this (active) segment so it can be deleted.
    pub(crate) roll: Option<u64>,
}

/// The state under the spool's lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) segs: BTreeMap<u64, SegState>,
    /// Handed out by `read_batch`, neither acked nor nacked yet.
    pub(crate) in_flight: HashSet<RecordId>,
    /// Nacked, to be handed out again (in id order) before any fresh record.
    pub(crate) retry: BTreeSet<RecordId>,
}

impl State {
    /// Re-evaluates segment `id` after a change: marks the reader done with it if it is sealed
    /// and fully parsed, queues its deletion once nothing in it is outstanding, or asks for a
    /// roll if it is the active segment and everything in it is acknowledged.
    pub(crate) fn settle(&mut self, id: u64, chores: &mut Chores) {
        let Some(seg) = self.segs.get_mut(&id) else {
            return;
        };
        if seg.sealed && !seg.reader_done && seg.read_off >= seg.visible_len {
            seg.reader_done = true;
        }
        if seg.sealed && seg.reader_done && seg.outstanding == 0 {
            if let Some(seg) = self.segs.remove(&id) {
                chores.delete.push((id, seg.path, seg.disk_bytes));
            }
        } else if !seg.sealed
            && seg.read_off >= seg.visible_len
            && seg.outstanding == 0
            && seg.records > 0
            && !seg.roll_requested
        {
            seg.roll_requested = true;
            chores.roll = Some(id);
        }
    }
}

/// Monotonic counters, updated without the lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) appended: AtomicU64,
    pub(crate) dropped_full: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_too_large: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) dropped_write_error: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) corrupt_records: AtomicU64,
    pub(crate) torn_bytes: AtomicU64,
    pub(crate) corrupt_segments: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) nacked: AtomicU64,
    pub(crate) deleted_segments: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    /// Records accepted into the channel and not yet made visible by the writer.
    pub(crate) queued: AtomicU64,
    /// Bytes on disk plus bytes reserved by queued records; compared against `max_bytes`.
    pub(crate) used_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Subtracts without wrapping below zero.
    pub(crate) fn sub(c: &AtomicU64, n: u64) {
        let _ = c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            Some(v.saturating_sub(n))
        });
    }

    /// Reserves `n` bytes of `max` if they fit.
    pub(crate) fn reserve(&self, n: u64, max: u64) -> bool {
        self.used_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                v.checked_add(n).filter(|&t| t <= max)
            })
            .is_ok()
    }
}
