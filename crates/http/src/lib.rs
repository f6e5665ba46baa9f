//! HTTP serving, written once for every listener of the process (the public tracking listener
//! in `openclick-edge`, the admin listener in `openclick-admin`), and the connection lifecycle
//! that keeps a public endpoint up under abuse.
//!
//! - [`ConnConfig`]: how a connection is served and bounded (see "Lifecycle" below).
//! - [`serve`]: the accept loop. It takes an already-bound listener (tests bind port 0), a
//!   [`ConnStats`] to count into and a shutdown future; it hands each connection to hyper with
//!   a service made for its peer address. When `shutdown` resolves it stops accepting and
//!   returns a [`Drain`], with which the caller tells open connections to finish and waits for
//!   them with its own deadline.
//! - [`serve_all`]: the same over several listeners sharing the caps and one drain, each
//!   plain or HTTPS ([`Listener`]); the public plane serves `--listen` and `--https-listen`
//!   with it.
//! - [`tls`]: HTTPS certificates from a directory, chosen by SNI, reloaded on change.
//! - [`thread`]: a listener on an OS thread and runtime of its own (admin, sending API).
//! - [`text`], [`json`]: the small responses the planes answer with; [`read_body`], a request
//!   body up to a limit.
//!
//! Each listener runs its own accept loop: a flood on one never starves the other's accepts.
//!
//! # Lifecycle: every connection is bounded
//!
//! - **HTTP/1.1 only by default**, served by hyper's HTTP/1 connection directly (no protocol
//!   sniffing). Its header read timeout ([`ConnConfig::header_read_timeout`]): a connection
//!   that starts no new request for that long is told to finish, so one that sends nothing,
//!   part of a request head (however slowly), or stays idle between keep-alive requests is
//!   closed between one and two timeouts after the accept or its last request (a request
//!   still in flight then is answered first, within [`ConnConfig::finish_grace`]). Counted as
//!   `header_timeout`. The check runs once per timeout per connection, not per request
//!   (hyper's own header timer arms a timer for every request head).
//! - **h2c (HTTP/2 by prior knowledge) is opt-in** ([`ConnConfig::http2`]). Browsers never
//!   speak cleartext HTTP/2 to a URL in an email; only a load balancer configured for h2c
//!   upstreams does, so it is off unless the operator asks. When on, the first bytes must show
//!   the protocol (the 24-byte HTTP/2 preface, or anything else for HTTP/1) within
//!   [`ConnConfig::first_byte_timeout`], or the connection is closed; an HTTP/2 connection is
//!   pinged every [`ConnConfig::h2_keepalive_interval`] and closed when a ping goes
//!   unanswered, and is told to go away (GOAWAY) after [`ConnConfig::idle_timeout`] without a
//!   request; a peer that ignores the GOAWAY is dropped [`ConnConfig::finish_grace`] later.
//! - **Maximum age** ([`ConnConfig::max_connection_age`], either protocol): a connection is
//!   told to finish (HTTP/1: close after the current response; HTTP/2: GOAWAY) once it is that
//!   old, so long-lived connections rebalance across replicas and none lives forever.
//! - **Connection caps**: at most [`ConnConfig::max_connections`] open at once, and optionally
//!   [`ConnConfig::max_connections_per_ip`] from one peer address. Past a cap, a new
//!   connection is accepted and closed at once (so the kernel's backlog does not fill with
//!   connections nobody will serve) and counted in [`ConnStats`]. The per-address cap counts
//!   the socket peer: behind a load balancer every connection comes from it, so leave it off
//!   there.
//! - **HTTPS** ([`Listener::tls`]): the TLS handshake must complete within
//!   [`ConnConfig::tls_handshake_timeout`] of the accept, or the connection is closed. ALPN
//!   chooses the protocol (`h2` is offered only with [`ConnConfig::http2`]; otherwise, and for a
//!   client that does not use ALPN, HTTP/1.1); then the connection is bounded as above (header
//!   deadline, PINGs, idle GOAWAY, maximum age, drain), counted from the end of the handshake.
//! - **Accept errors** (EMFILE, ENFILE, ...) back off 50 ms, are counted, and are logged at
//!   most once per 10 s with the number of lines held back.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use openclick_common::LogLimiter;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

