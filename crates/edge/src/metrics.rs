//! The tracking route's counters and latency histogram, pulled at scrape time.
//!
//! The hot path only bumps relaxed atomics in [`EdgeMetrics`], in a shard of its own thread
//! (one cache-line-aligned shard per worker thread, up to [`SHARDS`]), so workers never write
//! to the same cache line and nothing allocates or locks. At each `/metrics` scrape the admin
//! listener (`openclick-admin`) runs every registered exporter inside its own Prometheus
//! recorder; [`EdgeMetrics::export`] sums the shards into the counters, and
//! [`EdgeMetrics::render_histogram`] writes `openclick_http_request_duration_seconds` in the
//! text format itself (the recorder cannot take pre-bucketed histograms). Labels come from
//! closed sets only: never a URL, an IP or a token.
//!
//! [`describe_metrics`] is the `# HELP` text of every series the edge exports.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::counter;
use openclick_events::v1::{BotReason, ImageProxy, Signals};
use openclick_sink::SinkError;

use crate::pipeline::{HitClass, Reply};

/// Shards of the counters: worker threads beyond this share shards (round robin).
pub const SHARDS: usize = 16;

/// Upper bounds of the latency histogram's buckets, nanoseconds (`le` 50 µs .. 1 s; `+Inf`
/// is the last bucket).
pub const BUCKETS_NS: [u64; 14] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];
/// The same bounds as the `le` label values.
const BUCKET_LABELS: [&str; 14] = [
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1", "0.25", "0.5", "1",
];

/// `route` label values of the latency histogram.
pub const ROUTES: [&str; 3] = ["open", "click", "other"];
/// `status_class` label values of the latency histogram.
pub const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// The histogram's name.
pub const REQUEST_DURATION: &str = "openclick_http_request_duration_seconds";
const REQUEST_DURATION_HELP: &str = "Time from a tracking request's head parsed to its response built (token check, suppression, enrichment, publish), by route and status_class; excludes the network write.";

/// `verdict` label values, indexed by the `Verdict` value.
const VERDICTS: [&str; 5] = ["unspecified", "human", "machine", "bot", "unknown"];

/// Signals counted by `openclick_events_by_signal_total`, with their label value.
const SIGNALS: [&str; 5] = ["machine_open", "suspected_bot", "prefetch", "dnt", "gpc"];

/// `proxy` label values, indexed by the `ImageProxy` value.
const PROXIES: [(ImageProxy, &str); 6] = [
    (ImageProxy::None, "none"),
    (ImageProxy::Gmail, "gmail"),
    (ImageProxy::Yahoo, "yahoo"),
    (ImageProxy::Apple, "apple"),
    (ImageProxy::Microsoft, "microsoft"),
    (ImageProxy::Other, "other"),
];

/// `reason` label values, indexed by the `BotReason` value (0 is unused).
const BOT_REASONS: [(BotReason, &str); 19] = [
    (BotReason::Unspecified, "unspecified"),
    (BotReason::KnownBotUa, "known_bot_ua"),
    (BotReason::SecurityScanner, "security_scanner"),
    (BotReason::LinkPreview, "link_preview"),
    (BotReason::HeadlessBrowser, "headless_browser"),
    (BotReason::HttpLibrary, "http_library"),
    (BotReason::HeadRequest, "head_request"),
    (BotReason::Prefetch, "prefetch"),
    (BotReason::TooFast, "too_fast"),
    (BotReason::HostingAsn, "hosting_asn"),
    (BotReason::EmptyUa, "empty_ua"),
    (BotReason::GatewayMicrosoft, "gateway_microsoft"),
    (BotReason::GatewayMimecast, "gateway_mimecast"),
    (BotReason::GatewayProofpoint, "gateway_proofpoint"),
    (BotReason::GatewayBarracuda, "gateway_barracuda"),
    (BotReason::GatewayCisco, "gateway_cisco"),
    (BotReason::GatewayOther, "gateway_other"),
    (BotReason::ClickBurst, "click_burst"),
    (BotReason::Honeypot, "honeypot"),
];

