//! Where openclick events go once the edge has answered the hit: the [`Sink`] contract, and the
//! durable [`spool`] a sink keeps what its destination cannot take yet.
//!
//! The edge talks to a [`Sink`] and never to Kafka directly: a `Sink` takes a [`Record`] (an
//! [`EngagementEvent`](openclick_events::v1::EngagementEvent) encoded, with its key), takes
//! over responsibility for its delivery, and returns at once. Nothing here knows about HTTP,
//! nor about Kafka: this crate does not depend on rdkafka, so a crate that depends only on it
//! (the edge) cannot name rdkafka either, and the compiler checks it. Errors say what happened to the *event* (and
//! whether trying again could help), not which status code to answer nor which client library
//! failed.
//!
//! Implementations:
//! - `openclick_kafka::KafkaSink` (crate `openclick-kafka`), the real one: librdkafka producing
//!   protobuf records to the events topic, with this crate's [`spool`] behind it.
//! - [`handoff::HandOff`], in front of another sink: the publishing thread only buffers the
//!   record, a thread of its own hands buffers to the inner sink in batches (`openclick serve`
//!   puts it in front of the Kafka sink).
//! - [`memory::MemorySink`], for unit tests of the layers above only.
//!
//! Accounting invariant: at every moment `accepted = delivered + failed + spooled + in_flight`.

pub mod handoff;
pub mod memory;
pub mod spool;

use std::time::Duration;

use openclick_events::v1::EngagementEvent;

/// The default events topic.
pub const DEFAULT_EVENTS_TOPIC: &str = "openclick.events.v1";

/// One event as a sink takes it: the record key ([`record_key_into`]: `{tenant_id}/{contact_id}`)
/// and the protobuf encoding of an [`EngagementEvent`].
///
/// The edge encodes tracked hits straight into a record (`openclick_events::EventRef`), with
/// buffers reused per thread ([`Record::take`] and [`Record::recycle`]), so a hit allocates
/// nothing for its event; other events go through [`Record::of`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The record key.
    pub key: Vec<u8>,
    /// The encoded event.
    pub payload: Vec<u8>,
}

thread_local! {
    /// One spare record per thread: [`Record::take`] hands it out, [`Record::recycle`] puts
    /// it back, so a thread that publishes one event at a time reuses the same two buffers.
    static SPARE: std::cell::Cell<Option<Record>> = const { std::cell::Cell::new(None) };
}

impl Record {
    /// `event`, encoded, in this thread's spare buffers (or new ones).
    pub fn of(event: &EngagementEvent) -> Record {
        let mut r = Record::take();
        r.set(event);
        r
    }

    /// Makes this record `event` (key and payload), reusing its buffers.
    pub fn set(&mut self, event: &EngagementEvent) {
        record_key_into(event, &mut self.key);
        self.payload.clear();
        openclick_events::Message::encode_raw(event, &mut self.payload);
    }

    /// The event in the payload (for tests and the few places that change a record).
    pub fn decode(&self) -> Result<EngagementEvent, SinkError> {
        <EngagementEvent as openclick_events::Message>::decode(self.payload.as_slice()).map_err(
            |e| SinkError::Refused {
                reason: "undecodable",
                retryable: false,
                detail: e.to_string(),
            },
        )
    }

    /// This thread's spare record (emptied), or a new one.
    pub fn take() -> Record {
        let mut r = SPARE.take().unwrap_or_else(|| Record {
            key: Vec::with_capacity(128),
            payload: Vec::with_capacity(1024),
        });
        r.key.clear();
        r.payload.clear();
        r
    }

    /// Gives the buffers back to this thread for the next [`Record::take`].
    pub fn recycle(self) {
        SPARE.set(Some(self));
    }
}

