//! Deferred opens (`ServerConfig::defer_opens`, what `openclick serve` runs with) over real
//! HTTP: the pixel is answered before the hit is processed, the `openclick-opens` thread
//! processes it, and a shutdown processes what is still buffered before the sink closes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http, test_enricher, Served};
use openclick_edge::{EdgeState, HitClass, Pipeline, ServerConfig, PIXEL_GIF};
use openclick_sink::memory::MemorySink;
use openclick_sink::Sink;
use openclick_suppress::SuppressionSet;
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};

fn open(keyring: &Keyring, contact: &str) -> String {
    let token = keyring
        .sign(&Claims {
            kind: TokenKind::Open,
            tenant_id: "acme".into(),
            campaign_id: "c".into(),
            message_id: "m".into(),
            contact_id: contact.into(),
            channel: Channel::Email,
            issued_at_ms: 1_700_000_000_000,
            link_id: String::new(),
            url: String::new(),
            honeypot: false,
            list_id: String::new(),
            undo: false,
        })
        .unwrap();
    format!("/o/{token}.gif")
}

/// Serves with opens deferred every `every` into `sink`; returns the signing keyring too.
fn serve_into(every: Duration, sink: Arc<dyn Sink>) -> (Served, Keyring) {
    let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let pipeline = Pipeline::new(
        keyring.clone(),
        test_enricher(),
        Arc::new(SuppressionSet::new()),
        openclick_edge::ClientIpConfig::default(),
    );
    let config = ServerConfig {
        defer_opens: Some(every),
        ..ServerConfig::default()
    };
    let state = EdgeState::new(pipeline, sink, config);
    (Served::start(Arc::new(state), None), keyring)
}

fn serve(every: Duration) -> (Served, Arc<MemorySink>, Keyring) {
    let sink = Arc::new(MemorySink::new());
    let (served, keyring) = serve_into(every, sink.clone());
    (served, sink, keyring)
}

#[test]
fn the_thread_processes_a_deferred_open_within_moments() {
    let (mut served, sink, keyring) = serve(Duration::from_millis(1));
    let r = http(served.addr, "GET", &open(&keyring, "c-1"), &[], b"");
    assert_eq!((r.status, r.body.as_slice()), (200, PIXEL_GIF.as_slice()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.events().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let events = sink.events();
    assert_eq!(
        events.len(),
        1,
        "processed by the opens thread, before any shutdown"
    );
    assert_eq!(events[0].contact_id, "c-1");
    assert_eq!(served.state.metrics.hits(HitClass::OpenTracked), 1);
    // Clicks and other routes are not deferred: a bad click is answered 404 as before.
    assert_eq!(http(served.addr, "GET", "/c/nope", &[], b"").status, 404);
    served.stop();
}

#[test]
fn shutdown_processes_what_is_still_buffered() {
    // A pass an hour away: nothing is processed until the shutdown.
    let (mut served, sink, keyring) = serve(Duration::from_secs(3600));
    for contact in ["a", "b", "c"] {
        let r = http(served.addr, "GET", &open(&keyring, contact), &[], b"");
        assert_eq!(r.status, 200);
    }
    // An invalid token still gets the pixel, and is counted invalid once processed.
    assert_eq!(http(served.addr, "HEAD", "/o/x.gif", &[], b"").status, 200);
    std::thread::sleep(Duration::from_millis(50));
    assert!(sink.events().is_empty(), "answered, not yet processed");
    assert_eq!(served.state.metrics.hits(HitClass::OpenTracked), 0);
    served.stop();
    let contacts: Vec<String> = sink.events().into_iter().map(|e| e.contact_id).collect();
    assert_eq!(contacts, ["a", "b", "c"]);
    assert_eq!(served.state.metrics.hits(HitClass::OpenTracked), 3);
    assert_eq!(served.state.metrics.hits(HitClass::OpenInvalid), 1);
}

#[test]
fn opens_events_skip_the_hand_off_buffer() {
    use openclick_sink::handoff::{HandOff, HandOffConfig};
    let memory = Arc::new(MemorySink::new());
    // A hand-off whose own thread never runs a pass within the test: whatever reaches the
    // memory sink before the shutdown went past its buffer.
    let hand_off = Arc::new(
        HandOff::new(
            memory.clone(),
            HandOffConfig {
                interval: Duration::from_secs(3600),
                idle_interval: Duration::from_secs(3600),
                ..HandOffConfig::default()
            },
        )
        .unwrap(),
    );
    let (mut served, keyring) = serve_into(Duration::from_millis(1), hand_off.clone());
    for contact in ["a", "b"] {
        assert_eq!(
            http(served.addr, "GET", &open(&keyring, contact), &[], b"").status,
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while memory.events().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let contacts: Vec<String> = memory.events().into_iter().map(|e| e.contact_id).collect();
    assert_eq!(contacts, ["a", "b"], "published in the batch, not buffered");
    assert_eq!(hand_off.buffered(), 0);
    let s = hand_off.stats();
    assert_eq!((s.accepted, s.delivered, s.in_flight()), (2, 2, 0));
    served.stop();
}