/// One `(route, status_class)` series of the histogram: per-bucket (not cumulative) counts,
/// the last one `+Inf`, and the sum in nanoseconds.
#[derive(Default)]
struct Series {
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// One thread's counters, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    hits: [AtomicU64; HitClass::ALL.len()],
    latency: [[Series; STATUS_CLASSES.len()]; ROUTES.len()],
    signals: [AtomicU64; SIGNALS.len()],
    proxies: [AtomicU64; PROXIES.len()],
    bot_reasons: [AtomicU64; BOT_REASONS.len()],
    verdicts: [AtomicU64; VERDICTS.len()],
}

/// This thread's shard ([`openclick_common::shard::thread_index`], the hand-off's and the
/// deferred opens' rule).
#[inline]
fn shard_index() -> usize {
    openclick_common::shard::thread_index() % SHARDS
}

#[inline]
fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The bucket of a duration: the first bound it does not exceed, or `+Inf`.
#[inline]
fn bucket_of(ns: u64) -> usize {
    BUCKETS_NS
        .iter()
        .position(|&b| ns <= b)
        .unwrap_or(BUCKETS_NS.len())
}

/// The `status_class` index of a reply.
#[inline]
pub fn status_class(reply: &Reply) -> usize {
    match reply {
        Reply::Pixel => 0,
        Reply::Redirect(_) => 1,
        Reply::NotFound | Reply::Gone | Reply::MethodNotAllowed => 2,
    }
}

/// The `route` index of a hit class.
#[inline]
pub fn route(class: HitClass) -> usize {
    match class.labels().0 {
        "open" => 0,
        "click" => 1,
        _ => 2,
    }
}

