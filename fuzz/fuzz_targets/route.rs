//! `pipeline::route` on arbitrary paths and `Pipeline::process` on arbitrary method, path and
//! header bytes. Never panics; a redirect only ever carries the destination of a click token
//! that verifies; an open route always gets the pixel; an event exactly when the hit is tracked.
//!
//! Input lines: the method, the path, then header lines (`NAME: VALUE`, `@peer ADDR`,
//! `@trust NET`; see `openclick_fuzz::parse_headers`). A path `/o/!ID` or `/c/!URL` is replaced
//! by a token the fixed keyring signs (contact `ID`, or destination `URL`), so the fuzzer reaches
//! enrichment and the redirect with valid tokens.
#![no_main]

use std::sync::{Arc, LazyLock};

use http::Method;
use libfuzzer_sys::fuzz_target;
use openclick_edge::pipeline::{route, Request};
use openclick_edge::{HitClass, Pipeline, Reply};
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_fuzz::{keyring, lines, parse_headers};
use openclick_suppress::{Reason, SuppressionSet};
use openclick_token::{Channel, Claims, Keyring, TokenKind};

struct Fixture {
    keyring: Keyring,
    enricher: Arc<Enricher>,
    suppression: Arc<SuppressionSet>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let enricher = Enricher::new(EnrichConfig {
        reload_poll: None,
        ..EnrichConfig::default()
    })
    .unwrap();
    let suppression = SuppressionSet::new();
    suppression.insert("acme", "suppressed", Reason::OptOut);
    Fixture {
        keyring: keyring(),
        enricher: Arc::new(enricher),
        suppression: Arc::new(suppression),
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
            TokenKind::Click => "c-1".into(),
        },
        channel: Channel::Email,
        issued_at_ms: 1_700_000_000_000,
        link_id: match kind {
            TokenKind::Open => String::new(),
            TokenKind::Click => "hero".into(),
        },
        url: match kind {
            TokenKind::Open => String::new(),
            TokenKind::Click => arg.into(),
        },
    };
    let token = FIXTURE.keyring.sign(&claims).ok()?;
    Some(match kind {
        TokenKind::Open => format!("/o/{token}.gif"),
        TokenKind::Click => format!("/c/{token}"),
    })
}

fn check_route(path: &str) {
    if let Some((kind, token)) = route(path) {
        assert!(!token.is_empty() && !token.contains('/'));
        let prefix = match kind {
            TokenKind::Open => "/o/",
            TokenKind::Click => "/c/",
        };
        let rest = path.strip_prefix(prefix).expect("route kind matches the prefix");
        assert!(rest == token || (kind == TokenKind::Open && rest == format!("{token}.gif")));
    }
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
    let pipeline = Pipeline::new(
        f.keyring.clone(),
        Arc::clone(&f.enricher),
        Arc::clone(&f.suppression),
        h.trusted.clone(),
    );
    let out = pipeline.process(&Request {
        method: &method,
        path,
        headers: &h.headers,
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
                HitClass::ClickTracked | HitClass::ClickSuppressed
            ));
            let (kind, token) = routed.expect("a redirect for a path that does not route");
            assert_eq!(kind, TokenKind::Click);
            let v = f.keyring.verify(token).expect("a redirect for a bad token");
            assert_eq!(v.claims.kind, TokenKind::Click);
            assert_eq!(location.as_bytes(), v.claims.url.as_bytes());
            assert!(openclick_token::validate_destination(&v.claims.url).is_ok());
            if let Some(e) = &out.event {
                assert_eq!(e.target_url, v.claims.url);
                assert_eq!(e.contact_id, v.claims.contact_id);
            }
        }
        Reply::Pixel => {
            assert!(matches!(routed, Some((TokenKind::Open, _))));
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
