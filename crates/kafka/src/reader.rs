//! Reading a whole topic: every partition assigned (no consumer group, nothing committed),
//! from the beginning or the end. For `openclick tail`, and for tests that check what reached
//! the broker (keys, headers, order per partition).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{ClientSettings, Role};
use crate::Error;

/// Where a [`TopicReader`] starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still in each partition.
    Beginning,
    /// Only records written after the reader starts.
    End,
}

/// One record, copied out of the consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset in its partition.
    pub offset: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Value (`None`: a tombstone).
    pub payload: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Record timestamp, ms since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A consumer assigned to every partition of one topic.
pub struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    partitions: Vec<i32>,
}

impl std::fmt::Debug for TopicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

impl TopicReader {
    /// Looks the topic up (waiting up to `timeout` for metadata) and assigns all its
    /// partitions at `start`.
    pub fn open(
        settings: &ClientSettings,
        topic: &str,
        start: Start,
        timeout: Duration,
    ) -> Result<TopicReader, Error> {
        let consumer: BaseConsumer = settings
            .client_config(Role::Reader, |c| {
                // `assign` still wants a group id; nothing is committed under it.
                c.set("group.id", format!("{}-reader", settings.client_id))
                    .set("enable.auto.commit", "false")
                    .set("enable.partition.eof", "false");
            })
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Err(Error::Refused(format!("topic {topic} not found")));
        };
        if t.partitions().is_empty() {
            return Err(Error::Unavailable(format!(
                "topic {topic} has no partitions"
            )));
        }
        let offset = match start {
            Start::Beginning => Offset::Beginning,
            Start::End => Offset::End,
        };
        let mut tpl = TopicPartitionList::new();
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), offset)?;
        }
        consumer.assign(&tpl)?;
        Ok(TopicReader {
            partitions: t.partitions().iter().map(|p| p.id()).collect(),
            topic: topic.to_string(),
            consumer,
        })
    }

    /// How many partitions the topic has.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Records the topic holds now (high minus low watermark, summed over partitions).
    pub fn records_held(&self, timeout: Duration) -> Result<u64, Error> {
        let mut n = 0;
        for &p in &self.partitions {
            let (lo, hi) = self.consumer.fetch_watermarks(&self.topic, p, timeout)?;
            n += (hi - lo).max(0) as u64;
        }
        Ok(n)
    }

    /// The next record, waiting up to `timeout`; `None` if none arrived in time.
    pub fn poll(&self, timeout: Duration) -> Option<Result<Record, Error>> {
        let m = match self.consumer.poll(timeout)? {
            Ok(m) => m,
            Err(e) => return Some(Err(e.into())),
        };
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Some(Ok(Record {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        }))
    }
}
