//! Request -> event: the whole decision for one hit, as a pure function of its inputs.
//!
//! [`Pipeline::process`] takes the method, path, headers, peer address and clock reading of a
//! request and returns what to answer ([`Reply`]), the event to publish (if any) and how to count
//! the hit ([`HitClass`]). It opens no socket and touches no sink, so every rule (tampered tokens,
//! suppression, proxies, trusted forwarders) is tested without a server.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{self, HeaderName};
use http::{HeaderValue, Method};
use openclick_enrich::{Enricher, Hit, HitKind};
use openclick_events::v1::{Channel as PbChannel, EngagementEvent, EventType, Signals};
use openclick_events::EventRef;
use openclick_sink::Record;
use openclick_suppress::blocks::BlockList;
use openclick_suppress::SuppressionSet;
use openclick_token::{Channel, KeyStore, TokenKind, VerifiedRef};

use crate::window::ClickWindow;

use crate::client_ip::{client_ip, ClientIpConfig};
use crate::headers::{HeaderSource, Headers};
use crate::limits::{ReplayLimiter, Verdict};

/// The keys a pipeline verifies with (a [`KeyStore`]: the global keyring and tenants' own
/// keys), shared with whoever may replace them (`serve` re-reads `--keys-file` on SIGHUP and
/// when it changes). Replacing them is one atomic pointer swap; requests in flight finish with
/// the keys they loaded, the next ones verify with the new ones.
#[derive(Clone)]
pub struct SharedKeys(Arc<arc_swap::ArcSwap<KeyStore>>);

impl SharedKeys {
    /// A handle on `keys`.
    pub fn new(keys: impl Into<KeyStore>) -> SharedKeys {
        SharedKeys(Arc::new(arc_swap::ArcSwap::from_pointee(keys.into())))
    }

    /// Makes `keys` the ones every holder of this handle verifies with.
    pub fn store(&self, keys: KeyStore) {
        self.0.store(Arc::new(keys));
    }

    /// The keys in force.
    pub fn load(&self) -> Arc<KeyStore> {
        self.0.load_full()
    }
}

impl std::fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store's own Debug prints key ids and a tenant count, never a secret.
        self.0.load().fmt(f)
    }
}

/// What to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the 43-byte transparent GIF (always, for any `/o/` hit).
    Pixel,
    /// 302 to this (validated) destination.
    Redirect(HeaderValue),
    /// 404: unknown path, or an invalid click token (never a redirect).
    NotFound,
    /// 410: a valid click whose link is blocked (kill switch): a small page, never the
    /// destination.
    Gone,
    /// 405: a method other than GET or HEAD on a tracking route.
    MethodNotAllowed,
}

/// How a hit is counted. A small closed set: safe as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HitClass {
    /// Open with a valid token: event published.
    OpenTracked,
    /// Open from a suppressed contact: pixel served, no event.
    OpenSuppressed,
    /// Open with an invalid token: pixel served, no event.
    OpenInvalid,
    /// Click with a valid token: redirected, event published.
    ClickTracked,
    /// Click from a suppressed contact: redirected, no event.
    ClickSuppressed,
    /// Click with an invalid token: 404.
    ClickInvalid,
    /// Open over its token's rate: pixel served, no event.
    OpenRateLimited,
    /// Click over its token's rate: redirected, no event.
    ClickRateLimited,
    /// Click on a blocked link: 410, no redirect, no event.
    ClickBlocked,
    /// Unknown path.
    NotFound,
    /// Wrong method.
    MethodNotAllowed,
}

impl HitClass {
    /// Every class, for exporting counters.
    pub const ALL: [HitClass; 11] = [
        HitClass::OpenTracked,
        HitClass::OpenSuppressed,
        HitClass::OpenInvalid,
        HitClass::ClickTracked,
        HitClass::ClickSuppressed,
        HitClass::ClickInvalid,
        HitClass::OpenRateLimited,
        HitClass::ClickRateLimited,
        HitClass::ClickBlocked,
        HitClass::NotFound,
        HitClass::MethodNotAllowed,
    ];

