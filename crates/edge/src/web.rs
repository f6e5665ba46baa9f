//! Website activity after a click (issue #17): the identity hand-off, the `/w.js` snippet and
//! the page-view beacons.
//!
//! - **Hand-off.** When a tenant turns it on ([`WebTenant::handoff`]), a tracked click's
//!   redirect carries one more query parameter (default `oc_id`): a signed, expiring web token
//!   (`openclick_token::WebClaims`: tenant, campaign, contact, issued-at, expiry), never a raw
//!   contact id. Not for suppressed contacts, nor (when the tenant honours them) under
//!   `Sec-GPC: 1` / `DNT: 1`. [`with_param`] rewrites the destination: an existing parameter of
//!   that name is replaced, every other parameter is kept byte for byte, the fragment too.
//! - **`GET /w.js`**: the snippet (`crates/edge/web/w.js`, hand-written, < 1 KiB): keeps the
//!   token in a first-party cookie on the sender's site, removes it from the address bar and
//!   sends page views.
//! - **`POST|GET /w/{token}`**: a page view ([`process`], pure: request, clock and state in,
//!   reply and event out). The token must verify as a web token and not be expired; the page
//!   (and the `Origin`, when sent) must be one of the tenant's configured site origins; a
//!   suppressed contact, or GPC / DNT when honoured, gives no event. CORS is answered for the
//!   tenant's origins only.
//!
//! Per-tenant settings come from a file ([`WebSettings::from_toml`], `serve --web-settings`,
//! reloaded on change): there is no replicated per-tenant state yet. A tenant not in the file
//! has web tracking off.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use openclick_enrich::HitKind;
use openclick_events::v1::{Channel as PbChannel, EngagementEvent, EventType};
use openclick_http::{text, Body};
use openclick_token::{ClaimsRef, KeyStore, WebClaims};
use serde::Deserialize;

use crate::client_ip::client_ip;
use crate::headers::HeaderSource;
use crate::pipeline::{event_id, request_hit, Pipeline, PRODUCER_VERSION, SEC_GPC};
use crate::server::EdgeState;

/// The snippet, served as is from `GET /w.js`.
pub const SNIPPET: &str = include_str!("../web/w.js");
/// Largest beacon body read (`u=...&r=...`).
pub const MAX_BEACON_BODY: usize = 8 * 1024;
/// Longest page URL or referrer kept, in bytes; longer is a 400.
pub const MAX_URL_BYTES: usize = 4096;
const DAY_MS: i64 = 86_400_000;

/// One tenant's web settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebTenant {
    /// Hand the identity to the site after a click, and accept its page views. Off: neither.
    pub handoff: bool,
    /// The query parameter carrying the web token (default `oc_id`).
    pub param: String,
    /// The sender's site origins (`https://www.example.com`), ASCII-serialised: where page
    /// views may come from, and what CORS answers.
    pub origins: Vec<String>,
    /// How long a handed-over identity is valid (the web token's lifetime), in days.
    pub lifetime_days: u32,
    /// No hand-off and no page views under `Sec-GPC: 1`.
    pub honour_gpc: bool,
    /// No hand-off and no page views under `DNT: 1`.
    pub honour_dnt: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantFile {
    #[serde(default)]
    handoff: bool,
    #[serde(default = "default_param")]
    param: String,
    #[serde(default)]
    origins: Vec<String>,
    #[serde(default = "default_lifetime")]
    lifetime_days: u32,
    #[serde(default = "default_true")]
    honour_gpc: bool,
    #[serde(default)]
    honour_dnt: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    tenant: HashMap<String, TenantFile>,
}

fn default_param() -> String {
    "oc_id".to_owned()
}
fn default_lifetime() -> u32 {
    30
}
fn default_true() -> bool {
    true
}

