//! openclick's one Kafka room: everything that names rdkafka lives in this crate, and nowhere
//! else in the process.
//!
//! - [`client`]: typed settings ([`ClientSettings`], [`KafkaProperty`]) turned into an rdkafka
//!   `ClientConfig` for every client the process makes (the events producer, the suppression
//!   writer and follower, the topic admin, `openclick tail`), so security and tuning
//!   properties reach all of them the same way, parsed by one strict parser.
//! - [`properties`]: a Java-style `client.properties` file (`--kafka-properties-file`),
//!   parsed with the same rules, merged under `--kafka-property`.
//! - [`error`]: one explicit classification of librdkafka error codes (retryable or fatal).
//! - [`sink`]: [`KafkaSink`], the real [`openclick_sink::Sink`]: protobuf events to the events
//!   topic, delivery accounting, the durable spool behind it, producer replacement.
//! - [`stats`]: librdkafka's statistics of the events producer, as Prometheus series, and
//!   [`describe_metrics`], the `# HELP` text of every series this crate exports.
//! - [`suppress`]: the suppression topic: [`suppress::KafkaSuppressionWriter`] (implements
//!   [`openclick_suppress::SuppressionWriter`], so the admin API never names Kafka), the
//!   [`suppress::Follower`] every replica runs, and topic creation.
//! - [`embedded`]: an in-process Kafka-protocol broker (librdkafka's mock cluster), so
//!   `openclick serve` runs with nothing installed and tests run against a real protocol.
//! - [`reader`]: reading a whole topic (every partition assigned, no consumer group), for
//!   `openclick tail` and for tests that check what reached the broker.
//!
//! Errors leave this crate as the callers' own types ([`openclick_sink::SinkError`],
//! [`openclick_suppress::SuppressError`]) or as [`Error`]; no rdkafka type crosses a public
//! boundary other than this crate's own API.

pub mod client;
pub mod embedded;
pub mod error;
pub mod properties;
pub mod reader;
pub mod sink;
pub mod stats;
pub mod suppress;

pub use client::{ClientSettings, KafkaProperty, PropertyError, Role};
pub use embedded::EmbeddedBroker;
pub use error::{Error, ErrorClass};
pub use properties::{PropertiesFile, PropertiesFileError};
pub use reader::{Record, TopicReader};
pub use sink::{KafkaConfig, KafkaSink, KafkaSinkStats};
pub use stats::{describe_metrics, ProducerStats, DEFAULT_STATISTICS_INTERVAL_MS};
