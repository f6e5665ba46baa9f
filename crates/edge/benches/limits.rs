//! The per-token replay limiter's cost per hit, with 1M tokens tracked: a hit of a token seen
//! before (the common replay case), and a hit of a token not seen yet (an insert), against a
//! baseline of hashing the key alone.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use openclick_edge::limits::{LimitConfig, ReplayLimiter};

const TRACKED: u64 = 1_000_000;

fn bench(c: &mut Criterion) {
    let l = ReplayLimiter::new(&LimitConfig {
        burst: u32::MAX,
        per_minute: 1,
        max_entries: 4 * TRACKED as usize,
        ..LimitConfig::default()
    });
    let ids: Vec<String> = (0..TRACKED).map(|i| format!("contact-{i}")).collect();
    for id in &ids {
        l.check(l.key(&["acme", "spring", "msg-1", id, "", "o"]), 1_000);
    }
    assert_eq!(l.entries(), TRACKED as usize);
    let mut g = c.benchmark_group("limiter_1M");
    let mut i = 0usize;
    g.bench_function("key_only", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            std::hint::black_box(l.key(&["acme", "spring", "msg-1", &ids[i], "", "o"]))
        })
    });
    g.bench_function("key_and_check_tracked", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            let k = l.key(&["acme", "spring", "msg-1", &ids[i], "", "o"]);
            std::hint::black_box(l.check(k, 2_000))
        })
    });
    let mut n = 0u64;
    g.bench_function("key_and_check_new", |b| {
        b.iter(|| {
            n += 1;
            std::hint::black_box(l.check(n.wrapping_mul(0x9E37_79B9_7F4A_7C15), 2_000))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
