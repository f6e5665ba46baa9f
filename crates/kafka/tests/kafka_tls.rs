//! The Kafka clients over TLS and mutual TLS, against a real broker process.
//!
//! tansu (0.6.0) takes `--cert`/`--key` but never wraps its connections in TLS (its accept
//! loop leaves the acceptor unused), so TLS is terminated by stunnel (Debian `stunnel4`) in
//! front of it: tansu listens on plain loopback port A and advertises port B, where stunnel
//! accepts TLS and forwards to A. Every client therefore reaches the broker through TLS only.
//! The certificates (a CA, a server certificate for 127.0.0.1, a client certificate, and a
//! second, unrelated CA) are made per test with the `openssl` command-line tool.
//!
//! - TLS: events published through the real sink arrive, read back over TLS; the topic is
//!   created by the admin client over TLS.
//! - mTLS (stunnel `verify = 2`): a client with a certificate from the CA delivers; one without
//!   a certificate never comes up and delivers nothing.
//! - mTLS, the other clients: the topic admin creates the suppression topics, a change
//!   written by the suppression writer reaches the follower's set.
//! - Wrong CA: a client trusting another CA never comes up, delivers nothing, and the topic
//!   (read with the right CA) stays empty.
//! - SASL is not tested end to end: no broker here can authenticate librdkafka. tansu 0.6.0
//!   with `--authentication` offers only SCRAM-SHA-256/512 and OAUTHBEARER (no PLAIN: its
//!   rsasl is built without it); OAUTHBEARER fails for any token; a SCRAM user can only be
//!   created by an already authenticated client (AlterUserScramCredentials), which tansu's own
//!   CLI (no SASL) and rust-rdkafka (no such API) cannot be; without `--authentication` it
//!   refuses SASL handshakes. librdkafka's mock cluster has no SASL or TLS. The SASL settings
//!   are checked by librdkafka (`sink::config` tests, `openclick check-config`) and reach every
//!   client (`client` tests).
//!
//! `#[ignore]`d: they need tansu and stunnel4. `.ci/kafka-tls` installs stunnel4 and runs them
//! with `--include-ignored`; run that way without the tools, they fail.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use openclick_kafka::{ClientSettings, KafkaConfig, KafkaProperty, KafkaSink, Role};
use openclick_sink::spool::SpoolConfig;
use openclick_sink::{Health, Sink};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{what} exited {st:?}");
        }
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (see .ci/kafka-tls)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate signed by it,
/// and an unrelated CA; P-256 keys, one day.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for ca in ["ca", "other-ca"] {
            let subj = format!("/CN=openclick test {ca}");
            let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
            let mut a = vec!["req", "-x509", "-nodes", "-days", "1", "-subj", &subj];
            a.extend(ec);
            a.extend(["-keyout", &key, "-out", &crt]);
            openssl(d, &a);
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["server", "client"] {
            let subj = format!("/CN=openclick-{who}");
            let (key, csr, crt, ext) = (
                format!("{who}.key"),
                format!("{who}.csr"),
                format!("{who}.crt"),
                format!("{who}.ext"),
            );
            let mut a = vec!["req", "-nodes", "-subj", &subj];
            a.extend(ec);
            a.extend(["-keyout", &key, "-out", &csr]);
            openssl(d, &a);
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    &ext,
                    "-out",
                    &crt,
                ],
            );
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
}

/// tansu on a plain loopback port, advertising `advertised` (stunnel's port, or its own).
struct Tansu {
    child: Child,
}

