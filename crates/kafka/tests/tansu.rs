//! The Kafka sink against a real, separate broker process: tansu (an Apache Kafka compatible
//! broker, `cargo install tansu --locked --features dynostore`), on loopback with memory storage.
//!
//! - end to end: everything published arrives;
//! - frozen broker (SIGSTOP for longer than `message.timeout.ms`, then SIGCONT) under a steady
//!   stream: nothing lost;
//! - killed and restarted broker under a steady stream: memory storage forgets what it had,
//!   but nothing accepted after the restart is lost.
//!
//! The tests start their own tansu processes (they must signal them), from `TANSU_BIN`, else
//! `tansu` on `PATH`, else `~/.cargo/bin/tansu`. Without a binary they are skipped with a
//! message. The end-to-end test runs against `TANSU_BROKER` (`host:port`, with the topic
//! `openclick-e2e` created) when it is set, else against its own instance. `.ci/run` installs tansu
//! when missing.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use openclick_kafka::{ClientSettings, KafkaConfig, KafkaSink};
use openclick_sink::spool::SpoolConfig;
use openclick_sink::{Health, Sink};

fn tansu_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("tansu");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let home = PathBuf::from(std::env::var_os("HOME")?);
    let p = home.join(".cargo/bin/tansu");
    p.is_file().then_some(p)
}

/// A tansu broker process on a loopback port.
struct Tansu {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Tansu {
    fn start(bin: &Path) -> Tansu {
        let mut t = Tansu {
            bin: bin.to_path_buf(),
            port: dead_port(),
            child: None,
        };
        t.spawn();
        t
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&self.bin)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_topic(&self, topic: &str, partitions: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(&self.bin)
                .args(["topic", "create", topic])
                .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
                .args(["--partitions", &partitions.to_string()])
                .output()
                .expect("tansu topic create");
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu topic create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.kill();
    }
}

fn config(brokers: &str, topic: &str, spool: &Path) -> KafkaConfig {
    KafkaConfig {
        client: ClientSettings::new(brokers),
        topic: topic.to_string(),
        linger_ms: 5,
        message_timeout_ms: 3_000,
        spool_after_ms: 500,
        stall_after_ms: 1_500,
        spool: Some(SpoolConfig::new(spool)),
        ..KafkaConfig::default()
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

macro_rules! need_tansu {
    () => {
        match tansu_bin() {
            Some(b) => b,
            None => {
                eprintln!(
                    "SKIPPED: no tansu binary (TANSU_BIN, PATH, ~/.cargo/bin); \
                     install it with `cargo install tansu --locked --features dynostore`"
                );
                return;
            }
        }
    };
}

#[test]
fn tansu_end_to_end() {
    let (_tansu, brokers, topic) = match (tansu_bin(), std::env::var("TANSU_BROKER")) {
        (_, Ok(addr)) => (None, addr, "openclick-e2e".to_string()),
        (Some(bin), Err(_)) => {
            let t = Tansu::start(&bin);
            t.create_topic("openclick-e2e", 3);
            let a = t.addr();
            (Some(t), a, "openclick-e2e".to_string())
        }
        (None, Err(_)) => {
            eprintln!("SKIPPED: neither a tansu binary nor TANSU_BROKER");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let run = format!("e2e-{}", std::process::id());
    let sink = KafkaSink::new(&config(&brokers, &topic, dir.path())).unwrap();
    let mut accepted = HashSet::new();
    for i in 0..2_000 {
        let ev = event(&run, i);
        sink.publish(&ev).unwrap();
        accepted.insert(ev.event_id);
    }
    sink.flush(Duration::from_secs(30)).unwrap();
    assert!(wait_drained(&sink, Duration::from_secs(30)));
    let consumed = consume_all(
        &brokers,
        &topic,
        3,
        &accepted,
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    let lost = figures("tansu-e2e", &accepted, &sink, &consumed);
    assert_eq!(lost, 0);
    assert_eq!(sink.stats().failed, 0);
    assert_eq!(sink.health(), Health::Up);
}

#[test]
fn tansu_frozen_longer_than_message_timeout_loses_nothing() {
    let bin = need_tansu!();
    let tansu = Tansu::start(&bin);
    let topic = "freeze";
    tansu.create_topic(topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(KafkaSink::new(&config(&tansu.addr(), topic, dir.path())).unwrap());
    wait_for("broker up", Duration::from_secs(20), || {
        sink.health() == Health::Up
    });
    let publisher = Publisher::start(sink.clone(), "freeze", 1_000);
    std::thread::sleep(Duration::from_secs(1));
    tansu.signal("-STOP");
    // Frozen: TCP connections stay open, nothing answers. Longer than message.timeout.ms.
    wait_for("health down", Duration::from_secs(10), || {
        sink.health() == Health::Down
    });
    std::thread::sleep(Duration::from_secs(6));
    tansu.signal("-CONT");
    wait_for("health up", Duration::from_secs(60), || {
        sink.health() == Health::Up
    });
    std::thread::sleep(Duration::from_secs(2));
    let (accepted, refused) = publisher.stop();
    assert_eq!(refused, 0);
    assert!(
        wait_drained(&sink, Duration::from_secs(120)),
        "not drained: {:?}",
        sink.detailed_stats()
    );
    let consumed = consume_all(
        &tansu.addr(),
        topic,
        3,
        &accepted,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let lost = figures("tansu-sigstop", &accepted, &sink, &consumed);
    let d = sink.detailed_stats();
    assert_eq!(lost, 0);
    assert_eq!(d.sink.failed, 0);
    assert!(d.sink.spooled > 0, "the freeze spooled nothing: {d:?}");
}

#[test]
fn tansu_killed_and_restarted_loses_nothing_accepted_after_the_restart() {
    let bin = need_tansu!();
    let mut tansu = Tansu::start(&bin);
    let topic = "restart";
    tansu.create_topic(topic, 3);
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(KafkaSink::new(&config(&tansu.addr(), topic, dir.path())).unwrap());
    wait_for("broker up", Duration::from_secs(20), || {
        sink.health() == Health::Up
    });
    let before = Publisher::start(sink.clone(), "before", 1_000);
    std::thread::sleep(Duration::from_secs(1));
    tansu.kill();
    std::thread::sleep(Duration::from_secs(2));
    let (accepted_before, refused) = before.stop();
    assert_eq!(refused, 0);
    // Same port, empty memory storage: the topic must be made again.
    tansu.spawn();
    tansu.create_topic(topic, 3);
    let after = Publisher::start(sink.clone(), "after", 1_000);
    std::thread::sleep(Duration::from_secs(4));
    let (accepted_after, refused) = after.stop();
    assert_eq!(refused, 0);
    assert!(
        wait_drained(&sink, Duration::from_secs(120)),
        "not drained: {:?}",
        sink.detailed_stats()
    );
    let consumed = consume_all(
        &tansu.addr(),
        topic,
        3,
        &accepted_after,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let lost_after = figures("tansu-restart(after)", &accepted_after, &sink, &consumed);
    let kept_before = accepted_before
        .iter()
        .filter(|id| consumed.unique.contains(*id))
        .count();
    println!(
        "tansu-restart: accepted before the kill {}, of which on the restarted broker {} \
         (memory storage forgets what was acknowledged before)",
        accepted_before.len(),
        kept_before
    );
    assert_eq!(lost_after, 0);
    assert_eq!(sink.stats().failed, 0, "{:?}", sink.detailed_stats());
}
