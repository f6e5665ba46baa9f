//! A real browser against a running edge: headless Chromium opens HTML emails served by a web
//! server run by this test, against `openclick serve` on the embedded broker.
//!
//! 1. `tests/fixtures/email.html`, whose pixel and link carry tokens from `openclick sign`.
//! 2. `tests/fixtures/campaign.html`, an untracked template shaped like a marketing email (table
//!    layout, a button whose destination has an entity-encoded `&amp;` and a percent-encoded
//!    value in its query, an `#anchor`, a `mailto:` and an unsubscribe link, no pixel), tracked
//!    by `openclick rewrite`.
//!
//! Checked against what the browser itself reports (its `navigator.userAgent`, the pixel's
//! `naturalWidth`, the links' `href`s, written into the DOM by the page and printed by
//! `--dump-dom`), what the test's web server saw, and the template as written:
//! - the pixel loads as a 1x1 image;
//! - the open event reaches Kafka (read back with `openclick tail`) with the browser's own user
//!   agent, flagged as a headless browser (`suspectedBot`, `BOT_REASON_HEADLESS_BROWSER`);
//! - following the tracked link lands on the test's page, with the same user agent, and the
//!   click event reaches Kafka with the link id, destination and the same flags;
//! - for the rewritten email: the landing request's path and query are byte for byte those the
//!   browser sends when it follows the template's own (untracked) link, and those written by
//!   hand from the template's entity-decoded `href`; the link id is the one rewrite's rule gives
//!   the button's position in the template; links rewrite must leave alone reach the browser
//!   unchanged;
//! - nothing else reaches the topic.
//!
//! Needs Chromium (`chromium`, or the binary named by `CHROMIUM`): `#[ignore]`d in a plain
//! `cargo test`, run by `.ci/browser`, which installs it. Chromium as root needs `--no-sandbox`.
//! Its host resolver is pinned so that it resolves no name: it talks only to 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{run, serve_command, tail, Server, KEYS};

const EMAIL: &str = include_str!("fixtures/email.html");
const CAMPAIGN: &str = include_str!("fixtures/campaign.html");
const LANDING_MARKER: &str = "openclick-browser-test-landed";

/// One request the test's own web server answered.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    user_agent: String,
}

