//! The tracking route's counters, pulled at scrape time.
//!
//! The hot path only bumps relaxed atomics in [`EdgeMetrics`]. At each `/metrics` scrape the
//! admin listener (`openclick-admin`) runs every registered exporter inside its own Prometheus
//! recorder; [`EdgeMetrics::export`] is the edge's. Labels come from closed sets only: never a
//! URL, an IP or a token.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::counter;
use openclick_sink::SinkError;

use crate::pipeline::HitClass;

/// Counters the request path bumps.
pub struct EdgeMetrics {
    hits: [AtomicU64; HitClass::ALL.len()],
    publish_queue_full: AtomicU64,
    publish_other: AtomicU64,
}

impl std::fmt::Debug for EdgeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeMetrics").finish_non_exhaustive()
    }
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EdgeMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        EdgeMetrics {
            hits: Default::default(),
            publish_queue_full: AtomicU64::new(0),
            publish_other: AtomicU64::new(0),
        }
    }

    /// Counts one hit.
    #[inline]
    pub fn hit(&self, class: HitClass) {
        self.hits[class.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an event the sink refused.
    pub fn publish_error(&self, e: &SinkError) {
        match e {
            SinkError::QueueFull => &self.publish_queue_full,
            _ => &self.publish_other,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Hits counted for a class so far.
    pub fn hits(&self, class: HitClass) -> u64 {
        self.hits[class.index()].load(Ordering::Relaxed)
    }

    /// Emits the counters through the `metrics` macros (into whatever recorder is current).
    pub fn export(&self) {
        for class in HitClass::ALL {
            let (route, outcome) = class.labels();
            counter!("openclick_hits_total", "route" => route, "outcome" => outcome)
                .absolute(self.hits(class));
        }
        counter!("openclick_publish_refused_total", "reason" => "queue_full")
            .absolute(self.publish_queue_full.load(Ordering::Relaxed));
        counter!("openclick_publish_refused_total", "reason" => "other")
            .absolute(self.publish_other.load(Ordering::Relaxed));
    }
}
