//! HTTPS listeners against real TLS clients (rustls, verifying against a test CA) on loopback,
//! with certificates generated here (rcgen) into a kubernetes.io/tls-style directory: which
//! certificate each SNI name gets (checked by the client's own verification and by comparing
//! the presented certificate with the one written), ALPN, reloads, broken replacements, the
//! handshake deadline, and the caps shared with a plain listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openclick_http::tls::CertStore;
use openclick_http::{ConnConfig, ConnStats, Listener};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A test CA that signs leaf certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "openclick test CA");
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A leaf for `names`: (chain PEM, key PEM, leaf DER).
    fn leaf(&self, names: &[&str]) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    /// Writes a leaf for `names` into `dir/sub/` (tls.crt, tls.key), each file replaced by a
    /// rename as a Secret update does; returns the leaf's DER.
    fn write(&self, dir: &Path, sub: &str, names: &[&str]) -> CertificateDer<'static> {
        let (crt, key, der) = self.leaf(names);
        write_pair(&dir.join(sub), crt.as_bytes(), key.as_bytes());
        der
    }

    fn client(&self, alpn: &[&[u8]], sni: bool) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        c.enable_sni = sni;
        TlsConnector::from(Arc::new(c))
    }
}

fn write_pair(sub: &Path, crt: &[u8], key: &[u8]) {
    std::fs::create_dir_all(sub).unwrap();
    for (name, bytes) in [("tls.crt", crt), ("tls.key", key)] {
        let tmp = sub.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, sub.join(name)).unwrap();
    }
}

/// An HTTPS listener (and a plain one beside it) answering "ok", on its own runtime.
struct Server {
    https: SocketAddr,
    plain: SocketAddr,
    https_stats: Arc<ConnStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(store: &Arc<CertStore>, config: ConnConfig) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let bind = || {
            rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap()
        };
        let (tls_l, plain_l) = (bind(), bind());
        let (https, plain) = (tls_l.local_addr().unwrap(), plain_l.local_addr().unwrap());
        let https_stats = Arc::new(ConnStats::default());
        let acceptor = store.acceptor(config.http2).unwrap();
        let listeners = vec![
            Listener {
                name: "plain",
                listener: plain_l,
                tls: None,
                stats: Arc::new(ConnStats::default()),
            },
            Listener {
                name: "https",
                listener: tls_l,
                tls: Some(acceptor),
                stats: https_stats.clone(),
            },
        ];
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let drain = openclick_http::serve_all(
                    listeners,
                    &config,
                    |_peer| {
                        service_fn(|req: Request<hyper::body::Incoming>| async move {
                            let body = format!("ok {:?} {}", req.version(), req.uri().path());
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                        })
                    },
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
                drain.drain(Duration::from_secs(5)).await;
            })
        });
        Server {
            https,
            plain,
            https_stats,
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

/// A TLS connection to `addr` for `name` (verified against the CA by rustls).
async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    connector.connect(name, tcp).await
}

fn presented(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// One HTTP/1.1 request (`Connection: close`); the whole response as text.
async fn get_h1(mut s: TlsStream<TcpStream>, host: &str, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // rustls reports a close without close_notify as an error; hyper sends close_notify.
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn each_tracking_domain_gets_its_own_certificate_by_sni_and_no_sni_gets_the_first() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let acme = ca.write(dir.path(), "0-acme", &["t.acme.test"]);
    let globex = ca.write(dir.path(), "globex", &["*.globex.test", "globex.test"]);
    let store = CertStore::open(dir.path()).unwrap();
    let server = Server::start(&store, ConnConfig::default());
    let client = ca.client(&[b"http/1.1"], true);
    rt().block_on(async {
        let s = connect(&client, server.https, "t.acme.test").await.unwrap();
        assert_eq!(presented(&s), acme);
        let r = get_h1(s, "t.acme.test", "/o/x.gif").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("ok HTTP/1.1 /o/x.gif"), "{r}");

        // the wildcard covers one label, and the bare name is in the same certificate
        for name in ["links.globex.test", "globex.test"] {
            let s = connect(&client, server.https, name).await.unwrap();
            assert_eq!(presented(&s), globex, "{name}");
        }
        // two labels under the wildcard: not covered, so the default (acme) is presented,
        // which the client refuses for that name
        let e = connect(&client, server.https, "a.b.globex.test")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not valid for name"), "{e}");

        // no SNI at all: the first subdirectory's certificate
        let no_sni = ca.client(&[b"http/1.1"], false);
        let s = connect(&no_sni, server.https, "t.acme.test").await.unwrap();
        assert_eq!(presented(&s), acme);
        let e = connect(&no_sni, server.https, "links.globex.test")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not valid for name"), "{e}");
    });
    assert_eq!(store.stats().certificates.load(Ordering::Relaxed), 2);
}

