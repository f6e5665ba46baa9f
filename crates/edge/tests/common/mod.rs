//! Helpers shared by the edge's integration tests: an edge served on port 0 with a real sink
//! and its admin plane beside it (wired as `openclick serve` wires them), a plain HTTP/1.1
//! client over `TcpStream`, and a reader of a whole topic.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use openclick_admin::server::AdminHandle;
use openclick_admin::{Admin, Metrics, Readiness, SuppressApi};
use openclick_edge::EdgeState;
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_kafka::reader::{Start, TopicReader};
use openclick_kafka::{ClientSettings, KafkaConfig, KafkaSink};
use openclick_sink::{Health, Sink};
use tokio::sync::oneshot;

/// An enricher without GeoIP, file polling or the too-fast delay: what the tests assert on.
pub fn test_enricher() -> Arc<Enricher> {
    Arc::new(
        Enricher::new(EnrichConfig {
            reload_poll: None,
            min_delay_ms: 0,
            ..EnrichConfig::default()
        })
        .unwrap(),
    )
}

/// A Kafka sink on `topic` with a 1 ms linger, so events show up quickly.
pub fn test_sink(bootstrap: &str, topic: &str) -> Arc<dyn Sink> {
    Arc::new(
        KafkaSink::new(&KafkaConfig {
            client: ClientSettings::new(bootstrap),
            topic: topic.to_string(),
            linger_ms: 1,
            ..KafkaConfig::default()
        })
        .unwrap(),
    )
}

/// An edge serving on 127.0.0.1 port 0 on its own one-worker runtime, and its admin plane on
/// another port 0 listener and its own thread, until [`Served::stop`] or drop (which drain and
/// flush like SIGTERM does).
pub struct Served {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub state: Arc<EdgeState>,
    pub admin_state: Arc<Admin>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    admin_handle: Option<AdminHandle>,
}

impl Served {
    /// Binds both listeners and serves `state`, with the admin plane `openclick serve` builds:
    /// readiness from the sink's health and the suppression set's sync, metrics from the edge,
    /// the sink and the set, `/info` from the listeners and the sink, and `suppressions`.
    pub fn start(state: Arc<EdgeState>, suppressions: Option<SuppressApi>) -> Served {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let admin_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin_listener.local_addr().unwrap();
        let mut info = serde_json::Map::new();
        info.insert("version".into(), "test".into());
        info.insert("listen".into(), addr.to_string().into());
        info.insert("admin_listen".into(), admin_addr.to_string().into());
        for (k, v) in state.sink.describe() {
            info.insert(k.into(), v.into());
        }
        info.insert("kafka_embedded".into(), true.into());
        let set = state.pipeline.suppression().clone();
        let (sink, s2) = (state.sink.clone(), set.clone());
        let readiness = Readiness::new()
            .with_check("kafka", move || sink.health() == Health::Up)
            .with_check("suppression_sync", move || s2.is_caught_up());
        let (edge, sink) = (state.clone(), state.sink.clone());
        let metrics = Metrics::new()
            .with_exporter(move || {
                edge.metrics.export();
                edge.connections.export("public");
            })
            .with_exporter(move || sink.export_metrics())
            .with_exporter(move || set.export_metrics());
        let admin_state = Arc::new(Admin::new(info, readiness, metrics, suppressions));
        let admin_handle = openclick_admin::server::spawn(
            admin_listener,
            admin_state.clone(),
            state.config.conn.clone(),
        )
        .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let (st, adm) = (state.clone(), admin_state.clone());
        let thread = std::thread::spawn(move || {
            rt.block_on(openclick_edge::run(listener, st, async move {
                let _ = rx.await;
                adm.readiness.set_draining();
            }))
        });
        Served {
            addr,
            admin: admin_addr,
            state,
            admin_state,
            stop: Some(tx),
            thread: Some(thread),
            admin_handle: Some(admin_handle),
        }
    }

    /// Shuts the edge down (drain, then sink flush), then the admin plane, and waits.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        if let Some(a) = self.admin_handle.take() {
            a.stop();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.admin_handle.take();
    }
}

/// A parsed HTTP/1.1 response.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy), for assertions and failure messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A real HTTP/1.1 request over a fresh TCP connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: t.example.com\r\nConnection: close\r\n");
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header terminator");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A reader of every partition of `topic`, from the beginning (no group membership, nothing
/// committed); it checks the topic has `partitions` partitions.
pub fn assigned_consumer(bootstrap: &str, topic: &str, partitions: i32) -> TopicReader {
    let r = TopicReader::open(
        &ClientSettings::new(bootstrap),
        topic,
        Start::Beginning,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.partitions(), partitions as usize);
    r
}
