//! SIGTERM to a running `openclick serve` under load loses nothing.
//!
//! The broker is an [`EmbeddedBroker`] owned by the test (so the data outlives the process),
//! reached through `--kafka-brokers`. Load: several threads sending signed pixel hits over
//! real HTTP, some for a suppressed contact. The number of events the server accepted comes
//! from its final `kafka sink flushed` log line (JSON logs); the events on the topic are read
//! with a real consumer and compared by `event_id`.
//!
//! Two scenarios: the broker healthy (the shutdown flush delivers everything), and the broker
//! down at SIGTERM (the flush deadline passes, the producer queue is purged into the spool,
//! the process exits; a second `serve` on the same data directory replays the spool).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openclick_events::v1::EngagementEvent;
use openclick_events::Message as _;
use openclick_kafka::reader::{Start, TopicReader};
use openclick_kafka::{ClientSettings, EmbeddedBroker};

const BIN: &str = env!("CARGO_BIN_EXE_openclick");
/// 32 bytes 0..=31, base64url.
const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const SUPPRESSED: &str = "c-suppressed";

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn sign(contact: &str, base: SocketAddr) -> String {
    let out = Command::new(BIN)
        .args(["sign", "open", "--tenant", "acme", "--campaign", "spring"])
        .args(["--message", "m-1", "--contact", contact, "--keys", KEYS])
        .args(["--base-url", &format!("http://{base}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let url = String::from_utf8(out.stdout).unwrap();
    let url = url.trim();
    let path = &url[url.find("://").unwrap() + 3..];
    path[path.find('/').unwrap()..].to_string()
}

/// A running `openclick serve` with its stderr collected.
struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl Server {
    fn start(brokers: &str, topic: &str, data: &Path, flush_secs: u64) -> Server {
        let listen = free_addr();
        let admin = free_addr();
        let suppression = data.join("suppressed.csv");
        std::fs::write(&suppression, format!("acme,{SUPPRESSED}\n")).unwrap();
        let mut child = Command::new(BIN)
            .args(["--log", "info", "--log-json", "serve"])
            .args(["--listen", &listen.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--kafka-brokers", brokers, "--topic", topic])
            .args(["--keys", KEYS, "--data-dir", data.to_str().unwrap()])
            .args(["--min-delay-ms", "0", "--drain-timeout-secs", "5"])
            .args(["--flush-timeout-secs", &flush_secs.to_string()])
            .args(["--suppression-file", suppression.to_str().unwrap()])
            // The test's broker has no suppressions topic to follow; /readyz would wait for it.
            .arg("--no-suppression-sync")
            // The load replays a few tokens many times: this test is about delivery, so the
            // per-token rate limit (tested in crates/edge) is off.
            .args(["--rate-limit-burst", "0"])
            .stdin(Stdio::null())
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
        let s = Server {
            child,
            lines,
            reader: Some(reader),
            listen,
            admin,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = try_http(s.admin, "/readyz") {
                if r.0 == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not ready: {:?}",
                s.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for exit; returns the fields of the `kafka sink flushed` line.
    fn wait(mut self) -> serde_json::Value {
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
        let lines = self.lines.lock().unwrap();
        assert!(status.success(), "exit {status:?}: {lines:#?}");
        let fields = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("fields").cloned())
            .rfind(|f| f["message"] == "kafka sink flushed")
            .unwrap_or_else(|| panic!("no final sink line: {lines:#?}"));
        let lost_lines: Vec<_> = lines.iter().filter(|l| l.contains("EVENT LOST")).collect();
        assert!(lost_lines.is_empty(), "{lost_lines:#?}");
        fields
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET on a fresh connection: status and body, or None if the connection failed.
fn try_http(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: t.example.com\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\nConnection: close\r\n\r\n"
    );
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
    Some((status, raw[split + 4..].to_vec()))
}

/// Load: `threads` clients hitting signed pixels until stopped or the server goes away.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    ok_suppressed: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, paths: Vec<String>, suppressed: String, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let ok_suppressed = Arc::new(AtomicU64::new(0));
        let handles = (0..threads)
            .map(|t| {
                let (stop, ok, oks) = (stop.clone(), ok.clone(), ok_suppressed.clone());
                let (paths, suppressed) = (paths.clone(), suppressed.clone());
                std::thread::spawn(move || {
                    let mut i = t;
                    let mut failures = 0;
                    while !stop.load(Ordering::Relaxed) && failures < 20 {
                        // One hit in ten is for the suppressed contact.
                        let sup = i % 10 == 9;
                        let path = if sup {
                            &suppressed
                        } else {
                            &paths[i % paths.len()]
                        };
                        match try_http(addr, path) {
                            Some((200, body)) if body.starts_with(b"GIF89a") => {
                                failures = 0;
                                if sup { &oks } else { &ok }.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                failures += 1;
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                        i += threads;
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            ok_suppressed,
            threads: handles,
        }
    }

    fn join(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.ok_suppressed.load(Ordering::Relaxed),
        )
    }
}

fn consume(bootstrap: &str, topic: &str, expect: u64) -> (u64, HashSet<String>, u64) {
    let consumer = TopicReader::open(
        &ClientSettings::new(bootstrap),
        topic,
        Start::Beginning,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(consumer.partitions(), 3);
    let (mut records, mut ids, mut suppressed) = (0u64, HashSet::new(), 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    while Instant::now() < deadline {
        if ids.len() as u64 >= expect && last.elapsed() > Duration::from_secs(2) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let ev = EngagementEvent::decode(m.payload.as_deref().unwrap()).unwrap();
            records += 1;
            if ev.contact_id == SUPPRESSED {
                suppressed += 1;
            }
            ids.insert(ev.event_id);
        }
    }
    (records, ids, suppressed)
}

fn num(f: &serde_json::Value, k: &str) -> u64 {
    f[k].as_u64().unwrap_or_else(|| panic!("no {k} in {f}"))
}

#[test]
fn sigterm_under_load_with_a_healthy_broker_loses_nothing() {
    let topic = "sigterm-healthy";
    let broker = EmbeddedBroker::start(1, &[(topic, 3)]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(broker.bootstrap_servers(), topic, data.path(), 15);
    let paths: Vec<String> = (0..5)
        .map(|i| sign(&format!("c-{i}"), server.listen))
        .collect();
    let suppressed = sign(SUPPRESSED, server.listen);
    let load = Load::start(server.listen, paths, suppressed, 4);
    std::thread::sleep(Duration::from_secs(3));
    server.sigterm();
    let f = server.wait();
    let (client_ok, client_suppressed) = load.join();
    let accepted = num(&f, "accepted");
    let (records, ids, sup) = consume(broker.bootstrap_servers(), topic, accepted);
    println!(
        "FIGURES sigterm-healthy: accepted={accepted} delivered={} spooled={} replayed=0 \
         duplicated={} lost={} (client saw {client_ok} pixels for live contacts, \
         {client_suppressed} for the suppressed one)",
        num(&f, "delivered"),
        num(&f, "spooled"),
        records - ids.len() as u64,
        accepted.saturating_sub(ids.len() as u64),
    );
    assert!(accepted > 100, "too little load: {accepted}");
    assert_eq!(sup, 0, "suppressed contact's events reached Kafka");
    assert_eq!(ids.len() as u64, accepted, "consumed != accepted");
    assert!(client_ok <= accepted);
    assert_eq!(num(&f, "failed"), 0);
    assert_eq!(num(&f, "in_flight"), 0);
}

#[test]
fn sigterm_under_load_with_the_broker_down_spools_and_the_next_start_replays() {
    let topic = "sigterm-down";
    let broker = EmbeddedBroker::start(1, &[(topic, 3)]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(broker.bootstrap_servers(), topic, data.path(), 2);
    let paths: Vec<String> = (0..5)
        .map(|i| sign(&format!("c-{i}"), server.listen))
        .collect();
    let suppressed = sign(SUPPRESSED, server.listen);
    let load = Load::start(server.listen, paths, suppressed, 4);
    std::thread::sleep(Duration::from_secs(1));
    broker.all_brokers_down().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    server.sigterm();
    let f = server.wait();
    let (client_ok, _) = load.join();
    let accepted = num(&f, "accepted");
    let spooled = num(&f, "spooled");
    assert_eq!(num(&f, "failed"), 0);
    assert_eq!(num(&f, "in_flight"), 0, "{f}");
    assert_eq!(accepted, num(&f, "delivered") + spooled, "{f}");
    assert!(spooled > 0, "nothing was spooled: {f}");
    assert!(client_ok <= accepted);

    // Second life: the broker is back; the spool left by the first process is replayed.
    broker.all_brokers_up().unwrap();
    let server = Server::start(broker.bootstrap_servers(), topic, data.path(), 15);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = try_http(server.admin, "/metrics")
            .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let replayed = metrics
            .lines()
            .find(|l| l.starts_with("openclick_sink_recovered_delivered_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if replayed >= spooled {
            break;
        }
        assert!(Instant::now() < deadline, "replay incomplete: {metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.sigterm();
    let f2 = server.wait();
    let replayed = num(&f2, "recovered_delivered");
    let (records, ids, sup) = consume(broker.bootstrap_servers(), topic, accepted);
    println!(
        "FIGURES sigterm-broker-down: accepted={accepted} delivered={} spooled={spooled} \
         replayed={replayed} duplicated={} lost={}",
        num(&f, "delivered"),
        records - ids.len() as u64,
        accepted.saturating_sub(ids.len() as u64),
    );
    assert_eq!(sup, 0);
    assert_eq!(ids.len() as u64, accepted, "consumed != accepted");
    assert_eq!(num(&f2, "spool_pending"), 0);
}
