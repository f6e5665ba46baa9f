//! openclick's HTTP edge.
//!
//! The edge answers every hit at once and never waits for Kafka:
//! - `GET|HEAD /o/{token}.gif` (or `/o/{token}`): always 200 with a 43-byte transparent GIF and
//!   no-cache headers. An invalid token still gets the pixel (an email must never show a broken
//!   image) but records no event.
//! - `GET|HEAD /c/{token}`: a valid token gets a 302 to its signed destination; an invalid or
//!   tampered one gets a 404 without `Location`. There is no open redirect: destinations come
//!   only from signed tokens.
//! - `GET|HEAD|POST /u/{token}`: one-click unsubscribe ([`unsubscribe`]), when configured.
//!
//! Code map:
//! - [`pipeline`]: request -> (reply, event) as a pure function: token check, suppression,
//!   enrichment, event building. No sockets.
//! - [`client_ip`]: the client address, believing one forwarding header, only from trusted
//!   proxies.
//! - [`limits`]: per-token replay and flood control (state handed to the pipeline).
//! - [`defer`]: open hits answered at once and run through the pipeline on a thread of their
//!   own a moment later (their answer never depends on the hit).
//! - [`server`]: the public tracking server: [`server::run`] on the shared listener helper
//!   (`openclick-http`) with graceful shutdown, response building.
//! - [`metrics`]: counters on the hot path, exported at scrape time by the admin listener.
//! - [`unsubscribe`]: `GET|POST /u/{token}`, RFC 8058 one-click unsubscribe into the
//!   suppression set through a `dyn SuppressionWriter` (the one route that waits for Kafka, by
//!   design, with a durable spool when it cannot).
//! - [`web`]: website activity after a click: the identity hand-off, `/w.js`, `/w/{token}`.
//!
//! The admin listener (`/metrics`, `/healthz`, `/readyz`, `/info`, the suppression API) is
//! its own component, `openclick-admin`, with its own accept loop.
//!
//! The edge hands events to an [`openclick_sink::Sink`]; it never names Kafka, and cannot: none
//! of its dependencies depends on rdkafka (`cargo tree -p openclick-edge -e normal`).

pub mod client_ip;
pub mod defer;
pub mod headers;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod unsubscribe;
pub mod web;
pub mod window;

pub use client_ip::{ClientIpConfig, ClientIpHeader};
pub use limits::{LimitConfig, ReplayLimiter};
pub use metrics::describe_metrics;
pub use pipeline::{HitClass, Limits, Outcome, Pipeline, Reply, SharedKeys};
pub use server::{run, run_with_https, EdgeState, ServerConfig, PIXEL_GIF};
