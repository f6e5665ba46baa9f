//! Website activity after a click (issue #17), end to end against `openclick serve` on the
//! embedded broker:
//!
//! - over plain HTTP: a click of a tenant with the hand-off on redirects with `oc_id` (query and
//!   fragment kept, checked with the `url` crate), the page-view beacon publishes an
//!   `EVENT_TYPE_PAGE_VIEW` for that contact with the page URL without `oc_id`; a suppressed
//!   contact gets no hand-off, `Sec-GPC: 1` and a tampered token give no event, CORS answers only
//!   the configured origin; turning the hand-off off in the settings file takes effect without
//!   a restart;
//! - in headless Chromium (`#[ignore]`d: needs `chromium`, run by `.ci/browser`): a "customer
//!   site" on another origin (`localhost:PORT` against the edge on `127.0.0.1`) includes
//!   `/w.js`; the browser follows a tracked click, lands with `oc_id`, the parameter is gone from
//!   the address bar, the cookie is set on the site's origin (both as the page itself reports
//!   them), and the page view arrives on Kafka flagged as a headless browser; for a suppressed
//!   contact nothing arrives. Then a browser that sends `Sec-GPC: 1` (the tenant honours GPC):
//!   Chromium has no switch for the header, so the test adds it over the DevTools protocol
//!   (`Network.setExtraHTTPHeaders`, `common::chromium::Cdp`), and checks that it really went
//!   out (the site saw it on the landing request, the edge on the click, whose event carries
//!   the GPC signal). That browser lands without `oc_id` and no cookie; even holding a valid
//!   token (landing with one a click without GPC handed over), its snippet's beacon goes out
//!   with the header and the edge counts it `opted_out`; no page view of that contact reaches
//!   Kafka, while the first contact's, in the same run, does.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::chromium::{launch, page_target, Cdp};
use common::{
    path_of, run, serve_command, sign_click, tail, try_http, try_http_full, try_post, Server, KEYS,
};

