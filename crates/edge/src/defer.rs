//! Open hits answered at once and run through the pipeline a moment later, off the request
//! thread.
//!
//! Why: the answer to `GET|HEAD /o/...` never depends on the hit. Every outcome of an open
//! (tracked, invalid token, suppressed, rate limited) is the same pixel
//! ([`Pipeline::process`]). So with [`DeferredOpens`] on, the request thread copies what the
//! pipeline reads of the request into a buffer of its own and answers. The buffered requests
//! then go through [`Pipeline::process`] in batches, which is where an open is cheap: the
//! token check, enrichment and event encoding of one open cost about 1-2 us of CPU in a batch
//! of tens, and 5-7 us when a pass handles a few at a time on cold caches (BENCHMARKS.md,
//! sessions 15 and 16).
//!
//! - A request thread whose buffer reaches [`MAX_BYTES`] (16 KiB: about 50 opens of the load
//!   generator's mix, headers included) processes it itself, at once, in one batch. Under
//!   steady traffic that is most opens.
//! - The `openclick-opens` thread takes every buffer every
//!   [`crate::ServerConfig::defer_opens`] (20 ms in `openclick serve`) and processes what has
//!   not filled, so a quiet edge's opens become events within that interval (up to four
//!   intervals once the thread finds nothing to do and slows down).
//!
//! What is kept of a request: the clock read at the request (the event's time, the token-age
//! and rate-limit checks use it), the socket peer, GET or HEAD, the path, and the values of
//! the headers the open path reads: [`crate::pipeline::HIT_HEADERS`] and the client-address
//! header of [`crate::ClientIpConfig`]. A pass hands the pipeline those values as slices of
//! the buffer ([`crate::headers::Headers::Kept`]), with no header map rebuilt. The pipeline
//! then sees the same request and clock; the state it checks the hit against (suppression
//! set, rate limiter, keys) is read up to one interval later.
//!
//! Accounting: a buffered open is not an event yet (its token is not checked); it becomes one,
//! or is counted as invalid, suppressed or limited, when the thread processes it, and its
//! event is then published with [`openclick_sink::Sink::publish_in_batch`]: straight to the
//! producer, in the batch, rather than through the hand-off buffer of single events.
//! At shutdown the server stops the thread and processes what is left before the sink
//! closes ([`crate::server::run_with_https`]). Clicks are never deferred: their answer
//! depends on the token.
//!
//! Bounded: a buffer that reaches its bound is processed by the request thread itself, so
//! memory stays within `shards x max_bytes` whether or not the thread runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::header::HeaderName;
use http::Method;
use openclick_common::shard::{lock, thread_index as shard_index};
use std::sync::Mutex;

use crate::client_ip::{ClientIpConfig, ClientIpHeader};
use crate::headers::Headers;
use crate::pipeline::{route, Request, Track, HIT_HEADERS};

/// A buffer this large is processed by the request thread that fills it, in one batch (about
/// 50 opens of the load generator's mix, under 100 us of processing: the requests behind it
/// wait that long). The size is measured, not derived: at 16 KiB and 20 ms passes, alternating
/// rounds at 21,700 req/s cost the process 8-12% less CPU a request than 64 KiB and 1 ms
/// passes, with the same throughput at saturation (BENCHMARKS.md, session 16).
pub const MAX_BYTES: usize = 16 << 10;
/// Buffers; a request thread always appends to the same one.
const SHARDS: usize = 16;

/// A buffer on a cache line (or two) of its own. Its lock is `std`'s (taken with
/// [`lock`]): the `openclick-opens` thread runs at `SCHED_IDLE`.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Vec<u8>>);

/// The buffered opens of every request thread. See the module docs.
pub struct DeferredOpens {
    shards: Box<[Shard]>,
    /// A buffer this large is processed by the request thread that fills it.
    max_bytes: usize,
    /// The headers kept, by index in the encoding.
    headers: Vec<HeaderName>,
    /// Serialises passes; holds the spare buffer a shard's buffer is swapped with.
    pass: Mutex<Vec<u8>>,
    stop: AtomicBool,
    interval: Duration,
    /// Opens a request thread processed itself (a full buffer, or after the stop).
    inline: AtomicU64,
}

impl std::fmt::Debug for DeferredOpens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredOpens")
            .field("interval", &self.interval)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// One request, as read back from a buffer.
struct Parsed {
    now_ms: i64,
    peer: IpAddr,
    head: bool,
    path: std::ops::Range<usize>,
}

