//! Unit tests of the unsubscribe decision, the spool and the pages, without sockets.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::HeaderValue;
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_suppress::{SuppressError, WriteFuture};
use openclick_token::{Channel, Key, Keyring};
use parking_lot::Mutex;

use super::page::text_on;
use super::*;
use crate::client_ip::ClientIpConfig;

const NOW: i64 = 1_750_000_000_000;

/// A writer that records what it acknowledges, or fails while `down`.
#[derive(Default)]
struct FakeWriter {
    written: Mutex<Vec<Change>>,
    down: AtomicBool,
}

impl SuppressionWriter for FakeWriter {
    fn write<'a>(&'a self, changes: &'a [Change], _source: &'a str) -> WriteFuture<'a> {
        Box::pin(async move {
            if self.down.load(Ordering::Relaxed) {
                return Err(SuppressError::Kafka("broker down".into()));
            }
            self.written.lock().extend_from_slice(changes);
            Ok(())
        })
    }
    fn write_blocks<'a>(
        &'a self,
        _changes: &'a [openclick_suppress::blocks::BlockChange],
        _source: &'a str,
    ) -> WriteFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

struct Fixture {
    pipeline: Pipeline,
    keyring: Keyring,
    writer: Arc<FakeWriter>,
    set: Arc<SuppressionSet>,
    u: Unsubscribe,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let enricher = Enricher::new(EnrichConfig {
        reload_poll: None,
        min_delay_ms: 0,
        ..EnrichConfig::default()
    })
    .unwrap();
    let set = Arc::new(SuppressionSet::new());
    let pipeline = Pipeline::new(
        keyring.clone(),
        Arc::new(enricher),
        set.clone(),
        ClientIpConfig::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(FakeWriter::default());
    let mut config = UnsubscribeConfig::new(dir.path().join("spool/unsubscribe.ndjson"));
    config.ack_timeout = Duration::from_millis(200);
    let u = Unsubscribe::new(config, writer.clone(), set.clone()).unwrap();
    Fixture {
        pipeline,
        keyring,
        writer,
        set,
        u,
        _dir: dir,
    }
}

fn unsub_claims(list: &str) -> Claims {
    Claims {
        kind: TokenKind::Unsubscribe,
        tenant_id: "acme".into(),
        campaign_id: "spring".into(),
        message_id: "m-1".into(),
        contact_id: "c-42".into(),
        channel: Channel::Email,
        issued_at_ms: NOW - 86_400_000,
        link_id: String::new(),
        url: String::new(),
        honeypot: false,
        list_id: list.into(),
        undo: false,
    }
}

/// The request head of a form POST to `path`.
fn post_parts(path: &str) -> http::request::Parts {
    let (mut parts, ()) = http::Request::post(path).body(()).unwrap().into_parts();
    parts.headers = form_headers();
    parts
}

fn form_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    h
}

fn decide(f: &Fixture, method: Method, path: &str, body: &[u8], now_ms: i64) -> Decision {
    let headers = form_headers();
    f.u.decide(
        &f.pipeline,
        &UnsubRequest {
            method: &method,
            path,
            headers: &headers,
            body,
            peer: "192.0.2.1".parse().unwrap(),
            now_ms,
        },
    )
}

/// The path the done page's Undo form posts to (`/u/UNDO_TOKEN`).
fn undo_path_in(html: &str) -> &str {
    let at = html.find("action=\"/u/").unwrap() + "action=\"".len();
    &html[at..at + html[at..].find('"').unwrap()]
}

/// RFC 8058 section 3.1: the POST body is exactly `List-Unsubscribe=One-Click`.
const ONE_CLICK: &[u8] = b"List-Unsubscribe=One-Click";

