//! Lookup time at 10 million entries: the dense table behind `SuppressionSet` against the
//! `DashMap<u64, Reason>` it replaced (same keyed foldhash of `(tenant, contact)`, so both
//! columns include hashing). Queries are random ids, half of them present (`hit`) and half not
//! (`miss`), drawn from 1M precomputed strings so string building is not measured.
//!
//! `SUPPRESS_BENCH_N` overrides the entry count (default 10_000_000).

#![allow(missing_docs)]

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use dashmap::DashMap;
use openclick_suppress::{Reason, SuppressionSet};

const TENANT: &str = "tenant-0042";

fn n() -> usize {
    std::env::var("SUPPRESS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct Baseline {
    state: foldhash::quality::SeedableRandomState,
    map: DashMap<u64, Reason>,
}

impl Baseline {
    fn key(&self, tenant: &str, contact: &str) -> u64 {
        let mut h = self.state.build_hasher();
        h.write(tenant.as_bytes());
        h.write_u8(0xff);
        h.write(contact.as_bytes());
        h.finish()
    }
    fn is_suppressed(&self, tenant: &str, contact: &str) -> bool {
        self.map.contains_key(&self.key(tenant, contact))
    }
}

fn contact(i: usize) -> String {
    format!("contact-{i:010}@example.com")
}

fn queries(n: usize, present: bool, seed: u64) -> Vec<String> {
    let mut s = seed;
    (0..1_000_000)
        .map(|_| {
            let i = (xorshift(&mut s) % n as u64) as usize;
            contact(if present { i } else { n + i })
        })
        .collect()
}

/// Benchmarks `f` on one query per iteration, cycling through `qs` (no division in the loop).
fn cycle<R>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    qs: &[String],
    f: impl Fn(&str) -> R,
) {
    let mut i = 0usize;
    g.bench_function(name, |b| {
        b.iter(|| {
            i += 1;
            if i == qs.len() {
                i = 0;
            }
            black_box(f(black_box(&qs[i])))
        })
    });
}

fn bench(c: &mut Criterion) {
    let n = n();
    let label = format!("{}M", n as f64 / 1e6);
    let hits = queries(n, true, 0x1234_5678_9abc_def1);
    let misses = queries(n, false, 0x0fed_cba9_8765_4321);

    let mut g = c.benchmark_group(format!("suppression_lookup_{label}"));
    g.throughput(Throughput::Elements(1));
    {
        let dense = SuppressionSet::new();
        for i in 0..n {
            dense.insert(TENANT, &contact(i), Reason::OptOut);
        }
        cycle(&mut g, "dense/hit", &hits, |q| {
            dense.is_suppressed(TENANT, q)
        });
        cycle(&mut g, "dense/miss", &misses, |q| {
            dense.is_suppressed(TENANT, q)
        });
        cycle(&mut g, "dense/check_counted_hit", &hits, |q| {
            dense.check(TENANT, "campaign", q)
        });
        cycle(&mut g, "dense/check_counted_miss", &misses, |q| {
            dense.check(TENANT, "campaign", q)
        });
    }
    {
        let base = Baseline {
            state: foldhash::quality::SeedableRandomState::random(),
            map: DashMap::new(),
        };
        for i in 0..n {
            base.map
                .insert(base.key(TENANT, &contact(i)), Reason::OptOut);
        }
        cycle(&mut g, "dashmap/hit", &hits, |q| {
            base.is_suppressed(TENANT, q)
        });
        cycle(&mut g, "dashmap/miss", &misses, |q| {
            base.is_suppressed(TENANT, q)
        });
    }
    g.finish();
}

/// Tenant and campaign scope changes with 50k scopes already in place: one change used to copy
/// every scope (10k changes took 0.2 s, 40k more 2.45 s); now each is one table insert.
fn scope_changes(c: &mut Criterion) {
    use openclick_suppress::{Change, Reason, Scope};
    let set = SuppressionSet::new();
    for i in 0..50_000 {
        set.apply(&Change {
            scope: Scope::Campaign {
                tenant: "acme".into(),
                campaign: format!("c-{i}"),
            },
            reason: Some(Reason::Manual),
            at_ms: 1,
        });
    }
    let mut g = c.benchmark_group("scope_change_at_50k_scopes");
    g.throughput(Throughput::Elements(10_000));
    let changes: Vec<Change> = (0..10_000)
        .map(|i| Change {
            scope: Scope::Tenant {
                tenant: format!("t-{i}"),
            },
            reason: Some(Reason::Manual),
            at_ms: 1,
        })
        .collect();
    g.bench_function("10k_tenant_changes", |b| {
        b.iter(|| {
            for c in &changes {
                set.apply(c);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench, scope_changes);
criterion_main!(benches);
