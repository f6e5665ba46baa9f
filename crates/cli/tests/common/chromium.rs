//! Headless Chromium (Debian `chromium`, or `$CHROMIUM`) for the browser tests: one set of
//! flags, so every test runs the same isolated browser.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
