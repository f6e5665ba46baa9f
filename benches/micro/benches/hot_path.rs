//! Hot-path micro-benchmarks: see the crate docs (`benches/micro/src/lib.rs`).
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use openclick_benches::{claims, headers, keyring, NOW_MS};
use openclick_edge::pipeline::Request;
use openclick_edge::Pipeline;
use openclick_enrich::{classify, EnrichConfig, Enricher, Hit, HitKind};
use openclick_events::Message as _;
use openclick_suppress::{Reason, SuppressionSet};
use openclick_token::TokenKind;

const UAS: &[&str] = &[
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
];

fn enricher() -> Enricher {
    let geo = std::env::var_os("OPENCLICK_BENCH_GEOIP").map(std::path::PathBuf::from);
    Enricher::new(EnrichConfig {
        geoip_city: geo,
        reload_poll: None,
        ..Default::default()
    })
    .expect("enricher")
}

fn suppression(n: usize) -> SuppressionSet {
    let s = SuppressionSet::new();
    for i in 0..n {
        s.insert("lt", &format!("s-{i}"), Reason::OptOut);
    }
    s
}

fn benches(c: &mut Criterion) {
    let kr = keyring();
    let open = kr.sign(&claims(TokenKind::Open, "c-1")).expect("sign");
    let click = kr.sign(&claims(TokenKind::Click, "c-1")).expect("sign");

    // 1. Token verify.
    c.bench_function("token_verify_open", |b| {
        b.iter(|| kr.verify(black_box(&open)).is_ok())
    });
    c.bench_function("token_verify_click", |b| {
        b.iter(|| kr.verify(black_box(&click)).is_ok())
    });

    // 2. Enrich: UA cache hit, and cold (classification on a miss).
    let e = enricher();
    let ip: IpAddr = "81.2.69.142".parse().expect("ip");
    let hit = |ua: &'static str| Hit {
        kind: HitKind::Open,
        user_agent: Some(ua),
        ip,
        is_head: false,
        purpose: None,
        sec_purpose: None,
        dnt: None,
        sec_gpc: None,
        sent_at_ms: NOW_MS - 3_600_000,
        now_ms: NOW_MS,
    };
    for ua in UAS {
        e.enrich(&hit(ua));
    }
    c.bench_function("enrich_cached", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UAS.len();
            black_box(e.enrich(black_box(&hit(UAS[i]))))
        })
    });
    c.bench_function("enrich_ua_cold_classify", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % UAS.len();
            black_box(classify(black_box(UAS[i])))
        })
    });

    // 3. Suppression lookup in a set of 1M contacts.
    let s = suppression(1_000_000);
    c.bench_function("suppression_lookup_hit_1M", |b| {
        b.iter(|| s.is_suppressed(black_box("lt"), black_box("s-4242")))
    });
    c.bench_function("suppression_lookup_miss_1M", |b| {
        b.iter(|| s.is_suppressed(black_box("lt"), black_box("c-4242")))
    });

    // 4. + 5. Pipeline::process (whole request -> event) and protobuf encode of its event.
    let pipeline = Pipeline::new(
        kr.clone(),
        Arc::new(e),
        Arc::new(suppression(1000)),
        openclick_edge::ClientIpConfig::new(
            vec!["127.0.0.1/32".parse().expect("net")],
            openclick_edge::ClientIpHeader::XForwardedFor,
        )
        .expect("client ip config"),
    );
    let h = headers(UAS[1]);
    let open_path = format!("/o/{open}.gif");
    let click_path = format!("/c/{click}");
    let bad_path = format!("/o/{}A.gif", &open[..open.len() - 1]);
    let req = |path: &str| -> Request<'_> {
        Request {
            method: &Method::GET,
            path: Box::leak(path.to_string().into_boxed_str()),
            headers: (&*Box::leak(Box::new(h.clone()))).into(),
            peer: "127.0.0.1".parse().expect("ip"),
            now_ms: NOW_MS,
        }
    };
    let ro = req(&open_path);
    let rc = req(&click_path);
    let rb = req(&bad_path);
    // The owned event (what unsubscribes and page views still encode with prost; tracked hits
    // are encoded by the pipeline itself, inside pipeline_process_*).
    let event = pipeline.process(&ro).event.expect("tracked").event();
    let mut buf = Vec::with_capacity(1024);
    c.bench_function("protobuf_encode_event", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&event).encode(&mut buf).expect("encode");
            buf.len()
        })
    });
    println!("encoded event: {} bytes", event.encoded_len());
    // As the server does: the event's record goes back to the thread for the next hit.
    let process = |r: &Request<'_>| {
        let o = pipeline.process(black_box(r));
        if let Some(t) = o.event {
            black_box(t.record.payload.len());
            t.record.recycle();
        }
        o.class
    };
    c.bench_function("pipeline_process_open", |b| b.iter(|| process(&ro)));
    c.bench_function("pipeline_process_click", |b| b.iter(|| process(&rc)));
    c.bench_function("pipeline_process_invalid", |b| {
        b.iter(|| pipeline.process(black_box(&rb)))
    });
}

criterion_group!(hot, benches);
criterion_main!(hot);
