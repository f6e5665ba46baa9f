//! Criterion benches: user-agent classification (cached and cold), geo lookup, whole enrich step,
//! the Apple Private Relay egress lookup at full size (a synthetic file of Apple's shape and
//! size, generated here), the gateway lookup.
//!
//! Run with `cargo bench -p openclick-enrich -- --warm-up-time 1 --measurement-time 3`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use openclick_enrich::{
    classify, default_gateways, parse_egress, EnrichConfig, Enricher, GatewaySet, Hit, HitKind,
    NetSet,
};

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

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// IPv4 blocks and IPv6 blocks the synthetic prefixes are drawn from, shaped like Apple's
/// egress partners' (CDN /12-/16s holding many /27-/32s; IPv6 /29-/32s holding /64s).
const V4_BLOCKS: &[(u32, u32)] = &[
    (0xac_e0_00_00, 13), // 172.224.0.0/13
    (0x68_1c_00_00, 16), // 104.28.0.0/16
    (0x92_4b_00_00, 16), // 146.75.0.0/16
];
const V6_BLOCKS: &[(u128, u32)] = &[
    (0x2a02_26f7 << 96, 32),
    (0x2606_54c0 << 96, 29),
    (0x2a09_bac0 << 96, 29),
];

/// A synthetic `egress-ip-ranges.csv` of `n` lines, about 40 % IPv4 (/27../32) and 60 % IPv6
/// (/64, some /45), in Apple's `prefix,country,region,city,` shape.
fn synthetic_egress(n: usize, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(n * 48);
    for i in 0..n {
        let r = rng.next();
        if i % 5 < 2 {
            let (base, len) = V4_BLOCKS[(r % 3) as usize];
            let plen = 27 + (r >> 8) % 6;
            let host = (r >> 16) as u32 & ((1u32 << (32 - len)) - 1);
            let net = (base | host) & (u32::MAX << (32 - plen));
            out.push_str(&format!(
                "{}/{plen},GB,GB-EN,London,\n",
                Ipv4Addr::from(net)
            ));
        } else {
            let (base, len) = V6_BLOCKS[(r % 3) as usize];
            let plen = if (r >> 8).is_multiple_of(50) { 45 } else { 64 };
            let host = u128::from(rng.next()) << 64 | u128::from(rng.next());
            let net = (base | (host & (u128::MAX >> len))) & (u128::MAX << (128 - plen));
            out.push_str(&format!(
                "{}/{plen},US,US-CA,Los Angeles,\n",
                Ipv6Addr::from(net)
            ));
        }
    }
    out
}

/// Addresses to look up: half inside prefixes of the file (hits), half random in the same
/// blocks (mostly misses), IPv4 and IPv6 alternating.
fn lookup_addresses(text: &str, n: usize, rng: &mut Rng) -> Vec<IpAddr> {
    let nets = parse_egress(text).unwrap();
    (0..n)
        .map(|i| {
            let r = rng.next();
            if i % 2 == 0 {
                let net = nets[(r as usize) % nets.len()];
                net.network()
            } else if i % 4 == 1 {
                let (base, len) = V4_BLOCKS[(r % 3) as usize];
                IpAddr::V4(Ipv4Addr::from(
                    base | ((r >> 16) as u32 & ((1u32 << (32 - len)) - 1)),
                ))
            } else {
                let (base, len) = V6_BLOCKS[(r % 3) as usize];
                let host = u128::from(rng.next()) << 64 | u128::from(rng.next());
                IpAddr::V6(Ipv6Addr::from(base | (host & (u128::MAX >> len))))
            }
        })
        .collect()
}

