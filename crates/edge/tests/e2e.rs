//! End to end over real sockets: signed URL -> HTTP edge -> enrichment -> suppression ->
//! protobuf -> Kafka protocol (librdkafka against the in-process mock broker) -> a real consumer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{assigned_consumer, http, test_enricher, test_sink, Served};
use openclick_edge::{
    EdgeState, LimitConfig, Limits, Pipeline, ReplayLimiter, ServerConfig, PIXEL_GIF,
};
use openclick_events::v1::{BotReason, Channel, DeviceCategory, EngagementEvent, EventType};
use openclick_events::Message as _;
use openclick_http::ConnConfig;
use openclick_kafka::EmbeddedBroker;
use openclick_suppress::{Reason, SuppressionSet};
use openclick_token::{Channel as TokChannel, Claims, Key, Keyring, TokenKind};

const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15";
const CHROME_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

struct Harness {
    served: Served,
    keyring: Keyring,
    suppression: Arc<SuppressionSet>,
    bootstrap: String,
    topic: String,
    _broker: EmbeddedBroker,
}

impl Harness {
    fn start() -> Harness {
        Harness::start_with(ServerConfig::default())
    }

    fn start_with(config: ServerConfig) -> Harness {
        Harness::start_full(config, Limits::default())
    }

    fn start_full(config: ServerConfig, limits: Limits) -> Harness {
        let topic = format!("events-{}", std::process::id());
        let broker = EmbeddedBroker::start(1, &[(&topic, 3)]).unwrap();
        let bootstrap = broker.bootstrap_servers().to_string();
        let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
        let suppression = Arc::new(SuppressionSet::new());
        // Trust loopback as a forwarding proxy, so tests can set the client address with
        // X-Forwarded-For like a load balancer would.
        let pipeline = Pipeline::new(
            keyring.clone(),
            test_enricher(),
            suppression.clone(),
            openclick_edge::ClientIpConfig::new(
                vec!["127.0.0.1/32".parse().unwrap()],
                openclick_edge::ClientIpHeader::XForwardedFor,
            )
            .unwrap(),
        )
        .with_limits(limits);
        let sink = test_sink(&bootstrap, &topic);
        let served = Served::start(Arc::new(EdgeState::new(pipeline, sink, config)), None);
        Harness {
            served,
            keyring,
            suppression,
            bootstrap,
            topic,
            _broker: broker,
        }
    }

    fn claims(&self, kind: TokenKind, contact: &str) -> Claims {
        Claims {
            kind,
            tenant_id: "acme".into(),
            campaign_id: "spring-sale".into(),
            message_id: "msg-1".into(),
            contact_id: contact.into(),
            channel: TokChannel::Email,
            issued_at_ms: 1_700_000_000_000,
            link_id: if kind == TokenKind::Click {
                "hero".into()
            } else {
                String::new()
            },
            url: if kind == TokenKind::Click {
                "https://shop.example.com/sale?utm_source=mail".into()
            } else {
                String::new()
            },
            honeypot: false,
            list_id: String::new(),
            undo: false,
        }
    }

    fn token(&self, kind: TokenKind, contact: &str) -> String {
        self.keyring.sign(&self.claims(kind, contact)).unwrap()
    }

    /// Stops the server (drain + flush) and returns every event on the topic.
    fn stop_and_consume(mut self, expect: usize) -> Vec<EngagementEvent> {
        self.served.stop();
        consume(&self.bootstrap, &self.topic, expect, Duration::from_secs(3))
    }
}

fn consume(bootstrap: &str, topic: &str, expect: usize, quiet: Duration) -> Vec<EngagementEvent> {
    let consumer = assigned_consumer(bootstrap, topic, 3);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Instant::now();
    while Instant::now() < deadline {
        // Once we have what we expect, keep listening a little to catch unexpected extras.
        if out.len() >= expect && last.elapsed() > quiet {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let ev = EngagementEvent::decode(m.payload.as_deref().unwrap()).unwrap();
            let key = std::str::from_utf8(m.key.as_deref().unwrap()).unwrap();
            assert_eq!(key, format!("{}/{}", ev.tenant_id, ev.contact_id));
            let (name, value) = &m.headers[0];
            assert_eq!(name, "ce_type");
            assert_eq!(value.as_deref().unwrap(), b"openclick.v1.EngagementEvent");
            out.push(ev);
        }
    }
    out.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    out
}

