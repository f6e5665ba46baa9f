//! Headless Chromium (Debian `chromium`, or `$CHROMIUM`) for the browser tests: one set of
//! flags, so every test runs the same isolated browser; `--dump-dom` for a page load, and a
//! small Chrome DevTools Protocol client ([`launch`], [`page_target`], [`Cdp`]) for tests that
//! drive the page (press a button, set request headers).
//!
//! The DevTools client is a few lines of std-only WebSocket (RFC 6455: the opening handshake,
//! masked text frames out, unmasked frames in).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `chromium --headless` with a private profile in `profile`, nothing leaving the machine: no
/// host name resolves except `127.0.0.1` and `localhost` (update checks, safe browsing and
/// pings have nowhere to go). Add the URL and any test-specific flags.
pub fn command(profile: &Path) -> Command {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let mut c = Command::new(bin);
    c.args([
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
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null());
    c
}

/// Panics with a hint when Chromium cannot be started.
pub fn missing(e: std::io::Error) -> ! {
    panic!("cannot run chromium (set CHROMIUM, or run .ci/browser): {e}")
}

/// `chromium --headless --dump-dom URL`: the DOM once the page has loaded. Fails the test if
/// Chromium fails or takes longer than a minute.
pub fn dump_dom(profile: &Path, url: &str) -> String {
    let mut child = command(profile)
        .arg("--dump-dom")
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| missing(e));
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

/// A running Chromium, killed (and reaped) when dropped.
pub struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium on `url` (`about:blank` to navigate later over DevTools), with DevTools on a port
/// it picks (read back from `DevToolsActivePort` in the profile).
pub fn launch(profile: &Path, url: &str) -> (Browser, u16) {
    let child = command(profile)
        .args(["--window-size=640,800", "--remote-debugging-port=0"])
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| missing(e));
    let b = Browser(child);
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        if let Ok(f) = std::fs::File::open(&file) {
            let mut line = String::new();
            BufReader::new(f).read_line(&mut line).unwrap();
            // Only a whole line: the file may be read while Chromium is still writing it, and
            // "4" of "40123" parses too.
            if let Some(Ok(p)) = line.strip_suffix('\n').map(str::parse) {
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
pub fn page_target(port: u16, needle: &str) -> String {
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

/// One WebSocket connection to a DevTools target.
pub struct Cdp {
    s: TcpStream,
    next_id: u64,
}

impl Cdp {
    /// Connects to the page target at `path` ([`page_target`]) of the browser on `port`.
    pub fn connect(port: u16, path: &str) -> Cdp {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
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

    /// Sends one command and returns its `result` (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    /// [`Self::call`], returning the protocol's error instead of panicking on it.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let m = json!({"id": id, "method": method, "params": params}).to_string();
        self.send_frame(m.as_bytes());
        loop {
            let v: Value = serde_json::from_str(&self.read_message()).unwrap();
            if v["id"] == json!(id) {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }

    /// `Runtime.evaluate` of `expr`: its value, or the protocol's error.
    fn evaluate(&mut self, expr: &str) -> Result<Value, Value> {
        self.try_call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        )
        .map(|r| r["result"]["value"].clone())
    }

    /// [`Self::eval`] for the wait loops: while the page navigates (a form just posted), its
    /// execution context may be gone for a moment and `Runtime.evaluate` answers an error
    /// ("Cannot find context with specified id"); that is "not yet", not a failure.
    fn eval_while_loading(&mut self, expr: &str) -> Value {
        self.evaluate(expr).unwrap_or(Value::Null)
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expr: &str) -> Value {
        self.evaluate(expr)
            .unwrap_or_else(|e| panic!("Runtime.evaluate {expr}: {e}"))
    }

    /// Sends `headers` (name, value) with every request of this page from now on, navigations
    /// and their redirects included (`Network.setExtraHTTPHeaders`): a header Chromium has no
    /// switch for, such as `Sec-GPC`.
    pub fn set_extra_headers(&mut self, headers: &[(&str, &str)]) {
        let map: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        self.call("Network.enable", json!({}));
        self.call("Network.setExtraHTTPHeaders", json!({ "headers": map }));
    }

    /// Navigates the page to `url`.
    pub fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({ "url": url }));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
    }

    /// Waits until `expr` is true in the page (a JavaScript expression; a page still loading
    /// may not be able to evaluate it yet).
    pub fn wait_for(&mut self, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.eval_while_loading(expr) == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "page never satisfied {expr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the page's text contains `text`.
    pub fn wait_text(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.eval_while_loading("document.readyState === 'complete' && document.body ? document.body.innerText : ''");
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

    /// Presses the (first) element matching `selector` with the mouse: pressed and released at
    /// its centre.
    pub fn press_button(&mut self, selector: &str) {
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
