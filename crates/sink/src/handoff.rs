//! A sink in front of another: the request thread appends the record to a buffer and returns;
//! a thread of its own hands the buffered records to the inner sink about every millisecond
//! ([`HandOffConfig::interval`]).
//!
//! Why: on the request path, `publish` into librdkafka costs a message allocation, a header
//! list, the partitioner and the partition queue's lock for every event. Here the request
//! thread pays one uncontended lock and a copy of about 200 bytes; the inner sink's per-record
//! work runs on the hand-off thread, in batches (warm caches, one wake-up for many records).
//!
//! A record published with [`Sink::publish_in_batch`] skips the buffer and goes to the inner
//! sink on the calling thread: the edge's batches of deferred opens already keep the
//! per-record work together, and there the buffer only added a copy and the hand-off
//! thread's wake-ups (BENCHMARKS.md, session 18). Such a record is counted accepted here
//! when the inner sink takes it.
//!
//! Accounting: an event is accepted when it is appended. It is then in exactly one of: a
//! buffer (in flight), the inner sink (whose own accounting takes over), or refused by the
//! inner sink on hand-off (counted `failed` here, with its reason logged). So
//! `accepted = delivered + failed + spooled + in_flight` holds for this sink as for the inner.
//!
//! Bounded: a buffer that reaches `max_bytes` is handed off by the request thread itself
//! (after any pass in progress; the inner sink's `publish` never blocks), so memory stays
//! within `shards x max_bytes` even when the hand-off thread is starved.
//!
//! Order: buffered records from one request thread reach the inner sink in the order they
//! were published; records from different threads are interleaved by buffer, and a record
//! passed straight on can overtake records still buffered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use openclick_common::shard::{lock, thread_index as shard_index};
use openclick_common::LogLimiter;
use std::sync::Mutex;

use crate::{Health, Record, Sink, SinkError, SinkStats};

/// Settings of a [`HandOff`].
#[derive(Clone, Copy, Debug)]
pub struct HandOffConfig {
    /// How often the hand-off thread takes the buffers while records arrive. When a pass
    /// finds nothing, the pause doubles up to `idle_interval`.
    pub interval: Duration,
    /// The longest pause between passes (an idle process).
    pub idle_interval: Duration,
    /// A buffer this large is handed off by the publishing thread itself.
    pub max_bytes: usize,
    /// Buffers; a thread always appends to the same one.
    pub shards: usize,
}

impl Default for HandOffConfig {
    fn default() -> Self {
        HandOffConfig {
            interval: Duration::from_millis(1),
            idle_interval: Duration::from_millis(4),
            max_bytes: 1 << 20,
            shards: 16,
        }
    }
}

/// One buffer: length-prefixed keys and payloads, and how many records it ever took.
#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    /// Records in `bytes`.
    queued: u64,
    /// Records this buffer ever took.
    accepted: u64,
}

/// A buffer on a cache line (or two) of its own: threads append to different ones. Its lock
/// is `std`'s (taken with [`lock`]): the hand-off thread runs at `SCHED_IDLE`.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<Buf>);

struct Inner<S: ?Sized> {
    shards: Box<[Shard]>,
    max_bytes: usize,
    /// Serialises hand-off passes; holds the spare buffer and the record copied into.
    pass: Mutex<(Vec<u8>, Record)>,
    refused: AtomicU64,
    /// Records passed straight to the inner sink ([`Sink::publish_in_batch`]) and taken by it.
    direct: AtomicU64,
    stop: AtomicBool,
    refuse_log: LogLimiter,
    sink: Arc<S>,
}

