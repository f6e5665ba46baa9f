//! The end-to-end check: read the events topic and compare with what was answered.
//!
//! Before the run, [`Checker::start`] records each partition's high watermark; after it,
//! [`Checker::collect`] assigns every partition from there (no consumer group), decodes each
//! record and counts the events whose `message_id` is `lt-{run}-{i}`. A request index answered
//! `n` times must appear `n` times if tracked and never if suppressed or invalid.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use openclick_events::v1::{EngagementEvent, EventType};
use openclick_events::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::mix::Pool;

/// Where to read and from which offsets.
pub struct Checker {
    consumer: BaseConsumer,
    topic: String,
    start: Vec<(i32, Offset)>,
}

/// What the topic held for this run.
#[derive(Debug, Default)]
pub struct CheckResult {
    /// Events expected (answered tracked hits).
    pub expected: u64,
    /// Events of this run read from the topic.
    pub received: u64,
    /// Expected but not found.
    pub lost: u64,
    /// Found more often than answered.
    pub duplicated: u64,
    /// Events for suppressed or invalid hits (must be 0).
    pub unexpected: u64,
    /// Events whose type disagrees with the request (must be 0).
    pub wrong_type: u64,
    /// Records that did not decode.
    pub undecodable: u64,
    /// Time spent reading.
    pub elapsed: Duration,
}

impl Checker {
    /// Connects and records where the topic ends now.
    pub fn start(brokers: &str, topic: &str) -> Result<Checker> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "openclick-loadtest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .context("Kafka consumer")?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("metadata for {topic} from {brokers}"))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            bail!("topic {topic} not found on {brokers}");
        };
        if t.partitions().is_empty() {
            bail!("topic {topic} has no partitions on {brokers} (create it first)");
        }
        let mut start = Vec::new();
        for p in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .with_context(|| format!("watermarks of {topic}/{}", p.id()))?;
            start.push((p.id(), Offset::Offset(high)));
        }
        Ok(Checker {
            consumer,
            topic: topic.to_string(),
            start,
        })
    }

    /// Reads the run's events. Stops `settle` after the last expected event arrived (to catch
    /// duplicates), or when nothing arrived for `idle`, or at `timeout`.
    pub fn collect(
        &self,
        run: &str,
        pool: &Pool,
        answered: &[u32],
        settle: Duration,
        idle: Duration,
        timeout: Duration,
    ) -> Result<CheckResult> {
        let mut tpl = TopicPartitionList::new();
        for (p, off) in &self.start {
            tpl.add_partition_offset(&self.topic, *p, *off)?;
        }
        self.consumer.assign(&tpl)?;
        let prefix = format!("lt-{run}-");
        let expected: u64 = (0..pool.len())
            .filter(|&i| pool.kind(i).tracked())
            .map(|i| answered[i] as u64)
            .sum();
        let mut received = vec![0u32; pool.len()];
        let mut r = CheckResult {
            expected,
            ..Default::default()
        };
        let started = Instant::now();
        let mut last = Instant::now();
        let mut complete_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now - started >= timeout || now - last >= idle {
                break;
            }
            if complete_at.is_some_and(|t| now - t >= settle) {
                break;
            }
            let Some(m) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("consume error: {e}");
                    continue;
                }
            };
            last = Instant::now();
            let Ok(ev) = EngagementEvent::decode(m.payload().unwrap_or_default()) else {
                r.undecodable += 1;
                continue;
            };
            let Some(i) = ev
                .message_id
                .strip_prefix(&prefix)
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&i| i < pool.len())
            else {
                continue; // another run's or another producer's event
            };
            received[i] += 1;
            r.received += 1;
            let kind = pool.kind(i);
            let ty = if kind.is_click() {
                EventType::Click
            } else {
                EventType::Open
            };
            if ev.r#type != ty as i32 {
                r.wrong_type += 1;
            }
            if r.received >= expected && complete_at.is_none() {
                complete_at = Some(Instant::now());
            }
        }
        for (i, (&got, &sent)) in received.iter().zip(answered).enumerate() {
            if pool.kind(i).tracked() {
                r.lost += sent.saturating_sub(got) as u64;
                r.duplicated += got.saturating_sub(sent) as u64;
            } else {
                r.unexpected += got as u64;
            }
        }
        r.elapsed = started.elapsed();
        Ok(r)
    }
}