/// A destination for engagement events.
///
/// `publish` must never block on the network or disk: the caller is the request hot path.
/// Once it returns `Ok`, the sink owns the event's delivery.
pub trait Sink: Send + Sync + 'static {
    /// Takes over delivery of one event (copying what it keeps). Returns at once.
    fn publish(&self, record: &Record) -> Result<(), SinkError>;

    /// [`publish`](Self::publish) for a record that is one of many the calling thread is
    /// working through back to back (the edge's batches of deferred opens). A sink that buffers
    /// records for a thread of its own to hand on ([`handoff::HandOff`]) passes such a record
    /// straight to the sink behind it: the caller's batch already keeps the per-record work
    /// together, and the buffer would only add a copy and another thread's wake-ups
    /// (BENCHMARKS.md, session 18). The same contract as `publish`; the default is `publish`.
    fn publish_in_batch(&self, record: &Record) -> Result<(), SinkError> {
        self.publish(record)
    }

    /// [`publish`](Self::publish) of `event`, encoded into this thread's spare [`Record`].
    fn publish_event(&self, event: &EngagementEvent) -> Result<(), SinkError> {
        let record = Record::of(event);
        let result = self.publish(&record);
        record.recycle();
        result
    }

    /// Blocks until every accepted event is delivered or `timeout` passes. Call it off the async
    /// runtime (e.g. in `spawn_blocking`): it waits on the network.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError>;

    /// For shutdown: stops background work (such as replaying a spool), then flushes like
    /// [`flush`](Self::flush), leaving nothing accepted only in memory where the sink can help
    /// it. The default just flushes.
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.flush(timeout)
    }

    /// Whether the sink can currently reach its destination.
    fn health(&self) -> Health;

    /// Delivery counters since start.
    fn stats(&self) -> SinkStats;

    /// Emits this sink's series through the `metrics` macros. The caller runs it inside its
    /// own recorder at scrape time; the default exports [`SinkStats`].
    fn export_metrics(&self) {
        self.stats().export();
    }

    /// What the sink delivers to, for `/info`: `(key, value)` pairs with stable keys (e.g.
    /// `kafka_bootstrap_servers`, `topic`). No secrets: credentials never appear here.
    fn describe(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Reachability of a sink's destination, for `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Connected and delivering.
    Up,
    /// Not (yet) connected, or every broker is down; events are held (queued or spooled).
    Down,
}

/// Delivery counters. `accepted - delivered - failed - spooled` is the number still in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Events the sink took over (`publish` returned `Ok`).
    pub accepted: u64,
    /// Events the destination acknowledged.
    pub delivered: u64,
    /// Events given up on. Must stay 0; alarmed.
    pub failed: u64,
    /// Events handed to the durable spool instead of the destination. (What becomes of them
    /// afterwards, replayed and delivered, is counted by the sink that owns the spool.)
    pub spooled: u64,
}

/// Describes (`# HELP`) every series [`SinkStats::export`] emits; run once per recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "openclick_sink_accepted_total",
        "Events the sink accepted from the edge (accepted = delivered + failed + spooled + in_flight)."
    );
    describe_counter!(
        "openclick_sink_delivered_total",
        "Accepted events the broker acknowledged on their first attempt."
    );
    describe_counter!(
        "openclick_sink_failed_total",
        "Accepted events given up on: neither delivered nor spooled. Must stay 0."
    );
    describe_counter!(
        "openclick_sink_spooled_total",
        "Accepted events written to the durable spool instead of the broker (replayed later)."
    );
    describe_gauge!(
        "openclick_sink_in_flight",
        "Accepted events not yet delivered, failed or spooled (in the producer's queue)."
    );
}

impl SinkStats {
    /// Emits the counters through the `metrics` macros (into whatever recorder is current).
    pub fn export(&self) {
        use metrics::{counter, gauge};
        counter!("openclick_sink_accepted_total").absolute(self.accepted);
        counter!("openclick_sink_delivered_total").absolute(self.delivered);
        counter!("openclick_sink_failed_total").absolute(self.failed);
        counter!("openclick_sink_spooled_total").absolute(self.spooled);
        gauge!("openclick_sink_in_flight").set(self.in_flight() as f64);
    }

