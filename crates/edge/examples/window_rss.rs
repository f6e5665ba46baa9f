//! Memory of the behaviour window at N messages in flight, each with one click whose event is
//! held: resident set size before and after (Linux `/proc/self/statm`), split into the message
//! map and the held events, and the cost of recording plus releasing one click.
//!
//! `cargo run --release -p openclick-edge --example window_rss -- 1000000`

use openclick_edge::pipeline::Tracked;
use openclick_edge::window::{ClickWindow, WindowConfig};
use openclick_events::v1::{EngagementEvent, Signals};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A click event of realistic size: ids, a 90-byte destination, client and signals.
fn event(i: u64) -> EngagementEvent {
    EngagementEvent {
        event_id: format!("0190c6f2-7d4e-7000-8000-{i:012}"),
        tenant_id: "acme".into(),
        campaign_id: "autumn-2026".into(),
        message_id: format!("m-{i}"),
        contact_id: format!("contact-{i:08}"),
        link_id: "l3".into(),
        target_url: "https://shop.example.com/collections/autumn/item-003?utm_source=newsletter&utm_medium=email".into(),
        signals: Some(Signals::default()),
        ..EngagementEvent::default()
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let w = ClickWindow::new(WindowConfig {
        max_messages: usize::MAX,
        max_held: usize::MAX,
        ..WindowConfig::default()
    });
    let start = rss_bytes();
    let events: Vec<Tracked> = (0..n).map(|i| Tracked::of(&event(i))).collect();
    let before = rss_bytes();
    let event_bytes = (before - start) as f64 / n as f64;
    let t = std::time::Instant::now();
    let mut holds = Vec::with_capacity(n as usize);
    for i in 0..n {
        let m = format!("m-{i}");
        holds.push(
            w.record("acme", "autumn-2026", &m, "l3", false, 1_000)
                .unwrap(),
        );
    }
    let record_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let map = rss_bytes();
    let t = std::time::Instant::now();
    for (h, e) in holds.into_iter().zip(events) {
        w.hold(h, e).unwrap();
    }
    let hold_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let held = rss_bytes();
    let t = std::time::Instant::now();
    let mut released = 0u64;
    w.release_due(10_000, |e| {
        released += 1;
        drop(e);
    });
    let release_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let _ = held;
    println!(
        "{} messages in flight: map +{:.1} MiB ({:.0} B/message); a held click costs its event \
         ({:.0} B here: {} B inline + its encoded record) plus its queue slot; record {:.0} ns, hold \
         {:.0} ns, release {:.0} ns per click (cold, map growing); released {released}, left {} \
         messages",
        n,
        (map - before) as f64 / 1048576.0,
        (map - before) as f64 / n as f64,
        event_bytes,
        std::mem::size_of::<Tracked>(),
        record_ns,
        hold_ns,
        release_ns,
        w.messages()
    );
}