/// A small HTTP/1.1 server on 127.0.0.1 that serves the email (`/email.html`) and the click
/// destination (`/landing...`), and records every request's path and user agent.
struct Site {
    addr: SocketAddr,
    email: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    fn start() -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let email = Arc::new(Mutex::new(String::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s, st) = (email.clone(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let email = e.lock().unwrap().clone();
                        if let Some(req) = answer(conn, &email) {
                            s.lock().unwrap().push(req);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        Site {
            addr,
            email,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn set_email(&self, body: String) {
        *self.email.lock().unwrap() = body;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head from `conn`, answers it (`Connection: close`) and returns what it saw.
fn answer(conn: TcpStream, email: &str) -> Option<Seen> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split(' ').nth(1)?.to_string();
    let mut user_agent = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("user-agent") {
                user_agent = v.trim().to_string();
            }
        }
    }
    let (status, body) = if path == "/email.html" {
        ("200 OK", email.to_string())
    } else if path.starts_with("/landing") {
        (
            "200 OK",
            format!("<!DOCTYPE html><title>Sale</title><p id=\"landed\">{LANDING_MARKER}</p>"),
        )
    } else {
        ("404 Not Found", String::new())
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
    Some(Seen { path, user_agent })
}

/// The text of the element `<tag id="id">` in a serialised DOM, HTML entities decoded.
fn element_text(dom: &str, tag: &str, id: &str) -> Option<String> {
    let open = format!("<{tag} id=\"{id}\">");
    let start = dom.find(&open)? + open.len();
    let end = start + dom[start..].find(&format!("</{tag}>"))?;
    Some(
        dom[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// What the page's test harness wrote into `<pre id="harness">`, as JSON.
fn harness(dom: &str) -> serde_json::Value {
    let text = element_text(dom, "pre", "harness")
        .unwrap_or_else(|| panic!("no harness output in the DOM: {dom}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("harness output {text:?}: {e}"))
}

/// The requests for the landing page the site has answered, in order.
fn landings(site: &Site) -> Vec<Seen> {
    site.seen()
        .into_iter()
        .filter(|r| r.path.starts_with("/landing"))
        .collect()
}

/// The value of attribute `attr` (double-quoted) of the tag of `html` in which `marker`
/// occurs, as written in the source (entities not decoded).
fn attr_in_tag<'a>(html: &'a str, marker: &str, attr: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    let tag = &html[start..end];
    let key = format!(" {attr}=\"");
    let v = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} in {tag}"))
        + key.len();
    &tag[v..v + tag[v..].find('"').unwrap()]
}

/// `openclick sign` with [`KEYS`], for an edge at `base`: the full URL.
fn sign(base: &str, kind: &[&str]) -> String {
    let mut args = vec!["sign"];
    args.extend_from_slice(kind);
    args.extend_from_slice(&[
        "--tenant",
        "acme",
        "--campaign",
        "spring",
        "--message",
        "m-browser",
        "--contact",
        "c-browser",
        "--keys",
        KEYS,
        "--base-url",
        base,
    ]);
    let out = run(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn assert_headless_flagged(event: &serde_json::Value, browser_ua: &str) {
    assert_eq!(event["client"]["userAgent"], browser_ua, "{event:#}");
    assert_eq!(event["signals"]["suspectedBot"], true, "{event:#}");
    let reasons = event["signals"]["botReasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r == "BOT_REASON_HEADLESS_BROWSER"),
        "{event:#}"
    );
}

#[test]
#[ignore = "needs chromium"]
fn headless_chromium_loads_the_pixel_and_follows_the_link_and_both_events_reach_kafka() {
    let data = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let server = Server::spawn(serve_command(data.path()));
    let bootstrap = server.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_string();
    let edge = format!("http://{}", server.listen);

    // The site serves the email; its /landing page is the click destination.
    let site = Site::start();
    let destination = format!("http://{}/landing?from=email", site.addr);
    let open_url = sign(&edge, &["open"]);
    let click_url = sign(
        &edge,
        &["click", "--link-id", "hero", "--url", &destination],
    );
    site.set_email(
        EMAIL
            .replace("{{OPEN_URL}}", &open_url)
            .replace("{{CLICK_URL}}", &click_url),
    );

    // 1. Open the email: the pixel loads, as a 1x1 image.
    let dom =
        common::chromium::dump_dom(profile.path(), &format!("http://{}/email.html", site.addr));
    let seen_by_page = harness(&dom);
    assert_eq!(seen_by_page["complete"], true, "{seen_by_page}");
    assert_eq!(seen_by_page["naturalWidth"], 1, "{seen_by_page}");
    assert_eq!(seen_by_page["naturalHeight"], 1, "{seen_by_page}");
    let browser_ua = seen_by_page["userAgent"].as_str().unwrap().to_string();
    assert!(browser_ua.contains("HeadlessChrome/"), "{browser_ua}");
    // The link as the browser resolved it is the signed click URL.
    let cta = seen_by_page["ctaHref"].as_str().unwrap().to_string();
    assert_eq!(cta, click_url);

    // 2. Follow the tracked link: the edge redirects, the browser lands on the site.
    let dom = common::chromium::dump_dom(profile.path(), &cta);
    assert_eq!(
        element_text(&dom, "p", "landed").as_deref(),
        Some(LANDING_MARKER),
        "not on the landing page: {dom}"
    );
    let landing = landings(&site);
    assert_eq!(landing.len(), 1, "{:#?}", site.seen());
    assert_eq!(landing[0].path, "/landing?from=email");
    assert_eq!(landing[0].user_agent, browser_ua, "the same browser");

    // 3. Both events are on the topic, with the browser's user agent, flagged as headless.
    let events = tail(&bootstrap, 2, 30);
    assert_eq!(events.len(), 2, "{events:#?}");
    let open = events
        .iter()
        .find(|e| e["type"] == "EVENT_TYPE_OPEN")
        .unwrap_or_else(|| panic!("no open event: {events:#?}"));
    let click = events
        .iter()
        .find(|e| e["type"] == "EVENT_TYPE_CLICK")
        .unwrap_or_else(|| panic!("no click event: {events:#?}"));
    for e in [open, click] {
        assert_eq!(
            (
                &e["tenantId"],
                &e["campaignId"],
                &e["messageId"],
                &e["contactId"]
            ),
            (
                &serde_json::json!("acme"),
                &serde_json::json!("spring"),
                &serde_json::json!("m-browser"),
                &serde_json::json!("c-browser")
            ),
            "{e:#}"
        );
        assert_headless_flagged(e, &browser_ua);
    }
    assert_eq!(click["linkId"], "hero", "{click:#}");
    assert_eq!(click["targetUrl"], destination.as_str(), "{click:#}");
    // And nothing else: a short wait for a third event finds none.
    assert_eq!(tail(&bootstrap, 3, 3).len(), 2);

    server.sigterm();
    server.wait();
}

#[test]
#[ignore = "needs chromium"]
fn headless_chromium_opens_an_email_tracked_by_rewrite_and_lands_with_the_query_byte_for_byte() {
    let data = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let preview_profile = tempfile::tempdir().unwrap();
    let server = Server::spawn(serve_command(data.path()));
    let bootstrap = server.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_string();
    let edge = format!("http://{}", server.listen);
    let site = Site::start();
    let email_url = format!("http://{}/email.html", site.addr);
    let template = CAMPAIGN.replace("{{SITE}}", &site.addr.to_string());

    // What the template says, read by hand. The button's href, entity-decoded (its one `&amp;`
    // is `&`; `&id=7` is no character reference), is the destination; its query holds nothing
    // a browser escapes, so it is sent as written, `%20` included.
    let cta_literal = attr_in_tag(&template, "id=\"cta\"", "href");
    assert_eq!(cta_literal.matches("&amp;").count(), 1, "{cta_literal}");
    let destination = cta_literal.replace("&amp;", "&");
    let expected_path = "/landing?utm_source=news&utm_campaign=dec%2025&id=7";
    assert_eq!(destination, format!("http://{}{expected_path}", site.addr));
    // Rewrite's rule for a link without data-link-id: `lN`, N its 1-based position among the
    // template's links in document order (every one is an `<a>` here).
    let position = template[..template.find("id=\"cta\"").unwrap()]
        .matches("<a ")
        .count();
    let link_id = format!("l{position}");
    assert_eq!(link_id, "l2", "the anchor link comes first");
    // The links rewrite must leave as they are, as written (no entities in them).
    let anchor = attr_in_tag(&template, "Jump to the offer", "href").to_string();
    let mailto = attr_in_tag(&template, "Write to us", "href").to_string();
    let unsubscribe = attr_in_tag(&template, ">Unsubscribe<", "href").to_string();
    assert_eq!(anchor, "#offer");
    assert!(mailto.starts_with("mailto:"), "{mailto}");
    assert!(unsubscribe.contains("/unsubscribe?"), "{unsubscribe}");

    // 1. The untracked template in the browser: the button's link as the browser resolves it,
    //    and the request the browser sends when it follows it.
    site.set_email(template.clone());
    let preview = harness(&common::chromium::dump_dom(
        preview_profile.path(),
        &email_url,
    ));
    assert_eq!(preview["images"], 0, "the template has no pixel: {preview}");
    assert_eq!(preview["ctaHref"], destination.as_str(), "{preview}");
    assert_eq!(
        preview["hrefs"],
        serde_json::json!([anchor, destination, mailto, unsubscribe]),
        "{preview}"
    );
    let dom =
        common::chromium::dump_dom(preview_profile.path(), preview["ctaHref"].as_str().unwrap());
    assert_eq!(
        element_text(&dom, "p", "landed").as_deref(),
        Some(LANDING_MARKER),
        "not on the landing page: {dom}"
    );
    let untracked = landings(&site);
    assert_eq!(untracked.len(), 1, "{:#?}", site.seen());
    let sent_untracked = untracked[0].path.clone();
    assert_eq!(sent_untracked, expected_path);

    // 2. Track the template with `openclick rewrite`.
    let template_file = data.path().join("campaign.html");
    std::fs::write(&template_file, &template).unwrap();
    let out = run(&[
        "rewrite",
        "--tenant",
        "acme",
        "--campaign",
        "december",
        "--message",
        "m-rewrite",
        "--contact",
        "c-rewrite",
        "--keys",
        KEYS,
        "--base-url",
        &edge,
        "--input",
        template_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(stderr.contains("4 links, 1 tracked"), "{stderr}");
    let html = String::from_utf8(out.stdout).unwrap();
    let click_url = attr_in_tag(&html, "id=\"cta\"", "href").to_string();
    assert!(click_url.starts_with(&format!("{edge}/c/")), "{click_url}");
    let pixel_url = attr_in_tag(&html, &format!("\"{edge}/o/"), "src").to_string();
    assert!(pixel_url.ends_with(".gif"), "{pixel_url}");
    assert_eq!(html.matches(&format!("{edge}/c/")).count(), 1, "{html}");
    assert_eq!(html.matches(&format!("{edge}/o/")).count(), 1, "{html}");
    // Everything else is the template byte for byte: the button's href replaced, the pixel
    // inserted just before the closing body tag.
    let pixel_at = html.find(&format!("<img src=\"{pixel_url}\"")).unwrap();
    let pixel_tag = &html[pixel_at..pixel_at + html[pixel_at..].find('>').unwrap() + 1];
    let expected_html = template
        .replacen(
            &format!("href=\"{cta_literal}\""),
            &format!("href=\"{click_url}\""),
            1,
        )
        .replacen("</body>", &format!("{pixel_tag}</body>"), 1);
    assert_eq!(html, expected_html);

    // 3. Open the tracked email: the pixel loads, as a 1x1 image; the other links are intact.
    site.set_email(html);
    let seen_by_page = harness(&common::chromium::dump_dom(profile.path(), &email_url));
    assert_eq!(seen_by_page["images"], 1, "{seen_by_page}");
    let pixel = &seen_by_page["pixel"];
    assert_eq!(pixel["src"], pixel_url.as_str(), "{seen_by_page}");
    assert_eq!(pixel["complete"], true, "{seen_by_page}");
    assert_eq!(pixel["naturalWidth"], 1, "{seen_by_page}");
    assert_eq!(pixel["naturalHeight"], 1, "{seen_by_page}");
    let browser_ua = seen_by_page["userAgent"].as_str().unwrap().to_string();
    assert!(browser_ua.contains("HeadlessChrome/"), "{browser_ua}");
    assert_eq!(
        seen_by_page["ctaHref"],
        click_url.as_str(),
        "{seen_by_page}"
    );
    assert_eq!(
        seen_by_page["hrefs"],
        serde_json::json!([anchor, click_url, mailto, unsubscribe]),
        "{seen_by_page}"
    );

    // 4. Follow the tracked link: the edge redirects, and the browser asks the site for exactly
    //    what it asked when it followed the untracked link.
    let dom = common::chromium::dump_dom(profile.path(), &click_url);
    assert_eq!(
        element_text(&dom, "p", "landed").as_deref(),
        Some(LANDING_MARKER),
        "not on the landing page: {dom}"
    );
    let landing = landings(&site);
    assert_eq!(landing.len(), 2, "{:#?}", site.seen());
    assert_eq!(landing[1].path, sent_untracked);
    assert_eq!(landing[1].path, expected_path);
    assert_eq!(landing[1].user_agent, browser_ua, "the same browser");

    // 5. Both events are on the topic, for this recipient, with the link's id and destination.
    let events = tail(&bootstrap, 2, 30);
    assert_eq!(events.len(), 2, "{events:#?}");
    let open = events
        .iter()
        .find(|e| e["type"] == "EVENT_TYPE_OPEN")
        .unwrap_or_else(|| panic!("no open event: {events:#?}"));
    let click = events
        .iter()
        .find(|e| e["type"] == "EVENT_TYPE_CLICK")
        .unwrap_or_else(|| panic!("no click event: {events:#?}"));
    for e in [open, click] {
        assert_eq!(
            (
                &e["tenantId"],
                &e["campaignId"],
                &e["messageId"],
                &e["contactId"]
            ),
            (
                &serde_json::json!("acme"),
                &serde_json::json!("december"),
                &serde_json::json!("m-rewrite"),
                &serde_json::json!("c-rewrite")
            ),
            "{e:#}"
        );
        assert_headless_flagged(e, &browser_ua);
    }
    assert_eq!(click["linkId"], link_id.as_str(), "{click:#}");
    assert_eq!(click["targetUrl"], destination.as_str(), "{click:#}");
    // And nothing else: a short wait for a third event finds none.
    assert_eq!(tail(&bootstrap, 3, 3).len(), 2);

    server.sigterm();
    server.wait();
}