impl Tansu {
    fn start(advertised: u16, port: u16) -> Tansu {
        let mut cmd = Command::new(need_tansu());
        cmd.args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .args([
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
        ])
        .args(["--storage-engine", "memory://tansu/", "--silent"]);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning tansu");
        wait_listening(port, &mut child, "tansu");
        Tansu { child }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// stunnel terminating TLS on `port` and forwarding to `to`; with `verify_clients`, only
/// clients with a certificate from the CA get through (`verify = 2`).
struct Stunnel {
    child: Child,
}

impl Stunnel {
    fn start(pki: &Pki, port: u16, to: u16, verify_clients: bool) -> Stunnel {
        let bin = ["stunnel4", "stunnel"]
            .into_iter()
            .find(|b| Command::new(b).arg("-version").output().is_ok())
            .expect("stunnel4 is not installed (see .ci/kafka-tls)");
        let mut conf = format!(
            "foreground = yes\npid =\ndebug = 4\n\n[kafka]\naccept = 127.0.0.1:{port}\n\
             connect = 127.0.0.1:{to}\ncert = {}\nkey = {}\n",
            pki.path("server.crt"),
            pki.path("server.key")
        );
        if verify_clients {
            conf.push_str(&format!("CAfile = {}\nverify = 2\n", pki.path("ca.crt")));
        }
        let path = pki.dir.path().join(format!("stunnel-{port}.conf"));
        std::fs::write(&path, conf).unwrap();
        let mut child = Command::new(bin)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning stunnel");
        wait_listening(port, &mut child, "stunnel");
        Stunnel { child }
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tansu behind stunnel: clients bootstrap at `addr` (TLS).
struct TlsBroker {
    pki: Pki,
    _stunnel: Stunnel,
    _tansu: Tansu,
    addr: String,
}

fn tls_broker(verify_clients: bool) -> TlsBroker {
    let pki = Pki::new();
    let (tls_port, plain_port) = (free_port(), free_port());
    let tansu = Tansu::start(tls_port, plain_port);
    let stunnel = Stunnel::start(&pki, tls_port, plain_port, verify_clients);
    TlsBroker {
        pki,
        _stunnel: stunnel,
        _tansu: tansu,
        addr: format!("127.0.0.1:{tls_port}"),
    }
}

fn settings(brokers: &str, props: &[(&str, &str)]) -> ClientSettings {
    ClientSettings::new(brokers).with_properties(
        props
            .iter()
            .map(|(k, v)| KafkaProperty::new(k, v).unwrap())
            .collect(),
    )
}

/// Creates the topic with the admin client, through the same settings as every other client.
fn create_topic(settings: &ClientSettings, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config(Role::Admin, |_| {})
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &opts,
        ))
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

fn sink(settings: &ClientSettings, topic: &str, spool: &Path) -> KafkaSink {
    KafkaSink::new(&KafkaConfig {
        client: settings.clone(),
        topic: topic.to_string(),
        linger_ms: 5,
        message_timeout_ms: 5_000,
        spool: Some(SpoolConfig::new(spool)),
        ..KafkaConfig::default()
    })
    .unwrap()
}

/// Publishes `n` events through the sink, flushes, reads them all back with the same
/// settings; asserts none lost, prints the figures and the time.
fn round_trip(scenario: &str, settings: &ClientSettings, topic: &str, n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let sink = sink(settings, topic, dir.path());
    let mut accepted = HashSet::new();
    for i in 0..n {
        let ev = event(scenario, i);
        sink.publish_event(&ev).unwrap();
        accepted.insert(ev.event_id);
    }
    sink.flush(Duration::from_secs(30)).unwrap();
    assert!(
        wait_drained(&sink, Duration::from_secs(60)),
        "not drained: {:?}",
        sink.detailed_stats()
    );
    let produced = started.elapsed();
    let consumed = consume_all_with(
        settings,
        topic,
        3,
        &accepted,
        Duration::from_millis(500),
        Duration::from_secs(60),
    );
    let lost = figures(scenario, &accepted, &sink, &consumed);
    println!(
        "TIME {scenario}: {n} events produced and drained in {:?}, produced+consumed in {:?}",
        produced,
        started.elapsed()
    );
    assert_eq!(lost, 0);
    assert_eq!(consumed.unique.len() as u64, n);
    assert_eq!(sink.stats().delivered, n, "{:?}", sink.detailed_stats());
    assert_eq!(sink.stats().failed, 0);
    assert_eq!(sink.health(), Health::Up);
}

/// A client that must not get through: its sink never comes up and acknowledges nothing,
/// and the topic read by a client that does get through stays empty.
fn refused(scenario: &str, bad: &ClientSettings, good: &ClientSettings, topic: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(bad, topic, dir.path());
    for i in 0..20 {
        // Accepted into the queue or the spool: the answer never waits for Kafka.
        let _ = sink.publish_event(&event(scenario, i));
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        assert_ne!(sink.health(), Health::Up, "{scenario}: the sink came up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sink.stats().delivered, 0, "{:?}", sink.detailed_stats());
    let consumed = consume_all_with(
        good,
        topic,
        3,
        &HashSet::new(),
        Duration::from_secs(2),
        Duration::from_secs(10),
    );
    assert_eq!(consumed.records, 0, "{scenario}: records reached the topic");
    println!(
        "REFUSED {scenario}: health {:?}, delivered 0, consumed 0, stats {:?}",
        sink.health(),
        sink.stats()
    );
}

#[test]
#[ignore = "needs tansu and stunnel4"]
fn tls_produce_and_consume_through_the_sink() {
    let b = tls_broker(false);
    let tls = settings(
        &b.addr,
        &[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", &b.pki.path("ca.crt")),
        ],
    );
    create_topic(&tls, "tls", 3);
    round_trip("tls", &tls, "tls", 2_000);
}

#[test]
#[ignore = "needs tansu and stunnel4"]
fn mtls_with_a_client_certificate_and_refused_without() {
    let b = tls_broker(true);
    let ca = b.pki.path("ca.crt");
    let mtls = settings(
        &b.addr,
        &[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", &ca),
            ("ssl.certificate.location", &b.pki.path("client.crt")),
            ("ssl.key.location", &b.pki.path("client.key")),
        ],
    );
    create_topic(&mtls, "mtls", 3);
    round_trip("mtls", &mtls, "mtls", 1_000);
    let no_cert = settings(
        &b.addr,
        &[("security.protocol", "ssl"), ("ssl.ca.location", &ca)],
    );
    create_topic(&mtls, "mtls-refused", 3);
    refused("mtls-no-client-cert", &no_cert, &mtls, "mtls-refused");
}

#[test]
#[ignore = "needs tansu and stunnel4"]
fn a_client_trusting_another_ca_delivers_nothing() {
    let b = tls_broker(false);
    let good = settings(
        &b.addr,
        &[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", &b.pki.path("ca.crt")),
        ],
    );
    create_topic(&good, "wrong-ca", 3);
    let wrong = settings(
        &b.addr,
        &[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", &b.pki.path("other-ca.crt")),
        ],
    );
    refused("wrong-ca", &wrong, &good, "wrong-ca");
}

/// The other clients over mTLS: topic admin (`ensure_topics`), the suppression writer and the
/// follower. A change written through the writer reaches the follower's set.
#[test]
#[ignore = "needs tansu and stunnel4"]
fn suppression_sync_over_mtls() {
    use openclick_kafka::suppress::{ensure_topics, Follower, KafkaSuppressionWriter, SyncConfig};
    use openclick_suppress::blocks::BlockList;
    use openclick_suppress::{Change, Reason, Scope, SuppressionSet, SuppressionWriter};
    use std::sync::Arc;

    let b = tls_broker(true);
    let mtls = settings(
        &b.addr,
        &[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", &b.pki.path("ca.crt")),
            ("ssl.certificate.location", &b.pki.path("client.crt")),
            ("ssl.key.location", &b.pki.path("client.key")),
        ],
    );
    let config = SyncConfig {
        client: mtls,
        topic: "tls-suppressions".into(),
        erasure_topic: "tls-erasures".into(),
        ..SyncConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ensure_topics(&config, 3, 1))
        .expect("topics created over mTLS");
    let set = Arc::new(SuppressionSet::new());
    let follower = Follower::start(&config, set.clone(), Arc::new(BlockList::new())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !set.is_caught_up() {
        assert!(Instant::now() < deadline, "follower never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let writer = KafkaSuppressionWriter::new(&config).unwrap();
    let change = Change {
        scope: Scope::Contact {
            tenant: "acme".into(),
            contact: "c-tls".into(),
        },
        reason: Some(Reason::OptOut),
        at_ms: openclick_common::now_ms(),
    };
    rt.block_on(writer.write(std::slice::from_ref(&change), "test"))
        .expect("written over mTLS");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !set.is_suppressed("acme", "c-tls") {
        assert!(
            Instant::now() < deadline,
            "the change never reached the set"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    follower.stop();
}
