//! The Kafka sink: protobuf events to a topic through librdkafka, with a durable spool behind it.
//!
//! Split the way a sink should be: [`KafkaConfig`] (what the operator chooses), record building
//! ([`crate::record_key_into`] and protobuf encoding into a reused per-thread buffer), and the
//! service ([`KafkaSink`], a `ThreadedProducer` whose delivery reports land in [`SinkStats`]).
//!
//! # Where an accepted event can be
//!
//! Once [`Sink::publish`] returns `Ok`, the event is ours to deliver. It is in exactly one of:
//!
//! 1. **librdkafka's queue** (or in flight to the broker): `publish` copied it there. The
//!    producer is idempotent with `acks=all`, so librdkafka's own retries never duplicate or
//!    reorder it within a partition.
//! 2. **the durable spool** ([`crate::spool`], `DATA_DIR/spool` in `openclick serve`), when
//!    - the producer queue is full at `publish` (cause `queue_full`);
//!    - the broker has been unreachable for [`KafkaConfig::spool_after_ms`]: `publish` then
//!      skips the producer altogether (cause `broker_down`);
//!    - a delivery failed with a retryable error after `message.timeout.ms` of retries
//!      (cause `delivery_failed`): the delivery report carries the record's key and payload,
//!      which the delivery-report thread appends to the spool;
//!    - at shutdown, the flush deadline passed: the producer queue is purged and the purged
//!      records' delivery reports spool them (cause `purged`);
//!    - the cluster rejected the idempotent producer's state (`PRODUCER_FENCED`,
//!      `UNKNOWN_PRODUCER_ID`, `OUT_OF_ORDER_SEQUENCE_NUMBER`, librdkafka's fatal error; seen
//!      when a broker restarts with memory storage or fences an epoch after timeouts): those
//!      records are spooled, and the replay thread replaces the producer with a fresh one
//!      (a new producer id), purging the old one's queue into the spool (cause `purged`). The
//!      same happens after two stalls in a row with no delivery in between while the broker
//!      answers metadata (a producer stuck after a broker restart).
//! 3. **delivered** (the broker acknowledged it) or **failed** (a fatal error such as a record
//!    too large, or the spool refused it: full, or writer gone). Failed is alarmed: an error
//!    log line (rate limited) and `openclick_sink_failed_by_reason_total`.
//!
//! So at every moment `accepted = delivered + failed + spooled + in_flight`, with all four
//! counters monotonic (see [`SinkStats`]); `spooled` counts hand-overs to the spool, and what
//! becomes of spooled events is counted by the replayer ([`KafkaSinkStats`]).
//!
//! # Replay
//!
//! A thread, `openclick-kafka-replay`, watches the broker's health and, while it is up,
//! re-publishes spooled records in write order (oldest segment first, nacked records first),
//! at most [`KafkaConfig::replay_max_in_flight`] at a time. Each replayed record carries its
//! spool [`RecordId`] (through the producer's delivery opaque: a slot number in a small table)
//! and is acked in the spool only when its delivery report says delivered; a retryable failure
//! nacks it (it is replayed again, in order, after a back-off), a fatal one acks it away and
//! counts it in `replay_failed`. A segment file is deleted only once every record in it is
//! acked. Segments left by a previous process are replayed after a restart the same way
//! (counted apart as `recovered`). Delivery is at least once: a record can be delivered twice
//! when its delivery report was lost (timeout after the broker wrote it, purge of an in-flight
//! request at shutdown, a restart before the spool segment was deleted). Events carry an
//! `event_id` for consumers to deduplicate.
//!
//! Ordering: the spool replays in write order, and librdkafka keeps order per partition. Live
//! events published while the backlog drains go straight to the producer, so an event spooled
//! during an outage can reach Kafka after a later event of the same contact; every event
//! carries its own timestamps.
//!
//! # Health
//!
//! [`Sink::health`] (and so `/readyz`) is `Down` when librdkafka reports every broker down,
//! when records have been waiting for an acknowledgement for [`KafkaConfig::stall_after_ms`]
//! with none arriving (a frozen broker keeps its TCP connections open), or when a delivery
//! timed out. It is `Up` again when a delivery succeeds or, while down, when a metadata probe
//! (every 500 ms from the replay thread) is answered.
//!
//! # Bounded memory, and a hot path that never blocks
//!
//! `publish` never waits: librdkafka copies the record into its queue, bounded on purpose by
//! `queue.buffering.max.messages` ([`KafkaConfig::queue_max_messages`], default 200 000) and
//! `queue.buffering.max.kbytes` ([`KafkaConfig::queue_max_kbytes`], default 128 MiB);
//! a full queue spills into the spool, whose in-memory channel is bounded too
//! ([`SpoolConfig::queue_capacity`], 8192 records) and whose disk use is bounded by
//! [`SpoolConfig::max_bytes`] (drop-newest when full: counted, logged, reported to the caller
//! as [`SinkError::SpoolFull`]). `Spool::append` on the hot path only frames the record and
//! `try_send`s it. The replay table holds at most `replay_max_in_flight` ids. Worst case, a
//! process holds about `queue_max_kbytes` + 8192 spool frames + one replay batch in memory.
//!
//! # Shutdown
//!
//! [`Sink::flush`] pauses the replayer, flushes the producer until `timeout` minus a reserve
//! (a quarter of it, at most 2 s), then, if records are still queued, purges the producer: the
//! purged records come back through their delivery reports and are spooled. It then fsyncs the
//! spool. Nothing accepted is left only in memory when it returns `Ok`.
//!
//! Error codes are classified explicitly by [`classify_code`]: retryable (the broker or
//! network will recover) or fatal (this record or this configuration will never be accepted).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openclick_events::v1::EngagementEvent;
use openclick_events::{Message as _, ENGAGEMENT_EVENT_TYPE};
use parking_lot::{Mutex, RwLock};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};

