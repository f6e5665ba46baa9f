//! The durable spool: a local, append-only, bounded on-disk queue of events that could not be
//! handed to Kafka (producer queue full, broker unreachable past a threshold, retryable delivery
//! failure after its timeout). Once the edge has answered a hit, delivering its event is our job:
//! the spool keeps it across broker outages and process restarts, and a replayer re-publishes it
//! in order once the broker is healthy.
//!
//! # On-disk format
//!
//! The spool owns one directory. It holds segment files named `NNNNNNNNNNNNNNNNNNNN.seg` (the
//! segment id, a `u64`, as 20 zero-padded decimal digits); ids only grow, so name order is write
//! order. Other files are ignored. Every segment starts with a 16-byte header:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `OCSP` |
//! | 4..6 | format version, `u16` LE, currently 1 |
//! | 6..8 | reserved, zero |
//! | 8..16 | creation time, `i64` LE, ms since the Unix epoch |
//!
//! followed by records, each one frame:
//!
//! ```text
//! len: u32 LE | crc32c: u32 LE | body (len bytes)
//! body = written_at_ms: i64 LE | key_len: u16 LE | key (key_len bytes) | payload (the rest)
//! ```
//!
//! `crc32c` (Castagnoli) covers the whole body. `written_at_ms` is when `append` was called;
//! it gives [`SpoolStats::oldest_record_age_ms`] and [`SpooledRecord::written_at_ms`]. A body
//! is at most 16 MiB and a key at most 65535 bytes ([`AppendOutcome::DroppedTooLarge`]
//! otherwise). A segment is closed ("rolled") before a record that would take it past
//! [`SpoolConfig::segment_bytes`] (default 16 MiB); a single record larger than that gets a
//! segment of its own. Segment files are created lazily, when the first record for them is
//! written.
//!
//! # Writing, and the fsync policy
//!
//! [`Spool::append`] never touches the disk: it frames the record (and computes its CRC) on the
//! caller's thread and `try_send`s it into a bounded in-memory channel of
//! [`SpoolConfig::queue_capacity`] records (default 8192, about 2.5 MiB of 300-byte events).
//! A dedicated thread, `openclick-spool-writer`, drains the channel in batches (up to 4096
//! records or 1 MiB per write), appends them with one `write` call, rolls segments and fsyncs
//! per [`FsyncPolicy`]:
//!
//! - `Always`: `fdatasync` after every batch, *before* the batch becomes readable (group
//!   commit: a burst of appends shares one fsync).
//! - `EveryMs(n)` (default **200 ms**): `fdatasync` at most every `n` ms while there is
//!   unsynced data, and when a segment is sealed. A crash (of the machine, not just of the
//!   process) loses at most the last ~`n` ms of appends.
//! - `Never`: leave it to the OS. Only [`Spool::flush`] and shutdown fsync.
//!
//! Records become readable by [`Spool::read_batch`] as soon as their batch is written (under
//! `Always`: written and fsynced). New segment files and their directory entry are fsynced at
//! creation unless the policy is `Never`. [`Spool::flush`] writes and fsyncs everything queued
//! before it, whatever the policy; dropping the last [`Spool`] handle does the same and joins
//! the writer thread.
//!
//! # When full: drop newest
//!
//! The spool is bounded by [`SpoolConfig::max_bytes`] (default 1 GiB): bytes of live segment
//! files plus bytes of records still in the channel. An append that would go past it is
//! refused with [`AppendOutcome::DroppedFull`]; an append that finds the channel full is
//! refused with [`AppendOutcome::DroppedQueueFull`]. Either way the caller is never blocked,
//! the refusal is counted ([`SpoolStats::dropped_full`], [`SpoolStats::dropped_queue_full`])
//! and logged with `tracing::error!` at most once per 10 s per cause (with the number of
//! suppressed lines). What is already spooled is never evicted: older events have been waiting
//! longer and keep their place. If the writer hits an I/O error (e.g. `ENOSPC`), the records
//! of the failed batch are counted in [`SpoolStats::dropped_write_error`], the segment is
//! sealed at its last good frame, and writing resumes in a new segment.
//!
//! # Reading, acknowledging, and when a segment is deleted
//!
//! [`Spool::read_batch`] hands out records in write order, oldest segment first, including the
//! readable part of the segment being written. Each record has a [`RecordId`] (segment id and
//! byte offset). The caller then [`ack`](Spool::ack)s (delivered) or [`nack`](Spool::nack)s
//! (failed, try again later) each one, in any order.
//!
//! **Deletion invariant:** a segment file is deleted only when (1) it is sealed (no more writes),
//! (2) the reader has parsed all of it, and (3) every record handed out from it has been acked
//! (nacked records count as outstanding until acked). Per-segment outstanding counts make
//! out-of-order acks safe. When the reader has caught up with the active segment and everything
//! in it is acked, the spool asks the writer to seal it, so a drained spool leaves **no segment
//! files** (the next append creates a fresh one).
//!
//! **Nack and order:** nacked records are handed out again, in their original write order,
//! before any record not handed out yet. Records handed out after a nacked one (including ones
//! with the same key) may already have been delivered, so per-key order survives a nack only if
//! the caller nacks everything still in flight when a delivery fails, which is what a replayer
//! that stops at the first failure naturally does.
//!
//! **At-least-once:** acks are kept in memory only. After a restart every record of every
//! remaining segment is replayed, including records that were acked before the restart but
//! whose segment still had other outstanding records. Consumers must tolerate duplicates
//! (events carry an id for that).
//!
//! # Restart and damage
//!
//! [`Spool::open`] lists the directory, and scans every existing segment (sequential read, CRC
//! check) to count its records; they are replayed before anything appended later. New writes
//! always go to a new segment. Damage is counted in [`SpoolStats::corrupt_records`] (one per
//! damaged spot) and [`SpoolStats::torn_bytes`] (bytes skipped), logged, and never fatal:
//!
//! - a torn tail (file ends mid-frame, as after a crash during a write): the partial frame is
//!   skipped; the rest of the spool, including later segments, replays;
//! - an absurd length field (below the 10-byte minimum body or above 16 MiB): the rest of that
//!   segment cannot be framed and is skipped; later segments replay;
//! - a CRC mismatch: the length field is trusted only if what follows the damaged frame is the
//!   end of the segment or a frame with a good CRC, in which case just that record is skipped;
//!   otherwise the rest of that segment is skipped. (No byte-by-byte resync: a corrupt length
//!   would make it guesswork.)
//! - a segment whose header is not ours (wrong magic or version) is renamed to `*.seg.corrupt`
//!   and left alone (counted in [`SpoolStats::corrupt_segments`]); an empty file or one shorter
//!   than a header is removed; a segment with no good record is removed.
//!
//! One [`Spool`] per directory: two processes (or two `open`s) on one directory would corrupt
//! each other's bookkeeping; this is not detected.