    /// `(route, outcome)` metric labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            HitClass::OpenTracked => ("open", "tracked"),
            HitClass::OpenSuppressed => ("open", "suppressed"),
            HitClass::OpenInvalid => ("open", "invalid_token"),
            HitClass::ClickTracked => ("click", "tracked"),
            HitClass::ClickSuppressed => ("click", "suppressed"),
            HitClass::ClickInvalid => ("click", "invalid_token"),
            HitClass::OpenRateLimited => ("open", "rate_limited"),
            HitClass::ClickRateLimited => ("click", "rate_limited"),
            HitClass::ClickBlocked => ("click", "blocked"),
            HitClass::NotFound => ("other", "not_found"),
            HitClass::MethodNotAllowed => ("other", "method_not_allowed"),
        }
    }

    /// Index into a counter array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A tracked hit's event, ready for the sink: encoded (into this thread's spare
/// [`Record`], so a hit allocates nothing for it), with its signals kept for the metrics.
#[derive(Clone, Debug)]
pub struct Tracked {
    /// Key and protobuf payload.
    pub record: Record,
    /// The event's signals (counted by the metrics once the sink takes the event).
    pub signals: Signals,
}

impl Tracked {
    /// `event`, encoded.
    pub fn of(event: &EngagementEvent) -> Tracked {
        Tracked {
            record: Record::of(event),
            signals: event.signals.clone().unwrap_or_default(),
        }
    }

    /// The event, decoded from the record (tests, and the rare held click whose signals change).
    pub fn event(&self) -> EngagementEvent {
        self.record
            .decode()
            .expect("a tracked record holds an event this process encoded")
    }
}

/// The result of processing one request.
#[derive(Debug)]
pub struct Outcome {
    /// What to answer.
    pub reply: Reply,
    /// The event to publish, if the hit is tracked.
    pub event: Option<Tracked>,
    /// How to count it.
    pub class: HitClass,
    /// A tracked click the behaviour window noted: hold the event
    /// ([`crate::window::ClickWindow::hold`]) instead of publishing it now.
    pub hold: Option<crate::window::Hold>,
}

/// One request, as the pipeline sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Path, without the query string.
    pub path: &'a str,
    /// Request headers: a whole request's, or what a deferred open kept.
    pub headers: Headers<'a>,
    /// The socket peer address.
    pub peer: IpAddr,
    /// Now, milliseconds since the Unix epoch.
    pub now_ms: i64,
}

/// Limits on which hits produce events: the per-token rate, and the token's age.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Per-token rate limiter (`None`: no limit).
    pub replay: Option<Arc<ReplayLimiter>>,
    /// Tokens issued longer ago than this are invalid (`None`: no maximum age).
    pub max_token_age_ms: Option<i64>,
    /// Tokens issued further in the future than this are invalid (clock skew allowance).
    pub max_future_skew_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            replay: None,
            max_token_age_ms: None,
            max_future_skew_ms: 3_600_000,
        }
    }
}

