//! Edge metrics, pulled at scrape time.
//!
//! The hot path only bumps relaxed atomics in [`EdgeMetrics`]. At each `/metrics` scrape the
//! admin handler copies every component's counters into a Prometheus recorder owned by this
//! edge (never the process-global recorder, so tests can run many edges in one process) and
//! renders it. Each component exports its own series: the edge its hits, the sink its delivery
//! accounting ([`openclick_sink::Sink::export_metrics`]), others through
//! [`crate::EdgeState::with_metrics_exporter`]. Labels come from closed sets only: never a URL,
//! an IP or a token.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use openclick_sink::SinkError;

use crate::pipeline::HitClass;

/// Counters the request path bumps.
pub struct EdgeMetrics {
    hits: [AtomicU64; HitClass::ALL.len()],
    publish_queue_full: AtomicU64,
    publish_other: AtomicU64,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
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
    /// Fresh counters and a private recorder.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        EdgeMetrics {
            hits: Default::default(),
            publish_queue_full: AtomicU64::new(0),
            publish_other: AtomicU64::new(0),
            recorder,
            handle,
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

    /// Runs `export` with this edge's recorder installed for the current thread, then renders
    /// the Prometheus text exposition.
    pub fn render(&self, export: impl FnOnce()) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            for class in HitClass::ALL {
                let (route, outcome) = class.labels();
                counter!("openclick_hits_total", "route" => route, "outcome" => outcome)
                    .absolute(self.hits(class));
            }
            counter!("openclick_publish_refused_total", "reason" => "queue_full")
                .absolute(self.publish_queue_full.load(Ordering::Relaxed));
            counter!("openclick_publish_refused_total", "reason" => "other")
                .absolute(self.publish_other.load(Ordering::Relaxed));
            gauge!("openclick_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            export();
        });
        self.handle.render()
    }
}