#[test]
fn open_and_click_arrive_on_kafka_with_every_field() {
    let h = Harness::start();
    let open = h.token(TokenKind::Open, "c-1");
    let click = h.token(TokenKind::Click, "c-1");

    let r = http(
        h.served.addr,
        "GET",
        &format!("/o/{open}.gif"),
        &[("User-Agent", SAFARI_MAC)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PIXEL_GIF);
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert_eq!(
        r.header("cache-control"),
        Some("no-store, no-cache, must-revalidate, private, max-age=0")
    );
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("expires"), Some("0"));

    let r = http(
        h.served.addr,
        "GET",
        &format!("/c/{click}"),
        &[("User-Agent", CHROME_WIN), ("DNT", "1")],
        b"",
    );
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com/sale?utm_source=mail")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let before = super_now();
    let events = h.stop_and_consume(2);
    assert_eq!(events.len(), 2, "{events:#?}");
    let (o, c) = (&events[0], &events[1]); // UUIDv7 ids sort by time: open first
    assert_eq!(o.r#type(), EventType::Open);
    assert_eq!(c.r#type(), EventType::Click);
    for e in [o, c] {
        assert_eq!(e.event_id.len(), 36);
        assert_eq!(&e.event_id[14..15], "7", "UUIDv7: {}", e.event_id);
        assert_eq!(e.channel(), Channel::Email);
        assert_eq!(e.tenant_id, "acme");
        assert_eq!(e.campaign_id, "spring-sale");
        assert_eq!(e.message_id, "msg-1");
        assert_eq!(e.contact_id, "c-1");
        assert_eq!(e.sent_at_ms, 1_700_000_000_000);
        assert!(e.occurred_at_ms > 1_700_000_000_000 && e.occurred_at_ms <= before);
        assert_eq!(e.key_id, "k1");
        assert!(!e.producer_version.is_empty());
        let net = e.network.as_ref().unwrap();
        assert_eq!(net.ip, "127.0.0.0", "default policy truncates to /24");
    }
    assert_eq!(o.link_id, "");
    assert_eq!(o.target_url, "");
    let oc = o.client.as_ref().unwrap();
    assert_eq!(oc.user_agent, SAFARI_MAC);
    assert_eq!(oc.browser, "Safari");
    // Canonical OS names, with the version the user agent states (Mac OS X 10_15_7).
    assert_eq!(
        (oc.os.as_str(), oc.os_version.as_str()),
        ("macOS", "10.15.7")
    );
    assert_eq!(oc.device_category(), DeviceCategory::Desktop);
    assert_eq!(c.link_id, "hero");
    assert_eq!(
        c.target_url,
        "https://shop.example.com/sale?utm_source=mail"
    );
    let cc = c.client.as_ref().unwrap();
    assert_eq!(cc.browser, "Chrome");
    assert_eq!(cc.browser_version, "120.0.0.0");
    // Windows NT 10.0 is Windows 10 (or 11: the user agent does not tell them apart).
    assert_eq!((cc.os.as_str(), cc.os_version.as_str()), ("Windows", "10"));
    assert_eq!(cc.device_category(), DeviceCategory::Desktop);
    assert_eq!(cc.email_client, "");
    let cs = c.signals.as_ref().unwrap();
    assert!(cs.dnt);
    assert!(!cs.suspected_bot, "{cs:?}");
}

fn super_now() -> i64 {
    openclick_common::now_ms()
}

#[test]
fn tampered_tokens_never_redirect_and_record_nothing() {
    let h = Harness::start();
    let click = h.token(TokenKind::Click, "c-2");
    let open = h.token(TokenKind::Open, "c-2");
    // Flip one character in the middle of each token.
    let flip = |t: &str| {
        let mut b = t.as_bytes().to_vec();
        let i = b.len() / 2;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let r = http(
        h.served.addr,
        "GET",
        &format!("/c/{}", flip(&click)),
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    assert!(r.header("location").is_none());
    // An open token on the click route is not a click.
    let r = http(h.served.addr, "GET", &format!("/c/{open}"), &[], b"");
    assert_eq!(r.status, 404);
    assert!(r.header("location").is_none());
    let r = http(
        h.served.addr,
        "GET",
        &format!("/o/{}.gif", flip(&open)),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PIXEL_GIF);
    let r = http(h.served.addr, "GET", "/o/not-a-token.gif", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PIXEL_GIF);
    // Malformed requests get a 4xx, not a crash.
    let r = http(h.served.addr, "POST", &format!("/o/{open}.gif"), &[], b"");
    assert_eq!(r.status, 405);
    let r = http(h.served.addr, "GET", "/nope", &[], b"");
    assert_eq!(r.status, 404);
    let raw = raw_exchange(h.served.addr, b"GARBAGE\x01\x02 / HTTP/9\r\n\r\n");
    assert!(raw.is_empty() || raw.starts_with(b"HTTP/1.1 4"), "{raw:?}");

    let metrics = http(h.served.admin, "GET", "/metrics", &[], b"");
    let m = String::from_utf8(metrics.body).unwrap();
    assert!(
        m.contains(r#"openclick_hits_total{route="open",outcome="invalid_token"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"openclick_hits_total{route="click",outcome="invalid_token"} 2"#),
        "{m}"
    );
    // The server is still up and a valid hit still works after all that.
    let r = http(h.served.addr, "GET", &format!("/o/{open}.gif"), &[], b"");
    assert_eq!(r.status, 200);
    let events = h.stop_and_consume(1);
    assert_eq!(
        events.len(),
        1,
        "only the valid open is an event: {events:#?}"
    );
    assert_eq!(events[0].contact_id, "c-2");
}

#[test]
fn suppressed_contact_gets_pixel_and_redirect_but_no_event() {
    let h = Harness::start();
    h.suppression.insert("acme", "opted-out", Reason::OptOut);
    let r = http(
        h.served.addr,
        "GET",
        &format!("/o/{}.gif", h.token(TokenKind::Open, "opted-out")),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PIXEL_GIF);
    let r = http(
        h.served.addr,
        "GET",
        &format!("/c/{}", h.token(TokenKind::Click, "opted-out")),
        &[],
        b"",
    );
    assert_eq!(r.status, 302);
    assert!(r.header("location").is_some());
    // Someone else is still tracked.
    let r = http(
        h.served.addr,
        "HEAD",
        &format!("/o/{}.gif", h.token(TokenKind::Open, "tracked")),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "HEAD has no body");
    let events = h.stop_and_consume(1);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].contact_id, "tracked");
    let s = events[0].signals.as_ref().unwrap();
    assert!(s.suspected_bot, "HEAD is a bot signal");
}

#[test]
fn admin_endpoints() {
    let h = Harness::start();
    assert_eq!(
        http(h.served.admin, "GET", "/healthz", &[], b"").status,
        200
    );
    let info = http(h.served.admin, "GET", "/info", &[], b"");
    let v: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(v["kafka_bootstrap_servers"], h.bootstrap.as_str());
    assert_eq!(v["topic"], h.topic.as_str());
    assert_eq!(v["listen"], h.served.addr.to_string());
    // Ready once the producer has seen the broker.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(h.served.admin, "GET", "/readyz", &[], b"").status != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(h.served.admin, "GET", "/nope", &[], b"").status, 404);
    h.stop_and_consume(0);
}

/// Writes raw bytes on a fresh connection and reads until the server closes it.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close before reading everything: a write error is part of the answer.
    let _ = s.write_all(bytes);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw
}

fn assert_rejected_431(raw: &[u8]) {
    assert!(
        raw.is_empty() || raw.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(80)])
    );
}

