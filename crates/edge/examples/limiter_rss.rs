//! Memory of the replay limiter at N tracked tokens: resident set size before and after
//! filling it (Linux `/proc/self/statm`).
//!
//! `cargo run --release -p openclick-edge --example limiter_rss -- 1000000`

use openclick_edge::limits::{LimitConfig, ReplayLimiter};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let before = rss_bytes();
    let l = ReplayLimiter::new(&LimitConfig {
        max_entries: usize::MAX,
        ..LimitConfig::default()
    });
    let t = std::time::Instant::now();
    for i in 0..n {
        let id = format!("contact-{i}");
        l.check(l.key(&["acme", "spring", "msg-1", &id, "", "o"]), 1_000);
    }
    let took = t.elapsed();
    let after = rss_bytes();
    println!(
        "tracked {} tokens: RSS +{:.1} MiB = {:.1} bytes/token; fill {:.0} ns/token",
        l.entries(),
        (after - before) as f64 / 1048576.0,
        (after - before) as f64 / n as f64,
        took.as_nanos() as f64 / n as f64
    );
}