use crate::spool::{RecordId, Spool, SpoolConfig, SpoolStats};
use crate::{record_key_into, Health, Sink, SinkError, SinkStats, DEFAULT_EVENTS_TOPIC};

/// What the operator chooses for the Kafka sink.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The events topic.
    pub topic: String,
    /// `linger.ms`: how long librdkafka waits to fill a batch.
    pub linger_ms: u32,
    /// `compression.type`: `lz4` (default), `gzip`, `snappy`, `none`.
    pub compression: String,
    /// `batch.size`: the most bytes librdkafka puts in one partition's batch.
    pub batch_bytes: u32,
    /// `queue.buffering.max.messages`: the bound on events held in memory.
    pub queue_max_messages: u32,
    /// `queue.buffering.max.kbytes`: the bound on bytes held in memory.
    pub queue_max_kbytes: u32,
    /// `message.timeout.ms`: how long librdkafka retries a record before reporting it failed
    /// (and, with a spool, before the record is spooled).
    pub message_timeout_ms: u32,
    /// `client.id`.
    pub client_id: String,
    /// Any other librdkafka properties, applied last.
    pub extra: Vec<(String, String)>,
    /// The durable spool. `None`: no spool (events that cannot be delivered are failed).
    pub spool: Option<SpoolConfig>,
    /// Once the broker has been unreachable this long, `publish` spools directly.
    pub spool_after_ms: u64,
    /// Records waiting this long for an acknowledgement, with none arriving, mark the broker
    /// down (a frozen broker keeps its connections open).
    pub stall_after_ms: u64,
    /// The most spooled records the replayer keeps in flight.
    pub replay_max_in_flight: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: DEFAULT_EVENTS_TOPIC.into(),
            linger_ms: 5,
            compression: "lz4".into(),
            batch_bytes: 1_000_000,
            // 200k events of ~300 bytes: about 60 MiB at most, a few seconds of peak traffic.
            queue_max_messages: 200_000,
            queue_max_kbytes: 128 * 1024,
            message_timeout_ms: 30_000,
            client_id: "openclick".into(),
            extra: Vec::new(),
            spool: None,
            spool_after_ms: 5_000,
            stall_after_ms: 10_000,
            replay_max_in_flight: 10_000,
        }
    }
}

impl KafkaConfig {
    /// The librdkafka client configuration this turns into.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger_ms.to_string())
            .set("compression.type", &self.compression)
            .set("batch.size", self.batch_bytes.to_string())
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                self.queue_max_kbytes.to_string(),
            )
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
}

/// Whether an error may go away by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The broker or network may recover: keep the record and try again.
    Retryable,
    /// This record or configuration will never be accepted.
    Fatal,
}

/// Classifies a librdkafka error code, explicitly, code by code.
pub fn classify_code(code: RDKafkaErrorCode) -> ErrorClass {
    use RDKafkaErrorCode as C;
    match code {
        C::QueueFull
        | C::MessageTimedOut
        | C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::Resolve
        | C::NetworkException
        | C::RequestTimedOut
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::BrokerNotAvailable
        | C::ReplicaNotAvailable
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::NotCoordinator
        | C::CoordinatorNotAvailable
        | C::CoordinatorLoadInProgress
        | C::KafkaStorageError
        | C::FencedLeaderEpoch
        | C::UnknownLeaderEpoch
        | C::OutOfOrderSequenceNumber
        | C::UnknownTopicOrPartition
        | C::UnknownPartition
        | C::TimedOutQueue
        | C::WaitCache
        | C::InProgress
        | C::Retry
        | C::PurgeQueue
        | C::PurgeInflight
        | C::ThrottlingQuotaExceeded
        | C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::UnknownProducerId
        | C::InvalidProducerIdMapping => ErrorClass::Retryable,
        C::MessageSizeTooLarge
        | C::InvalidMessage
        | C::InvalidMessageSize
        | C::InvalidRecord
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::InvalidTopic
        | C::InvalidRequiredAcks
        | C::UnsupportedVersion
        | C::UnsupportedCompressionType
        | C::Fatal
        | C::InvalidArgument
        | C::UnknownTopic
        | C::Authentication
        | C::SaslAuthenticationFailed => ErrorClass::Fatal,
        // Unknown codes: keep the record. Losing data on a code we did not foresee is worse than
        // retrying a record that will fail again (the spool bounds the cost).
        _ => ErrorClass::Retryable,
    }
}

/// Errors that say the idempotent producer's own state (producer id, epoch, sequence numbers)
/// is no longer accepted by the cluster: the record is fine, the producer instance is not. The
/// sink replaces its producer (a fresh id) and retries the records (see [`KafkaSink`]). Seen
/// when a broker loses its producer state (restart with memory storage) or fences an epoch
/// after timeouts.
pub fn is_producer_state_error(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::Fatal
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::UnknownProducerId
            | C::InvalidProducerIdMapping
            | C::OutOfOrderSequenceNumber
    )
}

/// Classifies a client error: see [`classify_code`].
pub fn classify_kafka_error(e: &KafkaError) -> ErrorClass {
    match e.rdkafka_error_code() {
        Some(code) => classify_code(code),
        None => match e {
            KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => ErrorClass::Fatal,
            _ => ErrorClass::Retryable,
        },
    }
}

