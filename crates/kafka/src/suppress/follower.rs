//! The [`Follower`] every replica runs: the whole suppressions topic, assigned (no consumer
//! group), from the beginning, then following; the set is held "not caught up" (and so
//! `/readyz` unready) until it has read up to the end offsets seen at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openclick_common::LogLimiter;
use openclick_suppress::blocks::BlockList;
use openclick_suppress::record::{decode_control, ControlRecord};
use openclick_suppress::{SuppressError, SuppressionSet};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{kafka_err, SyncConfig};
use crate::client::Role;

/// The follower's client context: reaching a partition's end is how catching up is detected,
/// not an error worth a log line (librdkafka also reports it as a global error).
struct FollowerContext;

impl ClientContext for FollowerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::warn!(error = %error, reason, "suppression follower: librdkafka error");
        }
    }
}

impl ConsumerContext for FollowerContext {}

type FollowerConsumer = BaseConsumer<FollowerContext>;

/// Follows the suppressions topic on a dedicated thread and applies it to a set.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").finish_non_exhaustive()
    }
}

impl Follower {
    /// Marks `set` not caught up and starts following the topic from the beginning: suppression
    /// records go to `set`, redirect blocks to `blocks`. The set becomes caught up once every
    /// partition is read up to the end offset seen at start.
    pub fn start(
        config: &SyncConfig,
        set: Arc<SuppressionSet>,
        blocks: Arc<BlockList>,
    ) -> Result<Follower, SuppressError> {
        let c = config.client.client_config(Role::SuppressionFollower, |c| {
            // Assigned partitions: the consumer never joins a group (librdkafka wants a group id
            // for `assign` all the same; a unique one, and nothing is ever committed).
            c.set(
                "group.id",
                format!(
                    "{}-suppress-{}",
                    config.client.client_id,
                    uuid::Uuid::now_v7()
                ),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", config.fetch_wait_ms.to_string());
        });
        let consumer: FollowerConsumer =
            c.create_with_context(FollowerContext).map_err(kafka_err)?;
        set.set_caught_up(false);
        let stop = Arc::new(AtomicBool::new(false));
        let topic = config.topic.clone();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("suppress-follower".into())
                .spawn(move || follow(consumer, &topic, &set, &blocks, &stop))
                .map_err(|e| SuppressError::Config(format!("cannot start follower thread: {e}")))?
        };
        Ok(Follower {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops following and waits for the thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop_now();
    }
}

const POLL: Duration = Duration::from_millis(100);
const META_TIMEOUT: Duration = Duration::from_secs(5);
const LAG_EVERY: Duration = Duration::from_secs(5);

fn follow(
    consumer: FollowerConsumer,
    topic: &str,
    set: &SuppressionSet,
    blocks: &BlockList,
    stop: &AtomicBool,
) {
    let started = Instant::now();
    let warn = LogLimiter::new(Duration::from_secs(10));
    // 1. The partitions and the end offsets at start.
    let (partitions, mut targets) = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match start_offsets(&consumer, topic) {
            Ok(v) => break v,
            Err(e) => {
                if warn.allow().is_some() {
                    tracing::warn!(topic, error = %e, "suppression topic not reachable yet; retrying");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        if let Err(e) = tpl.add_partition_offset(topic, p, Offset::Beginning) {
            tracing::error!(topic, error = %e, "cannot build the partition assignment");
            return;
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        tracing::error!(topic, error = %e, "cannot assign the suppression topic's partitions");
        return;
    }
    tracing::info!(
        topic,
        partitions = partitions.len(),
        to_read = targets.values().sum::<i64>(),
        "following the suppression topic from the beginning"
    );
    let mut next: HashMap<i32, i64> = HashMap::new();
    let bad = LogLimiter::new(Duration::from_secs(10));
    let mut malformed = 0u64;
    let mut last_lag = Instant::now();
    let check_caught_up = |targets: &HashMap<i32, i64>, next: &HashMap<i32, i64>| {
        if set.is_caught_up() {
            return;
        }
        if targets
            .iter()
            .all(|(p, end)| next.get(p).copied().unwrap_or(0) >= *end)
        {
            set.set_caught_up(true);
            tracing::info!(
                topic,
                contacts = set.len(),
                applied = set.applied(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "suppression set caught up with the topic"
            );
        }
    };
    // Only partitions with something to read hold readiness back.
    targets.retain(|_, end| *end > 0);
    check_caught_up(&targets, &next);
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                let ts = m
                    .timestamp()
                    .to_millis()
                    .unwrap_or_else(openclick_common::now_ms);
                match m
                    .key()
                    .ok_or_else(|| SuppressError::Parse("record without key".into()))
                    .and_then(|k| decode_control(k, m.payload(), ts))
                {
                    Ok(Some(ControlRecord::Suppression(change))) => {
                        set.apply_replicated(&change);
                    }
                    Ok(Some(ControlRecord::Block(change))) => {
                        blocks.apply(&change);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        malformed += 1;
                        if bad.allow().is_some() {
                            // Partition and offset only: the key may hold a contact id.
                            tracing::warn!(
                                topic,
                                partition = m.partition(),
                                offset = m.offset(),
                                malformed,
                                error = %e,
                                "skipping a malformed suppression record"
                            );
                        }
                    }
                }
                if !set.is_caught_up()
                    && targets
                        .get(&m.partition())
                        .is_some_and(|e| m.offset() + 1 >= *e)
                {
                    check_caught_up(&targets, &next);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // Everything up to the current end is read (compaction can leave the last
                // offsets empty, so the end offset itself may never be delivered).
                if let Some(end) = targets.get(&p).copied() {
                    let n = next.entry(p).or_insert(0);
                    *n = (*n).max(end);
                }
                check_caught_up(&targets, &next);
            }
            Some(Err(e)) if warn.allow().is_some() => {
                tracing::warn!(topic, error = %e, "suppression follower error");
            }
            Some(Err(_)) => {}
        }
        if last_lag.elapsed() >= LAG_EVERY {
            last_lag = Instant::now();
            let mut lag = 0i64;
            for &p in &partitions {
                if let Ok((_, high)) = consumer.fetch_watermarks(topic, p, POLL) {
                    lag += (high - next.get(&p).copied().unwrap_or(0)).max(0);
                }
            }
            set.set_lag(lag as u64);
        }
    }
}

/// The topic's partitions and each one's high watermark.
fn start_offsets(
    consumer: &FollowerConsumer,
    topic: &str,
) -> Result<(Vec<i32>, HashMap<i32, i64>), SuppressError> {
    let md = consumer
        .fetch_metadata(Some(topic), META_TIMEOUT)
        .map_err(kafka_err)?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| SuppressError::Kafka("topic missing from metadata".into()))?;
    if let Some(e) = t.error() {
        return Err(SuppressError::Kafka(format!("topic metadata error: {e:?}")));
    }
    let partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    if partitions.is_empty() {
        return Err(SuppressError::Kafka("topic has no partitions".into()));
    }
    let mut ends = HashMap::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, META_TIMEOUT)
            .map_err(kafka_err)?;
        ends.insert(p, if high > low { high } else { 0 });
    }
    Ok((partitions, ends))
}
