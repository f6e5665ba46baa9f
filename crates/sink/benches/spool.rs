//! Spool append throughput: ~300-byte records appended as fast as the writer thread sustains
//! (an append refused with `DroppedQueueFull` is retried after a yield), then `flush`, under the
//! default fsync policy (every 200 ms) and under `always`. Reported as elements (events) per
//! second.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use openclick_sink::spool::{AppendOutcome, FsyncPolicy, Spool, SpoolConfig};

const EVENTS: u64 = 20_000;

fn run(policy: FsyncPolicy, events: u64) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(SpoolConfig {
        fsync: policy,
        ..SpoolConfig::new(dir.path())
    })
    .expect("open");
    let key = b"tenant-0001/contact-000000000042";
    let mut payload = vec![0u8; 300 - key.len()];
    let start = Instant::now();
    for i in 0..events {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        loop {
            match spool.append(key, &payload) {
                AppendOutcome::Queued => break,
                AppendOutcome::DroppedQueueFull => std::thread::yield_now(),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    spool.flush(Duration::from_secs(60)).expect("flush");
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("spool_append_300b");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(EVENTS));
    for (name, policy) in [
        ("fsync_every_200ms", FsyncPolicy::default()),
        ("fsync_always", FsyncPolicy::Always),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run(policy, EVENTS)).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
