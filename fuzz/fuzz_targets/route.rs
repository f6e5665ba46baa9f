//! `pipeline::route` on arbitrary paths and `Pipeline::process` on arbitrary method, path and
//! header bytes. Never panics; a redirect only ever carries the destination of a click token
//! that verifies, and never to a blocked host as a browser (the `url` crate) reads it; an open
//! route always gets the pixel; an event exactly when the hit is tracked.
//!
//! Input lines: the method, the path, then header lines (`NAME: VALUE`, `@peer ADDR`,
//! `@trust NET`, `@header NAME`; see `openclick_fuzz::parse_headers`). A path `/o/!ID` or
//! `/c/!URL` is replaced by a token the fixed keyring signs (contact `ID`, or destination
//! `URL`), so the fuzzer reaches enrichment, the block list and the redirect with valid tokens.
//! The block list holds the host `blocked.example` (and so its subdomains).
#![no_main]

use std::sync::{Arc, LazyLock};

use http::Method;
use libfuzzer_sys::fuzz_target;
use openclick_edge::pipeline::{route, Limits, Request, Track};
use openclick_edge::{HitClass, Pipeline, Reply};
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_fuzz::{keyring, lines, parse_headers};
use openclick_suppress::blocks::{Block, BlockChange, BlockList, BlockScope};
use openclick_suppress::{Reason, SuppressionSet};
use openclick_token::{Channel, Claims, Keyring, TokenKind};

struct Fixture {
    keyring: Keyring,
    enricher: Arc<Enricher>,
    suppression: Arc<SuppressionSet>,
    blocks: Arc<BlockList>,
}

const BLOCKED_HOST: &str = "blocked.example";

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let enricher = Enricher::new(EnrichConfig {
        reload_poll: None,
        ..EnrichConfig::default()
    })
    .unwrap();
    let suppression = SuppressionSet::new();
    suppression.insert("acme", "suppressed", Reason::OptOut);
    let blocks = BlockList::new();
    blocks.apply(&BlockChange {
        scope: BlockScope::Host {
            host: BLOCKED_HOST.into(),
        }
        .validated()
        .unwrap(),
        block: Some(Block {
            reason: "fuzz".into(),
            at_ms: 1,
        }),
    });
    Fixture {
        keyring: keyring(),
        enricher: Arc::new(enricher),
        suppression: Arc::new(suppression),
        blocks: Arc::new(blocks),
    }
});

fn signed_path(kind: TokenKind, arg: &str) -> Option<String> {
    let claims = Claims {
        kind,
        tenant_id: "acme".into(),
        campaign_id: "spring".into(),
        message_id: "m-1".into(),
        contact_id: match kind {
            TokenKind::Open => arg.into(),
            TokenKind::Click | TokenKind::Unsubscribe => "c-1".into(),
        },
        channel: Channel::Email,
        issued_at_ms: 1_700_000_000_000,
        link_id: match kind {
            TokenKind::Open => String::new(),
            TokenKind::Click => "hero".into(),
            TokenKind::Unsubscribe => String::new(),
        },
        url: match kind {
            TokenKind::Open | TokenKind::Unsubscribe => String::new(),
            TokenKind::Click => arg.into(),
        },
        honeypot: false,
        list_id: String::new(),
        undo: false,
    };
    let token = FIXTURE.keyring.sign(&claims).ok()?;
    Some(match kind {
        TokenKind::Open => format!("/o/{token}.gif"),
        TokenKind::Click => format!("/c/{token}"),
        TokenKind::Unsubscribe => format!("/u/{token}"),
    })
}

fn check_route(path: &str) {
    if let Some((kind, token)) = route(path) {
        match kind {
            // Every `/o/...` gets the pixel, whatever follows.
            Track::Open => {
                let rest = path.strip_prefix("/o/").expect("an open route starts /o/");
                assert!(rest == token || rest == format!("{token}.gif"));
            }
            Track::Click => {
                let rest = path.strip_prefix("/c/").expect("a click route starts /c/");
                assert!(rest == token && !token.is_empty() && !token.contains('/'));
            }
        }
    }
}

/// Whether a browser going to `location` lands on the blocked host or a subdomain of it.
fn browser_goes_to_blocked_host(location: &str) -> bool {
    let Ok(u) = url::Url::parse(location) else {
        return false; // a browser goes nowhere
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.');
    host == BLOCKED_HOST || host.ends_with(&format!(".{BLOCKED_HOST}"))
}

fuzz_target!(|data: &[u8]| {
    let mut it = lines(data);
    let method = it.next().unwrap_or_default();
    let raw_path = String::from_utf8_lossy(it.next().unwrap_or_default());
    check_route(&raw_path);
    let h = parse_headers(it);
    let path = if let Some(id) = raw_path.strip_prefix("/o/!") {
        signed_path(TokenKind::Open, id)
    } else if let Some(url) = raw_path.strip_prefix("/c/!") {
        signed_path(TokenKind::Click, url)
    } else {
        None
    };
    let path = path.as_deref().unwrap_or(&raw_path);
    check_route(path);
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };

    let f = &*FIXTURE;
    let Some(client_ip) = h.client_ip_config() else {
        return;
    };
    let pipeline = Pipeline::new(
        f.keyring.clone(),
        Arc::clone(&f.enricher),
        Arc::clone(&f.suppression),
        client_ip,
    )
    .with_blocks(Arc::clone(&f.blocks))
    .with_limits(Limits {
        max_token_age_ms: Some(30 * 86_400_000),
        ..Limits::default()
    });
    let out = pipeline.process(&Request {
        method: &method,
        path,
        headers: (&h.headers).into(),
        peer: h.peer,
        now_ms: 1_700_000_100_000,
    });
    let routed = route(path);
    let tracked = matches!(out.class, HitClass::OpenTracked | HitClass::ClickTracked);
    assert_eq!(out.event.is_some(), tracked, "{:?}", out.class);
    match &out.reply {
        Reply::Redirect(location) => {
            assert!(matches!(
                out.class,
                HitClass::ClickTracked | HitClass::ClickSuppressed | HitClass::ClickRateLimited
            ));
            let (kind, token) = routed.expect("a redirect for a path that does not route");
            assert_eq!(kind, Track::Click);
            let v = f.keyring.verify(token).expect("a redirect for a bad token");
            assert_eq!(v.claims.kind, TokenKind::Click);
            assert_eq!(location.as_bytes(), v.claims.url.as_bytes());
            assert!(openclick_token::validate_destination(&v.claims.url).is_ok());
            assert!(
                !browser_goes_to_blocked_host(&v.claims.url),
                "redirect to a blocked host: {:?}",
                v.claims.url
            );
            if let Some(t) = &out.event {
                // The encoded record, read back by prost, carries the signed claims.
                let e = t.event();
                assert_eq!(e.target_url, v.claims.url);
                assert_eq!(e.contact_id, v.claims.contact_id);
                let key = format!("{}/{}", v.claims.tenant_id, v.claims.contact_id);
                assert_eq!(t.record.key, key.as_bytes());
            }
        }
        Reply::Gone => {
            assert_eq!(out.class, HitClass::ClickBlocked);
            let (kind, token) = routed.expect("410 for a path that does not route");
            assert_eq!(kind, Track::Click);
            assert!(f.keyring.verify(token).is_ok(), "410 for a bad token");
        }
        Reply::Pixel => {
            assert!(matches!(routed, Some((Track::Open, _))));
        }
        Reply::NotFound => {
            assert!(!tracked);
        }
        Reply::MethodNotAllowed => {
            assert!(method != Method::GET && method != Method::HEAD);
        }
    }
    let _ = out.class.labels();
});
