//! Helpers shared by the delivery tests: events with unique ids, a publisher thread, a
//! consumer that reads a whole topic and reports duplicates, and a figures line.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openclick_events::v1::{Client, EngagementEvent, Geo, Network, Signals};
use openclick_events::Message as _;
use openclick_kafka::reader::{Start, TopicReader};
use openclick_kafka::ClientSettings;
use openclick_kafka::KafkaSink;
use openclick_sink::Sink;

/// An event with a unique, sortable id.
pub fn event(run: &str, i: u64) -> EngagementEvent {
    EngagementEvent {
        event_id: format!("{run}-{i:09}"),
        tenant_id: "acme".into(),
        contact_id: format!("c-{}", i % 97),
        campaign_id: "spring".into(),
        message_id: "m-1".into(),
        ..Default::default()
    }
}

/// A realistic event (about 300 bytes encoded) with a unique id.
pub fn realistic(i: u64) -> EngagementEvent {
    EngagementEvent {
        event_id: format!("0192f1b2-7c3a-7d4e-9f10-{i:012x}"),
        r#type: 1,
        channel: 1,
        tenant_id: "acme".into(),
        campaign_id: "2024-spring-sale".into(),
        message_id: format!("msg-{}", i % 10_000),
        contact_id: format!("contact-{}", i % 50_000),
        occurred_at_ms: 1_700_000_000_000 + i as i64,
        sent_at_ms: 1_699_999_000_000,
        client: Some(Client {
            user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148".into(),
            email_client: "Apple Mail".into(),
            os: "iOS".into(),
            os_version: "17.1".into(),
            device_category: 2,
            ..Default::default()
        }),
        geo: Some(Geo::default()),
        network: Some(Network::default()),
        signals: Some(Signals::default()),
        key_id: "k1".into(),
        producer_version: "0.1.0".into(),
        ..Default::default()
    }
}

/// A thread publishing `rate` events per second until stopped; it records the ids the sink
/// accepted.
pub struct Publisher {
    stop: Arc<AtomicBool>,
    pub published: Arc<AtomicU64>,
    handle: Option<JoinHandle<(HashSet<String>, u64)>>,
}

impl Publisher {
    pub fn start(sink: Arc<KafkaSink>, run: &str, rate: u64) -> Publisher {
        let stop = Arc::new(AtomicBool::new(false));
        let published = Arc::new(AtomicU64::new(0));
        let (s, p, run) = (stop.clone(), published.clone(), run.to_string());
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut accepted = HashSet::new();
            let mut refused = 0u64;
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                // Steady stream: catch up to `rate` per second, in small bursts.
                let due = started.elapsed().as_millis() as u64 * rate / 1000;
                while i < due {
                    let ev = event(&run, i);
                    match sink.publish_event(&ev) {
                        Ok(()) => {
                            accepted.insert(ev.event_id);
                        }
                        Err(_) => refused += 1,
                    }
                    i += 1;
                    p.store(i, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (accepted, refused)
        });
        Publisher {
            stop,
            published,
            handle: Some(handle),
        }
    }

    /// Stops; returns the accepted ids and the number refused.
    pub fn stop(mut self) -> (HashSet<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// What a topic holds.
#[derive(Debug, Default)]
pub struct Consumed {
    pub records: u64,
    pub unique: HashSet<String>,
}

impl Consumed {
    pub fn duplicates(&self) -> u64 {
        self.records - self.unique.len() as u64
    }
}

/// Reads every partition of `topic` from the beginning until `expect` unique ids are seen and
/// `quiet` passes without a record (or `limit` passes).
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expect: &HashSet<String>,
    quiet: Duration,
    limit: Duration,
) -> Consumed {
    let settings = ClientSettings::new(bootstrap);
    consume_all_with(&settings, topic, partitions, expect, quiet, limit)
}

/// [`consume_all`] with these client settings (TLS, SASL, ...).
pub fn consume_all_with(
    settings: &ClientSettings,
    topic: &str,
    partitions: i32,
    expect: &HashSet<String>,
    quiet: Duration,
    limit: Duration,
) -> Consumed {
    let reader =
        TopicReader::open(settings, topic, Start::Beginning, Duration::from_secs(10)).unwrap();
    assert_eq!(reader.partitions(), partitions as usize);
    let mut out = Consumed::default();
    let deadline = Instant::now() + limit;
    let mut last = Instant::now();
    while Instant::now() < deadline {
        if expect.iter().all(|id| out.unique.contains(id)) && last.elapsed() > quiet {
            break;
        }
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let ev = EngagementEvent::decode(m.payload.as_deref().unwrap()).unwrap();
                out.records += 1;
                out.unique.insert(ev.event_id);
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    out
}

/// Waits until the sink has nothing in flight and an empty spool.
pub fn wait_drained(sink: &KafkaSink, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if sink.is_drained() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The figures line BENCHMARKS.md quotes.
pub fn figures(
    scenario: &str,
    accepted: &HashSet<String>,
    sink: &KafkaSink,
    consumed: &Consumed,
) -> u64 {
    let d = sink.detailed_stats();
    let lost = accepted
        .iter()
        .filter(|id| !consumed.unique.contains(*id))
        .count() as u64;
    println!(
        "FIGURES {scenario}: accepted={} delivered={} spooled={} replayed={} replay_delivered={} \
         duplicated={} lost={} failed={} spooled_by_cause={:?}",
        accepted.len(),
        d.sink.delivered,
        d.sink.spooled,
        d.replayed,
        d.replay_delivered,
        consumed.duplicates(),
        lost,
        d.sink.failed,
        d.spooled_by_cause
    );
    lost
}

/// A loopback address where connections are refused, for as long as it lives: its port is
/// bound (so no other socket can take it, not even as the local port of an outgoing
/// connection) but never listened on.
pub struct DeadAddr {
    _socket: socket2::Socket,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

/// A [`DeadAddr`] on a port the kernel picks.
pub fn dead_addr() -> DeadAddr {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let addr = socket
        .local_addr()
        .unwrap()
        .as_socket()
        .unwrap()
        .to_string();
    DeadAddr {
        _socket: socket,
        addr,
    }
}

/// The tansu binary: `TANSU_BIN`, else `tansu` on `PATH`, else `~/.cargo/bin/tansu`.
pub fn tansu_bin() -> Option<PathBuf> {
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

/// The tansu binary, or a failure saying how to get one (these tests are ignored by default
/// and only run when asked for).
pub fn need_tansu() -> PathBuf {
    tansu_bin().expect(
        "no tansu binary (TANSU_BIN, PATH, ~/.cargo/bin): install it with \
         `cargo install tansu --locked --features dynostore`, or see .ci/run",
    )
}
