//! Helpers shared by the edge's integration tests: an edge served on port 0 with a real sink,
//! a plain HTTP/1.1 client over `TcpStream`, and a consumer assigned to every partition.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use openclick_edge::{EdgeState, Info};
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_sink::kafka::{KafkaConfig, KafkaSink};
use openclick_sink::Sink;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
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
            brokers: bootstrap.to_string(),
            topic: topic.to_string(),
            linger_ms: 1,
            ..KafkaConfig::default()
        })
        .unwrap(),
    )
}

/// An edge serving on 127.0.0.1 port 0 (public and admin listeners) on its own one-worker
/// runtime, until [`Served::stop`] or drop (which drain and flush like SIGTERM does).
pub struct Served {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub state: Arc<EdgeState>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Served {
    /// Binds both listeners, then serves the state `build` makes from their `Info`.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        build: impl FnOnce(Info) -> Arc<EdgeState>,
    ) -> Served {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (listener, admin) = rt.block_on(async {
            (
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            )
        });
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let state = build(Info {
            version: "test".into(),
            listen: addr.to_string(),
            admin_listen: admin_addr.to_string(),
            kafka_bootstrap_servers: bootstrap.to_string(),
            kafka_embedded: true,
            topic: topic.to_string(),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            rt.block_on(openclick_edge::run(listener, admin, st, async {
                let _ = rx.await;
            }))
        });
        Served {
            addr,
            admin: admin_addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Shuts the edge down (drain, then sink flush) and waits for it.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
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

/// A consumer assigned to partitions `0..partitions` of `topic`, from the beginning (no group
/// membership, nothing committed).
pub fn assigned_consumer(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "edge-tests")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}
