//! One-click unsubscribe (RFC 8058) end to end: `openclick sign unsubscribe`, then `serve`'s
//! `/u/{token}` on the embedded Kafka-protocol broker.
//!
//! What is checked, against RFC 8058 (section 3.1: the POST body `List-Unsubscribe=One-Click`,
//! no cookies, no redirects; section 3.2: the two header fields) and the rules:
//! - `sign unsubscribe` prints the URL and exactly the two header fields RFC 8058 names;
//! - the POST answers 200 without `Set-Cookie` or `Location`; the contact is suppressed on this
//!   edge at once and on a second edge following the same topic (the delay is printed for the
//!   closing note, not asserted); the `EVENT_TYPE_UNSUBSCRIBE` event is the contact's last
//!   event: a pixel hit afterwards produces none;
//! - with the broker frozen (SIGSTOP on the process hosting it) the POST still answers 200
//!   within the acknowledgement timeout plus margin, and the opt-out reaches the topic once
//!   the broker is back (SIGCONT);
//! - a GET with a link scanner's user agent shows the page and leaves the contact subscribed;
//! - a tampered token gets 404 and writes nothing.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run, serve_command, tail, try_http, try_http_full, try_post, Server, KEYS};

const ADMIN: &str = "unsubscribe-test-admin-token";
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
/// RFC 8058 section 3.1.
const ONE_CLICK: &[u8] = b"List-Unsubscribe=One-Click";

fn serve(data: &Path, extra: &[&str]) -> Server {
    let mut c = serve_command(data);
    c.args(["--admin-token", ADMIN]).args(extra);
    Server::spawn(c)
}

