//! The writer thread: drains the append channel, writes frames in batches, rolls segments and
//! fsyncs according to the [`FsyncPolicy`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{encode_header, segment_file_name, HEADER_LEN};
use super::state::{Chores, Counters, SegState};
use super::{now_ms, FsyncPolicy, Shared};

/// Most commands taken from the channel in one batch.
const MAX_BATCH: usize = 4096;
/// Bytes buffered before they are written out, even mid-batch.
const MAX_PENDING_BYTES: usize = 1024 * 1024;
/// Sealed, not yet fsynced files kept open for `flush` under `FsyncPolicy::Never`.
const MAX_UNSYNCED_FILES: usize = 8;

/// A message to the writer thread.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Write one encoded frame (bytes already reserved against `max_bytes`).
    Write { frame: Vec<u8>, written_at_ms: i64 },
    /// Write and fsync everything received so far, then answer.
    Flush(Sender<Result<(), String>>),
    /// Seal the active segment if its id is this one (everything in it is acknowledged).
    Roll(u64),
    /// Write and fsync everything, then stop.
    Shutdown,
}

struct Active {
    id: u64,
    path: PathBuf,
    file: File,
    /// Bytes in the file plus bytes pending for it.
    len: u64,
    /// Records in the file plus records pending for it.
    records: u64,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Cmd>,
    next_id: u64,
    active: Option<Active>,
    pending: Vec<u8>,
    pending_records: u64,
    pending_first_ms: Option<i64>,
    /// The active file has data that is not fsynced.
    dirty: bool,
    /// Sealed files not yet fsynced (only under `FsyncPolicy::Never`), for `flush`.
    unsynced: Vec<File>,
    last_sync: Instant,
    /// An error since the last flush answer.
    batch_error: Option<String>,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, rx: Receiver<Cmd>, next_id: u64) -> Writer {
        Writer {
            shared,
            rx,
            next_id,
            active: None,
            pending: Vec::with_capacity(64 * 1024),
            pending_records: 0,
            pending_first_ms: None,
            dirty: false,
            unsynced: Vec::new(),
            last_sync: Instant::now(),
            batch_error: None,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let Some(first) = self.next_cmd() else {
                break;
            };
            let mut flushes = Vec::new();
            let mut stop = self.handle(first, &mut flushes);
            let mut taken = 1;
            while !stop && taken < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(cmd) => {
                        stop = self.handle(cmd, &mut flushes);
                        taken += 1;
                    }
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
            self.commit();
            self.sync(stop || !flushes.is_empty());
            if !flushes.is_empty() {
                let result = match self.batch_error.take() {
                    None => Ok(()),
                    Some(e) => Err(e),
                };
                for reply in flushes {
                    let _ = reply.send(result.clone());
                }
            }
            if stop {
                return;
            }
        }
        // Every sender is gone: finish what we have.
        self.commit();
        self.sync(true);
    }

    /// The next command, fsyncing on the way if an `EveryMs` deadline passes while idle.
    /// `None` once every sender is gone.
    fn next_cmd(&mut self) -> Option<Cmd> {
        loop {
            let wait = match self.shared.config.fsync {
                FsyncPolicy::EveryMs(ms) if self.dirty => {
                    let deadline = self.last_sync + Duration::from_millis(ms);
                    Some(deadline.saturating_duration_since(Instant::now()))
                }
                _ => None,
            };
            match wait {
                None => return self.rx.recv().ok(),
                Some(w) if w.is_zero() => self.sync(false),
                Some(w) => match self.rx.recv_timeout(w) {
                    Ok(cmd) => return Some(cmd),
                    Err(RecvTimeoutError::Timeout) => self.sync(false),
                    Err(RecvTimeoutError::Disconnected) => return None,
                },
            }
        }
    }

    /// Handles one command; `true` means stop after this batch.
    fn handle(&mut self, cmd: Cmd, flushes: &mut Vec<Sender<Result<(), String>>>) -> bool {
        match cmd {
            Cmd::Write {
                frame,
                written_at_ms,
            } => {
                self.write(frame, written_at_ms);
                if self.pending.len() >= MAX_PENDING_BYTES {
                    self.commit();
                }
                false
            }
            Cmd::Flush(reply) => {
                flushes.push(reply);
                false
            }
            Cmd::Roll(id) => {
                if self.active.as_ref().is_some_and(|a| a.id == id) {
                    self.commit();
                    self.seal_active();
                }
                false
            }
            Cmd::Shutdown => true,
        }
    }

    fn write(&mut self, frame: Vec<u8>, written_at_ms: i64) {
        let flen = frame.len() as u64;
        let seg_bytes = self.shared.config.segment_bytes;
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.records > 0 && a.len + flen > seg_bytes)
        {
            self.commit();
            self.seal_active();
        }
        if self.active.is_none() {
            if let Err(e) = self.create_segment() {
                let c = &self.shared.counters;
                Counters::add(&c.write_errors, 1);
                Counters::add(&c.dropped_write_error, 1);
                Counters::sub(&c.used_bytes, flen);
                Counters::sub(&c.queued, 1);
                self.io_error("create segment", &e);
                return;
            }
        }
        let Some(active) = self.active.as_mut() else {
            return;
        };
        self.pending.extend_from_slice(&frame);
        active.len += flen;
        active.records += 1;
        self.pending_records += 1;
        self.pending_first_ms.get_or_insert(written_at_ms);
    }

    fn create_segment(&mut self) -> io::Result<()> {
        let dir = self.shared.config.dir.clone();
        let mut attempts = 0;
        let (id, path, mut file) = loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let path = dir.join(segment_file_name(id));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (id, path, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let created = now_ms();
        let header = encode_header(created);
        if let Err(e) = file.write_all(&header) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        if self.shared.config.fsync != FsyncPolicy::Never {
            file.sync_data()?;
            sync_dir(&dir);
        }
        Counters::add(&self.shared.counters.used_bytes, HEADER_LEN);
        self.shared.state.lock().segs.insert(
            id,
            SegState {
                path: path.clone(),
                visible_len: HEADER_LEN,
                disk_bytes: HEADER_LEN,
                sealed: false,
                recovered: false,
                records: 0,
                acked: 0,
                read_off: HEADER_LEN,
                reader_done: false,
                outstanding: 0,
                first_written_ms: None,
                roll_requested: false,
            },
        );
        self.active = Some(Active {
            id,
            path,
            file,
            len: HEADER_LEN,
            records: 0,
        });
        Ok(())
    }

    /// Writes pending frames to the active file and makes them visible to the reader.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = self.pending.len() as u64;
        let records = self.pending_records;
        let first_ms = self.pending_first_ms.take();
        self.pending_records = 0;
        let c = &self.shared.counters;
        let Some(active) = self.active.as_mut() else {
            // Cannot happen (pending data always has an active segment); account it as lost.
            self.pending.clear();
            Counters::add(&c.dropped_write_error, records);
            Counters::sub(&c.used_bytes, bytes);
            Counters::sub(&c.queued, records);
            return;
        };
        let written = active.file.write_all(&self.pending);
        self.pending.clear();
        if let Err(e) = written {
            Counters::add(&c.write_errors, 1);
            Counters::add(&c.dropped_write_error, records);
            Counters::sub(&c.used_bytes, bytes);
            Counters::sub(&c.queued, records);
            self.io_error("write", &e);
            // The file may hold part of the batch past its visible length: stop using it. The
            // reader never reads past the visible length; after a restart the partial frame
            // is a torn tail.
            self.abandon_active();
            return;
        }
        let mut sync_err = None;
        if self.shared.config.fsync == FsyncPolicy::Always {
            match active.file.sync_data() {
                Ok(()) => {
                    Counters::add(&c.fsyncs, 1);
                    self.last_sync = Instant::now();
                }
                Err(e) => sync_err = Some(e),
            }
        } else {
            self.dirty = true;
        }
        let (id, len) = (active.id, active.len);
        {
            let mut st = self.shared.state.lock();
            if let Some(seg) = st.segs.get_mut(&id) {
                seg.visible_len = len;
                seg.disk_bytes += bytes;
                seg.records += records;
                if seg.first_written_ms.is_none() {
                    seg.first_written_ms = first_ms;
                }
            }
        }
        Counters::sub(&c.queued, records);
        if let Some(e) = sync_err {
            Counters::add(&c.write_errors, 1);
            self.io_error("fsync", &e);
            // Written but maybe not durable: keep the records (they are readable), move on.
            self.abandon_active();
        }
    }

    /// Fsyncs if the policy (or `force`) says so.
    fn sync(&mut self, force: bool) {
        let due = match self.shared.config.fsync {
            FsyncPolicy::Always => false,
            FsyncPolicy::EveryMs(ms) => {
                self.dirty && self.last_sync.elapsed() >= Duration::from_millis(ms)
            }
            FsyncPolicy::Never => false,
        };
        if !(due || force) {
            return;
        }
        let mut result = Ok(());
        for f in self.unsynced.drain(..) {
            if let Err(e) = f.sync_data() {
                result = Err(e);
            }
        }
        if self.dirty {
            if let Some(active) = self.active.as_ref() {
                if let Err(e) = active.file.sync_data() {
                    result = Err(e);
                }
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Counters::add(&self.shared.counters.fsyncs, 1);
        if let Err(e) = result {
            Counters::add(&self.shared.counters.write_errors, 1);
            self.io_error("fsync", &e);
            self.abandon_active();
        }
    }

    /// Seals the active segment after fsyncing it per policy.
    fn seal_active(&mut self) {
        let Some(active) = self.active.take() else {
            return;
        };
        match self.shared.config.fsync {
            FsyncPolicy::Always => {}
            FsyncPolicy::EveryMs(_) => {
                if self.dirty {
                    match active.file.sync_data() {
                        Ok(()) => Counters::add(&self.shared.counters.fsyncs, 1),
                        Err(e) => {
                            Counters::add(&self.shared.counters.write_errors, 1);
                            self.io_error("fsync", &e);
                        }
                    }
                }
            }
            FsyncPolicy::Never => {
                if self.dirty {
                    // Kept for `flush`; bounded so a long run without flush holds few files.
                    if self.unsynced.len() >= MAX_UNSYNCED_FILES {
                        let oldest = self.unsynced.remove(0);
                        if oldest.sync_data().is_ok() {
                            Counters::add(&self.shared.counters.fsyncs, 1);
                        }
                    }
                    self.unsynced.push(active.file);
                }
            }
        }
        self.dirty = false;
        self.mark_sealed(active.id);
    }

    /// Stops writing to the active segment without fsyncing it (after an I/O error).
    fn abandon_active(&mut self) {
        if let Some(active) = self.active.take() {
            tracing::warn!(segment = %active.path.display(), records = active.records,
                "spool: sealing segment after an I/O error; later records go to a new segment");
            self.dirty = false;
            self.mark_sealed(active.id);
        }
    }

    fn mark_sealed(&mut self, id: u64) {
        let mut chores = Chores::default();
        {
            let mut st = self.shared.state.lock();
            if let Some(seg) = st.segs.get_mut(&id) {
                seg.sealed = true;
            }
            st.settle(id, &mut chores);
        }
        self.shared.delete_segments(chores.delete);
    }

    fn io_error(&mut self, what: &str, e: &io::Error) {
        if let Some(suppressed) = self.shared.io_log.allow() {
            tracing::error!(error = %e, op = what, dir = %self.shared.config.dir.display(),
                suppressed, "spool: I/O error; affected records are counted as dropped_write_error");
        }
        // The first error since the last flush answer is the one reported.
        if self.batch_error.is_none() {
            self.batch_error = Some(format!("{what}: {e}"));
        }
    }
}

/// Fsyncs a directory so a created file's entry is durable. Best effort.
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}
