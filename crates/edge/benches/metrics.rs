//! What the edge's metrics cost per request: the latency histogram's observation (with and
//! without reading the clock), a hit counter, an event's signal counters; and the same
//! observation from two threads at once, against two threads bumping one shared atomic (what
//! sharding per thread avoids).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use openclick_edge::metrics::EdgeMetrics;
use openclick_edge::HitClass;
use openclick_events::v1::{BotReason, ImageProxy, Signals};

/// Runs `f` `iters` times on each of two threads; the wall time.
fn two_threads(iters: u64, f: impl Fn() + Send + Sync + 'static) -> Duration {
    let f = Arc::new(f);
    let start = Instant::now();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let f = f.clone();
            std::thread::spawn(move || {
                for _ in 0..iters {
                    f();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let m = Arc::new(EdgeMetrics::new());
    let mut g = c.benchmark_group("edge_metrics");
    g.bench_function("clock_only", |b| {
        b.iter(|| black_box(Instant::now().elapsed()))
    });
    g.bench_function("observe", |b| {
        b.iter(|| m.observe(0, 0, black_box(Duration::from_micros(80))))
    });
    g.bench_function("per_request", |b| {
        // What every tracking request pays: the clock read twice, a hit, an observation.
        b.iter(|| {
            let start = Instant::now();
            m.hit(black_box(HitClass::OpenTracked));
            m.observe(0, 0, start.elapsed());
        })
    });
    let signals = Signals {
        machine_open: true,
        image_proxy: ImageProxy::Apple as i32,
        suspected_bot: true,
        bot_reasons: vec![BotReason::Prefetch as i32, BotReason::TooFast as i32],
        prefetch: true,
        dnt: false,
        gpc: false,
        verdict: openclick_events::v1::Verdict::Machine as i32,
        certainty: openclick_events::v1::Certainty::Certain as i32,
    };
    g.bench_function("event_signals", |b| {
        b.iter(|| m.event_signals(Some(black_box(&signals))))
    });
    let mm = m.clone();
    g.bench_function("observe_2_threads", move |b| {
        let mm = mm.clone();
        b.iter_custom(move |iters| {
            let mm = mm.clone();
            two_threads(iters, move || {
                mm.observe(0, 0, black_box(Duration::from_micros(80)))
            })
        })
    });
    g.bench_function("shared_atomic_2_threads", |b| {
        let shared = Arc::new(AtomicU64::new(0));
        b.iter_custom(move |iters| {
            let s = shared.clone();
            two_threads(iters, move || {
                s.fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    g.finish();
    let mut out = String::new();
    m.render_histogram(&mut out);
    assert!(out.contains("openclick_http_request_duration_seconds_count"));
}

criterion_group!(benches, bench);
criterion_main!(benches);