/// Everything the request -> event function needs. Shared by all connections.
#[derive(Clone)]
pub struct Pipeline {
    keyring: SharedKeys,
    enricher: Arc<Enricher>,
    suppression: Arc<SuppressionSet>,
    client_ip: Arc<ClientIpConfig>,
    limits: Limits,
    blocks: Option<Arc<BlockList>>,
    clicks: Option<Arc<ClickWindow>>,
    web: Option<Arc<crate::web::Web>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("keyring", &self.keyring)
            .field("client_ip", &self.client_ip)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Version string stamped into every event.
pub(crate) const PRODUCER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The request headers [`request_hit`] reads: what a deferred open keeps of its request
/// (with the client-address header, [`crate::server`]'s `DeferredOpens`).
pub(crate) static HIT_HEADERS: [&HeaderName; 5] = [
    &header::USER_AGENT,
    &PURPOSE,
    &SEC_PURPOSE,
    &header::DNT,
    &SEC_GPC,
];

/// What enrichment reads of a request, for every route that enriches (tracking hits,
/// unsubscribes, page views): the headers by pre-parsed name (a `&str` name is parsed and
/// validated on every lookup) and the client address already resolved.
pub(crate) fn request_hit<H: HeaderSource + ?Sized>(
    kind: HitKind,
    headers: &H,
    ip: IpAddr,
    is_head: bool,
    sent_at_ms: i64,
    now_ms: i64,
) -> Hit<'_> {
    let header = |name: &HeaderName| headers.first_str(name);
    Hit {
        kind,
        user_agent: header(&header::USER_AGENT),
        ip,
        is_head,
        purpose: header(&PURPOSE),
        sec_purpose: header(&SEC_PURPOSE),
        dnt: header(&header::DNT),
        sec_gpc: header(&SEC_GPC),
        sent_at_ms,
        now_ms,
    }
}

impl Pipeline {
    /// Assembles a pipeline: forwarding headers believed per `client_ip`, no rate limit, no
    /// maximum token age (see [`Pipeline::with_limits`]).
    pub fn new(
        keyring: impl Into<KeyStore>,
        enricher: Arc<Enricher>,
        suppression: Arc<SuppressionSet>,
        client_ip: ClientIpConfig,
    ) -> Pipeline {
        Pipeline {
            keyring: SharedKeys::new(keyring),
            enricher,
            suppression,
            client_ip: Arc::new(client_ip),
            limits: Limits::default(),
            blocks: None,
            clicks: None,
            web: None,
        }
    }

    /// With website activity (`crate::web`): clicks of tenants that turned the hand-off on
    /// carry a web token to the destination, and `/w/` page views are accepted.
    pub fn with_web(mut self, web: Arc<crate::web::Web>) -> Pipeline {
        self.web = Some(web);
        self
    }

    /// The web settings and counters, if website activity is on.
    pub fn web(&self) -> Option<&Arc<crate::web::Web>> {
        self.web.as_ref()
    }

    /// The forwarding rules the client address is read with.
    pub fn client_ip_config(&self) -> &ClientIpConfig {
        &self.client_ip
    }

    /// With the behaviour window: tracked clicks are noted in it and their events held
    /// ([`Outcome::hold`]) so that bursts and honeypot neighbours are flagged before publishing.
    pub fn with_click_window(mut self, window: Arc<ClickWindow>) -> Pipeline {
        self.clicks = Some(window);
        self
    }

    /// The behaviour window, if any.
    pub fn click_window(&self) -> Option<&Arc<ClickWindow>> {
        self.clicks.as_ref()
    }

    /// With a redirect block list (the kill switch), checked before every redirect.
    pub fn with_blocks(mut self, blocks: Arc<BlockList>) -> Pipeline {
        self.blocks = Some(blocks);
        self
    }

    /// The handle on the keys this pipeline (and every clone of it) verifies with:
    /// [`SharedKeys::store`] rotates keys without a restart.
    pub fn keys(&self) -> &SharedKeys {
        &self.keyring
    }

