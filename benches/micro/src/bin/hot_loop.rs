//! `hot_loop N`: runs `Pipeline::process` plus the protobuf encode of its event N times on a
//! realistic open and click, for instruction counts under callgrind:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out target/release/hot_loop 20000
//! ```
//! Instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels the setup.

use std::sync::Arc;

use http::Method;
use openclick_benches::{claims, headers, keyring, NOW_MS};
use openclick_edge::pipeline::Request;
use openclick_edge::Pipeline;
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_suppress::SuppressionSet;
use openclick_token::TokenKind;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let kr = keyring();
    let token = |kind: TokenKind| kr.sign(&claims(kind, "c-1234567")).expect("sign");
    let enricher = Enricher::new(EnrichConfig {
        reload_poll: None,
        ..Default::default()
    })
    .expect("enricher");
    let pipeline = Pipeline::new(
        kr.clone(),
        Arc::new(enricher),
        Arc::new(SuppressionSet::new()),
        openclick_edge::ClientIpConfig::new(
            vec!["127.0.0.1/32".parse().expect("net")],
            openclick_edge::ClientIpHeader::XForwardedFor,
        )
        .expect("client ip config"),
    );
    let h = headers(
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    );
    let paths = [
        format!("/o/{}.gif", token(TokenKind::Open)),
        format!("/c/{}", token(TokenKind::Click)),
    ];
    let mut bytes = 0usize;
    for i in 0..n {
        let out = pipeline.process(&Request {
            method: &Method::GET,
            path: &paths[i % 2],
            headers: (&h).into(),
            peer: "127.0.0.1".parse().expect("ip"),
            now_ms: NOW_MS,
        });
        if let Some(ev) = out.event {
            // Already encoded by the pipeline; the buffers go back as the server's do.
            bytes += ev.record.payload.len();
            ev.record.recycle();
        }
    }
    println!("{n} requests, {bytes} event bytes");
}
