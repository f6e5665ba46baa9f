//! Keeping every replica's set in step through Kafka.
//!
//! The compacted topic `openclick.suppressions.v1` is the single source of truth (its contract,
//! record keys included, is documented in `proto/openclick/v1/suppression.proto`):
//! - [`Writer`] publishes changes (the admin API's writes) and returns once the broker has
//!   acknowledged every record. Reason `erase` also publishes an
//!   [`ErasureRequest`] to `openclick.erasures.v1`.
//! - [`Follower`] runs on every replica, the writer included: a plain consumer with *assigned*
//!   partitions (no consumer group: every replica needs every partition), from the beginning,
//!   then following. It marks the set not caught up until it has read up to the end offsets
//!   it saw at start, which holds `/readyz`.
//!
//! The topic's partition count is fixed for the life of a deployment: a replica assigns the
//! partitions it sees at start and never looks for more. That is deliberate, not only simple:
//! adding partitions to a keyed, compacted topic moves keys, so a contact's old record stays in
//! its old partition (compaction works per partition) while newer ones land in the new one, and
//! no reader can tell which came last. To change the count, create a new topic, re-publish the
//! set into it (`openclick suppress import` from a snapshot), and point the replicas at it
//! (`--suppressions-topic`).
//!
//! The Kafka plumbing lives here, next to the set it feeds, rather than in `openclick-sink`
//! (which is about the events topic): the edge only names [`Writer`] and [`Follower`], never
//! rdkafka. The follower is a dedicated OS thread polling a `BaseConsumer`; nothing here holds
//! a lock across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openclick_events::v1::{
    ErasureRequest, SuppressionAction, SuppressionChange, SuppressionReason, SuppressionScope,
};
use openclick_events::{Message as _, ERASURE_REQUEST_TYPE, SUPPRESSION_CHANGE_TYPE};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::{Change, Reason, Scope, SuppressError, SuppressionSet};

/// The default suppressions topic (compacted).
pub const DEFAULT_SUPPRESSIONS_TOPIC: &str = "openclick.suppressions.v1";
/// The default erasure-requests topic.
pub const DEFAULT_ERASURES_TOPIC: &str = "openclick.erasures.v1";

/// Where the topics are and how to talk to them.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// The compacted suppressions topic.
    pub topic: String,
    /// The erasure-requests topic.
    pub erasure_topic: String,
    /// `client.id` prefix.
    pub client_id: String,
    /// `fetch.wait.max.ms` of the follower: the upper bound the broker adds to propagation
    /// when the topic is quiet.
    pub fetch_wait_ms: u32,
    /// `message.timeout.ms` of the writer: how long a write may take before it fails.
    pub write_timeout_ms: u32,
    /// Any other librdkafka properties, applied last to both clients.
    pub extra: Vec<(String, String)>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: DEFAULT_SUPPRESSIONS_TOPIC.into(),
            erasure_topic: DEFAULT_ERASURES_TOPIC.into(),
            client_id: "openclick".into(),
            fetch_wait_ms: 100,
            write_timeout_ms: 10_000,
            extra: Vec::new(),
        }
    }
}

fn kafka_err(e: KafkaError) -> SuppressError {
    match e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => {
            SuppressError::Config(e.to_string())
        }
        e => SuppressError::Kafka(e.to_string()),
    }
}

/// The record key of a scope (see `suppression.proto`).
pub fn record_key(scope: &Scope) -> String {
    match scope {
        Scope::Contact { tenant, contact } => format!("{tenant}/{contact}"),
        Scope::Tenant { tenant } => tenant.clone(),
        Scope::Campaign { tenant, campaign } => format!("campaign:{tenant}/{campaign}"),
    }
}

/// Parses a record key back into its scope.
pub fn parse_key(key: &str) -> Result<Scope, SuppressError> {
    let bad = || SuppressError::Parse("malformed suppression record key".into());
    let scope = if let Some(rest) = key.strip_prefix("campaign:") {
        let (tenant, campaign) = rest.split_once('/').ok_or_else(bad)?;
        Scope::Campaign {
            tenant: tenant.into(),
            campaign: campaign.into(),
        }
    } else if let Some((tenant, contact)) = key.split_once('/') {
        Scope::Contact {
            tenant: tenant.into(),
            contact: contact.into(),
        }
    } else {
        Scope::Tenant { tenant: key.into() }
    };
    scope.validate().map_err(|_| bad())?;
    Ok(scope)
}

fn pb_reason(r: Reason) -> SuppressionReason {
    match r {
        Reason::OptOut => SuppressionReason::OptOut,
        Reason::Restrict => SuppressionReason::Restrict,
        Reason::Erase => SuppressionReason::Erase,
        Reason::Complaint => SuppressionReason::Complaint,
        Reason::Bounce => SuppressionReason::Bounce,
        Reason::Manual => SuppressionReason::Manual,
    }
}