    /// With these limits.
    pub fn with_limits(mut self, limits: Limits) -> Pipeline {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The suppression set this pipeline checks.
    pub fn suppression(&self) -> &Arc<SuppressionSet> {
        &self.suppression
    }

    /// The enricher this pipeline uses.
    pub fn enricher(&self) -> &Arc<Enricher> {
        &self.enricher
    }

    /// Decides the answer and the event for one request.
    pub fn process(&self, req: &Request<'_>) -> Outcome {
        let (kind, token) = match route(req.path) {
            Some(r) => r,
            None => {
                return Outcome {
                    reply: Reply::NotFound,
                    event: None,
                    class: HitClass::NotFound,
                    hold: None,
                }
            }
        };
        if req.method != Method::GET && req.method != Method::HEAD {
            return Outcome {
                reply: Reply::MethodNotAllowed,
                event: None,
                class: HitClass::MethodNotAllowed,
                hold: None,
            };
        }
        let invalid = match kind {
            Track::Open => (Reply::Pixel, HitClass::OpenInvalid),
            Track::Click => (Reply::NotFound, HitClass::ClickInvalid),
        };
        let keyring = self.keyring.0.load();
        let decided = keyring.verify_then(token, |v| {
            if v.claims.kind != kind.token_kind() {
                return None;
            }
            self.decide(kind, v, req, &keyring)
        });
        match decided {
            Ok(Some(outcome)) => outcome,
            _ => Outcome {
                reply: invalid.0,
                event: None,
                class: invalid.1,
                hold: None,
            },
        }
    }

    /// The rest of [`Pipeline::process`] once the token verified, with its claims borrowed
    /// from the decoded token: `None` for an invalid hit.
    fn decide(
        &self,
        kind: Track,
        verified: VerifiedRef<'_, '_>,
        req: &Request<'_>,
        keyring: &KeyStore,
    ) -> Option<Outcome> {
        let (suppressed, tracked, limited) = match kind {
            Track::Open => (
                HitClass::OpenSuppressed,
                HitClass::OpenTracked,
                HitClass::OpenRateLimited,
            ),
            Track::Click => (
                HitClass::ClickSuppressed,
                HitClass::ClickTracked,
                HitClass::ClickRateLimited,
            ),
        };
        let claims = verified.claims;
        // An id nobody could be opted out by is never tracked (openclick_common::ids).
        if !openclick_common::ids::opt_out_able(
            claims.tenant_id,
            claims.campaign_id,
            claims.contact_id,
        ) {
            return None;
        }
        let lim = &self.limits;
        if claims.issued_at_ms > req.now_ms.saturating_add(lim.max_future_skew_ms)
            || lim
                .max_token_age_ms
                .is_some_and(|age| req.now_ms.saturating_sub(claims.issued_at_ms) > age)
        {
            return None;
        }
        if kind == Track::Click {
            if let Some(blocks) = &self.blocks {
                if blocks
                    .check(
                        claims.tenant_id,
                        claims.campaign_id,
                        claims.link_id,
                        claims.url,
                    )
                    .is_some()
                {
                    return Some(Outcome {
                        reply: Reply::Gone,
                        event: None,
                        class: HitClass::ClickBlocked,
                        hold: None,
                    });
                }
            }
        }
        let mut reply = match kind {
            Track::Open => Reply::Pixel,
            Track::Click => Reply::Redirect(HeaderValue::from_str(claims.url).ok()?),
        };
        if self
            .suppression
            .check(claims.tenant_id, claims.campaign_id, claims.contact_id)
            .is_some()
        {
            return Some(Outcome {
                reply,
                event: None,
                class: suppressed,
                hold: None,
            });
        }
        if let Some(limiter) = &lim.replay {
            let kind_tag = match kind {
                Track::Open => "o",
                Track::Click => "c",
            };
            let key = limiter.key(&[
                claims.tenant_id,
                claims.campaign_id,
                claims.message_id,
                claims.contact_id,
                claims.link_id,
                kind_tag,
            ]);
            if limiter.check(key, req.now_ms) == Verdict::Limit {
                return Some(Outcome {
                    reply,
                    event: None,
                    class: limited,
                    hold: None,
                });
            }
        }

        // Website hand-off (crate::web): only for contacts not suppressed and within the rate.
        if let (Some(web), Reply::Redirect(_)) = (&self.web, &reply) {
            if let Some(to) = web.handoff(keyring, &claims, &req.headers, req.now_ms) {
                reply = Reply::Redirect(to);
            }
        }
        let ip = client_ip(req.peer, &req.headers, &self.client_ip);
        let kind_of_hit = match kind {
            Track::Open => HitKind::Open,
            Track::Click => HitKind::Click,
        };
        let hit = request_hit(
            kind_of_hit,
            &req.headers,
            ip,
            req.method == Method::HEAD,
            claims.issued_at_ms,
            req.now_ms,
        );
        let e = self.enricher.enrich(&hit);
        let hold = match (&self.clicks, kind) {
            (Some(w), Track::Click) => w.record(
                claims.tenant_id,
                claims.campaign_id,
                claims.message_id,
                claims.link_id,
                claims.honeypot,
                req.now_ms,
            ),
            _ => None,
        };
        let id = event_id_bytes(req.now_ms);
        let mut record = Record::take();
        openclick_sink::record_key_of(claims.tenant_id, claims.contact_id, &mut record.key);
        EventRef {
            // Hyphenated UUID text: ASCII.
            event_id: std::str::from_utf8(&id).unwrap_or_default(),
            r#type: match kind {
                Track::Open => EventType::Open,
                Track::Click => EventType::Click,
            } as i32,
            channel: pb_channel(claims.channel) as i32,
            tenant_id: claims.tenant_id,
            campaign_id: claims.campaign_id,
            message_id: claims.message_id,
            contact_id: claims.contact_id,
            link_id: claims.link_id,
            target_url: claims.url,
            occurred_at_ms: req.now_ms,
            sent_at_ms: claims.issued_at_ms,
            client: &e.client,
            geo: &e.geo,
            network: &e.network,
            signals: &e.signals,
            key_id: verified.key_id,
            producer_version: PRODUCER_VERSION,
        }
        .encode(&mut record.payload);
        Some(Outcome {
            reply,
            event: Some(Tracked {
                record,
                signals: e.signals,
            }),
            class: tracked,
            hold,
        })
    }
}

