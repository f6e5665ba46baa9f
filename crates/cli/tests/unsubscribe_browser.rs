//! A real browser on the unsubscribe page: headless Chromium loads `GET /u/TOKEN` from a running
//! `openclick serve` (embedded broker), which changes nothing; then the test presses the page's
//! button with a real mouse event (Chrome DevTools Protocol `Input.dispatchMouseEvent` at the
//! button's on-screen centre), the browser submits the form, and the contact is suppressed (the
//! admin API says so, and the `EVENT_TYPE_UNSUBSCRIBE` event with method PAGE reaches Kafka).
//! Then the Undo button, pressed the same way, re-subscribes the contact.
//!
//! The DevTools client is a few lines of std-only WebSocket (RFC 6455: the opening handshake,
//! masked text frames out, unmasked frames in). Needs Chromium (`chromium`, or `CHROMIUM`):
//! `#[ignore]`d in a plain `cargo test`, run by `.ci/browser`. No script runs in the page
//! itself: the page has none, and the button is pressed from outside, as a person would.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{run, serve_command, tail, try_http, Server, KEYS};
use serde_json::{json, Value};

const ADMIN: &str = "unsubscribe-browser-admin";

/// One WebSocket connection to a DevTools target.
struct Cdp {
    s: TcpStream,
    next_id: u64,
}

impl Cdp {
    fn connect(addr: SocketAddr, path: &str) -> Cdp {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Cdp { s, next_id: 1 }
    }

    fn send_frame(&mut self, payload: &[u8]) {
        let mut f = vec![0x81u8];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        // A client must mask; the all-zero key leaves the payload as it is.
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(payload);
        self.s.write_all(&f).unwrap();
    }

    fn read_message(&mut self) -> String {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).unwrap();
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).unwrap();
                len = u64::from(u16::from_be_bytes(l));
            } else if len == 127 {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).unwrap();
                len = u64::from_be_bytes(l);
            }
            let mut p = vec![0u8; len as usize];
            self.s.read_exact(&mut p).unwrap();
            let opcode = h[0] & 0x0f;
            if opcode == 1 || opcode == 0 {
                msg.extend_from_slice(&p);
            }
            if h[0] & 0x80 != 0 && (opcode == 1 || opcode == 0) {
                return String::from_utf8(msg).unwrap();
            }
        }
    }

    /// Sends one command and returns its `result`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let m = json!({"id": id, "method": method, "params": params}).to_string();
        self.send_frame(m.as_bytes());
        loop {
            let v: Value = serde_json::from_str(&self.read_message()).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    /// Waits until the page's text contains `text`.
    fn wait_text(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.eval("document.readyState === 'complete' && document.body ? document.body.innerText : ''");
            if body.as_str().is_some_and(|b| b.contains(text)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "page never showed {text:?}: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Presses the (first) button with the mouse: pressed and released at its centre.
    fn press_button(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const b = document.querySelector({selector:?}); \
             b.scrollIntoView({{block: 'center'}}); const r = b.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for t in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": t, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }
}

struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium on `url`, with DevTools on a port it picks (read back from `DevToolsActivePort`).
fn chromium(profile: &Path, url: &str) -> (Browser, u16) {
    let child = common::chromium::command(profile)
        .args(["--window-size=640,800", "--remote-debugging-port=0"])
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| common::chromium::missing(e));
    let b = Browser(child);
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        if let Ok(f) = std::fs::File::open(&file) {
            let mut line = String::new();
            BufReader::new(f).read_line(&mut line).unwrap();
            if let Ok(p) = line.trim().parse() {
                break p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromium wrote no DevToolsActivePort"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    (b, port)
}

/// The DevTools WebSocket path of the page showing a URL that contains `needle`.
fn page_target(port: u16, needle: &str) -> String {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // DevTools refuses a Host header that is not an IP address or localhost (common's
        // client sends t.example.com), so a plain request of its own.
        if let Some(body) = devtools_get(addr, "/json/list") {
            let list: Value = serde_json::from_str(&body).unwrap();
            if let Some(ws) = list.as_array().unwrap().iter().find_map(|t| {
                (t["type"] == "page" && t["url"].as_str()?.contains(needle))
                    .then(|| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))?
            }) {
                return ws[ws.find("/devtools/").unwrap()..].to_owned();
            }
        }
        assert!(Instant::now() < deadline, "no page target for {needle}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn devtools_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    // Content-Length framing: the DevTools server may keep the connection open.
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).ok()?;
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    status
        .starts_with("HTTP/1.1 200")
        .then(|| String::from_utf8_lossy(&body).into_owned())
}

fn suppressed(admin: SocketAddr, contact: &str) -> bool {
    let auth = format!("Bearer {ADMIN}");
    try_http(
        admin,
        "GET",
        &format!("/v1/suppressions/acme/{contact}"),
        &[("Authorization", &auth)],
    )
    .unwrap()
    .0 == 200
}

#[test]
#[ignore = "needs chromium: run by .ci/browser"]
fn chromium_loads_the_page_presses_the_button_and_the_contact_is_suppressed_then_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(&dir.path().join("data"));
    cmd.args(["--admin-token", ADMIN])
        .args(["--unsubscribe-brand", "acme=ACME Outdoor|#0b6e4f|#f3f7f5"]);
    let s = Server::spawn(cmd);
    let out = run(&[
        "sign",
        "unsubscribe",
        "--tenant",
        "acme",
        "--contact",
        "c-browser",
        "--base-url",
        &format!("http://{}", s.listen),
        "--keys",
        KEYS,
    ]);
    assert!(out.status.success(), "{out:?}");
    let url = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let token = url.rsplit('/').next().unwrap().to_owned();

    let (_browser, port) = chromium(&dir.path().join("profile"), &url);
    let mut cdp = Cdp::connect(([127, 0, 0, 1], port).into(), &page_target(port, &token));
    cdp.wait_text("Unsubscribe?");
    assert_eq!(
        cdp.eval("document.querySelector('h1').innerText"),
        "ACME Outdoor"
    );
    assert_eq!(cdp.eval("document.scripts.length"), 0);
    // Loading the page changed nothing.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !suppressed(s.admin, "c-browser"),
        "a GET must not unsubscribe"
    );

    cdp.press_button("button");
    cdp.wait_text("You are unsubscribed");
    assert!(suppressed(s.admin, "c-browser"));

    cdp.press_button("button");
    cdp.wait_text("You are subscribed again");
    assert!(!suppressed(s.admin, "c-browser"));

    let brokers = s.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = tail(&brokers, 2, 3);
    let types: Vec<_> = events
        .iter()
        .map(|e| (e["type"].clone(), e["unsubscribeMethod"].clone()))
        .collect();
    assert_eq!(
        types,
        [
            (
                json!("EVENT_TYPE_UNSUBSCRIBE"),
                json!("UNSUBSCRIBE_METHOD_PAGE")
            ),
            (
                json!("EVENT_TYPE_RESUBSCRIBE"),
                json!("UNSUBSCRIBE_METHOD_UNDO")
            ),
        ],
        "{events:#?}"
    );
    // The browser's own user agent is on the event.
    let ua = cdp.eval("navigator.userAgent");
    assert_eq!(events[0]["client"]["userAgent"], ua);
}
