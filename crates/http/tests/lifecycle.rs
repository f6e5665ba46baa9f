//! The connection lifecycle against real sockets on loopback: every kind of silent, slow, idle
//! or surplus connection is closed within its bound, and counted; shutdown does not wait for
//! idle connections. Each case asserts an outcome a broken bound would change (the socket stays
//! open, or the count stays 0).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use openclick_http::{ConnConfig, ConnStats};
use tokio::sync::oneshot;

struct Server {
    addr: SocketAddr,
    stats: Arc<ConnStats>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<std::thread::JoinHandle<Duration>>,
}

impl Server {
    /// Serves "ok" with `config`; on stop, drains with a 10 s deadline and reports how long
    /// the drain took.
    fn start(config: ConnConfig) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ConnStats::default());
        let (tx, rx) = oneshot::channel::<()>();
        let st = stats.clone();
        let done = std::thread::spawn(move || {
            rt.block_on(async move {
                let drain = openclick_http::serve(
                    "test",
                    listener,
                    &config,
                    st,
                    |_peer| {
                        service_fn(|_req| async {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        })
                    },
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
                let t = Instant::now();
                assert!(
                    drain.drain(Duration::from_secs(10)).await,
                    "drain timed out"
                );
                t.elapsed()
            })
        });
        Server {
            addr,
            stats,
            stop: Some(tx),
            done: Some(done),
        }
    }

    /// Stops accepting and drains; returns how long the drain took.
    fn stop(mut self) -> Duration {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().join().unwrap()
    }
}

/// How long until the server closes `s` (reads until EOF or a reset), at most `limit`.
fn time_to_close(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return None
            }
            Err(_) => return Some(start.elapsed()), // reset: closed too
        }
    }
}

fn short() -> ConnConfig {
    ConnConfig {
        header_read_timeout: Duration::from_millis(300),
        first_byte_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        finish_grace: Duration::from_millis(300),
        ..ConnConfig::default()
    }
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn silent_partial_and_idle_http1_connections_are_closed() {
    let srv = Server::start(short());
    // Nothing at all.
    let t = time_to_close(
        TcpStream::connect(srv.addr).unwrap(),
        Duration::from_secs(5),
    );
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(2)),
        "silent: {t:?}"
    );
    // One byte of a request line.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"G").unwrap();
    let t = time_to_close(s, Duration::from_secs(5));
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(2)),
        "partial: {t:?}"
    );
    // A served request, then an idle keep-alive connection.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(GET).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let t = time_to_close(s, Duration::from_secs(5));
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(2)),
        "idle keep-alive: {t:?}"
    );
    srv.stop();
}

#[test]
fn h2c_off_by_default_the_preface_is_not_served() {
    let srv = Server::start(short());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    // HTTP/1 reads it as a bad request line: an error answer or a close, never HTTP/2.
    let mut buf = [0u8; 64];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || buf.starts_with(b"HTTP/1.1 4"), "{:?}", &buf[..n]);
    srv.stop();
}

#[test]
fn h2c_silent_partial_preface_and_idle_connections_are_closed() {
    let srv = Server::start(ConnConfig {
        http2: true,
        ..short()
    });
    // Nothing.
    let t = time_to_close(
        TcpStream::connect(srv.addr).unwrap(),
        Duration::from_secs(5),
    );
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(2)),
        "silent: {t:?}"
    );
    // Part of the preface.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"PRI * HTTP/2").unwrap();
    let t = time_to_close(s, Duration::from_secs(5));
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(2)),
        "partial preface: {t:?}"
    );
    assert!(srv.stats.closed_first_byte.load(Ordering::Relaxed) >= 2);
    // A complete preface and an empty SETTINGS frame, then nothing: told to go away when idle.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    let t = time_to_close(s, Duration::from_secs(10));
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(5)),
        "idle h2: {t:?}"
    );
    assert!(srv.stats.closed_idle.load(Ordering::Relaxed) >= 1);
    // HTTP/1 still works in h2c mode.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(GET).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    srv.stop();
}

