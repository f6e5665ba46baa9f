//! The reading side of the spool: handing records out in write order, and their acks and
//! nacks (which decide when a segment file may be deleted; see the [module docs](super)).

use std::path::Path;

use super::format::{self, SegmentReader};
use super::state::{Chores, Counters};
use super::{RecordId, Shared, Spool, SpoolError, SpooledRecord};

impl Spool {
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
