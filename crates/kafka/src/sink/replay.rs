//! The replay and health thread, `openclick-kafka-replay`: re-publishes spooled records in
//! write order while the broker is up, watches for stalls and probes the broker while it is
//! down, and replaces the producer when asked to.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, PurgeConfig};

use super::accounting::{
    bump, record_class, LIVE, PROBE_EVERY_MS, REPLAY_BACKOFF_MS, REPLAY_BATCH, SPOOL_REFUSED,
    SPOOL_WAIT,
};
use super::producer::ProducerSlot;
use super::shared::Shared;
use crate::error::ErrorClass;

/// The replay and health thread.
pub(crate) struct Replayer {
    pub(crate) slot: Arc<ProducerSlot>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) topic: String,
}

impl Replayer {
    pub(crate) fn run(self) {
        let sh = &*self.shared;
        let mut last_probe: Option<u64> = None;
        let mut last_reset: Option<Instant> = None;
        while !sh.stop.load(Ordering::Relaxed) {
            // At most one replacement per 2 s: the old producer's last failures may ask again.
            if last_reset.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(2))
                && sh.reset_requested.swap(false, Ordering::Relaxed)
            {
                self.slot.reset();
                last_reset = Some(Instant::now());
            }
            let now = sh.now_ms();
            self.watch_health(now, &mut last_probe);
            if sh.handover_due() && !sh.paused.load(Ordering::Relaxed) {
                self.hand_over();
            }
            let sent = if sh.up.load(Ordering::Relaxed)
                && !sh.paused.load(Ordering::Relaxed)
                && now >= sh.replay_backoff_until_ms.load(Ordering::Relaxed)
            {
                self.replay_some()
            } else {
                0
            };
            if sent == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The broker has been unreachable for `spool_after_ms`: from now on events go straight to
    /// the spool. What the producer still holds must reach the spool first, and everything in
    /// publish order, or replay would put a contact's later events before its earlier ones.
    /// So: hold new publishes, purge the producer (its records come back through their
    /// delivery reports and are held too), then spool everything held sorted by publish
    /// sequence, round after round until nothing new arrives, and only then let `publish` spool
    /// directly.
    fn hand_over(&self) {
        let sh = &*self.shared;
        *sh.handover.lock() = Some(Vec::new());
        {
            // No `publish` is between its bypass check and its `send` while this is held.
            let _exclusive = self.slot.current.write();
            sh.handed_over.store(true, Ordering::Release);
        }
        let producer = self.slot.get();
        let queued = producer.in_flight_count().max(0);
        if queued > 0 {
            producer.purge(PurgeConfig::default().queue().inflight());
            // Delivery reports of the purge arrive on the producer's polling thread.
            let _ = producer.flush(Duration::from_secs(5));
        }
        drop(producer);
        let mut spooled = 0usize;
        loop {
            let mut held = {
                let mut h = sh.handover.lock();
                let batch = h.as_mut().map(std::mem::take).unwrap_or_default();
                if batch.is_empty() {
                    *h = None;
                    break;
                }
                batch
            };
            // Stable: equal sequences cannot happen, but keep arrival order if they did.
            held.sort_by_key(|p| p.seq);
            for p in held {
                if sh
                    .spool_record(&p.key, &p.payload, p.cause, Some(SPOOL_WAIT))
                    .is_err()
                {
                    sh.fail(SPOOL_REFUSED, p.code);
                }
                spooled += 1;
            }
        }
        tracing::info!(target: "openclick::sink", purged = queued, spooled,
            "kafka unreachable: producer queue handed over to the spool in publish order");
    }

    fn watch_health(&self, now: u64, last_probe: &mut Option<u64>) {
        let sh = &*self.shared;
        if self.slot.get().in_flight_count() <= 0 {
            sh.last_idle_ms.store(now, Ordering::Relaxed);
        }
        if sh.up.load(Ordering::Relaxed) {
            let progress = sh
                .last_ok_ms
                .load(Ordering::Relaxed)
                .max(sh.last_idle_ms.load(Ordering::Relaxed));
            if now.saturating_sub(progress) > sh.stall_after_ms {
                sh.mark_down("records waiting for an acknowledgement, none arriving");
                // A second stall with no delivery in between, the broker answering metadata in
                // the meantime: the broker is there but this producer is stuck (e.g. waiting
                // for a producer id a restarted broker will not give back). Replace it.
                if sh.stalls_since_delivery.fetch_add(1, Ordering::Relaxed) >= 1 {
                    sh.reset_requested.store(true, Ordering::Relaxed);
                }
            }
            return;
        }
        if last_probe.is_some_and(|t| now.saturating_sub(t) < PROBE_EVERY_MS) {
            return;
        }
        *last_probe = Some(now);
        let md = self
            .slot
            .get()
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_millis(1_000));
        if let Ok(md) = md {
            let ok = md.topics().iter().any(|t| {
                t.name() == self.topic && t.error().is_none() && !t.partitions().is_empty()
            });
            if ok {
                sh.mark_up();
            }
        }
    }

    /// Re-publishes one batch of spooled records. Returns how many were handed to librdkafka.
    fn replay_some(&self) -> usize {
        let sh = &*self.shared;
        let Some(spool) = &sh.spool else {
            return 0;
        };
        let in_flight = sh.replay_slots.lock().len();
        let room = sh.replay_max_in_flight.saturating_sub(in_flight);
        if room == 0 {
            return 0;
        }
        let batch = match spool.read_batch(room.min(REPLAY_BATCH)) {
            Ok(b) => b,
            Err(e) => {
                if let Some(suppressed) = sh.log_allowed(&sh.replay_log) {
                    tracing::error!(target: "openclick::sink", error = %e, suppressed,
                        "spool read failed; retrying");
                }
                sh.replay_backoff_until_ms
                    .store(sh.now_ms() + REPLAY_BACKOFF_MS, Ordering::Relaxed);
                return 0;
            }
        };
        let mut sent = 0;
        let mut records = batch.into_iter();
        while let Some(rec) = records.next() {
            let mut slot = sh.next_slot.fetch_add(1, Ordering::Relaxed);
            if slot == LIVE {
                slot = sh.next_slot.fetch_add(1, Ordering::Relaxed);
            }
            sh.replay_slots.lock().insert(slot, rec.id);
            let sent_result = self.slot.current.read().send(&rec.key, &rec.payload, slot);
            match sent_result {
                Ok(()) => {
                    sent += 1;
                    bump(&sh.counters.replayed);
                    bump(&sh.counters.produced);
                }
                Err(code) => {
                    if record_class(code) == ErrorClass::Fatal {
                        spool.ack(rec.id);
                        bump(&sh.counters.replay_failed);
                        // The slot goes last (as in `Shared::replay_settled`).
                        sh.replay_slots.lock().remove(&slot);
                        tracing::error!(target: "openclick::sink", code = %code, record = %rec.id,
                            "EVENT LOST: a spooled event was refused by the producer and dropped");
                        continue;
                    }
                    // Queue full (or another retryable refusal): put the rest back, in order.
                    spool.nack(rec.id);
                    sh.replay_slots.lock().remove(&slot);
                    for r in records.by_ref() {
                        spool.nack(r.id);
                    }
                    let pause = if code == RDKafkaErrorCode::QueueFull {
                        50
                    } else {
                        REPLAY_BACKOFF_MS
                    };
                    sh.replay_backoff_until_ms
                        .store(sh.now_ms() + pause, Ordering::Relaxed);
                    break;
                }
            }
        }
        sent
    }
}