/// A bounded metric label for an error code.
fn reason_label(code: RDKafkaErrorCode) -> &'static str {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageTimedOut => "timed_out",
        C::QueueFull => "queue_full",
        C::MessageSizeTooLarge | C::InvalidMessageSize => "too_large",
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => "unauthorized",
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => "unknown_topic",
        C::AllBrokersDown | C::BrokerTransportFailure => "transport",
        C::PurgeQueue | C::PurgeInflight => "purged",
        _ => match classify_code(code) {
            ErrorClass::Retryable => "other_retryable",
            ErrorClass::Fatal => "other_fatal",
        },
    }
}

/// Failure reasons tracked as separate counters (bounded label set).
pub const FAILURE_REASONS: &[&str] = &[
    "timed_out",
    "queue_full",
    "too_large",
    "unauthorized",
    "unknown_topic",
    "transport",
    "purged",
    "other_retryable",
    "other_fatal",
    "spool_refused",
];
const SPOOL_REFUSED: usize = 9;

/// Why events went to the spool (bounded label set), in [`KafkaSinkStats::spooled_by_cause`].
/// `purged`: taken back from the producer's queue at the shutdown deadline or when the
/// producer was replaced.
pub const SPOOL_CAUSES: &[&str] = &["queue_full", "broker_down", "delivery_failed", "purged"];

#[derive(Clone, Copy, Debug)]
enum Cause {
    QueueFull = 0,
    BrokerDown = 1,
    DeliveryFailed = 2,
    Purged = 3,
}

/// The delivery opaque of a live record; replayed records carry a slot number >= 1.
const LIVE: usize = 0;
/// `down_since_ms` when the broker is up.
const NEVER: u64 = u64::MAX;
/// How long the delivery-report thread waits for room in the spool's channel.
const SPOOL_WAIT: Duration = Duration::from_secs(5);
/// Back-off after a replayed record failed retryably.
const REPLAY_BACKOFF_MS: u64 = 1_000;
/// Records per spool read.
const REPLAY_BATCH: usize = 1_000;
/// Health probe interval while the broker is down.
const PROBE_EVERY_MS: u64 = 500;

/// Whether a failed record may be tried again: [`classify_code`], except that librdkafka's
/// `Fatal` (the idempotent producer's state is broken, not this record) keeps the record.
fn record_class(code: RDKafkaErrorCode) -> ErrorClass {
    match code {
        RDKafkaErrorCode::Fatal => ErrorClass::Retryable,
        c => classify_code(c),
    }
}

fn reason_index(code: RDKafkaErrorCode) -> usize {
    let label = reason_label(code);
    FAILURE_REASONS
        .iter()
        .position(|r| *r == label)
        .unwrap_or(FAILURE_REASONS.len() - 2)
}

/// Counters, updated from the hot path, the delivery-report thread and the replay thread.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    spooled: AtomicU64,
    produced: AtomicU64,
    failed_by_reason: [AtomicU64; 10],
    spooled_by_cause: [AtomicU64; 4],
    replayed: AtomicU64,
    replay_delivered: AtomicU64,
    replay_retried: AtomicU64,
    replay_failed: AtomicU64,
    recovered_delivered: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// At most one log line per interval; counts what it suppressed.
