//! The HTTP servers: the public tracking listener and the admin listener.
//!
//! Shape: [`run`] takes already-bound listeners and a shutdown future (tests bind port 0 and
//! pass a oneshot). Each accepted connection is served by hyper-util's auto builder (HTTP/1.1
//! with keep-alive, or h2c when the client starts with the HTTP/2 preface) and watched by a
//! graceful-shutdown tracker. On shutdown: stop accepting, let in-flight requests finish up to
//! the drain deadline, then flush the sink (off the runtime) up to its own deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use openclick_sink::{Health, Sink, SinkError};
use tokio::net::TcpListener;

use crate::admin;
use crate::metrics::EdgeMetrics;
use crate::pipeline::{self, Pipeline, Reply};

/// The 43-byte transparent 1x1 GIF89a.
pub const PIXEL_GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// Upper bound on the request head size (bytes).
    pub max_header_bytes: usize,
    /// Upper bound on the number of request headers.
    pub max_headers: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// How long shutdown waits for the sink to flush.
    pub flush_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            drain_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(15),
        }
    }
}

/// Facts `/info` reports.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Info {
    /// openclick version.
    pub version: String,
    /// Public listener address.
    pub listen: String,
    /// Admin listener address.
    pub admin_listen: String,
    /// Kafka bootstrap servers events go to.
    pub kafka_bootstrap_servers: String,
    /// Whether the broker is the embedded (in-process, in-memory) one.
    pub kafka_embedded: bool,
    /// Events topic.
    pub topic: String,
}

/// Everything the handlers share.
pub struct EdgeState {
    /// The request -> event function.
    pub pipeline: Pipeline,
    /// Where events go.
    pub sink: Arc<dyn Sink>,
    /// Hit and publish counters.
    pub metrics: EdgeMetrics,
    /// `/info` contents.
    pub info: Info,
    /// Settings.
    pub config: ServerConfig,
    shutting_down: AtomicBool,
    extra_metrics: Vec<Box<dyn Fn() + Send + Sync>>,
    pub(crate) suppress_api: Option<crate::suppress_api::SuppressApi>,
}

impl std::fmt::Debug for EdgeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeState")
            .field("pipeline", &self.pipeline)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl EdgeState {
    /// Assembles the shared state.
    pub fn new(pipeline: Pipeline, sink: Arc<dyn Sink>, info: Info, config: ServerConfig) -> Self {
        EdgeState {
            pipeline,
            sink,
            metrics: EdgeMetrics::new(),
            info,
            config,
            shutting_down: AtomicBool::new(false),
            extra_metrics: Vec::new(),
            suppress_api: None,
        }
    }

    /// Adds a component's metrics exporter, called at each `/metrics` scrape inside the
    /// exporter's recorder (see [`crate::metrics`]).
    pub fn with_metrics_exporter(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.extra_metrics.push(Box::new(f));
        self
    }

    /// Serves the suppression admin API (`/v1/suppressions/...`) on the admin listener.
    pub fn with_suppression_api(mut self, api: crate::suppress_api::SuppressApi) -> Self {
        self.suppress_api = Some(api);
        self
    }

    pub(crate) fn export_extra_metrics(&self) {
        for f in &self.extra_metrics {
            f();
        }
    }

    /// Ready to take traffic: not shutting down and the sink reaches its broker.
    pub fn is_ready(&self) -> bool {
        !self.shutting_down.load(Ordering::Relaxed) && self.sink.health() == Health::Up
    }

    /// Handles one tracking request: decide, answer, hand the event to the sink.
    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>> {
        let now_ms = now_ms();
        let outcome = self.pipeline.process(&pipeline::Request {
            method,
            path,
            headers,
            peer: peer.ip(),
            now_ms,
        });
        self.metrics.hit(outcome.class);
        if let Some(event) = &outcome.event {
            if let Err(e) = self.sink.publish(event) {
                self.metrics.publish_error(&e);
                log_publish_error(&e);
            }
        }
        reply_response(outcome.reply)
    }
}

fn log_publish_error(e: &SinkError) {
    // One line per failure would flood the log during an outage; the counter carries the rate.
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms() as u64;
    let last = LAST.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!(error = %e, retryable = e.is_retryable(), "sink refused an event");
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

static NO_STORE_PIXEL: HeaderValue =
    HeaderValue::from_static("no-store, no-cache, must-revalidate, private, max-age=0");

/// Builds the HTTP response for a [`Reply`].
pub fn reply_response(reply: Reply) -> Response<Full<Bytes>> {
    match reply {
        Reply::Pixel => {
            let mut r = Response::new(Full::new(Bytes::from_static(PIXEL_GIF)));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
            h.insert(header::CACHE_CONTROL, NO_STORE_PIXEL.clone());
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            h.insert(header::EXPIRES, HeaderValue::from_static("0"));
            r
        }
        Reply::Redirect(location) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::FOUND;
            let h = r.headers_mut();
            h.insert(header::LOCATION, location);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Reply::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
        Reply::MethodNotAllowed => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    }
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(config.max_header_bytes as u32)
        .max_concurrent_streams(256);
    b
}

/// Serves the tracking listener and the admin listener until `shutdown` resolves, then drains
/// connections and flushes the sink. Returns once both are done (or their deadlines passed).
pub async fn run(
    listener: TcpListener,
    admin_listener: TcpListener,
    state: Arc<EdgeState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let http = builder(&state.config);
    let admin_http = builder(&state.config);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => { accept_error(e).await; continue; }
                };
                let _ = stream.set_nodelay(true);
                let st = state.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let resp = st.handle(req.method(), req.uri().path(), req.headers(), peer);
                    std::future::ready(Ok::<_, Infallible>(resp))
                });
                let conn = http.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move { let _ = conn.await; });
            }
            accepted = admin_listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => { accept_error(e).await; continue; }
                };
                let st = state.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let st = st.clone();
                    async move { Ok::<_, Infallible>(admin::handle(&st, req).await) }
                });
                let conn = admin_http.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move { let _ = conn.await; });
            }
        }
    }
    state.shutting_down.store(true, Ordering::Relaxed);
    tracing::info!("shutting down: no longer accepting, draining connections");
    drop(listener);
    drop(admin_listener);
    if tokio::time::timeout(state.config.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed with connections still open");
    }
    let sink = state.sink.clone();
    let flush_timeout = state.config.flush_timeout;
    // `close`: stop background work (spool replay), flush up to the deadline, and spool what
    // the broker did not take, so nothing accepted is left only in memory.
    let flushed = tokio::task::spawn_blocking(move || sink.close(flush_timeout)).await;
    let stats = state.sink.stats();
    match flushed {
        Ok(Ok(())) => tracing::info!(
            accepted = stats.accepted,
            delivered = stats.delivered,
            failed = stats.failed,
            spooled = stats.spooled,
            "sink flushed"
        ),
        Ok(Err(e)) => tracing::error!(
            error = %e,
            in_flight = stats.in_flight(),
            "sink flush incomplete at shutdown"
        ),
        Err(e) => tracing::error!(error = %e, "sink flush task failed"),
    }
}

async fn accept_error(e: std::io::Error) {
    // EMFILE and friends: back off briefly instead of spinning.
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
