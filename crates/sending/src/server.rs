//! The sending listener on a thread and runtime of its own ([`openclick_http::thread`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use openclick_http::thread::ThreadServer;
use openclick_http::{ConnConfig, ConnStats};

use crate::SendingApi;

/// The thread's name.
pub const THREAD_NAME: &str = "openclick-sending";
/// How long requests in flight get to finish at stop (a large rewrite takes seconds).
const GRACE: Duration = Duration::from_secs(10);

/// The routes as a hyper service, one per connection.
#[derive(Clone)]
pub struct SendingService(Arc<SendingApi>);

impl hyper::service::Service<Request<Incoming>> for SendingService {
    type Response = http::Response<openclick_http::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { Ok(crate::routes::handle(&api, req).await) })
    }
}

/// Serves the API on `listener` (already bound) on its own thread until the handle stops.
pub fn spawn(
    listener: std::net::TcpListener,
    api: Arc<SendingApi>,
    conn: ConnConfig,
    stats: Arc<ConnStats>,
) -> std::io::Result<ThreadServer> {
    openclick_http::thread::spawn(
        THREAD_NAME,
        "sending",
        listener,
        conn,
        stats,
        GRACE,
        move |_peer| SendingService(api.clone()),
    )
}
