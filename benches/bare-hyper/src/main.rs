//! The baseline of `benches/e2e.sh`: the least a hyper 1.x server can do for a pixel hit.
//!
//! Every request, whatever its path, gets 200 with the same 43-byte GIF and the same no-cache
//! headers openclick sends, over HTTP/1.1 keep-alive on a multi-thread tokio runtime. No token
//! check, no enrichment, no Kafka: the gap between this and `openclick serve` is the price of
//! the pipeline.
//!
//! Usage: `openclick-bare-hyper [LISTEN=127.0.0.1:8081] [WORKERS=0 (one per core)]`. With
//! `BARE_HYPER_AUTO=1` it serves connections the way `openclick serve` does (hyper-util's auto
//! builder, header read timeout, graceful-shutdown watch), still without the pipeline; with
//! `BARE_HYPER_FLAT=1` it writes each response with one `write(2)` as `openclick serve` does
//! (hyper's `writev(false)`), to show what that knob alone is worth.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;

/// The same 43-byte transparent GIF89a openclick serves.
const PIXEL_GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

fn pixel() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(PIXEL_GIF)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, private, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    r
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        rt.worker_threads(workers);
    }
    rt.enable_all().build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        eprintln!("bare hyper listening on {}", listener.local_addr()?);
        let auto_like_openclick = std::env::var_os("BARE_HYPER_AUTO").is_some();
        let header_timer = std::env::var_os("BARE_HYPER_TIMER").is_some();
        let flat_writes = std::env::var_os("BARE_HYPER_FLAT").is_some();
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(10))
            .keep_alive(true);
        let graceful = GracefulShutdown::new();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(a) => a,
                Err(_) => continue,
            };
            let _ = stream.set_nodelay(true);
            let svc = service_fn(|_req| std::future::ready(Ok::<_, Infallible>(pixel())));
            if auto_like_openclick {
                // The connection setup `openclick serve` uses (HTTP/1.1 or h2c auto-detection,
                // a header read timeout on a tokio timer, graceful-shutdown watch): isolates
                // the server plumbing's share of the gap from the pipeline's.
                let conn = auto
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            } else {
                tokio::spawn(async move {
                    let mut b = http1::Builder::new();
                    b.keep_alive(true);
                    if flat_writes {
                        // What `openclick serve` does: the head and the body in one buffer,
                        // one write(2) instead of a writev(2) of two.
                        b.writev(false);
                    }
                    if header_timer {
                        // What a server needs against slow headers (slowloris): hyper's header
                        // read timeout, which arms a tokio timer per request.
                        b.timer(TokioTimer::new())
                            .header_read_timeout(std::time::Duration::from_secs(10));
                    }
                    let _ = b.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        }
    })
}
