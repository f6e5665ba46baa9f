//! Measures resident-memory growth per entry and build/load time, honestly: RSS from
//! `/proc/self/statm` before and after, in a fresh process per structure.
//!
//! ```text
//! cargo run --release -p openclick-suppress --example rss -- dense 10000000
//! cargo run --release -p openclick-suppress --example rss -- dashmap 10000000
//! cargo run --release -p openclick-suppress --example rss -- load 10000000   # snapshot file
//! ```

use std::hash::Hasher;
use std::io::Write;
use std::time::Instant;

use dashmap::DashMap;
use openclick_suppress::{Reason, SuppressionSet};
use siphasher::sip::SipHasher13;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "dense".into());
    let n: usize = args
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let mut name = String::with_capacity(64);
    let mut contact = |i: usize| {
        name.clear();
        use std::fmt::Write as _;
        write!(name, "contact-{i:010}@example.com").unwrap();
        name.clone()
    };
    match what.as_str() {
        "dense" => {
            let before = rss_bytes();
            let t = Instant::now();
            let s = SuppressionSet::new();
            for i in 0..n {
                s.insert("tenant-0042", &contact(i), Reason::OptOut);
            }
            let took = t.elapsed();
            let after = rss_bytes();
            report("dense", n, before, after, took);
            println!(
                "  table: {} bytes allocated ({:.2} bytes/entry), len {}",
                s.table_bytes(),
                s.table_bytes() as f64 / n as f64,
                s.len()
            );
        }
        "dashmap" => {
            let (k0, k1): (u64, u64) = (rand::random(), rand::random());
            let before = rss_bytes();
            let t = Instant::now();
            let m: DashMap<u64, Reason> = DashMap::new();
            for i in 0..n {
                let mut h = SipHasher13::new_with_keys(k0, k1);
                h.write(b"tenant-0042");
                h.write_u8(0xff);
                h.write(contact(i).as_bytes());
                m.insert(h.finish(), Reason::OptOut);
            }
            let took = t.elapsed();
            let after = rss_bytes();
            report("dashmap", n, before, after, took);
            println!("  len {}", m.len());
        }
        "load" => {
            let dir = std::env::temp_dir().join(format!("suppress-rss-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("snapshot.csv");
            {
                let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
                writeln!(f, "tenant,contact,reason").unwrap();
                for i in 0..n {
                    writeln!(f, "tenant-{:04},{},opt_out", i % 1000, contact(i)).unwrap();
                }
            }
            let bytes = std::fs::metadata(&path).unwrap().len();
            let before = rss_bytes();
            let t = Instant::now();
            let s = SuppressionSet::new();
            let read = s.load_file(&path).unwrap();
            let took = t.elapsed();
            let after = rss_bytes();
            std::fs::remove_dir_all(&dir).unwrap();
            println!("snapshot: {read} lines, {bytes} bytes");
            report("load_file", n, before, after, took);
        }
        other => panic!("unknown mode {other}: dense | dashmap | load"),
    }
}

fn report(what: &str, n: usize, before: u64, after: u64, took: std::time::Duration) {
    println!(
        "{what}: {n} entries in {:.2} s ({:.0} ns/insert); RSS {} -> {} MiB: {:.2} bytes/entry",
        took.as_secs_f64(),
        took.as_nanos() as f64 / n as f64,
        before >> 20,
        after >> 20,
        (after.saturating_sub(before)) as f64 / n as f64
    );
}
