//! Measures resident-memory growth per entry and build/load time, honestly: RSS from
//! `/proc/self/statm` before and after, in a fresh process per structure.
//!
//! ```text
//! cargo run --release -p openclick-suppress --example rss -- dense 10000000
//! cargo run --release -p openclick-suppress --example rss -- dashmap 10000000
//! cargo run --release -p openclick-suppress --example rss -- load 10000000   # snapshot file
//! cargo run --release -p openclick-suppress --example rss -- lookup 10000000 # both, timed
//! ```
//!
//! `lookup` times 2M random lookups (half present) per structure, in wall time and in this
//! thread's on-CPU time (`/proc/thread-self/schedstat`), which stays honest on a busy machine
//! where the thread is often preempted.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::time::Instant;

use dashmap::DashMap;
use openclick_suppress::{Reason, SuppressionSet};

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
            let state = foldhash::quality::SeedableRandomState::random();
            let before = rss_bytes();
            let t = Instant::now();
            let m: DashMap<u64, Reason> = DashMap::new();
            for i in 0..n {
                let mut h = state.build_hasher();
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
        "lookup" => lookup(n),
        other => panic!("unknown mode {other}: dense | dashmap | load | lookup"),
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

/// Nanoseconds this thread has spent on a CPU.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn lookup(n: usize) {
    let name = |i: usize| format!("contact-{i:010}@example.com");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let queries: Vec<String> = (0..2_000_000)
        .map(|j| {
            let i = (rnd() % n as u64) as usize;
            name(if j % 2 == 0 { i } else { n + i })
        })
        .collect();
    let time = |what: &str, f: &dyn Fn(&str) -> bool| {
        for round in 0..3 {
            let (w0, c0) = (Instant::now(), cpu_ns());
            let mut found = 0usize;
            for q in &queries {
                found += usize::from(std::hint::black_box(f(q)));
            }
            let (wall, cpu) = (w0.elapsed().as_nanos() as f64, (cpu_ns() - c0) as f64);
            let per = queries.len() as f64;
            println!(
                "{what} round {round}: {:.1} ns/lookup wall, {:.1} ns/lookup on-CPU ({found} found)",
                wall / per,
                cpu / per
            );
        }
    };
    {
        let s = SuppressionSet::new();
        for i in 0..n {
            s.insert("tenant-0042", &name(i), Reason::OptOut);
        }
        time("dense", &|q| s.is_suppressed("tenant-0042", q));
    }
    {
        let state = foldhash::quality::SeedableRandomState::random();
        let key = |c: &str| {
            let mut h = state.build_hasher();
            h.write(b"tenant-0042");
            h.write_u8(0xff);
            h.write(c.as_bytes());
            h.finish()
        };
        let m: DashMap<u64, Reason> = DashMap::new();
        for i in 0..n {
            m.insert(key(&name(i)), Reason::OptOut);
        }
        time("dashmap", &|q| m.contains_key(&key(q)));
    }
}