/// A little-endian reader over one buffer (written by [`DeferredOpens::push`] of this process:
/// a short read is a bug, and panics).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::ops::Range<usize> {
        let r = self.at..self.at + n;
        assert!(r.end <= self.bytes.len(), "deferred open buffer truncated");
        self.at = r.end;
        r
    }
    fn u8(&mut self) -> u8 {
        let r = self.take(1);
        self.bytes[r.start]
    }
    fn u32(&mut self) -> usize {
        let r = self.take(4);
        u32::from_le_bytes(self.bytes[r].try_into().expect("4 bytes")) as usize
    }
    fn i64(&mut self) -> i64 {
        let r = self.take(8);
        i64::from_le_bytes(self.bytes[r].try_into().expect("8 bytes"))
    }
}

impl DeferredOpens {
    /// Buffers that keep the headers the open path reads under `client_ip`'s rules, processed
    /// every `interval` by [`DeferredOpens::run`].
    pub fn new(client_ip: &ClientIpConfig, interval: Duration) -> DeferredOpens {
        let mut headers: Vec<HeaderName> = HIT_HEADERS.iter().map(|h| (*h).clone()).collect();
        if !client_ip.trusted().is_empty() {
            headers.push(match client_ip.header() {
                ClientIpHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
                ClientIpHeader::Forwarded => http::header::FORWARDED,
                ClientIpHeader::Single(name) => name.clone(),
            });
        }
        DeferredOpens {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            max_bytes: MAX_BYTES,
            headers,
            pass: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            interval,
            inline: AtomicU64::new(0),
        }
    }

    /// Whether this request is one to defer: an open ([`crate::pipeline::route`]'s rule), by
    /// GET or HEAD.
    pub fn defers(method: &Method, path: &str) -> bool {
        (method == Method::GET || method == Method::HEAD)
            && matches!(route(path), Some((Track::Open, _)))
    }