/// `sign unsubscribe`'s three lines.
fn sign_unsubscribe(contact: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "sign",
        "unsubscribe",
        "--tenant",
        "acme",
        "--contact",
        contact,
        "--campaign",
        "spring",
        "--message",
        "m-1",
        "--base-url",
        "https://t.example.com",
        "--keys",
        KEYS,
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn unsub_path(contact: &str) -> String {
    let lines = sign_unsubscribe(contact, &[]);
    lines[0]
        .strip_prefix("https://t.example.com")
        .unwrap()
        .to_owned()
}

/// Whether `contact` of tenant `acme` is suppressed on the replica behind `admin`.
fn suppressed(admin: SocketAddr, contact: &str) -> bool {
    let auth = format!("Bearer {ADMIN}");
    let (status, _) = try_http(
        admin,
        "GET",
        &format!("/v1/suppressions/acme/{contact}"),
        &[("Authorization", &auth)],
    )
    .unwrap();
    assert!(status == 200 || status == 404, "status {status}");
    status == 200
}

/// A metric's value from `/metrics` (the first series whose line starts with `prefix`).
fn metric(admin: SocketAddr, prefix: &str) -> f64 {
    let (_, body) = try_http(admin, "GET", "/metrics", &[]).unwrap();
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

fn bootstrap(s: &Server) -> String {
    s.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn sign_unsubscribe_prints_the_url_and_the_two_rfc_8058_headers() {
    let lines = sign_unsubscribe("c-1", &["--list", "weekly"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("https://t.example.com/u/"),
        "{lines:?}"
    );
    // RFC 8058 section 3.1 / 8: `List-Unsubscribe: <https-URI>` and exactly this POST header.
    assert_eq!(lines[1], format!("List-Unsubscribe: <{}>", lines[0]));
    assert_eq!(
        lines[2],
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    );
    // A list id with '/' is refused as a setting (exit 64), nothing printed.
    let out = run(&[
        "sign",
        "unsubscribe",
        "--tenant",
        "acme",
        "--contact",
        "c-1",
        "--list",
        "a/b",
        "--keys",
        KEYS,
    ]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn one_click_post_is_durable_applied_at_once_and_seen_by_a_second_edge() {
    let dir = tempfile::tempdir().unwrap();
    let a = serve(&dir.path().join("a"), &[]);
    let brokers = bootstrap(&a);
    let b = serve(&dir.path().join("b"), &["--kafka-brokers", &brokers]);
    let path = unsub_path("c-1");
    assert!(!suppressed(a.admin, "c-1") && !suppressed(b.admin, "c-1"));

    let t0 = Instant::now();
    let (status, headers, body) = try_post(
        a.listen,
        &path,
        &[
            FORM,
            ("User-Agent", "Mozilla/5.0 (compatible; mailbox-provider)"),
        ],
        ONE_CLICK,
    )
    .unwrap();
    let acked = t0.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // RFC 8058 section 3.1: no cookies, no redirect.
    assert!(headers
        .iter()
        .all(|(k, _)| k != "set-cookie" && k != "location"));
    assert!(suppressed(a.admin, "c-1"), "applied on this edge at once");
    let seen = loop {
        if suppressed(b.admin, "c-1") {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "second edge never saw it"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    eprintln!(
        "unsubscribe: POST answered (Kafka-acknowledged) in {acked:?}; second edge suppressed after {seen:?}"
    );
    // Idempotent: again 200, nothing new.
    let (status, _, _) = try_post(a.listen, &path, &[FORM], ONE_CLICK).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            a.admin,
            "openclick_unsubscribe_requests_total{kind=\"one_click\"}"
        ),
        2.0
    );
    // A pixel hit afterwards, on either edge, produces no event: the unsubscribe is the last.
    for s in [&a, &b] {
        let open = common::sign_open("c-1");
        let (status, _) = try_http(s.listen, "GET", &open, &[]).unwrap();
        assert_eq!(status, 200);
    }
    let events = tail(&brokers, 2, 3);
    let unsub: Vec<_> = events.iter().filter(|e| e["contactId"] == "c-1").collect();
    assert_eq!(unsub.len(), 1, "{events:#?}");
    assert_eq!(unsub[0]["type"], "EVENT_TYPE_UNSUBSCRIBE");
    assert_eq!(
        unsub[0]["unsubscribeMethod"],
        "UNSUBSCRIBE_METHOD_ONE_CLICK"
    );
    assert_eq!(unsub[0]["campaignId"], "spring");
    assert!(
        unsub[0]["signals"]["verdict"].is_string(),
        "{:#?}",
        unsub[0]
    );
}

#[test]
fn a_list_unsubscribe_suppresses_the_contact_for_that_list_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = serve(dir.path(), &[]);
    let lines = sign_unsubscribe("c-9", &["--list", "weekly"]);
    let path = lines[0].strip_prefix("https://t.example.com").unwrap();
    let (status, _, _) = try_post(a.listen, path, &[FORM], ONE_CLICK).unwrap();
    assert_eq!(status, 200);
    assert_eq!(metric(a.admin, "openclick_suppression_list_entries"), 1.0);
    assert!(!suppressed(a.admin, "c-9"), "not across the tenant");
}

#[test]
fn a_scanner_get_leaves_the_contact_subscribed_and_a_tampered_token_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = serve(dir.path(), &[]);
    let path = unsub_path("c-2");
    for ua in [
        // Link scanners and previewers that fetch every link of a message.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Barracuda",
        "Mozilla/5.0 (compatible; proofpoint-urldefense)",
        "Microsoft Office Existence Discovery",
        "curl/8.5.0",
    ] {
        for method in ["GET", "HEAD"] {
            let (status, headers, body) =
                try_http_full(a.listen, method, &path, &[("User-Agent", ua)]).unwrap();
            assert_eq!(status, 200, "{ua}");
            assert!(headers.iter().all(|(k, _)| k != "set-cookie"));
            if method == "GET" {
                let html = String::from_utf8(body).unwrap();
                assert!(html.len() < 5 * 1024, "{} bytes", html.len());
                assert!(html.contains("<form method=\"post\""), "{html}");
            }
        }
    }
    assert!(!suppressed(a.admin, "c-2"));
    assert_eq!(
        metric(
            a.admin,
            "openclick_unsubscribe_requests_total{kind=\"page\"}"
        ),
        8.0
    );

    // Tampered: one character of the token changed.
    let mut t = path.into_bytes();
    let i = t.len() - 5;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(t).unwrap();
    for method in ["GET", "POST"] {
        let status = if method == "GET" {
            try_http(a.listen, "GET", &tampered, &[]).unwrap().0
        } else {
            try_post(a.listen, &tampered, &[FORM], ONE_CLICK).unwrap().0
        };
        assert_eq!(status, 404, "{method}");
    }
    assert!(!suppressed(a.admin, "c-2"));
    assert_eq!(metric(a.admin, "openclick_suppression_contacts"), 0.0);
    assert_eq!(
        metric(
            a.admin,
            "openclick_unsubscribe_refused_total{reason=\"invalid_token\"}"
        ),
        2.0
    );
    // Nothing reached the events topic.
    assert!(tail(&bootstrap(&a), 1, 2).is_empty());
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn with_the_broker_frozen_the_post_still_answers_200_and_the_opt_out_arrives_later() {
    let dir = tempfile::tempdir().unwrap();
    // `broker` hosts the embedded broker (and follows the topic); `edge` uses it as a plain
    // Kafka cluster and takes the POST.
    let broker = serve(&dir.path().join("broker"), &[]);
    let brokers = bootstrap(&broker);
    let edge = serve(
        &dir.path().join("edge"),
        &[
            "--kafka-brokers",
            &brokers,
            "--unsubscribe-ack-timeout-ms",
            "1000",
        ],
    );
    let path = unsub_path("c-3");
    signal(broker.pid(), "-STOP");
    let t0 = Instant::now();
    let r = try_post(edge.listen, &path, &[FORM], ONE_CLICK);
    let took = t0.elapsed();
    let pending = metric(edge.admin, "openclick_unsubscribe_spool_pending");
    signal(broker.pid(), "-CONT");
    let (status, _, body) = r.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(took < Duration::from_secs(5), "answered in {took:?}");
    assert!(suppressed(edge.admin, "c-3"), "applied locally at once");
    assert_eq!(pending, 1.0, "spooled");
    // Once the broker is back the spool is replayed and the opt-out reaches the topic: the
    // broker's own follower applies it.
    let t1 = Instant::now();
    while !suppressed(broker.admin, "c-3") {
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "the opt-out never reached the topic"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while metric(edge.admin, "openclick_unsubscribe_spool_pending") != 0.0 {
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "spool never drained"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "unsubscribe with the broker frozen: answered in {took:?}; on the topic {:?} after SIGCONT",
        t1.elapsed()
    );
}
