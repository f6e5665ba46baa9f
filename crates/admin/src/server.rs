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
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use openclick_http::thread::ThreadServer;
use openclick_http::ConnConfig;
use tokio::net::TcpListener;

use crate::Admin;

/// The thread's name: `serve`'s priority watcher leaves it at normal priority.
pub const THREAD_NAME: &str = "openclick-admin";

/// How long open admin connections get to finish at stop.
const GRACE: Duration = Duration::from_secs(1);

/// The admin routes as a hyper service, one per connection.
#[derive(Clone)]
struct AdminService(Arc<Admin>);

impl hyper::service::Service<Request<Incoming>> for AdminService {
    type Response = http::Response<openclick_http::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let admin = self.0.clone();
        Box::pin(async move { Ok(crate::routes::handle(&admin, req).await) })
    }
}

fn make_service(admin: Arc<Admin>) -> impl FnMut(std::net::SocketAddr) -> AdminService + Send {
    move |_peer| AdminService(admin.clone())
}

/// Serves the admin routes on `listener` until `shutdown` resolves; open connections then get
/// a second to finish.
pub async fn run(
    listener: TcpListener,
    admin: Arc<Admin>,
    conn: &ConnConfig,
    shutdown: impl Future<Output = ()>,
) {
    let stats = admin.connections.clone();
    openclick_http::thread::run(
        "admin",
        listener,
        conn,
        stats,
        GRACE,
        make_service(admin),
        shutdown,
    )
    .await;
}

/// The admin plane running on its own thread: [`ThreadServer::stop`] ends it.
pub type AdminHandle = ThreadServer;

/// Starts the admin plane on its own thread and runtime. `listener` is already bound (so a
/// bad address fails before anything starts) and is made non-blocking here.
pub fn spawn(
    listener: std::net::TcpListener,
    admin: Arc<Admin>,
    conn: ConnConfig,
) -> std::io::Result<AdminHandle> {
    let stats = admin.connections.clone();
    openclick_http::thread::spawn(
        THREAD_NAME,
        "admin",
        listener,
        conn,
        stats,
        GRACE,
        make_service(admin),
    )
}
