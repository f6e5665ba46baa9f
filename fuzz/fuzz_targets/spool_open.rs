//! A segment file through the whole spool, public API and file system: the bytes are written
//! as segment `00000000000000000001.seg` in an empty directory, `Spool::open` scans it,
//! `read_batch` hands out records until empty, and every record is acked. Never panics, never
//! hangs (the read loop is bounded), and agrees with a model of the documented damage rules
//! (crates/sink/src/spool/mod.rs, "Restart and damage"): the same records in the same order,
//! the same damage count and skipped bytes; and a drained spool leaves no segment file.
//!
//! Input: as `spool_segment` (`openclick_fuzz::spool_model::segment`). A run costs a
//! directory, a file and a writer thread (about 1.1k runs/s here); `spool_segment` drives the
//! same scanning code in memory about 30 times faster (31.7k runs/s over its 10M-run campaign).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclick_fuzz::spool_model::{model, segment, Rec};
use openclick_sink::spool::{FsyncPolicy, Spool, SpoolConfig};

fn temp_dir() -> tempfile::TempDir {
    // tmpfs when there is one: the target writes and deletes a file per run.
    tempfile::Builder::new()
        .prefix("openclick-fuzz-spool")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some(seg) = segment(data) else {
        return;
    };
    let (want, want_damage, want_skipped, foreign) = model(&seg);

    let dir = temp_dir();
    let name = "00000000000000000001.seg";
    std::fs::write(dir.path().join(name), &seg).unwrap();
    let spool = Spool::open(SpoolConfig {
        fsync: FsyncPolicy::Never,
        ..SpoolConfig::new(dir.path())
    })
    .expect("a spool opens whatever its segment holds");
    let opened = spool.stats();
    assert_eq!(opened.corrupt_records, want_damage, "damage count");
    assert_eq!(opened.torn_bytes, want_skipped, "skipped bytes");
    assert_eq!(opened.corrupt_segments, u64::from(foreign));
    assert_eq!(opened.records_on_disk, want.len() as u64);

    let mut got = Vec::new();
    let mut calls = 0usize;
    loop {
        calls += 1;
        assert!(calls <= want.len() + 4, "read_batch does not run dry");
        let batch = spool.read_batch(7).expect("read_batch");
        if batch.is_empty() {
            break;
        }
        for r in batch {
            spool.ack(r.id);
            got.push(Rec {
                written_at_ms: r.written_at_ms,
                key: r.key,
                payload: r.payload,
            });
        }
    }
    assert_eq!(got, want, "records");
    assert!(spool.is_empty(), "everything acked");
    let s = spool.stats();
    assert_eq!(s.corrupt_records, want_damage, "damage counted once");
    assert_eq!(
        (s.replayed, s.acked),
        (want.len() as u64, want.len() as u64)
    );
    assert_eq!(s.segments, 0);
    drop(spool);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if foreign {
        assert_eq!(left, vec![format!("{name}.corrupt")]);
    } else {
        assert!(left.is_empty(), "left behind: {left:?}");
    }
});
