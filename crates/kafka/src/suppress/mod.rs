//! The suppression topic through Kafka: keeping every replica's set in step.
//!
//! The compacted topic `openclick.suppressions.v1` is the single source of truth (its contract,
//! record keys included, is documented in `proto/openclick/v1/suppression.proto`; the record
//! codec is `openclick_suppress::record`):
//! - [`KafkaSuppressionWriter`] publishes changes (the admin API's writes, through the
//!   `openclick_suppress::SuppressionWriter` trait) and answers once the broker has
//!   acknowledged every record. Reason `erase` also publishes an `ErasureRequest` to
//!   `openclick.erasures.v1`.
//! - [`Follower`] runs on every replica, the writer included: a plain consumer with *assigned*
//!   partitions (no consumer group: every replica needs every partition), from the beginning,
//!   then following. It marks the set not caught up until it has read up to the end offsets
//!   it saw at start, which holds `/readyz`.
//! - [`ensure_topics`] creates both topics on a real cluster when they are missing.
//!
//! The topic's partition count is fixed for the life of a deployment: a replica assigns the
//! partitions it sees at start and never looks for more. That is deliberate, not only simple:
//! adding partitions to a keyed, compacted topic moves keys, so a contact's old record stays in
//! its old partition (compaction works per partition) while newer ones land in the new one, and
//! no reader can tell which came last. To change the count, create a new topic, re-publish the
//! set into it (`openclick suppress import` from a snapshot), and point the replicas at it
//! (`--suppressions-topic`).
//!
//! The follower is a dedicated OS thread polling a `BaseConsumer`; nothing here holds a lock
//! across an `.await`.

mod follower;
mod writer;

use std::time::Duration;

use openclick_suppress::record::{DEFAULT_ERASURES_TOPIC, DEFAULT_SUPPRESSIONS_TOPIC};
use openclick_suppress::SuppressError;
use rdkafka::error::KafkaError;

pub use follower::Follower;
pub use writer::KafkaSuppressionWriter;

use crate::client::{ClientSettings, Role};

/// Where the topics are and how to talk to them.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// The cluster, client id and operator properties (shared by every client).
    pub client: ClientSettings,
    /// The compacted suppressions topic.
    pub topic: String,
    /// The erasure-requests topic.
    pub erasure_topic: String,
    /// `fetch.wait.max.ms` of the follower: the upper bound the broker adds to propagation
    /// when the topic is quiet.
    pub fetch_wait_ms: u32,
    /// `message.timeout.ms` of the writer: how long a write may take before it fails.
    pub write_timeout_ms: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            client: ClientSettings::default(),
            topic: DEFAULT_SUPPRESSIONS_TOPIC.into(),
            erasure_topic: DEFAULT_ERASURES_TOPIC.into(),
            fetch_wait_ms: 100,
            write_timeout_ms: 10_000,
        }
    }
}

impl SyncConfig {
    /// Defaults, on `brokers`.
    pub fn new(brokers: impl Into<String>) -> SyncConfig {
        SyncConfig {
            client: ClientSettings::new(brokers),
            ..SyncConfig::default()
        }
    }
}

/// A Kafka error as the suppression crate's own: configuration (not retryable) or the topic
/// store failing (retryable). The message names no contact.
fn kafka_err(e: KafkaError) -> SuppressError {
    match e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => {
            SuppressError::Config(crate::error::describe(&e))
        }
        e => SuppressError::Kafka(e.to_string()),
    }
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
    let c = config.client.client_config(Role::Admin, |_| {});
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
    // A client-side deadline too: without it a broker that never answers CreateTopics (the
    // embedded mock cluster, seen from a second `serve`) holds startup for librdkafka's
    // default socket timeout or longer.
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(5)));
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
