//! The adversarial suite (issue #12, item 9) against the real edge on real sockets: request
//! smuggling attempts on HTTP/1, HTTP/2 frame floods on h2c, and forwarding headers a client
//! writes itself. Each case asserts what the server actually does (the status lines it writes,
//! whether it closes, the GOAWAY it sends, the hits its pipeline counted), so a regression in
//! hyper, h2 or our wiring changes the result. Timing bounds are generous: a case waits up to
//! several seconds for something to happen and fails only if it never does.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, test_enricher, test_sink, Served};
use openclick_edge::{ClientIpConfig, ClientIpHeader, EdgeState, HitClass, Pipeline, ServerConfig};
use openclick_http::ConnConfig;
use openclick_kafka::EmbeddedBroker;
use openclick_sink::memory::MemorySink;
use openclick_suppress::SuppressionSet;
use openclick_token::{Channel as TokChannel, Claims, Key, Keyring, TokenKind};

/// An edge on an in-memory sink (the cases here are about the HTTP layer; the forwarding
/// cases, which read the event, use Kafka).
struct Edge {
    served: Served,
    keyring: Keyring,
    sink: Arc<MemorySink>,
}

impl Edge {
    fn start(conn: ConnConfig) -> Edge {
        let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
        let pipeline = Pipeline::new(
            keyring.clone(),
            test_enricher(),
            Arc::new(SuppressionSet::new()),
            ClientIpConfig::default(),
        );
        let sink = Arc::new(MemorySink::new());
        let config = ServerConfig {
            conn,
            ..ServerConfig::default()
        };
        let served = Served::start(
            Arc::new(EdgeState::new(pipeline, sink.clone(), config)),
            None,
        );
        Edge {
            served,
            keyring,
            sink,
        }
    }

    fn token(&self, kind: TokenKind, contact: &str) -> String {
        sign(&self.keyring, kind, contact)
    }

    fn hits(&self, class: HitClass) -> u64 {
        self.served.state.metrics.hits(class)
    }

    /// Every request the pipeline saw, whatever its class.
    fn all_hits(&self) -> u64 {
        HitClass::ALL.iter().map(|c| self.hits(*c)).sum()
    }

    /// A plain HTTP/1.1 pixel request on a fresh connection still gets the pixel.
    fn assert_responsive(&self) {
        let r = http(self.served.addr, "GET", "/o/x.gif", &[], b"");
        assert_eq!(r.status, 200, "the edge stopped answering");
    }
}

fn sign(keyring: &Keyring, kind: TokenKind, contact: &str) -> String {
    keyring
        .sign(&Claims {
            kind,
            tenant_id: "acme".into(),
            campaign_id: "spring".into(),
            message_id: "m1".into(),
            contact_id: contact.into(),
            channel: TokChannel::Email,
            issued_at_ms: 1_700_000_000_000,
            link_id: if kind == TokenKind::Click {
                "hero".into()
            } else {
                String::new()
            },
            url: if kind == TokenKind::Click {
                "https://shop.example.com/".into()
            } else {
                String::new()
            },
            honeypot: false,
            list_id: String::new(),
            undo: false,
        })
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// HTTP/1 request smuggling
// ---------------------------------------------------------------------------------------------

/// What the server wrote on one connection, and whether it closed it.
struct Exchange {
    raw: Vec<u8>,
    /// The server closed the connection (EOF or reset) within the wait; `false`: it was still
    /// open (keep-alive) when the wait ended.
    closed: bool,
}

impl Exchange {
    /// The status code of every `HTTP/1.1 NNN ` status line in the bytes, in order. A request
    /// answered that should not have been shows up as one more. (Responses follow each other
    /// with no separator: the pixel's last byte is followed by the next status line.)
    fn statuses(&self) -> Vec<u16> {
        let raw = &self.raw;
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(p) = find(&raw[i..], b"HTTP/1.1 ") {
            let at = i + p + 9;
            if let Some(code) = raw
                .get(at..at + 4)
                .filter(|c| c[3] == b' ')
                .and_then(|c| std::str::from_utf8(&c[..3]).ok()?.parse().ok())
            {
                out.push(code);
            }
            i = at;
        }
        out
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes `bytes` on a fresh connection and reads what comes back until the server closes it
/// or nothing arrives for `quiet` (then the connection counts as kept open).
fn exchange(addr: SocketAddr, bytes: &[u8], quiet: Duration) -> Exchange {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(quiet)).unwrap();
    // The server may close before reading everything: a write error is part of the answer.
    let _ = s.write_all(bytes);
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true, // reset
        }
    };
    Exchange { raw, closed }
}