#[test]
fn alpn_negotiates_h2_only_when_http2_is_enabled() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path(), "acme", &["t.acme.test"]);
    let store = CertStore::open(dir.path()).unwrap();
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];
    let client = ca.client(both, true);

    // HTTP/2 off: the client offers h2 first and still gets HTTP/1.1
    let h1_only = Server::start(&store, ConnConfig::default());
    rt().block_on(async {
        let s = connect(&client, h1_only.https, "t.acme.test")
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let r = get_h1(s, "t.acme.test", "/c/abc").await;
        assert!(r.ends_with("ok HTTP/1.1 /c/abc"), "{r}");
    });
    drop(h1_only);

    // HTTP/2 on: h2 is negotiated and a real HTTP/2 request is answered over it; a client
    // that only speaks HTTP/1.1 still gets it
    let h2 = Server::start(
        &store,
        ConnConfig {
            http2: true,
            ..ConnConfig::default()
        },
    );
    rt().block_on(async {
        let s = connect(&client, h2.https, "t.acme.test").await.unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get("https://t.acme.test/o/tok.gif")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok HTTP/2.0 /o/tok.gif");

        let h1_client = ca.client(&[b"http/1.1"], true);
        let s = connect(&h1_client, h2.https, "t.acme.test").await.unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let r = get_h1(s, "t.acme.test", "/c/abc").await;
        assert!(r.ends_with("ok HTTP/1.1 /c/abc"), "{r}");
    });
}