/// A web settings file that cannot be used. Messages name the tenant and the key, never a
/// value beyond the offending origin or parameter name (configuration, not personal data).
#[derive(thiserror::Error, Debug)]
pub enum WebSettingsError {
    /// Not TOML of the documented shape.
    #[error("web settings: {0}")]
    Parse(String),
    /// A value out of range.
    #[error("web settings, tenant {tenant:?}: {why}")]
    Invalid {
        /// The tenant whose table is wrong.
        tenant: String,
        /// What is wrong.
        why: String,
    },
}

/// Every tenant's web settings. Empty (the default): web tracking off everywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebSettings {
    tenants: HashMap<String, WebTenant>,
}

impl WebSettings {
    /// Parses the settings file (docs/config.md, "Web settings file"):
    ///
    /// ```toml
    /// [tenant.acme]
    /// handoff = true                      # default false
    /// param = "oc_id"                     # default "oc_id"
    /// origins = ["https://www.acme.example"]
    /// lifetime_days = 30                  # 1..=400, default 30
    /// honour_gpc = true                   # default true
    /// honour_dnt = false                  # default false
    /// ```
    pub fn from_toml(text: &str) -> Result<WebSettings, WebSettingsError> {
        let file: SettingsFile =
            toml::from_str(text).map_err(|e| WebSettingsError::Parse(e.message().to_owned()))?;
        let mut tenants = HashMap::new();
        for (id, t) in file.tenant {
            let invalid = |why: String| WebSettingsError::Invalid {
                tenant: id.clone(),
                why,
            };
            if t.param.is_empty()
                || t.param.len() > 32
                || !t
                    .param
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(invalid(
                    "param must be 1 to 32 characters of [A-Za-z0-9_-]".into(),
                ));
            }
            if !(1..=400).contains(&t.lifetime_days) {
                return Err(invalid("lifetime_days must be 1 to 400".into()));
            }
            if t.handoff && t.origins.is_empty() {
                return Err(invalid(
                    "handoff = true needs the site's origins (origins = [\"https://...\"])".into(),
                ));
            }
            let mut origins = Vec::with_capacity(t.origins.len());
            for o in &t.origins {
                origins.push(parse_origin(o).ok_or_else(|| {
                    invalid(format!(
                        "origin {o:?} is not an http(s) origin (scheme://host[:port], no path)"
                    ))
                })?);
            }
            tenants.insert(
                id,
                WebTenant {
                    handoff: t.handoff,
                    param: t.param,
                    origins,
                    lifetime_days: t.lifetime_days,
                    honour_gpc: t.honour_gpc,
                    honour_dnt: t.honour_dnt,
                },
            );
        }
        Ok(WebSettings { tenants })
    }

    /// A tenant's settings, if it has any.
    pub fn tenant(&self, tenant_id: &str) -> Option<&WebTenant> {
        self.tenants.get(tenant_id)
    }

    /// How many tenants have settings.
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// No tenant has settings.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }
}

/// `https://Example.com:443/` -> `https://example.com`; `None` for anything but an http(s)
/// origin without path, query, fragment or user info.
fn parse_origin(s: &str) -> Option<String> {
    let u = url::Url::parse(s).ok()?;
    let ok = matches!(u.scheme(), "http" | "https")
        && u.host().is_some()
        && u.username().is_empty()
        && u.password().is_none()
        && u.path() == "/"
        && u.query().is_none()
        && u.fragment().is_none();
    ok.then(|| u.origin().ascii_serialization())
}

impl WebTenant {
    fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    /// Whether this request says "do not track" in a way the tenant honours.
    fn opted_out<H: HeaderSource + ?Sized>(&self, headers: &H) -> bool {
        let one = |name: &HeaderName| headers.values(name).next() == Some(b"1".as_slice());
        (self.honour_gpc && one(&SEC_GPC)) || (self.honour_dnt && one(&header::DNT))
    }
}