fn from_pb_reason(r: SuppressionReason) -> Reason {
    match r {
        // Unknown reasons are read on the safe side: suppressed.
        SuppressionReason::Unspecified | SuppressionReason::OptOut => Reason::OptOut,
        SuppressionReason::Restrict => Reason::Restrict,
        SuppressionReason::Erase => Reason::Erase,
        SuppressionReason::Complaint => Reason::Complaint,
        SuppressionReason::Bounce => Reason::Bounce,
        SuppressionReason::Manual => Reason::Manual,
    }
}

/// The message for an added entry (removals are tombstones and carry none).
pub fn encode_change(change: &Change) -> Option<SuppressionChange> {
    let reason = change.reason?;
    let mut m = SuppressionChange {
        action: SuppressionAction::Add as i32,
        reason: pb_reason(reason) as i32,
        at_ms: change.at_ms,
        ..Default::default()
    };
    match &change.scope {
        Scope::Contact { tenant, contact } => {
            m.tenant_id = tenant.clone();
            m.contact_id = contact.clone();
            m.scope = SuppressionScope::Contact as i32;
        }
        Scope::Tenant { tenant } => {
            m.tenant_id = tenant.clone();
            m.scope = SuppressionScope::Tenant as i32;
        }
        Scope::Campaign { tenant, campaign } => {
            m.tenant_id = tenant.clone();
            m.campaign_id = campaign.clone();
            m.scope = SuppressionScope::Campaign as i32;
        }
    }
    Some(m)
}

