//! A listener served on an OS thread of its own, with a single-threaded tokio runtime: the
//! planes that must not share the public workers (the admin plane: health checks under a
//! flood; the sending API: CPU-heavy signing that must not delay tracking) run this way.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{Body, ConnConfig, ConnStats};

/// A listener running on its own thread; [`ThreadServer::stop`] (or dropping it) stops the
/// accept loop, gives open connections `grace` to finish, and joins the thread.
#[derive(Debug)]
pub struct ThreadServer {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadServer {
    /// Stops the listener and waits for its thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Serves `listener` (already bound, so a bad address fails before anything starts; made
/// non-blocking here) with [`crate::serve`] on a new thread named `thread_name`. `name`
/// labels log lines; `grace` is how long open connections get at stop.
pub fn spawn<M, S>(
    thread_name: &str,
    name: &'static str,
    listener: std::net::TcpListener,
    conn: ConnConfig,
    stats: Arc<ConnStats>,
    grace: Duration,
    make_service: M,
) -> std::io::Result<ThreadServer>
where
    M: FnMut(SocketAddr) -> S + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, listener = name, "listener unusable");
                        return;
                    }
                };
                let stop = async {
                    let _ = rx.await;
                };
                let drain = crate::serve(name, listener, &conn, stats, make_service, stop).await;
                drain.drain(grace).await;
            });
        })?;
    Ok(ThreadServer {
        stop: Some(tx),
        thread: Some(thread),
    })
}

/// Serves on the caller's runtime until `shutdown` (tests), then gives connections `grace`.
pub async fn run<M, S>(
    name: &'static str,
    listener: TcpListener,
    conn: &ConnConfig,
    stats: Arc<ConnStats>,
    grace: Duration,
    make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let drain = crate::serve(name, listener, conn, stats, make_service, shutdown).await;
    drain.drain(grace).await;
}