mod config;
mod format;
mod reader;
mod recovery;
mod state;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use openclick_common::{now_ms, LogLimiter};

pub use config::{FsyncPolicy, SpoolConfig};
use format::{frame_len, SegmentReader, BODY_FIXED_LEN, MAX_BODY_LEN};
use state::{Chores, Counters, State};
use writer::{Cmd, Writer};

/// Default [`SpoolConfig::segment_bytes`]: 16 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Default [`SpoolConfig::max_bytes`]: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Default [`SpoolConfig::queue_capacity`]: 8192 records.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// Default fsync interval of [`FsyncPolicy::EveryMs`]: 200 ms.
pub const DEFAULT_FSYNC_MS: u64 = 200;
/// Largest key accepted by [`Spool::append`].
pub const MAX_KEY_LEN: usize = u16::MAX as usize;
/// Largest `key.len() + payload.len()` accepted by [`Spool::append`].
pub const MAX_RECORD_LEN: usize = MAX_BODY_LEN - BODY_FIXED_LEN;

const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What [`Spool::append`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Queued for the writer thread; the spool now owns it.
    Queued,
    /// Refused: the spool is at `max_bytes` (drop-newest). Counted and logged.
    DroppedFull,
    /// Refused: the in-memory channel to the writer is full. Counted and logged.
    DroppedQueueFull,
    /// Refused: key longer than [`MAX_KEY_LEN`] or record longer than [`MAX_RECORD_LEN`].
    DroppedTooLarge,
    /// Refused: the writer thread is gone (only during teardown).
    DroppedClosed,
}

