//! The Kafka sink: protobuf events to a topic through librdkafka, with a durable spool behind it.
//!
//! Split the way a sink should be:
//! - `config`: [`KafkaConfig`], what the operator chooses, and the producer configuration;
//! - this module: [`KafkaSink`], the service: the [`Sink`] implementation, which hands each
//!   [`Record`] (key and encoded event, built by the caller) to librdkafka or the spool;
//! - `accounting`: counters, failure reasons and spool causes, metrics;
//! - `shared`: health as the sink sees it, the hand-over to the spool (internal);
//! - `delivery`: librdkafka's delivery reports and error callbacks (internal);
//! - `producer`: the replaceable producer (internal);
//! - `replay`: the replay and health thread (internal).
//!
//! # Where an accepted event can be
//!
//! Once [`Sink::publish`] returns `Ok`, the event is ours to deliver. It is in exactly one of:
//!
//! 1. **librdkafka's queue** (or in flight to the broker): `publish` copied it there. The
//!    producer is idempotent with `acks=all`, so librdkafka's own retries never duplicate or
//!    reorder it within a partition.
//! 2. **the durable spool** ([`openclick_sink::spool`], `DATA_DIR/spool` in `openclick serve`), when
//!    - the producer queue is full at `publish` (cause `queue_full`);
//!    - the broker has been unreachable for [`KafkaConfig::spool_after_ms`]: the replay thread
//!      first hands the producer's queue over to the spool (purged, cause `purged`, together
//!      with what is published meanwhile, sorted by publish sequence), then `publish` skips the
//!      producer altogether (cause `broker_down`);
//!    - a delivery failed with a retryable error after `message.timeout.ms` of retries
//!      (cause `delivery_failed`): the delivery report carries the record's key and payload,
//!      which the delivery-report thread appends to the spool;
//!    - at shutdown, the flush deadline passed: the producer queue is purged and the purged
//!      records' delivery reports spool them (cause `purged`);
//!    - the cluster rejected the idempotent producer's state (`PRODUCER_FENCED`,
//!      `UNKNOWN_PRODUCER_ID`, `OUT_OF_ORDER_SEQUENCE_NUMBER`, librdkafka's fatal error; seen
//!      when a broker restarts with memory storage or fences an epoch after timeouts): those
//!      records are spooled, and the replay thread replaces the producer with a fresh one
//!      (a new producer id), purging the old one's queue into the spool (cause `purged`). The
//!      same happens after two stalls in a row with no delivery in between while the broker
//!      answers metadata (a producer stuck after a broker restart).
//! 3. **delivered** (the broker acknowledged it) or **failed** (a fatal error such as a record
//!    too large, or the spool refused it: full, or writer gone). Failed is alarmed: an error
//!    log line (rate limited) and `openclick_sink_failed_by_reason_total`.
//!
//! So at every moment `accepted = delivered + failed + spooled + in_flight`, with all four
//! counters monotonic (see [`SinkStats`]); `spooled` counts hand-overs to the spool, and what
//! becomes of spooled events is counted by the replayer ([`KafkaSinkStats`]).
//!
//! # Replay
//!
//! A thread, `openclick-kafka-replay`, watches the broker's health and, while it is up,
//! re-publishes spooled records in write order (oldest segment first, nacked records first),
//! at most [`KafkaConfig::replay_max_in_flight`] at a time. Each replayed record carries its
//! spool [`RecordId`](openclick_sink::spool::RecordId) (through the producer's delivery opaque: a slot number in a small table)
//! and is acked in the spool only when its delivery report says delivered; a retryable failure
//! nacks it (it is replayed again, in order, after a back-off), a fatal one acks it away and
//! counts it in `replay_failed`. A segment file is deleted only once every record in it is
//! acked. Segments left by a previous process are replayed after a restart the same way
//! (counted apart as `recovered`). Delivery is at least once: a record can be delivered twice
//! when its delivery report was lost (timeout after the broker wrote it, purge of an in-flight
//! request at shutdown, a restart before the spool segment was deleted). Events carry an
//! `event_id` for consumers to deduplicate.
//!
//! Ordering: the spool replays in write order, the hand-over writes what the producer held
//! before anything published later, and librdkafka keeps order per partition, so a contact's
//! events spooled during an outage reach Kafka in publish order. Live events published while
//! the backlog drains go straight to the producer, so they can overtake it; and a record that
//! times out while the broker is up (no hand-over) is spooled after later ones. Every event
//! carries its own timestamps and id.
//!
//! # Health
//!
//! [`Sink::health`] (and so `/readyz`) is `Down` when librdkafka reports every broker down,
//! when records have been waiting for an acknowledgement for [`KafkaConfig::stall_after_ms`]
//! with none arriving (a frozen broker keeps its TCP connections open), or when a delivery
//! timed out. It is `Up` again when a delivery succeeds or, while down, when a metadata probe
//! (every 500 ms from the replay thread) is answered.
//!
//! # Bounded memory, and a hot path that never blocks
//!
//! `publish` never waits: librdkafka copies the record into its queue, bounded on purpose by
//! `queue.buffering.max.messages` ([`KafkaConfig::queue_max_messages`], default 200 000) and
//! `queue.buffering.max.kbytes` ([`KafkaConfig::queue_max_kbytes`], default 128 MiB);
//! a full queue spills into the spool, whose in-memory channel is bounded too
//! ([`SpoolConfig::queue_capacity`](openclick_sink::spool::SpoolConfig::queue_capacity), 8192 records) and whose disk use is bounded by
//! [`SpoolConfig::max_bytes`](openclick_sink::spool::SpoolConfig::max_bytes) (drop-newest when full: counted, logged, reported to the caller
//! as [`SinkError::SpoolFull`]). `Spool::append` on the hot path only frames the record and
//! `try_send`s it. The replay table holds at most `replay_max_in_flight` ids. Worst case, a
//! process holds about `queue_max_kbytes` + 8192 spool frames + one replay batch in memory.
//!
//! # Shutdown
//!
//! [`Sink::flush`] pauses the replayer, flushes the producer until `timeout` minus a reserve
//! (a quarter of it, at most 2 s), then, if records are still queued, purges the producer: the
//! purged records come back through their delivery reports and are spooled. It then fsyncs the
//! spool. Nothing accepted is left only in memory when it returns `Ok`.
//!
//! Error codes are classified explicitly by [`classify_code`](crate::error::classify_code): retryable (the broker or
//! network will recover) or fatal (this record or this configuration will never be accepted).

