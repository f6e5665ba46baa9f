//! The public tracking server.
//!
//! Shape: [`run`] takes an already-bound listener, the shared [`EdgeState`] and a shutdown
//! future (tests bind port 0 and pass a oneshot). Connections are accepted and served by the
//! process's one listener helper ([`openclick_http::serve`]); each request is answered by
//! [`EdgeState::handle`], synchronously, without waiting for anything (an open, with
//! [`ServerConfig::defer_opens`], is answered first and processed by the `openclick-opens`
//! thread: [`crate::defer`]). On shutdown: stop accepting, let in-flight requests finish up to
//! the drain deadline, process the deferred opens, then close the sink (off the runtime) up to
//! its own deadline, so nothing accepted is left only in memory.
//!
//! The admin listener is not here: it is `openclick-admin`, with its own accept loop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use openclick_common::LogLimiter;
use openclick_http::tls::TlsAcceptor;
use openclick_http::{text, Body, ConnConfig, ConnStats, Listener};
use openclick_sink::{Sink, SinkError};
use tokio::net::TcpListener;

use crate::defer::DeferredOpens;
use crate::metrics::EdgeMetrics;
use crate::pipeline::{self, Pipeline, Reply, Tracked};
use crate::window;

/// The 43-byte transparent 1x1 GIF89a.
pub const PIXEL_GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// The future of a route that reads a body or waits (`/u/`, `/w/`), boxed so that both fit one
/// service type; tracking hits take the unboxed, immediately ready path.
type BoxedReply =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How connections are served (timeouts, header limits).
    pub conn: ConnConfig,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// How long shutdown waits for the sink to flush.
    pub flush_timeout: Duration,
    /// Open hits answered at once and processed on a thread of their own this often
    /// ([`crate::defer`]); `None` processes every hit on its request thread.
    pub defer_opens: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            conn: ConnConfig::default(),
            drain_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(15),
            defer_opens: None,
        }
    }
}

/// Everything the tracking handler shares.
pub struct EdgeState {
    /// The request -> event function.
    pub pipeline: Pipeline,
    /// Where events go.
    pub sink: Arc<dyn Sink>,
    /// Hit and publish counters.
    pub metrics: EdgeMetrics,
    /// The public listener's connection counters.
    pub connections: Arc<ConnStats>,
    /// The HTTPS public listener's connection counters.
    pub https_connections: Arc<ConnStats>,
    /// Settings.
    pub config: ServerConfig,
    /// The unsubscribe routes (`/u/`), when configured.
    pub unsubscribe: Option<Arc<crate::unsubscribe::Unsubscribe>>,
    /// Opens waiting for the `openclick-opens` thread, when [`ServerConfig::defer_opens`].
    pub opens: Option<DeferredOpens>,
}

impl std::fmt::Debug for EdgeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeState")
            .field("pipeline", &self.pipeline)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EdgeState {
    /// Assembles the shared state.
    pub fn new(pipeline: Pipeline, sink: Arc<dyn Sink>, config: ServerConfig) -> Self {
        let opens = config
            .defer_opens
            .map(|every| DeferredOpens::new(pipeline.client_ip_config(), every));
        EdgeState {
            opens,
            pipeline,
            sink,
            metrics: EdgeMetrics::new(),
            connections: Arc::new(ConnStats::default()),
            https_connections: Arc::new(ConnStats::default()),
            config,
            unsubscribe: None,
        }
    }

    /// With the unsubscribe routes (`/u/`); without them, `/u/` is 404.
    pub fn with_unsubscribe(mut self, u: Arc<crate::unsubscribe::Unsubscribe>) -> Self {
        self.unsubscribe = Some(u);
        self
    }

    /// Answers one request on `/u/` (reads the body, then
    /// [`crate::unsubscribe::Unsubscribe::handle`]). The only handler that awaits.
    pub async fn handle_unsubscribe(
        &self,
        u: &crate::unsubscribe::Unsubscribe,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = if parts.method == Method::POST {
            match openclick_http::read_body(body, crate::unsubscribe::MAX_BODY).await {
                Ok(b) => b,
                Err(openclick_http::BodyError::TooLarge(_)) => {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n")
                }
                Err(_) => return text(StatusCode::BAD_REQUEST, "unreadable body\n"),
            }
        } else {
            Bytes::new()
        };
        u.handle(
            &self.pipeline,
            |e| self.publish_event(e),
            &parts,
            &body,
            peer.ip(),
        )
        .await
    }

    /// Handles one tracking request: decide, answer, hand the event to the sink.
    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &http::HeaderMap,
        peer: SocketAddr,
    ) -> Response<Body> {
        let start = Instant::now();
        let req = pipeline::Request {
            method,
            path,
            headers: headers.into(),
            peer: peer.ip(),
            now_ms: openclick_common::now_ms(),
        };
        if let Some(opens) = &self.opens {
            if DeferredOpens::defers(method, path) {
                // The answer is the pixel whatever the hit turns out to be (crate::defer).
                opens.push(&req, |r| self.process_hit(r));
                let reply = Reply::Pixel;
                let (route, status) = (
                    crate::metrics::route(pipeline::HitClass::OpenTracked),
                    crate::metrics::status_class(&reply),
                );
                let response = reply_response(reply);
                self.metrics.observe(route, status, start.elapsed());
                return response;
            }
        }
        let outcome = self.pipeline.process(&req);
        let (route, status) = (
            crate::metrics::route(outcome.class),
            crate::metrics::status_class(&outcome.reply),
        );
        let reply = self.settle(outcome, false);
        let response = reply_response(reply);
        self.metrics.observe(route, status, start.elapsed());
        response
    }

    /// Runs one deferred open through the pipeline, counts it and publishes its event. Always
    /// part of a batch ([`DeferredOpens::pass`]), so the event goes to the sink with
    /// [`Sink::publish_in_batch`].
    fn process_hit(&self, req: &pipeline::Request<'_>) {
        self.settle(self.pipeline.process(req), true);
    }

    /// Counts one processed hit and publishes (or holds) its event; returns the answer.
    fn settle(&self, outcome: pipeline::Outcome, in_batch: bool) -> Reply {
        self.metrics.hit(outcome.class);
        match (outcome.event, outcome.hold, self.pipeline.click_window()) {
            (Some(event), Some(hold), Some(window)) => {
                if let Err(event) = window.hold(hold, event) {
                    self.publish(&event);
                }
            }
            (Some(event), _, _) => {
                if in_batch {
                    self.published(&event, self.sink.publish_in_batch(&event.record));
                } else {
                    self.publish(&event);
                }
                // The record's buffers serve this thread's next hit.
                event.record.recycle();
            }
            (None, _, _) => {}
        }
        outcome.reply
    }

    /// Processes the deferred opens buffered so far (see [`crate::defer`]). Returns how many.
    pub fn process_deferred(&self) -> usize {
        match &self.opens {
            Some(opens) => opens.pass(&mut |r| self.process_hit(r)),
            None => 0,
        }
    }
}

