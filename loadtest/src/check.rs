//! The end-to-end check: read the events topic and compare with what was answered.
//!
//! [`Checker::start`] records each partition's high watermark before the run and starts a
//! consumer thread reading every partition from there (assigned, no consumer group) while the
//! load runs: a broker that keeps a bounded log in memory (the embedded mock broker keeps a few
//! MB per partition) would otherwise drop the start of a long run before it is read. Each event
//! whose `message_id` is `lt-{run}-{i}` is counted against request index `i`.
//! [`Checker::finish`] then waits for the rest and compares: a request index answered `n` times
//! must appear `n` times if tracked and never if suppressed or invalid.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use openclick_events::v1::{EngagementEvent, EventType};
use openclick_events::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::mix::Kind;

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
    /// Consumer errors (e.g. the broker dropped records before they were read).
    pub consume_errors: u64,
    /// Time spent reading after the load stopped.
    pub elapsed: Duration,
}

struct Collected {
    received: Vec<u32>,
    result: CheckResult,
}

struct Control {
    finish: AtomicBool,
    expected: AtomicU64,
    settle: Duration,
    idle: Duration,
    timeout: Duration,
}

/// A running consumer of the run's events.
pub struct Checker {
    control: Arc<Control>,
    thread: JoinHandle<Collected>,
}

impl Checker {
    /// Connects, records where the topic ends now and starts reading from there.
    pub fn start(
        brokers: &str,
        topic: &str,
        run: &str,
        kinds: Vec<Kind>,
        settle: Duration,
        idle: Duration,
        timeout: Duration,
    ) -> Result<Checker> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "openclick-loadtest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // Records gone before they were read must show, not be skipped silently.
            .set("auto.offset.reset", "error")
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
        let mut tpl = TopicPartitionList::new();
        for p in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .with_context(|| format!("watermarks of {topic}/{}", p.id()))?;
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
        }
        consumer.assign(&tpl)?;
        let control = Arc::new(Control {
            finish: AtomicBool::new(false),
            expected: AtomicU64::new(0),
            settle,
            idle,
            timeout,
        });
        let prefix = format!("lt-{run}-");
        let ctl = control.clone();
        let thread = std::thread::Builder::new()
            .name("loadtest-check".into())
            .spawn(move || consume(consumer, ctl, prefix, kinds))?;
        Ok(Checker { control, thread })
    }

    /// Tells the reader how many events to expect (`answered` per request index), waits for
    /// them and compares.
    pub fn finish(self, answered: &[u32], kinds: &[Kind]) -> Result<CheckResult> {
        let expected: u64 = answered
            .iter()
            .zip(kinds)
            .filter(|(_, k)| k.tracked())
            .map(|(&n, _)| n as u64)
            .sum();
        self.control.expected.store(expected, Ordering::Relaxed);
        self.control.finish.store(true, Ordering::Release);
        let c = self
            .thread
            .join()
            .map_err(|_| anyhow!("consumer thread panicked"))?;
        let mut r = c.result;
        r.expected = expected;
        for ((&got, &sent), kind) in c.received.iter().zip(answered).zip(kinds) {
            if kind.tracked() {
                r.lost += sent.saturating_sub(got) as u64;
                r.duplicated += got.saturating_sub(sent) as u64;
            } else {
                r.unexpected += got as u64;
            }
        }
        Ok(r)
    }
}

fn consume(
    consumer: BaseConsumer,
    ctl: Arc<Control>,
    prefix: String,
    kinds: Vec<Kind>,
) -> Collected {
    let mut received = vec![0u32; kinds.len()];
    let mut r = CheckResult::default();
    let mut finish_at: Option<Instant> = None;
    let mut last = Instant::now();
    let mut complete_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if finish_at.is_none() && ctl.finish.load(Ordering::Acquire) {
            finish_at = Some(now);
            last = now;
        }
        if let Some(f) = finish_at {
            let expected = ctl.expected.load(Ordering::Relaxed);
            if r.received >= expected && complete_at.is_none() {
                complete_at = Some(now);
            }
            if now - f >= ctl.timeout
                || now - last >= ctl.idle
                || complete_at.is_some_and(|t| now - t >= ctl.settle)
            {
                r.elapsed = now - f;
                break;
            }
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                r.consume_errors += 1;
                if r.consume_errors <= 3 {
                    eprintln!("consume error: {e}");
                }
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
            .filter(|&i| i < kinds.len())
        else {
            continue; // another run's or another producer's event
        };
        received[i] += 1;
        r.received += 1;
        let ty = if kinds[i].is_click() {
            EventType::Click
        } else {
            EventType::Open
        };
        if ev.r#type != ty as i32 {
            r.wrong_type += 1;
        }
    }
    Collected {
        received,
        result: r,
    }
}