mod accounting;
mod config;
mod delivery;
mod native;
mod producer;
mod replay;
mod shared;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openclick_common::{LogLimiter, MonotonicClock};
use openclick_sink::spool::Spool;
use openclick_sink::{Health, Record, Sink, SinkError, SinkStats};
use parking_lot::Mutex;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, PurgeConfig};

pub use accounting::{KafkaSinkStats, FAILURE_REASONS, SPOOL_CAUSES};
pub use config::KafkaConfig;

use accounting::{bump, get, reason_label, record_class, Cause, Counters, LIVE};
use producer::ProducerSlot;
use replay::Replayer;
use shared::Pending;
use shared::Shared;

use crate::error::ErrorClass;

/// The Kafka sink. Cheap to share behind an `Arc`.
pub struct KafkaSink {
    slot: Arc<ProducerSlot>,
    topic: String,
    shared: Arc<Shared>,
    brokers: String,
    flush_lock: Mutex<()>,
    replayer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("spool", &self.shared.spool)
            .finish_non_exhaustive()
    }
}

/// The highest segment id among `*.seg` files in `dir` (none if it does not exist yet).
fn max_segment_id(dir: &Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".seg")?.to_string();
            (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .then(|| stem.parse::<u64>().ok())
                .flatten()
        })
        .max()
}

