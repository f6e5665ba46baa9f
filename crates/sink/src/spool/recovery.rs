//! Opening a spool directory left by a previous process: every segment is scanned (CRC
//! checked) and queued for replay before anything appended later; damage is counted, never
//! fatal (see the [module docs](super), "Restart and damage").

use std::io;
use std::path::Path;

use super::format::{self, Damage, DecodedRecord, HeaderCheck, SegmentReader, Source, HEADER_LEN};
use super::state::{Counters, SegState};
use super::{Shared, SpoolError};

/// Scans the segments already in the directory into the state. Returns the next segment id.
pub(super) fn recover(shared: &Shared) -> Result<u64, SpoolError> {
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
    let mut reader = SegmentReader::open(id, path).map_err(|e| e.to_string())?;
    let mut records = 0u64;
    let mut first_written_ms = None;
    let scan = scan_frames(
        &mut reader,
        len,
        |record| {
            records += 1;
            first_written_ms.get_or_insert(record.written_at_ms);
        },
        |off, damage, skipped| shared.count_damage(path, off, damage, skipped),
    )
    .map_err(|e| e.to_string())?;
    let created_at_ms = match scan {
        Scan::TooShort => return Ok(None),
        Scan::Foreign => return Err("bad magic or unsupported version".into()),
        Scan::Ours { created_at_ms } => created_at_ms,
    };
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

/// What [`scan_frames`] found at the start of a segment.
pub(super) enum Scan {
    /// Shorter than a header (counted as a torn tail when not empty): nothing to keep.
    TooShort,
    /// Wrong magic or version: not ours, set aside untouched.
    Foreign,
    /// Our header; the frames were reported.
    Ours { created_at_ms: i64 },
}

/// Reads a segment of `len` bytes the way a restart does: the header, then every frame in
/// order, each good record to `on_record` and each damaged spot to `on_damage` (offset, kind,
/// bytes skipped), by the rules in the [module docs](super). Shared by recovery and the
/// in-memory fuzz entry point, [`super::fuzzing::scan_segment_bytes`].
pub(super) fn scan_frames<R: Source>(
    reader: &mut SegmentReader<R>,
    len: u64,
    mut on_record: impl FnMut(DecodedRecord),
    mut on_damage: impl FnMut(u64, Damage, u64),
) -> io::Result<Scan> {
    if len < HEADER_LEN {
        if len > 0 {
            on_damage(0, Damage::TornTail, len);
        }
        return Ok(Scan::TooShort);
    }
    let created_at_ms = match reader.read_header()? {
        HeaderCheck::Ok { created_at_ms } => created_at_ms,
        HeaderCheck::Foreign => return Ok(Scan::Foreign),
    };
    let mut off = HEADER_LEN;
    loop {
        match reader.read_frame(off, len)? {
            format::Frame::Record { record, next } => {
                on_record(record);
                off = next;
            }
            format::Frame::End => return Ok(Scan::Ours { created_at_ms }),
            format::Frame::Damaged { damage, skip_to } => {
                on_damage(off, damage, skip_to.saturating_sub(off));
                off = skip_to.max(off + 1);
            }
        }
    }
}
