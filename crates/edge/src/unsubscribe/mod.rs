//! `/u/{token}`: one-click unsubscribe (RFC 8058) that link scanners cannot trigger, wired to
//! the suppression set.
//!
//! - `POST /u/{token}` with the form body `List-Unsubscribe=One-Click` (what a mailbox provider
//!   sends for the message's `List-Unsubscribe-Post` header, urlencoded or multipart): the
//!   opt-out is applied to the local set at once, then made durable before the answer: written
//!   through the same [`SuppressionWriter`] the admin API uses (for Kafka: acknowledged by the
//!   broker) within [`UnsubscribeConfig::ack_timeout`], or else appended, fsynced, to the
//!   unsubscribe spool (below) and replayed. Answer 200, no cookie, no redirect. Idempotent: a
//!   scope already suppressed answers 200 and writes nothing. The page's button posts the same
//!   body plus `via=page`, and gets a confirmation page with an undo button.
//! - `GET|HEAD /u/{token}`: a small confirmation page (plain HTML, no script, under 5 KB, the
//!   tenant's name and colours from [`UnsubscribeConfig::brands`]) whose button POSTs. **A GET
//!   never changes state**, so a scanner that fetches every link of a message unsubscribes no
//!   one, whatever its user agent. Nothing here is bot-gated: mailbox providers POST from their
//!   own servers.
//! - `POST /u/{undo-token}` with `action=undo`: within [`UnsubscribeConfig::undo_window_ms`] of
//!   the unsubscribe (the undo token's `issued_at_ms`), re-subscribes what that unsubscribe
//!   suppressed. The edge mints an undo token only when the unsubscribe created the entry, and
//!   the undo removes it only while it is still an opt-out: an earlier or later restriction,
//!   erasure, complaint... of the same scope is never lifted.
//! - A tampered, unknown or wrong-kind token: 404, nothing written or published.
//!
//! Each unsubscribe (and undo) publishes an `EVENT_TYPE_UNSUBSCRIBE` (`EVENT_TYPE_RESUBSCRIBE`)
//! event through the sink, enriched like a click, with its scope (`list_id`) and method: the one
//! documented exception to "suppressed contacts produce no event".
//!
//! # Scope
//! The token's `list_id` is the scope: empty, the contact across the tenant
//! ([`Scope::Contact`]: every hit of that contact stops producing events, on every replica once
//! the follower reads the record, here at once); not empty, the contact for that list only
//! ([`Scope::ContactInList`], which hits do not consult: see `openclick_suppress`).
//!
//! # The unsubscribe spool
//! One NDJSON file (`ChangeLine`s, the admin batch format), appended and fsynced under a mutex
//! by the request that could not get the writer's acknowledgement in time. A background task
//! ([`Unsubscribe::replay`]) writes its lines through the writer every second, in order, and
//! once they are acknowledged removes them (rewrite to a temporary file, fsync, rename). At start
//! its pending lines are applied to the local set, so a restart during an outage keeps them in
//! force. Delivery is at least once (a timed-out write may still land; the record is the same).
//!
//! The decision ([`Unsubscribe::decide`]) is a pure function of the request, the clock and the
//! state handed in, like [`crate::pipeline`]; only [`Unsubscribe::handle`] awaits (the writer,
//! never holding a lock).

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{header, HeaderMap, Method, Response, StatusCode};
use openclick_enrich::HitKind;
use openclick_events::v1::{EngagementEvent, EventType, UnsubscribeMethod};
use openclick_http::Body;
use openclick_suppress::{Change, Reason, Scope, SuppressionSet, SuppressionWriter};
use openclick_token::{Claims, TokenKind};

use crate::pipeline::{event_id, pb_channel, Pipeline};

mod config;
mod page;
mod spool;

pub use config::{Brand, BrandError, UnsubscribeConfig};
pub use page::{confirm_page, done_page, response};

use page::{message_page, resubscribed_page};
use spool::{read_spool, SpoolFile};

/// Largest request body read on `/u/` (the one-click body is 26 bytes).
pub const MAX_BODY: usize = 4096;
/// The writer's `source` for unsubscribe changes.
pub const SOURCE: &str = "unsubscribe";

