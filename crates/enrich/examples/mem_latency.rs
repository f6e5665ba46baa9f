//! How long one dependent load takes on this machine as the data touched grows: the figure
//! behind `NetSet`'s layout (a lookup that cannot keep 300k prefixes hot pays one of these
//! loads for each level it misses, so the structure is built to stay small).
//!
//! Each size is a random cyclic permutation (Sattolo's algorithm) followed pointer by pointer,
//! so every load depends on the one before and the prefetchers cannot guess the next line.
//!
//! ```sh
//! cargo run --release -p openclick-enrich --example mem_latency
//! ```

use std::time::Instant;

fn main() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    println!("{:>8}  {:>10}", "KiB", "ns/load");
    for kib in [64usize, 256, 512, 1024, 1536, 2048, 3072, 4096, 8192, 16384] {
        let n = kib * 1024 / std::mem::size_of::<usize>();
        let mut next: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (rnd() % i as u64) as usize;
            next.swap(i, j);
        }
        let steps = 4_000_000;
        let mut p = 0;
        // Warm: one pass over the cycle.
        for _ in 0..n {
            p = next[p];
        }
        let t = Instant::now();
        for _ in 0..steps {
            p = next[p];
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(steps);
        println!("{kib:>8}  {ns:>10.1}   (end {p})");
    }
}
