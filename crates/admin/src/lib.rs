//! The admin plane: what operators and orchestrators talk to, apart from the public tracking
//! listener.
//!
//! - [`Admin`]: the plane's own state: `/info` facts, [`Readiness`] (named checks that
//!   components register, plus the drain flag), [`Metrics`] (one Prometheus recorder and the
//!   exporters components register), and the suppression API.
//! - [`routes`]: `/healthz`, `/readyz`, `/metrics`, `/info`, `/v1/suppressions/...`
//!   ([`suppress_api`]) and `/v1/blocks/...` (the redirect kill switch, [`blocks_api`]).
//! - [`server`]: [`server::run`], the admin accept loop, and [`server::spawn`], which runs it on
//!   its own OS thread with its own single-threaded runtime: a flood on the public listener
//!   (whose workers it does not share) cannot starve `/healthz`, `/readyz` or `/metrics`.
//!
//! Nothing here knows the edge, the sink or Kafka: components hand in closures (checks and
//! exporters) and a [`openclick_suppress::SuppressionWriter`].

pub mod blocks_api;
pub mod routes;
pub mod server;
pub mod suppress_api;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openclick_http::ConnStats;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

pub use suppress_api::{BearerToken, SuppressApi};

/// A readiness check: `true` when the component is ready.
type Check = Box<dyn Fn() -> bool + Send + Sync>;
/// A metrics exporter: emits series through the `metrics` macros.
type Exporter = Box<dyn Fn() + Send + Sync>;
/// A text exporter: appends whole metric families (with their `# HELP` and `# TYPE` lines) in
/// the Prometheus text format, for what the `metrics` macros cannot carry (histograms whose
/// buckets a component counts itself).
type TextExporter = Box<dyn Fn(&mut String) + Send + Sync>;

/// Readiness from registered checks. Ready when not draining and every check passes.
#[derive(Default)]
pub struct Readiness {
    draining: AtomicBool,
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("draining", &self.draining.load(Ordering::Relaxed))
            .field(
                "checks",
                &self.checks.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Readiness {
    /// No checks, not draining: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a named check (the name is shown when it fails: a fixed word such as
    /// `kafka` or `suppression_sync`, never data).
    pub fn with_check(
        mut self,
        name: &'static str,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Box::new(check)));
        self
    }

    /// Marks the process draining (shutting down): not ready from now on.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the process is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The names of what is not ready (`draining` first); empty when ready.
    pub fn failing(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.is_draining() {
            out.push("draining");
        }
        out.extend(self.checks.iter().filter(|(_, c)| !c()).map(|(n, _)| *n));
        out
    }

    /// Whether every check passes and the process is not draining.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.checks.iter().all(|(_, c)| c())
    }
}

/// The process's metrics, registered in one place: one Prometheus recorder (private to this
/// admin, never the process-global one, so tests run many in one process), the descriptions
/// (`# HELP`) each crate registers once through [`Metrics::describe`], and the exporters
/// components register. At each scrape every exporter runs inside the recorder, then the
/// recorder is rendered and the text exporters append their families.
///
/// The catalogue of every series is `docs/metrics.md`; `crates/cli/tests/metrics_catalogue.rs`
/// checks a live scrape against it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    exporters: Vec<Exporter>,
    text_exporters: Vec<TextExporter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("exporters", &self.exporters.len())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder with the admin plane's own series described and the build-info
    /// exporter registered.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Metrics {
            recorder,
            handle,
            exporters: vec![Box::new(|| {
                metrics::gauge!("openclick_build_info", "version" => env!("CARGO_PKG_VERSION"))
                    .set(1.0);
            })],
            text_exporters: Vec::new(),
        }
        .describe(describe_metrics)
    }

    /// Runs `describe` once inside this recorder: a crate's `describe_metrics` function, whose
    /// `metrics::describe_*!` calls give every series it exports its `# HELP` text.
    pub fn describe(self, describe: impl FnOnce()) -> Self {
        metrics::with_local_recorder(&self.recorder, describe);
        self
    }

    /// Registers a component's exporter, run at every scrape.
    pub fn with_exporter(mut self, export: impl Fn() + Send + Sync + 'static) -> Self {
        self.exporters.push(Box::new(export));
        self
    }

    /// Registers a text exporter, run at every scrape after the recorder is rendered: it
    /// appends whole families (`# HELP`, `# TYPE` and samples) to the exposition.
    pub fn with_text_exporter(
        mut self,
        export: impl Fn(&mut String) + Send + Sync + 'static,
    ) -> Self {
        self.text_exporters.push(Box::new(export));
        self
    }

    /// Runs every exporter (and `extra`) inside this recorder and renders the Prometheus text
    /// exposition.
    pub fn render(&self, extra: impl FnOnce()) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            for export in &self.exporters {
                export();
            }
            extra();
        });
        let mut out = self.handle.render();
        for export in &self.text_exporters {
            export(&mut out);
        }
        out
    }
}

/// Describes the admin plane's own series (`openclick_build_info`) and the connection series
/// of [`openclick_http::ConnStats`], which the admin listener exports too.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "openclick_build_info",
        "Always 1; the version label says which openclick build is running."
    );
    openclick_http::describe_metrics();
}

/// The admin plane's state.
#[derive(Debug)]
pub struct Admin {
    /// `/info`: facts as JSON (version, listeners, what each component describes).
    pub info: serde_json::Map<String, serde_json::Value>,
    /// `/readyz`.
    pub readiness: Readiness,
    /// `/metrics`.
    pub metrics: Metrics,
    /// `/v1/suppressions/...` (`None`: answered 404).
    pub suppressions: Option<SuppressApi>,
    /// The admin listener's own connection counters.
    pub connections: Arc<ConnStats>,
}

impl Admin {
    /// An admin plane with these parts.
    pub fn new(
        info: serde_json::Map<String, serde_json::Value>,
        readiness: Readiness,
        metrics: Metrics,
        suppressions: Option<SuppressApi>,
    ) -> Admin {
        Admin {
            info,
            readiness,
            metrics,
            suppressions,
            connections: Arc::new(ConnStats::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn readiness_is_every_check_and_not_draining() {
        let kafka = Arc::new(AtomicBool::new(false));
        let k = kafka.clone();
        let r = Readiness::new()
            .with_check("kafka", move || k.load(Ordering::Relaxed))
            .with_check("suppression_sync", || true);
        assert!(!r.is_ready());
        assert_eq!(r.failing(), vec!["kafka"]);
        kafka.store(true, Ordering::Relaxed);
        assert!(r.is_ready());
        assert!(r.failing().is_empty());
        r.set_draining();
        assert!(!r.is_ready());
        assert_eq!(r.failing(), vec!["draining"]);
    }

    #[test]
    fn metrics_render_every_exporter() {
        let m = Metrics::new().with_exporter(|| {
            metrics::counter!("openclick_test_total").absolute(7);
        });
        let m = m
            .describe(|| metrics::describe_counter!("openclick_test_total", "A test counter."))
            .with_text_exporter(|out| {
                out.push_str("# TYPE openclick_text gauge\nopenclick_text 1\n")
            });
        let text = m.render(|| {});
        assert!(text.contains("openclick_test_total 7"), "{text}");
        assert!(
            text.contains("# HELP openclick_test_total A test counter.\n"),
            "{text}"
        );
        assert!(text.contains("openclick_build_info{version="), "{text}");
        assert!(text.contains("# HELP openclick_build_info "), "{text}");
        assert!(text.ends_with("openclick_text 1\n"), "{text}");
    }
}