/// What a request on `/u/` is counted as. A closed set: safe as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `GET`/`HEAD`: the confirmation page shown.
    Page,
    /// RFC 8058 one-click `POST` (from a mailbox provider).
    OneClick,
    /// The page's button.
    Form,
    /// An undo.
    Undo,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Page, Kind::OneClick, Kind::Form, Kind::Undo];
    fn label(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::OneClick => "one_click",
            Kind::Form => "form",
            Kind::Undo => "undo",
        }
    }
}

/// Why a request on `/u/` was refused. A closed set: safe as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Tampered, unknown or wrong-kind token, or ids nobody could be opted out by: 404.
    InvalidToken,
    /// A body that is not a one-click (or undo) form: 400 (413 when too large).
    BadRequest,
    /// A method other than GET, HEAD or POST: 405.
    Method,
    /// An undo after its window: 410.
    UndoExpired,
    /// An undo of a scope that now has another reason (erasure, restriction...): 409.
    UndoConflict,
    /// Neither the writer nor the spool could make the change durable: 503.
    NotDurable,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::InvalidToken,
        Refusal::BadRequest,
        Refusal::Method,
        Refusal::UndoExpired,
        Refusal::UndoConflict,
        Refusal::NotDurable,
    ];
    fn label(self) -> &'static str {
        match self {
            Refusal::InvalidToken => "invalid_token",
            Refusal::BadRequest => "bad_request",
            Refusal::Method => "method",
            Refusal::UndoExpired => "undo_expired",
            Refusal::UndoConflict => "undo_conflict",
            Refusal::NotDurable => "not_durable",
        }
    }
}

/// What to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnsubReply {
    /// 200, an HTML page.
    Html(String),
    /// 200, `text/plain` "unsubscribed" (the one-click answer).
    OneClickOk,
    /// A refusal, with its status and a short text (or page).
    Refused(Refusal, StatusCode, String),
}

/// The decision for one request, before anything is written.
#[derive(Debug)]
pub enum Decision {
    /// Answer now; nothing to write.
    Reply(Kind, UnsubReply),
    /// A refusal; nothing to write.
    Refuse(Refusal, UnsubReply),
    /// Apply `changes` locally, make them durable, publish `event`, then answer `reply`.
    Write {
        /// How it is counted.
        kind: Kind,
        /// The changes (one).
        changes: Vec<Change>,
        /// The unsubscribe (or resubscribe) event.
        event: Box<EngagementEvent>,
        /// The answer once durable.
        reply: UnsubReply,
    },
}

/// One request on `/u/`, as [`Unsubscribe::decide`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct UnsubRequest<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// The path (`/u/{token}`).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The body (empty for GET).
    pub body: &'a [u8],
    /// The socket peer.
    pub peer: IpAddr,
    /// Now, ms since the Unix epoch.
    pub now_ms: i64,
}

#[derive(Default)]
struct Counters {
    requests: [AtomicU64; 4],
    refused: [AtomicU64; 6],
    spooled: AtomicU64,
    replayed: AtomicU64,
    spool_errors: AtomicU64,
    pending: AtomicU64,
}

/// The unsubscribe routes' state: the writer, the spool, settings and counters.
pub struct Unsubscribe {
    config: UnsubscribeConfig,
    writer: Arc<dyn SuppressionWriter>,
    set: Arc<SuppressionSet>,
    spool: Arc<SpoolFile>,
    counters: Counters,
}