#[derive(Debug, Default)]
struct RateLimit {
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    fn allow(&self, now_ms: u64, every_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if (last == 0 || now_ms.saturating_sub(last) >= every_ms)
            && self
                .last_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// State shared by the sink, its delivery-report thread and its replay thread.
struct Shared {
    counters: Counters,
    spool: Option<Spool>,
    /// Spool segments with an id up to this one were left by a previous process.
    recovered_upto: Option<u64>,
    /// Replayed records in flight: delivery-opaque slot -> spool record.
    replay_slots: Mutex<HashMap<usize, RecordId>>,
    next_slot: AtomicUsize,
    started: Instant,
    up: AtomicBool,
    down_since_ms: AtomicU64,
    last_ok_ms: AtomicU64,
    last_idle_ms: AtomicU64,
    replay_backoff_until_ms: AtomicU64,
    /// A flush is running: no new replays.
    paused: AtomicBool,
    /// Closing: the replay thread stops.
    stop: AtomicBool,
    /// The producer's idempotence state was rejected: the replay thread replaces it.
    reset_requested: AtomicBool,
    producer_resets: AtomicU64,
    /// Stalls (records waiting, no acknowledgement) since the last successful delivery.
    stalls_since_delivery: AtomicU64,
    spool_after_ms: u64,
    stall_after_ms: u64,
    replay_max_in_flight: usize,
    fail_log: RateLimit,
    error_log: RateLimit,
    replay_log: RateLimit,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn mark_up(&self) {
        let now = self.now_ms();
        self.last_ok_ms.store(now, Ordering::Relaxed);
        if !self.up.swap(true, Ordering::AcqRel) {
            let since = self.down_since_ms.swap(NEVER, Ordering::AcqRel);
            tracing::info!(
                target: "openclick::sink",
                down_ms = now.saturating_sub(if since == NEVER { now } else { since }),
                "kafka reachable"
            );
        }
    }

    fn mark_down(&self, why: &'static str) {
        let was_up = self.up.swap(false, Ordering::AcqRel);
        let now = self.now_ms();
        if self
            .down_since_ms
            .compare_exchange(NEVER, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            || was_up
        {
            tracing::warn!(
                target: "openclick::sink",
                why,
                spool = self.spool.is_some(),
                "kafka unreachable: events wait in the producer queue, then go to the spool"
            );
        }
    }

    /// Whether `publish` should skip the producer and spool directly.
    fn bypass(&self) -> bool {
        if self.spool.is_none() || self.up.load(Ordering::Relaxed) {
            return false;
        }
        let since = self.down_since_ms.load(Ordering::Relaxed);
        since != NEVER && self.now_ms().saturating_sub(since) >= self.spool_after_ms
    }

    fn is_recovered(&self, id: RecordId) -> bool {
        self.recovered_upto.is_some_and(|max| id.segment() <= max)
    }

    /// Hands one record to the spool; counts it spooled, or refuses.
    fn spool_record(
        &self,
        key: &[u8],
        payload: &[u8],
        cause: Cause,
        wait: Option<Duration>,
    ) -> Result<(), SinkError> {
        let Some(spool) = &self.spool else {
            return Err(SinkError::SpoolFull);
        };
        let outcome = match wait {
            Some(w) => spool.append_wait(key, payload, w),
            None => spool.append(key, payload),
        };
        if outcome.is_queued() {
            bump(&self.counters.spooled);
            bump(&self.counters.spooled_by_cause[cause as usize]);
            Ok(())
        } else {
            Err(SinkError::SpoolFull)
        }
    }

    /// Counts an accepted event as given up on, and alarms.
    fn fail(&self, reason: usize, code: RDKafkaErrorCode) {
        bump(&self.counters.failed);
        bump(&self.counters.failed_by_reason[reason]);
        if let Some(suppressed) = self.fail_log.allow(self.now_ms(), 1_000) {
            tracing::error!(
                target: "openclick::sink",
                reason = FAILURE_REASONS[reason],
                code = %code,
                class = ?classify_code(code),
                failed_total = get(&self.counters.failed),
                suppressed,
                "EVENT LOST: delivery failed and the event was not spooled"
            );
        }
    }

    /// Settles a replayed record from its delivery report.
    fn replay_settled(&self, slot: usize, result: Result<(), RDKafkaErrorCode>) {
        let Some(id) = self.replay_slots.lock().remove(&slot) else {
            return;
        };
        let Some(spool) = &self.spool else {
            return;
        };
        match result {
            Ok(()) => {
                spool.ack(id);
                bump(&self.counters.replay_delivered);
                if self.is_recovered(id) {
                    bump(&self.counters.recovered_delivered);
                }
            }
            Err(code) if record_class(code) == ErrorClass::Retryable => {
                spool.nack(id);
                bump(&self.counters.replay_retried);
                self.replay_backoff_until_ms
                    .store(self.now_ms() + REPLAY_BACKOFF_MS, Ordering::Relaxed);
            }
            Err(code) => {
                spool.ack(id);
                bump(&self.counters.replay_failed);
                if let Some(suppressed) = self.fail_log.allow(self.now_ms(), 1_000) {
                    tracing::error!(
                        target: "openclick::sink",
                        code = %code,
                        record = %id,
                        suppressed,
                        "EVENT LOST: a spooled event failed fatally on replay and was dropped"
                    );
                }
            }
        }
    }
}

/// Delivery reports and client errors, turned into counters, health, spool writes and logs.
struct DeliveryContext {
    shared: Arc<Shared>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{msg}"),
            _ => tracing::debug!(target: "librdkafka", fac, "{msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared.mark_down("all brokers down");
        }
        if code == Some(RDKafkaErrorCode::Fatal) {
            self.shared.reset_requested.store(true, Ordering::Relaxed);
            tracing::error!(target: "openclick::sink", %error, reason,
                "kafka producer fatal error: replacing the producer; its records are spooled");
        } else if let Some(suppressed) = self.shared.error_log.allow(self.shared.now_ms(), 5_000) {
            tracing::warn!(target: "openclick::sink", %error, reason, suppressed, "kafka client error");
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        let sh = &self.shared;
        match result {
            Ok(_) => {
                sh.mark_up();
                sh.stalls_since_delivery.store(0, Ordering::Relaxed);
                if slot == LIVE {
                    bump(&sh.counters.delivered);
                } else {
                    sh.replay_settled(slot, Ok(()));
                }
            }
            Err((e, msg)) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                if code == RDKafkaErrorCode::MessageTimedOut {
                    sh.mark_down("a delivery timed out");
                }
                if is_producer_state_error(code) {
                    sh.reset_requested.store(true, Ordering::Relaxed);
                }
                if slot != LIVE {
                    sh.replay_settled(slot, Err(code));
                    return;
                }
                if record_class(code) == ErrorClass::Retryable && sh.spool.is_some() {
                    let cause = match code {
                        RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight => {
                            Cause::Purged
                        }
                        _ => Cause::DeliveryFailed,
                    };
                    let key = msg.key().unwrap_or_default();
                    let payload = msg.payload().unwrap_or_default();
                    if sh
                        .spool_record(key, payload, cause, Some(SPOOL_WAIT))
                        .is_err()
                    {
                        sh.fail(SPOOL_REFUSED, code);
                    }
                } else {
                    sh.fail(reason_index(code), code);
                }
            }
        }
    }
}

/// Everything [`KafkaSink`] counts, for metrics, logs and tests.
#[derive(Clone, Debug, Default)]
pub struct KafkaSinkStats {
    /// The [`Sink`] accounting (events accepted by this process).
    pub sink: SinkStats,
    /// Records handed to librdkafka (live and replayed).
    pub produced: u64,
    /// Failed events per reason ([`FAILURE_REASONS`]).
    pub failed_by_reason: Vec<(&'static str, u64)>,
    /// Spooled events per cause ([`SPOOL_CAUSES`]).
    pub spooled_by_cause: Vec<(&'static str, u64)>,
    /// Spooled records re-published (a record retried after a nack counts again).
    pub replayed: u64,
    /// Spooled records the broker acknowledged (acked in the spool).
    pub replay_delivered: u64,
    /// Replayed records that failed retryably (nacked, replayed again later).
    pub replay_retried: u64,
    /// Replayed records that failed fatally (dropped from the spool; alarmed).
    pub replay_failed: u64,
    /// Of `replay_delivered`, records left in the spool by a previous process.
    pub recovered_delivered: u64,
    /// Replayed records awaiting their delivery report.
    pub replay_in_flight: u64,
    /// librdkafka's queue: records waiting or in flight.
    pub queue_depth: u64,
    /// Broker reachability.
    pub up: bool,
    /// Times the producer was replaced after its idempotence state was rejected.
    pub producer_resets: u64,
    /// The spool's own gauges and counters, with a spool.
    pub spool: Option<SpoolStats>,
}

/// The Kafka sink. Cheap to share behind an `Arc`.
pub struct KafkaSink {
    slot: Arc<ProducerSlot>,
    topic: String,
    headers: OwnedHeaders,
    shared: Arc<Shared>,
    brokers: String,
    flush_lock: Mutex<()>,
    replayer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("spool", &self.shared.spool)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Per-thread key and payload buffers: librdkafka copies both, so they are reused.
    static BUFS: RefCell<(Vec<u8>, Vec<u8>)> = RefCell::new((Vec::with_capacity(128), Vec::with_capacity(1024)));
}

/// The highest segment id among `*.seg` files in `dir` (none if it does not exist yet).
fn max_segment_id(dir: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".seg")?.to_string();
            (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .then(|| stem.parse::<u64>().ok())
                .flatten()
        })
        .max()
}

impl KafkaSink {
    /// Creates the producer, opens the spool (if configured; what a previous process left in
    /// it is replayed once the broker answers) and starts the replay/health thread. Does not
    /// wait for the brokers: reachability shows in [`Sink::health`].
    pub fn new(config: &KafkaConfig) -> Result<KafkaSink, SinkError> {
        if config.topic.is_empty() {
            return Err(SinkError::Config("topic must not be empty".into()));
        }
        let (spool, recovered_upto) = match &config.spool {
            Some(sc) => {
                let recovered_upto = max_segment_id(&sc.dir);
                let spool = Spool::open(sc.clone())?;
                let st = spool.stats();
                if st.pending_records > 0 {
                    tracing::info!(
                        target: "openclick::sink",
                        events = st.pending_records,
                        bytes = st.bytes_on_disk,
                        "spool holds events from a previous run: they are replayed once kafka answers"
                    );
                }
                (Some(spool), recovered_upto)
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            spool,
            recovered_upto,
            replay_slots: Mutex::new(HashMap::new()),
            next_slot: AtomicUsize::new(1),
            started: Instant::now(),
            up: AtomicBool::new(false),
            down_since_ms: AtomicU64::new(0),
            last_ok_ms: AtomicU64::new(0),
            last_idle_ms: AtomicU64::new(0),
            replay_backoff_until_ms: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            reset_requested: AtomicBool::new(false),
            producer_resets: AtomicU64::new(0),
            stalls_since_delivery: AtomicU64::new(0),
            spool_after_ms: config.spool_after_ms,
            stall_after_ms: config.stall_after_ms.max(1),
            replay_max_in_flight: config.replay_max_in_flight.max(1),
            fail_log: RateLimit::default(),
            error_log: RateLimit::default(),
            replay_log: RateLimit::default(),
        });
        let slot = Arc::new(ProducerSlot::new(config.client_config(), shared.clone())?);
        let headers = OwnedHeaders::new().insert(Header {
            key: "ce_type",
            value: Some(ENGAGEMENT_EVENT_TYPE),
        });
        let replayer = Replayer {
            slot: slot.clone(),
            shared: shared.clone(),
            topic: config.topic.clone(),
            headers: headers.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("openclick-kafka-replay".into())
            .spawn(move || replayer.run())
            .map_err(|e| SinkError::Config(format!("cannot start the replay thread: {e}")))?;
        Ok(KafkaSink {
            slot,
            topic: config.topic.clone(),
            headers,
            shared,
            brokers: config.brokers.clone(),
            flush_lock: Mutex::new(()),
            replayer: Mutex::new(Some(handle)),
        })
    }

    /// The bootstrap servers this sink produces to.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The topic this sink produces to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The spool, if configured.
    pub fn spool(&self) -> Option<&Spool> {
        self.shared.spool.as_ref()
    }

    /// Events waiting in librdkafka's queue or in flight to the broker.
    pub fn queue_depth(&self) -> i32 {
        self.slot.get().in_flight_count()
    }

    /// Failed deliveries per reason, for metrics (labels from [`FAILURE_REASONS`]).
    pub fn failures_by_reason(&self) -> Vec<(&'static str, u64)> {
        FAILURE_REASONS
            .iter()
            .zip(self.shared.counters.failed_by_reason.iter())
            .map(|(r, c)| (*r, get(c)))
            .collect()
    }

    /// Everything this sink counts.
    pub fn detailed_stats(&self) -> KafkaSinkStats {
        let c = &self.shared.counters;
        KafkaSinkStats {
            sink: self.stats(),
            produced: get(&c.produced),
            failed_by_reason: self.failures_by_reason(),
            spooled_by_cause: SPOOL_CAUSES
                .iter()
                .zip(c.spooled_by_cause.iter())
                .map(|(r, c)| (*r, get(c)))
                .collect(),
            replayed: get(&c.replayed),
            replay_delivered: get(&c.replay_delivered),
            replay_retried: get(&c.replay_retried),
            replay_failed: get(&c.replay_failed),
            recovered_delivered: get(&c.recovered_delivered),
            replay_in_flight: self.shared.replay_slots.lock().len() as u64,
            queue_depth: self.queue_depth().max(0) as u64,
            up: self.shared.up.load(Ordering::Relaxed),
            producer_resets: get(&self.shared.producer_resets),
            spool: self.shared.spool.as_ref().map(Spool::stats),
        }
    }

    /// Whether every accepted event is delivered or settled, and the spool is empty (nothing
    /// queued, pending or in flight). For tests and operators waiting for a backlog to drain.
    pub fn is_drained(&self) -> bool {
        self.stats().in_flight() == 0
            && self.shared.spool.as_ref().is_none_or(Spool::is_empty)
            && self.shared.replay_slots.lock().is_empty()
    }

    /// Stops replaying for good, then [`flush`](Sink::flush)es: for shutdown.
    pub fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.replayer.lock().take() {
            let _ = h.join();
        }
        self.flush(timeout)
    }

    fn wait_settled(&self, deadline: Instant) -> bool {
        loop {
            if self.stats().in_flight() == 0 && self.shared.replay_slots.lock().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.replayer.lock().take() {
            let _ = h.join();
        }
        // The producer's own drop purges what is left; the purged records' delivery reports
        // spool them, and the spool's drop writes and fsyncs them.
    }
}

type SinkProducer = ThreadedProducer<DeliveryContext>;

/// The current producer, replaceable. `publish` sends under the read lock (never held across
/// anything that waits), so after a swap under the write lock nobody but the replacing thread
/// holds the old producer.
struct ProducerSlot {
    current: RwLock<Arc<SinkProducer>>,
    config: ClientConfig,
    shared: Arc<Shared>,
}

impl ProducerSlot {
    fn new(config: ClientConfig, shared: Arc<Shared>) -> Result<ProducerSlot, SinkError> {
        let producer = Self::create(&config, &shared)?;
        Ok(ProducerSlot {
            current: RwLock::new(Arc::new(producer)),
            config,
            shared,
        })
    }

    fn create(config: &ClientConfig, shared: &Arc<Shared>) -> Result<SinkProducer, SinkError> {
        config
            .create_with_context(DeliveryContext {
                shared: shared.clone(),
            })
            .map_err(|e| SinkError::Config(e.to_string()))
    }

    fn get(&self) -> Arc<SinkProducer> {
        self.current.read().clone()
    }

    /// Replaces the producer with a fresh one (a new producer id). The old one's queue is
    /// purged: the purge's delivery reports spool its live records and nack its replayed ones.
    fn reset(&self) {
        let fresh = match Self::create(&self.config, &self.shared) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::error!(target: "openclick::sink", error = %e, "cannot replace the producer");
                self.shared.reset_requested.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_secs(1));
                return;
            }
        };
        let old = std::mem::replace(&mut *self.current.write(), fresh);
        bump(&self.shared.producer_resets);
        tracing::warn!(
            target: "openclick::sink",
            queued = old.in_flight_count(),
            resets = get(&self.shared.producer_resets),
            "the cluster rejected the producer's idempotence state: producer replaced, its queue spooled"
        );
        old.purge(PurgeConfig::default().queue().inflight());
        let _ = old.flush(Duration::from_secs(2));
        // Dropped here, on the replay thread (its drop joins its polling thread).
        drop(old);
    }
}