pub mod thread;
pub mod tls;

/// The response body type of every listener: one buffer.
pub type Body = Full<Bytes>;

/// The HTTP/2 connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How connections are served and bounded. See the crate docs, "Lifecycle".
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// How long an HTTP/1 connection may go without starting a new request: it bounds a
    /// silent connection, a slow request head and an idle keep-alive connection (each closed
    /// within twice this; see the crate docs, "Lifecycle").
    pub header_read_timeout: Duration,
    /// Upper bound on the request head size (bytes).
    pub max_header_bytes: usize,
    /// Upper bound on the number of request header lines (HTTP/1); one more gets 431 and the
    /// connection is closed.
    pub max_headers: usize,
    /// `TCP_NODELAY` on accepted sockets (replies are one small write).
    pub nodelay: bool,
    /// Serve h2c (HTTP/2 by prior knowledge) besides HTTP/1.1.
    pub http2: bool,
    /// With `http2`: how long the first bytes (which tell the protocol) may take.
    pub first_byte_timeout: Duration,
    /// With `http2`: PING interval on HTTP/2 connections; a ping unanswered for as long closes
    /// the connection.
    pub h2_keepalive_interval: Duration,
    /// With `http2`: an HTTP/2 connection without a new request for this long is told to go
    /// away (checked every `idle_timeout`, so it closes within twice that).
    pub idle_timeout: Duration,
    /// A connection this old is told to finish. Zero: no limit.
    pub max_connection_age: Duration,
    /// How long a connection told to finish (idle, too old) may take before it is dropped:
    /// an HTTP/2 peer that ignores GOAWAY and PING does not keep it open.
    pub finish_grace: Duration,
    /// Most connections open at once. Zero: no limit.
    pub max_connections: usize,
    /// Most connections open at once from one peer address. Zero: no limit.
    pub max_connections_per_ip: usize,
    /// HTTPS: how long the TLS handshake may take from the accept.
    pub tls_handshake_timeout: Duration,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            nodelay: true,
            http2: false,
            first_byte_timeout: Duration::from_secs(10),
            h2_keepalive_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_connection_age: Duration::from_secs(600),
            finish_grace: Duration::from_secs(10),
            max_connections: 0,
            max_connections_per_ip: 0,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What happened to a listener's connections. Counters since start, and the open gauge.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Refused: the global cap was reached.
    pub refused_cap: AtomicU64,
    /// Refused: the peer address's cap was reached.
    pub refused_per_ip: AtomicU64,
    /// `accept` failed (EMFILE, ENFILE, ...).
    pub accept_errors: AtomicU64,
    /// Closed because the protocol did not show in time (h2c mode).
    pub closed_first_byte: AtomicU64,
    /// Told to finish: idle (HTTP/2).
    pub closed_idle: AtomicU64,
    /// Told to finish: no request head within the header read timeout (HTTP/1: silent, slow
    /// or idle keep-alive connections).
    pub closed_header_timeout: AtomicU64,
    /// Told to finish: too old.
    pub closed_age: AtomicU64,
    /// HTTPS: closed because the TLS handshake did not complete in time.
    pub closed_tls_handshake_timeout: AtomicU64,
    /// HTTPS: the TLS handshake failed (no common protocol or cipher, not TLS, reset, ...).
    pub tls_handshake_errors: AtomicU64,
}

/// Describes (`# HELP`) every series [`ConnStats::export`] emits; run once per recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "openclick_connections_accepted_total",
        "Connections accepted, by listener (public, https, admin)."
    );
    describe_gauge!(
        "openclick_connections_open",
        "Connections open now, by listener (public, https, admin)."
    );
    describe_counter!(
        "openclick_connections_refused_total",
        "Connections closed at once because a cap was reached, by listener and reason (cap: --max-connections, per_ip_cap: --max-connections-per-ip)."
    );
    describe_counter!(
        "openclick_accept_errors_total",
        "accept(2) failures (EMFILE, ENFILE, ...), by listener; the loop backs off after each."
    );
    describe_counter!(
        "openclick_connections_closed_total",
        "Connections the server ended, by listener and reason (header_timeout, first_byte_timeout, idle, max_age, tls_handshake_timeout, tls_handshake_error)."
    );
    describe_gauge!(
        "openclick_tls_certificates",
        "HTTPS certificates being served (--tls-cert-dir); 0 means HTTPS handshakes fail."
    );
    describe_counter!(
        "openclick_tls_reloads_total",
        "HTTPS certificate reloads after their files changed, by result (ok, error: the old certificate is kept)."
    );
}

