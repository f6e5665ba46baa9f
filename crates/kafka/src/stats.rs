//! librdkafka's statistics, turned into Prometheus series.
//!
//! The events producer is configured with `statistics.interval.ms` (default
//! [`DEFAULT_STATISTICS_INTERVAL_MS`], set another with `--kafka-property
//! statistics.interval.ms=N`, 0 turns it off). librdkafka then hands its JSON statistics to the
//! producer's context every interval, on its own thread; rdkafka parses them into
//! [`Statistics`] and [`ProducerStats::update`] keeps the few figures an operator alerts on.
//! The admin plane reads them at scrape time ([`ProducerStats::export`]). Nothing here runs on
//! the request path.
//!
//! librdkafka's counters start again from 0 when the producer is replaced (a new client);
//! [`Monotonic`] turns them into counters that only grow. Labels: `broker`, the broker's node
//! id (bounded by the cluster's size; the bootstrap entries, which have no node id, are left
//! out).

use std::collections::BTreeMap;

use parking_lot::Mutex;
use rdkafka::statistics::{Statistics, Window};

/// `statistics.interval.ms` the events producer gets unless the operator sets one.
pub const DEFAULT_STATISTICS_INTERVAL_MS: u64 = 15_000;

/// A librdkafka counter made monotonic across client replacements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Monotonic {
    total: u64,
    last: u64,
}

impl Monotonic {
    /// Takes the client's latest reading: what it grew by since the last one, or all of it
    /// if it went down (a new client started from 0).
    pub(crate) fn update(&mut self, reading: u64) {
        let grew = if reading >= self.last {
            reading - self.last
        } else {
            reading
        };
        self.total = self.total.saturating_add(grew);
        self.last = reading;
    }

    /// A new client: its counters start from 0.
    fn restart(&mut self) {
        self.last = 0;
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// What is kept of one broker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerFigures {
    /// Connection state is `UP`.
    pub up: bool,
    /// Round-trip time over the last interval, average and 99th percentile, seconds (0 when
    /// no request was answered in the interval).
    pub rtt_avg_seconds: f64,
    /// See `rtt_avg_seconds`.
    pub rtt_p99_seconds: f64,
    tx_errors: Monotonic,
    tx_retries: Monotonic,
    request_timeouts: Monotonic,
}

impl BrokerFigures {
    /// Transmission errors so far.
    pub fn tx_errors(&self) -> u64 {
        self.tx_errors.total()
    }
    /// Request retries so far.
    pub fn tx_retries(&self) -> u64 {
        self.tx_retries.total()
    }
    /// Requests timed out so far.
    pub fn request_timeouts(&self) -> u64 {
        self.request_timeouts.total()
    }
}

/// The producer's figures from its latest statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsFigures {
    /// Statistics received.
    pub updates: u64,
    /// The client (`name`) the latest statistics came from.
    client: String,
    /// Messages in the producer's queue (waiting or in flight).
    pub queue_messages: u64,
    /// Bytes of the messages in the producer's queue.
    pub queue_bytes: u64,
    /// The queue's bounds (`queue.buffering.max.messages`, `queue.buffering.max.kbytes`).
    pub queue_max_messages: u64,
    /// See `queue_max_messages`.
    pub queue_max_bytes: u64,
    tx_messages: Monotonic,
    tx_message_bytes: Monotonic,
    /// Average batch (message set) size over the last interval, bytes, and messages per batch.
    pub batch_size_avg_bytes: f64,
    /// See `batch_size_avg_bytes`.
    pub batch_messages_avg: f64,
    /// By broker node id.
    pub brokers: BTreeMap<i32, BrokerFigures>,
}

impl StatsFigures {
    /// Messages sent to brokers so far.
    pub fn tx_messages(&self) -> u64 {
        self.tx_messages.total()
    }
}

fn avg_seconds(w: Option<&Window>) -> (f64, f64) {
    match w {
        Some(w) if w.cnt > 0 => (w.avg as f64 / 1e6, w.p99 as f64 / 1e6),
        _ => (0.0, 0.0),
    }
}

/// The producer's statistics, updated by librdkafka's callback and read at scrape time.
#[derive(Debug, Default)]
pub struct ProducerStats {
    figures: Mutex<StatsFigures>,
}

