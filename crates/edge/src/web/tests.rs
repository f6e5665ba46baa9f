use super::*;
use crate::client_ip::ClientIpConfig;
use crate::pipeline::{Reply, Request};
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_suppress::{Reason, SuppressionSet};
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};

const NOW: i64 = 1_700_000_000_000;
const SITE: &str = "https://shop.example.com";

/// The query pairs of `url` as the URL Standard parses them (independent of our rewriting).
fn pairs(u: &str) -> Vec<(String, String)> {
    url::Url::parse(u)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[test]
fn with_param_appends_keeps_query_and_fragment() {
    let u = with_param("https://shop.example.com/sale", "oc_id", "TOK").unwrap();
    assert_eq!(pairs(&u), [("oc_id".into(), "TOK".into())]);
    assert_eq!(url::Url::parse(&u).unwrap().path(), "/sale");

    let u = with_param(
        "https://shop.example.com/p?utm_source=mail&q=a%20b+c#reviews",
        "oc_id",
        "TOK",
    )
    .unwrap();
    let parsed = url::Url::parse(&u).unwrap();
    assert_eq!(parsed.fragment(), Some("reviews"));
    assert_eq!(
        pairs(&u),
        [
            ("utm_source".into(), "mail".into()),
            ("q".into(), "a b c".into()),
            ("oc_id".into(), "TOK".into())
        ]
    );
    // Other parameters kept byte for byte.
    assert_eq!(parsed.query(), Some("utm_source=mail&q=a%20b+c&oc_id=TOK"));
}

#[test]
fn with_param_replaces_an_existing_parameter() {
    let u = with_param(
        "https://shop.example.com/?oc_id=old&a=1&oc%5Fid=older&oc_idx=2#f",
        "oc_id",
        "NEW",
    )
    .unwrap();
    assert_eq!(
        pairs(&u),
        [
            ("a".into(), "1".into()),
            ("oc_idx".into(), "2".into()),
            ("oc_id".into(), "NEW".into())
        ]
    );
    assert_eq!(url::Url::parse(&u).unwrap().fragment(), Some("f"));
    // Empty query, a lone `?`, a custom name.
    assert_eq!(
        with_param("https://a.example/x?", "ref", "T").unwrap(),
        "https://a.example/x?ref=T"
    );
    assert!(with_param("/relative", "oc_id", "T").is_none());
}

#[test]
fn without_param_strips_only_the_handoff() {
    let u = without_param("https://shop.example.com/p?a=1&oc_id=T#x", "oc_id").unwrap();
    assert_eq!(u.as_str(), "https://shop.example.com/p?a=1#x");
    let u = without_param("https://shop.example.com/p?oc_id=T", "oc_id").unwrap();
    assert_eq!(u.as_str(), "https://shop.example.com/p");
    assert!(without_param("not a url", "oc_id").is_none());
}

#[test]
fn settings_file_parses_with_defaults_and_refuses_bad_values() {
    let s = WebSettings::from_toml(
        "[tenant.acme]\nhandoff = true\norigins = [\"https://Shop.Example.com:443/\"]\n\
         [tenant.globex]\nparam = \"ref\"\nlifetime_days = 7\nhonour_dnt = true\nhonour_gpc = false\n",
    )
    .unwrap();
    let a = s.tenant("acme").unwrap();
    assert!(a.handoff && a.honour_gpc && !a.honour_dnt);
    assert_eq!(a.param, "oc_id");
    assert_eq!(a.lifetime_days, 30);
    assert_eq!(a.origins, [SITE]);
    let g = s.tenant("globex").unwrap();
    assert!(!g.handoff && !g.honour_gpc && g.honour_dnt);
    assert_eq!((g.param.as_str(), g.lifetime_days), ("ref", 7));
    assert!(s.tenant("initech").is_none());
    assert!(WebSettings::from_toml("").unwrap().is_empty());
    for bad in [
        "[tenant.a]\nhandoff = true\n",
        "[tenant.a]\norigins = [\"https://a.example/path\"]\n",
        "[tenant.a]\norigins = [\"ftp://a.example\"]\n",
        "[tenant.a]\norigins = [\"*\"]\n",
        "[tenant.a]\nparam = \"a b\"\n",
        "[tenant.a]\nparam = \"\"\n",
        "[tenant.a]\nlifetime_days = 0\n",
        "[tenant.a]\nlifetime_days = 401\n",
        "[tenant.a]\nhandof = true\n",
        "tenant = 3\n",
    ] {
        assert!(WebSettings::from_toml(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_snippet_is_small() {
    // The gzipped size (no gzip crate in the tree) is measured in BENCHMARKS.md with
    // `gzip -9c crates/edge/web/w.js | wc -c`.
    eprintln!("/w.js: {} bytes as served", SNIPPET.len());
    assert!(SNIPPET.len() <= 2048, "{} bytes", SNIPPET.len());
    assert!(SNIPPET.is_ascii());
}

struct Fixture {
    pipeline: Pipeline,
    web: Arc<Web>,
    keys: KeyStore,
    set: Arc<SuppressionSet>,
}

fn fixture(settings: &str) -> Fixture {
    let keyring = Keyring::new(Key::new("k1", &[9u8; 32]).unwrap(), vec![]).unwrap();
    // The default "too fast after sending" delay (2 s): page views must not trip it.
    let enricher = Enricher::new(EnrichConfig {
        reload_poll: None,
        ..EnrichConfig::default()
    })
    .unwrap();
    let set = Arc::new(SuppressionSet::new());
    let web = Arc::new(Web::new(WebSettings::from_toml(settings).unwrap()));
    let pipeline = Pipeline::new(
        keyring.clone(),
        Arc::new(enricher),
        set.clone(),
        ClientIpConfig::default(),
    )
    .with_web(web.clone());
    Fixture {
        pipeline,
        web,
        keys: KeyStore::global(keyring),
        set,
    }
}

const ON: &str = "[tenant.acme]\nhandoff = true\norigins = [\"https://shop.example.com\"]\n";

fn click(keys: &KeyStore, url: &str) -> String {
    let t = keys
        .sign(&Claims {
            kind: TokenKind::Click,
            tenant_id: "acme".into(),
            campaign_id: "spring".into(),
            message_id: "m1".into(),
            contact_id: "c-42".into(),
            channel: Channel::Email,
            issued_at_ms: NOW - 1000,
            link_id: "hero".into(),
            url: url.into(),
            honeypot: false,
            list_id: String::new(),
            undo: false,
        })
        .unwrap();
    format!("/c/{t}")
}

fn follow(f: &Fixture, path: &str, headers: &HeaderMap) -> Reply {
    f.pipeline
        .process(&Request {
            method: &Method::GET,
            path,
            headers: headers.into(),
            peer: "192.0.2.1".parse().unwrap(),
            now_ms: NOW,
        })
        .reply
}

fn location(r: &Reply) -> String {
    match r {
        Reply::Redirect(v) => v.to_str().unwrap().to_owned(),
        other => panic!("not a redirect: {other:?}"),
    }
}

fn oc_id(u: &str) -> Option<String> {
    pairs(u)
        .into_iter()
        .find(|(k, _)| k == "oc_id")
        .map(|(_, v)| v)
}

#[test]
fn the_click_hands_over_a_web_token_only_when_configured() {
    let f = fixture(ON);
    let dest = "https://shop.example.com/sale?utm=mail#top";
    let to = location(&follow(&f, &click(&f.keys, dest), &HeaderMap::new()));
    let token = oc_id(&to).expect("hand-off parameter");
    let v = f.keys.verify_web(&token, NOW).unwrap();
    assert_eq!(
        (
            v.claims.tenant_id.as_str(),
            v.claims.campaign_id.as_str(),
            v.claims.contact_id.as_str()
        ),
        ("acme", "spring", "c-42")
    );
    assert_eq!(v.claims.expires_at_ms, NOW + 30 * DAY_MS);
    assert_eq!(url::Url::parse(&to).unwrap().fragment(), Some("top"));
    assert_eq!(f.web.counted(WebClass::HandoffAdded), 1);

    // GPC honoured (the default): the destination as signed.
    let mut gpc = HeaderMap::new();
    gpc.insert("sec-gpc", HeaderValue::from_static("1"));
    assert_eq!(location(&follow(&f, &click(&f.keys, dest), &gpc)), dest);
    // Suppressed contact: no hand-off.
    f.set.insert("acme", "c-42", Reason::OptOut);
    assert_eq!(
        location(&follow(&f, &click(&f.keys, dest), &HeaderMap::new())),
        dest
    );
    // Hand-off off, or tenant not configured.
    for settings in ["[tenant.acme]\nhandoff = false\n", ""] {
        let f = fixture(settings);
        assert_eq!(
            location(&follow(&f, &click(&f.keys, dest), &HeaderMap::new())),
            dest
        );
    }
}

fn web_token(keys: &KeyStore, issued: i64) -> String {
    keys.sign_web(&WebClaims {
        tenant_id: "acme".into(),
        campaign_id: "spring".into(),
        contact_id: "c-42".into(),
        issued_at_ms: issued,
        expires_at_ms: issued + DAY_MS,
    })
    .unwrap()
}

fn beacon(f: &Fixture, method: Method, path: &str, body: &str, headers: &HeaderMap) -> WebOutcome {
    let (query, body) = if method == Method::POST {
        (None, body.as_bytes())
    } else {
        (Some(body), &b""[..])
    };
    process(
        &f.pipeline,
        &f.web,
        &WebRequest {
            method: &method,
            path,
            query,
            headers,
            body,
            peer: "192.0.2.1".parse().unwrap(),
            now_ms: NOW,
        },
    )
}

fn form(page: &str, referrer: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("u", page)
        .append_pair("r", referrer)
        .finish()
}

fn site_origin() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::ORIGIN, HeaderValue::from_static(SITE));
    h.insert(
        header::USER_AGENT,
        HeaderValue::from_static(
            "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36",
        ),
    );
    h
}

#[test]
fn a_beacon_becomes_a_page_view() {
    let f = fixture(ON);
    let path = format!("/w/{}", web_token(&f.keys, NOW - 1000));
    let body = form(
        "https://shop.example.com/p?a=1&oc_id=LEFTOVER#x",
        "https://mail.example/",
    );
    let o = beacon(&f, Method::POST, &path, &body, &site_origin());
    assert_eq!(o.class, WebClass::Tracked);
    assert_eq!(
        o.reply,
        WebReply::Beacon {
            gif: false,
            cors: Some(HeaderValue::from_static(SITE))
        }
    );
    let e = o.event.unwrap();
    assert_eq!(e.r#type, EventType::PageView as i32);
    assert_eq!(e.channel, PbChannel::Web as i32);
    assert_eq!(
        (e.tenant_id.as_str(), e.contact_id.as_str()),
        ("acme", "c-42")
    );
    assert_eq!(e.page_url, "https://shop.example.com/p?a=1#x");
    assert_eq!(e.referrer, "https://mail.example/");
    // Flagged, not dropped: the headless browser is a signal on the event; the view a second
    // after the hand-off is not "too fast" (that rule is about time since sending).
    let signals = e.signals.unwrap();
    assert!(signals.suspected_bot, "{signals:?}");
    assert!(
        !signals
            .bot_reasons
            .contains(&(openclick_events::v1::BotReason::TooFast as i32)),
        "{signals:?}"
    );
    let mut person = HeaderMap::new();
    person.insert(header::ORIGIN, HeaderValue::from_static(SITE));
    person.insert(
        header::USER_AGENT,
        HeaderValue::from_static(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        ),
    );
    let e = beacon(&f, Method::POST, &path, &body, &person)
        .event
        .unwrap();
    assert!(!e.signals.unwrap().suspected_bot);

    // The image fallback: GET with the query, no Origin header; the pixel.
    let o = beacon(&f, Method::GET, &path, &body, &HeaderMap::new());
    assert_eq!(o.class, WebClass::Tracked);
    assert_eq!(
        o.reply,
        WebReply::Beacon {
            gif: true,
            cors: None
        }
    );
}

#[test]
fn beacons_that_must_not_count() {
    let f = fixture(ON);
    let good = web_token(&f.keys, NOW - 1000);
    let path = format!("/w/{good}");
    let page = form("https://shop.example.com/", "");
    let h = site_origin();
    let class = |method: Method, path: &str, body: &str, h: &HeaderMap| {
        let o = beacon(&f, method, path, body, h);
        assert!(o.event.is_none() || o.class == WebClass::Tracked);
        o.class
    };
    // Expired (issued two days ago, valid one day), tampered, an open/click token.
    let old = format!("/w/{}", web_token(&f.keys, NOW - 2 * DAY_MS));
    assert_eq!(class(Method::POST, &old, &page, &h), WebClass::Expired);
    let mut t = good.clone().into_bytes();
    let last = t.len() - 1;
    t[last] = if t[last] == b'A' { b'B' } else { b'A' };
    let tampered = format!("/w/{}", String::from_utf8(t).unwrap());
    assert_eq!(
        class(Method::POST, &tampered, &page, &h),
        WebClass::InvalidToken
    );
    let click_token = click(&f.keys, "https://shop.example.com/");
    let confused = click_token.replacen("/c/", "/w/", 1);
    assert_eq!(
        class(Method::POST, &confused, &page, &h),
        WebClass::InvalidToken
    );
    assert_eq!(
        class(Method::POST, "/w/", &page, &h),
        WebClass::InvalidToken
    );
    // Another site's page or Origin.
    let other = form("https://evil.example/", "");
    assert_eq!(
        class(Method::POST, &path, &other, &h),
        WebClass::OriginRefused
    );
    let mut evil = h.clone();
    evil.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    assert_eq!(
        class(Method::POST, &path, &page, &evil),
        WebClass::OriginRefused
    );
    // Malformed input: 400, never a panic.
    for body in ["", "u=", "u=not%20a%20url", "r=x", "%%%", "u=%FF%FE"] {
        assert_eq!(
            class(Method::POST, &path, body, &h),
            WebClass::BadRequest,
            "{body}"
        );
    }
    let long = form(
        &format!("https://shop.example.com/{}", "a".repeat(5000)),
        "",
    );
    assert_eq!(class(Method::POST, &path, &long, &h), WebClass::BadRequest);
    // GPC honoured; DNT not (default) ...
    let mut gpc = h.clone();
    gpc.insert("sec-gpc", HeaderValue::from_static("1"));
    assert_eq!(class(Method::POST, &path, &page, &gpc), WebClass::OptedOut);
    let mut dnt = h.clone();
    dnt.insert(header::DNT, HeaderValue::from_static("1"));
    assert_eq!(class(Method::POST, &path, &page, &dnt), WebClass::Tracked);
    // ... suppressed contact.
    f.set.insert("acme", "c-42", Reason::OptOut);
    assert_eq!(class(Method::POST, &path, &page, &h), WebClass::Suppressed);
    // Methods.
    assert_eq!(
        class(Method::PUT, &path, &page, &h),
        WebClass::MethodNotAllowed
    );
    // Web tracking off for the tenant: nothing, whatever the token.
    let off = fixture("[tenant.acme]\nhandoff = false\norigins = [\"https://shop.example.com\"]\n");
    let t = format!("/w/{}", web_token(&off.keys, NOW - 1000));
    assert_eq!(
        beacon(&off, Method::POST, &t, &page, &h).class,
        WebClass::Disabled
    );
}

#[test]
fn cors_answers_configured_origins_only() {
    let f = fixture(ON);
    let path = format!("/w/{}", web_token(&f.keys, NOW - 1000));
    let o = beacon(&f, Method::OPTIONS, &path, "", &site_origin());
    assert_eq!(
        o.reply,
        WebReply::Preflight(Some(HeaderValue::from_static(SITE)))
    );
    let r = response(o.reply);
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);
    assert_eq!(r.headers()[header::VARY], "Origin");
    let mut evil = HeaderMap::new();
    evil.insert(
        header::ORIGIN,
        HeaderValue::from_static("https://evil.example"),
    );
    let r = response(beacon(&f, Method::OPTIONS, &path, "", &evil).reply);
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_METHODS)
        .is_none());
    assert_eq!(r.headers()[header::VARY], "Origin");
}

#[test]
fn the_script_route() {
    let f = fixture("");
    let o = beacon(&f, Method::GET, "/w.js", "", &HeaderMap::new());
    assert_eq!(o.class, WebClass::Script);
    let r = response(o.reply);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(r.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .starts_with("public"));
    assert_eq!(
        beacon(&f, Method::POST, "/w.js", "", &HeaderMap::new()).class,
        WebClass::MethodNotAllowed
    );
    assert!(
        is_web_path("/w.js") && is_web_path("/w/x") && !is_web_path("/wx") && !is_web_path("/o/x")
    );
}