#[test]
fn slow_headers_are_cut_off_and_head_size_is_bounded() {
    let h = Harness::start_with(ServerConfig {
        conn: ConnConfig {
            header_read_timeout: Duration::from_millis(300),
            ..ConnConfig::default()
        },
        ..ServerConfig::default()
    });
    // A client that starts a request and never finishes its headers is disconnected.
    let mut s = TcpStream::connect(h.served.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /o/x.gif HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    let t = Instant::now();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "not cut off: {:?}",
        t.elapsed()
    );
    // An oversized request head gets a 431 (or a close), never a crash.
    let big = "x".repeat(64 * 1024);
    let raw = raw_exchange(
        h.served.addr,
        format!("GET /o/x.gif HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert_rejected_431(&raw);
    // Too many headers: likewise. The limit is the configured one: exactly that many are
    // served (Host and `n - 1` others), one more is refused.
    let n = ConnConfig::default().max_headers;
    let many = |count: usize| {
        let mut req = String::from("GET /o/x.gif HTTP/1.1\r\nHost: a\r\n");
        for i in 1..count {
            req.push_str(&format!("X-H{i}: v\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        req
    };
    let raw = raw_exchange(h.served.addr, many(n - 1).as_bytes());
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{n} headers are served");
    assert_rejected_431(&raw_exchange(h.served.addr, many(n).as_bytes()));
    assert_rejected_431(&raw_exchange(h.served.addr, many(200).as_bytes()));
    // Still serving.
    assert_eq!(http(h.served.addr, "GET", "/o/x.gif", &[], b"").status, 200);
    h.stop_and_consume(0);
}

#[test]
fn h2c_prior_knowledge_serves_the_pixel() {
    use http_body_util::{BodyExt, Empty};
    // h2c is opt-in (see openclick-http's crate docs).
    let h = Harness::start_with(ServerConfig {
        conn: ConnConfig {
            http2: true,
            ..ConnConfig::default()
        },
        ..ServerConfig::default()
    });
    let open = h.token(TokenKind::Open, "c-h2");
    let addr = h.served.addr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("http://t.example.com/o/{open}.gif"))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });
    assert_eq!(status, 200);
    assert_eq!(&body[..], PIXEL_GIF);
    let events = h.stop_and_consume(1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].contact_id, "c-h2");
}

#[test]
fn proxies_machine_opens_and_scanners_are_flagged_end_to_end() {
    use openclick_events::v1::{BotReason, ImageProxy};
    let h = Harness::start();
    let gmail =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    let r = http(
        h.served.addr,
        "GET",
        &format!("/o/{}.gif", h.token(TokenKind::Open, "via-gmail")),
        &[("User-Agent", gmail), ("X-Forwarded-For", "66.249.84.1")],
        b"",
    );
    assert_eq!(r.status, 200);
    // Apple Mail Privacy Protection: a bare `Mozilla/5.0` from Apple's 17.0.0.0/8.
    let r = http(
        h.served.addr,
        "GET",
        &format!("/o/{}.gif", h.token(TokenKind::Open, "via-mpp")),
        &[
            ("User-Agent", "Mozilla/5.0"),
            ("X-Forwarded-For", "17.58.10.20"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    // A security gateway checking the link before the person does.
    let r = http(
        h.served.addr,
        "GET",
        &format!("/c/{}", h.token(TokenKind::Click, "via-scanner")),
        &[
            ("User-Agent", "Valimail/1.0 (domain scanner)"),
            ("X-Forwarded-For", "198.51.100.9"),
        ],
        b"",
    );
    assert_eq!(r.status, 302);
    let events = h.stop_and_consume(3);
    assert_eq!(events.len(), 3, "{events:#?}");
    let by = |c: &str| events.iter().find(|e| e.contact_id == c).unwrap();

    let g = by("via-gmail");
    let gs = g.signals.as_ref().unwrap();
    assert_eq!(gs.image_proxy(), ImageProxy::Gmail);
    assert!(
        !g.geo.as_ref().unwrap().reliable,
        "geo behind a proxy is the proxy's"
    );
    assert_eq!(
        g.network.as_ref().unwrap().ip,
        "66.249.84.0",
        "forwarded address, truncated"
    );

    let m = by("via-mpp");
    let ms = m.signals.as_ref().unwrap();
    assert!(ms.machine_open, "{ms:?}");
    assert_eq!(ms.image_proxy(), ImageProxy::Apple);
    assert!(!m.geo.as_ref().unwrap().reliable);

    let s = by("via-scanner");
    let ss = s.signals.as_ref().unwrap();
    assert!(ss.suspected_bot);
    assert!(
        ss.bot_reasons().any(|r| r == BotReason::SecurityScanner),
        "{ss:?}"
    );
    assert_eq!(
        s.client.as_ref().unwrap().device_category(),
        DeviceCategory::Bot
    );
}

#[test]
fn a_replayed_token_is_answered_but_rate_limited() {
    let limiter = Arc::new(ReplayLimiter::new(&LimitConfig::default()));
    let h = Harness::start_full(
        ServerConfig::default(),
        Limits {
            replay: Some(limiter),
            ..Limits::default()
        },
    );
    let open = h.token(TokenKind::Open, "replayed");
    let click = h.token(TokenKind::Click, "replayed");
    // 50 replays of each, as fast as one client can: every hit is answered.
    for _ in 0..50 {
        let r = http(h.served.addr, "GET", &format!("/o/{open}.gif"), &[], b"");
        assert_eq!((r.status, r.body.as_slice()), (200, &PIXEL_GIF[..]));
        let r = http(h.served.addr, "GET", &format!("/c/{click}"), &[], b"");
        assert_eq!(r.status, 302);
    }
    let metrics = http(h.served.admin, "GET", "/metrics", &[], b"").text();
    for route in ["open", "click"] {
        let line = format!("openclick_hits_total{{route=\"{route}\",outcome=\"rate_limited\"}} 38");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    // The default burst (12 per token) reaches Kafka, nothing more.
    let events = h.stop_and_consume(24);
    let opens = events
        .iter()
        .filter(|e| e.r#type == EventType::Open as i32)
        .count();
    let clicks = events
        .iter()
        .filter(|e| e.r#type == EventType::Click as i32)
        .count();
    assert_eq!((opens, clicks), (12, 12), "{} events", events.len());
}

#[test]
fn every_open_path_gets_the_pixel() {
    let h = Harness::start();
    for path in ["/o/", "/o/.gif", "/o/a/b.gif", "/o/%00.gif"] {
        let r = http(h.served.addr, "GET", path, &[], b"");
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &PIXEL_GIF[..]),
            "{path}"
        );
    }
    assert_eq!(http(h.served.addr, "GET", "/c/", &[], b"").status, 404);
    assert!(h.stop_and_consume(0).is_empty());
}

/// README: `GET|HEAD /c/{token}`: a valid token redirects; HEAD gets the `302` with no body and
/// its event is flagged (HEAD is a bot signal). A token only works on its own route: a click
/// token on `/o/` gets the pixel and no event, an open token on `/c/` a `404`.
#[test]
fn head_on_a_click_redirects_without_a_body_and_a_token_works_only_on_its_route() {
    let h = Harness::start();
    let click = h.token(TokenKind::Click, "head-click");
    let r = http(
        h.served.addr,
        "HEAD",
        &format!("/c/{click}"),
        &[("User-Agent", CHROME_WIN)],
        b"",
    );
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://shop.example.com/sale?utm_source=mail")
    );
    assert!(r.body.is_empty(), "HEAD has no body: {:?}", r.text());

    // A click token on the open route: the pixel, counted invalid, no event.
    let r = http(
        h.served.addr,
        "GET",
        &format!("/o/{click}.gif"),
        &[("User-Agent", CHROME_WIN)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PIXEL_GIF);
    assert!(r.header("location").is_none());
    // An open token on the click route: 404, no redirect, no event.
    let open = h.token(TokenKind::Open, "head-click");
    let r = http(h.served.addr, "HEAD", &format!("/c/{open}"), &[], b"");
    assert_eq!(r.status, 404);
    assert!(r.header("location").is_none());

    let m = http(h.served.admin, "GET", "/metrics", &[], b"").text();
    for series in [
        r#"openclick_hits_total{route="click",outcome="tracked"} 1"#,
        r#"openclick_hits_total{route="open",outcome="invalid_token"} 1"#,
        r#"openclick_hits_total{route="click",outcome="invalid_token"} 1"#,
        r#"openclick_hits_total{route="open",outcome="tracked"} 0"#,
    ] {
        assert!(m.contains(series), "no {series}: {m}");
    }

    let events = h.stop_and_consume(1);
    assert_eq!(
        events.len(),
        1,
        "only the HEAD click is an event: {events:#?}"
    );
    let e = &events[0];
    assert_eq!(e.r#type(), EventType::Click);
    assert_eq!(e.contact_id, "head-click");
    let s = e.signals.as_ref().unwrap();
    assert!(s.suspected_bot, "HEAD is a bot signal: {s:?}");
    assert!(
        s.bot_reasons.contains(&(BotReason::HeadRequest as i32)),
        "{s:?}"
    );
}