impl ConnStats {
    /// Emits the series through the `metrics` macros, labelled with `listener`.
    pub fn export(&self, listener: &'static str) {
        use metrics::{counter, gauge};
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter!("openclick_connections_accepted_total", "listener" => listener)
            .absolute(get(&self.accepted));
        gauge!("openclick_connections_open", "listener" => listener).set(get(&self.open) as f64);
        for (reason, c) in [
            ("cap", &self.refused_cap),
            ("per_ip_cap", &self.refused_per_ip),
        ] {
            counter!("openclick_connections_refused_total", "listener" => listener, "reason" => reason)
                .absolute(get(c));
        }
        counter!("openclick_accept_errors_total", "listener" => listener)
            .absolute(get(&self.accept_errors));
        for (reason, c) in [
            ("first_byte_timeout", &self.closed_first_byte),
            ("idle", &self.closed_idle),
            ("header_timeout", &self.closed_header_timeout),
            ("max_age", &self.closed_age),
            ("tls_handshake_timeout", &self.closed_tls_handshake_timeout),
            ("tls_handshake_error", &self.tls_handshake_errors),
        ] {
            counter!("openclick_connections_closed_total", "listener" => listener, "reason" => reason)
                .absolute(get(c));
        }
    }
}

/// Open connections per peer address, for the per-address cap.
#[derive(Default)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's hold on the caps: released when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    per_ip: Option<(Arc<PerIp>, IpAddr)>,
    stats: Arc<ConnStats>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        if let Some((map, ip)) = &self.per_ip {
            let mut m = map.open.lock();
            if let Some(n) = m.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(ip);
                }
            }
        }
    }
}

/// Open connections, to be told to finish and waited for at shutdown.
pub struct Drain {
    stop: watch::Sender<bool>,
    permits: Arc<Semaphore>,
    total: u32,
}

impl Drain {
    /// Tells every open connection to finish its in-flight requests and close, then waits for
    /// them, up to `deadline`. Returns whether they all did.
    pub async fn drain(self, deadline: Duration) -> bool {
        let _ = self.stop.send(true);
        tokio::time::timeout(deadline, self.permits.acquire_many(self.total))
            .await
            .is_ok()
    }
}

/// The caps and the stop signal the accept loops of one [`serve`] / [`serve_all`] share.
struct Shared {
    config: Arc<ConnConfig>,
    permits: Arc<Semaphore>,
    per_ip: Option<Arc<PerIp>>,
    total: u32,
    stop: watch::Sender<bool>,
}

impl Shared {
    fn new(config: &ConnConfig) -> Shared {
        // Semaphore permits are u32; "no limit" is a cap no process reaches.
        let total = match config.max_connections {
            0 => 1 << 28,
            n => u32::try_from(n).unwrap_or(1 << 28).min(1 << 28),
        };
        Shared {
            config: Arc::new(config.clone()),
            permits: Arc::new(Semaphore::new(total as usize)),
            per_ip: (config.max_connections_per_ip > 0).then(|| Arc::new(PerIp::default())),
            total,
            stop: watch::channel(false).0,
        }
    }

    fn into_drain(self) -> Drain {
        Drain {
            stop: self.stop,
            permits: self.permits,
            total: self.total,
        }
    }
}

/// One listener of [`serve_all`].
pub struct Listener {
    /// Labels log lines (`public`, `https`, `admin`).
    pub name: &'static str,
    /// The bound socket.
    pub listener: TcpListener,
    /// HTTPS: the TLS acceptor ([`tls::CertStore::acceptor`]). `None`: plain HTTP.
    pub tls: Option<tls::TlsAcceptor>,
    /// Where this listener's connections are counted.
    pub stats: Arc<ConnStats>,
}

