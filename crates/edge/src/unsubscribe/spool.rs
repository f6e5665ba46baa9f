//! The unsubscribe spool (described in the parent module's docs): the NDJSON file a change goes to
//! when the writer does not acknowledge it in time, its file helpers, and its replay.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openclick_suppress::parse::ChangeLine;
use openclick_suppress::Change;

use super::{Unsubscribe, SOURCE};

/// The spool file and the mutex its writers take (only inside blocking tasks).
pub(super) struct SpoolFile {
    pub(super) path: PathBuf,
    pub(super) lock: parking_lot::Mutex<()>,
}

impl Unsubscribe {
    /// The writer's acknowledgement within the timeout, else the spool.
    pub(super) async fn make_durable(&self, changes: &[Change]) -> Result<(), String> {
        let w = tokio::time::timeout(self.config.ack_timeout, self.writer.write(changes, SOURCE));
        let why = match w.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no acknowledgement in time".to_owned(),
        };
        tracing::warn!(reason = %why, "unsubscribe not acknowledged: spooled for replay");
        // File I/O off the async workers; the spool's mutex is taken inside the blocking task
        // and released before it returns.
        let lines: Vec<String> = changes
            .iter()
            .map(|c| serde_json::to_string(&ChangeLine::from(c)).unwrap_or_default())
            .collect();
        let spool = self.spool.clone();
        let n = lines.len() as u64;
        let r = tokio::task::spawn_blocking(move || {
            let _g = spool.lock.lock();
            append_lines(&spool.path, &lines)
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match r {
            Ok(()) => {
                self.counters.spooled.fetch_add(n, Ordering::Relaxed);
                self.counters.pending.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counters.spool_errors.fetch_add(1, Ordering::Relaxed);
                Err(format!("{why}; spool: {e}"))
            }
        }
    }

    /// One replay round: writes every spooled change through the writer and, once they are
    /// acknowledged, removes them from the spool. Returns how many were replayed.
    pub async fn replay_once(&self) -> Result<usize, String> {
        if self.pending() == 0 {
            return Ok(0);
        }
        let spool = self.spool.clone();
        let changes = tokio::task::spawn_blocking(move || {
            let _g = spool.lock.lock();
            read_spool(&spool.path)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if changes.is_empty() {
            self.counters.pending.store(0, Ordering::Relaxed);
            return Ok(0);
        }
        match tokio::time::timeout(
            self.config.ack_timeout.max(Duration::from_secs(5)),
            self.writer.write(&changes, SOURCE),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no acknowledgement in time".into()),
        }
        let n = changes.len();
        let spool = self.spool.clone();
        let left = tokio::task::spawn_blocking(move || {
            let _g = spool.lock.lock();
            drop_first_lines(&spool.path, n)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        self.counters.pending.store(left as u64, Ordering::Relaxed);
        self.counters
            .replayed
            .fetch_add(n as u64, Ordering::Relaxed);
        tracing::info!(replayed = n, left, "spooled unsubscribes acknowledged");
        Ok(n)
    }

    /// Replays the spool every second until `stop` says so.
    pub async fn replay(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.replay_once().await {
                static LOG: openclick_common::LogLimiter =
                    openclick_common::LogLimiter::new(Duration::from_secs(30));
                if let Some(suppressed) = LOG.allow() {
                    tracing::warn!(error = %e, pending = self.pending(), suppressed, "unsubscribe spool replay failed; retrying");
                }
            }
        }
    }
}

fn append_lines(path: &Path, lines: &[String]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buf = String::new();
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    f.write_all(buf.as_bytes())?;
    f.sync_data()
}

pub(super) fn read_spool(path: &Path) -> io::Result<Vec<Change>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let now = openclick_common::now_ms();
    let mut out = Vec::new();
    for line in io::BufReader::new(f).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match openclick_suppress::parse::parse_json_line(&line, now) {
            Ok(c) => out.push(c),
            // A torn last line (a crash mid-append, before its fsync returned: never
            // acknowledged to anyone) is skipped.
            Err(_) => tracing::warn!("unsubscribe spool: skipping an unreadable line"),
        }
    }
    Ok(out)
}

/// Removes the first `n` change lines (those just acknowledged); returns how many are left.
fn drop_first_lines(path: &Path, n: usize) -> io::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    let rest: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .skip(n)
        .collect();
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        for l in &rest {
            f.write_all(l.as_bytes())?;
            f.write_all(b"\n")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(rest.len())
}
