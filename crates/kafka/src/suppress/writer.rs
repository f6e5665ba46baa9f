//! [`KafkaSuppressionWriter`]: suppression changes to the compacted topic, erasure requests to
//! theirs, answered once the broker acknowledged every record.

use openclick_events::{Message as _, ERASURE_REQUEST_TYPE, SUPPRESSION_CHANGE_TYPE};
use openclick_suppress::record::{encode_change, erasure_request, record_key};
use openclick_suppress::{Change, SuppressError, SuppressionWriter, WriteFuture};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{kafka_err, SyncConfig};
use crate::client::Role;

/// Publishes changes to the suppressions topic (and erasure requests to theirs).
pub struct KafkaSuppressionWriter {
    producer: FutureProducer,
    topic: String,
    erasure_topic: String,
}

impl std::fmt::Debug for KafkaSuppressionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSuppressionWriter")
            .field("topic", &self.topic)
            .field("erasure_topic", &self.erasure_topic)
            .finish_non_exhaustive()
    }
}

impl KafkaSuppressionWriter {
    /// An idempotent producer with `acks=all`.
    pub fn new(config: &SyncConfig) -> Result<KafkaSuppressionWriter, SuppressError> {
        let c = config.client.client_config(Role::SuppressionWriter, |c| {
            c.set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "2")
                .set("message.timeout.ms", config.write_timeout_ms.to_string());
        });
        Ok(KafkaSuppressionWriter {
            producer: c.create().map_err(kafka_err)?,
            topic: config.topic.clone(),
            erasure_topic: config.erasure_topic.clone(),
        })
    }

    /// Publishes `changes` and returns once the broker acknowledged all of them (or the first
    /// failure, after every record has settled). Every scope is validated first: an invalid
    /// one publishes nothing. `source` is recorded in erasure requests (no personal data).
    async fn write_all(&self, changes: &[Change], source: &str) -> Result<(), SuppressError> {
        for c in changes {
            c.scope.validate()?;
        }
        let mut pending = Vec::with_capacity(changes.len());
        let mut first_err = None;
        for c in changes {
            let key = record_key(&c.scope);
            if let Some(req) = erasure_request(c, source) {
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

impl SuppressionWriter for KafkaSuppressionWriter {
    fn write<'a>(&'a self, changes: &'a [Change], source: &'a str) -> WriteFuture<'a> {
        Box::pin(self.write_all(changes, source))
    }
}
