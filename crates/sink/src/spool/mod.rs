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

mod format;
mod state;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use format::{frame_len, HeaderCheck, SegmentReader, BODY_FIXED_LEN, HEADER_LEN, MAX_BODY_LEN};
use state::{Chores, Counters, LogLimiter, SegState, State};
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
/// Smallest accepted `segment_bytes`.
const MIN_SEGMENT_BYTES: u64 = 1024;

/// When the writer thread fsyncs. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every write batch, before it becomes readable.
    Always,
    /// At most every this many milliseconds while there is unsynced data, and on segment roll.
    EveryMs(u64),
    /// Only on [`Spool::flush`] and shutdown.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::EveryMs(DEFAULT_FSYNC_MS)
    }
}

impl FromStr for FsyncPolicy {
    type Err = SpoolError;

    /// Parses `always`, `never`, `200ms`, `2s`, `every:200` (ms) or `every:200ms`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || SpoolError::InvalidFsyncPolicy(s.to_string());
        match t.as_str() {
            "always" => return Ok(FsyncPolicy::Always),
            "never" => return Ok(FsyncPolicy::Never),
            _ => {}
        }
        let (num, scale) = if let Some(rest) = t.strip_prefix("every:") {
            (rest.strip_suffix("ms").unwrap_or(rest), 1)
        } else if let Some(rest) = t.strip_suffix("ms") {
            (rest, 1)
        } else if let Some(rest) = t.strip_suffix('s') {
            (rest, 1000)
        } else {
            return Err(bad());
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        n.checked_mul(scale)
            .map(FsyncPolicy::EveryMs)
            .ok_or_else(bad)
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::EveryMs(n) => write!(f, "{n}ms"),
        }
    }
}

/// Spool settings. `Default` gives everything but a sensible `dir` (it is `spool`, relative to
/// the working directory); use [`SpoolConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool's own directory (created if missing).
    pub dir: PathBuf,
    /// A segment is rolled before it would grow past this. Default 16 MiB, at least 1 KiB.
    pub segment_bytes: u64,
    /// Bound on segment bytes plus queued bytes. Default 1 GiB.
    pub max_bytes: u64,
    /// When to fsync. Default every 200 ms.
    pub fsync: FsyncPolicy,
    /// Records the append channel holds. Default 8192.
    pub queue_capacity: usize,
}

