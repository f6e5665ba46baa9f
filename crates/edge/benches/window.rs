//! The behaviour window's cost per click at steady state: record + hold + release of one
//! click of a new message, with `IN_FLIGHT` clicks in the window (time advances one ms per
//! click, so that each release finds one due click and removes its message), beside the cost
//! of cloning the event the loop holds (which the edge does not do: it moves its event).
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use openclick_edge::pipeline::Tracked;
use openclick_edge::window::{ClickWindow, WindowConfig};
use openclick_events::v1::{EngagementEvent, Signals};

const IN_FLIGHT: i64 = 100_000;

fn bench(c: &mut Criterion) {
    use std::fmt::Write as _;
    let mut m = String::new();
    let w = ClickWindow::new(WindowConfig {
        window_ms: IN_FLIGHT,
        ..WindowConfig::default()
    });
    let ev = Tracked::of(&EngagementEvent {
        signals: Some(Signals::default()),
        ..EngagementEvent::default()
    });
    // Fill the window: one click per ms, so IN_FLIGHT are held at any time.
    let mut now = 0i64;
    for _ in 0..IN_FLIGHT {
        m.clear();
        let _ = write!(m, "m-{now}");
        let h = w.record("acme", "autumn", &m, "l3", false, now).unwrap();
        w.hold(h, ev.clone()).unwrap();
        now += 1;
    }
    c.bench_function("window_record_hold_release_100k_in_flight", |b| {
        b.iter(|| {
            m.clear();
            let _ = write!(m, "m-{now}");
            let h = w
                .record("acme", "autumn", black_box(&m), "l3", false, now)
                .unwrap();
            w.hold(h, ev.clone()).unwrap();
            now += 1;
            w.release_due(now, |e| {
                black_box(e);
            })
        })
    });
    assert!(
        w.messages() as i64 <= IN_FLIGHT,
        "messages removed on release"
    );
    c.bench_function("event_clone_only", |b| b.iter(|| black_box(ev.clone())));
}

criterion_group!(benches, bench);
criterion_main!(benches);