#[test]
fn the_global_cap_closes_surplus_connections_and_frees_on_close() {
    let srv = Server::start(ConnConfig {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        ..ConnConfig::default()
    });
    let a = TcpStream::connect(srv.addr).unwrap();
    let b = TcpStream::connect(srv.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let c = TcpStream::connect(srv.addr).unwrap();
    let t = time_to_close(c, Duration::from_secs(5));
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(1)),
        "third connection: {t:?}"
    );
    assert_eq!(srv.stats.refused_cap.load(Ordering::Relaxed), 1);
    assert_eq!(srv.stats.open.load(Ordering::Relaxed), 2);
    drop(a);
    // The slot comes back once the server notices the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.open.load(Ordering::Relaxed) > 1 {
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut d = TcpStream::connect(srv.addr).unwrap();
    d.write_all(GET).unwrap();
    let mut buf = [0u8; 64];
    let n = d.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop((b, d));
    srv.stop();
}

#[test]
fn the_per_address_cap() {
    let srv = Server::start(ConnConfig {
        max_connections_per_ip: 1,
        header_read_timeout: Duration::from_secs(30),
        ..ConnConfig::default()
    });
    let _a = TcpStream::connect(srv.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let b = TcpStream::connect(srv.addr).unwrap();
    let t = time_to_close(b, Duration::from_secs(5));
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(1)),
        "second from one address: {t:?}"
    );
    assert_eq!(srv.stats.refused_per_ip.load(Ordering::Relaxed), 1);
    srv.stop();
}

#[test]
fn old_connections_are_told_to_finish() {
    let srv = Server::start(ConnConfig {
        max_connection_age: Duration::from_millis(300),
        header_read_timeout: Duration::from_secs(30),
        ..ConnConfig::default()
    });
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(GET).unwrap();
    let mut buf = [0u8; 64];
    assert!(s.read(&mut buf).unwrap() > 0);
    let t = time_to_close(s, Duration::from_secs(5));
    assert!(
        t.is_some_and(|t| t < Duration::from_secs(2)),
        "aged connection: {t:?}"
    );
    assert_eq!(srv.stats.closed_age.load(Ordering::Relaxed), 1);
    srv.stop();
}

#[test]
fn shutdown_does_not_wait_for_idle_connections() {
    let srv = Server::start(ConnConfig {
        header_read_timeout: Duration::from_secs(30),
        ..ConnConfig::default()
    });
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.write_all(GET).unwrap();
    let mut buf = [0u8; 64];
    assert!(s.read(&mut buf).unwrap() > 0);
    let idle_silent = TcpStream::connect(srv.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let took = srv.stop();
    assert!(
        took < Duration::from_secs(2),
        "drain took {took:?} with idle connections"
    );
    drop((s, idle_silent));
}

/// A request with `count` header lines in all, read to the end (the server closes after it).
fn with_headers(addr: SocketAddr, count: usize) -> String {
    let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for i in 2..count {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close before reading everything: a write error is part of the answer.
    let _ = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn the_header_count_limit_holds_below_and_above_hypers_own() {
    // Below hyper's own limit (100) the count is checked after hyper parsed the request; above
    // it, hyper is given the limit. Either way: exactly `max_headers` lines are served, one
    // more gets 431 and the connection is closed (`read_to_end` returns).
    for max in [10, 64, 150] {
        let server = Server::start(ConnConfig {
            max_headers: max,
            ..ConnConfig::default()
        });
        let ok = with_headers(server.addr, max);
        assert!(ok.starts_with("HTTP/1.1 200"), "{max} lines: {ok:?}");
        let refused = with_headers(server.addr, max + 1);
        assert!(
            refused.starts_with("HTTP/1.1 431"),
            "{} lines: {refused:?}",
            max + 1
        );
        // Still serving.
        assert!(with_headers(server.addr, 2).starts_with("HTTP/1.1 200"));
        server.stop();
    }
}

#[test]
fn a_trickled_request_head_is_cut_off_and_counted() {
    // Slowloris: a byte of the head every 50 ms keeps the socket busy but never completes a
    // request. With a 300 ms timeout the connection is closed within two timeouts, not when
    // the client stops.
    let srv = Server::start(short());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let start = Instant::now();
    let mut closed_after = None;
    for b in head.iter().cycle().take(100) {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed_after = closed_after.unwrap_or_else(|| start.elapsed());
    assert!(
        closed_after < Duration::from_millis(1500),
        "still open after {closed_after:?}"
    );
    assert_eq!(srv.stats.closed_header_timeout.load(Ordering::Relaxed), 1);
    srv.stop();
}