/// Accepts connections on `listener` and serves each with the service `make_service(peer)`
/// returns, within the bounds of `config`, until `shutdown` resolves. Returns the [`Drain`]
/// of the connections still open. `name` labels log lines (`public`, `admin`).
pub async fn serve<M, S>(
    name: &'static str,
    listener: TcpListener,
    config: &ConnConfig,
    stats: Arc<ConnStats>,
    make_service: M,
    shutdown: impl Future<Output = ()>,
) -> Drain
where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let shared = Shared::new(config);
    let l = Listener {
        name,
        listener,
        tls: None,
        stats,
    };
    accept_loop(l, &shared, make_service, shutdown).await;
    shared.into_drain()
}

/// [`serve`] on several listeners at once, each with its own accept loop, sharing
/// `config`'s connection caps (a connection counts against them whichever listener took it)
/// and one [`Drain`]. Used for a plain and an HTTPS listener serving the same routes.
pub async fn serve_all<M, S>(
    listeners: Vec<Listener>,
    config: &ConnConfig,
    make_service: M,
    shutdown: impl Future<Output = ()>,
) -> Drain
where
    M: FnMut(SocketAddr) -> S + Clone + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let shared = Arc::new(Shared::new(config));
    let (down_tx, down_rx) = watch::channel(false);
    let mut listeners = listeners.into_iter();
    let first = listeners.next();
    let mut loops = Vec::new();
    for l in listeners {
        let (shared, make_service, mut down) =
            (shared.clone(), make_service.clone(), down_rx.clone());
        loops.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = down.wait_for(|d| *d).await;
            };
            accept_loop(l, &shared, make_service, shutdown).await;
        }));
    }
    // The first listener's loop runs in the caller's task (for the public plane, the main
    // thread, as with [`serve`]); the others are tasks.
    match first {
        Some(l) => accept_loop(l, &shared, make_service, shutdown).await,
        None => shutdown.await,
    }
    let _ = down_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    match Arc::try_unwrap(shared) {
        Ok(s) => s.into_drain(),
        // Every loop has returned and dropped its clone; this arm is never taken.
        Err(s) => Drain {
            stop: s.stop.clone(),
            permits: s.permits.clone(),
            total: s.total,
        },
    }
}

