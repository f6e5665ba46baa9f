//! A real browser against a running edge: headless Chromium opens an HTML email
//! (`tests/fixtures/email.html`) whose pixel and link carry tokens from `openclick sign`, served
//! by `openclick serve` on the embedded broker.
//!
//! Checked against what the browser itself reports (its `navigator.userAgent` and the pixel's
//! `naturalWidth`, written into the DOM by the page and printed by `--dump-dom`) and what a
//! landing server run by this test saw:
//! - the pixel loads as a 1x1 image;
//! - the open event reaches Kafka (read back with `openclick tail`) with the browser's own user
//!   agent, flagged as a headless browser (`suspectedBot`, `BOT_REASON_HEADLESS_BROWSER`);
//! - following the tracked link lands on the test's page, with the same user agent, and the
//!   click event reaches Kafka with the link id, destination and the same flags;
//! - nothing else reaches the topic.
//!
//! Needs Chromium (`chromium`, or the binary named by `CHROMIUM`): `#[ignore]`d in a plain
//! `cargo test`, run by `.ci/browser`, which installs it. Chromium as root needs `--no-sandbox`.
//! Its host resolver is pinned so that it resolves no name: it talks only to 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{run, serve_command, Server, KEYS};

const EMAIL: &str = include_str!("fixtures/email.html");
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

/// `chromium --headless --dump-dom URL`: the DOM once the page has loaded. Fails the test if
/// Chromium fails or takes longer than a minute.
fn chromium_dump_dom(profile: &Path, url: &str) -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let mut child = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-domain-reliability",
            "--no-pings",
            "--metrics-recording-only",
            // Resolve no host name at all: the pages use literal 127.0.0.1 addresses, and
            // nothing else (update checks, safe browsing) can leave the machine.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin} (set CHROMIUM, or run .ci/browser): {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took over 60 s on {url}: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out.join().unwrap();
    let err = err.join().unwrap();
    assert!(status.success(), "chromium exited {status:?}: {err}");
    dom
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

/// `openclick tail --from-beginning --count N --idle-timeout-secs S`: the events as JSON.
fn tail(bootstrap: &str, count: u32, idle_secs: u32) -> Vec<serde_json::Value> {
    let out = run(&[
        "tail",
        "--brokers",
        bootstrap,
        "--from-beginning",
        "--count",
        &count.to_string(),
        "--idle-timeout-secs",
        &idle_secs.to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    let dom = chromium_dump_dom(profile.path(), &format!("http://{}/email.html", site.addr));
    let harness = element_text(&dom, "pre", "harness")
        .unwrap_or_else(|| panic!("no harness output in the DOM: {dom}"));
    let seen_by_page: serde_json::Value = serde_json::from_str(&harness)
        .unwrap_or_else(|e| panic!("harness output {harness:?}: {e}"));
    assert_eq!(seen_by_page["complete"], true, "{seen_by_page}");
    assert_eq!(seen_by_page["naturalWidth"], 1, "{seen_by_page}");
    assert_eq!(seen_by_page["naturalHeight"], 1, "{seen_by_page}");
    let browser_ua = seen_by_page["userAgent"].as_str().unwrap().to_string();
    assert!(browser_ua.contains("HeadlessChrome/"), "{browser_ua}");
    // The link as the browser resolved it is the signed click URL.
    let cta = seen_by_page["ctaHref"].as_str().unwrap().to_string();
    assert_eq!(cta, click_url);

    // 2. Follow the tracked link: the edge redirects, the browser lands on the site.
    let dom = chromium_dump_dom(profile.path(), &cta);
    assert_eq!(
        element_text(&dom, "p", "landed").as_deref(),
        Some(LANDING_MARKER),
        "not on the landing page: {dom}"
    );
    let seen = site.seen();
    let landing: Vec<&Seen> = seen
        .iter()
        .filter(|r| r.path.starts_with("/landing"))
        .collect();
    assert_eq!(landing.len(), 1, "{seen:#?}");
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
