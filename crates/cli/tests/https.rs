//! `openclick serve --https-listen --tls-cert-dir` as a black box: a configuration that cannot
//! serve HTTPS exits 64 before binding a port, and a good one answers the pixel over TLS with
//! the certificate written for its domain.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{openclick, serve_command, sign_open, Server};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::ServerName;

/// A CA, and a certificate for `t.acme.test` in `dir/acme/` signed by it.
fn certs(dir: &Path) -> (CertifiedIssuer<'static, KeyPair>, Vec<u8>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["t.acme.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let d = dir.join("acme");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(d.join("tls.key"), key.serialize_pem()).unwrap();
    (ca, cert.der().to_vec())
}

#[test]
fn a_configuration_that_cannot_serve_https_exits_64_before_binding() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    certs(&good);
    let broken = tmp.path().join("broken");
    std::fs::create_dir_all(broken.join("acme")).unwrap();
    std::fs::write(broken.join("acme/tls.crt"), "not a certificate").unwrap();
    std::fs::write(broken.join("acme/tls.key"), "not a key").unwrap();
    // Ports this test holds: a serve that bound before checking would fail on them instead.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().to_string();
    let missing = tmp.path().join("missing");
    let cases: [(&[&str], &str); 4] = [
        (&["--https-listen", &port], "--tls-cert-dir"),
        (
            &["--tls-cert-dir", good.to_str().unwrap()],
            "--https-listen",
        ),
        (
            &[
                "--https-listen",
                &port,
                "--tls-cert-dir",
                missing.to_str().unwrap(),
            ],
            "missing",
        ),
        (
            &[
                "--https-listen",
                &port,
                "--tls-cert-dir",
                broken.to_str().unwrap(),
            ],
            "tls.crt",
        ),
    ];
    for (args, says) in cases {
        for sub in ["serve", "check-config"] {
            let out = openclick()
                .args([sub, "--listen", &port, "--admin-listen", &port])
                .args(["--data-dir", tmp.path().join("data").to_str().unwrap()])
                .args(["--keys", common::KEYS])
                .args(args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{sub} {args:?}: {err}");
            assert!(err.contains(says), "{sub} {args:?}: {err}");
        }
    }
    let out = openclick()
        .args(["check-config", "--https-listen", &port])
        .args(["--tls-cert-dir", good.to_str().unwrap()])
        .args(["--keys", common::KEYS])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("certificate:      acme (default): t.acme.test"),
        "{text}"
    );
}

#[test]
fn serve_answers_the_pixel_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let tls = tmp.path().join("tls");
    let (ca, leaf) = certs(&tls);
    let mut cmd = serve_command(&tmp.path().join("data"));
    cmd.args(["--https-listen", "127.0.0.1:0"])
        .args(["--tls-cert-dir", tls.to_str().unwrap()]);
    let server = Server::spawn(cmd);
    let info = server.info();
    let https: std::net::SocketAddr = info["https_listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(info["tls_certificates"][0]["names"][0], "t.acme.test");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(client),
        ServerName::try_from("t.acme.test").unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(https).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let path = sign_open("c-https");
    let req = format!("GET {path} HTTP/1.1\r\nHost: t.acme.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(s.conn.peer_certificates().unwrap()[0].as_ref(), &leaf[..]);
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("content-type: image/gif"), "{text}");
}