impl std::fmt::Debug for Unsubscribe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsubscribe")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Errors setting up the unsubscribe routes.
#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    /// The spool could not be read or created.
    #[error("unsubscribe spool {path}: {source}")]
    Spool {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

impl Unsubscribe {
    /// Opens the spool (creating its directory), applies its pending changes to `set` and
    /// returns the routes' state. The replay task is [`Unsubscribe::replay`].
    pub fn new(
        config: UnsubscribeConfig,
        writer: Arc<dyn SuppressionWriter>,
        set: Arc<SuppressionSet>,
    ) -> Result<Unsubscribe, UnsubscribeError> {
        let u = Unsubscribe {
            spool: Arc::new(SpoolFile {
                path: config.spool_path.clone(),
                lock: parking_lot::Mutex::new(()),
            }),
            config,
            writer,
            set,
            counters: Counters::default(),
        };
        let err = |source| UnsubscribeError::Spool {
            path: u.config.spool_path.display().to_string(),
            source,
        };
        if let Some(dir) = u.config.spool_path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let pending = {
            let _g = u.spool.lock.lock();
            read_spool(&u.spool.path).map_err(err)?
        };
        for c in &pending {
            // Not in the topic yet: the follower's catch-up must not undo it.
            u.set.apply_local(c);
        }
        u.counters
            .pending
            .store(pending.len() as u64, Ordering::Relaxed);
        if !pending.is_empty() {
            tracing::warn!(
                pending = pending.len(),
                "unsubscribe spool holds changes not yet acknowledged: applied locally, replaying"
            );
        }
        Ok(u)
    }

    /// Settings.
    pub fn config(&self) -> &UnsubscribeConfig {
        &self.config
    }

    /// Changes in the spool, not yet acknowledged by the writer.
    pub fn pending(&self) -> u64 {
        self.counters.pending.load(Ordering::Relaxed)
    }

    fn brand(&self, tenant: &str) -> &Brand {
        self.config
            .brands
            .get(tenant)
            .unwrap_or(&self.config.default_brand)
    }

    /// Decides the answer to one request and what to write: a pure function of the request,
    /// the clock, the keys and the set (it reads them; it writes nothing).
    pub fn decide(&self, pipeline: &Pipeline, req: &UnsubRequest<'_>) -> Decision {
        let invalid = || {
            Decision::Refuse(
                Refusal::InvalidToken,
                UnsubReply::Refused(
                    Refusal::InvalidToken,
                    StatusCode::NOT_FOUND,
                    "not found\n".into(),
                ),
            )
        };
        let Some(token) = req
            .path
            .strip_prefix("/u/")
            .filter(|t| !t.is_empty() && !t.contains('/'))
        else {
            return invalid();
        };
        let is_get = req.method == Method::GET || req.method == Method::HEAD;
        if !is_get && req.method != Method::POST {
            return Decision::Refuse(
                Refusal::Method,
                UnsubReply::Refused(
                    Refusal::Method,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed\n".into(),
                ),
            );
        }
        let keys = pipeline.keys().load();
        let verified = match keys.verify(token) {
            Ok(v) if v.claims.kind == TokenKind::Unsubscribe => v,
            _ => return invalid(),
        };
        let key_id = verified.key_id.to_owned();
        let claims = verified.claims;
        if openclick_common::ids::check_id(openclick_common::ids::IdKind::Tenant, &claims.tenant_id)
            .is_err()
            || openclick_common::ids::check_id(
                openclick_common::ids::IdKind::Contact,
                &claims.contact_id,
            )
            .is_err()
            || (!claims.list_id.is_empty()
                && openclick_common::ids::check_id(
                    openclick_common::ids::IdKind::List,
                    &claims.list_id,
                )
                .is_err())
            || claims.issued_at_ms
                > req
                    .now_ms
                    .saturating_add(pipeline.limits().max_future_skew_ms)
        {
            return invalid();
        }
        let scope = scope_of(&claims);
        let brand = self.brand(&claims.tenant_id);
        if claims.undo {
            if is_get {
                // Undo tokens are only ever posted by the page's undo button.
                return invalid();
            }
            return self.decide_undo(pipeline, req, claims, scope, key_id, brand);
        }
        if is_get {
            let already = self.set.get(&scope).is_some()
                || self
                    .set
                    .is_suppressed(&claims.tenant_id, &claims.contact_id);
            return Decision::Reply(
                Kind::Page,
                UnsubReply::Html(confirm_page(brand, token, &claims.list_id, already)),
            );
        }
        let Some(form) = parse_form(req.headers, req.body) else {
            return bad_request();
        };
        if form.one_click != Some(true) || form.undo {
            return bad_request();
        }
        let kind = if form.via_page {
            Kind::Form
        } else {
            Kind::OneClick
        };
        if self.set.get(&scope).is_some() {
            // Idempotent: already suppressed for this scope (by this or an earlier request,
            // or another reason, which an unsubscribe must not overwrite). Nothing to write.
            let reply = match kind {
                Kind::Form => UnsubReply::Html(done_page(brand, &claims.list_id, None)),
                _ => UnsubReply::OneClickOk,
            };
            return Decision::Reply(kind, reply);
        }
        let undo = Claims {
            undo: true,
            issued_at_ms: req.now_ms,
            ..claims.clone()
        };
        let undo_token = (self.config.undo_window_ms > 0)
            .then(|| keys.sign(&undo).ok())
            .flatten();
        let reply = match kind {
            Kind::Form => {
                UnsubReply::Html(done_page(brand, &claims.list_id, undo_token.as_deref()))
            }
            _ => UnsubReply::OneClickOk,
        };
        let method = match kind {
            Kind::Form => UnsubscribeMethod::Page,
            _ => UnsubscribeMethod::OneClick,
        };
        let event = build_event(
            pipeline,
            req,
            &claims,
            key_id,
            EventType::Unsubscribe,
            method,
        );
        Decision::Write {
            kind,
            changes: vec![Change {
                scope,
                reason: Some(Reason::OptOut),
                at_ms: req.now_ms,
            }],
            event: Box::new(event),
            reply,
        }
    }

    fn decide_undo(
        &self,
        pipeline: &Pipeline,
        req: &UnsubRequest<'_>,
        claims: Claims,
        scope: Scope,
        key_id: String,
        brand: &Brand,
    ) -> Decision {
        let Some(form) = parse_form(req.headers, req.body) else {
            return bad_request();
        };
        if !form.undo {
            return bad_request();
        }
        if req.now_ms.saturating_sub(claims.issued_at_ms) > self.config.undo_window_ms {
            return Decision::Refuse(
                Refusal::UndoExpired,
                UnsubReply::Refused(
                    Refusal::UndoExpired,
                    StatusCode::GONE,
                    message_page(
                        brand,
                        "Too late to undo",
                        "The time to undo this unsubscribe has passed. You remain unsubscribed; \
                         contact the sender to subscribe again.",
                    ),
                ),
            );
        }
        match self.set.get(&scope) {
            None => Decision::Reply(
                Kind::Undo,
                UnsubReply::Html(resubscribed_page(brand, &claims.list_id)),
            ),
            Some(Reason::OptOut) => {
                let event = build_event(
                    pipeline,
                    req,
                    &claims,
                    key_id,
                    EventType::Resubscribe,
                    UnsubscribeMethod::Undo,
                );
                Decision::Write {
                    kind: Kind::Undo,
                    changes: vec![Change {
                        scope,
                        reason: None,
                        at_ms: req.now_ms,
                    }],
                    event: Box::new(event),
                    reply: UnsubReply::Html(resubscribed_page(brand, &claims.list_id)),
                }
            }
            Some(_) => Decision::Refuse(
                Refusal::UndoConflict,
                UnsubReply::Refused(
                    Refusal::UndoConflict,
                    StatusCode::CONFLICT,
                    message_page(
                        brand,
                        "Cannot undo",
                        "This address is also suppressed for another reason, which an undo \
                         does not lift. Contact the sender.",
                    ),
                ),
            ),
        }
    }

    /// Answers one request on `/u/`: decide, then for a change apply it locally, make it
    /// durable (writer, else spool), publish the event through `publish`, answer. The only
    /// route that waits for Kafka, by design, and at most [`UnsubscribeConfig::ack_timeout`].
    pub async fn handle(
        &self,
        pipeline: &Pipeline,
        publish: impl FnOnce(&EngagementEvent),
        parts: &http::request::Parts,
        body: &[u8],
        peer: IpAddr,
    ) -> Response<Body> {
        let req = UnsubRequest {
            method: &parts.method,
            path: parts.uri.path(),
            headers: &parts.headers,
            body,
            peer,
            now_ms: openclick_common::now_ms(),
        };
        match self.decide(pipeline, &req) {
            Decision::Reply(kind, reply) => {
                self.count(kind);
                response(reply)
            }
            Decision::Refuse(why, reply) => {
                self.refuse(why);
                response(reply)
            }
            Decision::Write {
                kind,
                changes,
                event,
                reply,
            } => {
                let before: Vec<Option<Reason>> =
                    changes.iter().map(|c| self.set.get(&c.scope)).collect();
                for c in &changes {
                    self.set.apply_local(c);
                }
                if let Err(e) = self.make_durable(&changes).await {
                    // Neither acknowledged nor spooled: undo the local change, so a retry
                    // (the provider's, or the person's) writes it again instead of finding it
                    // "already done".
                    for (c, old) in changes.iter().zip(before) {
                        self.set.revert_local(&Change {
                            scope: c.scope.clone(),
                            reason: old,
                            at_ms: c.at_ms,
                        });
                    }
                    tracing::error!(error = %e, "unsubscribe neither acknowledged nor spooled");
                    self.refuse(Refusal::NotDurable);
                    return response(UnsubReply::Refused(
                        Refusal::NotDurable,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily unavailable, try again\n".into(),
                    ));
                }
                publish(&event);
                self.count(kind);
                response(reply)
            }
        }
    }

    fn count(&self, kind: Kind) {
        let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.counters.requests[i].fetch_add(1, Ordering::Relaxed);
    }

    fn refuse(&self, why: Refusal) {
        let i = Refusal::ALL.iter().position(|k| *k == why).unwrap_or(0);
        self.counters.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered, by kind.
    pub fn requests(&self, kind: Kind) -> u64 {
        let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.counters.requests[i].load(Ordering::Relaxed)
    }

    /// Requests refused, by reason.
    pub fn refused(&self, why: Refusal) -> u64 {
        let i = Refusal::ALL.iter().position(|k| *k == why).unwrap_or(0);
        self.counters.refused[i].load(Ordering::Relaxed)
    }

    /// Describes (`# HELP`) the series [`Self::export_metrics`] emits.
    pub fn describe_metrics() {
        use metrics::{describe_counter, describe_gauge};
        describe_counter!(
            "openclick_unsubscribe_requests_total",
            "Requests on /u/ answered, by kind: page (GET shown), one_click (RFC 8058 POST), form (the page's button), undo."
        );
        describe_counter!(
            "openclick_unsubscribe_refused_total",
            "Requests on /u/ refused, by reason: invalid_token (404), bad_request (400/413), method (405), undo_expired (410), undo_conflict (409), not_durable (503)."
        );
        describe_counter!(
            "openclick_unsubscribe_spooled_total",
            "Unsubscribe changes the writer did not acknowledge in time, written to the unsubscribe spool."
        );
        describe_counter!(
            "openclick_unsubscribe_replayed_total",
            "Spooled unsubscribe changes acknowledged by the writer on replay."
        );
        describe_counter!(
            "openclick_unsubscribe_spool_errors_total",
            "Unsubscribe changes that could be neither acknowledged nor spooled (answered 503)."
        );
        describe_gauge!(
            "openclick_unsubscribe_spool_pending",
            "Unsubscribe changes in the spool, not yet acknowledged."
        );
    }

    /// Emits the series through the `metrics` macros (at scrape time).
    pub fn export_metrics(&self) {
        use metrics::{counter, gauge};
        for k in Kind::ALL {
            counter!("openclick_unsubscribe_requests_total", "kind" => k.label())
                .absolute(self.requests(k));
        }
        for r in Refusal::ALL {
            counter!("openclick_unsubscribe_refused_total", "reason" => r.label())
                .absolute(self.refused(r));
        }
        let c = &self.counters;
        counter!("openclick_unsubscribe_spooled_total").absolute(c.spooled.load(Ordering::Relaxed));
        counter!("openclick_unsubscribe_replayed_total")
            .absolute(c.replayed.load(Ordering::Relaxed));
        counter!("openclick_unsubscribe_spool_errors_total")
            .absolute(c.spool_errors.load(Ordering::Relaxed));
        gauge!("openclick_unsubscribe_spool_pending").set(self.pending() as f64);
    }
}

fn bad_request() -> Decision {
    Decision::Refuse(
        Refusal::BadRequest,
        UnsubReply::Refused(
            Refusal::BadRequest,
            StatusCode::BAD_REQUEST,
            "expected the form body List-Unsubscribe=One-Click (RFC 8058)\n".into(),
        ),
    )
}

/// The suppression scope an unsubscribe token names.
pub fn scope_of(c: &Claims) -> Scope {
    if c.list_id.is_empty() {
        Scope::Contact {
            tenant: c.tenant_id.clone(),
            contact: c.contact_id.clone(),
        }
    } else {
        Scope::ContactInList {
            tenant: c.tenant_id.clone(),
            list: c.list_id.clone(),
            contact: c.contact_id.clone(),
        }
    }
}

fn build_event(
    pipeline: &Pipeline,
    req: &UnsubRequest<'_>,
    claims: &Claims,
    key_id: String,
    kind: EventType,
    method: UnsubscribeMethod,
) -> EngagementEvent {
    let ip = crate::client_ip::client_ip(req.peer, req.headers, pipeline.client_ip_config());
    let e = pipeline.enricher().enrich(&crate::pipeline::request_hit(
        HitKind::Click,
        req.headers,
        ip,
        false,
        claims.issued_at_ms,
        req.now_ms,
    ));
    EngagementEvent {
        event_id: event_id(req.now_ms),
        r#type: kind as i32,
        channel: pb_channel(claims.channel) as i32,
        tenant_id: claims.tenant_id.clone(),
        campaign_id: claims.campaign_id.clone(),
        message_id: claims.message_id.clone(),
        contact_id: claims.contact_id.clone(),
        occurred_at_ms: req.now_ms,
        sent_at_ms: claims.issued_at_ms,
        client: Some(e.client),
        geo: Some(e.geo),
        network: Some(e.network),
        signals: Some(e.signals),
        key_id,
        producer_version: crate::pipeline::PRODUCER_VERSION.to_string(),
        list_id: claims.list_id.clone(),
        unsubscribe_method: method as i32,
        ..Default::default()
    }
}

/// The fields of a `/u/` POST body this route reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Form {
    /// `List-Unsubscribe`: `Some(true)` for `One-Click`.
    one_click: Option<bool>,
    /// `via=page`: the page's button.
    via_page: bool,
    /// `action=undo`.
    undo: bool,
}

/// Reads an `application/x-www-form-urlencoded` (or untyped) or `multipart/form-data` body.
/// `None`: not a form.
fn parse_form(headers: &HeaderMap, body: &[u8]) -> Option<Form> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut form = Form::default();
    let mut field = |name: &str, value: &str| match name {
        "List-Unsubscribe" => form.one_click = Some(value == "One-Click"),
        "via" => form.via_page = value == "page",
        "action" => form.undo = value == "undo",
        _ => {}
    };
    match mime.as_str() {
        "application/x-www-form-urlencoded" => {
            for (k, v) in form_urlencoded::parse(body) {
                field(&k, &v);
            }
        }
        "multipart/form-data" => {
            let boundary = ct.split(';').skip(1).find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("boundary")).then(|| v.trim().trim_matches('"'))
            })?;
            let body = std::str::from_utf8(body).ok()?;
            let delim = format!("--{boundary}");
            for part in body.split(delim.as_str()).skip(1) {
                if part.starts_with("--") {
                    break;
                }
                let (head, value) = part.split_once("\r\n\r\n")?;
                let name = head.lines().find_map(|l| {
                    let l = l.trim();
                    if !l.to_ascii_lowercase().starts_with("content-disposition:") {
                        return None;
                    }
                    let at = l.find("name=\"")? + 6;
                    let end = l[at..].find('"')?;
                    Some(&l[at..at + end])
                })?;
                field(name, value.strip_suffix("\r\n").unwrap_or(value));
            }
        }
        _ => return None,
    }
    Some(form)
}

#[cfg(test)]
mod tests;