/// Polls what `name` is presented until `want` says yes, up to 10 s.
async fn wait_presented(
    client: &TlsConnector,
    addr: SocketAddr,
    name: &str,
    want: impl Fn(&CertificateDer<'static>) -> bool,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = connect(client, addr, name).await.unwrap();
        let got = presented(&s);
        if want(&got) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_replaced_certificate_is_served_without_restart_and_a_broken_one_keeps_the_old() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let acme_v1 = ca.write(dir.path(), "acme", &["t.acme.test"]);
    let globex = ca.write(dir.path(), "globex", &["t.globex.test"]);
    let store = CertStore::open(dir.path()).unwrap();
    let _watch = store.watch(Duration::from_millis(100)).unwrap();
    let server = Server::start(&store, ConnConfig::default());
    let client = ca.client(&[b"http/1.1"], true);
    rt().block_on(async {
        assert_eq!(
            presented(&connect(&client, server.https, "t.acme.test").await.unwrap()),
            acme_v1
        );

        // renewal: a new key and certificate for the same name
        let acme_v2 = ca.write(dir.path(), "acme", &["t.acme.test"]);
        let got = wait_presented(&client, server.https, "t.acme.test", |c| *c == acme_v2).await;
        assert_eq!(got, acme_v2, "the renewed certificate was not picked up");
        // the other domain is untouched
        assert_eq!(
            presented(
                &connect(&client, server.https, "t.globex.test")
                    .await
                    .unwrap()
            ),
            globex
        );

        // broken replacements: not PEM, then a certificate with someone else's key
        let (crt_v3, _, _) = ca.leaf(&["t.acme.test"]);
        let (_, other_key, _) = ca.leaf(&["t.acme.test"]);
        for (crt, key) in [
            (b"garbage".to_vec(), b"garbage".to_vec()),
            (crt_v3.into_bytes(), other_key.into_bytes()),
        ] {
            let errors = store.stats().errors.load(Ordering::Relaxed);
            write_pair(&dir.path().join("acme"), &crt, &key);
            let deadline = Instant::now() + Duration::from_secs(10);
            while store.stats().errors.load(Ordering::Relaxed) == errors {
                assert!(
                    Instant::now() < deadline,
                    "the broken files were not noticed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let s = connect(&client, server.https, "t.acme.test").await.unwrap();
            assert_eq!(presented(&s), acme_v2, "a broken replacement was served");
            let r = get_h1(s, "t.acme.test", "/o/x.gif").await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        }

        // fixed again: picked up
        let acme_v4 = ca.write(dir.path(), "acme", &["t.acme.test"]);
        let got = wait_presented(&client, server.https, "t.acme.test", |c| *c == acme_v4).await;
        assert_eq!(got, acme_v4);
    });
}

#[test]
fn a_handshake_that_never_completes_is_closed_within_the_deadline() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path(), "acme", &["t.acme.test"]);
    let store = CertStore::open(dir.path()).unwrap();
    let server = Server::start(
        &store,
        ConnConfig {
            tls_handshake_timeout: Duration::from_millis(500),
            ..ConnConfig::default()
        },
    );
    rt().block_on(async {
        // one client silent, one that stops in the middle of its ClientHello
        for first in [
            &b""[..],
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        ] {
            let mut s = TcpStream::connect(server.https).await.unwrap();
            s.write_all(first).await.unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("connection still open after 5 s")
                .unwrap_or(0);
            assert_eq!(n, 0, "the server answered a handshake that never completed");
            let e = t.elapsed();
            assert!(
                e >= Duration::from_millis(400) && e < Duration::from_secs(3),
                "{e:?}"
            );
        }
    });
    // The close is counted when the connection task ends, which can be just after the client
    // sees the EOF: wait for it (bounded) rather than race it.
    let counted = || {
        server
            .https_stats
            .closed_tls_handshake_timeout
            .load(Ordering::Relaxed)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while counted() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(counted(), 2);
}

#[test]
fn plain_and_https_listeners_share_the_connection_cap() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path(), "acme", &["t.acme.test"]);
    let store = CertStore::open(dir.path()).unwrap();
    let server = Server::start(
        &store,
        ConnConfig {
            max_connections: 1,
            ..ConnConfig::default()
        },
    );
    let client = ca.client(&[b"http/1.1"], true);
    rt().block_on(async {
        // one plain connection holds the only slot
        let held = TcpStream::connect(server.plain).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(connect(&client, server.https, "t.acme.test").await.is_err());
        assert_eq!(server.https_stats.refused_cap.load(Ordering::Relaxed), 1);
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = connect(&client, server.https, "t.acme.test").await.unwrap();
        let r = get_h1(s, "t.acme.test", "/").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    });
}

#[test]
fn a_directory_that_does_not_load_is_refused_at_start() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    // missing, empty
    assert!(CertStore::open(&dir.path().join("nope")).is_err());
    assert!(CertStore::open(dir.path()).is_err());
    // one good and one broken subdirectory: refused as a whole
    ca.write(dir.path(), "acme", &["t.acme.test"]);
    write_pair(&dir.path().join("broken"), b"not pem", b"not pem");
    let e = CertStore::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("broken"), "{e}");
    // no DNS name in the certificate
    std::fs::remove_dir_all(dir.path().join("broken")).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let cert = p.self_signed(&key).unwrap();
    write_pair(
        &dir.path().join("ip-only"),
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
    );
    let e = CertStore::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("no DNS name"), "{e}");
    // hidden entries (a projected volume's ..data) are not certificates
    std::fs::remove_dir_all(dir.path().join("ip-only")).unwrap();
    std::fs::create_dir(dir.path().join("..data")).unwrap();
    let store = CertStore::open(dir.path()).unwrap();
    assert_eq!(store.certificates().len(), 1);
}