    /// Buffers one open. When its buffer is full, processes the buffers here with `process`
    /// first; once the thread has stopped, processes them and this request here.
    pub fn push(&self, req: &Request<'_>, mut process: impl FnMut(&Request<'_>)) {
        let shard = &self.shards[shard_index() % self.shards.len()];
        loop {
            let mut b = lock(&shard.0);
            // Read under the buffer's lock: the last pass after `stop` takes this lock too,
            // so a request either lands before that pass or sees the stop.
            if self.stop.load(Ordering::Relaxed) {
                drop(b);
                let n = self.pass(&mut process);
                process(req);
                self.inline.fetch_add(n as u64 + 1, Ordering::Relaxed);
                return;
            }
            if b.len() < self.max_bytes {
                self.encode(req, &mut b);
                return;
            }
            drop(b);
            let n = self.pass(&mut process);
            self.inline.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    fn encode(&self, req: &Request<'_>, b: &mut Vec<u8>) {
        b.extend_from_slice(&req.now_ms.to_le_bytes());
        match req.peer {
            IpAddr::V4(v4) => {
                b.push(4);
                b.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                b.push(6);
                b.extend_from_slice(&v6.octets());
            }
        }
        b.push(u8::from(req.method == Method::HEAD));
        b.extend_from_slice(&(req.path.len() as u32).to_le_bytes());
        b.extend_from_slice(req.path.as_bytes());
        let count_at = b.len();
        b.push(0);
        let mut count = 0u8;
        // One walk over the request's headers, each name compared with the few kept (cheaper
        // than a hashed lookup per kept name: a pixel request has a handful of headers). The
        // values of one name keep their order, which is all a reader relies on.
        req.headers.for_each(|name, v| {
            // At most 255 values are kept: the server refuses a request with more headers
            // (`ConnConfig::max_headers`, 64) long before.
            if count == u8::MAX {
                return;
            }
            if let Some(i) = self.headers.iter().position(|n| n == name) {
                b.push(i as u8);
                b.extend_from_slice(&(v.len() as u32).to_le_bytes());
                b.extend_from_slice(v);
                count += 1;
            }
        });
        b[count_at] = count;
    }

    /// Takes every buffer and runs `process` on each buffered request, in each request
    /// thread's order. Returns how many.
    pub fn pass(&self, process: &mut impl FnMut(&Request<'_>)) -> usize {
        let mut spare = lock(&self.pass);
        let mut n = 0;
        for shard in self.shards.iter() {
            {
                let mut b = lock(&shard.0);
                if b.is_empty() {
                    continue;
                }
                // The spare buffer (empty, with the capacity of an earlier one) takes its place.
                std::mem::swap(&mut *b, &mut *spare);
            }
            let bytes: &[u8] = &spare;
            let mut r = Reader { bytes, at: 0 };
            // The kept header values: slices of the buffer, no copy, no map.
            let mut kept: Vec<(u8, &[u8])> = Vec::with_capacity(8);
            while r.at < bytes.len() {
                let p = Self::parse(&mut r);
                kept.clear();
                for _ in 0..r.u8() {
                    let i = r.u8();
                    let len = r.u32();
                    kept.push((i, &bytes[r.take(len)]));
                }
                let path = std::str::from_utf8(&bytes[p.path]).unwrap_or("/o/");
                process(&Request {
                    method: if p.head { &Method::HEAD } else { &Method::GET },
                    path,
                    headers: Headers::Kept {
                        names: &self.headers,
                        values: &kept,
                    },
                    peer: p.peer,
                    now_ms: p.now_ms,
                });
                n += 1;
            }
            drop(kept);
            spare.clear();
        }
        n
    }

    fn parse(r: &mut Reader<'_>) -> Parsed {
        let now_ms = r.i64();
        let peer = match r.u8() {
            4 => {
                let o = r.take(4);
                IpAddr::V4(Ipv4Addr::from(
                    <[u8; 4]>::try_from(&r.bytes[o]).expect("4 bytes"),
                ))
            }
            _ => {
                let o = r.take(16);
                IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(&r.bytes[o]).expect("16 bytes"),
                ))
            }
        };
        let head = r.u8() == 1;
        let len = r.u32();
        let path = r.take(len);
        Parsed {
            now_ms,
            peer,
            head,
            path,
        }
    }

    /// The thread's loop: a pass every interval until [`DeferredOpens::stop`]; when a pass
    /// finds nothing the pause doubles, up to four intervals.
    pub fn run(&self, mut process: impl FnMut(&Request<'_>)) {
        let mut pause = self.interval;
        while !self.stop.load(Ordering::Relaxed) {
            // `stop` unparks: a long pause never delays shutdown.
            std::thread::park_timeout(pause);
            pause = if self.pass(&mut process) == 0 {
                (pause * 2).min(self.interval * 4)
            } else {
                self.interval
            };
        }
    }

    /// Tells [`DeferredOpens::run`] to return; from now on [`DeferredOpens::push`] processes
    /// on the request thread. The caller unparks the thread, joins it, and makes a last pass.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The pause between passes while opens arrive.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Opens processed on a request thread so far, because a buffer was full (the thread
    /// fell behind) or the thread had stopped.
    pub fn processed_inline(&self) -> u64 {
        self.inline.load(Ordering::Relaxed)
    }

    /// Emits `openclick_opens_processed_inline_total` (see [`crate::describe_metrics`]).
    pub fn export(&self) {
        metrics::counter!("openclick_opens_processed_inline_total")
            .absolute(self.processed_inline());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_ip::client_ip;
    use crate::headers::visible_str;
    use crate::pipeline::{request_hit, HitClass, Pipeline, Reply};
    use http::{HeaderMap, HeaderValue};
    use openclick_enrich::{EnrichConfig, Enricher, HitKind};
    use openclick_events::v1::EngagementEvent;
    use openclick_events::Message;
    use openclick_suppress::SuppressionSet;
    use openclick_token::{Channel, Claims, Key, Keyring, TokenKind};
    use std::sync::Arc;

    const NOW: i64 = 1_700_000_000_000;

    /// One request, owned, as a test writes it.
    #[derive(Clone, Debug, PartialEq)]
    struct Owned {
        head: bool,
        path: String,
        headers: Vec<(String, String)>,
        peer: IpAddr,
        now_ms: i64,
    }

    impl Owned {
        fn new(head: bool, path: &str, headers: &[(&str, &str)], peer: &str, now_ms: i64) -> Self {
            Owned {
                head,
                path: path.into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                peer: peer.parse().unwrap(),
                now_ms,
            }
        }
        fn map(&self) -> HeaderMap {
            let mut m = HeaderMap::new();
            for (k, v) in &self.headers {
                m.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            m
        }
        fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
            let map = self.map();
            f(&Request {
                method: if self.head {
                    &Method::HEAD
                } else {
                    &Method::GET
                },
                path: &self.path,
                headers: (&map).into(),
                peer: self.peer,
                now_ms: self.now_ms,
            })
        }
        fn of(r: &Request<'_>) -> Owned {
            let mut headers = Vec::new();
            r.headers.for_each(|k, v| {
                headers.push((k.to_string(), visible_str(v).unwrap().to_string()));
            });
            Owned {
                head: r.method == Method::HEAD,
                path: r.path.into(),
                headers,
                peer: r.peer,
                now_ms: r.now_ms,
            }
        }
    }

    fn trusting_xff() -> ClientIpConfig {
        ClientIpConfig::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            ClientIpHeader::XForwardedFor,
        )
        .unwrap()
    }

    fn requests() -> Vec<Owned> {
        let long = format!("/o/{}.gif", "A".repeat(3000));
        vec![
            Owned::new(
                false,
                "/o/abc.gif",
                &[
                    ("user-agent", "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15"),
                    ("cookie", "secret=1"),
                    ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
                    ("x-forwarded-for", "10.2.2.2"),
                    ("purpose", "prefetch"),
                    ("sec-purpose", "prefetch;prerender"),
                    ("dnt", "1"),
                    ("sec-gpc", "1"),
                    ("accept-language", "de-DE"),
                ],
                "10.0.0.1",
                NOW,
            ),
            Owned::new(true, "/o/", &[], "2001:db8::7", NOW + 1),
            Owned::new(false, &long, &[("user-agent", "x")], "192.0.2.1", -5),
        ]
    }

    fn drain(d: &DeferredOpens) -> Vec<Owned> {
        let mut got = Vec::new();
        d.pass(&mut |r| got.push(Owned::of(r)));
        got
    }

    #[test]
    fn a_request_reads_back_as_the_pipeline_sees_it() {
        let ip = trusting_xff();
        let d = DeferredOpens::new(&ip, Duration::from_millis(1));
        let sent = requests();
        for r in &sent {
            r.with(|req| d.push(req, |_| panic!("nothing is processed inline")));
        }
        let got = drain(&d);
        assert_eq!(got.len(), sent.len());
        for (s, g) in sent.iter().zip(&got) {
            assert_eq!(
                (s.head, &s.path, s.peer, s.now_ms),
                (g.head, &g.path, g.peer, g.now_ms)
            );
            // What the pipeline reads of the headers is the same, read from the original
            // request and from the copy: the enrichment's view and the client address.
            let (orig, copy) = (s.map(), g.clone().map());
            let a = request_hit(HitKind::Open, &orig, s.peer, s.head, 0, NOW);
            let b = request_hit(HitKind::Open, &copy, g.peer, g.head, 0, NOW);
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            assert_eq!(client_ip(s.peer, &orig, &ip), client_ip(g.peer, &copy, &ip));
        }
        // The first request's client address, from the hop the trusted proxy appended.
        let copy = got[0].map();
        assert_eq!(
            client_ip(got[0].peer, &copy, &ip),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // Nothing else is kept: no cookie, no language.
        let kept: Vec<&str> = got[0].headers.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            !kept.contains(&"cookie") && !kept.contains(&"accept-language"),
            "{kept:?}"
        );
        assert_eq!(kept.iter().filter(|k| **k == "x-forwarded-for").count(), 2);
        // Passed once: the buffers are empty.
        assert!(drain(&d).is_empty());
    }

    #[test]
    fn without_trusted_proxies_no_forwarding_header_is_kept() {
        let d = DeferredOpens::new(&ClientIpConfig::default(), Duration::from_millis(1));
        requests()[0].with(|req| d.push(req, |_| ()));
        let got = drain(&d);
        assert!(got[0].headers.iter().all(|(k, _)| k != "x-forwarded-for"));
        assert!(got[0].headers.iter().any(|(k, _)| k == "user-agent"));
    }

    #[test]
    fn a_full_buffer_and_a_stopped_thread_process_on_the_request_thread_in_order() {
        let mut d = DeferredOpens::new(&ClientIpConfig::default(), Duration::from_millis(1));
        d.max_bytes = 1;
        let sent = requests();
        let mut inline = Vec::new();
        for r in &sent {
            r.with(|req| d.push(req, |x| inline.push(Owned::of(x))));
        }
        // Each push found the buffer holding the previous request (over 1 byte): processed it.
        assert_eq!(inline.len(), sent.len() - 1);
        assert_eq!(d.processed_inline(), 2);
        assert_eq!(inline[0].path, sent[0].path);
        assert_eq!(inline[1].path, sent[1].path);
        d.stop();
        let mut after = Vec::new();
        sent[0].with(|req| d.push(req, |x| after.push(Owned::of(x))));
        // After the stop: what was buffered, then this request, at once.
        assert_eq!(after.len(), 2);
        assert_eq!(d.processed_inline(), 4);
        assert_eq!(
            (after[0].path.as_str(), after[1].path.as_str()),
            (sent[2].path.as_str(), sent[0].path.as_str())
        );
        assert!(drain(&d).is_empty());
    }

    #[test]
    fn each_threads_requests_arrive_in_order() {
        let d = Arc::new(DeferredOpens::new(
            &ClientIpConfig::default(),
            Duration::from_millis(1),
        ));
        // 2,000 requests a thread overflow a buffer (`MAX_BYTES`) a few times: the passes the
        // request threads run themselves keep the order too.
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (d, seen) = (d.clone(), seen.clone());
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let r = Owned::new(false, &format!("/o/{t}-{i}"), &[], "192.0.2.1", i);
                        r.with(|req| d.push(req, |x| seen.lock().unwrap().push(Owned::of(x))));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(d.processed_inline() > 0, "the bound was never reached");
        let mut got = std::mem::take(&mut *seen.lock().unwrap());
        got.extend(drain(&d));
        assert_eq!(got.len(), 8_000);
        for t in 0..4 {
            let mine: Vec<i64> = got
                .iter()
                .filter(|g| g.path.starts_with(&format!("/o/{t}-")))
                .map(|g| g.now_ms)
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    /// The independent truth: the same requests through the pipeline on the request thread.
    #[test]
    fn deferred_outcomes_are_the_inline_outcomes() {
        let keyring = Keyring::new(Key::generate("k1").unwrap(), vec![]).unwrap();
        let set = Arc::new(SuppressionSet::new());
        set.insert("acme", "gone", openclick_suppress::Reason::OptOut);
        let p = Pipeline::new(
            keyring.clone(),
            Arc::new(
                Enricher::new(EnrichConfig {
                    reload_poll: None,
                    min_delay_ms: 0,
                    ..EnrichConfig::default()
                })
                .unwrap(),
            ),
            set,
            trusting_xff(),
        );
        let open = |contact: &str| {
            let t = keyring
                .sign(&Claims {
                    kind: TokenKind::Open,
                    tenant_id: "acme".into(),
                    campaign_id: "spring".into(),
                    message_id: "m1".into(),
                    contact_id: contact.into(),
                    channel: Channel::Email,
                    issued_at_ms: NOW - 60_000,
                    link_id: String::new(),
                    url: String::new(),
                    honeypot: false,
                    list_id: String::new(),
                    undo: false,
                })
                .unwrap();
            format!("/o/{t}.gif")
        };
        let ua = [
            ("user-agent", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"),
            ("x-forwarded-for", "198.51.100.4"),
        ];
        let sent = [
            Owned::new(false, &open("c-1"), &ua, "10.0.0.1", NOW),
            Owned::new(
                true,
                &open("c-2"),
                &[("user-agent", "curl/8")],
                "2001:db8::1",
                NOW,
            ),
            Owned::new(false, &open("gone"), &ua, "10.0.0.1", NOW),
            Owned::new(false, "/o/not-a-token.gif", &ua, "10.0.0.1", NOW),
        ];
        // An outcome as comparable data: class, reply, key and event without its random id.
        let view = |o: crate::pipeline::Outcome| {
            let event = o.event.map(|t| {
                let mut e = EngagementEvent::decode(t.record.payload.as_slice()).unwrap();
                assert_eq!(e.event_id.len(), 36);
                e.event_id.clear();
                (t.record.key.clone(), e)
            });
            (o.class, o.reply == Reply::Pixel, event)
        };
        let inline: Vec<_> = sent
            .iter()
            .map(|r| r.with(|req| view(p.process(req))))
            .collect();
        let d = DeferredOpens::new(p.client_ip_config(), Duration::from_millis(1));
        for r in &sent {
            r.with(|req| d.push(req, |_| ()));
        }
        let mut deferred = Vec::new();
        d.pass(&mut |req| deferred.push(view(p.process(req))));
        assert_eq!(deferred, inline);
        let classes: Vec<HitClass> = inline.iter().map(|v| v.0).collect();
        assert_eq!(
            classes,
            [
                HitClass::OpenTracked,
                HitClass::OpenTracked,
                HitClass::OpenSuppressed,
                HitClass::OpenInvalid
            ]
        );
        // The forwarded client address (anonymised to its /24 by default) reached the event
        // of the first, not the proxy's.
        let first = &inline[0].2.as_ref().unwrap().1;
        assert_eq!(first.network.as_ref().unwrap().ip, "198.51.100.0");
    }
}