/// One smuggling attempt: the bytes, and what hyper (1.x, through `openclick_http`) does.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// Status codes written, in order.
    statuses: &'static [u16],
    /// Whether the server closes the connection after them.
    closes: bool,
    /// Requests the pipeline sees (hits counted, any class).
    hits: u64,
}

#[test]
fn http1_smuggling_corpus_is_refused_or_framed_once() {
    let edge = Edge::start(ConnConfig::default());
    let open = edge.token(TokenKind::Open, "c-smuggle");
    let click = edge.token(TokenKind::Click, "c-smuggle");
    // The request a smuggler hides: a tracked click, so answering it would show as a 302 and a
    // ClickTracked hit.
    let hidden = format!("GET /c/{click} HTTP/1.1\r\nHost: a\r\n\r\n");
    let chunked_end = "0\r\n\r\n";
    let head = |extra: &str| format!("GET /o/{open}.gif HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
    let cases = vec![
        Case {
            // CL.TE: a front end framing by Content-Length forwards the hidden request as body;
            // hyper frames by chunked (TE wins) and, because both were present, closes after
            // the response (RFC 9112 6.1), so the bytes after the last chunk are never parsed.
            name: "Content-Length then Transfer-Encoding: chunked",
            bytes: format!(
                "{}{chunked_end}{hidden}",
                head(&format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    chunked_end.len() + hidden.len()
                ))
            )
            .into_bytes(),
            statuses: &[200],
            closes: true,
            hits: 1,
        },
        Case {
            // Same, the other order: hyper drops the Content-Length either way.
            name: "Transfer-Encoding: chunked then Content-Length",
            bytes: format!(
                "{}{chunked_end}{hidden}",
                head(&format!(
                    "Transfer-Encoding: chunked\r\nContent-Length: {}\r\n",
                    chunked_end.len() + hidden.len()
                ))
            )
            .into_bytes(),
            statuses: &[200],
            closes: true,
            hits: 1,
        },
        Case {
            // TE.CL: a front end framing by a short Content-Length would leave the hidden
            // request as the next one; hyper reads it as chunk data, answers once, closes.
            name: "TE.CL: hidden request inside a chunk, short Content-Length",
            bytes: format!(
                "{}{:x}\r\n{hidden}\r\n{chunked_end}",
                head("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
                hidden.len()
            )
            .into_bytes(),
            statuses: &[200],
            closes: true,
            hits: 1,
        },
        Case {
            // Two lengths that disagree: hyper refuses the head (400) and closes.
            name: "duplicated Content-Length with different values",
            bytes: format!(
                "{}{hidden}",
                head(&format!(
                    "Content-Length: 0\r\nContent-Length: {}\r\n",
                    hidden.len()
                ))
            )
            .into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // `chunked` is not the final coding: the length cannot be determined, 400.
            name: "Transfer-Encoding: chunked, identity",
            bytes: format!(
                "{}{chunked_end}{hidden}",
                head("Transfer-Encoding: chunked, identity\r\n")
            )
            .into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // Whitespace between a field name and the colon (RFC 9112 5.1: MUST reject with
            // 400): httparse refuses it in requests.
            name: "Transfer-Encoding : chunked (space before the colon)",
            bytes: format!(
                "{}{chunked_end}{hidden}",
                head("Transfer-Encoding : chunked\r\n")
            )
            .into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // obs-fold in a request (RFC 9112 5.2: reject or replace with SP): httparse
            // refuses a line starting with whitespace, 400.
            name: "obs-fold: Transfer-Encoding folded onto a continuation line",
            bytes: format!(
                "{}{chunked_end}{hidden}",
                head("X-Pad: a\r\nTransfer-Encoding:\r\n chunked\r\n")
            )
            .into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // A bare CR inside the request line: not a line ending, not a token, 400.
            name: "bare CR in the request line",
            bytes: format!("GET /o/{open}.gif HTTP/1.1\rHost: a\r\n\r\n{hidden}").into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // Bare LF line endings: httparse accepts LF alone as a line terminator (RFC 9112
            // 2.2 allows a recipient to), so this is one well-framed request with a
            // Content-Length body holding the hidden request: answered once, the body drained
            // unparsed, the connection kept alive.
            name: "bare LF line endings, hidden request in the body",
            bytes: format!(
                "GET /o/{open}.gif HTTP/1.1\nHost: a\nContent-Length: {}\n\n{hidden}",
                hidden.len()
            )
            .into_bytes(),
            statuses: &[200],
            closes: false,
            hits: 1,
        },
        Case {
            // Absolute-form target (RFC 9112 3.2.2: a server MUST accept it): routed by its
            // path, answered once, kept alive.
            name: "absolute-form request target",
            bytes: format!("GET http://t.example.com/o/{open}.gif HTTP/1.1\r\nHost: a\r\n\r\n")
                .into_bytes(),
            statuses: &[200],
            closes: false,
            hits: 1,
        },
        Case {
            // A request inside a Content-Length body, then a real pipelined request: the body
            // is drained (the service does not read it), never parsed; the next request is.
            name: "second request inside a Content-Length body, then a pipelined one",
            bytes: format!(
                "{}{hidden}GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                head(&format!("Content-Length: {}\r\n", hidden.len()))
            )
            .into_bytes(),
            statuses: &[200, 404],
            closes: true,
            hits: 2,
        },
        Case {
            // A signed length: hyper parses digits only (no `+`), 400.
            name: "Content-Length: +N",
            bytes: format!(
                "{}{hidden}",
                head(&format!("Content-Length: +{}\r\n", hidden.len()))
            )
            .into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // A list of equal lengths in one field: HTTP/1 takes one number, 400.
            name: "Content-Length: N, N",
            bytes: format!(
                "{}{hidden}",
                head(&format!("Content-Length: {0}, {0}\r\n", hidden.len()))
            )
            .into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1): hyper refuses it, 400.
            name: "HTTP/1.0 with Transfer-Encoding: chunked",
            bytes: format!(
                "GET /o/{open}.gif HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {chunked_end}{hidden}"
            )
            .into_bytes(),
            statuses: &[400],
            closes: true,
            hits: 0,
        },
        Case {
            // A chunk size that overflows 64 bits: the head is fine, so the request is
            // answered (the service does not read the body); draining the body then fails on
            // the size and the connection is closed, nothing after it parsed.
            name: "chunk size overflow",
            bytes: format!(
                "{}fffffffffffffffff1\r\n{hidden}\r\n{chunked_end}",
                head("Transfer-Encoding: chunked\r\n")
            )
            .into_bytes(),
            statuses: &[200],
            closes: true,
            hits: 1,
        },
        Case {
            // A bare LF ending a chunk-size line: hyper's chunked decoder wants CRLF there
            // (unlike the head), so, as above, one answer, then a close.
            name: "bare LF after a chunk size",
            bytes: format!(
                "{}{:x}\n{hidden}\r\n{chunked_end}",
                head("Transfer-Encoding: chunked\r\n"),
                hidden.len()
            )
            .into_bytes(),
            statuses: &[200],
            closes: true,
            hits: 1,
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let before = edge.all_hits();
        let ex = exchange(edge.served.addr, &case.bytes, Duration::from_secs(2));
        // The hits of a request answered are counted before its response is written.
        let hits = edge.all_hits() - before;
        let statuses = ex.statuses();
        if statuses != case.statuses || ex.closed != case.closes || hits != case.hits {
            failures.push(format!(
                "{}: statuses {statuses:?} (want {:?}), closed {} (want {}), hits {hits} (want \
                 {}):\n{}",
                case.name,
                case.statuses,
                ex.closed,
                case.closes,
                case.hits,
                ex.text()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Never the hidden click, whatever the framing.
    assert_eq!(edge.hits(HitClass::ClickTracked), 0);
    let clicks = edge
        .sink
        .events()
        .iter()
        .filter(|e| e.link_id == "hero")
        .count();
    assert_eq!(clicks, 0, "a smuggled click produced an event");
    edge.assert_responsive();
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 floods (h2c by prior knowledge, raw frames)
// ---------------------------------------------------------------------------------------------

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const NO_ERROR: u32 = 0x0;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK integer with an `n`-bit prefix, the prefix's other bits `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// Literal header field without indexing, name from the static table (`index`), raw value.
fn hpack_literal(out: &mut Vec<u8>, index: usize, value: &str) {
    hpack_int(out, 0x00, 4, index);
    hpack_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// The header block of `GET http://t.example.com{path}`.
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http (static table 2, 6)
    hpack_literal(&mut b, 4, path); // :path
    hpack_literal(&mut b, 1, "t.example.com"); // :authority
    b
}

/// What a raw HTTP/2 client saw from the server.
#[derive(Debug, Default)]
struct Seen {
    frames: usize,
    headers: usize,
    settings_acks: usize,
    ping_acks: usize,
    rst_streams: usize,
    /// RST_STREAM frames by error code.
    rst_codes: std::collections::BTreeMap<u32, usize>,
    /// The first GOAWAY: error code and debug data.
    goaway: Option<(u32, String)>,
    goaway_after: Option<Duration>,
    /// The server closed the connection (EOF or reset).
    closed_after: Option<Duration>,
}

/// A raw HTTP/2 connection: the preface and an empty SETTINGS are sent on connect; a thread
/// reads and tallies every frame the server sends until it closes (or `limit` passes).
struct RawH2 {
    stream: TcpStream,
    seen: Arc<Mutex<Seen>>,
    done: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RawH2 {
    fn connect(addr: SocketAddr, limit: Duration) -> RawH2 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut hello = PREFACE.to_vec();
        frame(&mut hello, SETTINGS, 0, 0, &[]);
        stream.write_all(&hello).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let done = Arc::new(AtomicBool::new(false));
        let mut rd = stream.try_clone().unwrap();
        rd.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (seen2, done2) = (seen.clone(), done.clone());
        let reader = std::thread::spawn(move || {
            let start = Instant::now();
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                if start.elapsed() > limit {
                    break;
                }
                match rd.read(&mut chunk) {
                    Ok(0) => {
                        seen2.lock().unwrap().closed_after = Some(start.elapsed());
                        break;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        continue
                    }
                    Err(_) => {
                        seen2.lock().unwrap().closed_after = Some(start.elapsed());
                        break;
                    }
                }
                let mut at = 0;
                let mut s = seen2.lock().unwrap();
                while buf.len() - at >= 9 {
                    let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                    if buf.len() - at < 9 + len {
                        break;
                    }
                    let (ty, flags) = (buf[at + 3], buf[at + 4]);
                    let payload = &buf[at + 9..at + 9 + len];
                    s.frames += 1;
                    match ty {
                        HEADERS => s.headers += 1,
                        SETTINGS if flags & ACK != 0 => s.settings_acks += 1,
                        PING if flags & ACK != 0 => s.ping_acks += 1,
                        RST_STREAM if payload.len() >= 4 => {
                            s.rst_streams += 1;
                            let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                            *s.rst_codes.entry(code).or_default() += 1;
                        }
                        GOAWAY if s.goaway.is_none() && payload.len() >= 8 => {
                            let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                            let debug = String::from_utf8_lossy(&payload[8..]).into_owned();
                            s.goaway = Some((code, debug));
                            s.goaway_after = Some(start.elapsed());
                        }
                        _ => {}
                    }
                    at += 9 + len;
                }
                buf.drain(..at);
            }
            done2.store(true, Ordering::Relaxed);
        });
        RawH2 {
            stream,
            seen,
            done,
            reader: Some(reader),
        }
    }

    /// Writes `batch` up to `times` times, until the server goes away, closes, or stops
    /// reading; returns how many batches were written.
    fn flood(&mut self, batch: &[u8], times: usize) -> usize {
        self.stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for i in 0..times {
            let gone = {
                let s = self.seen.lock().unwrap();
                s.goaway.is_some() || s.closed_after.is_some()
            };
            if gone || self.done.load(Ordering::Relaxed) || self.stream.write_all(batch).is_err() {
                return i;
            }
        }
        times
    }

    fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Waits until `cond` holds on what was seen, at most `limit`.
    fn wait(&self, limit: Duration, cond: impl Fn(&Seen) -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if cond(&self.seen.lock().unwrap()) {
                return true;
            }
            if self.done.load(Ordering::Relaxed) {
                return cond(&self.seen.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Waits for the server to close (at most `limit`), then returns everything seen. A close
    /// counts only if the server made it: our own shutdown afterwards is not recorded.
    fn finish(mut self, limit: Duration) -> Seen {
        self.wait(limit, |s| s.closed_after.is_some());
        let closed_by_server = self.seen.lock().unwrap().closed_after;
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let mut seen = std::mem::take(&mut *self.seen.lock().unwrap());
        seen.closed_after = closed_by_server;
        seen
    }
}

/// h2c on, the idle GOAWAY after 2 s (so a flood that sends no request is ended by it), a
/// short grace for peers that ignore it, PINGs of our own rare enough not to interfere.
fn h2_edge() -> Edge {
    Edge::start(ConnConfig {
        http2: true,
        idle_timeout: Duration::from_secs(2),
        finish_grace: Duration::from_secs(1),
        h2_keepalive_interval: Duration::from_secs(60),
        ..ConnConfig::default()
    })
}

fn assert_goaway(seen: &Seen, code: u32, what: &str) {
    assert_eq!(
        seen.goaway.as_ref().map(|g| g.0),
        Some(code),
        "{what}: GOAWAY code: {seen:?}"
    );
    assert!(seen.closed_after.is_some(), "{what}: not closed: {seen:?}");
}

#[test]
fn h2_rapid_reset_gets_enhance_your_calm() {
    let edge = h2_edge();
    let mut c = RawH2::connect(edge.served.addr, Duration::from_secs(15));
    let block = get_block("/o/x.gif");
    // 100 HEADERS + RST_STREAM(CANCEL) pairs per write, up to 5,000 pairs.
    let mut next_id = 1u32;
    let mut written = 0;
    for _ in 0..50 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            frame(
                &mut batch,
                HEADERS,
                END_HEADERS | END_STREAM,
                next_id,
                &block,
            );
            frame(&mut batch, RST_STREAM, 0, next_id, &0x8u32.to_be_bytes());
            next_id += 2;
        }
        if c.flood(&batch, 1) == 0 {
            break;
        }
        written += 100;
    }
    let seen = c.finish(Duration::from_secs(10));
    // h2 counts streams reset by the peer before the server accepted them
    // (max_pending_accept_reset_streams, 20 by default) and answers GOAWAY(ENHANCE_YOUR_CALM,
    // "too_many_resets") past that; hyper closes the connection.
    assert_goaway(&seen, ENHANCE_YOUR_CALM, "rapid reset");
    eprintln!("rapid reset: {written} pairs written; {seen:?}");
    edge.assert_responsive();
}

#[test]
fn h2_continuation_flood_gets_enhance_your_calm() {
    let edge = h2_edge();
    let mut c = RawH2::connect(edge.served.addr, Duration::from_secs(15));
    // HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
    let mut start = Vec::new();
    frame(&mut start, HEADERS, END_STREAM, 1, &get_block("/o/x.gif"));
    c.write(&start);
    let mut piece = Vec::new();
    hpack_literal(&mut piece, 58, "x"); // user-agent: x, 3 bytes of block per frame
    let mut batch = Vec::new();
    for _ in 0..1000 {
        frame(&mut batch, CONTINUATION, 0, 1, &piece);
    }
    let batches = c.flood(&batch, 1000);
    let seen = c.finish(Duration::from_secs(10));
    // h2 bounds the CONTINUATION frames of one block (from the header list limit and frame
    // size, at least 5) and answers GOAWAY(ENHANCE_YOUR_CALM, "too_many_continuations").
    assert_goaway(&seen, ENHANCE_YOUR_CALM, "CONTINUATION flood");
    assert_eq!(seen.headers, 0, "the endless block was answered: {seen:?}");
    eprintln!("CONTINUATION flood: {batches} batches of 1000 written; {seen:?}");
    edge.assert_responsive();
}

#[test]
fn h2_empty_data_flood_gets_enhance_your_calm() {
    let edge = h2_edge();
    let mut c = RawH2::connect(edge.served.addr, Duration::from_secs(15));
    // A request whose body stays open, then empty DATA frames on it.
    let mut start = Vec::new();
    frame(&mut start, HEADERS, END_HEADERS, 1, &get_block("/o/x.gif"));
    c.write(&start);
    let mut batch = Vec::new();
    for _ in 0..1000 {
        frame(&mut batch, DATA, 0, 1, &[]);
    }
    let batches = c.flood(&batch, 1000);
    let seen = c.finish(Duration::from_secs(10));
    // h2 0.4.20 allows 100 empty non-final DATA frames per connection, then GOAWAY
    // (ENHANCE_YOUR_CALM, "too_many_data_frames").
    assert_goaway(&seen, ENHANCE_YOUR_CALM, "empty DATA flood");
    eprintln!("empty DATA flood: {batches} batches of 1000 written; {seen:?}");
    edge.assert_responsive();
}

#[test]
fn h2_hpack_bomb_gets_enhance_your_calm() {
    let edge = h2_edge();
    let mut c = RawH2::connect(edge.served.addr, Duration::from_secs(15));
    // One 4 KB header entered into the dynamic table, then referenced by a one-byte index
    // thousands of times: a 16 KB block that decodes to tens of megabytes.
    let mut block = get_block("/o/x.gif");
    block.push(0x40); // literal with incremental indexing, new name
    hpack_int(&mut block, 0x00, 7, 5);
    block.extend_from_slice(b"x-big");
    hpack_int(&mut block, 0x00, 7, 4000);
    block.extend(std::iter::repeat_n(b'a', 4000));
    block.extend(std::iter::repeat_n(0x80 | 62, 12_000)); // indexed: dynamic entry 62
    let mut f = Vec::new();
    frame(&mut f, HEADERS, END_HEADERS | END_STREAM, 1, &block);
    c.write(&f);
    let seen = c.finish(Duration::from_secs(10));
    eprintln!("HPACK bomb: {seen:?}");
    // h2 stops decoding past an abuse bound above SETTINGS_MAX_HEADER_LIST_SIZE (16 KB here)
    // and answers GOAWAY(ENHANCE_YOUR_CALM, "header_list_way_too_large").
    assert_goaway(&seen, ENHANCE_YOUR_CALM, "HPACK bomb");
    assert_eq!(seen.headers, 0, "the bomb was answered: {seen:?}");
    edge.assert_responsive();
}

/// Opens `n` streams whose request bodies never end, in one write; returns what was seen.
fn open_streams(edge: &Edge, n: u32) -> Seen {
    let mut c = RawH2::connect(edge.served.addr, Duration::from_secs(15));
    let block = get_block("/o/x.gif");
    let mut batch = Vec::new();
    for i in 0..n {
        frame(&mut batch, HEADERS, END_HEADERS, 2 * i + 1, &block);
    }
    c.write(&batch);
    let seen = c.finish(Duration::from_secs(12));
    eprintln!("{n} open streams: {seen:?}");
    seen
}

const REFUSED_STREAM: u32 = 0x7;

#[test]
fn h2_streams_past_the_concurrency_limit_are_refused() {
    let edge = h2_edge();
    // More than the 256 concurrent streams the server allows (`max_concurrent_streams` in
    // openclick-http): the first 256 are answered (and, their bodies still open, reset with
    // NO_ERROR), the rest refused with RST_STREAM(REFUSED_STREAM); the connection lives on
    // until the idle GOAWAY.
    let seen = open_streams(&edge, 1000);
    let refused = seen.rst_codes.get(&REFUSED_STREAM).copied().unwrap_or(0);
    assert!(seen.headers >= 256, "{seen:?}");
    assert!(refused > 0, "no stream refused: {seen:?}");
    assert_eq!(seen.headers + refused, 1000, "{seen:?}");
    assert_eq!(
        seen.rst_codes.get(&NO_ERROR).copied(),
        Some(seen.headers),
        "{seen:?}"
    );
    assert_goaway(&seen, NO_ERROR, "1000 open streams (idle GOAWAY)");
    // And the refusals are bounded too: h2 counts them with its locally reset streams
    // (1,024 by default) and answers GOAWAY(ENHANCE_YOUR_CALM, "too_many_internal_resets")
    // past that (in the run observed, before answering any of the 256 it accepted).
    let seen = open_streams(&edge, 3000);
    assert_goaway(&seen, ENHANCE_YOUR_CALM, "3000 open streams");
    // (1,024 observed: every refusal counted was written before the GOAWAY.)
    let refused = seen.rst_codes.get(&REFUSED_STREAM).copied().unwrap_or(0);
    assert!((1..=1024).contains(&refused), "{seen:?}");
    edge.assert_responsive();
}

/// SETTINGS and PING floods have no counter in h2: it acknowledges each one (it writes the ACK
/// before it reads the next frame, so a client that does not read is held back by TCP). What
/// ends such a connection is ours: no request for `idle_timeout`, GOAWAY(NO_ERROR), then the
/// finish grace (the raw client never answers the GOAWAY's PING). A flooder that also sends a
/// request now and then to dodge the idle check is ended by the maximum age
/// (`max_connection_age`, 10 min by default), and each flood frame costs it as much as the
/// server. Returns what was seen.
fn control_flood(edge: &Edge, ty: u8, payload: &[u8], n: usize) -> Seen {
    let mut c = RawH2::connect(edge.served.addr, Duration::from_secs(20));
    let mut batch = Vec::new();
    for _ in 0..100 {
        frame(&mut batch, ty, 0, 0, payload);
    }
    let t = Instant::now();
    let batches = c.flood(&batch, n / 100);
    assert_eq!(batches, n / 100, "the server went away during the flood");
    let acked = match ty {
        SETTINGS => c.wait(Duration::from_secs(10), |s| s.settings_acks > n),
        _ => c.wait(Duration::from_secs(10), |s| s.ping_acks >= n),
    };
    assert!(acked, "not every frame was acknowledged: {:?}", c.seen);
    // The process stays responsive while this connection is held open.
    edge.assert_responsive();
    let seen = c.finish(Duration::from_secs(15));
    eprintln!(
        "flood of {n} frames of type {ty} in {:?}: {seen:?}",
        t.elapsed()
    );
    seen
}

#[test]
fn h2_settings_flood_is_acked_then_ended_by_the_idle_goaway() {
    let edge = h2_edge();
    let seen = control_flood(&edge, SETTINGS, &[], 20_000);
    // Our SETTINGS ACK of the handshake's frame plus one per flood frame; no error.
    assert!(seen.settings_acks > 20_000, "{seen:?}");
    assert_goaway(&seen, NO_ERROR, "SETTINGS flood (idle GOAWAY)");
    assert!(
        seen.closed_after.unwrap() < Duration::from_secs(12),
        "{seen:?}"
    );
    assert_eq!(
        edge.served
            .state
            .connections
            .closed_idle
            .load(Ordering::Relaxed),
        1
    );
}

#[test]
fn h2_ping_flood_is_acked_then_ended_by_the_idle_goaway() {
    let edge = h2_edge();
    let seen = control_flood(&edge, PING, &[7u8; 8], 20_000);
    assert!(seen.ping_acks >= 20_000, "{seen:?}");
    assert_goaway(&seen, NO_ERROR, "PING flood (idle GOAWAY)");
    assert!(
        seen.closed_after.unwrap() < Duration::from_secs(12),
        "{seen:?}"
    );
    assert_eq!(
        edge.served
            .state
            .connections
            .closed_idle
            .load(Ordering::Relaxed),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Forwarding headers a client writes
// ---------------------------------------------------------------------------------------------

/// An edge trusting loopback as its proxy, believing `header`, publishing to an embedded
/// broker; returns the IP field of the one event a hit with `headers` produces.
fn event_ip(header: ClientIpHeader, headers: &[(&str, &str)]) -> String {
    use openclick_events::v1::EngagementEvent;
    use openclick_events::Message as _;
    let topic = format!("events-adv-{}", std::process::id());
    let broker = EmbeddedBroker::start(1, &[(&topic, 1)]).unwrap();
    let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let pipeline = Pipeline::new(
        keyring.clone(),
        test_enricher(),
        Arc::new(SuppressionSet::new()),
        ClientIpConfig::new(vec!["127.0.0.1/32".parse().unwrap()], header).unwrap(),
    );
    let sink = test_sink(broker.bootstrap_servers(), &topic);
    let mut served = Served::start(
        Arc::new(EdgeState::new(pipeline, sink, ServerConfig::default())),
        None,
    );
    let token = sign(&keyring, TokenKind::Open, "c-fwd");
    let r = http(served.addr, "GET", &format!("/o/{token}.gif"), headers, b"");
    assert_eq!(r.status, 200);
    served.stop(); // drain and flush
    let reader = common::assigned_consumer(broker.bootstrap_servers(), &topic, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut events = Vec::new();
    while Instant::now() < deadline {
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                events.push(EngagementEvent::decode(m.payload.as_deref().unwrap()).unwrap())
            }
            _ if !events.is_empty() => break,
            _ => {}
        }
    }
    assert_eq!(events.len(), 1, "{events:#?}");
    events[0].network.as_ref().unwrap().ip.clone()
}

#[test]
fn forwarded_is_believed_and_a_client_written_x_forwarded_for_is_not() {
    // The proxy writes `Forwarded`; the client's own X-Forwarded-For passes through it
    // untouched and is ignored. The default policy keeps a /24.
    let ip = event_ip(
        ClientIpHeader::Forwarded,
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=203.0.113.9"),
        ],
    );
    assert_eq!(ip, "203.0.113.0");
}

#[test]
fn x_forwarded_for_stops_at_an_unparsable_hop_and_answers_the_peer() {
    // `6.6.6.6, unknown`: the walk from the right meets `unknown` first and stops; what lies
    // left of it was written by someone unknown, so the answer is the peer (loopback, /24).
    let ip = event_ip(
        ClientIpHeader::XForwardedFor,
        &[("X-Forwarded-For", "6.6.6.6, unknown")],
    );
    assert_eq!(ip, "127.0.0.0");
}

// ---------------------------------------------------------------------------------------------
// Hostile records on the control (suppressions) topic
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_control_records_are_skipped_and_later_records_still_apply() {
    use openclick_events::Message as _;
    use openclick_kafka::suppress::{Follower, SyncConfig};
    use openclick_kafka::ClientSettings;
    use openclick_suppress::blocks::{Block, BlockList, BlockScope};
    use openclick_suppress::record::{block_key, encode_block, encode_change, record_key};
    use openclick_suppress::{Change, Reason, Scope, MAX_FUTURE_AT_MS};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    // Each test has a broker of its own: the names need not be unique.
    let topic = "suppressions-adv".to_string();
    let erasures = format!("{topic}-erasures");
    // One partition: the records are read in the order written.
    let broker = EmbeddedBroker::start(1, &[(&topic, 1), (&erasures, 1)]).unwrap();
    let bootstrap = broker.bootstrap_servers().to_string();
    let set = Arc::new(SuppressionSet::new());
    let blocks = Arc::new(BlockList::new());
    let follower = Follower::start(
        &SyncConfig {
            client: ClientSettings::new(&bootstrap),
            topic: topic.clone(),
            erasure_topic: erasures,
            ..SyncConfig::default()
        },
        set.clone(),
        blocks.clone(),
    )
    .unwrap();
    let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
    let pipeline = Pipeline::new(
        keyring.clone(),
        test_enricher(),
        set.clone(),
        ClientIpConfig::default(),
    )
    .with_blocks(blocks.clone());
    let served = Served::start(
        Arc::new(EdgeState::new(
            pipeline,
            Arc::new(MemorySink::new()),
            ServerConfig::default(),
        )),
        None,
    );
    let ready = || http(served.admin, "GET", "/readyz", &[], b"").status == 200;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }

    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.max.bytes", "4000000")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let now = openclick_common::now_ms();
    let add = |contact: &str, at_ms: i64| {
        encode_change(&Change {
            scope: Scope::Contact {
                tenant: "acme".into(),
                contact: contact.into(),
            },
            reason: Some(Reason::OptOut),
            at_ms,
        })
        .unwrap()
        .encode_to_vec()
    };
    let send = |key: Option<&[u8]>, value: Option<&[u8]>| {
        let mut r = BaseRecord::<[u8], [u8]>::to(&topic);
        if let Some(k) = key {
            r = r.key(k);
        }
        if let Some(v) = value {
            r = r.payload(v);
        }
        producer.send(r).map_err(|(e, _)| e).unwrap();
    };
    let huge_key = vec![b'a'; 1_000_000];
    let valid = add("c-valid-value", now);
    let block = encode_block(
        &Block {
            reason: "phishing".into(),
            at_ms: now,
        },
        "test",
    )
    .encode_to_vec();
    // Hostile records, each with a value that would otherwise apply.
    send(Some(b"\xff\xfe/\x80"), Some(&valid)); // key not UTF-8
    send(Some(b""), Some(&valid)); // empty key (would be the tenant "")
    send(None, Some(&valid)); // no key at all
    send(Some(&huge_key), Some(&valid)); // 1 MB key (a tenant id far over its limit)
    send(Some(b"acme/c-garbage"), Some(&[0xff; 16])); // not a SuppressionChange
    send(Some(b"block:host:EVIL.example.com"), Some(&block)); // host not normalised
                                                              // Valid, but from a writer whose clock says the end of time: applied, its time clamped.
    send(Some(b"acme/c-future"), Some(&add("c-future", i64::MAX)));
    // Then good records: they still apply.
    send(
        Some(
            record_key(&Scope::Contact {
                tenant: "acme".into(),
                contact: "c-after".into(),
            })
            .as_bytes(),
        ),
        Some(&add("c-after", now)),
    );
    let good_host = BlockScope::Host {
        host: "evil.example.com".into(),
    };
    send(Some(block_key(&good_host).as_bytes()), Some(&block));
    producer.flush(Duration::from_secs(10)).unwrap();
    // Every record reached the topic (the 1 MB key too), so the follower read them all.
    let held = openclick_kafka::reader::TopicReader::open(
        &ClientSettings::new(&bootstrap),
        &topic,
        openclick_kafka::reader::Start::Beginning,
        Duration::from_secs(5),
    )
    .unwrap()
    .records_held(Duration::from_secs(5))
    .unwrap();
    assert_eq!(held, 9);

    let deadline = Instant::now() + Duration::from_secs(10);
    while blocks.get(&good_host).is_none() {
        assert!(Instant::now() < deadline, "the good block never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The good records after the hostile ones applied; nothing hostile did.
    assert!(set.is_suppressed("acme", "c-after"));
    assert!(set.is_suppressed("acme", "c-future"));
    assert!(!set.is_suppressed("acme", "c-garbage"));
    assert!(!set.is_suppressed("acme", "c-valid-value"));
    assert_eq!((set.len(), set.scopes_len()), (2, 0), "{set:?}");
    assert_eq!(blocks.list().len(), 1, "{:?}", blocks.list());
    // The far-future time is clamped to now + MAX_FUTURE_AT_MS, not i64::MAX: the
    // last-change age reads 0 for at most those 5 minutes and then grows again (it would
    // otherwise stay pinned at 0 and hide a stalled follower).
    let last = set.last_change_at_ms();
    assert!(
        last > now && last <= openclick_common::now_ms() + MAX_FUTURE_AT_MS,
        "last change at {last}, now {now}"
    );
    let metrics = http(served.admin, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("openclick_suppression_last_change_age_seconds 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("openclick_suppression_changes_applied_total 2"),
        "{metrics}"
    );
    // Still ready, and the edge acts on the good record.
    assert!(ready(), "readiness lost");
    let token = sign(&keyring, TokenKind::Open, "c-after");
    let before = served.state.metrics.hits(HitClass::OpenSuppressed);
    assert_eq!(
        http(served.addr, "GET", &format!("/o/{token}.gif"), &[], b"").status,
        200
    );
    assert_eq!(
        served.state.metrics.hits(HitClass::OpenSuppressed),
        before + 1
    );
    follower.stop();
}