impl KafkaSink {
    /// Creates the producer, opens the spool (if configured; what a previous process left in
    /// it is replayed once the broker answers) and starts the replay/health thread. Does not
    /// wait for the brokers: reachability shows in [`Sink::health`].
    pub fn new(config: &KafkaConfig) -> Result<KafkaSink, SinkError> {
        if config.topic.is_empty() {
            return Err(SinkError::Config("topic must not be empty".into()));
        }
        let (spool, recovered_upto) = match &config.spool {
            Some(sc) => {
                let recovered_upto = max_segment_id(&sc.dir);
                let spool = Spool::open(sc.clone())?;
                let st = spool.stats();
                if st.pending_records > 0 {
                    tracing::info!(
                        target: "openclick::sink",
                        events = st.pending_records,
                        bytes = st.bytes_on_disk,
                        "spool holds events from a previous run: they are replayed once kafka answers"
                    );
                }
                (Some(spool), recovered_upto)
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            producer_stats: Default::default(),
            spool,
            recovered_upto,
            replay_slots: Mutex::new(HashMap::new()),
            next_slot: AtomicUsize::new(1),
            clock: MonotonicClock::new(),
            up: AtomicBool::new(false),
            down_since_ms: AtomicU64::new(0),
            last_ok_ms: AtomicU64::new(0),
            last_idle_ms: AtomicU64::new(0),
            replay_backoff_until_ms: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            reset_requested: AtomicBool::new(false),
            producer_resets: AtomicU64::new(0),
            stalls_since_delivery: AtomicU64::new(0),
            spool_after_ms: config.spool_after_ms,
            stall_after_ms: config.stall_after_ms.max(1),
            replay_max_in_flight: config.replay_max_in_flight.max(1),
            fail_log: LogLimiter::new(Duration::from_secs(1)),
            error_log: LogLimiter::new(Duration::from_secs(5)),
            replay_log: LogLimiter::new(Duration::from_secs(10)),
            live_seq: AtomicUsize::new(0),
            handed_over: AtomicBool::new(false),
            handover: Mutex::new(None),
        });
        let slot = Arc::new(ProducerSlot::new(
            config.client_config(),
            &config.topic,
            shared.clone(),
        )?);
        let replayer = Replayer {
            slot: slot.clone(),
            shared: shared.clone(),
            topic: config.topic.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("openclick-kafka-replay".into())
            .spawn(move || replayer.run())
            .map_err(|e| SinkError::Config(format!("cannot start the replay thread: {e}")))?;
        Ok(KafkaSink {
            slot,
            topic: config.topic.clone(),
            shared,
            brokers: config.client.brokers.clone(),
            flush_lock: Mutex::new(()),
            replayer: Mutex::new(Some(handle)),
        })
    }

    /// The bootstrap servers this sink produces to.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The topic this sink produces to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The spool, if configured.
    pub fn spool(&self) -> Option<&Spool> {
        self.shared.spool.as_ref()
    }

    /// Events waiting in librdkafka's queue or in flight to the broker.
    pub fn queue_depth(&self) -> i32 {
        self.slot.get().in_flight_count()
    }

    /// Failed deliveries per reason, for metrics (labels from [`FAILURE_REASONS`]).
    pub fn failures_by_reason(&self) -> Vec<(&'static str, u64)> {
        FAILURE_REASONS
            .iter()
            .zip(self.shared.counters.failed_by_reason.iter())
            .map(|(r, c)| (*r, get(c)))
            .collect()
    }

    /// Everything this sink counts.
    pub fn detailed_stats(&self) -> KafkaSinkStats {
        let c = &self.shared.counters;
        KafkaSinkStats {
            sink: self.stats(),
            produced: get(&c.produced),
            failed_by_reason: self.failures_by_reason(),
            spooled_by_cause: SPOOL_CAUSES
                .iter()
                .zip(c.spooled_by_cause.iter())
                .map(|(r, c)| (*r, get(c)))
                .collect(),
            replayed: get(&c.replayed),
            replay_delivered: get(&c.replay_delivered),
            replay_retried: get(&c.replay_retried),
            replay_failed: get(&c.replay_failed),
            recovered_delivered: get(&c.recovered_delivered),
            replay_in_flight: self.shared.replay_slots.lock().len() as u64,
            queue_depth: self.queue_depth().max(0) as u64,
            up: self.shared.up.load(Ordering::Relaxed),
            producer_resets: get(&self.shared.producer_resets),
            spool: self.shared.spool.as_ref().map(Spool::stats),
        }
    }

    /// Whether every accepted event is delivered or settled, and the spool is empty (nothing
    /// queued, pending or in flight). For tests and operators waiting for a backlog to drain.
    pub fn is_drained(&self) -> bool {
        self.stats().in_flight() == 0
            && self.shared.spool.as_ref().is_none_or(Spool::is_empty)
            && self.shared.replay_slots.lock().is_empty()
    }

    /// Stops replaying for good, then [`flush`](Sink::flush)es: for shutdown.
    pub fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.replayer.lock().take() {
            let _ = h.join();
        }
        self.flush(timeout)
    }

