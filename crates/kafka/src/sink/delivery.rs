//! librdkafka's callbacks: delivery reports and client errors, turned into counters, health,
//! spool writes and (rate-limited) log lines. Runs on the producer's polling thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::Statistics;

use super::accounting::{
    bump, is_live, reason_index, record_class, Cause, LIVE, SPOOL_REFUSED, SPOOL_WAIT,
};
use super::shared::{Pending, Shared};
use crate::error::{is_producer_state_error, ErrorClass};

/// Delivery reports and client errors, turned into counters, health, spool writes and logs.
pub(crate) struct DeliveryContext {
    pub(crate) shared: Arc<Shared>,
}

impl ClientContext for DeliveryContext {
    fn stats(&self, statistics: Statistics) {
        self.shared.producer_stats.update(&statistics);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{msg}"),
            _ => tracing::debug!(target: "librdkafka", fac, "{msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared.mark_down("all brokers down");
        }
        if code == Some(RDKafkaErrorCode::Fatal) {
            self.shared.reset_requested.store(true, Ordering::Relaxed);
            tracing::error!(target: "openclick::sink", %error, reason,
                "kafka producer fatal error: replacing the producer; its records are spooled");
        } else if let Some(suppressed) = self.shared.log_allowed(&self.shared.error_log) {
            tracing::warn!(target: "openclick::sink", %error, reason, suppressed, "kafka client error");
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        let sh = &self.shared;
        match result {
            Ok(_) => {
                sh.mark_up();
                sh.stalls_since_delivery.store(0, Ordering::Relaxed);
                if is_live(slot) {
                    bump(&sh.counters.delivered);
                } else {
                    sh.replay_settled(slot, Ok(()));
                }
            }
            Err((e, msg)) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                if code == RDKafkaErrorCode::MessageTimedOut {
                    sh.mark_down("a delivery timed out");
                }
                if is_producer_state_error(code) {
                    sh.reset_requested.store(true, Ordering::Relaxed);
                }
                if !is_live(slot) {
                    sh.replay_settled(slot, Err(code));
                    return;
                }
                if record_class(code) == ErrorClass::Retryable && sh.spool.is_some() {
                    let cause = match code {
                        RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight => {
                            Cause::Purged
                        }
                        _ => Cause::DeliveryFailed,
                    };
                    let key = msg.key().unwrap_or_default();
                    let payload = msg.payload().unwrap_or_default();
                    // During the outage hand-over, purged records wait to be spooled in publish
                    // order with everything published meanwhile (see `Replayer::hand_over`).
                    let held = matches!(cause, Cause::Purged).then(|| Pending {
                        seq: slot & !LIVE,
                        key: key.to_vec(),
                        payload: payload.to_vec(),
                        cause,
                        code,
                    });
                    if let Some(p) = held {
                        if sh.hold_for_handover(p).is_none() {
                            return;
                        }
                    }
                    if sh
                        .spool_record(key, payload, cause, Some(SPOOL_WAIT))
                        .is_err()
                    {
                        sh.fail(SPOOL_REFUSED, code);
                    }
                } else {
                    sh.fail(reason_index(code), code);
                }
            }
        }
    }
}
