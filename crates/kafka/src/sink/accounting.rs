//! What the Kafka sink counts: delivery accounting, failure reasons and spool causes (both
//! bounded label sets), and the Prometheus series they become.
//!
//! Every accepted event ends up counted exactly once as delivered, failed or spooled (or is
//! still in flight): `accepted = delivered + failed + spooled + in_flight`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openclick_sink::spool::SpoolStats;
use openclick_sink::SinkStats;
use rdkafka::error::RDKafkaErrorCode;

use crate::error::{classify_code, ErrorClass};

/// A bounded metric label for an error code.
pub(crate) fn reason_label(code: RDKafkaErrorCode) -> &'static str {
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
pub(crate) const SPOOL_REFUSED: usize = 9;

/// Why events went to the spool (bounded label set), in [`KafkaSinkStats::spooled_by_cause`].
/// `purged`: taken back from the producer's queue at the shutdown deadline or when the
/// producer was replaced.
pub const SPOOL_CAUSES: &[&str] = &["queue_full", "broker_down", "delivery_failed", "purged"];

#[derive(Clone, Copy, Debug)]
pub(crate) enum Cause {
    QueueFull = 0,
    BrokerDown = 1,
    DeliveryFailed = 2,
    Purged = 3,
}

/// The delivery opaque of a live record has this bit set, the rest is its publish sequence
/// number; replayed records carry a slot number >= 1 without it.
pub(crate) const LIVE: usize = 1 << (usize::BITS - 1);

/// Whether a delivery opaque is a live record's.
#[inline]
pub(crate) fn is_live(opaque: usize) -> bool {
    opaque & LIVE != 0
}
/// `down_since_ms` when the broker is up.
pub(crate) const NEVER: u64 = u64::MAX;
/// How long the delivery-report thread waits for room in the spool's channel.
pub(crate) const SPOOL_WAIT: Duration = Duration::from_secs(5);
/// Back-off after a replayed record failed retryably.
pub(crate) const REPLAY_BACKOFF_MS: u64 = 1_000;
/// Records per spool read.
pub(crate) const REPLAY_BATCH: usize = 1_000;
/// Health probe interval while the broker is down.
pub(crate) const PROBE_EVERY_MS: u64 = 500;

/// Whether a failed record may be tried again: [`classify_code`], except that librdkafka's
/// `Fatal` (the idempotent producer's state is broken, not this record) keeps the record.
pub(crate) fn record_class(code: RDKafkaErrorCode) -> ErrorClass {
    match code {
        RDKafkaErrorCode::Fatal => ErrorClass::Retryable,
        c => classify_code(c),
    }
}

pub(crate) fn reason_index(code: RDKafkaErrorCode) -> usize {
    let label = reason_label(code);
    FAILURE_REASONS
        .iter()
        .position(|r| *r == label)
        .unwrap_or(FAILURE_REASONS.len() - 2)
}

/// Counters, updated from the hot path, the delivery-report thread and the replay thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) produced: AtomicU64,
    pub(crate) failed_by_reason: [AtomicU64; 10],
    pub(crate) spooled_by_cause: [AtomicU64; 4],
    pub(crate) replayed: AtomicU64,
    pub(crate) replay_delivered: AtomicU64,
    pub(crate) replay_retried: AtomicU64,
    pub(crate) replay_failed: AtomicU64,
    pub(crate) recovered_delivered: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Everything [`crate::KafkaSink`] counts, for metrics, logs and tests.
#[derive(Clone, Debug, Default)]
pub struct KafkaSinkStats {
    /// The [`openclick_sink::Sink`] accounting (events accepted by this process).
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

impl KafkaSinkStats {
    /// Emits every series through the `metrics` macros (into whatever recorder is current).
    pub fn export(&self) {
        use metrics::{counter, gauge};
        let d = self;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_a_bounded_set() {
        assert_eq!(reason_label(RDKafkaErrorCode::MessageTimedOut), "timed_out");
        assert!(FAILURE_REASONS.contains(&reason_label(RDKafkaErrorCode::InvalidRecord)));
        assert_eq!(FAILURE_REASONS[SPOOL_REFUSED], "spool_refused");
        assert_eq!(
            Counters::default().failed_by_reason.len(),
            FAILURE_REASONS.len()
        );
        assert_eq!(
            Counters::default().spooled_by_cause.len(),
            SPOOL_CAUSES.len()
        );
    }
}