/// Reads one record of the suppressions topic. The key names the entry (it is what compaction
/// keeps); the value says what happened. `Ok(None)`: a record to skip (unknown action).
pub fn decode_record(
    key: &[u8],
    value: Option<&[u8]>,
    timestamp_ms: i64,
) -> Result<Option<Change>, SuppressError> {
    let key = std::str::from_utf8(key)
        .map_err(|_| SuppressError::Parse("suppression record key is not UTF-8".into()))?;
    let scope = parse_key(key)?;
    let Some(value) = value else {
        return Ok(Some(Change {
            scope,
            reason: None,
            at_ms: timestamp_ms,
        }));
    };
    let m = SuppressionChange::decode(value)
        .map_err(|e| SuppressError::Parse(format!("SuppressionChange: {e}")))?;
    let at_ms = if m.at_ms > 0 { m.at_ms } else { timestamp_ms };
    let reason = match m.action() {
        SuppressionAction::Add => Some(from_pb_reason(m.reason())),
        SuppressionAction::Remove => None,
        SuppressionAction::Unspecified => return Ok(None),
    };
    Ok(Some(Change {
        scope,
        reason,
        at_ms,
    }))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Publishes changes to the suppressions topic (and erasure requests to theirs).
pub struct Writer {
    producer: FutureProducer,
    topic: String,
    erasure_topic: String,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("topic", &self.topic)
            .field("erasure_topic", &self.erasure_topic)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// An idempotent producer with `acks=all`.
    pub fn new(config: &SyncConfig) -> Result<Writer, SuppressError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers)
            .set("client.id", format!("{}-suppress-writer", config.client_id))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", config.write_timeout_ms.to_string())
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in &config.extra {
            c.set(k, v);
        }
        Ok(Writer {
            producer: c.create().map_err(kafka_err)?,
            topic: config.topic.clone(),
            erasure_topic: config.erasure_topic.clone(),
        })
    }

    /// Publishes `changes` and returns once the broker acknowledged all of them (or the first
    /// failure, after every record has settled). Every scope is validated first: an invalid
    /// one publishes nothing. `source` is recorded in erasure requests (no personal data).
    pub async fn write(&self, changes: &[Change], source: &str) -> Result<(), SuppressError> {
        for c in changes {
            c.scope.validate()?;
        }
        let mut pending = Vec::with_capacity(changes.len());
        let mut first_err = None;
        for c in changes {
            let key = record_key(&c.scope);
            if let (Some(Reason::Erase), Scope::Contact { tenant, contact }) = (c.reason, &c.scope)
            {
                let req = ErasureRequest {
                    request_id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant.clone(),
                    contact_id: contact.clone(),
                    requested_at_ms: c.at_ms,
                    source: source.to_string(),
                };
                let payload = req.encode_to_vec();
                let rec = FutureRecord::to(&self.erasure_topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "ce_type",
                        value: Some(ERASURE_REQUEST_TYPE),
                    }));
                match self.producer.send_result(rec) {
                    Ok(f) => pending.push(f),
                    Err((e, _)) => {
                        first_err.get_or_insert(kafka_err(e));
                        break;
                    }
                }
            }
            let payload = encode_change(c).map(|m| m.encode_to_vec());
            let mut rec =
                FutureRecord::to(&self.topic)
                    .key(&key)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "ce_type",
                        value: Some(SUPPRESSION_CHANGE_TYPE),
                    }));
            if let Some(p) = &payload {
                rec = rec.payload(p);
            }
            match self.producer.send_result(rec) {
                Ok(f) => pending.push(f),
                Err((e, _)) => {
                    first_err.get_or_insert(kafka_err(e));
                    break;
                }
            }
        }
        for f in pending {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    first_err.get_or_insert(kafka_err(e));
                }
                Err(_) => {
                    first_err
                        .get_or_insert(SuppressError::Kafka("producer closed before ack".into()));
                }
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

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
    /// Marks `set` not caught up and starts following the topic from the beginning. The set
    /// becomes caught up once every partition is read up to the end offset seen at start.
    pub fn start(config: &SyncConfig, set: Arc<SuppressionSet>) -> Result<Follower, SuppressError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers)
            .set(
                "client.id",
                format!("{}-suppress-follower", config.client_id),
            )
            // Assigned partitions: the consumer never joins a group (librdkafka wants a group id
            // for `assign` all the same; a unique one, and nothing is ever committed).
            .set(
                "group.id",
                format!("{}-suppress-{}", config.client_id, uuid::Uuid::now_v7()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", config.fetch_wait_ms.to_string())
            .set_log_level(RDKafkaLogLevel::Warning);
        for (k, v) in &config.extra {
            c.set(k, v);
        }
        let consumer: FollowerConsumer =
            c.create_with_context(FollowerContext).map_err(kafka_err)?;
        set.set_caught_up(false);
        let stop = Arc::new(AtomicBool::new(false));
        let topic = config.topic.clone();
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("suppress-follower".into())
                .spawn(move || follow(consumer, &topic, &set, &stop))
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

/// Logs at most once per `every` per call site.
struct Throttle {
    last: Option<Instant>,
    every: Duration,
}

impl Throttle {
    fn new(every: Duration) -> Throttle {
        Throttle { last: None, every }
    }
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

const POLL: Duration = Duration::from_millis(100);
const META_TIMEOUT: Duration = Duration::from_secs(5);
const LAG_EVERY: Duration = Duration::from_secs(5);

fn follow(consumer: FollowerConsumer, topic: &str, set: &SuppressionSet, stop: &AtomicBool) {
    let started = Instant::now();
    let mut warn = Throttle::new(Duration::from_secs(10));
    // 1. The partitions and the end offsets at start.
    let (partitions, mut targets) = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match start_offsets(&consumer, topic) {
            Ok(v) => break v,
            Err(e) => {
                if warn.ready() {
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
    let mut bad = Throttle::new(Duration::from_secs(10));
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
                let ts = m.timestamp().to_millis().unwrap_or_else(now_ms);
                match m
                    .key()
                    .ok_or_else(|| SuppressError::Parse("record without key".into()))
                    .and_then(|k| decode_record(k, m.payload(), ts))
                {
                    Ok(Some(change)) => {
                        set.apply(&change);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        malformed += 1;
                        if bad.ready() {
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
            Some(Err(e)) if warn.ready() => {
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

/// Creates the topics if they are missing: the suppressions topic compacted, the erasures
/// topic with the broker's default (delete) policy. For a real cluster; best effort (a broker
/// that forbids topic creation leaves it to the operator).
pub async fn ensure_topics(
    config: &SyncConfig,
    partitions: i32,
    replication: i32,
) -> Result<(), SuppressError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    for (k, v) in &config.extra {
        c.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = c.create().map_err(kafka_err)?;
    let topics = [
        NewTopic::new(
            &config.topic,
            partitions,
            TopicReplication::Fixed(replication),
        )
        .set("cleanup.policy", "compact"),
        NewTopic::new(
            &config.erasure_topic,
            partitions,
            TopicReplication::Fixed(replication),
        ),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(topics.iter(), &opts)
        .await
        .map_err(kafka_err)?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(SuppressError::Kafka(format!(
                    "creating topic {name}: {code}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for scope in [
            Scope::Contact {
                tenant: "acme".into(),
                contact: "a/b@example.com".into(),
            },
            Scope::Tenant {
                tenant: "acme".into(),
            },
            Scope::Campaign {
                tenant: "acme".into(),
                campaign: "spring/1".into(),
            },
        ] {
            assert_eq!(parse_key(&record_key(&scope)).unwrap(), scope);
        }
        assert_eq!(record_key(&Scope::Tenant { tenant: "t".into() }), "t");
        assert!(parse_key("a:b").is_err());
        assert!(parse_key("").is_err());
    }

    #[test]
    fn records_decode_to_changes() {
        let add = Change {
            scope: Scope::Contact {
                tenant: "t".into(),
                contact: "c".into(),
            },
            reason: Some(Reason::Restrict),
            at_ms: 42,
        };
        let bytes = encode_change(&add).unwrap().encode_to_vec();
        assert_eq!(decode_record(b"t/c", Some(&bytes), 7).unwrap(), Some(add));
        let removed = decode_record(b"t/c", None, 7).unwrap().unwrap();
        assert_eq!(removed.reason, None);
        assert_eq!(removed.at_ms, 7);
        let unknown = SuppressionChange::default().encode_to_vec();
        assert_eq!(decode_record(b"t/c", Some(&unknown), 7).unwrap(), None);
        assert!(decode_record(b"t/c", Some(b"\xff\xff"), 7).is_err());
    }
}