/// `url` with the query parameter `name` set to `value`: an existing parameter of that name
/// (any number of them) is replaced by one at the end; every other parameter is kept byte for
/// byte, in order, and so is the fragment. `None` when `url` does not parse as an absolute
/// URL. `value` must need no escaping (a token is base64url).
pub fn with_param(url: &str, name: &str, value: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    let mut query = strip_param(u.query().unwrap_or(""), name);
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(name);
    query.push('=');
    query.push_str(value);
    u.set_query(Some(&query));
    Some(u.into())
}

/// `query` (without `?`) without the parameters whose decoded name is `name`; the others kept
/// as they were written.
fn strip_param(query: &str, name: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let raw_name = pair.split_once('=').map_or(pair, |(n, _)| n);
        let decoded = form_urlencoded::parse(raw_name.as_bytes())
            .next()
            .map(|(n, _)| n);
        if decoded.as_deref() == Some(name) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    out
}

/// `url` without the query parameter `name` (the fragment and other parameters kept); a URL
/// left without parameters loses its `?`. `None`: not an absolute URL.
pub fn without_param(url: &str, name: &str) -> Option<url::Url> {
    let mut u = url::Url::parse(url).ok()?;
    if let Some(q) = u.query() {
        let q = strip_param(q, name);
        u.set_query((!q.is_empty()).then_some(q.as_str()));
    }
    Some(u)
}

/// How a web request is counted: a closed set, safe as metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebClass {
    /// A page view published.
    Tracked,
    /// The contact is suppressed: no event.
    Suppressed,
    /// `Sec-GPC: 1` or `DNT: 1` and the tenant honours it: no event.
    OptedOut,
    /// The tenant has web tracking off (no settings, or `handoff = false`): no event.
    Disabled,
    /// The token does not verify as a web token: no event.
    InvalidToken,
    /// The web token has expired: no event.
    Expired,
    /// The page or the `Origin` is not one of the tenant's sites: no event.
    OriginRefused,
    /// No usable page URL, or a body too large: 400.
    BadRequest,
    /// A CORS preflight.
    Preflight,
    /// The snippet.
    Script,
    /// A method other than GET, HEAD, POST, OPTIONS.
    MethodNotAllowed,
    /// A click redirect carried a web token.
    HandoffAdded,
}

impl WebClass {
    /// Every class.
    pub const ALL: [WebClass; 12] = [
        WebClass::Tracked,
        WebClass::Suppressed,
        WebClass::OptedOut,
        WebClass::Disabled,
        WebClass::InvalidToken,
        WebClass::Expired,
        WebClass::OriginRefused,
        WebClass::BadRequest,
        WebClass::Preflight,
        WebClass::Script,
        WebClass::MethodNotAllowed,
        WebClass::HandoffAdded,
    ];

    /// `(route, outcome)` labels of `openclick_web_requests_total`.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            WebClass::Tracked => ("beacon", "tracked"),
            WebClass::Suppressed => ("beacon", "suppressed"),
            WebClass::OptedOut => ("beacon", "opted_out"),
            WebClass::Disabled => ("beacon", "disabled"),
            WebClass::InvalidToken => ("beacon", "invalid_token"),
            WebClass::Expired => ("beacon", "expired"),
            WebClass::OriginRefused => ("beacon", "origin_refused"),
            WebClass::BadRequest => ("beacon", "bad_request"),
            WebClass::Preflight => ("beacon", "preflight"),
            WebClass::Script => ("script", "served"),
            WebClass::MethodNotAllowed => ("beacon", "method_not_allowed"),
            WebClass::HandoffAdded => ("handoff", "added"),
        }
    }
}

/// The web settings in force (replaced whole on reload) and the web counters.
#[derive(Debug, Default)]
pub struct Web {
    settings: ArcSwap<WebSettings>,
    counts: [AtomicU64; 12],
}

impl Web {
    /// With these settings.
    pub fn new(settings: WebSettings) -> Web {
        Web {
            settings: ArcSwap::from_pointee(settings),
            counts: Default::default(),
        }
    }