#[test]
fn a_get_never_writes_whatever_the_user_agent() {
    let f = fixture();
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    for m in [Method::GET, Method::HEAD] {
        match decide(&f, m, &format!("/u/{t}"), b"", NOW) {
            Decision::Reply(Kind::Page, UnsubReply::Html(h)) => {
                assert!(h.len() < 5 * 1024, "page is {} bytes", h.len());
                assert!(!h.contains("<script"));
                assert!(h.contains("method=\"post\""));
                assert!(h.contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(!f.set.is_suppressed("acme", "c-42"));
}

#[test]
fn tampered_unknown_and_wrong_kind_tokens_are_404_and_write_nothing() {
    let f = fixture();
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    let mut tampered = t.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let foreign = other.sign(&unsub_claims("")).unwrap();
    let open = f
        .keyring
        .sign(&Claims {
            kind: TokenKind::Open,
            ..unsub_claims("")
        })
        .unwrap();
    for path in [
        format!("/u/{tampered}"),
        format!("/u/{foreign}"),
        format!("/u/{open}"),
        "/u/".into(),
        format!("/u/{t}/x"),
    ] {
        for m in [Method::GET, Method::POST] {
            match decide(&f, m, &path, ONE_CLICK, NOW) {
                Decision::Refuse(Refusal::InvalidToken, UnsubReply::Refused(_, s, _)) => {
                    assert_eq!(s, StatusCode::NOT_FOUND)
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}

#[test]
fn one_click_post_suppresses_the_scope_the_token_names() {
    let f = fixture();
    for (list, scope) in [
        (
            "",
            Scope::Contact {
                tenant: "acme".into(),
                contact: "c-42".into(),
            },
        ),
        (
            "weekly",
            Scope::ContactInList {
                tenant: "acme".into(),
                list: "weekly".into(),
                contact: "c-42".into(),
            },
        ),
    ] {
        let t = f.keyring.sign(&unsub_claims(list)).unwrap();
        match decide(&f, Method::POST, &format!("/u/{t}"), ONE_CLICK, NOW) {
            Decision::Write {
                kind: Kind::OneClick,
                changes,
                event,
                reply: UnsubReply::OneClickOk,
            } => {
                assert_eq!(changes.len(), 1);
                assert_eq!(changes[0].scope, scope);
                assert_eq!(changes[0].reason, Some(Reason::OptOut));
                assert_eq!(event.r#type, EventType::Unsubscribe as i32);
                assert_eq!(event.list_id, list);
                assert_eq!(event.unsubscribe_method, UnsubscribeMethod::OneClick as i32);
                assert!(event.signals.is_some(), "enriched like a click");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn bodies_other_than_one_click_are_400() {
    let f = fixture();
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    for body in [
        &b""[..],
        b"List-Unsubscribe=Yes",
        b"foo=bar",
        b"action=undo",
    ] {
        match decide(&f, Method::POST, &format!("/u/{t}"), body, NOW) {
            Decision::Refuse(Refusal::BadRequest, _) => {}
            other => panic!("{body:?}: {other:?}"),
        }
    }
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    assert_eq!(parse_form(&h, ONE_CLICK), None);
}

#[test]
fn multipart_one_click_is_understood() {
    // RFC 8058 section 3.1 allows multipart/form-data as well.
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/form-data; boundary=XyZ"),
    );
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
    assert_eq!(
        parse_form(&h, body),
        Some(Form {
            one_click: Some(true),
            ..Form::default()
        })
    );
}

#[tokio::test]
async fn handle_applies_at_once_writes_through_the_writer_and_is_idempotent() {
    let f = fixture();
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    let mut published = Vec::new();
    let path = format!("/u/{t}");
    let r =
        f.u.handle(
            &f.pipeline,
            |e| published.push(e.clone()),
            &post_parts(&path),
            ONE_CLICK,
            "192.0.2.1".parse().unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    assert!(r.headers().get(header::LOCATION).is_none());
    assert!(f.set.is_suppressed("acme", "c-42"));
    assert_eq!(f.writer.written.lock().len(), 1);
    assert_eq!(published.len(), 1);
    // Again: 200, nothing written or published.
    let r =
        f.u.handle(
            &f.pipeline,
            |e| published.push(e.clone()),
            &post_parts(&path),
            ONE_CLICK,
            "192.0.2.1".parse().unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(f.writer.written.lock().len(), 1);
    assert_eq!(published.len(), 1);
    assert_eq!(f.u.requests(Kind::OneClick), 2);
}

#[tokio::test]
async fn writer_down_spools_then_replays_once_it_is_back() {
    let f = fixture();
    f.writer.down.store(true, Ordering::Relaxed);
    let t = f.keyring.sign(&unsub_claims("weekly")).unwrap();
    let r =
        f.u.handle(
            &f.pipeline,
            |_| {},
            &post_parts(&format!("/u/{t}")),
            ONE_CLICK,
            "192.0.2.1".parse().unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(f.u.pending(), 1);
    assert!(f.writer.written.lock().is_empty());
    assert!(f.replay_fails().await);
    // A restart before the broker is back: the spool is applied to a fresh set.
    let set2 = Arc::new(SuppressionSet::new());
    let u2 = Unsubscribe::new(f.u.config().clone(), f.writer.clone(), set2.clone()).unwrap();
    assert_eq!(
        set2.check_in_list("acme", "weekly", "c-42"),
        Some(Reason::OptOut)
    );
    assert_eq!(u2.pending(), 1);
    // Back: replayed once, in order, and the spool is empty.
    f.writer.down.store(false, Ordering::Relaxed);
    assert_eq!(f.u.replay_once().await.unwrap(), 1);
    assert_eq!(f.u.pending(), 0);
    assert_eq!(f.writer.written.lock().len(), 1);
    assert_eq!(f.u.replay_once().await.unwrap(), 0);
    let left = std::fs::read_to_string(&f.u.config().spool_path).unwrap();
    assert!(left.trim().is_empty(), "{left:?}");
}

/// Neither acknowledged nor spooled (the spool path is a directory): 503, and the local change
/// is taken back, so the set is as before and the topic's records of that contact apply again.
#[tokio::test]
async fn neither_acknowledged_nor_spooled_is_503_and_the_local_change_is_taken_back() {
    let f = fixture();
    f.writer.down.store(true, Ordering::Relaxed);
    std::fs::create_dir_all(&f.u.config().spool_path).unwrap();
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    let r =
        f.u.handle(
            &f.pipeline,
            |_| panic!("nothing is published"),
            &post_parts(&format!("/u/{t}")),
            ONE_CLICK,
            "192.0.2.1".parse().unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!f.set.is_suppressed("acme", "c-42"));
    assert_eq!(f.set.local_pending(), 0);
    assert_eq!(f.u.refused(Refusal::NotDurable), 1);
}

impl Fixture {
    async fn replay_fails(&self) -> bool {
        self.u.replay_once().await.is_err()
    }
}

#[tokio::test]
async fn undo_lifts_only_what_this_unsubscribe_added_within_its_window() {
    let f = fixture();
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    let body = b"List-Unsubscribe=One-Click&via=page";
    let undo_token = match decide(&f, Method::POST, &format!("/u/{t}"), body, NOW) {
        Decision::Write {
            kind: Kind::Form,
            changes,
            reply: UnsubReply::Html(h),
            ..
        } => {
            f.set.apply(&changes[0]);
            undo_path_in(&h)["/u/".len()..].to_owned()
        }
        other => panic!("{other:?}"),
    };
    let claims = f.keyring.verify(&undo_token).unwrap().claims;
    assert!(claims.undo);
    assert_eq!(claims.issued_at_ms, NOW);
    let undo_path = format!("/u/{undo_token}");
    // A GET of an undo token is nothing; an undo after the window is 410.
    assert!(matches!(
        decide(&f, Method::GET, &undo_path, b"", NOW),
        Decision::Refuse(Refusal::InvalidToken, _)
    ));
    assert!(matches!(
        decide(
            &f,
            Method::POST,
            &undo_path,
            b"action=undo",
            NOW + 15 * 60_000 + 1
        ),
        Decision::Refuse(Refusal::UndoExpired, _)
    ));
    // Within the window: removes the opt-out.
    match decide(&f, Method::POST, &undo_path, b"action=undo", NOW + 60_000) {
        Decision::Write {
            kind: Kind::Undo,
            changes,
            event,
            ..
        } => {
            assert_eq!(changes[0].reason, None);
            assert_eq!(event.r#type, EventType::Resubscribe as i32);
        }
        other => panic!("{other:?}"),
    }
    // If the contact has since been erased, the undo lifts nothing.
    f.set.insert("acme", "c-42", Reason::Erase);
    assert!(matches!(
        decide(&f, Method::POST, &undo_path, b"action=undo", NOW + 60_000),
        Decision::Refuse(Refusal::UndoConflict, _)
    ));
}

/// The browser test's race, made deterministic: the page's unsubscribe, then its Undo, both
/// through `handle`; only then does the follower read the two records back from the topic (here:
/// what the writer acknowledged, in order). Reading the opt-out must not re-suppress the contact
/// the Undo just re-subscribed; reading the Undo's own record ends the wait.
#[tokio::test]
async fn the_follower_reading_the_undone_opt_out_late_does_not_re_suppress() {
    let f = fixture();
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    let peer = "192.0.2.1".parse().unwrap();
    let r =
        f.u.handle(
            &f.pipeline,
            |_| {},
            &post_parts(&format!("/u/{t}")),
            b"List-Unsubscribe=One-Click&via=page",
            peer,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = String::from_utf8(
        http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let undo_path = undo_path_in(&html);
    // A person reads the page before pressing Undo: the two changes are not in the same ms.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let r =
        f.u.handle(
            &f.pipeline,
            |_| {},
            &post_parts(undo_path),
            b"action=undo",
            peer,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!f.set.is_suppressed("acme", "c-42"));

    let written = f.writer.written.lock().clone();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0].reason, Some(Reason::OptOut));
    assert_eq!(written[1].reason, None);
    f.set.apply_replicated(&written[0]);
    assert!(
        !f.set.is_suppressed("acme", "c-42"),
        "the opt-out's late echo re-suppressed a re-subscribed contact"
    );
    f.set.apply_replicated(&written[1]);
    assert!(!f.set.is_suppressed("acme", "c-42"));
    assert_eq!(f.set.local_pending(), 0);
}

#[test]
fn an_earlier_restriction_gets_no_undo_and_is_not_overwritten() {
    let f = fixture();
    f.set.insert("acme", "c-42", Reason::Restrict);
    let t = f.keyring.sign(&unsub_claims("")).unwrap();
    match decide(
        &f,
        Method::POST,
        &format!("/u/{t}"),
        b"List-Unsubscribe=One-Click&via=page",
        NOW,
    ) {
        Decision::Reply(Kind::Form, UnsubReply::Html(h)) => assert!(!h.contains("action=\"/u/")),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.set.reason("acme", "c-42"), Some(Reason::Restrict));
}

#[test]
fn brands_parse_and_the_page_uses_them_escaped() {
    let (t, b) = Brand::parse("acme=Acme <Shop> & Co|#0A7|#fafafa").unwrap();
    assert_eq!(t, "acme");
    assert_eq!(b.accent, "#0a7");
    for bad in [
        "acme",
        "acme=",
        "a/b=X",
        "acme=X|red",
        "acme=X|#12345",
        "acme=X|#fff|#fff|#fff",
    ] {
        assert!(Brand::parse(bad).is_err(), "{bad}");
    }
    let html = confirm_page(&b, "TOKEN", "a\"list", false);
    assert!(html.contains("Acme &lt;Shop&gt; &amp; Co"));
    assert!(html.contains("a&quot;list"));
    assert!(html.contains("background:#0a7"));
    assert_eq!(text_on("#ffffff"), "#000000");
    assert_eq!(text_on("#1f5fbf"), "#ffffff");
}