fn settings(handoff: bool, origin: &str) -> String {
    format!(
        "# openclick web settings (test)\n[tenant.acme]\nhandoff = {handoff}\n\
         origins = [\"{origin}\"]\nlifetime_days = 7\nhonour_gpc = true\n"
    )
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn query_value(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn beacon_body(page: &str, referrer: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("u", page)
        .append_pair("r", referrer)
        .finish()
}

#[test]
fn handoff_and_page_views_over_http() {
    let data = tempfile::tempdir().unwrap();
    let origin = "https://shop.example.com";
    let web = data.path().join("web.toml");
    std::fs::write(&web, settings(true, origin)).unwrap();
    let supp = data.path().join("suppressed.csv");
    std::fs::write(&supp, "acme,c-suppressed\n").unwrap();
    let mut cmd = serve_command(data.path());
    cmd.args(["--web-settings", web.to_str().unwrap()])
        .args(["--suppression-file", supp.to_str().unwrap()]);
    let server = Server::spawn(cmd);
    let bootstrap = server.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_string();
    let edge = server.listen;

    // The snippet.
    let (status, h, body) = try_http_full(edge, "GET", "/w.js", &[]).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        header(&h, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(
        body.len() <= 2048 && body.starts_with(b"/*"),
        "{}",
        body.len()
    );

    // 1. The click hands over a web token; query and fragment kept.
    let dest = format!("{origin}/sale?utm_source=mail&q=a%20b#top");
    let (status, h, _) = try_http_full(edge, "GET", &sign_click("c-1", &dest), &[]).unwrap();
    assert_eq!(status, 302);
    let to = url::Url::parse(header(&h, "location").unwrap()).unwrap();
    let signed = url::Url::parse(&dest).unwrap();
    assert_eq!(
        (to.origin(), to.path(), to.fragment()),
        (signed.origin(), signed.path(), signed.fragment())
    );
    let pairs: Vec<(String, String)> = to.query_pairs().into_owned().collect();
    assert_eq!(pairs.len(), 3, "{to}");
    assert_eq!(
        pairs[..2],
        signed.query_pairs().into_owned().collect::<Vec<_>>()[..]
    );
    let token = query_value(&to, "oc_id").expect("oc_id");

    // 2. The page view: CORS for the configured origin, the page without oc_id.
    let page = to.as_str();
    let (status, h, _) = try_post(
        edge,
        &format!("/w/{token}"),
        &[
            ("Origin", origin),
            ("Content-Type", "text/plain;charset=UTF-8"),
        ],
        beacon_body(page, "https://mail.example/inbox").as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204);
    assert_eq!(header(&h, "access-control-allow-origin"), Some(origin));
    assert_eq!(header(&h, "vary"), Some("Origin"));
    // Another origin: refused, no CORS.
    let (status, h, _) = try_post(
        edge,
        &format!("/w/{token}"),
        &[("Origin", "https://evil.example")],
        beacon_body(page, "").as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 403);
    assert_eq!(header(&h, "access-control-allow-origin"), None);
    // A tampered token: 404, no event.
    let mut bad = token.clone().into_bytes();
    bad[10] = if bad[10] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let (status, _, _) = try_post(
        edge,
        &format!("/w/{bad}"),
        &[("Origin", origin)],
        beacon_body(page, "").as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 404);
    // Malformed beacon: 400.
    let (status, _, _) =
        try_post(edge, &format!("/w/{token}"), &[("Origin", origin)], b"u=%%").unwrap();
    assert_eq!(status, 400);

    // 3. GPC honoured: a second contact clicks with Sec-GPC: no hand-off; its beacon without
    //    GPC would count, with GPC it does not.
    let (_, h, _) =
        try_http_full(edge, "GET", &sign_click("c-3", &dest), &[("Sec-GPC", "1")]).unwrap();
    let to_gpc = url::Url::parse(header(&h, "location").unwrap()).unwrap();
    assert_eq!(query_value(&to_gpc, "oc_id"), None);
    let (_, h, _) = try_http_full(edge, "GET", &sign_click("c-3", &dest), &[]).unwrap();
    let t3 = query_value(
        &url::Url::parse(header(&h, "location").unwrap()).unwrap(),
        "oc_id",
    )
    .unwrap();
    let (status, _, _) = try_post(
        edge,
        &format!("/w/{t3}"),
        &[("Origin", origin), ("Sec-GPC", "1")],
        beacon_body(page, "").as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204);

    // 4. A suppressed contact: redirected as signed, no hand-off.
    let (status, h, _) =
        try_http_full(edge, "GET", &sign_click("c-suppressed", &dest), &[]).unwrap();
    assert_eq!(status, 302);
    assert_eq!(header(&h, "location"), Some(dest.as_str()));

    // 5. Kafka: clicks of c-1 and c-3 (twice), and one page view, c-1's.
    let events = tail(&bootstrap, 5, 5);
    let views: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "EVENT_TYPE_PAGE_VIEW")
        .collect();
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_eq!(views.len(), 1, "{events:#?}");
    let v = views[0];
    assert_eq!(v["channel"], "CHANNEL_WEB");
    assert_eq!(
        (&v["tenantId"], &v["campaignId"], &v["contactId"]),
        (
            &serde_json::json!("acme"),
            &serde_json::json!("spring"),
            &serde_json::json!("c-1")
        )
    );
    let page_url = url::Url::parse(v["pageUrl"].as_str().unwrap()).unwrap();
    assert_eq!(query_value(&page_url, "oc_id"), None);
    assert_eq!(page_url.query(), Some("utm_source=mail&q=a%20b"));
    assert_eq!(page_url.fragment(), Some("top"));
    assert_eq!(v["referrer"], "https://mail.example/inbox");

    // 6. Hand-off turned off in the file: within the 5 s poll, clicks carry nothing and
    //    beacons count nothing.
    std::fs::write(&web, settings(false, origin)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, h, _) = try_http_full(edge, "GET", &sign_click("c-1", &dest), &[]).unwrap();
        if header(&h, "location") == Some(dest.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the settings file was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let lines = server.lines();
    assert!(
        lines.iter().any(|l| l.contains("web settings reloaded")),
        "{lines:#?}"
    );
    // No contact id, token or URL in the logs.
    for l in &lines {
        assert!(
            !l.contains(&token) && !l.contains("shop.example.com"),
            "{l}"
        );
    }
    server.sigterm();
    server.wait();
}

#[test]
fn a_bad_web_settings_file_is_a_configuration_error() {
    let data = tempfile::tempdir().unwrap();
    let web = data.path().join("web.toml");
    std::fs::write(&web, "[tenant.acme]\nhandoff = true\n").unwrap();
    let out = run(&[
        "check-config",
        "--keys",
        KEYS,
        "--data-dir",
        data.path().to_str().unwrap(),
        "--web-settings",
        web.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.toml") && err.contains("origins"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium.

/// A request the site received: its path (with the query) and headers (names lower-cased).
type SiteRequest = (String, Vec<(String, String)>);

/// The customer's site: `/landing...` is a page that includes the edge's `/w.js` and reports
/// what it sees (its own address and cookies) into `<pre id="harness">`; `/slow.gif` answers
/// after a second, so that the page's load event (when `--dump-dom` prints) comes after the
/// snippet's beacon has left. Records every request's path and headers.
struct Site {
    addr: SocketAddr,
    edge: Arc<Mutex<String>>,
    requests: Arc<Mutex<Vec<SiteRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Site {
    fn start() -> Site {
        let edge = Arc::new(Mutex::new(String::new()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st, e) = (requests.clone(), stop.clone(), edge.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (p, edge) = (p.clone(), e.lock().unwrap().clone());
                        std::thread::spawn(move || {
                            if let Some(request) = answer(conn, &edge) {
                                p.lock().unwrap().push(request);
                            }
                        });
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
            edge,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The edge the pages' script tag points at.
    fn set_edge(&self, edge: &str) {
        *self.edge.lock().unwrap() = edge.to_owned();
    }

    fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|(p, _)| p).collect()
    }

    fn requests(&self) -> Vec<SiteRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests whose path (and query) starts with `prefix`, in arrival order.
    fn requests_to(&self, prefix: &str) -> Vec<SiteRequest> {
        self.requests()
            .into_iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .collect()
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

const HARNESS: &str = "<pre id=\"harness\"></pre><script>\
document.getElementById('harness').textContent=JSON.stringify({href:location.href,\
cookie:document.cookie,userAgent:navigator.userAgent});</script>";

fn answer(conn: TcpStream, edge: &str) -> Option<SiteRequest> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split(' ').nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let (status, ctype, body): (&str, &str, Vec<u8>) = if path.starts_with("/landing") {
        let html = format!(
            "<!DOCTYPE html><html><head><title>Sale</title>\
             <script src=\"{edge}/w.js\"></script></head><body><p id=\"landed\">landed</p>\
             {HARNESS}<img src=\"/slow.gif\" alt=\"\"></body></html>"
        );
        ("200 OK", "text/html; charset=utf-8", html.into_bytes())
    } else if path == "/slow.gif" {
        std::thread::sleep(Duration::from_millis(1500));
        (
            "200 OK",
            "image/gif",
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b".to_vec(),
        )
    } else {
        ("404 Not Found", "text/plain", Vec::new())
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(&body);
    let _ = conn.flush();
    Some((path, headers))
}

fn harness(dom: &str) -> serde_json::Value {
    let open = "<pre id=\"harness\">";
    let start = dom
        .find(open)
        .unwrap_or_else(|| panic!("no harness in the DOM: {dom}"))
        + open.len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("harness {text:?}: {e}"))
}

fn signed_click(edge: &str, contact: &str, url: &str) -> String {
    let out = run(&[
        "sign",
        "click",
        "--tenant",
        "acme",
        "--campaign",
        "spring",
        "--message",
        "m-web",
        "--contact",
        contact,
        "--link-id",
        "hero",
        "--url",
        url,
        "--keys",
        KEYS,
        "--base-url",
        edge,
    ]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
#[ignore = "needs chromium"]
fn headless_chromium_follows_a_click_to_the_site_and_its_page_view_reaches_kafka() {
    let data = tempfile::tempdir().unwrap();
    let web = data.path().join("web.toml");
    let supp = data.path().join("suppressed.csv");
    std::fs::write(&supp, "acme,c-suppressed\n").unwrap();
    // The edge on 127.0.0.1, the site on localhost: two origins. The settings name the site's
    // origin, the site's pages the edge: the site first.
    let site = Site::start();
    let site_origin = format!("http://localhost:{}", site.addr.port());
    std::fs::write(&web, settings(true, &site_origin)).unwrap();
    let mut cmd = serve_command(data.path());
    cmd.args(["--web-settings", web.to_str().unwrap()])
        .args(["--suppression-file", supp.to_str().unwrap()]);
    let server = Server::spawn(cmd);
    let edge = format!("http://{}", server.listen);
    site.set_edge(&edge);
    let bootstrap = server.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_string();

    // 1. The browser follows the tracked click and lands on the site with oc_id ...
    let landing = format!("{site_origin}/landing?utm_source=mail#offer");
    let click = signed_click(&edge, "c-web", &landing);
    let profile = tempfile::tempdir().unwrap();
    let seen = harness(&common::chromium::dump_dom(profile.path(), &click));
    let ua = seen["userAgent"].as_str().unwrap().to_string();
    assert!(ua.contains("HeadlessChrome/"), "{ua}");
    let arrived = site
        .paths()
        .into_iter()
        .find(|p| p.starts_with("/landing"))
        .expect("the site saw the landing request");
    let arrived = url::Url::parse(&format!("{site_origin}{arrived}")).unwrap();
    let token = query_value(&arrived, "oc_id").expect("landed with oc_id");
    // ... which the page no longer shows in the address bar ...
    let href = url::Url::parse(seen["href"].as_str().unwrap()).unwrap();
    assert_eq!(query_value(&href, "oc_id"), None, "{seen}");
    assert_eq!(href.as_str(), landing, "{seen}");
    // ... and keeps in a cookie on the site's own origin.
    let cookie = seen["cookie"].as_str().unwrap();
    assert_eq!(cookie, format!("oc_id={token}"), "{seen}");

    // 2. The page view, on Kafka, for that contact, flagged as a headless browser.
    let events = tail(&bootstrap, 3, 10);
    let views: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "EVENT_TYPE_PAGE_VIEW")
        .collect();
    assert_eq!(views.len(), 1, "{events:#?}");
    let v = views[0];
    assert_eq!(v["contactId"], "c-web", "{v:#}");
    assert_eq!(v["channel"], "CHANNEL_WEB", "{v:#}");
    assert_eq!(v["pageUrl"], landing.as_str(), "{v:#}");
    assert_eq!(v["client"]["userAgent"], ua.as_str(), "{v:#}");
    assert_eq!(v["signals"]["suspectedBot"], true, "{v:#}");
    let reasons = v["signals"]["botReasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r == "BOT_REASON_HEADLESS_BROWSER"),
        "{v:#}"
    );

    // 3. A suppressed contact in a fresh browser: lands without oc_id, no cookie, no event.
    let profile = tempfile::tempdir().unwrap();
    let click = signed_click(&edge, "c-suppressed", &landing);
    let seen = harness(&common::chromium::dump_dom(profile.path(), &click));
    assert_eq!(seen["href"], landing.as_str(), "{seen}");
    assert_eq!(seen["cookie"], "", "{seen}");
    // The first run's click and page view only (the suppressed click records nothing).
    let events = tail(&bootstrap, 4, 5);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| e["contactId"] == "c-web"),
        "{events:#?}"
    );
    // The site saw no Sec-GPC from those browsers: Chromium does not send it by itself.
    for (path, h) in site.requests() {
        assert_eq!(header(&h, "sec-gpc"), None, "{path}: {h:?}");
    }

    // 4. GPC honoured (honour_gpc = true in the settings): another contact in a fresh browser
    //    that sends `Sec-GPC: 1` with every request, added over DevTools before navigating.
    let gpc_landing = format!("{site_origin}/landing/gpc?utm_source=mail#offer");
    let click = signed_click(&edge, "c-gpc", &gpc_landing);
    let profile = tempfile::tempdir().unwrap();
    let (_browser, port) = launch(profile.path(), "about:blank");
    let mut cdp = Cdp::connect(port, &page_target(port, "about:blank"));
    cdp.set_extra_headers(&[("Sec-GPC", "1")]);
    cdp.navigate(&click);
    let on_gpc_landing =
        "document.readyState === 'complete' && location.pathname === '/landing/gpc'";
    cdp.wait_for(on_gpc_landing);
    let seen = page_harness(&mut cdp);
    // The header really went out: the site saw it on the landing request (the redirect's
    // target) ...
    let landed = site.requests_to("/landing/gpc");
    assert_eq!(landed.len(), 1, "{landed:?}");
    let (arrived, h) = &landed[0];
    assert_eq!(header(h, "sec-gpc"), Some("1"), "{h:?}");
    // ... which the click's redirect sent there without oc_id: the edge refused the hand-off.
    let arrived = url::Url::parse(&format!("{site_origin}{arrived}")).unwrap();
    assert_eq!(query_value(&arrived, "oc_id"), None, "{arrived}");
    assert_eq!(seen["href"], gpc_landing.as_str(), "{seen}");
    assert_eq!(seen["cookie"], "", "{seen}");

    // 5. The same browser holding a valid token all the same: a click of c-gpc without GPC
    //    (over plain HTTP) hands one over, the browser lands with it, the snippet keeps it and
    //    sends the page view, with Sec-GPC: 1, which the edge counts as opted out.
    let (status, h, _) = try_http_full(server.listen, "GET", &path_of(&click), &[]).unwrap();
    assert_eq!(status, 302);
    let handed = header(&h, "location").unwrap().to_owned();
    let token = query_value(&url::Url::parse(&handed).unwrap(), "oc_id").expect("oc_id");
    assert_eq!(beacons(server.admin, "opted_out"), 0);
    cdp.navigate(&handed);
    cdp.wait_for(&format!(
        "{on_gpc_landing} && document.cookie === 'oc_id={token}'"
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while beacons(server.admin, "opted_out") == 0 {
        assert!(
            Instant::now() < deadline,
            "the GPC browser's beacon never reached the edge: {}",
            String::from_utf8_lossy(&try_http(server.admin, "GET", "/metrics", &[]).unwrap().1)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        beacons(server.admin, "tracked"),
        1,
        "c-web's page view only"
    );
    drop(cdp);

    // 6. Kafka: c-web's click and page view as before; c-gpc's two clicks (the browser's with
    //    the GPC signal: the edge saw the header too) and no page view of c-gpc.
    let events = tail(&bootstrap, 5, 5);
    // Sorted: each contact's events are in order (one key, one partition), not across them.
    let mut summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["contactId"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
                e["signals"]["gpc"] == true,
            )
        })
        .collect();
    summary.sort();
    let mut want = [
        ("c-web", "EVENT_TYPE_CLICK", false),
        ("c-web", "EVENT_TYPE_PAGE_VIEW", false),
        ("c-gpc", "EVENT_TYPE_CLICK", true),
        ("c-gpc", "EVENT_TYPE_CLICK", false),
    ]
    .map(|(c, t, g)| (c.to_owned(), t.to_owned(), g));
    want.sort();
    assert_eq!(summary, want, "{events:#?}");

    server.sigterm();
    server.wait();
}

/// What the page's harness reports (its address, cookies, user agent), read over DevTools.
fn page_harness(cdp: &mut Cdp) -> serde_json::Value {
    let text = cdp.eval("document.getElementById('harness').textContent");
    serde_json::from_str(text.as_str().unwrap()).unwrap_or_else(|e| panic!("harness {text}: {e}"))
}

/// The edge's count of page-view beacons with `outcome` (`openclick_web_requests_total`).
fn beacons(admin: SocketAddr, outcome: &str) -> u64 {
    let (status, body) = try_http(admin, "GET", "/metrics", &[]).unwrap();
    assert_eq!(status, 200);
    let outcome = format!("outcome=\"{outcome}\"");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| {
            l.starts_with("openclick_web_requests_total{")
                && l.contains("route=\"beacon\"")
                && l.contains(&outcome)
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}