pub(crate) static PURPOSE: HeaderName = HeaderName::from_static("purpose");
pub(crate) static SEC_PURPOSE: HeaderName = HeaderName::from_static("sec-purpose");
pub(crate) static SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");

/// A fresh UUIDv7 (RFC 9562) event id for a hit at `now_ms`.
///
/// `Uuid::now_v7` asks the OS for randomness on every call (one `getrandom` system call per
/// event). Here the 74 random bits come from a per-thread splitmix64 stream seeded once from
/// the OS (through `Uuid::now_v7` itself) and the thread's identity: unique with overwhelming
/// probability, not meant to be unpredictable (the id is no secret). Hand-written because the
/// profile said so: `Uuid::now_v7` was 3.2% of the worker's time, its `getrandom` system call
/// per event (BENCHMARKS.md, worker profile); `uuid` still builds and formats the id.
pub fn event_id(now_ms: i64) -> String {
    let id = event_id_bytes(now_ms);
    String::from_utf8_lossy(&id).into_owned()
}

/// [`event_id`] as its 36 ASCII bytes, on the stack.
pub fn event_id_bytes(now_ms: i64) -> [u8; uuid::fmt::Hyphenated::LENGTH] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let seed = uuid::Uuid::now_v7().as_u128();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&std::thread::current().id(), &mut h);
            (seed as u64) ^ ((seed >> 64) as u64).rotate_left(29) ^ std::hash::Hasher::finish(&h)
        });
    }
    fn splitmix(x: u64) -> u64 {
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let (a, b) = STATE.with(|s| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        let y = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(y);
        (splitmix(x), splitmix(y))
    });
    let mut rand = [0u8; 10];
    rand[..8].copy_from_slice(&a.to_le_bytes());
    rand[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    let id = uuid::Builder::from_unix_timestamp_millis(now_ms.max(0) as u64, &rand).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf);
    buf
}

