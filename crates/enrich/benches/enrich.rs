//! Criterion benches: user-agent classification (cached and cold), geo lookup, whole enrich step.
//!
//! Run with `cargo bench -p openclick-enrich -- --warm-up-time 1 --measurement-time 3`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use openclick_enrich::{classify, EnrichConfig, Enricher, Hit, HitKind};

#[path = "../tests/support/mod.rs"]
mod support;

const UAS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
];

fn enricher(dir: &std::path::Path, city: bool, asn: bool) -> Enricher {
    Enricher::new(EnrichConfig {
        geoip_city: city.then(|| support::city_db(dir)),
        geoip_asn: asn.then(|| support::asn_db(dir)),
        reload_poll: None,
        ..Default::default()
    })
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let e = enricher(dir.path(), true, true);
    let city_only = enricher(dir.path(), true, false);
    let asn_only = enricher(dir.path(), false, true);
    for ua in UAS {
        e.user_agent(ua);
    }

    c.bench_function("ua_cached", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UAS.len();
            black_box(e.user_agent(black_box(UAS[i])))
        })
    });
    c.bench_function("ua_cold", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UAS.len();
            black_box(classify(black_box(UAS[i])))
        })
    });
    let ips: Vec<IpAddr> = ["81.2.69.142", "2001:db8::1", "203.0.113.7", "192.0.2.1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    // City and ASN alone, then both (what `enrich` does).
    for (name, en) in [
        ("geo_city", &city_only),
        ("geo_asn", &asn_only),
        ("geo_lookup", &e),
    ] {
        c.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % ips.len();
                black_box(en.lookup(black_box(ips[i])))
            })
        });
    }
    c.bench_function("enrich_cached", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UAS.len();
            let hit = Hit {
                kind: HitKind::Open,
                user_agent: Some(UAS[i]),
                ip: ips[i],
                is_head: false,
                purpose: None,
                sec_purpose: Some("prefetch"),
                dnt: Some("1"),
                sec_gpc: None,
                sent_at_ms: 1_700_000_000_000,
                now_ms: 1_700_000_090_000,
            };
            black_box(e.enrich(black_box(&hit)))
        })
    });
}

criterion_group!(enrich, benches);
criterion_main!(enrich);
