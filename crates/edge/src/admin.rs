//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/info`, and the suppression API
//! (`/v1/suppressions/...`, see [`crate::suppress_api`]).
//!
//! It listens on its own address so operators can firewall it away from the public tracking
//! listener.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::server::{text, EdgeState};

/// Answers one admin request.
pub async fn handle(state: &EdgeState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        p if p.starts_with(crate::suppress_api::PREFIX) => {
            crate::suppress_api::handle(state.suppress_api.as_ref(), req).await
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            // Not ready until the suppression set has caught up with its topic either.
            if state.is_ready() && state.pipeline.suppression().is_caught_up() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => {
            let body = state.metrics.render(|| {
                state.sink.export_metrics();
                state.export_extra_metrics();
            });
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/info" => {
            let body = serde_json::to_vec_pretty(&state.info).unwrap_or_default();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
