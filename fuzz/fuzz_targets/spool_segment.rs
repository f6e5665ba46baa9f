//! The spool's segment reader on arbitrary bytes, in memory: `scan_segment_bytes` runs the
//! code a restart runs on each segment file (header check, framing, CRC, resync), over a
//! `Cursor` instead of a file. Never panics, never loops, and agrees with an independent model
//! of the documented damage rules (crates/sink/src/spool/mod.rs, "Restart and damage"): the
//! same records in the same order, the same damage count and skipped bytes, the same verdict
//! on a foreign header. `spool_open` checks the same through the whole spool and a directory.
//!
//! Input: a flags byte, then the segment bytes (`openclick_fuzz::spool_model::segment`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclick_fuzz::spool_model::{model, segment, Rec};
use openclick_sink::spool::fuzzing::scan_segment_bytes;

fuzz_target!(|data: &[u8]| {
    let Some(seg) = segment(data) else {
        return;
    };
    let (want, want_damage, want_skipped, foreign) = model(&seg);
    let got = scan_segment_bytes(&seg);
    assert_eq!(got.foreign, foreign, "foreign header");
    assert_eq!(got.damaged, want_damage, "damage count");
    assert_eq!(got.skipped_bytes, want_skipped, "skipped bytes");
    let records: Vec<Rec> = got
        .records
        .into_iter()
        .map(|r| Rec {
            written_at_ms: r.written_at_ms,
            key: r.key,
            payload: r.payload,
        })
        .collect();
    assert_eq!(records, want, "records");
});