async fn accept_loop<M, S>(
    l: Listener,
    shared: &Shared,
    mut make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let Listener {
        name,
        listener,
        tls,
        stats,
    } = l;
    let config = &shared.config;
    let accept_log = LogLimiter::new(Duration::from_secs(10));
    let cap_log = LogLimiter::new(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                        if let Some(suppressed) = accept_log.allow() {
                            tracing::warn!(listener = name, error = %e, suppressed,
                                "accept failed; backing off");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
                    stats.refused_cap.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = cap_log.allow() {
                        tracing::warn!(listener = name, max = config.max_connections, suppressed,
                            "connection cap reached: closing new connections");
                    }
                    drop(stream);
                    continue;
                };
                let per_ip_slot = match &shared.per_ip {
                    None => None,
                    Some(map) => {
                        let ip = peer.ip();
                        let mut m = map.open.lock();
                        let n = m.entry(ip).or_insert(0);
                        if *n >= config.max_connections_per_ip {
                            drop(m);
                            stats.refused_per_ip.fetch_add(1, Ordering::Relaxed);
                            drop(stream);
                            continue;
                        }
                        *n += 1;
                        Some((map.clone(), ip))
                    }
                };
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                stats.open.fetch_add(1, Ordering::Relaxed);
                let slot = Slot { _permit: permit, per_ip: per_ip_slot, stats: stats.clone() };
                if config.nodelay {
                    let _ = stream.set_nodelay(true);
                }
                let svc = make_service(peer);
                let (config, stats, stop) =
                    (config.clone(), stats.clone(), shared.stop.subscribe());
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_plain(stream, svc, &config, &stats, stop).await,
                        Some(tls) => serve_tls(stream, &tls, svc, &config, &stats, stop).await,
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
}

/// The hyper connection types, as one: a future that can be told to finish.
trait Finishable: Future<Output = hyper::Result<()>> {
    fn finish(self: Pin<&mut Self>);
}

impl<I, S> Finishable for hyper::server::conn::http1::Connection<TokioIo<I>, S>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Finishable for hyper::server::conn::http2::Connection<TokioIo<I>, S, TokioExecutor>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = Body>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// A plain connection: HTTP/1.1, or with `http2` whatever its first bytes show.
async fn serve_plain<S>(
    stream: TcpStream,
    svc: S,
    config: &ConnConfig,
    stats: &ConnStats,
    stop: watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let h2 = if config.http2 {
        match tokio::time::timeout(config.first_byte_timeout, starts_with_h2_preface(&stream)).await
        {
            Ok(Ok(Some(h2))) => h2,
            Ok(Ok(None)) | Ok(Err(_)) => return, // closed before a byte, or a socket error
            Err(_) => {
                stats.closed_first_byte.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    } else {
        false
    };
    serve_connection(stream, h2, svc, config, stats, stop).await;
}

/// An HTTPS connection: the handshake within its deadline (or until shutdown), then the
/// protocol ALPN chose.
async fn serve_tls<S>(
    stream: TcpStream,
    acceptor: &tls::TlsAcceptor,
    svc: S,
    config: &ConnConfig,
    stats: &ConnStats,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let handshake = tokio::time::timeout(config.tls_handshake_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => {
                stats.tls_handshake_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {
                stats.closed_tls_handshake_timeout.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
        // Shutdown: a connection that has not finished its handshake has no request to finish.
        _ = stop.wait_for(|s| *s) => return,
    };
    let h2 = config.http2 && stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_connection(stream, h2, svc, config, stats, stop).await;
}

async fn serve_connection<I, S>(
    stream: I,
    h2: bool,
    svc: S,
    config: &ConnConfig,
    stats: &ConnStats,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let io = TokioIo::new(stream);
    if h2 {
        let requests = Arc::new(Requests::default());
        let svc = Counted {
            inner: svc,
            requests: requests.clone(),
        };
        let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        b.timer(TokioTimer::new())
            .max_header_list_size(config.max_header_bytes as u32)
            .max_concurrent_streams(256)
            .keep_alive_interval(config.h2_keepalive_interval)
            .keep_alive_timeout(config.h2_keepalive_interval);
        let conn = b.serve_connection(io, svc);
        let idle = Quiet {
            requests: &requests,
            every: config.idle_timeout,
            reason: Finish::Idle,
        };
        drive(conn, config, stats, stop, Some(idle)).await;
    } else {
        // The header read timeout is the lifecycle's (`Quiet` below), not hyper's: hyper's
        // arms a boxed tokio timer for every request head (about 0.1 us a request at
        // saturation, BENCHMARKS.md, session 19).
        let mut b = hyper::server::conn::http1::Builder::new();
        // One write(2) per response: the head and the body (a 43-byte pixel, a short page) are
        // copied into one buffer instead of a writev(2) of two. Measured at saturation: the
        // worker 0.5-0.6 us a request cheaper (BENCHMARKS.md, session 19).
        b.max_buf_size(config.max_header_bytes.max(8192))
            .writev(false)
            .keep_alive(true);
        // Up to hyper's own limit, hyper parses into an uninitialised array and the count is
        // checked here ([`HeaderCap`]); given a limit, hyper initialises an array that long for
        // every request (0.2-0.3 us a request in the worker's profile, BENCHMARKS.md).
        if config.max_headers > HYPER_MAX_HEADERS {
            b.max_headers(config.max_headers);
        }
        let requests = Arc::new(Requests::default());
        let svc = HeaderCap {
            inner: svc,
            max: config.max_headers,
            requests: requests.clone(),
        };
        let conn = b.serve_connection(io, svc);
        let head = Quiet {
            requests: &requests,
            every: config.header_read_timeout,
            reason: Finish::HeaderTimeout,
        };
        drive(conn, config, stats, stop, Some(head)).await;
    }
}

/// Why a connection was told to finish.
#[derive(Clone, Copy)]
enum Finish {
    Shutdown,
    Age,
    /// HTTP/2: no new request within the idle timeout.
    Idle,
    /// HTTP/1: no new request head within the header read timeout.
    HeaderTimeout,
}

/// A connection without a new request for `every` is told to finish, for `reason`. Checked
/// every `every` against the count of requests, so it finishes between one and two `every`
/// after its last request began (or after the accept).
struct Quiet<'a> {
    requests: &'a Requests,
    every: Duration,
    reason: Finish,
}

/// Polls a connection to its end, telling it to finish at shutdown, at its maximum age and
/// when it is quiet for too long (`quiet`: HTTP/1's header read timeout, HTTP/2's idle
/// timeout).
///
/// The connection is polled on every wake-up of the task; the lifecycle (the stop signal and
/// the timers) only when one of its own wakers fired ([`WakeFlag`]). A `tokio::select!` over
/// both polls every branch on every wake-up: for a keep-alive connection that is the stop
/// watch and two timers once per request, 0.1-0.2 us a request at saturation
/// (BENCHMARKS.md, session 19).
async fn drive<C: Finishable>(
    conn: C,
    config: &ConnConfig,
    stats: &ConnStats,
    mut stop: watch::Receiver<bool>,
    quiet: Option<Quiet<'_>>,
) {
    tokio::pin!(conn);
    let far = Duration::from_secs(365 * 24 * 3600);
    let max_age = if config.max_connection_age.is_zero() {
        far
    } else {
        config.max_connection_age
    };
    let (requests, quiet_every, quiet_reason) = match quiet {
        Some(q) if !q.every.is_zero() => (Some(q.requests), q.every, q.reason),
        _ => (None, far, Finish::Idle),
    };
    let lifecycle = async move {
        let age = tokio::time::sleep(max_age);
        tokio::pin!(age);
        let mut quiet =
            tokio::time::interval_at(tokio::time::Instant::now() + quiet_every, quiet_every);
        let mut seen = 0u64;
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Finish::Shutdown;
                    }
                }
                _ = &mut age => return Finish::Age,
                _ = quiet.tick() => {
                    let now = requests.map_or(0, |r| r.started.load(Ordering::Relaxed));
                    if now == seen {
                        return quiet_reason;
                    }
                    seen = now;
                }
            }
        }
    };
    tokio::pin!(lifecycle);
    let flag = Arc::new(WakeFlag::default());
    let flag_waker = std::task::Waker::from(flag.clone());
    // Armed once the connection is told to finish (idle, age): then it is dropped.
    let mut grace: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut finishing = false;
    std::future::poll_fn(|cx| {
        if !finishing && flag.take(cx) {
            let mut lcx = std::task::Context::from_waker(&flag_waker);
            if let std::task::Poll::Ready(why) = lifecycle.as_mut().poll(&mut lcx) {
                finishing = true;
                conn.as_mut().finish();
                let counter = match why {
                    // Shutdown: the caller's drain deadline bounds the wait.
                    Finish::Shutdown => None,
                    Finish::Age => Some(&stats.closed_age),
                    Finish::Idle => Some(&stats.closed_idle),
                    Finish::HeaderTimeout => Some(&stats.closed_header_timeout),
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Ordering::Relaxed);
                    // HTTP/1 with nothing being answered (a silent connection, a partial head,
                    // an idle one): closed now, as hyper's own timeout would.
                    if matches!(why, Finish::HeaderTimeout)
                        && requests.is_some_and(Requests::none_in_flight)
                    {
                        return std::task::Poll::Ready(());
                    }
                    // Told to finish: dropped if it has not within the grace.
                    grace = Some(Box::pin(tokio::time::sleep(config.finish_grace)));
                }
            }
        }
        if conn.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(());
        }
        match grace.as_mut() {
            Some(g) => g.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        }
    })
    .await
}

