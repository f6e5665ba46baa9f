//! The admin listener's accept loop, and the thread it runs on.
//!
//! [`run`] serves until its shutdown future resolves, on whatever runtime polls it (tests run
//! it on theirs). [`spawn`] gives it an OS thread of its own (`openclick-admin`) with a
//! single-threaded tokio runtime, so neither a flood of public connections nor busy tracking
//! workers delay the health checks; [`AdminHandle::stop`] ends it. The admin plane stops last,
//! after the public listener has drained and the sink has flushed, so `/readyz` keeps saying
//! "draining" and `/metrics` stays scrapable during shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use openclick_http::ConnConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::Admin;

/// The thread's name: `serve`'s priority watcher leaves it at normal priority.
pub const THREAD_NAME: &str = "openclick-admin";

/// Serves the admin routes on `listener` until `shutdown` resolves; open connections then get
/// a second to finish.
pub async fn run(
    listener: TcpListener,
    admin: Arc<Admin>,
    conn: &ConnConfig,
    shutdown: impl Future<Output = ()>,
) {
    let stats = admin.connections.clone();
    let drain = openclick_http::serve(
        "admin",
        listener,
        conn,
        stats,
        move |_peer| {
            let admin = admin.clone();
            service_fn(move |req: Request<Incoming>| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(crate::routes::handle(&admin, req).await) }
            })
        },
        shutdown,
    )
    .await;
    drain.drain(Duration::from_secs(1)).await;
}

/// The admin plane running on its own thread.
#[derive(Debug)]
pub struct AdminHandle {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// Stops the admin listener and waits for its thread.
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

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Starts the admin plane on its own thread and runtime. `listener` is already bound (so a
/// bad address fails before anything starts) and is made non-blocking here.
pub fn spawn(
    listener: std::net::TcpListener,
    admin: Arc<Admin>,
    conn: ConnConfig,
) -> std::io::Result<AdminHandle> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "admin listener unusable");
                        return;
                    }
                };
                run(listener, admin, &conn, async {
                    let _ = rx.await;
                })
                .await;
            });
        })?;
    Ok(AdminHandle {
        stop: Some(tx),
        thread: Some(thread),
    })
}