/// See the module docs.
pub struct HandOff<S: Sink + ?Sized> {
    inner: Arc<Inner<S>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn append(bytes: &mut Vec<u8>, record: &Record) {
    bytes.extend_from_slice(&(record.key.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&record.key);
    bytes.extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&record.payload);
}

/// Splits a buffer back into records, in order.
fn next_record(bytes: &[u8], at: &mut usize, into: &mut Record) -> bool {
    fn part(bytes: &[u8], at: &mut usize, v: &mut Vec<u8>) {
        let len = u32::from_le_bytes(bytes[*at..*at + 4].try_into().expect("4 bytes")) as usize;
        *at += 4;
        v.clear();
        v.extend_from_slice(&bytes[*at..*at + len]);
        *at += len;
    }
    if *at >= bytes.len() {
        return false;
    }
    part(bytes, at, &mut into.key);
    part(bytes, at, &mut into.payload);
    true
}

impl<S: Sink + ?Sized> Inner<S> {
    /// Takes every buffer and publishes its records to the inner sink. Returns how many.
    fn pass(&self) -> usize {
        let mut pass = lock(&self.pass);
        let (spare, record) = &mut *pass;
        let mut n = 0;
        for shard in self.shards.iter() {
            {
                let mut b = lock(&shard.0);
                if b.bytes.is_empty() {
                    continue;
                }
                std::mem::swap(&mut b.bytes, spare);
                b.queued = 0;
            }
            let mut at = 0;
            while next_record(spare, &mut at, record) {
                n += 1;
                if let Err(e) = self.sink.publish(record) {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    if let Some(suppressed) = self.refuse_log.allow() {
                        tracing::error!(target: "openclick::sink", error = %e, suppressed,
                            "event refused on hand-off: counted failed");
                    }
                }
            }
            spare.clear();
        }
        n
    }

