//! The producer, replaceable: when the cluster rejects its idempotence state, the replay
//! thread swaps in a fresh one and the old one's queue comes back through the spool.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openclick_sink::SinkError;
use parking_lot::RwLock;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{Producer, PurgeConfig, ThreadedProducer};

use super::accounting::{bump, get};
use super::delivery::DeliveryContext;
use super::native::SinkProducer;
use super::shared::Shared;

/// The current producer, replaceable. `publish` sends under the read lock (never held across
/// anything that waits), so after a swap under the write lock nobody but the replacing thread
/// holds the old producer.
pub(crate) struct ProducerSlot {
    pub(crate) current: RwLock<Arc<SinkProducer>>,
    config: ClientConfig,
    topic: String,
    shared: Arc<Shared>,
}

impl ProducerSlot {
    pub(crate) fn new(
        config: ClientConfig,
        topic: &str,
        shared: Arc<Shared>,
    ) -> Result<ProducerSlot, SinkError> {
        let producer = Self::create(&config, topic, &shared)?;
        Ok(ProducerSlot {
            current: RwLock::new(Arc::new(producer)),
            config,
            topic: topic.to_string(),
            shared,
        })
    }

    pub(crate) fn create(
        config: &ClientConfig,
        topic: &str,
        shared: &Arc<Shared>,
    ) -> Result<SinkProducer, SinkError> {
        let client: ThreadedProducer<DeliveryContext> = config
            .create_with_context(DeliveryContext {
                shared: shared.clone(),
            })
            .map_err(|e| SinkError::Config(crate::error::describe(&e)))?;
        SinkProducer::new(client, topic).map_err(SinkError::Config)
    }

    pub(crate) fn get(&self) -> Arc<SinkProducer> {
        self.current.read().clone()
    }

    /// Replaces the producer with a fresh one (a new producer id). The old one's queue is
    /// purged: the purge's delivery reports spool its live records and nack its replayed ones.
    pub(crate) fn reset(&self) {
        let fresh = match Self::create(&self.config, &self.topic, &self.shared) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::error!(target: "openclick::sink", error = %e, "cannot replace the producer");
                self.shared.reset_requested.store(true, Ordering::Relaxed);
                std::thread::sleep(Duration::from_secs(1));
                return;
            }
        };
        let old = std::mem::replace(&mut *self.current.write(), fresh);
        bump(&self.shared.producer_resets);
        tracing::warn!(
            target: "openclick::sink",
            queued = old.in_flight_count(),
            resets = get(&self.shared.producer_resets),
            "the cluster rejected the producer's idempotence state: producer replaced, its queue spooled"
        );
        old.purge(PurgeConfig::default().queue().inflight());
        let _ = old.flush(Duration::from_secs(2));
        // Dropped here, on the replay thread (its drop joins its polling thread).
        drop(old);
    }
}
