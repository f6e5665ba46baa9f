//! The spool's write rate measured through the sink: the broker is unreachable and
//! `spool_after_ms` is 0, so every `publish` frames the event, appends it to the spool (the
//! hot path's route during an outage) and the writer thread writes it under the default fsync
//! policy (every 200 ms). A refused append (`SpoolFull`: the writer's channel is full) is
//! retried after a yield, so the figure is what the writer sustains.
//!
//! Ignored by default (a measurement, not a check): `cargo test --release -p openclick-kafka
//! --test spool_rate -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{dead_addr, realistic};
use openclick_kafka::{ClientSettings, KafkaConfig, KafkaSink};
use openclick_sink::spool::{FsyncPolicy, SpoolConfig};
use openclick_sink::{Sink, SinkError};

fn rate(policy: FsyncPolicy, events: u64) -> (f64, f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let dead = dead_addr();
    let sink = KafkaSink::new(&KafkaConfig {
        client: ClientSettings::new(&dead.addr),
        topic: "rate".into(),
        spool_after_ms: 0,
        spool: Some(SpoolConfig {
            fsync: policy,
            ..SpoolConfig::new(dir.path())
        }),
        ..KafkaConfig::default()
    })
    .unwrap();
    let evs: Vec<_> = (0..events).map(realistic).collect();
    let mut retries = 0u64;
    let start = Instant::now();
    for ev in &evs {
        loop {
            match sink.publish_event(ev) {
                Ok(()) => break,
                Err(SinkError::SpoolFull) => {
                    retries += 1;
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let appended = start.elapsed();
    sink.spool()
        .unwrap()
        .flush(Duration::from_secs(120))
        .unwrap();
    let durable = start.elapsed();
    assert_eq!(sink.stats().spooled, events);
    (
        events as f64 / appended.as_secs_f64(),
        events as f64 / durable.as_secs_f64(),
        retries,
    )
}

#[test]
#[ignore]
fn spool_write_rate_through_the_sink() {
    let n = 200_000;
    let payload = openclick_events::Message::encoded_len(&realistic(0));
    for (name, policy) in [
        ("every 200ms (default)", FsyncPolicy::default()),
        ("always", FsyncPolicy::Always),
        ("never", FsyncPolicy::Never),
    ] {
        let (published, durable, retries) = rate(policy, n);
        println!(
            "FIGURES spool-rate fsync {name}: {n} events of {payload} B through KafkaSink::publish: \
             {published:.0} events/s appended, {durable:.0} events/s written and fsynced \
             (appends retried on a full writer channel: {retries})"
        );
    }
}
