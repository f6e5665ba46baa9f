//! The Kafka sink: protobuf events to a topic through librdkafka.
//!
//! Split the way a sink should be: [`KafkaConfig`] (what the operator chooses), record building
//! ([`crate::record_key_into`] and protobuf encoding into a reused per-thread buffer), and the
//! service ([`KafkaSink`], a `ThreadedProducer` whose delivery reports land in [`SinkStats`]).
//!
//! `publish` never waits for the broker: librdkafka copies the record into its own queue and a
//! background thread batches (`linger.ms`), compresses and sends it; the delivery report arrives
//! later on that thread. The queue is bounded on purpose (`queue.buffering.max.messages` and
//! `.kbytes`), so memory stays bounded when the broker is away: a full queue is reported to the
//! caller as the retryable [`SinkError::QueueFull`].
//!
//! Error codes are classified explicitly by [`classify_kafka_error`]: retryable (the broker or
//! network will recover) or fatal (this record or this configuration will never be accepted).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclick_events::v1::EngagementEvent;
use openclick_events::{Message, ENGAGEMENT_EVENT_TYPE};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

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
    /// `queue.buffering.max.messages`: the bound on events held in memory.
    pub queue_max_messages: u32,
    /// `queue.buffering.max.kbytes`: the bound on bytes held in memory.
    pub queue_max_kbytes: u32,
    /// `message.timeout.ms`: how long librdkafka retries a record before reporting it failed.
    pub message_timeout_ms: u32,
    /// `client.id`.
    pub client_id: String,
    /// Any other librdkafka properties, applied last.
    pub extra: Vec<(String, String)>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: DEFAULT_EVENTS_TOPIC.into(),
            linger_ms: 5,
            compression: "lz4".into(),
            // 200k events of ~300 bytes: about 60 MiB at most, a few seconds of peak traffic.
            queue_max_messages: 200_000,
            queue_max_kbytes: 128 * 1024,
            message_timeout_ms: 30_000,
            client_id: "openclick".into(),
            extra: Vec::new(),
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
        | C::ThrottlingQuotaExceeded => ErrorClass::Retryable,
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
];

/// Shared counters, updated from the producer's delivery thread.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    spooled: AtomicU64,
    failed_by_reason: [AtomicU64; 9],
    up: AtomicBool,
    last_delivery_ms: AtomicU64,
}

/// Delivery reports and client errors, turned into counters, health and log lines.
struct DeliveryContext {
    counters: Arc<Counters>,
    started: Instant,
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
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.counters.up.store(false, Ordering::Relaxed);
        }
        tracing::warn!(target: "openclick::sink", %error, reason, "kafka client error");
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let c = &self.counters;
        match result {
            Ok(_) => {
                c.delivered.fetch_add(1, Ordering::Relaxed);
                c.up.store(true, Ordering::Relaxed);
                c.last_delivery_ms
                    .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            Err((e, _msg)) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                let label = reason_label(code);
                if let Some(i) = FAILURE_REASONS.iter().position(|r| *r == label) {
                    c.failed_by_reason[i].fetch_add(1, Ordering::Relaxed);
                }
                c.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    target: "openclick::sink",
                    reason = label,
                    class = ?classify_code(code),
                    "event delivery failed"
                );
            }
        }
    }
}

/// The Kafka sink. Cheap to share behind an `Arc`.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    headers: OwnedHeaders,
    counters: Arc<Counters>,
    brokers: String,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Per-thread key and payload buffers: librdkafka copies both, so they are reused.
    static BUFS: RefCell<(Vec<u8>, Vec<u8>)> = RefCell::new((Vec::with_capacity(128), Vec::with_capacity(1024)));
}

impl KafkaSink {
    /// Creates the producer. Does not wait for the brokers: reachability shows in
    /// [`Sink::health`] once the first metadata or delivery arrives.
    pub fn new(config: &KafkaConfig) -> Result<KafkaSink, SinkError> {
        if config.topic.is_empty() {
            return Err(SinkError::Config("topic must not be empty".into()));
        }
        let counters = Arc::new(Counters::default());
        let context = DeliveryContext {
            counters: counters.clone(),
            started: Instant::now(),
        };
        let producer: ThreadedProducer<DeliveryContext> = config
            .client_config()
            .create_with_context(context)
            .map_err(|e| SinkError::Config(e.to_string()))?;
        let headers = OwnedHeaders::new().insert(Header {
            key: "ce_type",
            value: Some(ENGAGEMENT_EVENT_TYPE),
        });
        let sink = KafkaSink {
            producer,
            topic: config.topic.clone(),
            headers,
            counters,
            brokers: config.brokers.clone(),
        };
        sink.probe_in_background();
        Ok(sink)
    }

    /// Asks the cluster for the topic's metadata off-thread; marks the sink up on an answer.
    fn probe_in_background(&self) {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let counters = self.counters.clone();
        let _ = std::thread::Builder::new()
            .name("kafka-probe".into())
            .spawn(move || {
                for _ in 0..30 {
                    match producer
                        .client()
                        .fetch_metadata(Some(&topic), Duration::from_secs(2))
                    {
                        Ok(_) => {
                            counters.up.store(true, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => tracing::warn!(%e, "kafka not reachable yet"),
                    }
                }
            });
    }

    /// The bootstrap servers this sink produces to.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The topic this sink produces to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Events waiting in librdkafka's queue or in flight to the broker.
    pub fn queue_depth(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Failed deliveries per reason, for metrics (labels from [`FAILURE_REASONS`]).
    pub fn failures_by_reason(&self) -> Vec<(&'static str, u64)> {
        FAILURE_REASONS
            .iter()
            .zip(self.counters.failed_by_reason.iter())
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Sink for KafkaSink {
    fn publish(&self, event: &EngagementEvent) -> Result<(), SinkError> {
        BUFS.with(|bufs| {
            let mut bufs = bufs.borrow_mut();
            let (key, payload) = &mut *bufs;
            record_key_into(event, key);
            payload.clear();
            event
                .encode(payload)
                .map_err(|e| SinkError::Config(format!("encode: {e}")))?;
            let record = BaseRecord::to(&self.topic)
                .key(key.as_slice())
                .payload(payload.as_slice())
                .headers(self.headers.clone());
            // Count before sending: the delivery report may arrive before `send` returns.
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            match self.producer.send(record) {
                Ok(()) => Ok(()),
                Err((e, _)) => {
                    self.counters.accepted.fetch_sub(1, Ordering::Relaxed);
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
                        Err(SinkError::QueueFull)
                    } else {
                        Err(SinkError::Kafka(e))
                    }
                }
            }
        })
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        match self.producer.flush(timeout) {
            Ok(()) => Ok(()),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                Err(SinkError::FlushTimeout {
                    in_flight: self.producer.in_flight_count().max(0) as u64,
                })
            }
            Err(e) => Err(SinkError::Kafka(e)),
        }
    }

    fn export_metrics(&self) {
        self.stats().export();
        for (reason, n) in self.failures_by_reason() {
            metrics::counter!("openclick_sink_failed_by_reason_total", "reason" => reason)
                .absolute(n);
        }
        metrics::gauge!("openclick_sink_producer_queue_depth").set(self.queue_depth() as f64);
        metrics::gauge!("openclick_sink_broker_up").set(match self.health() {
            Health::Up => 1.0,
            Health::Down => 0.0,
        });
    }

    fn health(&self) -> Health {
        if self.counters.up.load(Ordering::Relaxed) {
            Health::Up
        } else {
            Health::Down
        }
    }

    fn stats(&self) -> SinkStats {
        let c = &self.counters;
        SinkStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
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