    fn wait_settled(&self, deadline: Instant) -> bool {
        loop {
            if self.stats().in_flight() == 0 && self.shared.replay_slots.lock().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.replayer.lock().take() {
            let _ = h.join();
        }
        // The producer's own drop purges what is left; the purged records' delivery reports
        // spool them, and the spool's drop writes and fsyncs them.
    }
}

impl Sink for KafkaSink {
    fn publish(&self, record: &Record) -> Result<(), SinkError> {
        let sh = &*self.shared;
        let (key, payload) = (record.key.as_slice(), record.payload.as_slice());
        // Count before handing over: the delivery report may arrive before `send` returns.
        sh.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let seq = sh.live_seq.fetch_add(1, Ordering::Relaxed) & !LIVE;
        // Under the producer's read lock: the hand-over flips `handed_over` under the write
        // lock, so a record is either in the producer before the purge or spooled after.
        let producer = self.slot.current.read();
        // Spool directly once the hand-over is done, or when it is due and no accepted
        // event but this one is unsettled (nothing would have to reach the spool first).
        if sh.bypass() || (sh.handover_due() && self.stats().in_flight() <= 1) {
            drop(producer);
            let p = Pending {
                seq,
                key: key.to_vec(),
                payload: payload.to_vec(),
                cause: Cause::BrokerDown,
                code: RDKafkaErrorCode::AllBrokersDown,
            };
            let Some(p) = sh.hold_for_handover(p) else {
                return Ok(());
            };
            return sh
                .spool_record(&p.key, &p.payload, Cause::BrokerDown, None)
                .inspect_err(|_| {
                    sh.counters.accepted.fetch_sub(1, Ordering::Relaxed);
                });
        }
        let sent = producer.send(key, payload, LIVE | seq);
        drop(producer);
        match sent {
            Ok(()) => {
                bump(&sh.counters.produced);
                Ok(())
            }
            Err(code) => {
                if sh.spool.is_some() && record_class(code) == ErrorClass::Retryable {
                    return sh
                        .spool_record(key, payload, Cause::QueueFull, None)
                        .inspect_err(|_| {
                            sh.counters.accepted.fetch_sub(1, Ordering::Relaxed);
                        });
                }
                sh.counters.accepted.fetch_sub(1, Ordering::Relaxed);
                if code == RDKafkaErrorCode::QueueFull {
                    Err(SinkError::QueueFull)
                } else {
                    Err(SinkError::Refused {
                        reason: reason_label(code),
                        retryable: record_class(code) == ErrorClass::Retryable,
                        detail: format!("Message production error: {code}"),
                    })
                }
            }
        }
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let _one_at_a_time = self.flush_lock.lock();
        let sh = &*self.shared;
        let started = Instant::now();
        let deadline = started + timeout;
        sh.paused.store(true, Ordering::Relaxed);
        let reserve = if sh.spool.is_some() {
            (timeout / 4).min(Duration::from_secs(2))
        } else {
            Duration::ZERO
        };
        let mut purged = 0;
        let producer = self.slot.get();
        if producer.flush(timeout - reserve).is_err() && sh.spool.is_some() {
            // Deadline: whatever librdkafka still holds goes to the spool through the purge's
            // delivery reports (in-flight requests may still land: at least once).
            purged = producer.in_flight_count().max(0);
            tracing::warn!(target: "openclick::sink", queued = purged,
                "flush deadline passed: moving the producer queue to the spool");
            producer.purge(PurgeConfig::default().queue().inflight());
            let _ = producer.flush(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(500)),
            );
        }
        drop(producer);
        let settled = self.wait_settled(deadline.max(Instant::now() + Duration::from_millis(500)));
        let spool_result = match &sh.spool {
            Some(spool) => spool.flush(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(2)),
            ),
            None => Ok(()),
        };
        sh.paused.store(false, Ordering::Relaxed);
        let d = self.detailed_stats();
        let spool = d.spool.unwrap_or_default();
        tracing::info!(
            target: "openclick::sink",
            accepted = d.sink.accepted,
            delivered = d.sink.delivered,
            spooled = d.sink.spooled,
            failed = d.sink.failed,
            in_flight = d.sink.in_flight(),
            purged,
            replayed = d.replayed,
            replay_delivered = d.replay_delivered,
            recovered_delivered = d.recovered_delivered,
            spool_pending = spool.pending_records + spool.queued_records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "kafka sink flushed"
        );
        if let Err(e) = spool_result {
            tracing::error!(target: "openclick::sink", error = %e, "spool flush failed");
            return Err(e.into());
        }
        if settled {
            Ok(())
        } else {
            Err(SinkError::FlushTimeout {
                in_flight: d.sink.in_flight(),
            })
        }
    }

    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        KafkaSink::close(self, timeout)
    }

    fn export_metrics(&self) {
        self.detailed_stats().export();
        self.shared.producer_stats.export();
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kafka_bootstrap_servers", self.brokers.clone()),
            ("topic", self.topic.clone()),
        ]
    }

    fn health(&self) -> Health {
        if self.shared.up.load(Ordering::Relaxed) {
            Health::Up
        } else {
            Health::Down
        }
    }

    fn stats(&self) -> SinkStats {
        let c = &self.shared.counters;
        SinkStats {
            accepted: get(&c.accepted),
            delivered: get(&c.delivered),
            failed: get(&c.failed),
            spooled: get(&c.spooled),
        }
    }
}
