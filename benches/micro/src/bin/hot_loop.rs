//! `hot_loop N`: runs `Pipeline::process` plus the protobuf encode of its event N times on a
//! realistic open and click, for instruction counts under callgrind:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/hot_loop 20000
//! ```
//! Instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels the setup.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use openclick_edge::pipeline::Request;
use openclick_edge::Pipeline;
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_events::Message as _;
use openclick_suppress::SuppressionSet;
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let kr = Keyring::new(Key::new("k1", &[7u8; 32]).expect("key"), vec![]).expect("keyring");
    let now = 1_717_000_000_000;
    let token = |kind: TokenKind| {
        let click = kind == TokenKind::Click;
        kr.sign(&Claims {
            kind,
            tenant_id: "lt".into(),
            campaign_id: "spring-3".into(),
            message_id: "lt-18f3a2b4c5d-123456".into(),
            contact_id: "c-1234567".into(),
            channel: Channel::Email,
            issued_at_ms: now - 3_600_000,
            link_id: if click {
                "link-2".into()
            } else {
                String::new()
            },
            url: if click {
                "https://shop.example.com/p/42?utm_source=email&utm_campaign=spring&l=2".into()
            } else {
                String::new()
            },
        })
        .expect("sign")
    };
    let enricher = Enricher::new(EnrichConfig {
        reload_poll: None,
        ..Default::default()
    })
    .expect("enricher");
    let pipeline = Pipeline::new(
        kr.clone(),
        Arc::new(enricher),
        Arc::new(SuppressionSet::new()),
        vec!["127.0.0.1/32".parse().expect("net")],
    );
    let mut h = HeaderMap::new();
    h.insert(
        http::header::HOST,
        HeaderValue::from_static("127.0.0.1:8080"),
    );
    h.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        ),
    );
    h.insert(http::header::ACCEPT, HeaderValue::from_static("image/*"));
    h.insert("x-forwarded-for", HeaderValue::from_static("81.2.69.142"));
    let paths = [
        format!("/o/{}.gif", token(TokenKind::Open)),
        format!("/c/{}", token(TokenKind::Click)),
    ];
    let mut buf = Vec::with_capacity(1024);
    let mut bytes = 0usize;
    for i in 0..n {
        let out = pipeline.process(&Request {
            method: &Method::GET,
            path: &paths[i % 2],
            headers: &h,
            peer: "127.0.0.1".parse().expect("ip"),
            now_ms: now,
        });
        if let Some(ev) = out.event {
            buf.clear();
            ev.encode(&mut buf).expect("encode");
            bytes += buf.len();
        }
    }
    println!("{n} requests, {bytes} event bytes");
}
