//! The adversarial suite's process-level case (issue #12, item 9): the real binary under a low
//! open-file limit, its public listener flooded with silent connections, while the admin plane
//! (its own listener and accept loop) keeps answering.
//!
//! `openclick serve` binds both listeners itself (on port 0 here) and says where in its
//! `openclick serving` log line (`--log-json`), which the test reads: no port is picked and
//! released by the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_openclick");
/// 32 bytes 0..=31, base64url.
const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// The child, killed on drop (also when an assertion fails).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 GET on a fresh connection, everything bounded by `limit`: the status and
/// body, or `None` if the connection failed or timed out.
fn get(addr: SocketAddr, path: &str, limit: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: t.example.com\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&raw[..split])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((
        status,
        String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    ))
}

/// The value of the first sample of `series` (name and labels, exactly as exported).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn silent_connections_under_a_low_open_file_limit_leave_the_admin_plane_answering() {
    // `ulimit -n` in a shell sets both the soft and the hard limit, so `serve`'s raise to the
    // hard limit leaves it at 256; with 256 files the default connection cap is 64
    // (`max_connections` in serve.rs: the limit less 1024, at least 64).
    flood_under_256_files(&[], 64);
}

#[test]
fn a_connection_cap_above_the_open_file_limit_is_lowered_to_fit() {
    // Asked for 1,000 connections with 256 files, the process would run out of files first:
    // every accept, the admin listener's included, fails with EMFILE, and `/healthz` stops
    // answering while the flood lasts. `serve` lowers the cap to the limit less the files it
    // keeps for everything else (128).
    flood_under_256_files(&["--max-connections", "1000"], 64);
}

/// Runs `serve` with 256 open files (and `args`), checks its cap is `cap`, opens 300 silent
/// connections to the public listener, and checks the admin plane still answers, the surplus
/// was refused by the cap (not by the kernel), and the pixel route answers once they go.
fn flood_under_256_files(args: &[&str], cap: u64) {
    let data = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        Command::new("sh")
            .args(["-c", r#"ulimit -n 256 && exec "$0" "$@""#, BIN])
            .args(["--log", "info", "--log-json", "serve"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--keys", KEYS, "--data-dir", data.path().to_str().unwrap()])
            .args(["--header-read-timeout-secs", "60", "--min-delay-ms", "0"])
            // The embedded broker has no suppressions to follow: readiness would wait for it.
            .arg("--no-suppression-sync")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The listeners' addresses, from the `openclick serving` line.
    let mut seen = Vec::new();
    let (listen, admin) = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no `openclick serving` line: {seen:#?}"));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            let f = &v["fields"];
            if f["message"] == "openclick serving" {
                let addr = |k: &str| f[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                break (addr("listen"), addr("admin"));
            }
        }
        seen.push(line);
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(admin, "/readyz", Duration::from_secs(2)).map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // 300 silent connections: the first `cap` are held (60 s header deadline), every later one
    // is accepted and closed at once by the cap, so the process never runs out of files.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(listen).unwrap());
    }
    // Every connection reached the accept loop: held, or refused and counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = get(admin, "/metrics", Duration::from_secs(2)).map(|r| r.1);
        let refused = m.as_deref().and_then(|m| {
            sample(
                m,
                r#"openclick_connections_refused_total{listener="public",reason="cap"}"#,
            )
        });
        if refused.is_some_and(|r| r >= (300 - cap) as f64) || Instant::now() > deadline {
            break m.unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !metrics.is_empty(),
        "/metrics did not answer while the public listener was flooded"
    );
    let refused = sample(
        &metrics,
        r#"openclick_connections_refused_total{listener="public",reason="cap"}"#,
    );
    assert_eq!(refused, Some((300 - cap) as f64), "{metrics}");
    assert_eq!(
        sample(&metrics, r#"openclick_connections_open{listener="public"}"#),
        Some(cap as f64),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"openclick_accept_errors_total{listener="public"}"#
        ),
        Some(0.0),
        "the cap should keep the process below its file limit: {metrics}"
    );
    // How close to its limit the process is (Linux): the held connections plus the rest.
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", child.0.id())) {
        eprintln!("open files with {cap} connections held: {}", fds.count());
    }
    // The admin plane answers within 2 s each while the public listener is full.
    for path in ["/healthz", "/readyz"] {
        let t = Instant::now();
        let r = get(admin, path, Duration::from_secs(2));
        assert_eq!(r.map(|r| r.0), Some(200), "{path}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{path}: {:?}",
            t.elapsed()
        );
    }
    // The public listener is full: a pixel request is accepted and closed, unanswered.
    assert_eq!(get(listen, "/o/x.gif", Duration::from_secs(2)), None);

    // Once the silent connections go, the pixel route answers again.
    drop(silent);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((200, _)) = get(listen, "/o/x.gif", Duration::from_secs(2)) {
            break;
        }
        assert!(Instant::now() < deadline, "the pixel route never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The limit and the cap in force, as `/info` reports them.
    let info = get(admin, "/info", Duration::from_secs(2)).unwrap();
    let info: serde_json::Value = serde_json::from_str(&info.1).unwrap();
    assert_eq!(info["open_files_limit"], 256, "{info}");
    assert_eq!(info["max_connections"], cap, "{info}");
    // The admin listener's cap comes out of the same budget (a quarter of the files): a flood
    // of it is refused by its cap, never by the kernel, so it cannot exhaust the files either.
    assert_eq!(info["admin_max_connections"], 64, "{info}");
    let held: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(admin).unwrap())
        .collect();
    // The public listener answers throughout.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        get(listen, "/o/x.gif", Duration::from_secs(2)).map(|r| r.0),
        Some(200),
        "the pixel route stopped answering during an admin flood"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        if let Some((200, m)) = get(admin, "/metrics", Duration::from_secs(2)) {
            break m;
        }
        assert!(Instant::now() < deadline, "the admin plane never came back");
        std::thread::sleep(Duration::from_millis(50));
    };
    let refused = sample(
        &metrics,
        r#"openclick_connections_refused_total{listener="admin",reason="cap"}"#,
    );
    assert!(
        refused.is_some_and(|r| r >= (300 - 64) as f64),
        "admin flood not refused by its cap: {metrics}"
    );
    for listener in ["public", "admin"] {
        assert_eq!(
            sample(
                &metrics,
                &format!(r#"openclick_accept_errors_total{{listener="{listener}"}}"#)
            ),
            Some(0.0),
            "{listener}: the caps should keep the process below its file limit: {metrics}"
        );
    }
}