impl AppendOutcome {
    /// Whether the spool took the record.
    pub fn is_queued(self) -> bool {
        self == AppendOutcome::Queued
    }
}

/// Where a spooled record lives: segment id and byte offset of its frame. Ordered by write
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    segment: u64,
    offset: u64,
}

impl RecordId {
    /// The segment id.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// The byte offset of the record's frame in its segment.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.segment, self.offset)
    }
}

/// A record handed out by [`Spool::read_batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpooledRecord {
    /// Pass to [`Spool::ack`] or [`Spool::nack`].
    pub id: RecordId,
    /// The record key as appended.
    pub key: Vec<u8>,
    /// The payload as appended.
    pub payload: Vec<u8>,
    /// When it was appended (ms since the Unix epoch).
    pub written_at_ms: i64,
}

/// A snapshot of the spool's gauges and counters (counters are since `open`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Segment files on disk.
    pub segments: u64,
    /// Bytes of segment files on disk.
    pub bytes_on_disk: u64,
    /// Good records in segment files on disk (acked or not).
    pub records_on_disk: u64,
    /// Records on disk not acked yet (unread, in flight or waiting for redelivery).
    pub pending_records: u64,
    /// Records in the append channel, not written yet.
    pub queued_records: u64,
    /// Records handed out and neither acked nor nacked.
    pub in_flight: u64,
    /// Nacked records waiting to be handed out again.
    pub awaiting_redelivery: u64,
    /// Age of the first record of the oldest segment with unacked records (an upper bound on
    /// the age of the oldest pending record). `None` when nothing is pending.
    pub oldest_record_age_ms: Option<u64>,
    /// Records accepted by `append`.
    pub appended: u64,
    /// Appends refused because the spool was at `max_bytes`.
    pub dropped_full: u64,
    /// Appends refused because the append channel was full.
    pub dropped_queue_full: u64,
    /// Appends refused as too large.
    pub dropped_too_large: u64,
    /// Appends refused because the writer thread was gone.
    pub dropped_closed: u64,
    /// Accepted records lost to a write error.
    pub dropped_write_error: u64,
    /// Write, fsync or create errors.
    pub write_errors: u64,
    /// Damaged spots found (torn tails, bad CRCs, absurd lengths).
    pub corrupt_records: u64,
    /// Bytes skipped because of damage.
    pub torn_bytes: u64,
    /// Segment files set aside as not ours (`*.seg.corrupt`).
    pub corrupt_segments: u64,
    /// Records handed out for the first time.
    pub replayed: u64,
    /// Records handed out again after a nack.
    pub redelivered: u64,
    /// Records acked.
    pub acked: u64,
    /// Records nacked.
    pub nacked: u64,
    /// Segment files deleted after all their records were acked.
    pub deleted_segments: u64,
    /// fsync calls made.
    pub fsyncs: u64,
}

/// Spool failures. Appends never fail this way: see [`AppendOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A filesystem operation failed.
    #[error("spool I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid spool configuration: {0}")]
    Config(String),
    /// An fsync policy string did not parse.
    #[error("invalid fsync policy {0:?}: expected always, never, <n>ms, <n>s or every:<n>")]
    InvalidFsyncPolicy(String),
    /// `flush` ran out of time.
    #[error("spool flush timed out after {0:?}")]
    FlushTimeout(Duration),
    /// The writer hit an I/O error while doing what `flush` waited for.
    #[error("spool writer failed: {0}")]
    WriteFailed(String),
    /// The writer thread is gone.
    #[error("spool writer thread is gone")]
    Closed,
}