    /// Replaces the settings (a reload); requests in flight finish with the old ones.
    pub fn store(&self, settings: WebSettings) {
        self.settings.store(Arc::new(settings));
    }

    /// The settings in force.
    pub fn load(&self) -> Arc<WebSettings> {
        self.settings.load_full()
    }

    /// Counts one request.
    pub fn count(&self, class: WebClass) {
        self.counts[class as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of one class.
    pub fn counted(&self, class: WebClass) -> u64 {
        self.counts[class as usize].load(Ordering::Relaxed)
    }

    /// Writes the counters to the recorder in force (the admin plane's, at scrape time).
    pub fn export_metrics(&self) {
        for class in WebClass::ALL {
            let (route, outcome) = class.labels();
            metrics::counter!("openclick_web_requests_total", "route" => route, "outcome" => outcome)
                .absolute(self.counted(class));
        }
    }

    /// The click redirect with the identity handed over, when the click's tenant turned the
    /// hand-off on and the request does not opt out (GPC / DNT, as the tenant honours them).
    /// The caller has already checked suppression. `None`: redirect to the destination as
    /// signed.
    pub fn handoff<H: HeaderSource + ?Sized>(
        &self,
        keys: &KeyStore,
        click: &ClaimsRef<'_>,
        headers: &H,
        now_ms: i64,
    ) -> Option<HeaderValue> {
        let settings = self.settings.load();
        let t = settings.tenant(click.tenant_id)?;
        if !t.handoff || t.opted_out(headers) {
            return None;
        }
        let token = keys
            .sign_web(&WebClaims {
                tenant_id: click.tenant_id.to_owned(),
                campaign_id: click.campaign_id.to_owned(),
                contact_id: click.contact_id.to_owned(),
                issued_at_ms: now_ms,
                expires_at_ms: now_ms.saturating_add(i64::from(t.lifetime_days) * DAY_MS),
            })
            .ok()?;
        let url = with_param(click.url, &t.param, &token)?;
        let v = HeaderValue::from_str(&url).ok()?;
        self.count(WebClass::HandoffAdded);
        Some(v)
    }
}

/// Metric descriptions.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "openclick_web_requests_total",
        "Website activity requests: route beacon (/w/TOKEN: tracked, suppressed, opted_out, disabled, invalid_token, expired, origin_refused, bad_request, preflight, method_not_allowed), script (/w.js: served), handoff (click redirects that carried a web token: added)."
    );
}

/// Whether `path` is one of the web routes (`/w.js`, `/w/...`).
pub fn is_web_path(path: &str) -> bool {
    path == "/w.js" || path.starts_with("/w/")
}

/// One web request, as [`process`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct WebRequest<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Path, without the query.
    pub path: &'a str,
    /// The query string (GET beacons: `u=...&r=...`).
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The body (POST beacons: `u=...&r=...`, sent as text/plain by `sendBeacon`).
    pub body: &'a [u8],
    /// The socket peer.
    pub peer: IpAddr,
    /// Now, ms since the Unix epoch.
    pub now_ms: i64,
}

/// What to answer a web request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebReply {
    /// The snippet.
    Script,
    /// 204 (POST beacon) or the GIF (GET beacon); `cors`: the allowed origin to echo.
    Beacon {
        /// A GET: answer the pixel (the snippet's image fallback).
        gif: bool,
        /// `Access-Control-Allow-Origin` to send, if any.
        cors: Option<HeaderValue>,
    },
    /// 204 to a preflight, allowing `cors` when it is a configured origin.
    Preflight(Option<HeaderValue>),
    /// 400.
    BadRequest,
    /// 403: the page or the `Origin` is not the tenant's.
    Forbidden,
    /// 404: unknown path, or a token that is not a valid web token.
    NotFound,
    /// 405.
    MethodNotAllowed,
}

/// The outcome of one web request.
#[derive(Debug)]
pub struct WebOutcome {
    /// What to answer.
    pub reply: WebReply,
    /// The page view to publish.
    pub event: Option<EngagementEvent>,
    /// How to count it.
    pub class: WebClass,
}

