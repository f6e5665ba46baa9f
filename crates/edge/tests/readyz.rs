//! README promise: `/readyz` answers `503 not ready: <checks>` naming what fails — `kafka`
//! while the broker is unreachable, `draining` while shutting down — and `200 ready` again
//! once the broker is back.
//!
//! The edge and its admin plane are wired as `openclick serve` wires them (readiness from the
//! sink's health and the suppression set, the drain flag set by the shutdown), on a real
//! embedded broker whose brokers the test takes down (`all_brokers_down`) and brings back.
//! The shutdown window is held open by an event the downed broker cannot take: the sink's
//! flush waits for it, and `/readyz` must say `draining` meanwhile; the broker then comes back
//! and the shutdown completes with the event delivered.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http, test_enricher, test_sink, Served};
use openclick_edge::{EdgeState, Pipeline, ServerConfig};
use openclick_kafka::EmbeddedBroker;
use openclick_suppress::SuppressionSet;
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};

fn readyz(served: &Served) -> (u16, String) {
    let r = http(served.admin, "GET", "/readyz", &[], b"");
    (r.status, r.text())
}

/// Polls `/readyz` until `want(status, body)` or `limit`; returns the last answer.
fn wait_readyz(
    served: &Served,
    limit: Duration,
    want: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = readyz(served);
        if want(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never matched; last: {status} {body:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readyz_names_kafka_while_the_broker_is_down_and_draining_while_shutting_down() {
    let topic = format!("readyz-{}", std::process::id());
    let broker = EmbeddedBroker::start(1, &[(&topic, 1)]).unwrap();
    let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let set = Arc::new(SuppressionSet::new());
    // No follower: the suppression check passes as `openclick serve --no-suppression-sync`.
    assert!(set.is_caught_up());
    let pipeline = Pipeline::new(
        keyring.clone(),
        test_enricher(),
        set,
        openclick_edge::ClientIpConfig::default(),
    );
    let config = ServerConfig {
        flush_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let sink = test_sink(broker.bootstrap_servers(), &topic);
    let mut served = Served::start(Arc::new(EdgeState::new(pipeline, sink, config)), None);

    let (status, body) = wait_readyz(&served, Duration::from_secs(20), |s, _| s == 200);
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    broker.all_brokers_down().unwrap();
    let (_, body) = wait_readyz(&served, Duration::from_secs(30), |s, _| s == 503);
    assert_eq!(
        body, "not ready: kafka\n",
        "names the failing check, only that one"
    );
    // Liveness is not readiness: the process is alive.
    assert_eq!(http(served.admin, "GET", "/healthz", &[], b"").status, 200);

    broker.all_brokers_up().unwrap();
    let (_, body) = wait_readyz(&served, Duration::from_secs(30), |s, _| s == 200);
    assert_eq!(body, "ready\n");

    // Shutting down: one event the broker cannot take keeps the flush (and so the shutdown)
    // going for `flush_timeout`; the admin plane answers meanwhile.
    broker.all_brokers_down().unwrap();
    wait_readyz(&served, Duration::from_secs(30), |s, _| s == 503);
    let token = keyring
        .sign(&Claims {
            kind: TokenKind::Open,
            tenant_id: "acme".into(),
            campaign_id: "c".into(),
            message_id: "m".into(),
            contact_id: "readyz".into(),
            channel: Channel::Email,
            issued_at_ms: 1_700_000_000_000,
            link_id: String::new(),
            url: String::new(),
            honeypot: false,
            list_id: String::new(),
            undo: false,
        })
        .unwrap();
    let r = http(served.addr, "GET", &format!("/o/{token}.gif"), &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(served.state.sink.stats().in_flight(), 1);
    served.begin_stop();
    let (status, body) = wait_readyz(&served, Duration::from_secs(30), |_, b| {
        b.contains("draining")
    });
    assert_eq!(status, 503);
    assert_eq!(
        body, "not ready: draining, kafka\n",
        "draining first, then the checks"
    );
    // The broker back: the flush delivers the event and the shutdown completes.
    broker.all_brokers_up().unwrap();
    served.stop();
    let stats = served.state.sink.stats();
    assert_eq!((stats.delivered, stats.in_flight()), (1, 0), "{stats:?}");
}