impl ProducerStats {
    /// Takes one statistics report.
    pub fn update(&self, s: &Statistics) {
        let mut f = self.figures.lock();
        let restarted = !f.client.is_empty() && f.client != s.name;
        if restarted {
            f.tx_messages.restart();
            f.tx_message_bytes.restart();
            for b in f.brokers.values_mut() {
                b.tx_errors.restart();
                b.tx_retries.restart();
                b.request_timeouts.restart();
            }
        }
        if f.client != s.name {
            f.client.clone_from(&s.name);
        }
        f.updates += 1;
        f.queue_messages = s.msg_cnt;
        f.queue_bytes = s.msg_size;
        f.queue_max_messages = s.msg_max;
        f.queue_max_bytes = s.msg_size_max;
        f.tx_messages.update(unsigned(s.txmsgs));
        f.tx_message_bytes.update(unsigned(s.txmsg_bytes));
        let (mut bytes, mut msgs, mut batches) = (0i64, 0i64, 0i64);
        for t in s.topics.values() {
            bytes = bytes.saturating_add(t.batchsize.sum);
            msgs = msgs.saturating_add(t.batchcnt.sum);
            batches = batches.saturating_add(t.batchsize.cnt);
        }
        (f.batch_size_avg_bytes, f.batch_messages_avg) = if batches > 0 {
            (bytes as f64 / batches as f64, msgs as f64 / batches as f64)
        } else {
            (0.0, 0.0)
        };
        for b in s.brokers.values().filter(|b| b.nodeid >= 0) {
            let e = f.brokers.entry(b.nodeid).or_default();
            e.up = b.state == "UP";
            (e.rtt_avg_seconds, e.rtt_p99_seconds) = avg_seconds(b.rtt.as_ref());
            e.tx_errors.update(b.txerrs);
            e.tx_retries.update(b.txretries);
            e.request_timeouts.update(b.req_timeouts);
        }
    }

    /// A copy of the latest figures.
    pub fn figures(&self) -> StatsFigures {
        self.figures.lock().clone()
    }

    /// Emits the series through the `metrics` macros (into whatever recorder is current).
    pub fn export(&self) {
        use metrics::{counter, gauge};
        let f = self.figures();
        counter!("openclick_kafka_stats_updates_total").absolute(f.updates);
        gauge!("openclick_kafka_producer_queue_messages").set(f.queue_messages as f64);
        gauge!("openclick_kafka_producer_queue_bytes").set(f.queue_bytes as f64);
        gauge!("openclick_kafka_producer_queue_max_messages").set(f.queue_max_messages as f64);
        gauge!("openclick_kafka_producer_queue_max_bytes").set(f.queue_max_bytes as f64);
        counter!("openclick_kafka_tx_messages_total").absolute(f.tx_messages.total());
        counter!("openclick_kafka_tx_message_bytes_total").absolute(f.tx_message_bytes.total());
        gauge!("openclick_kafka_batch_size_avg_bytes").set(f.batch_size_avg_bytes);
        gauge!("openclick_kafka_batch_messages_avg").set(f.batch_messages_avg);
        for (id, b) in &f.brokers {
            let broker = id.to_string();
            gauge!("openclick_kafka_broker_up", "broker" => broker.clone()).set(if b.up {
                1.0
            } else {
                0.0
            });
            gauge!("openclick_kafka_broker_rtt_avg_seconds", "broker" => broker.clone())
                .set(b.rtt_avg_seconds);
            gauge!("openclick_kafka_broker_rtt_p99_seconds", "broker" => broker.clone())
                .set(b.rtt_p99_seconds);
            counter!("openclick_kafka_broker_tx_errors_total", "broker" => broker.clone())
                .absolute(b.tx_errors.total());
            counter!("openclick_kafka_broker_tx_retries_total", "broker" => broker.clone())
                .absolute(b.tx_retries.total());
            counter!("openclick_kafka_broker_request_timeouts_total", "broker" => broker)
                .absolute(b.request_timeouts.total());
        }
    }
}

