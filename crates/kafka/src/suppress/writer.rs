//! [`KafkaSuppressionWriter`]: suppression changes and redirect blocks to the compacted control
//! topic, erasure requests to theirs, answered once the broker acknowledged every record.

use openclick_events::{
    Message as _, ERASURE_REQUEST_TYPE, REDIRECT_BLOCK_TYPE, SUPPRESSION_CHANGE_TYPE,
};
use openclick_suppress::blocks::BlockChange;
use openclick_suppress::record::{
    block_key, encode_block, encode_change, erasure_request, record_key,
};
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
    async fn write_changes(&self, changes: &[Change], source: &str) -> Result<(), SuppressError> {
        for c in changes {
            c.scope.validate()?;
        }
        let mut records = Vec::with_capacity(changes.len());
        for c in changes {
            let key = record_key(&c.scope);
            if let Some(req) = erasure_request(c, source) {
                records.push(Outgoing {
                    topic: &self.erasure_topic,
                    key: key.clone(),
                    payload: Some(req.encode_to_vec()),
                    ce_type: ERASURE_REQUEST_TYPE,
                });
            }
            records.push(Outgoing {
                topic: &self.topic,
                key,
                payload: encode_change(c).map(|m| m.encode_to_vec()),
                ce_type: SUPPRESSION_CHANGE_TYPE,
            });
        }
        self.send_all(records).await
    }

    /// Publishes block changes (scopes validated first) and answers after every ack.
    async fn write_block_changes(
        &self,
        changes: &[BlockChange],
        source: &str,
    ) -> Result<(), SuppressError> {
        let mut records = Vec::with_capacity(changes.len());
        for c in changes {
            let scope = c.scope.clone().validated()?;
            records.push(Outgoing {
                topic: &self.topic,
                key: block_key(&scope),
                payload: c
                    .block
                    .as_ref()
                    .map(|b| encode_block(b, source).encode_to_vec()),
                ce_type: REDIRECT_BLOCK_TYPE,
            });
        }
        self.send_all(records).await
    }

    /// Sends every record, then waits for every acknowledgement; the first failure wins.
    async fn send_all(&self, records: Vec<Outgoing<'_>>) -> Result<(), SuppressError> {
        let mut pending = Vec::with_capacity(records.len());
        let mut first_err = None;
        for r in &records {
            let mut rec =
                FutureRecord::to(r.topic)
                    .key(&r.key)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "ce_type",
                        value: Some(r.ce_type),
                    }));
            if let Some(p) = &r.payload {
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

/// One record to publish.
struct Outgoing<'a> {
    topic: &'a str,
    key: String,
    /// `None`: a tombstone.
    payload: Option<Vec<u8>>,
    ce_type: &'static str,
}

impl SuppressionWriter for KafkaSuppressionWriter {
    fn write<'a>(&'a self, changes: &'a [Change], source: &'a str) -> WriteFuture<'a> {
        Box::pin(self.write_changes(changes, source))
    }

    fn write_blocks<'a>(&'a self, changes: &'a [BlockChange], source: &'a str) -> WriteFuture<'a> {
        Box::pin(self.write_block_changes(changes, source))
    }
}