/// Tells whether a sub-future of a task woke it: its waker sets the flag and wakes the task.
struct WakeFlag {
    woken: std::sync::atomic::AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl Default for WakeFlag {
    fn default() -> Self {
        WakeFlag {
            // Polled once at the start, to arm its timers.
            woken: std::sync::atomic::AtomicBool::new(true),
            task: futures_util::task::AtomicWaker::new(),
        }
    }
}

impl WakeFlag {
    /// Registers the task's waker, then takes the flag: whether the sub-future is to be polled.
    /// (Registered first, so a wake between the two is not lost.)
    fn take(&self, cx: &std::task::Context<'_>) -> bool {
        self.task.register(cx.waker());
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl std::task::Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Waits for the first bytes and tells whether they are the HTTP/2 preface (`Some(true)`),
/// something else (`Some(false)`: HTTP/1), or nothing because the peer closed (`None`). Peeks
/// only: hyper reads the bytes again.
async fn starts_with_h2_preface(stream: &TcpStream) -> std::io::Result<Option<bool>> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(false));
        }
        if n == buf.len() {
            return Ok(Some(true));
        }
        // A prefix of the preface: more is on its way (or never comes, and the caller's
        // deadline ends it). `peek` returns at once while data waits, so pause between looks.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many header lines hyper's HTTP/1 parser accepts when not given a limit (hyper's
/// `DEFAULT_MAX_HEADERS`); more are refused with 431 by hyper itself.
const HYPER_MAX_HEADERS: usize = 100;

/// Refuses an HTTP/1 request with more than `max` header lines with 431 and closes its
/// connection, as hyper does past its own limit.
/// Also counts the requests begun and answered (the header read timeout, [`Quiet`]).
struct HeaderCap<S> {
    inner: S,
    max: usize,
    requests: Arc<Requests>,
}

/// Requests of one connection: begun (handed to the service) and answered (its future done).
#[derive(Default)]
struct Requests {
    started: AtomicU64,
    answered: AtomicU64,
}

impl Requests {
    fn none_in_flight(&self) -> bool {
        self.started.load(Ordering::Relaxed) == self.answered.load(Ordering::Relaxed)
    }
}

pin_project_lite::pin_project! {
    /// A service's future that counts itself answered when done.
    struct Answered<F> {
        #[pin]
        inner: F,
        requests: Arc<Requests>,
    }
}

impl<F: Future> Future for Answered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        this.requests.answered.fetch_add(1, Ordering::Relaxed);
        std::task::Poll::Ready(out)
    }
}

