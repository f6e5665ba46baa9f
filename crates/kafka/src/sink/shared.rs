//! State shared by the sink, its delivery-report thread and its replay thread: the counters,
//! the broker's health as the sink sees it, and the hand-over of records to the spool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use openclick_common::{LogLimiter, MonotonicClock};
use openclick_sink::spool::{RecordId, Spool};
use openclick_sink::SinkError;
use parking_lot::Mutex;
use rdkafka::error::RDKafkaErrorCode;

use super::accounting::{
    bump, get, record_class, Cause, Counters, FAILURE_REASONS, NEVER, REPLAY_BACKOFF_MS,
};
use crate::error::{classify_code, ErrorClass};

/// State shared by the sink, its delivery-report thread and its replay thread.
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    /// librdkafka's statistics of the current producer.
    pub(crate) producer_stats: crate::stats::ProducerStats,
    pub(crate) spool: Option<Spool>,
    /// Spool segments with an id up to this one were left by a previous process.
    pub(crate) recovered_upto: Option<u64>,
    /// Replayed records in flight: delivery-opaque slot -> spool record.
    pub(crate) replay_slots: Mutex<HashMap<usize, RecordId>>,
    pub(crate) next_slot: AtomicUsize,
    pub(crate) clock: MonotonicClock,
    pub(crate) up: AtomicBool,
    pub(crate) down_since_ms: AtomicU64,
    pub(crate) last_ok_ms: AtomicU64,
    pub(crate) last_idle_ms: AtomicU64,
    pub(crate) replay_backoff_until_ms: AtomicU64,
    /// A flush is running: no new replays.
    pub(crate) paused: AtomicBool,
    /// Closing: the replay thread stops.
    pub(crate) stop: AtomicBool,
    /// The producer's idempotence state was rejected: the replay thread replaces it.
    pub(crate) reset_requested: AtomicBool,
    pub(crate) producer_resets: AtomicU64,
    /// Stalls (records waiting, no acknowledgement) since the last successful delivery.
    pub(crate) stalls_since_delivery: AtomicU64,
    pub(crate) spool_after_ms: u64,
    pub(crate) stall_after_ms: u64,
    pub(crate) replay_max_in_flight: usize,
    pub(crate) fail_log: LogLimiter,
    pub(crate) error_log: LogLimiter,
    pub(crate) replay_log: LogLimiter,
    /// Publish sequence of live records (their delivery opaque, with the [`LIVE`] bit).
    pub(crate) live_seq: AtomicUsize,
    /// The outage's hand-over is done: `publish` may spool directly. Set by the replay thread
    /// once the producer's queue has gone to the spool in publish order; cleared when the
    /// broker is back.
    pub(crate) handed_over: AtomicBool,
    /// During the hand-over: live records on their way to the spool (purged from the producer,
    /// or published meanwhile), spooled by the replay thread in publish order.
    pub(crate) handover: Mutex<Option<Vec<Pending>>>,
}

/// A live record held for the hand-over, with its publish sequence number.
pub(crate) struct Pending {
    pub(crate) seq: usize,
    pub(crate) key: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    pub(crate) cause: Cause,
    pub(crate) code: RDKafkaErrorCode,
}

impl Shared {
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Whether a log line of `limiter` may go out now (see [`LogLimiter`]).
    pub(crate) fn log_allowed(&self, limiter: &LogLimiter) -> Option<u64> {
        limiter.allow_at(i64::try_from(self.now_ms()).unwrap_or(i64::MAX))
    }

    pub(crate) fn mark_up(&self) {
        let now = self.now_ms();
        self.last_ok_ms.store(now, Ordering::Relaxed);
        if !self.up.swap(true, Ordering::AcqRel) {
            self.handed_over.store(false, Ordering::Release);
            let since = self.down_since_ms.swap(NEVER, Ordering::AcqRel);
            tracing::info!(
                target: "openclick::sink",
                down_ms = now.saturating_sub(if since == NEVER { now } else { since }),
                "kafka reachable"
            );
        }
    }

