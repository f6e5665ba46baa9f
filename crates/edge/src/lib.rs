//! openclick's HTTP edge.
//!
//! The edge answers every hit at once and never waits for Kafka:
//! - `GET|HEAD /o/{token}.gif` (or `/o/{token}`): always 200 with a 43-byte transparent GIF and
//!   no-cache headers. An invalid token still gets the pixel (an email must never show a broken
//!   image) but records no event.
//! - `GET|HEAD /c/{token}`: a valid token gets a 302 to its signed destination; an invalid or
//!   tampered one gets a 404 without `Location`. There is no open redirect: destinations come
//!   only from signed tokens.
//!
//! Code map:
//! - [`pipeline`]: request -> (reply, event) as a pure function: token check, suppression,
//!   enrichment, event building. No sockets.
//! - [`client_ip`]: the client address, believing forwarding headers only from trusted proxies.
//! - [`server`]: hyper 1.x servers, [`server::run`] with graceful shutdown, response building.
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz`, `/info` on the admin listener.
//! - [`suppress_api`]: `/v1/suppressions/...` on the admin listener (bearer token).
//! - [`metrics`]: counters on the hot path, exported per component at scrape time.
//!
//! The edge hands events to an [`openclick_sink::Sink`]; it never names Kafka.

pub mod admin;
pub mod client_ip;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod suppress_api;

pub use pipeline::{HitClass, Outcome, Pipeline, Reply};
pub use server::{run, EdgeState, Info, ServerConfig, PIXEL_GIF};
