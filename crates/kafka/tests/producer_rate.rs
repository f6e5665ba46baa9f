//! How the producer settings were chosen: events/s from `publish` to every delivery report,
//! and bytes on the wire per event, against the embedded broker (librdkafka's mock cluster on
//! loopback), for linger and compression candidates. Each candidate publishes the same 100k
//! realistic events as fast as the queue takes them, then flushes.
//!
//! Ignored by default (a measurement): `cargo test --release -p openclick-kafka --test
//! producer_rate -- --ignored --nocapture --test-threads 1`.

mod common;

use std::time::{Duration, Instant};

use common::realistic;
use openclick_kafka::EmbeddedBroker;
use openclick_kafka::{ClientSettings, KafkaConfig, KafkaSink};
use openclick_sink::{Sink, SinkError};

fn run(broker: &EmbeddedBroker, topic: &str, linger_ms: u32, compression: &str) -> (f64, f64) {
    let n = 100_000u64;
    let sink = KafkaSink::new(&KafkaConfig {
        client: ClientSettings::new(broker.bootstrap_servers())
            .with_properties(vec!["statistics.interval.ms=0".parse().unwrap()]),
        topic: topic.into(),
        linger_ms,
        compression: compression.into(),
        ..KafkaConfig::default()
    })
    .unwrap();
    let evs: Vec<_> = (0..n).map(realistic).collect();
    let start = Instant::now();
    for ev in &evs {
        loop {
            match sink.publish_event(ev) {
                Ok(()) => break,
                Err(SinkError::QueueFull) => std::thread::sleep(Duration::from_micros(100)),
                Err(e) => panic!("{e}"),
            }
        }
    }
    sink.flush(Duration::from_secs(120)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(sink.stats().delivered, n);
    let raw: usize = evs.iter().map(openclick_events::Message::encoded_len).sum();
    (n as f64 / secs, raw as f64 / n as f64)
}

#[test]
#[ignore]
fn producer_settings() {
    let mut topics = Vec::new();
    for l in [0u32, 5, 20] {
        for c in ["none", "lz4", "gzip"] {
            topics.push(format!("rate-{l}-{c}"));
        }
    }
    let specs: Vec<(&str, i32)> = topics.iter().map(|t| (t.as_str(), 3)).collect();
    let broker = EmbeddedBroker::start(1, &specs).unwrap();
    for l in [0u32, 5, 20] {
        for c in ["none", "lz4", "gzip"] {
            let (rate, size) = run(&broker, &format!("rate-{l}-{c}"), l, c);
            println!(
                "FIGURES producer linger.ms={l:>2} compression={c:<4}: {rate:>8.0} events/s \
                 publish->all delivered (event {size:.0} B)"
            );
        }
    }
}