impl SpoolConfig {
    /// Defaults, with `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            dir: dir.into(),
            ..SpoolConfig::default()
        }
    }

    fn validate(&self) -> Result<(), SpoolError> {
        if self.dir.as_os_str().is_empty() {
            return Err(SpoolError::Config("dir is empty".into()));
        }
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(SpoolError::Config(format!(
                "segment_bytes {} is below the minimum {MIN_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.max_bytes == 0 {
            return Err(SpoolError::Config("max_bytes is 0".into()));
        }
        if self.queue_capacity == 0 {
            return Err(SpoolError::Config("queue_capacity is 0".into()));
        }
        Ok(())
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("spool"),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_bytes: DEFAULT_MAX_BYTES,
            fsync: FsyncPolicy::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

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

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
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
        let next_id = recover(&shared)?;
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

    /// Hands out up to `max` records: first nacked ones (in write order), then ones never handed
    /// out (in write order). Empty when there is nothing to hand out right now. Damaged records
    /// are skipped and counted. Calls are serialized; the writer is not held up by the disk
    /// reads.
    pub fn read_batch(&self, max: usize) -> Result<Vec<SpooledRecord>, SpoolError> {
        let sh = &*self.inner.shared;
        let mut cache = self.inner.reader.lock();
        let mut out = Vec::new();
        let mut chores = Chores::default();
        let result = self.read_into(sh, &mut cache, max, &mut out, &mut chores);
        self.run_chores(chores);
        match result {
            Ok(()) => Ok(out),
            // Records already taken are in flight: hand them over rather than lose them.
            Err(e) if !out.is_empty() => {
                if let Some(suppressed) = sh.io_log.allow() {
                    tracing::error!(error = %e, suppressed, "spool: read error, returning a partial batch");
                }
                Ok(out)
            }
            Err(e) => Err(e),
        }
    }

    fn read_into(
        &self,
        sh: &Shared,
        cache: &mut Option<SegmentReader>,
        max: usize,
        out: &mut Vec<SpooledRecord>,
        chores: &mut Chores,
    ) -> Result<(), SpoolError> {
        // 1. Redeliveries.
        while out.len() < max {
            let next = {
                let mut st = sh.state.lock();
                let Some(id) = st.retry.pop_first() else {
                    break;
                };
                st.segs
                    .get(&id.segment)
                    .map(|s| (id, s.path.clone(), s.visible_len))
            };
            let Some((id, path, end)) = next else {
                continue; // cannot happen: a segment with outstanding records is kept
            };
            let frame = reader_for(cache, id.segment, &path)
                .and_then(|r| r.read_frame(id.offset, end))
                .map_err(|e| SpoolError::io(&path, e));
            let mut st = sh.state.lock();
            match frame {
                Ok(format::Frame::Record { record, .. }) => {
                    st.in_flight.insert(id);
                    Counters::add(&sh.counters.redelivered, 1);
                    out.push(SpooledRecord {
                        id,
                        key: record.key,
                        payload: record.payload,
                        written_at_ms: record.written_at_ms,
                    });
                }
                Ok(_) => {
                    // It read fine before; it does not now. Count it lost.
                    drop(st);
                    sh.count_damage(&path, id.offset, format::Damage::BadCrc, 0);
                    let mut st = sh.state.lock();
                    if let Some(seg) = st.segs.get_mut(&id.segment) {
                        seg.outstanding = seg.outstanding.saturating_sub(1);
                        seg.records = seg.records.saturating_sub(1);
                    }
                    st.settle(id.segment, chores);
                }
                Err(e) => {
                    st.retry.insert(id);
                    return Err(e);
                }
            }
        }
        // 2. Records not handed out yet, oldest segment first.
        while out.len() < max {
            let target = {
                let mut st = sh.state.lock();
                let Some((&id, seg)) = st.segs.iter().find(|(_, s)| !s.reader_done) else {
                    break;
                };
                if seg.read_off >= seg.visible_len {
                    if seg.sealed {
                        st.settle(id, chores);
                        continue;
                    }
                    break; // caught up with the writer
                }
                (
                    id,
                    seg.path.clone(),
                    seg.read_off,
                    seg.visible_len,
                    seg.recovered,
                )
            };
            let (seg_id, path, start, end, recovered) = target;
            let reader = reader_for(cache, seg_id, &path).map_err(|e| SpoolError::io(&path, e))?;
            let mut off = start;
            let mut taken = Vec::new();
            let mut lost = 0u64;
            let mut error = None;
            while out.len() + taken.len() < max {
                match reader.read_frame(off, end) {
                    Ok(format::Frame::Record { record, next }) => {
                        taken.push(SpooledRecord {
                            id: RecordId {
                                segment: seg_id,
                                offset: off,
                            },
                            key: record.key,
                            payload: record.payload,
                            written_at_ms: record.written_at_ms,
                        });
                        off = next;
                    }
                    Ok(format::Frame::End) => break,
                    Ok(format::Frame::Damaged { damage, skip_to }) => {
                        // Recovered segments' damage was counted by the open-time scan.
                        if !recovered {
                            sh.count_damage(&path, off, damage, skip_to.saturating_sub(off));
                            lost += 1;
                        }
                        off = skip_to.max(off + 1);
                    }
                    Err(e) => {
                        error = Some(SpoolError::io(&path, e));
                        break;
                    }
                }
            }
            {
                let mut st = sh.state.lock();
                if let Some(seg) = st.segs.get_mut(&seg_id) {
                    seg.read_off = off;
                    seg.outstanding += taken.len() as u64;
                    seg.records = seg.records.saturating_sub(lost);
                }
                for r in &taken {
                    st.in_flight.insert(r.id);
                }
                st.settle(seg_id, chores);
            }
            Counters::add(&sh.counters.replayed, taken.len() as u64);
            out.extend(taken);
            if let Some(e) = error {
                return Err(e);
            }
        }
        Ok(())
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

    /// Marks a handed-out record delivered. Unknown or repeated ids are ignored. Deletes its
    /// segment file once every record in it is acked (see the module docs).
    pub fn ack(&self, id: RecordId) {
        let sh = &self.inner.shared;
        let mut chores = Chores::default();
        {
            let mut st = sh.state.lock();
            let known = st.in_flight.remove(&id) || st.retry.remove(&id);
            if !known {
                return;
            }
            if let Some(seg) = st.segs.get_mut(&id.segment) {
                seg.outstanding = seg.outstanding.saturating_sub(1);
                seg.acked += 1;
            }
            st.settle(id.segment, &mut chores);
        }
        Counters::add(&sh.counters.acked, 1);
        self.run_chores(chores);
    }

    /// Marks a handed-out record not delivered: a later `read_batch` hands it out again, before
    /// any record not handed out yet. Unknown ids (or ids already nacked) are ignored.
    pub fn nack(&self, id: RecordId) {
        let sh = &self.inner.shared;
        let mut st = sh.state.lock();
        if st.in_flight.remove(&id) {
            st.retry.insert(id);
            Counters::add(&sh.counters.nacked, 1);
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

/// The cached reader if it reads `id`, else a freshly opened one.
fn reader_for<'a>(
    cache: &'a mut Option<SegmentReader>,
    id: u64,
    path: &Path,
) -> std::io::Result<&'a mut SegmentReader> {
    if cache.as_ref().is_none_or(|r| r.id() != id) {
        *cache = Some(SegmentReader::open(id, path)?);
    }
    cache
        .as_mut()
        .ok_or_else(|| std::io::Error::other("segment reader missing"))
}

/// Scans the segments already in the directory into the state. Returns the next segment id.
fn recover(shared: &Shared) -> Result<u64, SpoolError> {
    let dir = &shared.config.dir;
    let entries = std::fs::read_dir(dir).map_err(|e| SpoolError::io(dir, e))?;
    let mut found = Vec::new();
    let mut max_id = 0u64;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        // Set-aside segments keep their id reserved, so a new segment never takes their name.
        if let Some(id) = name
            .strip_suffix(".corrupt")
            .and_then(format::parse_segment_file_name)
        {
            max_id = max_id.max(id);
            continue;
        }
        let Some(id) = format::parse_segment_file_name(name) else {
            continue;
        };
        max_id = max_id.max(id);
        found.push((id, entry.path()));
    }
    found.sort_unstable_by_key(|(id, _)| *id);
    let next_id = max_id.saturating_add(1);
    let c = &shared.counters;
    let mut st = shared.state.lock();
    for (id, path) in found {
        match scan_segment(shared, id, &path) {
            Ok(Some(seg)) => {
                Counters::add(&c.used_bytes, seg.disk_bytes);
                tracing::info!(segment = %path.display(), records = seg.records,
                    "spool: found segment to replay");
                st.segs.insert(id, seg);
            }
            Ok(None) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(error = %e, segment = %path.display(),
                        "spool: could not remove a segment with no records");
                }
            }
            Err(e) => {
                Counters::add(&c.corrupt_segments, 1);
                let mut aside = path.clone().into_os_string();
                aside.push(".corrupt");
                let renamed = std::fs::rename(&path, &aside);
                tracing::error!(error = %e, segment = %path.display(), renamed = renamed.is_ok(),
                    "spool: unreadable segment set aside as *.corrupt");
            }
        }
    }
    Ok(next_id)
}

/// Scans one existing segment. `Ok(None)`: nothing worth keeping (delete it). `Err`: not ours
/// or unreadable (set it aside).
fn scan_segment(shared: &Shared, id: u64, path: &Path) -> Result<Option<SegState>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len < HEADER_LEN {
        if len > 0 {
            shared.count_damage(path, 0, format::Damage::TornTail, len);
        }
        return Ok(None);
    }
    let mut reader = SegmentReader::open(id, path).map_err(|e| e.to_string())?;
    let created_at_ms = match reader.read_header().map_err(|e| e.to_string())? {
        HeaderCheck::Ok { created_at_ms } => created_at_ms,
        HeaderCheck::Foreign => return Err("bad magic or unsupported version".into()),
    };
    let mut off = HEADER_LEN;
    let mut records = 0u64;
    let mut first_written_ms = None;
    loop {
        match reader.read_frame(off, len).map_err(|e| e.to_string())? {
            format::Frame::Record { record, next } => {
                records += 1;
                first_written_ms.get_or_insert(record.written_at_ms);
                off = next;
            }
            format::Frame::End => break,
            format::Frame::Damaged { damage, skip_to } => {
                shared.count_damage(path, off, damage, skip_to.saturating_sub(off));
                off = skip_to.max(off + 1);
            }
        }
    }
    if records == 0 {
        return Ok(None);
    }
    Ok(Some(SegState {
        path: path.to_path_buf(),
        visible_len: len,
        disk_bytes: len,
        sealed: true,
        recovered: true,
        records,
        acked: 0,
        read_off: HEADER_LEN,
        reader_done: false,
        outstanding: 0,
        first_written_ms: first_written_ms.or(Some(created_at_ms)),
        roll_requested: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses() {
        assert_eq!(
            "always".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Always
        );
        assert_eq!(
            " Never ".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Never
        );
        assert_eq!(
            "200ms".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(200)
        );
        assert_eq!(
            "every:50".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(50)
        );
        assert_eq!(
            "every:50ms".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(50)
        );
        assert_eq!(
            "2s".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EveryMs(2000)
        );
        for bad in [
            "",
            "sometimes",
            "ms",
            "-5ms",
            "every:",
            "99999999999999999999s",
        ] {
            let e = bad.parse::<FsyncPolicy>().unwrap_err();
            assert!(!e.is_retryable(), "{bad}");
        }
        for p in [
            FsyncPolicy::Always,
            FsyncPolicy::Never,
            FsyncPolicy::EveryMs(7),
        ] {
            assert_eq!(p.to_string().parse::<FsyncPolicy>().unwrap(), p);
        }
        assert_eq!(FsyncPolicy::default(), FsyncPolicy::EveryMs(200));
    }

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