    /// Events accepted and not yet delivered, failed or spooled.
    pub fn in_flight(&self) -> u64 {
        self.accepted
            .saturating_sub(self.delivered + self.failed + self.spooled)
    }
}

/// Why a sink could not take an event, or could not finish a flush.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The producer's in-memory queue is full. Retryable: it drains as the broker acknowledges.
    #[error("producer queue is full")]
    QueueFull,
    /// `flush` ran out of time with events still in flight. Retryable.
    #[error("flush timed out with {in_flight} events in flight")]
    FlushTimeout {
        /// Events not yet acknowledged.
        in_flight: u64,
    },
    /// The sink was built with an invalid configuration. Not retryable.
    #[error("invalid sink configuration: {0}")]
    Config(String),
    /// The destination refused the event for a reason other than a full queue (the sink
    /// classified its client's error: `retryable` says whether the same event may be accepted
    /// later). `reason` is a short, bounded label.
    #[error("destination refused the event ({reason}): {detail}")]
    Refused {
        /// A bounded label for the cause (e.g. `too_large`, `unauthorized`).
        reason: &'static str,
        /// Whether the same event may be accepted later.
        retryable: bool,
        /// The client's own message, for logs.
        detail: String,
    },
    /// The event could not go to the destination and the durable spool refused it (full,
    /// writer queue full, or no spool configured): dropped, counted and logged. Retryable.
    #[error("event dropped: the producer could not take it and the spool refused it")]
    SpoolFull,
    /// The durable spool failed (opening, flushing).
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
}

impl SinkError {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::QueueFull | SinkError::FlushTimeout { .. } | SinkError::SpoolFull => true,
            SinkError::Spool(e) => e.is_retryable(),
            SinkError::Config(_) => false,
            SinkError::Refused { retryable, .. } => *retryable,
        }
    }
}

/// The record key for an event: `{tenant_id}/{contact_id}`, written into `buf` (cleared first).
///
/// Keying by contact keeps each contact's events in order within one partition.
pub fn record_key_into(event: &EngagementEvent, buf: &mut Vec<u8>) {
    record_key_of(&event.tenant_id, &event.contact_id, buf);
}

/// [`record_key_into`] from the two ids.
pub fn record_key_of(tenant_id: &str, contact_id: &str, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(tenant_id.as_bytes());
    buf.push(b'/');
    buf.extend_from_slice(contact_id.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_tenant_slash_contact() {
        let ev = EngagementEvent {
            tenant_id: "acme".into(),
            contact_id: "c-42".into(),
            ..Default::default()
        };
        let mut buf = b"junk".to_vec();
        record_key_into(&ev, &mut buf);
        assert_eq!(buf, b"acme/c-42");
    }

    #[test]
    fn a_record_is_the_key_and_prosts_encoding_and_reuses_its_buffers() {
        let ev = EngagementEvent {
            tenant_id: "acme".into(),
            contact_id: "c-42".into(),
            event_id: "e".into(),
            ..Default::default()
        };
        let r = Record::of(&ev);
        assert_eq!(r.key, b"acme/c-42");
        assert_eq!(r.payload, openclick_events::Message::encode_to_vec(&ev));
        assert_eq!(r.decode().unwrap(), ev);
        let ptr = r.payload.as_ptr();
        r.recycle();
        let again = Record::take();
        assert!(again.key.is_empty() && again.payload.is_empty());
        assert_eq!(again.payload.as_ptr(), ptr, "the spare's buffer is reused");
        assert!(Record {
            key: Vec::new(),
            payload: vec![0xff]
        }
        .decode()
        .is_err());
    }

    #[test]
    fn in_flight_is_the_remainder() {
        let s = SinkStats {
            accepted: 10,
            delivered: 6,
            failed: 1,
            spooled: 2,
        };
        assert_eq!(s.in_flight(), 1);
    }
}
