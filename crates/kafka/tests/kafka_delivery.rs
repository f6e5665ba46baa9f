//! Delivery guarantees of the Kafka sink with its durable spool, against librdkafka's mock
//! cluster (real Kafka protocol over loopback TCP): a full outage under a steady stream,
//! injected produce errors (retryable and fatal), queue-full and shutdown spilling into the
//! spool, and replay after a restart (including a torn spool tail).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use openclick_kafka::EmbeddedBroker;
use openclick_kafka::{ClientSettings, KafkaConfig, KafkaSink};
use openclick_sink::spool::SpoolConfig;
use openclick_sink::{Health, Sink};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

fn config(brokers: &str, topic: &str, spool: Option<&Path>) -> KafkaConfig {
    KafkaConfig {
        client: ClientSettings::new(brokers),
        topic: topic.to_string(),
        linger_ms: 5,
        message_timeout_ms: 2_000,
        spool_after_ms: 500,
        stall_after_ms: 1_500,
        spool: spool.map(SpoolConfig::new),
        ..KafkaConfig::default()
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn by_cause(sink: &KafkaSink, cause: &str) -> u64 {
    sink.detailed_stats()
        .spooled_by_cause
        .iter()
        .find(|(c, _)| *c == cause)
        .map(|(_, n)| *n)
        .unwrap()
}

fn by_reason(sink: &KafkaSink, reason: &str) -> u64 {
    sink.failures_by_reason()
        .iter()
        .find(|(c, _)| *c == reason)
        .map(|(_, n)| *n)
        .unwrap()
}

#[test]
fn all_brokers_down_under_steady_load_then_back_loses_nothing() {
    let topic = "outage";
    let broker = EmbeddedBroker::start(3, &[(topic, 3)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(
        KafkaSink::new(&config(broker.bootstrap_servers(), topic, Some(dir.path()))).unwrap(),
    );
    wait_for("broker up", Duration::from_secs(10), || {
        sink.health() == Health::Up
    });
    let publisher = Publisher::start(sink.clone(), "outage", 2_000);
    // OUTAGE_TRACE=1 prints the sink's counters every 250 ms.
    if std::env::var_os("OUTAGE_TRACE").is_some() {
        let s = sink.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            loop {
                let d = s.detailed_stats();
                eprintln!(
                    "{:>6}ms up={} acc={} del={} spooled={} replayed={} rdel={} rretry={} q={} rinf={}",
                    t0.elapsed().as_millis(),
                    d.up,
                    d.sink.accepted,
                    d.sink.delivered,
                    d.sink.spooled,
                    d.replayed,
                    d.replay_delivered,
                    d.replay_retried,
                    d.queue_depth,
                    d.replay_in_flight
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }
    std::thread::sleep(Duration::from_secs(1));

    broker.all_brokers_down().unwrap();
    wait_for("health down", Duration::from_secs(10), || {
        sink.health() == Health::Down
    });
    // Longer than message.timeout.ms (2 s) and spool_after_ms (0.5 s): queued records time
    // out into the spool, then publish spools directly.
    std::thread::sleep(Duration::from_secs(4));
    let during = sink.detailed_stats();
    broker.all_brokers_up().unwrap();
    wait_for("health up", Duration::from_secs(20), || {
        sink.health() == Health::Up
    });
    std::thread::sleep(Duration::from_secs(1));
    let (accepted, refused) = publisher.stop();
    assert_eq!(refused, 0, "the sink refused events");
    assert!(
        wait_drained(&sink, Duration::from_secs(60)),
        "not drained: {:?}",
        sink.detailed_stats()
    );

    let consumed = consume_all(
        broker.bootstrap_servers(),
        topic,
        3,
        &accepted,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let lost = figures("mockcluster-outage", &accepted, &sink, &consumed);
    let d = sink.detailed_stats();
    assert_eq!(lost, 0);
    assert_eq!(d.sink.failed, 0);
    assert_eq!(d.sink.accepted, accepted.len() as u64);
    assert_eq!(d.sink.accepted, d.sink.delivered + d.sink.spooled);
    assert!(d.sink.spooled > 0, "the outage spooled nothing: {d:?}");
    assert!(
        by_cause(&sink, "broker_down") > 0,
        "publish never spooled directly: {d:?}"
    );
    assert!(during.sink.spooled > 0);
    assert_eq!(d.replay_delivered, d.sink.spooled);
    assert_eq!(d.spool.unwrap().segments, 0, "acked segments are deleted");
    // Every consumed record is one we accepted.
    assert!(consumed.unique.iter().all(|id| accepted.contains(id)));
}

#[test]
fn injected_retryable_produce_errors_are_retried_and_delivered() {
    let topic = "inject-retryable";
    let broker = EmbeddedBroker::start(1, &[(topic, 3)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink =
        KafkaSink::new(&config(broker.bootstrap_servers(), topic, Some(dir.path()))).unwrap();
    wait_for("broker up", Duration::from_secs(10), || {
        sink.health() == Health::Up
    });
    broker
        .request_errors(
            RDKafkaApiKey::Produce,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            ],
        )
        .unwrap();
    let mut accepted = HashSet::new();
    for i in 0..200 {
        let ev = event("retryable", i);
        sink.publish_event(&ev).unwrap();
        accepted.insert(ev.event_id);
    }
    sink.flush(Duration::from_secs(10)).unwrap();
    assert!(wait_drained(&sink, Duration::from_secs(20)));
    let d = sink.detailed_stats();
    assert_eq!(d.sink.failed, 0, "{d:?}");
    assert_eq!(d.sink.accepted, 200);
    assert_eq!(d.sink.delivered + d.sink.spooled, 200, "{d:?}");
    let consumed = consume_all(
        broker.bootstrap_servers(),
        topic,
        3,
        &accepted,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert_eq!(figures("inject-retryable", &accepted, &sink, &consumed), 0);
}

#[test]
fn injected_fatal_produce_error_is_failed_counted_and_the_rest_delivered() {
    let topic = "inject-fatal";
    let broker = EmbeddedBroker::start(1, &[(topic, 1)]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink =
        KafkaSink::new(&config(broker.bootstrap_servers(), topic, Some(dir.path()))).unwrap();
    wait_for("broker up", Duration::from_secs(10), || {
        sink.health() == Health::Up
    });
    // A first record so the idempotent producer has its id before the injection.
    sink.publish_event(&event("fatal", 0)).unwrap();
    sink.flush(Duration::from_secs(10)).unwrap();
    broker
        .request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        )
        .unwrap();
    sink.publish_event(&event("fatal", 1)).unwrap();
    let _ = sink.flush(Duration::from_secs(10));
    let d = sink.detailed_stats();
    assert_eq!(d.sink.accepted, 2);
    assert_eq!(d.sink.failed, 1, "{d:?}");
    assert_eq!(by_reason(&sink, "too_large"), 1);
    assert_eq!(
        d.sink.spooled, 0,
        "a fatal error must not be spooled: {d:?}"
    );
    // The sink keeps delivering afterwards.
    let mut accepted: HashSet<String> = [event("fatal", 0).event_id].into();
    for i in 2..50 {
        let ev = event("fatal", i);
        sink.publish_event(&ev).unwrap();
        accepted.insert(ev.event_id);
    }
    sink.flush(Duration::from_secs(10)).unwrap();
    let d = sink.detailed_stats();
    assert_eq!(d.sink.accepted, 50);
    assert_eq!(
        d.sink.accepted,
        d.sink.delivered + d.sink.failed + d.sink.spooled,
        "{d:?}"
    );
    assert_eq!(d.sink.failed, 1);

    // Authorization: the record fails (counted), and librdkafka then refuses the topic at
    // `publish` for a while: refused events are not accepted, so the accounting still holds.
    broker
        .request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
        )
        .unwrap();
    sink.publish_event(&event("fatal", 50)).unwrap();
    let _ = sink.flush(Duration::from_secs(10));
    assert_eq!(by_reason(&sink, "unauthorized"), 1);
    let mut refused = 0;
    for i in 51..60 {
        match sink.publish_event(&event("fatal", i)) {
            Ok(()) => {
                accepted.insert(event("fatal", i).event_id);
            }
            Err(e) => {
                assert!(!e.is_retryable(), "{e}");
                refused += 1;
            }
        }
    }
    let _ = sink.flush(Duration::from_secs(10));
    let d = sink.detailed_stats();
    assert_eq!(d.sink.accepted, 51 + 9 - refused);
    assert_eq!(d.sink.failed, 2, "{d:?}");
    assert_eq!(d.sink.spooled, 0);
    assert_eq!(d.sink.accepted, d.sink.delivered + d.sink.failed, "{d:?}");
    let consumed = consume_all(
        broker.bootstrap_servers(),
        topic,
        1,
        &accepted,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert_eq!(figures("inject-fatal", &accepted, &sink, &consumed), 0);
    assert!(!consumed.unique.contains(&event("fatal", 1).event_id));
    assert!(!consumed.unique.contains(&event("fatal", 50).event_id));
}

#[test]
fn record_too_large_fails_fatally_without_spooling() {
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedBroker::start(1, &[("big", 1)]).unwrap();
    let mut cfg = config(broker.bootstrap_servers(), "big", Some(dir.path()));
    cfg.client
        .properties
        .push("message.max.bytes=2000".parse().unwrap());
    let sink = KafkaSink::new(&cfg).unwrap();
    let mut ev = event("big", 0);
    ev.target_url = "x".repeat(5_000);
    let err = sink.publish_event(&ev).unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(sink.stats().accepted, 0);
}

#[test]
fn queue_full_and_shutdown_spill_into_the_spool_and_a_restart_replays_them() {
    let topic = "restart";
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    // No broker at all, a tiny producer queue, and no direct spooling: records fill the
    // producer queue (queue_full spills), the rest wait there until shutdown purges them.
    let dead = dead_addr();
    let mut cfg = config(&dead.addr, topic, Some(&spool_dir));
    cfg.queue_max_messages = 100;
    cfg.spool_after_ms = 600_000;
    cfg.message_timeout_ms = 300_000;
    let mut accepted = HashSet::new();
    {
        let sink = KafkaSink::new(&cfg).unwrap();
        for i in 0..500 {
            let ev = event("restart", i);
            sink.publish_event(&ev).unwrap();
            accepted.insert(ev.event_id);
        }
        assert_eq!(by_cause(&sink, "queue_full"), 400);
        sink.close(Duration::from_secs(2)).unwrap();
        let d = sink.detailed_stats();
        assert_eq!(d.sink.accepted, 500);
        assert_eq!(d.sink.spooled, 500, "{d:?}");
        assert_eq!(by_cause(&sink, "purged"), 100);
        assert_eq!(d.sink.delivered + d.sink.failed, 0);
        assert_eq!(d.spool.unwrap().pending_records, 500);
    }
    // Restart against a live broker: everything spooled is replayed and the spool emptied.
    let broker = EmbeddedBroker::start(1, &[(topic, 3)]).unwrap();
    cfg.client.brokers = broker.bootstrap_servers().to_string();
    let sink = KafkaSink::new(&cfg).unwrap();
    assert!(wait_drained(&sink, Duration::from_secs(30)));
    let d = sink.detailed_stats();
    assert_eq!(d.recovered_delivered, 500, "{d:?}");
    assert_eq!(d.spool.unwrap().segments, 0);
    let consumed = consume_all(
        broker.bootstrap_servers(),
        topic,
        3,
        &accepted,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert_eq!(consumed.unique.len(), 500);
    assert_eq!(consumed.duplicates(), 0);
}

#[test]
fn broker_down_past_threshold_spools_directly_and_a_torn_tail_is_skipped_on_restart() {
    let topic = "torn";
    let dir = tempfile::tempdir().unwrap();
    let dead = dead_addr();
    let mut cfg = config(&dead.addr, topic, Some(dir.path()));
    cfg.spool_after_ms = 0;
    let mut ids = Vec::new();
    {
        let sink = KafkaSink::new(&cfg).unwrap();
        for i in 0..300 {
            let ev = event("torn", i);
            sink.publish_event(&ev).unwrap();
            ids.push(ev.event_id);
        }
        assert_eq!(by_cause(&sink, "broker_down"), 300);
        assert_eq!(sink.health(), Health::Down);
        sink.close(Duration::from_secs(2)).unwrap();
    }
    // Crash mid-write: the last record is cut short.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);

    let broker = EmbeddedBroker::start(1, &[(topic, 3)]).unwrap();
    cfg.client.brokers = broker.bootstrap_servers().to_string();
    let sink = KafkaSink::new(&cfg).unwrap();
    assert!(wait_drained(&sink, Duration::from_secs(30)));
    let d = sink.detailed_stats();
    assert_eq!(d.recovered_delivered, 299, "{d:?}");
    assert_eq!(d.spool.unwrap().corrupt_records, 1);
    let expect: HashSet<String> = ids[..299].iter().cloned().collect();
    let consumed = consume_all(
        broker.bootstrap_servers(),
        topic,
        3,
        &expect,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert_eq!(consumed.unique, expect);
}