    pub(crate) fn mark_down(&self, why: &'static str) {
        let was_up = self.up.swap(false, Ordering::AcqRel);
        let now = self.now_ms();
        if self
            .down_since_ms
            .compare_exchange(NEVER, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            || was_up
        {
            tracing::warn!(
                target: "openclick::sink",
                why,
                spool = self.spool.is_some(),
                "kafka unreachable: events wait in the producer queue, then go to the spool"
            );
        }
    }

    /// Whether `publish` should skip the producer and spool directly.
    pub(crate) fn bypass(&self) -> bool {
        self.spool.is_some()
            && !self.up.load(Ordering::Relaxed)
            && self.handed_over.load(Ordering::Acquire)
    }

    /// Whether the broker has been unreachable long enough for the hand-over to the spool.
    pub(crate) fn handover_due(&self) -> bool {
        if self.spool.is_none()
            || self.up.load(Ordering::Relaxed)
            || self.handed_over.load(Ordering::Acquire)
        {
            return false;
        }
        let since = self.down_since_ms.load(Ordering::Relaxed);
        since != NEVER && self.now_ms().saturating_sub(since) >= self.spool_after_ms
    }

    /// Holds a live record for the running hand-over; gives it back if none is running.
    pub(crate) fn hold_for_handover(&self, p: Pending) -> Option<Pending> {
        match self.handover.lock().as_mut() {
            Some(held) => {
                held.push(p);
                None
            }
            None => Some(p),
        }
    }

    pub(crate) fn is_recovered(&self, id: RecordId) -> bool {
        self.recovered_upto.is_some_and(|max| id.segment() <= max)
    }

    /// Hands one record to the spool; counts it spooled, or refuses.
    pub(crate) fn spool_record(
        &self,
        key: &[u8],
        payload: &[u8],
        cause: Cause,
        wait: Option<Duration>,
    ) -> Result<(), SinkError> {
        let Some(spool) = &self.spool else {
            return Err(SinkError::SpoolFull);
        };
        let outcome = match wait {
            Some(w) => spool.append_wait(key, payload, w),
            None => spool.append(key, payload),
        };
        if outcome.is_queued() {
            bump(&self.counters.spooled);
            bump(&self.counters.spooled_by_cause[cause as usize]);
            Ok(())
        } else {
            Err(SinkError::SpoolFull)
        }
    }

    /// Counts an accepted event as given up on, and alarms.
    pub(crate) fn fail(&self, reason: usize, code: RDKafkaErrorCode) {
        bump(&self.counters.failed);
        bump(&self.counters.failed_by_reason[reason]);
        if let Some(suppressed) = self.log_allowed(&self.fail_log) {
            tracing::error!(
                target: "openclick::sink",
                reason = FAILURE_REASONS[reason],
                code = %code,
                class = ?classify_code(code),
                failed_total = get(&self.counters.failed),
                suppressed,
                "EVENT LOST: delivery failed and the event was not spooled"
            );
        }
    }

    /// Settles a replayed record from its delivery report. The slot is released last, after
    /// the counters and the spool: whoever sees no replay in flight (`is_drained`, `flush`)
    /// then also sees this record counted.
    pub(crate) fn replay_settled(&self, slot: usize, result: Result<(), RDKafkaErrorCode>) {
        let Some(id) = self.replay_slots.lock().get(&slot).copied() else {
            return;
        };
        self.settle_replayed(id, result);
        self.replay_slots.lock().remove(&slot);
    }

    fn settle_replayed(&self, id: RecordId, result: Result<(), RDKafkaErrorCode>) {
        let Some(spool) = &self.spool else {
            return;
        };
        match result {
            Ok(()) => {
                spool.ack(id);
                bump(&self.counters.replay_delivered);
                if self.is_recovered(id) {
                    bump(&self.counters.recovered_delivered);
                }
            }
            Err(code) if record_class(code) == ErrorClass::Retryable => {
                spool.nack(id);
                bump(&self.counters.replay_retried);
                self.replay_backoff_until_ms
                    .store(self.now_ms() + REPLAY_BACKOFF_MS, Ordering::Relaxed);
            }
            Err(code) => {
                spool.ack(id);
                bump(&self.counters.replay_failed);
                if let Some(suppressed) = self.log_allowed(&self.fail_log) {
                    tracing::error!(
                        target: "openclick::sink",
                        code = %code,
                        record = %id,
                        suppressed,
                        "EVENT LOST: a spooled event failed fatally on replay and was dropped"
                    );
                }
            }
        }
    }
}