    fn run(&self, config: HandOffConfig) {
        let mut pause = config.interval;
        while !self.stop.load(Ordering::Relaxed) {
            // `stop` unparks: a long pause never delays shutdown.
            std::thread::park_timeout(pause);
            pause = if self.pass() == 0 {
                (pause * 2).min(config.idle_interval).max(config.interval)
            } else {
                config.interval
            };
        }
    }
}

impl<S: Sink + ?Sized> HandOff<S> {
    /// Starts the hand-off thread in front of `sink`.
    pub fn new(sink: Arc<S>, config: HandOffConfig) -> Result<Self, SinkError> {
        let inner = Arc::new(Inner {
            shards: (0..config.shards.max(1))
                .map(|_| Shard::default())
                .collect(),
            max_bytes: config.max_bytes,
            pass: Mutex::new((Vec::new(), Record::default())),
            refused: AtomicU64::new(0),
            direct: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            refuse_log: LogLimiter::new(Duration::from_secs(5)),
            sink,
        });
        let i = inner.clone();
        let thread = std::thread::Builder::new()
            .name("openclick-handoff".into())
            .spawn(move || i.run(config))
            .map_err(|e| SinkError::Config(format!("cannot start the hand-off thread: {e}")))?;
        Ok(HandOff {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread, then hands off what the buffers hold.
    fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(t) = lock(&self.thread).take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.inner.pass();
    }

    /// Records accepted and not yet taken by a hand-off pass.
    pub fn buffered(&self) -> u64 {
        self.inner.shards.iter().map(|s| lock(&s.0).queued).sum()
    }
}

impl<S: Sink + ?Sized> Drop for HandOff<S> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<S: Sink + ?Sized> Sink for HandOff<S> {
    fn publish(&self, record: &Record) -> Result<(), SinkError> {
        let i = &*self.inner;
        let shard = &i.shards[shard_index() % i.shards.len()];
        let mut b = lock(&shard.0);
        if b.bytes.len() >= i.max_bytes {
            drop(b);
            i.pass();
            b = lock(&shard.0);
        }
        append(&mut b.bytes, record);
        b.queued += 1;
        b.accepted += 1;
        drop(b);
        if i.stop.load(Ordering::Relaxed) {
            // Closed: no thread takes the buffers any more.
            i.pass();
        }
        Ok(())
    }

    /// Straight to the inner sink, on the calling thread: a batch needs no buffer. Counted
    /// accepted before the inner sink sees it (so [`HandOff::stats`] never finds it delivered
    /// and not accepted), and uncounted if the inner sink refuses it.
    fn publish_in_batch(&self, record: &Record) -> Result<(), SinkError> {
        let i = &*self.inner;
        i.direct.fetch_add(1, Ordering::Relaxed);
        let result = i.sink.publish(record);
        if result.is_err() {
            i.direct.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.inner.pass();
        self.inner.sink.flush(timeout)
    }

    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.stop();
        self.inner.sink.close(timeout)
    }

    fn health(&self) -> Health {
        self.inner.sink.health()
    }

    fn stats(&self) -> SinkStats {
        let i = &*self.inner;
        // Refusals and the inner counters first, the buffers last: a record moving from a
        // buffer to the inner sink meanwhile is then counted in flight, never missed.
        let refused = i.refused.load(Ordering::Relaxed);
        let inner = i.sink.stats();
        let accepted = i.shards.iter().map(|s| lock(&s.0).accepted).sum::<u64>()
            + i.direct.load(Ordering::Relaxed);
        SinkStats {
            accepted,
            delivered: inner.delivered,
            failed: inner.failed + refused,
            spooled: inner.spooled,
        }
    }

    fn export_metrics(&self) {
        self.inner.sink.export_metrics();
        self.stats().export();
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        self.inner.sink.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The test sink's own lock (no background thread shares it).
    use parking_lot::Mutex;

    /// The inner sink of these tests: keeps what it is given, with the publishing thread's
    /// name, and refuses records whose key starts with `refuse`.
    #[derive(Default)]
    struct Recording {
        got: Mutex<Vec<(String, Record)>>,
        refused: AtomicU64,
        flushed: AtomicU64,
        closed: AtomicBool,
    }

    impl Sink for Recording {
        fn publish(&self, record: &Record) -> Result<(), SinkError> {
            if record.key.starts_with(b"refuse") {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(SinkError::Refused {
                    reason: "too_large",
                    retryable: false,
                    detail: "test".into(),
                });
            }
            let name = std::thread::current().name().unwrap_or("").to_string();
            self.got.lock().push((name, record.clone()));
            Ok(())
        }
        fn flush(&self, _: Duration) -> Result<(), SinkError> {
            self.flushed.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn close(&self, _: Duration) -> Result<(), SinkError> {
            self.closed.store(true, Ordering::Relaxed);
            Ok(())
        }
        fn health(&self) -> Health {
            Health::Up
        }
        fn stats(&self) -> SinkStats {
            // Delivered on publish; a refused record was never accepted.
            let n = self.got.lock().len() as u64;
            SinkStats {
                accepted: n,
                delivered: n,
                failed: 0,
                spooled: 0,
            }
        }
    }

    fn record(key: &str, payload: &[u8]) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            payload: payload.to_vec(),
        }
    }

    /// A hand-off whose thread never runs a pass on its own within a test.
    fn parked(max_bytes: usize) -> (Arc<Recording>, HandOff<Recording>) {
        let inner = Arc::new(Recording::default());
        let h = HandOff::new(
            inner.clone(),
            HandOffConfig {
                interval: Duration::from_secs(3600),
                idle_interval: Duration::from_secs(3600),
                max_bytes,
                shards: 4,
            },
        )
        .unwrap();
        (inner, h)
    }

    #[test]
    fn every_record_reaches_the_inner_sink_in_each_threads_order() {
        let inner = Arc::new(Recording::default());
        let h = Arc::new(
            HandOff::new(
                inner.clone(),
                HandOffConfig {
                    interval: Duration::from_micros(200),
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u32 {
                        // Payloads of varying length, empty ones included.
                        let payload = vec![t as u8; (i % 300) as usize];
                        h.publish(&record(&format!("t{t}/{i}"), &payload)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        h.close(Duration::from_secs(1)).unwrap();
        assert!(inner.closed.load(Ordering::Relaxed));
        let got = inner.got.lock();
        assert_eq!(got.len(), 20_000);
        for t in 0..4u8 {
            let mine: Vec<&Record> = got
                .iter()
                .map(|(_, r)| r)
                .filter(|r| r.key.starts_with(format!("t{t}/").as_bytes()))
                .collect();
            assert_eq!(mine.len(), 5_000);
            for (i, r) in mine.iter().enumerate() {
                assert_eq!(
                    r.key,
                    format!("t{t}/{i}").as_bytes(),
                    "thread {t} out of order"
                );
                assert_eq!(r.payload, vec![t; i % 300]);
            }
        }
        // The passes ran on the hand-off thread, not on the publishers.
        assert!(got.iter().any(|(n, _)| n == "openclick-handoff"));
        drop(got);
        let s = h.stats();
        assert_eq!(
            (s.accepted, s.delivered, s.in_flight()),
            (20_000, 20_000, 0)
        );
    }

    #[test]
    fn buffered_records_count_in_flight_until_flush_hands_them_off() {
        let (inner, h) = parked(1 << 20);
        for i in 0..10 {
            h.publish(&record(&format!("k{i}"), b"event")).unwrap();
        }
        assert_eq!(h.buffered(), 10);
        assert!(inner.got.lock().is_empty());
        let s = h.stats();
        assert_eq!((s.accepted, s.delivered, s.in_flight()), (10, 0, 10));
        h.flush(Duration::from_secs(1)).unwrap();
        assert_eq!(inner.flushed.load(Ordering::Relaxed), 1);
        assert_eq!(h.buffered(), 0);
        assert_eq!(inner.got.lock().len(), 10);
        let s = h.stats();
        assert_eq!((s.accepted, s.delivered, s.in_flight()), (10, 10, 0));
    }

    #[test]
    fn a_record_the_inner_sink_refuses_is_counted_failed() {
        let (inner, h) = parked(1 << 20);
        h.publish(&record("a/1", b"x")).unwrap();
        h.publish(&record("refuse/2", b"x")).unwrap();
        h.publish(&record("a/3", b"x")).unwrap();
        h.flush(Duration::from_secs(1)).unwrap();
        assert_eq!(inner.refused.load(Ordering::Relaxed), 1);
        let s = h.stats();
        assert_eq!(
            (s.accepted, s.delivered, s.failed, s.in_flight()),
            (3, 2, 1, 0)
        );
    }

    #[test]
    fn a_batch_record_goes_straight_on_and_is_counted_once() {
        let (inner, h) = parked(1 << 20);
        h.publish(&record("a/1", b"x")).unwrap();
        h.publish_in_batch(&record("a/2", b"x")).unwrap();
        // On the calling thread, past the record still buffered.
        {
            let got = inner.got.lock();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].1.key, b"a/2");
            assert_ne!(got[0].0, "openclick-handoff");
        }
        assert_eq!(h.buffered(), 1);
        let s = h.stats();
        assert_eq!((s.accepted, s.delivered, s.in_flight()), (2, 1, 1));
        // Refused: the caller hears it, and the record was never accepted.
        assert!(h.publish_in_batch(&record("refuse/3", b"x")).is_err());
        h.flush(Duration::from_secs(1)).unwrap();
        let s = h.stats();
        assert_eq!(
            (s.accepted, s.delivered, s.failed, s.in_flight()),
            (2, 2, 0, 0)
        );
    }

    #[test]
    fn a_full_buffer_is_handed_off_by_the_publisher() {
        // Each record takes 4 + 3 + 4 + 100 = 111 bytes: the buffer is full after 10.
        let (inner, h) = parked(1_000);
        for i in 0..25 {
            h.publish(&record(&format!("k{i:02}"), &[0; 100])).unwrap();
            assert!(h.buffered() <= 10, "buffer grew past its bound");
        }
        let got = inner.got.lock();
        assert_eq!(got.len(), 20, "two full buffers handed off inline");
        assert!(got.iter().all(|(n, _)| n != "openclick-handoff"));
        drop(got);
        assert_eq!(h.buffered(), 5);
    }

    #[test]
    fn dropping_or_publishing_after_close_loses_nothing() {
        let (inner, h) = parked(1 << 20);
        h.publish(&record("a/1", b"x")).unwrap();
        h.close(Duration::from_secs(1)).unwrap();
        assert_eq!(inner.got.lock().len(), 1);
        h.publish(&record("a/2", b"x")).unwrap();
        assert_eq!(
            inner.got.lock().len(),
            2,
            "a late record is handed off at once"
        );
        let (inner, h) = parked(1 << 20);
        h.publish(&record("a/1", b"x")).unwrap();
        drop(h);
        assert_eq!(inner.got.lock().len(), 1);
    }
}
