//! The tracking routes over HTTPS: `run_with_https` serves the same pipeline on a plain and a
//! TLS listener; a real rustls client (verifying against a CA generated here) gets the pixel
//! and the redirect from each tracking domain's own certificate, and the events reach Kafka
//! (the embedded broker) like those from the plain listener.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assigned_consumer, http, test_enricher, test_sink};
use openclick_edge::{
    ClientIpConfig, ClientIpHeader, EdgeState, Pipeline, ServerConfig, PIXEL_GIF,
};
use openclick_events::v1::{EngagementEvent, EventType};
use openclick_events::Message as _;
use openclick_http::tls::CertStore;
use openclick_kafka::EmbeddedBroker;
use openclick_suppress::SuppressionSet;
use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

fn claims(kind: TokenKind, contact: &str) -> Claims {
    let click = kind == TokenKind::Click;
    Claims {
        kind,
        tenant_id: "acme".into(),
        campaign_id: "spring".into(),
        message_id: "m-1".into(),
        contact_id: contact.into(),
        channel: Channel::Email,
        issued_at_ms: 1_700_000_000_000,
        link_id: if click { "hero".into() } else { String::new() },
        url: if click {
            "https://shop.example.com/sale".into()
        } else {
            String::new()
        },
        honeypot: false,
        list_id: String::new(),
        undo: false,
    }
}

/// GET `path` over TLS to `addr` for `host`: (the presented leaf, the raw response).
fn get(
    client: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (CertificateDer<'static>, Vec<u8>) {
    let conn = rustls::ClientConnection::new(
        client.clone(),
        ServerName::try_from(host.to_string()).unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let leaf = s.conn.peer_certificates().unwrap()[0].clone();
    (leaf, raw)
}

#[test]
fn pixel_and_redirect_over_https_per_domain_certificate_and_the_events_reach_kafka() {
    // a CA and one certificate per tracking domain, as two mounted Secrets
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut leaves = Vec::new();
    for (sub, name) in [("acme", "t.acme.test"), ("globex", "t.globex.test")] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(d.join("tls.key"), key.serialize_pem()).unwrap();
        leaves.push(cert.der().clone());
    }
    let store = CertStore::open(dir.path()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );

    // the edge, as `serve` wires it, on both listeners
    let topic = format!("https-events-{}", std::process::id());
    let broker = EmbeddedBroker::start(1, &[(&topic, 1)]).unwrap();
    let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let pipeline = Pipeline::new(
        keyring.clone(),
        test_enricher(),
        Arc::new(SuppressionSet::new()),
        ClientIpConfig::new(vec![], ClientIpHeader::XForwardedFor).unwrap(),
    );
    let sink = test_sink(broker.bootstrap_servers(), &topic);
    let state = Arc::new(EdgeState::new(pipeline, sink, ServerConfig::default()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bind = || {
        rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap()
    };
    let (plain_l, tls_l) = (bind(), bind());
    let (plain, https) = (plain_l.local_addr().unwrap(), tls_l.local_addr().unwrap());
    let acceptor = store.acceptor(false).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    let thread = std::thread::spawn(move || {
        rt.block_on(openclick_edge::run_with_https(
            plain_l,
            Some((tls_l, acceptor)),
            st,
            async move {
                let _ = rx.await;
            },
        ))
    });

    let open = keyring.sign(&claims(TokenKind::Open, "c-tls")).unwrap();
    let click = keyring.sign(&claims(TokenKind::Click, "c-tls")).unwrap();
    let (leaf, raw) = get(&client, https, "t.acme.test", &format!("/o/{open}.gif"));
    assert_eq!(leaf, leaves[0]);
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: image/gif"), "{head}");
    assert_eq!(&raw[head_end + 4..], &PIXEL_GIF[..]);

    let (leaf, raw) = get(&client, https, "t.globex.test", &format!("/c/{click}"));
    assert_eq!(leaf, leaves[1]);
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("http/1.1 302"), "{text}");
    assert!(
        text.contains("location: https://shop.example.com/sale\r\n"),
        "{text}"
    );
    // a tampered click over TLS: 404, as on the plain listener
    let (_, raw) = get(&client, https, "t.globex.test", "/c/AAAA");
    assert!(raw.starts_with(b"HTTP/1.1 404"));
    // and the plain listener still serves beside it
    let r = http(plain, "GET", &format!("/o/{open}.gif"), &[], b"");
    assert_eq!(r.status, 200);

    assert_eq!(
        state
            .https_connections
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    let _ = tx.send(());
    thread.join().unwrap();

    // open (TLS), click (TLS), open (plain): three events
    let reader = assigned_consumer(broker.bootstrap_servers(), &topic, 1);
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while events.len() < 3 && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            events.push(EngagementEvent::decode(m.payload.as_deref().unwrap()).unwrap());
        }
    }
    let kinds: Vec<EventType> = events.iter().map(|e| e.r#type()).collect();
    assert_eq!(events.len(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == EventType::Open).count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == EventType::Click).count(), 1);
    assert!(events.iter().all(|e| e.contact_id == "c-tls"));
}