/// The replay and health thread.
struct Replayer {
    slot: Arc<ProducerSlot>,
    shared: Arc<Shared>,
    topic: String,
    headers: OwnedHeaders,
}

impl Replayer {
    fn run(self) {
        let sh = &*self.shared;
        let mut last_probe: Option<u64> = None;
        let mut last_reset: Option<Instant> = None;
        while !sh.stop.load(Ordering::Relaxed) {
            // At most one replacement per 2 s: the old producer's last failures may ask again.
            if last_reset.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(2))
                && sh.reset_requested.swap(false, Ordering::Relaxed)
            {
                self.slot.reset();
                last_reset = Some(Instant::now());
            }
            let now = sh.now_ms();
            self.watch_health(now, &mut last_probe);
            let sent = if sh.up.load(Ordering::Relaxed)
                && !sh.paused.load(Ordering::Relaxed)
                && now >= sh.replay_backoff_until_ms.load(Ordering::Relaxed)
            {
                self.replay_some()
            } else {
                0
            };
            if sent == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn watch_health(&self, now: u64, last_probe: &mut Option<u64>) {
        let sh = &*self.shared;
        if self.slot.get().in_flight_count() <= 0 {
            sh.last_idle_ms.store(now, Ordering::Relaxed);
        }
        if sh.up.load(Ordering::Relaxed) {
            let progress = sh
                .last_ok_ms
                .load(Ordering::Relaxed)
                .max(sh.last_idle_ms.load(Ordering::Relaxed));
            if now.saturating_sub(progress) > sh.stall_after_ms {
                sh.mark_down("records waiting for an acknowledgement, none arriving");
                // A second stall with no delivery in between, the broker answering metadata in
                // the meantime: the broker is there but this producer is stuck (e.g. waiting
                // for a producer id a restarted broker will not give back). Replace it.
                if sh.stalls_since_delivery.fetch_add(1, Ordering::Relaxed) >= 1 {
                    sh.reset_requested.store(true, Ordering::Relaxed);
                }
            }
            return;
        }
        if last_probe.is_some_and(|t| now.saturating_sub(t) < PROBE_EVERY_MS) {
            return;
        }
        *last_probe = Some(now);
        let md = self
            .slot
            .get()
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_millis(1_000));
        if let Ok(md) = md {
            let ok = md.topics().iter().any(|t| {
                t.name() == self.topic && t.error().is_none() && !t.partitions().is_empty()
            });
            if ok {
                sh.mark_up();
            }
        }
    }