/// Describes (`# HELP`) every series of the Kafka crate: the sink's accounting and spool
/// ([`crate::KafkaSinkStats::export`]) and librdkafka's statistics ([`ProducerStats::export`]).
/// Run once per recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    openclick_sink::describe_metrics();
    describe_counter!(
        "openclick_sink_produced_total",
        "Records handed to librdkafka (live and replayed)."
    );
    describe_counter!(
        "openclick_sink_failed_by_reason_total",
        "Events given up on, by reason (timed_out, queue_full, too_large, unauthorized, unknown_topic, transport, purged, other_retryable, other_fatal, spool_refused)."
    );
    describe_counter!(
        "openclick_sink_spooled_by_cause_total",
        "Events written to the spool, by cause (queue_full, broker_down, delivery_failed, purged)."
    );
    describe_counter!(
        "openclick_sink_replayed_total",
        "Spooled records re-published (a record retried after a failure counts again)."
    );
    describe_counter!(
        "openclick_sink_replay_delivered_total",
        "Spooled records the broker acknowledged (then acked in the spool)."
    );
    describe_counter!(
        "openclick_sink_replay_retried_total",
        "Replayed records that failed retryably (replayed again later)."
    );
    describe_counter!(
        "openclick_sink_replay_failed_total",
        "Replayed records that failed fatally and were dropped from the spool."
    );
    describe_counter!(
        "openclick_sink_recovered_delivered_total",
        "Of the replayed records delivered, those a previous process left in the spool."
    );
    describe_gauge!(
        "openclick_sink_replay_in_flight",
        "Replayed records awaiting their delivery report."
    );
    describe_gauge!(
        "openclick_sink_producer_queue_depth",
        "Records in librdkafka's queue (waiting or in flight), read at scrape time."
    );
    describe_gauge!(
        "openclick_sink_broker_up",
        "1 when the events producer reaches a broker (readiness check kafka), else 0."
    );
    describe_counter!(
        "openclick_sink_producer_resets_total",
        "Times the producer was replaced after the cluster rejected its idempotence state."
    );
    describe_gauge!(
        "openclick_spool_pending_events",
        "Events in the durable spool not yet delivered (on disk or queued to be written)."
    );
    describe_gauge!("openclick_spool_bytes", "Bytes of spool segments on disk.");
    describe_gauge!("openclick_spool_segments", "Spool segment files on disk.");
    describe_gauge!(
        "openclick_spool_oldest_age_seconds",
        "Age of the oldest event waiting in the spool, seconds (0 when empty)."
    );
    describe_counter!(
        "openclick_spool_appended_total",
        "Records written to the spool."
    );
    describe_counter!(
        "openclick_spool_acked_total",
        "Spooled records confirmed delivered."
    );
    describe_counter!(
        "openclick_spool_dropped_total",
        "Events the spool could not take, by cause (full, queue_full, too_large, closed, write_error): lost."
    );
    describe_counter!(
        "openclick_spool_corrupt_records_total",
        "Spool records skipped at recovery because their checksum did not match."
    );
    describe_counter!(
        "openclick_spool_torn_bytes_total",
        "Bytes of torn (partly written) spool tails cut at recovery."
    );
    describe_counter!(
        "openclick_spool_write_errors_total",
        "Spool write or fsync errors."
    );
    describe_counter!("openclick_spool_fsyncs_total", "Spool fsyncs.");
    describe_counter!(
        "openclick_kafka_stats_updates_total",
        "librdkafka statistics reports received from the events producer (every statistics.interval.ms)."
    );
    describe_gauge!(
        "openclick_kafka_producer_queue_messages",
        "Messages in the events producer's librdkafka queue (msg_cnt), as of the last statistics."
    );
    describe_gauge!(
        "openclick_kafka_producer_queue_bytes",
        "Bytes of the messages in the events producer's librdkafka queue (msg_size), as of the last statistics."
    );
    describe_gauge!(
        "openclick_kafka_producer_queue_max_messages",
        "The producer queue's message bound (queue.buffering.max.messages)."
    );
    describe_gauge!(
        "openclick_kafka_producer_queue_max_bytes",
        "The producer queue's byte bound (queue.buffering.max.kbytes, in bytes)."
    );
    describe_counter!(
        "openclick_kafka_tx_messages_total",
        "Messages the events producer sent to brokers (txmsgs)."
    );
    describe_counter!(
        "openclick_kafka_tx_message_bytes_total",
        "Message bytes the events producer sent to brokers (txmsg_bytes)."
    );
    describe_gauge!(
        "openclick_kafka_batch_size_avg_bytes",
        "Average produce batch size over the last statistics interval, bytes (0: no batch)."
    );
    describe_gauge!(
        "openclick_kafka_batch_messages_avg",
        "Average messages per produce batch over the last statistics interval (0: no batch)."
    );
    describe_gauge!(
        "openclick_kafka_broker_up",
        "1 when the events producer's connection to the broker (node id) is UP, else 0."
    );
    describe_gauge!(
        "openclick_kafka_broker_rtt_avg_seconds",
        "Average request round-trip time to the broker (node id) over the last statistics interval."
    );
    describe_gauge!(
        "openclick_kafka_broker_rtt_p99_seconds",
        "99th percentile request round-trip time to the broker (node id) over the last statistics interval."
    );
    describe_counter!(
        "openclick_kafka_broker_tx_errors_total",
        "Transmission errors towards the broker (node id)."
    );
    describe_counter!(
        "openclick_kafka_broker_tx_retries_total",
        "Requests retried towards the broker (node id)."
    );
    describe_counter!(
        "openclick_kafka_broker_request_timeouts_total",
        "Requests to the broker (node id) that timed out."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_survives_a_client_restart() {
        let mut m = Monotonic::default();
        m.update(10);
        m.update(15);
        assert_eq!(m.total(), 15);
        m.update(3); // a new client counting from 0
        assert_eq!(m.total(), 18);
        m.update(4);
        assert_eq!(m.total(), 19);
    }

    /// A statistics report in librdkafka's own layout (the fields STATISTICS.md documents),
    /// parsed by rdkafka's `Statistics`, not built from our structs.
    fn report(name: &str, txmsgs: i64, txerrs: u64) -> Statistics {
        let json = format!(
            r#"{{"name":"{name}","client_id":"openclick","type":"producer","ts":1,"time":1,
            "age":1,"replyq":0,"msg_cnt":7,"msg_size":700,"msg_max":100000,
            "msg_size_max":1073741824,"simple_cnt":0,"metadata_cache_cnt":1,
            "tx":5,"tx_bytes":500,"rx":5,"rx_bytes":500,"txmsgs":{txmsgs},"txmsg_bytes":{b},
            "rxmsgs":0,"rxmsg_bytes":0,
            "brokers":{{
              "127.0.0.1:9092/bootstrap":{{"name":"127.0.0.1:9092/bootstrap","nodeid":-1,
                "nodename":"127.0.0.1:9092","source":"configured","state":"UP","stateage":1,
                "outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,"waitresp_msg_cnt":0,
                "tx":1,"txbytes":1,"txerrs":99,"txretries":99,"txidle":0,"req_timeouts":99,
                "rx":1,"rxbytes":1,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,"rxidle":0,
                "zbuf_grow":0,"buf_grow":0,"wakeups":1,"connects":1,"disconnects":0,"req":{{}},
                "toppars":{{}}}},
              "b1:9092/1":{{"name":"b1:9092/1","nodeid":1,"nodename":"b1:9092",
                "source":"learned","state":"UP","stateage":1,
                "outbuf_cnt":0,"outbuf_msg_cnt":0,"waitresp_cnt":0,"waitresp_msg_cnt":0,
                "tx":1,"txbytes":1,"txerrs":{txerrs},"txretries":2,"txidle":0,"req_timeouts":1,
                "rx":1,"rxbytes":1,"rxerrs":0,"rxcorriderrs":0,"rxpartial":0,"rxidle":0,
                "zbuf_grow":0,"buf_grow":0,"wakeups":1,"connects":1,"disconnects":0,"req":{{}},
                "rtt":{{"min":100,"max":5000,"avg":1500,"sum":3000,"cnt":2,"stddev":10,
                  "hdrsize":1,"p50":1000,"p75":1000,"p90":2000,"p95":2000,"p99":5000,
                  "p99_99":5000,"outofrange":0}},
                "toppars":{{}}}}
            }},
            "topics":{{"openclick.events.v1":{{"topic":"openclick.events.v1","age":1,
              "metadata_age":1,
              "batchsize":{{"min":100,"max":300,"avg":200,"sum":600,"cnt":3,"stddev":1,
                "hdrsize":1,"p50":1,"p75":1,"p90":1,"p95":1,"p99":1,"p99_99":1,"outofrange":0}},
              "batchcnt":{{"min":1,"max":5,"avg":3,"sum":9,"cnt":3,"stddev":1,
                "hdrsize":1,"p50":1,"p75":1,"p90":1,"p95":1,"p99":1,"p99_99":1,"outofrange":0}},
              "partitions":{{}}}}}}
            }}"#,
            b = txmsgs * 100
        );
        serde_json::from_str(&json).expect("a librdkafka statistics report")
    }

    #[test]
    fn figures_from_a_report() {
        let s = ProducerStats::default();
        s.update(&report("openclick#producer-1", 40, 3));
        let f = s.figures();
        assert_eq!((f.updates, f.queue_messages, f.queue_bytes), (1, 7, 700));
        assert_eq!(f.tx_messages(), 40);
        assert_eq!(f.batch_size_avg_bytes, 200.0);
        assert_eq!(f.batch_messages_avg, 3.0);
        // The bootstrap entry (no node id) is left out.
        assert_eq!(f.brokers.keys().copied().collect::<Vec<_>>(), vec![1]);
        let b = &f.brokers[&1];
        assert!(b.up);
        assert_eq!((b.rtt_avg_seconds, b.rtt_p99_seconds), (0.0015, 0.005));
        assert_eq!(
            (b.tx_errors(), b.tx_retries(), b.request_timeouts()),
            (3, 2, 1)
        );
        // The producer is replaced: the new client counts from 0, the series keep growing.
        s.update(&report("openclick#producer-2", 5, 1));
        let f = s.figures();
        assert_eq!(f.tx_messages(), 45);
        assert_eq!(f.brokers[&1].tx_errors(), 4);
    }
}