/// Counters the request path bumps.
pub struct EdgeMetrics {
    shards: Box<[Shard; SHARDS]>,
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
            shards: Box::default(),
            publish_queue_full: AtomicU64::new(0),
            publish_other: AtomicU64::new(0),
        }
    }

    #[inline]
    fn shard(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    /// Counts one hit.
    #[inline]
    pub fn hit(&self, class: HitClass) {
        bump(&self.shard().hits[class.index()]);
    }

    /// Observes one request's handling time, by route and status class indices
    /// ([`route`], [`status_class`]; `status_class` 3 is 5xx).
    #[inline]
    pub fn observe(&self, route: usize, status_class: usize, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let s = &self.shard().latency[route][status_class];
        bump(&s.buckets[bucket_of(ns)]);
        s.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Counts the signals of an event the sink accepted.
    #[inline]
    pub fn event_signals(&self, signals: Option<&Signals>) {
        let Some(sig) = signals else { return };
        let sh = self.shard();
        for (flag, c) in [
            sig.machine_open,
            sig.suspected_bot,
            sig.prefetch,
            sig.dnt,
            sig.gpc,
        ]
        .into_iter()
        .zip(&sh.signals)
        {
            if flag {
                bump(c);
            }
        }
        if let Some(c) = usize::try_from(sig.image_proxy)
            .ok()
            .and_then(|i| sh.proxies.get(i))
        {
            bump(c);
        }
        for r in &sig.bot_reasons {
            if let Some(c) = usize::try_from(*r).ok().and_then(|i| sh.bot_reasons.get(i)) {
                bump(c);
            }
        }
        if let Some(c) = usize::try_from(sig.verdict)
            .ok()
            .and_then(|i| sh.verdicts.get(i))
        {
            bump(c);
        }
    }

    /// Counts an event the sink refused.
    pub fn publish_error(&self, e: &SinkError) {
        match e {
            SinkError::QueueFull => &self.publish_queue_full,
            _ => &self.publish_other,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Hits counted for a class so far.
    pub fn hits(&self, class: HitClass) -> u64 {
        self.sum(|s| &s.hits[class.index()])
    }

    /// Requests observed so far for a route and status class (the histogram's `_count`).
    pub fn requests(&self, route: usize, status_class: usize) -> u64 {
        self.shards
            .iter()
            .flat_map(|s| &s.latency[route][status_class].buckets)
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
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
        for (i, signal) in SIGNALS.iter().enumerate() {
            counter!("openclick_events_by_signal_total", "signal" => *signal)
                .absolute(self.sum(|s| &s.signals[i]));
        }
        for (i, (_, proxy)) in PROXIES.iter().enumerate() {
            counter!("openclick_events_by_image_proxy_total", "proxy" => *proxy)
                .absolute(self.sum(|s| &s.proxies[i]));
        }
        for (i, (_, reason)) in BOT_REASONS.iter().enumerate().skip(1) {
            counter!("openclick_events_by_bot_reason_total", "reason" => *reason)
                .absolute(self.sum(|s| &s.bot_reasons[i]));
        }
        for (i, verdict) in VERDICTS.iter().enumerate().skip(1) {
            counter!("openclick_events_by_verdict_total", "verdict" => *verdict)
                .absolute(self.sum(|s| &s.verdicts[i]));
        }
    }

    /// Appends `openclick_http_request_duration_seconds` (HELP, TYPE, buckets, sum, count) in
    /// the Prometheus text format. Every series the edge answers (open 2xx, click 3xx and 4xx,
    /// other 4xx: unknown paths and wrong methods) is always written; any other combination
    /// once it has been observed.
    pub fn render_histogram(&self, out: &mut String) {
        const EXPECTED: [(usize, usize); 4] = [(0, 0), (1, 1), (1, 2), (2, 2)];
        let _ = writeln!(out, "# HELP {REQUEST_DURATION} {REQUEST_DURATION_HELP}");
        let _ = writeln!(out, "# TYPE {REQUEST_DURATION} histogram");
        for (r, route) in ROUTES.iter().enumerate() {
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                let mut buckets = [0u64; BUCKETS_NS.len() + 1];
                let mut sum_ns = 0u64;
                for shard in self.shards.iter() {
                    let s = &shard.latency[r][c];
                    for (acc, b) in buckets.iter_mut().zip(&s.buckets) {
                        *acc += b.load(Ordering::Relaxed);
                    }
                    sum_ns = sum_ns.wrapping_add(s.sum_ns.load(Ordering::Relaxed));
                }
                let count: u64 = buckets.iter().sum();
                if count == 0 && !EXPECTED.contains(&(r, c)) {
                    continue;
                }
                let labels = format!("route=\"{route}\",status_class=\"{class}\"");
                let mut cumulative = 0;
                for (le, n) in BUCKET_LABELS.iter().zip(&buckets) {
                    cumulative += n;
                    let _ = writeln!(
                        out,
                        "{REQUEST_DURATION}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "{REQUEST_DURATION}_bucket{{{labels},le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    out,
                    "{REQUEST_DURATION}_sum{{{labels}}} {}",
                    sum_ns as f64 / 1e9
                );
                let _ = writeln!(out, "{REQUEST_DURATION}_count{{{labels}}} {count}");
            }
        }
        out.push('\n');
    }
}

/// Describes (`# HELP`) every series the edge exports through the recorder ([`EdgeMetrics`],
/// and the rate limiter's [`crate::ReplayLimiter::export_metrics`]); run once per recorder.
/// The histogram carries its own `# HELP` ([`EdgeMetrics::render_histogram`]).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "openclick_opens_processed_inline_total",
        "Open hits a request thread processed itself, in a batch, when its deferred-opens buffer filled (16 KiB); the rest are processed by the openclick-opens thread every --defer-opens-us. Absent with --defer-opens-us 0."
    );
    describe_counter!(
        "openclick_hits_total",
        "Tracking requests, by route (open, click, other) and outcome (tracked, suppressed, invalid_token, rate_limited, blocked, not_found, method_not_allowed)."
    );
    describe_counter!(
        "openclick_publish_refused_total",
        "Events the sink refused at publish, by reason (queue_full, other): not accepted, so not accounted by the sink."
    );
    describe_counter!(
        "openclick_events_by_signal_total",
        "Events the sink accepted that carry a signal (machine_open: Apple MPP and the like, suspected_bot, prefetch, dnt, gpc)."
    );
    describe_counter!(
        "openclick_events_by_image_proxy_total",
        "Events the sink accepted, by the image proxy that fetched them (none, gmail, yahoo, apple, microsoft, other)."
    );
    describe_counter!(
        "openclick_events_by_verdict_total",
        "Events the sink accepted, by verdict (human, machine, bot, unknown; docs/verdict.md)."
    );
    crate::window::describe_metrics();
    crate::web::describe_metrics();
    describe_counter!(
        "openclick_events_by_bot_reason_total",
        "Events the sink accepted, by reason they are suspected automated (an event may carry several)."
    );
    describe_gauge!(
        "openclick_rate_limit_tracked_tokens",
        "Tokens the per-token rate limiter tracks now."
    );
    describe_counter!(
        "openclick_rate_limit_untracked_total",
        "Hits of new tokens not rate limited because the limiter was full (--rate-limit-max-tokens)."
    );
    describe_counter!(
        "openclick_rate_limited_total",
        "Hits over their token's rate: answered, but no event."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(50_000), 0);
        assert_eq!(bucket_of(50_001), 1);
        assert_eq!(bucket_of(1_000_000_000), BUCKETS_NS.len() - 1);
        assert_eq!(bucket_of(1_000_000_001), BUCKETS_NS.len());
        for (ns, le) in BUCKETS_NS.iter().zip(BUCKET_LABELS) {
            assert_eq!(*ns as f64 / 1e9, le.parse::<f64>().unwrap());
        }
    }

    #[test]
    fn label_tables_follow_the_proto_enums() {
        for (i, (p, _)) in PROXIES.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        for (i, (r, _)) in BOT_REASONS.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, v) in VERDICTS.iter().enumerate() {
            let name = openclick_events::v1::Verdict::try_from(i as i32)
                .unwrap()
                .as_str_name();
            assert_eq!(name, format!("VERDICT_{}", v.to_uppercase()));
        }
    }

    /// Every provider of the shipped gateway list, and every named one, is counted under the
    /// `reason` label its name in the data file gives (`gateway_<name>`, else `gateway_other`).
    #[test]
    fn gateway_providers_count_under_their_own_reason_label() {
        let named = openclick_enrich::parse_gateways(
            "10.0.0.0/8,microsoft,both,x\n10.0.0.0/8,Mimecast,both,x\n10.0.0.0/8,proofpoint,both,x\n\
             10.0.0.0/8,barracuda,both,x\n10.0.0.0/8,cisco,both,x\n10.0.0.0/8,acme-links,both,x\n",
        )
        .unwrap();
        let rows = openclick_enrich::default_gateways();
        assert!(!rows.is_empty());
        for row in rows.iter().chain(&named) {
            let name = row.provider_name.to_ascii_lowercase();
            let want = match name.as_str() {
                "microsoft" | "mimecast" | "proofpoint" | "barracuda" | "cisco" => {
                    format!("gateway_{name}")
                }
                _ => "gateway_other".to_owned(),
            };
            let (reason, label) = BOT_REASONS[row.provider.bot_reason() as usize];
            assert_eq!(reason, row.provider.bot_reason());
            assert_eq!(label, want, "{row:?}");
        }
    }

    #[test]
    fn histogram_is_cumulative_across_threads() {
        let m = std::sync::Arc::new(EdgeMetrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    m.observe(0, 0, Duration::from_micros(30));
                    m.observe(0, 0, Duration::from_micros(700));
                    m.observe(0, 0, Duration::from_secs(2));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(m.requests(0, 0), 12);
        let mut out = String::new();
        m.render_histogram(&mut out);
        let line = |s: &str| out.lines().any(|l| l == s);
        let b =
            "openclick_http_request_duration_seconds_bucket{route=\"open\",status_class=\"2xx\"";
        assert!(line(&format!("{b},le=\"5e-05\"}} 4")), "{out}");
        assert!(line(&format!("{b},le=\"0.0005\"}} 4")), "{out}");
        assert!(line(&format!("{b},le=\"0.001\"}} 8")), "{out}");
        assert!(line(&format!("{b},le=\"1\"}} 8")), "{out}");
        assert!(line(&format!("{b},le=\"+Inf\"}} 12")), "{out}");
        assert!(
            line("openclick_http_request_duration_seconds_sum{route=\"open\",status_class=\"2xx\"} 8.00292"),
            "{out}"
        );
        // Click 3xx is always written, open 3xx never observed is not.
        assert!(
            out.contains("route=\"click\",status_class=\"3xx\""),
            "{out}"
        );
        assert!(
            !out.contains("route=\"open\",status_class=\"3xx\""),
            "{out}"
        );
    }
}