fn outcome(reply: WebReply, class: WebClass) -> WebOutcome {
    WebOutcome {
        reply,
        event: None,
        class,
    }
}

/// Request -> (reply, page view), pure: no socket, no sink. The keys, suppression set, enricher
/// and forwarding rules are `pipeline`'s, the settings `web`'s.
pub fn process(pipeline: &Pipeline, web: &Web, req: &WebRequest<'_>) -> WebOutcome {
    if req.path == "/w.js" {
        return if req.method == Method::GET || req.method == Method::HEAD {
            outcome(WebReply::Script, WebClass::Script)
        } else {
            outcome(WebReply::MethodNotAllowed, WebClass::MethodNotAllowed)
        };
    }
    let Some(token) = req.path.strip_prefix("/w/").filter(|t| !t.contains('/')) else {
        return outcome(WebReply::NotFound, WebClass::InvalidToken);
    };
    let is_get = req.method == Method::GET || req.method == Method::HEAD;
    let is_post = req.method == Method::POST;
    let is_preflight = req.method == Method::OPTIONS;
    if !(is_get || is_post || is_preflight) {
        return outcome(WebReply::MethodNotAllowed, WebClass::MethodNotAllowed);
    }
    let keys = pipeline.keys().load();
    let verified = match keys.verify_web(token, req.now_ms) {
        Ok(v) => v,
        Err(openclick_token::WebTokenError::Expired) => {
            return outcome(WebReply::NotFound, WebClass::Expired)
        }
        Err(_) => return outcome(WebReply::NotFound, WebClass::InvalidToken),
    };
    let claims = verified.claims;
    let settings = web.load();
    let tenant = match settings.tenant(&claims.tenant_id) {
        Some(t) if t.handoff => t,
        _ => {
            let reply = if is_preflight {
                WebReply::Preflight(None)
            } else {
                WebReply::Beacon {
                    gif: is_get,
                    cors: None,
                }
            };
            return outcome(reply, WebClass::Disabled);
        }
    };
    let origin = req.headers.get(header::ORIGIN);
    let cors = origin
        .filter(|o| o.to_str().is_ok_and(|o| tenant.allows_origin(o)))
        .cloned();
    if is_preflight {
        return outcome(WebReply::Preflight(cors), WebClass::Preflight);
    }
    if origin.is_some() && cors.is_none() {
        return outcome(WebReply::Forbidden, WebClass::OriginRefused);
    }
    let beacon = WebReply::Beacon {
        gif: is_get,
        cors: cors.clone(),
    };
    // The page and its referrer: `u=...&r=...` in the body (POST) or the query (GET).
    let form = if is_post {
        req.body
    } else {
        req.query.unwrap_or("").as_bytes()
    };
    let (mut page, mut referrer) = (None, None);
    for (k, v) in form_urlencoded::parse(form) {
        match &*k {
            "u" if page.is_none() => page = Some(v),
            "r" if referrer.is_none() => referrer = Some(v),
            _ => {}
        }
    }
    let referrer = referrer.unwrap_or_default();
    let Some(page) = page.filter(|p| p.len() <= MAX_URL_BYTES) else {
        return outcome(WebReply::BadRequest, WebClass::BadRequest);
    };
    if referrer.len() > MAX_URL_BYTES {
        return outcome(WebReply::BadRequest, WebClass::BadRequest);
    }
    let Some(page) = without_param(&page, &tenant.param) else {
        return outcome(WebReply::BadRequest, WebClass::BadRequest);
    };
    if !tenant.allows_origin(&page.origin().ascii_serialization()) {
        return outcome(WebReply::Forbidden, WebClass::OriginRefused);
    }
    if !openclick_common::ids::opt_out_able(
        &claims.tenant_id,
        &claims.campaign_id,
        &claims.contact_id,
    ) {
        return outcome(WebReply::NotFound, WebClass::InvalidToken);
    }
    if pipeline
        .suppression()
        .check(&claims.tenant_id, &claims.campaign_id, &claims.contact_id)
        .is_some()
    {
        return outcome(beacon, WebClass::Suppressed);
    }
    if tenant.opted_out(req.headers) {
        return outcome(beacon, WebClass::OptedOut);
    }
    let ip = client_ip(req.peer, req.headers, pipeline.client_ip_config());
    // A person's browser acting, as for a click (no image proxies, no prefetch of pages). No
    // "too fast after sending" rule: the token's time is the hand-off (the click), and the
    // landing page's view follows it within a second by design (0 turns the rule off).
    let e = pipeline.enricher().enrich(&request_hit(
        HitKind::Click,
        req.headers,
        ip,
        req.method == Method::HEAD,
        0,
        req.now_ms,
    ));
    let event = EngagementEvent {
        event_id: event_id(req.now_ms),
        r#type: EventType::PageView as i32,
        channel: PbChannel::Web as i32,
        tenant_id: claims.tenant_id,
        campaign_id: claims.campaign_id,
        contact_id: claims.contact_id,
        occurred_at_ms: req.now_ms,
        sent_at_ms: claims.issued_at_ms,
        client: Some(e.client),
        geo: Some(e.geo),
        network: Some(e.network),
        signals: Some(e.signals),
        key_id: verified.key_id,
        producer_version: PRODUCER_VERSION.to_owned(),
        page_url: page.into(),
        referrer: referrer.into_owned(),
        ..EngagementEvent::default()
    };
    WebOutcome {
        reply: beacon,
        event: Some(event),
        class: WebClass::Tracked,
    }
}