/// Starts the `openclick-opens` thread when opens are deferred.
fn start_opens_thread(state: &Arc<EdgeState>) -> Option<std::thread::JoinHandle<()>> {
    state.opens.as_ref()?;
    let st = state.clone();
    let spawned = std::thread::Builder::new()
        .name("openclick-opens".into())
        .spawn(move || {
            if let Some(opens) = &st.opens {
                opens.run(|r| st.process_hit(r));
            }
        });
    match spawned {
        Ok(t) => Some(t),
        Err(e) => {
            // Without the thread, `push` processes on the request thread once told to stop.
            tracing::error!(error = %e, "cannot start the deferred-opens thread: processing opens inline");
            if let Some(o) = &state.opens {
                o.stop();
            }
            None
        }
    }
}

/// Stops the `openclick-opens` thread and processes what is left (shutdown, before the sink
/// closes).
fn stop_opens_thread(state: &EdgeState, thread: Option<std::thread::JoinHandle<()>>) -> usize {
    let Some(opens) = &state.opens else { return 0 };
    opens.stop();
    if let Some(t) = thread {
        t.thread().unpark();
        let _ = t.join();
    }
    state.process_deferred()
}

impl EdgeState {
    /// Hands one tracked hit's event to the sink, counting it.
    pub fn publish(&self, event: &Tracked) {
        self.published(event, self.sink.publish(&event.record));
    }

    /// Counts what the sink said of `event`.
    fn published(&self, event: &Tracked, result: Result<(), SinkError>) {
        match result {
            Ok(()) => self.metrics.event_signals(Some(&event.signals)),
            Err(e) => {
                self.metrics.publish_error(&e);
                log_publish_error(&e);
            }
        }
    }

    /// Hands one event built elsewhere (unsubscribes, page views) to the sink, counting it.
    pub fn publish_event(&self, event: &openclick_events::v1::EngagementEvent) {
        let tracked = Tracked::of(event);
        self.publish(&tracked);
        tracked.record.recycle();
    }

    /// Publishes the held clicks whose window ended by `now_ms` (see [`crate::window`]).
    pub fn release_due(&self, now_ms: i64) -> usize {
        match self.pipeline.click_window() {
            Some(w) => w.release_due(now_ms, |e| self.publish(&e)),
            None => 0,
        }
    }

    /// Publishes every held click now (shutdown).
    pub fn release_all(&self) -> usize {
        match self.pipeline.click_window() {
            Some(w) => w.release_all(|e| self.publish(&e)),
            None => 0,
        }
    }
}

