//! What the operator chooses for the Kafka sink, and the producer configuration it becomes.

use openclick_sink::spool::SpoolConfig;
use openclick_sink::DEFAULT_EVENTS_TOPIC;
use rdkafka::config::ClientConfig;

use crate::client::{ClientSettings, Role};
use crate::Error;

/// What the operator chooses for the Kafka sink.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Where the cluster is, the client id and the operator's properties (shared by every
    /// client of the process).
    pub client: ClientSettings,
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
            client: ClientSettings::default(),
            topic: DEFAULT_EVENTS_TOPIC.into(),
            linger_ms: 5,
            compression: "lz4".into(),
            batch_bytes: 1_000_000,
            // 200k events of ~300 bytes: about 60 MiB at most, a few seconds of peak traffic.
            queue_max_messages: 200_000,
            queue_max_kbytes: 128 * 1024,
            message_timeout_ms: 30_000,
            spool: None,
            spool_after_ms: 5_000,
            stall_after_ms: 10_000,
            replay_max_in_flight: 10_000,
        }
    }
}

impl KafkaConfig {
    /// Defaults, producing to `brokers`.
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            client: ClientSettings::new(brokers),
            ..KafkaConfig::default()
        }
    }

    /// The librdkafka client configuration this turns into: an idempotent producer with
    /// `acks=all` and statistics every [`crate::DEFAULT_STATISTICS_INTERVAL_MS`], then the
    /// operator's properties.
    pub fn client_config(&self) -> ClientConfig {
        self.client.client_config(Role::EventsProducer, |c| {
            c.set("enable.idempotence", "true")
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
                .set(
                    "statistics.interval.ms",
                    crate::stats::DEFAULT_STATISTICS_INTERVAL_MS.to_string(),
                );
        })
    }
}

impl KafkaConfig {
    /// Asks librdkafka whether it accepts this configuration (every property known, every
    /// value valid) by creating a producer, without connecting anywhere.
    pub fn validate(&self) -> Result<(), Error> {
        self.client_config()
            .create::<rdkafka::producer::BaseProducer>()
            .map(drop)
            .map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_sets_idempotent_acks_all() {
        let c = KafkaConfig::default().client_config();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("compression.type"), Some("lz4"));
        assert_eq!(c.get("client.id"), Some("openclick"));
    }

    #[test]
    fn librdkafka_judges_the_properties() {
        assert!(KafkaConfig::default().validate().is_ok());
        let mut bad = KafkaConfig::default();
        bad.client.properties = vec!["no.such.property=1".parse().unwrap()];
        assert!(matches!(bad.validate(), Err(Error::Config(_))));
    }

    /// This build has TLS and SASL (PLAIN, SCRAM) but no GSSAPI: librdkafka itself says so.
    #[test]
    fn tls_and_sasl_are_built_in() {
        let with = |props: &[&str]| {
            let mut c = KafkaConfig::default();
            c.client.properties = props.iter().map(|p| p.parse().unwrap()).collect();
            c.validate()
        };
        let user = ["sasl.username=u", "sasl.password=p"];
        for ok in [
            &["security.protocol=ssl"][..],
            &[
                "security.protocol=SSL",
                "ssl.endpoint.identification.algorithm=https",
            ],
            &["security.protocol=sasl_ssl", "sasl.mechanism=PLAIN"],
            &[
                "security.protocol=SASL_SSL",
                "sasl.mechanisms=SCRAM-SHA-256",
            ],
            &[
                "security.protocol=sasl_plaintext",
                "sasl.mechanism=SCRAM-SHA-512",
            ],
        ] {
            let ok = [ok, &user[..]].concat();
            assert!(with(&ok).is_ok(), "{ok:?}: {:?}", with(&ok));
        }
        // GSSAPI (librdkafka's default mechanism) needs Cyrus SASL, which is not built in.
        let e = with(&["security.protocol=sasl_ssl"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("GSSAPI"), "{e}");
    }

    /// A refused property that holds a secret (here a Java truststore password librdkafka does
    /// not know) is named in the error, its value is not.
    #[test]
    fn a_refused_secret_is_not_quoted() {
        let mut c = KafkaConfig::default();
        c.client.properties = vec!["ssl.truststore.password=hunter2".parse().unwrap()];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("ssl.truststore.password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        c.client.properties = vec!["no.such.property=visible".parse().unwrap()];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("visible"),
            "non-secret values stay in the message: {e}"
        );
    }
}
