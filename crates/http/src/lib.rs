//! HTTP serving, written once for every listener of the process (the public tracking listener
//! in `openclick-edge`, the admin listener in `openclick-admin`).
//!
//! - [`ConnConfig`] and [`builder`]: how a connection is served (HTTP/1.1 with keep-alive, or
//!   h2c when the client starts with the HTTP/2 preface; header size and count limits; the
//!   header read timeout).
//! - [`serve`]: the accept loop. It takes an already-bound listener (tests bind port 0) and a
//!   shutdown future, hands each connection to the builder with a service made for its peer
//!   address, and watches every connection with a graceful-shutdown tracker, which it returns
//!   when `shutdown` resolves so the caller can [`drain`] with its own deadline. Accept errors
//!   (EMFILE, ENFILE, ...) back off briefly and are logged at a bounded rate.
//! - [`text`], [`json`]: the small responses both planes answer with.
//!
//! Each listener runs its own accept loop: a flood on one never starves the other's accepts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use openclick_common::LogLimiter;
use tokio::net::TcpListener;

/// The response body type of every listener: one buffer.
pub type Body = Full<Bytes>;

/// How connections are served.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// How long a client may take to send its request headers (HTTP/1).
    pub header_read_timeout: Duration,
    /// Upper bound on the request head size (bytes).
    pub max_header_bytes: usize,
    /// Upper bound on the number of request headers.
    pub max_headers: usize,
    /// `TCP_NODELAY` on accepted sockets (replies are one small write).
    pub nodelay: bool,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            nodelay: true,
        }
    }
}

/// hyper-util's auto builder (HTTP/1.1 with keep-alive, or h2c by prior knowledge) with the
/// limits of `config`.
pub fn builder(config: &ConnConfig) -> auto::Builder<TokioExecutor> {
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

/// Accepts connections on `listener` and serves each with the service `make_service(peer)`
/// returns, until `shutdown` resolves. Returns the tracker of the connections still open:
/// pass it to [`drain`]. `name` labels log lines (`public`, `admin`).
pub async fn serve<M, S>(
    name: &'static str,
    listener: TcpListener,
    config: &ConnConfig,
    mut make_service: M,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown
where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let http = builder(config);
    let accept_log = LogLimiter::new(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        if let Some(suppressed) = accept_log.allow() {
                            tracing::warn!(listener = name, error = %e, suppressed, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if config.nodelay {
                    let _ = stream.set_nodelay(true);
                }
                let conn = http
                    .serve_connection(TokioIo::new(stream), make_service(peer))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        }
    }
    drop(listener);
    graceful
}

/// Waits for the connections `graceful` tracks to finish their in-flight requests (they are
/// told to close), up to `deadline`. Returns whether they all did.
pub async fn drain(graceful: GracefulShutdown, deadline: Duration) -> bool {
    tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_ok()
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