/// Serves one web request: reads a POST body (up to [`MAX_BEACON_BODY`]), decides with
/// [`process`], publishes the page view, answers. Without web settings (`serve` without
/// `--web-settings`) every web path is a 404.
pub async fn serve(
    state: &EdgeState,
    req: http::Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let Some(web) = state.pipeline.web() else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let (parts, body) = req.into_parts();
    let body = if parts.method == Method::POST {
        match openclick_http::read_body(body, MAX_BEACON_BODY).await {
            Ok(b) => b,
            Err(_) => {
                web.count(WebClass::BadRequest);
                return text(StatusCode::PAYLOAD_TOO_LARGE, "beacon too large\n");
            }
        }
    } else {
        Bytes::new()
    };
    let o = process(
        &state.pipeline,
        web,
        &WebRequest {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
            peer: peer.ip(),
            now_ms: openclick_common::now_ms(),
        },
    );
    web.count(o.class);
    if let Some(event) = &o.event {
        state.publish_event(event);
    }
    response(o.reply)
}

/// Builds the HTTP response for a [`WebReply`].
pub fn response(reply: WebReply) -> Response<Body> {
    let vary = |r: &mut Response<Body>, cors: Option<HeaderValue>| {
        let h = r.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(o) = cors {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        }
    };
    match reply {
        WebReply::Script => {
            let mut r = Response::new(Full::new(Bytes::from_static(SNIPPET.as_bytes())));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        WebReply::Beacon { gif, cors } => {
            let mut r = if gif {
                crate::server::reply_response(crate::pipeline::Reply::Pixel)
            } else {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            };
            vary(&mut r, cors);
            r
        }
        WebReply::Preflight(cors) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            if cors.is_some() {
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("Content-Type"),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
            }
            vary(&mut r, cors);
            r
        }
        WebReply::BadRequest => text(StatusCode::BAD_REQUEST, "bad beacon\n"),
        WebReply::Forbidden => {
            let mut r = text(StatusCode::FORBIDDEN, "origin not allowed\n");
            vary(&mut r, None);
            r
        }
        WebReply::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
        WebReply::MethodNotAllowed => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, OPTIONS"),
            );
            r
        }
    }
}

#[cfg(test)]
mod tests;
