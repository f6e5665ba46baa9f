//! The admin routes: `/healthz`, `/readyz`, `/metrics`, `/info`, and the suppression API
//! (`/v1/suppressions/...`, see [`crate::suppress_api`]).
//!
//! They are served on their own listener (`--admin-listen`) so operators can firewall them
//! away from the public tracking listener.

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use openclick_http::{json, text, Body};

use crate::Admin;

/// Answers one admin request.
pub async fn handle(admin: &Admin, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        p if p.starts_with(crate::suppress_api::PREFIX) => {
            crate::suppress_api::handle(admin.suppressions.as_ref(), req).await
        }
        p if p.starts_with(crate::blocks_api::PREFIX) => {
            crate::blocks_api::handle(admin.suppressions.as_ref(), req).await
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readyz(admin),
        "/metrics" => {
            let mut r = Response::new(http_body_util::Full::new(Bytes::from(
                admin.metrics.render(|| admin.connections.export("admin")),
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/info" => json(
            StatusCode::OK,
            serde_json::to_vec_pretty(&admin.info).unwrap_or_default(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `200 ready`, or `503 not ready: <what>` naming the failing checks.
fn readyz(admin: &Admin) -> Response<Body> {
    let failing = admin.readiness.failing();
    if failing.is_empty() {
        return text(StatusCode::OK, "ready\n");
    }
    let mut r = Response::new(http_body_util::Full::new(Bytes::from(format!(
        "not ready: {}\n",
        failing.join(", ")
    ))));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