/// The baseline in the same run: merged `(start, end)` pairs, one `partition_point` per lookup
/// (what a first implementation would write).
struct SortedPairs {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl SortedPairs {
    fn new(nets: &[ipnet::IpNet]) -> Self {
        fn merged<T: Copy + Ord>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
            v.sort_unstable();
            let mut out: Vec<(T, T)> = Vec::new();
            for (s, e) in v {
                match out.last_mut() {
                    Some(l) if s <= l.1 => l.1 = l.1.max(e),
                    _ => out.push((s, e)),
                }
            }
            out
        }
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for n in nets {
            match n {
                ipnet::IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                ipnet::IpNet::V6(n) => {
                    v6.push((u128::from(n.network()), u128::from(n.broadcast())))
                }
            }
        }
        SortedPairs {
            v4: merged(v4),
            v6: merged(v6),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        fn find<T: Copy + Ord>(v: &[(T, T)], x: T) -> bool {
            let k = v.partition_point(|p| p.0 <= x);
            k > 0 && v[k - 1].1 >= x
        }
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }
}

fn egress_benches(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in [1_000usize, 300_000] {
        let text = synthetic_egress(n, &mut rng);
        let t = Instant::now();
        let nets = parse_egress(&text).unwrap();
        let parsed = t.elapsed();
        let set = NetSet::new(&nets);
        eprintln!(
            "egress file of {n} lines ({} KiB): parsed in {parsed:?}, set built in {:?}, \
             {} ranges in {} KiB",
            text.len() / 1024,
            t.elapsed() - parsed,
            set.ranges(),
            set.memory_bytes() / 1024
        );
        let addrs = lookup_addresses(&text, 1 << 16, &mut rng);
        let hits = addrs.iter().filter(|a| set.contains(**a)).count();
        eprintln!(
            "  {hits} of {} lookup addresses are in the set",
            addrs.len()
        );
        if n == 1_000 {
            // The loop alone (read the next address, branch on its family): what the lookups
            // below pay beside the search itself.
            c.bench_function("egress_loop_overhead", |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) & (addrs.len() - 1);
                    black_box(black_box(addrs[i]).is_ipv4())
                })
            });
        }
        let baseline = SortedPairs::new(&nets);
        assert!(addrs
            .iter()
            .all(|a| baseline.contains(*a) == set.contains(*a)));
        c.bench_function(&format!("egress_lookup_{n}_baseline_sorted_pairs"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (addrs.len() - 1);
                black_box(baseline.contains(black_box(addrs[i])))
            })
        });
        c.bench_function(&format!("egress_lookup_{n}"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (addrs.len() - 1);
                black_box(set.contains(black_box(addrs[i])))
            })
        });
    }
    let gateways = GatewaySet::new(&default_gateways());
    let ips: Vec<IpAddr> = ["40.92.1.1", "2001:db8::1", "203.0.113.7", "67.231.150.1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    c.bench_function("gateway_lookup", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % ips.len();
            black_box(gateways.lookup(black_box(ips[i]), 8075, HitKind::Click))
        })
    });
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
    // The same, with a full-size egress list loaded (and the shipped gateways, as always), the
    // bare `Mozilla/5.0` and addresses from the list among the hits.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let text = synthetic_egress(300_000, &mut rng);
    let path = dir.path().join("egress-ip-ranges.csv");
    std::fs::write(&path, &text).unwrap();
    let full = Enricher::new(EnrichConfig {
        geoip_city: Some(support::city_db(dir.path())),
        geoip_asn: Some(support::asn_db(dir.path())),
        apple_egress_ranges: Some(path),
        reload_poll: None,
        ..Default::default()
    })
    .unwrap();
    let uas = [UAS[0], UAS[1], "Mozilla/5.0", UAS[2]];
    for ua in uas {
        full.user_agent(ua);
    }
    let addrs = lookup_addresses(&text, 1 << 12, &mut rng);
    c.bench_function("enrich_cached_egress_300k", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & (addrs.len() - 1);
            let hit = Hit {
                kind: if i & 4 == 0 {
                    HitKind::Open
                } else {
                    HitKind::Click
                },
                user_agent: Some(uas[i & 3]),
                ip: addrs[i],
                is_head: false,
                purpose: None,
                sec_purpose: Some("prefetch"),
                dnt: Some("1"),
                sec_gpc: None,
                sent_at_ms: 1_700_000_000_000,
                now_ms: 1_700_000_090_000,
            };
            black_box(full.enrich(black_box(&hit)))
        })
    });
}

criterion_group!(enrich, benches, egress_benches);
criterion_main!(enrich);