    /// Re-publishes one batch of spooled records. Returns how many were handed to librdkafka.
    fn replay_some(&self) -> usize {
        let sh = &*self.shared;
        let Some(spool) = &sh.spool else {
            return 0;
        };
        let in_flight = sh.replay_slots.lock().len();
        let room = sh.replay_max_in_flight.saturating_sub(in_flight);
        if room == 0 {
            return 0;
        }
        let batch = match spool.read_batch(room.min(REPLAY_BATCH)) {
            Ok(b) => b,
            Err(e) => {
                if let Some(suppressed) = sh.replay_log.allow(sh.now_ms(), 10_000) {
                    tracing::error!(target: "openclick::sink", error = %e, suppressed,
                        "spool read failed; retrying");
                }
                sh.replay_backoff_until_ms
                    .store(sh.now_ms() + REPLAY_BACKOFF_MS, Ordering::Relaxed);
                return 0;
            }
        };
        let mut sent = 0;
        let mut records = batch.into_iter();
        while let Some(rec) = records.next() {
            let mut slot = sh.next_slot.fetch_add(1, Ordering::Relaxed);
            if slot == LIVE {
                slot = sh.next_slot.fetch_add(1, Ordering::Relaxed);
            }
            sh.replay_slots.lock().insert(slot, rec.id);
            let record = BaseRecord::with_opaque_to(&self.topic, slot)
                .key(rec.key.as_slice())
                .payload(rec.payload.as_slice())
                .headers(self.headers.clone());
            let sent_result = self.slot.current.read().send(record).map_err(|(e, _)| e);
            match sent_result {
                Ok(()) => {
                    sent += 1;
                    bump(&sh.counters.replayed);
                    bump(&sh.counters.produced);
                }
                Err(e) => {
                    sh.replay_slots.lock().remove(&slot);
                    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    if record_class(code) == ErrorClass::Fatal {
                        spool.ack(rec.id);
                        bump(&sh.counters.replay_failed);
                        tracing::error!(target: "openclick::sink", code = %code, record = %rec.id,
                            "EVENT LOST: a spooled event was refused by the producer and dropped");
                        continue;
                    }
                    // Queue full (or another retryable refusal): put the rest back, in order.
                    spool.nack(rec.id);
                    for r in records.by_ref() {
                        spool.nack(r.id);
                    }
                    let pause = if code == RDKafkaErrorCode::QueueFull {
                        50
                    } else {
                        REPLAY_BACKOFF_MS
                    };
                    sh.replay_backoff_until_ms
                        .store(sh.now_ms() + pause, Ordering::Relaxed);
                    break;
                }
            }
        }
        sent
    }
}