/// Maps the token's channel to the schema's.
pub fn pb_channel(c: Channel) -> PbChannel {
    match c {
        Channel::Email => PbChannel::Email,
        Channel::Sms => PbChannel::Sms,
        Channel::Push => PbChannel::Push,
        Channel::Web => PbChannel::Web,
    }
}

/// What a tracking path asks for: the two token kinds this pipeline serves (unsubscribes are
/// `crate::unsubscribe`'s, page views `crate::web`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// `/o/{token}`: the pixel.
    Open,
    /// `/c/{token}`: the redirect.
    Click,
}

impl Track {
    /// The kind a token must be signed as to be served here.
    pub fn token_kind(self) -> TokenKind {
        match self {
            Track::Open => TokenKind::Open,
            Track::Click => TokenKind::Click,
        }
    }
}

/// Splits a tracking path into its kind and token: `/o/{token}.gif`, `/o/{token}`, `/c/{token}`.
///
/// Everything under `/o/` is an open (an email must never show a broken image, so even `/o/`
/// or `/o/.gif` gets the pixel, as an invalid token); a click path must hold one non-empty
/// segment.
pub fn route(path: &str) -> Option<(Track, &str)> {
    if let Some(rest) = path.strip_prefix("/o/") {
        return Some((Track::Open, rest.strip_suffix(".gif").unwrap_or(rest)));
    }
    let rest = path.strip_prefix("/c/")?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some((Track::Click, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use openclick_enrich::EnrichConfig;
    use openclick_events::Message;
    use openclick_token::{Claims, Key, Keyring};

    const NOW: i64 = 1_700_000_000_000;

    fn pipeline(limits: Limits) -> (Pipeline, Keyring) {
        let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
        let enricher = Enricher::new(EnrichConfig {
            reload_poll: None,
            min_delay_ms: 0,
            ..EnrichConfig::default()
        })
        .unwrap();
        let p = Pipeline::new(
            keyring.clone(),
            Arc::new(enricher),
            Arc::new(SuppressionSet::new()),
            ClientIpConfig::default(),
        )
        .with_limits(limits);
        (p, keyring)
    }

    fn open(keyring: &Keyring, contact: &str, issued_at_ms: i64) -> String {
        let t = keyring
            .sign(&Claims {
                kind: TokenKind::Open,
                tenant_id: "acme".into(),
                campaign_id: "spring".into(),
                message_id: "m1".into(),
                contact_id: contact.into(),
                channel: Channel::Email,
                issued_at_ms,
                link_id: String::new(),
                url: String::new(),
                honeypot: false,
                list_id: String::new(),
                undo: false,
            })
            .unwrap();
        format!("/o/{t}.gif")
    }

    fn class(p: &Pipeline, path: &str) -> HitClass {
        let headers = HeaderMap::new();
        let o = p.process(&Request {
            method: &Method::GET,
            path,
            headers: (&headers).into(),
            peer: "192.0.2.1".parse().unwrap(),
            now_ms: NOW,
        });
        assert_eq!(o.reply, Reply::Pixel);
        assert_eq!(o.event.is_some(), o.class == HitClass::OpenTracked);
        o.class
    }

    #[test]
    fn token_age_and_future_skew() {
        let day = 86_400_000;
        let (p, k) = pipeline(Limits {
            max_token_age_ms: Some(30 * day),
            max_future_skew_ms: 60_000,
            ..Limits::default()
        });
        assert_eq!(
            class(&p, &open(&k, "c", NOW - 29 * day)),
            HitClass::OpenTracked
        );
        assert_eq!(
            class(&p, &open(&k, "c", NOW - 31 * day)),
            HitClass::OpenInvalid
        );
        assert_eq!(
            class(&p, &open(&k, "c", NOW + 59_000)),
            HitClass::OpenTracked
        );
        assert_eq!(
            class(&p, &open(&k, "c", NOW + 61_000)),
            HitClass::OpenInvalid
        );
        // Without a maximum age, any past token counts.
        let (p, k) = pipeline(Limits::default());
        assert_eq!(class(&p, &open(&k, "c", 0)), HitClass::OpenTracked);
    }

    #[test]
    fn ids_nobody_could_opt_out_by_are_never_tracked() {
        let (p, k) = pipeline(Limits::default());
        // Validly signed (the token format allows any UTF-8), but the suppression API would
        // refuse these contact ids, so the contact could never opt out.
        for contact in ["c\n1", "a\u{0}b"] {
            assert_eq!(
                class(&p, &open(&k, contact, NOW)),
                HitClass::OpenInvalid,
                "{contact:?}"
            );
        }
        assert_eq!(class(&p, &open(&k, "c-1", NOW)), HitClass::OpenTracked);
    }

    #[test]
    fn a_tracked_hit_is_encoded_as_prost_would_with_the_tokens_claims() {
        let (p, k) = pipeline(Limits::default());
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, HeaderValue::from_static("Mozilla/5.0"));
        let path = open(&k, "c-9", NOW - 5_000);
        for round in 0..3 {
            let o = p.process(&Request {
                method: &Method::GET,
                path: &path,
                headers: (&headers).into(),
                peer: "192.0.2.1".parse().unwrap(),
                now_ms: NOW,
            });
            let t = o.event.expect("tracked");
            assert_eq!(t.record.key, b"acme/c-9");
            let e = EngagementEvent::decode(t.record.payload.as_slice()).unwrap();
            // The claims signed into the token (`open` above), read back through prost.
            assert_eq!(
                (
                    e.tenant_id.as_str(),
                    e.campaign_id.as_str(),
                    e.message_id.as_str()
                ),
                ("acme", "spring", "m1")
            );
            assert_eq!((e.contact_id.as_str(), e.sent_at_ms), ("c-9", NOW - 5_000));
            assert_eq!((e.occurred_at_ms, e.key_id.as_str()), (NOW, "k1"));
            assert_eq!(e.r#type(), EventType::Open);
            assert_eq!(e.channel(), PbChannel::Email);
            assert_eq!(e.producer_version, PRODUCER_VERSION);
            assert_eq!(
                uuid::Uuid::parse_str(&e.event_id)
                    .unwrap()
                    .get_version_num(),
                7
            );
            assert_eq!(e.signals.as_ref(), Some(&t.signals));
            // The default IP policy keeps the /24 (enrich::net::IpPolicy).
            assert_eq!(e.network.as_ref().unwrap().ip, "192.0.2.0");
            // Canonical: prost encodes what it decoded to the same bytes.
            assert_eq!(e.encode_to_vec(), t.record.payload);
            // Recycled buffers (the server's way) carry nothing into the next hit's record.
            t.record.recycle();
            let _ = round;
        }
    }

    #[test]
    fn event_ids_are_v7_and_distinct() {
        let a = event_id(1_717_000_000_000);
        let b = event_id(1_717_000_000_000);
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 7);
        let (secs, _) = u.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_717_000_000);
        let other = std::thread::spawn(|| event_id(1_717_000_000_000))
            .join()
            .unwrap();
        assert_ne!(other, a);
    }

    #[test]
    fn routes() {
        assert_eq!(route("/o/abc.gif"), Some((Track::Open, "abc")));
        assert_eq!(route("/o/abc"), Some((Track::Open, "abc")));
        assert_eq!(route("/c/abc"), Some((Track::Click, "abc")));
        assert_eq!(route("/c/"), None);
        // Every /o/ path is an open: the pixel, even without a token.
        assert_eq!(route("/o/.gif"), Some((Track::Open, "")));
        assert_eq!(route("/o/"), Some((Track::Open, "")));
        assert_eq!(route("/o/a/b.gif"), Some((Track::Open, "a/b")));
        assert_eq!(route("/c/a/b"), None);
        assert_eq!(route("/x/abc"), None);
        assert_eq!(route("/"), None);
    }
}
