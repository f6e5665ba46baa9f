//! Helpers shared by the binary's black-box tests: a running `openclick serve` child (listeners
//! on port 0, the bound addresses read back from its `openclick serving` log line, stderr
//! collected), a plain HTTP/1.1 client, and `openclick sign`.
#![allow(dead_code)]

pub mod chromium;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_openclick");
/// 32 bytes 0..=31, base64url.
pub const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// The secret part of [`KEYS`].
pub const KEY_SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// `openclick` with no inherited `OPENCLICK_*` variables (the test's own environment must not
/// change what the child parses), stdin closed.
pub fn openclick() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OPENCLICK_") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

/// `openclick --log-json serve` on port 0 listeners, with `--keys`, `--data-dir data`, no
/// too-fast delay and short timeouts; callers add the rest.
pub fn serve_command(data: &Path) -> Command {
    let mut c = openclick();
    c.args(["--log", "info", "--log-json", "serve"])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--keys", KEYS, "--data-dir", data.to_str().unwrap()])
        .args(["--min-delay-ms", "0", "--drain-timeout-secs", "5"]);
    c
}

/// A running `openclick serve` with its stderr collected.
pub struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

impl Server {
    /// Spawns `cmd` (an `openclick serve` logging JSON), reads the listeners' bound addresses
    /// from its `openclick serving` line, then waits until `/readyz` answers 200.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (listen, admin) = loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                let f = v.get("fields")?;
                if f["message"] != "openclick serving" {
                    return None;
                }
                let listen = f["listen"].as_str()?.parse().ok()?;
                let admin = f["admin"].as_str()?.parse().ok()?;
                Some((listen, admin))
            });
            if let Some(found) = found {
                break found;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("serve exited {status:?}: {:#?}", lines.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "no `openclick serving` line: {:#?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let s = Server {
            child,
            lines,
            reader: Some(reader),
            listen,
            admin,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while try_http(s.admin, "GET", "/readyz", &[]).map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "server not ready: {:#?}",
                s.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stderr lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for exit (after [`sigterm`](Self::sigterm)), asserts it was a success, and
    /// returns every stderr line.
    pub fn wait(mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("serve did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.reader.take().unwrap().join().unwrap();
        let lines = self.lines.lock().unwrap().clone();
        assert!(status.success(), "exit {status:?}: {lines:#?}");
        lines
    }

    /// The admin API's base URL, for `openclick suppress --admin-url`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// `/info` as JSON.
    pub fn info(&self) -> serde_json::Value {
        let (status, body) = try_http(self.admin, "GET", "/info", &[]).unwrap();
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fields of every JSON log line's `fields` object whose `message` is `message`.
pub fn log_fields(lines: &[String], message: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("fields").cloned())
        .filter(|f| f["message"] == message)
        .collect()
}

/// One HTTP/1.1 request on a fresh connection: status and body, or None if the connection
/// failed. Sends a desktop Chrome user agent unless `headers` has one.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, Vec<u8>)> {
    let r = try_http_full(addr, method, path, headers)?;
    Some((r.0, r.2))
}

/// Status, headers (names lower-cased) and body of a response.
pub type FullResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// Like [`try_http`], with the response headers.
pub fn try_http_full(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<FullResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: t.example.com\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        req.push_str("User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    read_response(s)
}

/// A POST with `body` on a fresh connection (`Content-Length` framing): status, headers and
/// body, or None if the connection failed.
pub fn try_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<FullResponse> {
    let len = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("Content-Length", &len));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in &all {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    read_response(s)
}

/// Reads a whole `Connection: close` response: status, headers (names lower-cased), body.
fn read_response(mut s: TcpStream) -> Option<FullResponse> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, hdrs, raw[split + 4..].to_vec()))
}

/// Runs `openclick` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    openclick().args(args).output().unwrap()
}

/// `openclick sign open` for `contact` with [`KEYS`]: the URL's path (`/o/TOKEN.gif`).
pub fn sign_open(contact: &str) -> String {
    let out = run(&[
        "sign",
        "open",
        "--tenant",
        "acme",
        "--campaign",
        "spring",
        "--message",
        "m-1",
        "--contact",
        contact,
        "--keys",
        KEYS,
    ]);
    assert!(out.status.success(), "{out:?}");
    path_of(String::from_utf8(out.stdout).unwrap().trim())
}

/// `openclick sign click` for `contact` to `url` with [`KEYS`]: the URL's path (`/c/TOKEN`).
pub fn sign_click(contact: &str, url: &str) -> String {
    let out = run(&[
        "sign",
        "click",
        "--tenant",
        "acme",
        "--campaign",
        "spring",
        "--message",
        "m-1",
        "--contact",
        contact,
        "--link-id",
        "hero",
        "--url",
        url,
        "--keys",
        KEYS,
    ]);
    assert!(out.status.success(), "{out:?}");
    path_of(String::from_utf8(out.stdout).unwrap().trim())
}

/// `openclick tail --from-beginning --count N --idle-timeout-secs S`: the events as JSON.
pub fn tail(bootstrap: &str, count: u32, idle_secs: u32) -> Vec<serde_json::Value> {
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

/// `openclick sign click` of `link` in message `message` for contact c-1, with [`KEYS`]: the
/// URL's path.
pub fn sign_link(message: &str, link: &str, url: &str) -> String {
    sign_link_with(message, link, url, &[])
}

/// [`sign_link`] with extra `sign click` arguments (`--honeypot`).
pub fn sign_link_with(message: &str, link: &str, url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "sign",
        "click",
        "--tenant",
        "acme",
        "--campaign",
        "spring",
        "--message",
        message,
        "--contact",
        "c-1",
        "--link-id",
        link,
        "--url",
        url,
        "--keys",
        KEYS,
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{out:?}");
    path_of(String::from_utf8(out.stdout).unwrap().trim())
}

/// The path of an absolute URL.
pub fn path_of(url: &str) -> String {
    let rest = &url[url.find("://").unwrap() + 3..];
    rest[rest.find('/').unwrap()..].to_string()
}