/// Releases held clicks every [`window::TICK`] and sweeps the window every [`window::SWEEP`],
/// until `stop` says so.
async fn release_clicks(state: Arc<EdgeState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(window) = state.pipeline.click_window().cloned() else {
        return;
    };
    let mut tick = tokio::time::interval(window::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = openclick_common::now_ms();
        state.release_due(now);
        if last_sweep.elapsed() >= window::SWEEP {
            last_sweep = Instant::now();
            let w = window.clone();
            let _ = tokio::task::spawn_blocking(move || w.sweep(now)).await;
        }
    }
}

fn log_publish_error(e: &SinkError) {
    // One line per failure would flood the log during an outage; the counter carries the rate.
    static LOG: LogLimiter = LogLimiter::new(Duration::from_secs(1));
    if let Some(suppressed) = LOG.allow() {
        tracing::error!(error = %e, retryable = e.is_retryable(), suppressed, "sink refused an event");
    }
}

/// What a blocked link shows: no destination, no script, nothing fetched.
const GONE_PAGE: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Link disabled</title>\
<body style=\"font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em\">\
<h1>This link has been disabled</h1><p>The sender's link was turned off, so it no longer \
leads anywhere. If you expected something here, contact the sender another way.</p></body></html>\n";

static NO_STORE_PIXEL: HeaderValue =
    HeaderValue::from_static("no-store, no-cache, must-revalidate, private, max-age=0");

/// Builds the HTTP response for a [`Reply`].
pub fn reply_response(reply: Reply) -> Response<Body> {
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
        Reply::Gone => {
            let mut r = Response::new(Full::new(Bytes::from_static(GONE_PAGE.as_bytes())));
            *r.status_mut() = StatusCode::GONE;
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Reply::MethodNotAllowed => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
    }
}

/// Serves the tracking listener until `shutdown` resolves, then drains connections and closes
/// the sink. Returns once both are done (or their deadlines passed).
pub async fn run(listener: TcpListener, state: Arc<EdgeState>, shutdown: impl Future<Output = ()>) {
    run_with_https(listener, None, state, shutdown).await
}

/// [`run`], and with `https` (a bound listener and its TLS acceptor) an HTTPS listener beside
/// it: the same handler, connection lifecycle and caps, one drain.
pub async fn run_with_https(
    listener: TcpListener,
    https: Option<(TcpListener, TlsAcceptor)>,
    state: Arc<EdgeState>,
    shutdown: impl Future<Output = ()>,
) {
    let st = state.clone();
    let (stop_release, stop_rx) = tokio::sync::watch::channel(false);
    let replayer = state
        .unsubscribe
        .clone()
        .map(|u| tokio::spawn(u.replay(stop_rx.clone())));
    let releaser = tokio::spawn(release_clicks(state.clone(), stop_rx));
    let opens_thread = start_opens_thread(&state);
    let mut listeners = vec![Listener {
        name: "public",
        listener,
        tls: None,
        stats: state.connections.clone(),
    }];
    if let Some((listener, acceptor)) = https {
        listeners.push(Listener {
            name: "https",
            listener,
            tls: Some(acceptor),
            stats: state.https_connections.clone(),
        });
    }
    let drain = openclick_http::serve_all(
        listeners,
        &state.config.conn,
        move |peer| {
            let st = st.clone();
            service_fn(move |req: Request<Incoming>| {
                use futures_util::future::Either;
                let path = req.uri().path();
                // Tracking hits pay two prefix tests here, and no reference count.
                if path.starts_with("/u/") {
                    if let Some(u) = st.unsubscribe.clone() {
                        let st = st.clone();
                        let fut: BoxedReply = Box::pin(async move {
                            Ok::<_, Infallible>(st.handle_unsubscribe(&u, req, peer).await)
                        });
                        return Either::Right(fut);
                    }
                } else if crate::web::is_web_path(path) {
                    // The web routes read a body; the tracking routes answer at once.
                    let st = st.clone();
                    let fut: BoxedReply = Box::pin(async move {
                        Ok::<_, Infallible>(crate::web::serve(&st, req, peer).await)
                    });
                    return Either::Right(fut);
                }
                let resp = st.handle(req.method(), req.uri().path(), req.headers(), peer);
                Either::Left(std::future::ready(Ok::<_, Infallible>(resp)))
            })
        },
        shutdown,
    )
    .await;
    tracing::info!("shutting down: no longer accepting, draining connections");
    if !drain.drain(state.config.drain_timeout).await {
        tracing::warn!("drain deadline passed with connections still open");
    }
    // Deferred opens are processed now, before the sink closes (the join waits at most one
    // pass of the thread).
    let st = state.clone();
    let late = tokio::task::spawn_blocking(move || stop_opens_thread(&st, opens_thread))
        .await
        .unwrap_or(0);
    if late > 0 {
        tracing::info!(late, "deferred opens processed at shutdown");
    }
    // Clicks held for the behaviour window go to the sink now, before it closes.
    let _ = stop_release.send(true);
    let _ = releaser.await;
    if let Some(r) = replayer {
        let _ = r.await;
    }
    let released = state.release_all();
    if released > 0 {
        tracing::info!(released, "held clicks published at shutdown");
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