impl Sink for KafkaSink {
    fn publish(&self, event: &EngagementEvent) -> Result<(), SinkError> {
        let sh = &*self.shared;
        BUFS.with(|bufs| {
            let mut bufs = bufs.borrow_mut();
            let (key, payload) = &mut *bufs;
            record_key_into(event, key);
            payload.clear();
            event
                .encode(payload)
                .map_err(|e| SinkError::Config(format!("encode: {e}")))?;
            // Count before handing over: the delivery report may arrive before `send` returns.
            sh.counters.accepted.fetch_add(1, Ordering::Relaxed);
            if sh.bypass() {
                return sh
                    .spool_record(key, payload, Cause::BrokerDown, None)
                    .inspect_err(|_| {
                        sh.counters.accepted.fetch_sub(1, Ordering::Relaxed);
                    });
            }
            let record = BaseRecord::with_opaque_to(&self.topic, LIVE)
                .key(key.as_slice())
                .payload(payload.as_slice())
                .headers(self.headers.clone());
            let sent = self.slot.current.read().send(record).map_err(|(e, _)| e);
            match sent {
                Ok(()) => {
                    bump(&sh.counters.produced);
                    Ok(())
                }
                Err(e) => {
                    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                    if sh.spool.is_some() && record_class(code) == ErrorClass::Retryable {
                        return sh
                            .spool_record(key, payload, Cause::QueueFull, None)
                            .inspect_err(|_| {
                                sh.counters.accepted.fetch_sub(1, Ordering::Relaxed);
                            });
                    }
                    sh.counters.accepted.fetch_sub(1, Ordering::Relaxed);
                    if code == RDKafkaErrorCode::QueueFull {
                        Err(SinkError::QueueFull)
                    } else {
                        Err(SinkError::Kafka(e))
                    }
                }
            }
        })
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let _one_at_a_time = self.flush_lock.lock();
        let sh = &*self.shared;
        let started = Instant::now();
        let deadline = started + timeout;
        sh.paused.store(true, Ordering::Relaxed);
        let reserve = if sh.spool.is_some() {
            (timeout / 4).min(Duration::from_secs(2))
        } else {
            Duration::ZERO
        };
        let mut purged = 0;
        let producer = self.slot.get();
        if producer.flush(timeout - reserve).is_err() && sh.spool.is_some() {
            // Deadline: whatever librdkafka still holds goes to the spool through the purge's
            // delivery reports (in-flight requests may still land: at least once).
            purged = producer.in_flight_count().max(0);
            tracing::warn!(target: "openclick::sink", queued = purged,
                "flush deadline passed: moving the producer queue to the spool");
            producer.purge(PurgeConfig::default().queue().inflight());
            let _ = producer.flush(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(500)),
            );
        }
        drop(producer);
        let settled = self.wait_settled(deadline.max(Instant::now() + Duration::from_millis(500)));
        let spool_result = match &sh.spool {
            Some(spool) => spool.flush(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(2)),
            ),
            None => Ok(()),
        };
        sh.paused.store(false, Ordering::Relaxed);
        let d = self.detailed_stats();
        let spool = d.spool.unwrap_or_default();
        tracing::info!(
            target: "openclick::sink",
            accepted = d.sink.accepted,
            delivered = d.sink.delivered,
            spooled = d.sink.spooled,
            failed = d.sink.failed,
            in_flight = d.sink.in_flight(),
            purged,
            replayed = d.replayed,
            replay_delivered = d.replay_delivered,
            recovered_delivered = d.recovered_delivered,
            spool_pending = spool.pending_records + spool.queued_records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "kafka sink flushed"
        );
        if let Err(e) = spool_result {
            tracing::error!(target: "openclick::sink", error = %e, "spool flush failed");
            return Err(e.into());
        }
        if settled {
            Ok(())
        } else {
            Err(SinkError::FlushTimeout {
                in_flight: d.sink.in_flight(),
            })
        }
    }

    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        KafkaSink::close(self, timeout)
    }

    fn export_metrics(&self) {
        use metrics::{counter, gauge};
        let d = self.detailed_stats();
        d.sink.export();
        counter!("openclick_sink_produced_total").absolute(d.produced);
        for (reason, n) in &d.failed_by_reason {
            counter!("openclick_sink_failed_by_reason_total", "reason" => *reason).absolute(*n);
        }
        for (cause, n) in &d.spooled_by_cause {
            counter!("openclick_sink_spooled_by_cause_total", "cause" => *cause).absolute(*n);
        }
        counter!("openclick_sink_replayed_total").absolute(d.replayed);
        counter!("openclick_sink_replay_delivered_total").absolute(d.replay_delivered);
        counter!("openclick_sink_replay_retried_total").absolute(d.replay_retried);
        counter!("openclick_sink_replay_failed_total").absolute(d.replay_failed);
        counter!("openclick_sink_recovered_delivered_total").absolute(d.recovered_delivered);
        gauge!("openclick_sink_replay_in_flight").set(d.replay_in_flight as f64);
        gauge!("openclick_sink_producer_queue_depth").set(d.queue_depth as f64);
        gauge!("openclick_sink_broker_up").set(if d.up { 1.0 } else { 0.0 });
        counter!("openclick_sink_producer_resets_total").absolute(d.producer_resets);
        if let Some(s) = d.spool {
            gauge!("openclick_spool_pending_events")
                .set((s.pending_records + s.queued_records) as f64);
            gauge!("openclick_spool_bytes").set(s.bytes_on_disk as f64);
            gauge!("openclick_spool_segments").set(s.segments as f64);
            gauge!("openclick_spool_oldest_age_seconds")
                .set(s.oldest_record_age_ms.unwrap_or(0) as f64 / 1000.0);
            counter!("openclick_spool_appended_total").absolute(s.appended);
            counter!("openclick_spool_acked_total").absolute(s.acked);
            for (cause, n) in [
                ("full", s.dropped_full),
                ("queue_full", s.dropped_queue_full),
                ("too_large", s.dropped_too_large),
                ("closed", s.dropped_closed),
                ("write_error", s.dropped_write_error),
            ] {
                counter!("openclick_spool_dropped_total", "cause" => cause).absolute(n);
            }
            counter!("openclick_spool_corrupt_records_total").absolute(s.corrupt_records);
            counter!("openclick_spool_torn_bytes_total").absolute(s.torn_bytes);
            counter!("openclick_spool_write_errors_total").absolute(s.write_errors);
            counter!("openclick_spool_fsyncs_total").absolute(s.fsyncs);
        }
    }

    fn health(&self) -> Health {
        if self.shared.up.load(Ordering::Relaxed) {
            Health::Up
        } else {
            Health::Down
        }
    }

    fn stats(&self) -> SinkStats {
        let c = &self.shared.counters;
        SinkStats {
            accepted: get(&c.accepted),
            delivered: get(&c.delivered),
            failed: get(&c.failed),
            spooled: get(&c.spooled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_explicit() {
        assert_eq!(
            classify_code(RDKafkaErrorCode::QueueFull),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify_code(RDKafkaErrorCode::MessageTimedOut),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify_code(RDKafkaErrorCode::MessageSizeTooLarge),
            ErrorClass::Fatal
        );
        assert_eq!(
            classify_code(RDKafkaErrorCode::TopicAuthorizationFailed),
            ErrorClass::Fatal
        );
        assert_eq!(reason_label(RDKafkaErrorCode::MessageTimedOut), "timed_out");
        assert!(FAILURE_REASONS.contains(&reason_label(RDKafkaErrorCode::InvalidRecord)));
    }

    #[test]
    fn config_sets_idempotent_acks_all() {
        let c = KafkaConfig::default().client_config();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("compression.type"), Some("lz4"));
    }
}