impl<S> Service<Request<Incoming>> for HeaderCap<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        Answered<S::Future>,
        std::future::Ready<Result<Response<Body>, Infallible>>,
    >;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        use futures_util::future::Either;
        self.requests.started.fetch_add(1, Ordering::Relaxed);
        // One entry per header line: `HeaderMap::len` counts values, not names.
        if req.headers().len() > self.max {
            let mut r = text(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many headers\n",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            self.requests.answered.fetch_add(1, Ordering::Relaxed);
            return Either::Right(std::future::ready(Ok(r)));
        }
        Either::Left(Answered {
            inner: self.inner.call(req),
            requests: self.requests.clone(),
        })
    }
}

/// A service that counts the requests it is called for (the HTTP/2 idle check).
struct Counted<S> {
    inner: S,
    requests: Arc<Requests>,
}

impl<S: Service<Request<Incoming>>> Service<Request<Incoming>> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.requests.started.fetch_add(1, Ordering::Relaxed);
        self.inner.call(req)
    }
}

/// Raises the soft limit on open files to the hard limit (Linux and other Unix), so the
/// connection caps, not the descriptor table, bound the process. Returns the limit in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    raise_nofile()
}

#[cfg(unix)]
fn raise_nofile() -> std::io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if let Some(hard) = lim.maximum {
        if lim.current != Some(hard) {
            lim.current = Some(hard);
            setrlimit(Resource::Nofile, lim).map_err(std::io::Error::from)?;
        }
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

#[cfg(not(unix))]
fn raise_nofile() -> std::io::Result<u64> {
    Ok(u64::MAX)
}

/// A plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON response (the body is already JSON).
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit (answer 413).
    #[error("body over {0} bytes")]
    TooLarge(usize),
    /// The connection failed mid-body (answer 400).
    #[error("could not read the body")]
    Read,
}

impl BodyError {
    /// Whether sending the request again could succeed: only after a read failure.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BodyError::Read)
    }

    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Read => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(limit)),
        Err(_) => Err(BodyError::Read),
    }
}