impl SpoolError {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SpoolError::Io { .. } | SpoolError::FlushTimeout(_) | SpoolError::WriteFailed(_) => {
                true
            }
            SpoolError::Config(_) | SpoolError::InvalidFsyncPolicy(_) | SpoolError::Closed => false,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// State shared by the handles and the writer thread.
pub(crate) struct Shared {
    pub(crate) config: SpoolConfig,
    pub(crate) state: Mutex<State>,
    pub(crate) counters: Counters,
    pub(crate) io_log: LogLimiter,
    full_log: LogLimiter,
    queue_log: LogLimiter,
    corrupt_log: LogLimiter,
}

impl Shared {
    /// Deletes segment files whose records are all acked.
    pub(crate) fn delete_segments(&self, delete: Vec<(u64, PathBuf, u64)>) {
        for (id, path, bytes) in delete {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Its records are delivered; if it survives, a restart replays duplicates.
                    if let Some(suppressed) = self.io_log.allow() {
                        tracing::error!(error = %e, segment = %path.display(), suppressed,
                            "spool: could not delete a fully acknowledged segment");
                    }
                }
            }
            tracing::debug!(segment = id, "spool: deleted fully acknowledged segment");
            Counters::add(&self.counters.deleted_segments, 1);
            Counters::sub(&self.counters.used_bytes, bytes);
        }
    }

    fn count_damage(&self, segment: &Path, off: u64, damage: format::Damage, skipped: u64) {
        Counters::add(&self.counters.corrupt_records, 1);
        Counters::add(&self.counters.torn_bytes, skipped);
        if let Some(suppressed) = self.corrupt_log.allow() {
            tracing::error!(segment = %segment.display(), offset = off, damage = damage.as_str(),
                skipped_bytes = skipped, suppressed, "spool: damaged record skipped");
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    tx: SyncSender<Cmd>,
    /// Serializes `read_batch` and caches the open segment reader.
    reader: Mutex<Option<SegmentReader>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Shutdown);
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

/// The durable spool. Cheap to clone (one `Arc`); `Send + Sync`. See the [module docs](self).
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.shared.config.dir)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens (creating if needed) the spool in `config.dir`, scans the segments already there
    /// (they are replayed first) and starts the writer thread.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        config.validate()?;
        std::fs::create_dir_all(&config.dir).map_err(|e| SpoolError::io(&config.dir, e))?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            io_log: LogLimiter::new(LOG_INTERVAL),
            full_log: LogLimiter::new(LOG_INTERVAL),
            queue_log: LogLimiter::new(LOG_INTERVAL),
            corrupt_log: LogLimiter::new(LOG_INTERVAL),
        });
        let next_id = recovery::recover(&shared)?;
        let (tx, rx) = mpsc::sync_channel(shared.config.queue_capacity);
        let writer = Writer::new(Arc::clone(&shared), rx, next_id);
        let handle = std::thread::Builder::new()
            .name("openclick-spool-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| SpoolError::io(&shared.config.dir, e))?;
        Ok(Spool {
            inner: Arc::new(Inner {
                shared,
                tx,
                reader: Mutex::new(None),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &SpoolConfig {
        &self.inner.shared.config
    }

    /// Queues one record for writing. Never blocks on disk I/O nor on a full queue: see
    /// [`AppendOutcome`] for what a refusal means (each is counted and logged).
    pub fn append(&self, key: &[u8], payload: &[u8]) -> AppendOutcome {
        self.append_inner(key, payload, None)
    }

    /// Like [`append`](Self::append), but when the in-memory channel to the writer is full it
    /// waits (up to `wait`) for room instead of refusing at once. Never for the request hot
    /// path: it is for background threads (the Kafka delivery-report thread spooling a burst
    /// of timed-out or purged events) that may wait a little rather than drop.
    pub fn append_wait(&self, key: &[u8], payload: &[u8], wait: Duration) -> AppendOutcome {
        self.append_inner(key, payload, Some(Instant::now() + wait))
    }

    fn append_inner(&self, key: &[u8], payload: &[u8], deadline: Option<Instant>) -> AppendOutcome {
        let sh = &self.inner.shared;
        let c = &sh.counters;
        if key.len() > MAX_KEY_LEN || key.len().saturating_add(payload.len()) > MAX_RECORD_LEN {
            Counters::add(&c.dropped_too_large, 1);
            if let Some(suppressed) = sh.full_log.allow() {
                tracing::error!(
                    key_len = key.len(),
                    payload_len = payload.len(),
                    suppressed,
                    "spool: record too large, dropped"
                );
            }
            return AppendOutcome::DroppedTooLarge;
        }
        let flen = frame_len(key.len(), payload.len()) as u64;
        if !c.reserve(flen, sh.config.max_bytes) {
            Counters::add(&c.dropped_full, 1);
            if let Some(suppressed) = sh.full_log.allow() {
                tracing::error!(
                    max_bytes = sh.config.max_bytes,
                    dropped_full = Counters::get(&c.dropped_full),
                    suppressed,
                    "spool: full, dropping newest events"
                );
            }
            return AppendOutcome::DroppedFull;
        }
        let written_at_ms = now_ms();
        let frame = format::encode_frame(written_at_ms, key, payload);
        Counters::add(&c.queued, 1);
        let mut cmd = Cmd::Write {
            frame,
            written_at_ms,
        };
        let sent = loop {
            match self.inner.tx.try_send(cmd) {
                Err(TrySendError::Full(back)) if deadline.is_some_and(|d| Instant::now() < d) => {
                    cmd = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                other => break other,
            }
        };
        match sent {
            Ok(()) => {
                Counters::add(&c.appended, 1);
                AppendOutcome::Queued
            }
            Err(TrySendError::Full(_)) => {
                Counters::sub(&c.used_bytes, flen);
                Counters::sub(&c.queued, 1);
                Counters::add(&c.dropped_queue_full, 1);
                if let Some(suppressed) = sh.queue_log.allow() {
                    tracing::error!(
                        queue_capacity = sh.config.queue_capacity,
                        dropped_queue_full = Counters::get(&c.dropped_queue_full),
                        suppressed,
                        "spool: writer queue full, dropping newest events"
                    );
                }
                AppendOutcome::DroppedQueueFull
            }
            Err(TrySendError::Disconnected(_)) => {
                Counters::sub(&c.used_bytes, flen);
                Counters::sub(&c.queued, 1);
                Counters::add(&c.dropped_closed, 1);
                AppendOutcome::DroppedClosed
            }
        }
    }

    /// Waits until everything appended before this call is written and fsynced (whatever the
    /// policy). For shutdown, and for tests.
    pub fn flush(&self, timeout: Duration) -> Result<(), SpoolError> {
        let deadline = Instant::now() + timeout;
        let (reply_tx, reply_rx) = mpsc::channel();
        let mut cmd = Cmd::Flush(reply_tx);
        loop {
            match self.inner.tx.try_send(cmd) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return Err(SpoolError::FlushTimeout(timeout));
                    }
                    cmd = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TrySendError::Disconnected(_)) => return Err(SpoolError::Closed),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match reply_rx.recv_timeout(left) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(SpoolError::WriteFailed(msg)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(SpoolError::FlushTimeout(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(SpoolError::Closed),
        }
    }

    fn run_chores(&self, chores: Chores) {
        let sh = &self.inner.shared;
        sh.delete_segments(chores.delete);
        if let Some(id) = chores.roll {
            if self.inner.tx.try_send(Cmd::Roll(id)).is_err() {
                // Busy writer: let a later ack ask again.
                if let Some(seg) = sh.state.lock().segs.get_mut(&id) {
                    seg.roll_requested = false;
                }
            }
        }
    }

    /// A snapshot of the gauges and counters.
    pub fn stats(&self) -> SpoolStats {
        let sh = &self.inner.shared;
        let c = &sh.counters;
        let mut s = SpoolStats {
            queued_records: Counters::get(&c.queued),
            appended: Counters::get(&c.appended),
            dropped_full: Counters::get(&c.dropped_full),
            dropped_queue_full: Counters::get(&c.dropped_queue_full),
            dropped_too_large: Counters::get(&c.dropped_too_large),
            dropped_closed: Counters::get(&c.dropped_closed),
            dropped_write_error: Counters::get(&c.dropped_write_error),
            write_errors: Counters::get(&c.write_errors),
            corrupt_records: Counters::get(&c.corrupt_records),
            torn_bytes: Counters::get(&c.torn_bytes),
            corrupt_segments: Counters::get(&c.corrupt_segments),
            replayed: Counters::get(&c.replayed),
            redelivered: Counters::get(&c.redelivered),
            acked: Counters::get(&c.acked),
            nacked: Counters::get(&c.nacked),
            deleted_segments: Counters::get(&c.deleted_segments),
            fsyncs: Counters::get(&c.fsyncs),
            ..SpoolStats::default()
        };
        let now = now_ms();
        let st = sh.state.lock();
        s.in_flight = st.in_flight.len() as u64;
        s.awaiting_redelivery = st.retry.len() as u64;
        for seg in st.segs.values() {
            s.segments += 1;
            s.bytes_on_disk += seg.disk_bytes;
            s.records_on_disk += seg.records;
            let pending = seg.records.saturating_sub(seg.acked);
            s.pending_records += pending;
            if pending > 0 && s.oldest_record_age_ms.is_none() {
                if let Some(first) = seg.first_written_ms {
                    s.oldest_record_age_ms =
                        Some(u64::try_from(now.saturating_sub(first)).unwrap_or(0));
                }
            }
        }
        s
    }

    /// Whether every record ever accepted has been acked (or lost to damage): nothing queued,
    /// nothing unread, nothing in flight.
    pub fn is_empty(&self) -> bool {
        let sh = &self.inner.shared;
        if sh.counters.queued.load(Ordering::Acquire) > 0 {
            return false;
        }
        let st = sh.state.lock();
        st.in_flight.is_empty()
            && st.retry.is_empty()
            && st.segs.values().all(|s| s.records <= s.acked)
    }
}
/// A segment's bytes read the way a restart reads a segment file, without a directory: the
/// entry point of the `spool_segment` fuzz target (fuzz/). Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::io::Cursor;
    use std::path::Path;

    use super::format::SegmentReader;
    use super::recovery::{scan_frames, Scan};

    /// One good record.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ScannedRecord {
        /// When it was spooled.
        pub written_at_ms: i64,
        /// The Kafka key.
        pub key: Vec<u8>,
        /// The event bytes.
        pub payload: Vec<u8>,
    }

    /// What a restart would find in one segment.
    #[derive(Debug, Default)]
    pub struct SegmentScan {
        /// The header is not ours: the file would be set aside, no record read.
        pub foreign: bool,
        /// The good records, in order.
        pub records: Vec<ScannedRecord>,
        /// Damaged spots (`SpoolStats::corrupt_records`).
        pub damaged: u64,
        /// Bytes skipped over them (`SpoolStats::torn_bytes`).
        pub skipped_bytes: u64,
    }

    /// Scans `bytes` as one segment file.
    pub fn scan_segment_bytes(bytes: &[u8]) -> SegmentScan {
        let mut out = SegmentScan::default();
        let mut reader = SegmentReader::from_reader(0, Path::new("<memory>"), Cursor::new(bytes));
        let mut records = Vec::new();
        let (mut damaged, mut skipped) = (0, 0);
        let scan = scan_frames(
            &mut reader,
            bytes.len() as u64,
            |r| {
                records.push(ScannedRecord {
                    written_at_ms: r.written_at_ms,
                    key: r.key,
                    payload: r.payload,
                })
            },
            |_, _, n| {
                damaged += 1;
                skipped += n;
            },
        )
        .expect("reading memory does not fail");
        out.foreign = matches!(scan, Scan::Foreign);
        out.records = records;
        out.damaged = damaged;
        out.skipped_bytes = skipped;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SpoolConfig::new(dir.path());
        cfg.segment_bytes = 10;
        assert!(matches!(Spool::open(cfg), Err(SpoolError::Config(_))));
        let mut cfg = SpoolConfig::new(dir.path());
        cfg.queue_capacity = 0;
        assert!(matches!(Spool::open(cfg), Err(SpoolError::Config(_))));
        let mut cfg = SpoolConfig::new(dir.path());
        cfg.max_bytes = 0;
        assert!(matches!(Spool::open(cfg), Err(SpoolError::Config(_))));
        assert!(matches!(
            Spool::open(SpoolConfig::new("")),
            Err(SpoolError::Config(_))
        ));
    }

    #[test]
    fn spool_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Spool>();
    }

    #[test]
    fn too_large_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        let key = vec![0u8; MAX_KEY_LEN + 1];
        assert_eq!(spool.append(&key, b"x"), AppendOutcome::DroppedTooLarge);
        assert_eq!(spool.stats().dropped_too_large, 1);
        assert!(spool.is_empty());
    }
}
