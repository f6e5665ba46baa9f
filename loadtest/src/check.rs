//! The end-to-end check: read the events topic and compare with what was answered.
//!
//! [`Checker::start`] records each partition's high watermark before the run and starts a
//! consumer thread reading every partition from there (assigned, no consumer group) while the
//! load runs: a broker that keeps a bounded log in memory (the embedded mock broker keeps a few
//! MB per partition) would otherwise drop the start of a long run before it is read. Each event
//! whose `message_id` is `lt-{run}-{i}` is counted against request index `i`.
//! [`Checker::finish`] then waits for the rest and compares: a request index answered `n` times
//! must appear `n` times if tracked and never if suppressed or invalid.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use openclick_events::v1::{EngagementEvent, EventType};
use openclick_events::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::mix::Kind;

/// What the topic held for this run.
#[derive(Debug, Default)]
pub struct CheckResult {
    /// Events expected (answered tracked hits).
    pub expected: u64,
    /// Events of this run read from the topic.
    pub received: u64,
    /// Expected but not found.
    pub lost: u64,
    /// Found more often than answered.
    pub duplicated: u64,
    /// Events for suppressed or invalid hits (must be 0).
    pub unexpected: u64,
    /// Events whose type disagrees with the request (must be 0).
    pub wrong_type: u64,
    /// Records that did not decode.
    pub undecodable: u64,
    /// Consumer errors (e.g. the broker dropped records before they were read).
    pub consume_errors: u64,
    /// Time spent reading after the load stopped.
    pub elapsed: Duration,
}

struct Collected {
    received: Vec<u32>,
    result: CheckResult,
}

struct Control {
    finish: AtomicBool,
    expected: AtomicU64,
    settle: Duration,
    idle: Duration,
    timeout: Duration,
}

/// A running consumer of the run's events.
pub struct Checker {
    control: Arc<Control>,
    thread: JoinHandle<Collected>,
}

impl Checker {
    /// Connects, records where the topic ends now and starts reading from there.
    pub fn start(
        brokers: &str,
        topic: &str,
        run: &str,
        kinds: Vec<Kind>,
        settle: Duration,
        idle: Duration,
        timeout: Duration,
    ) -> Result<Checker> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "openclick-loadtest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // Records gone before they were read must show, not be skipped silently.
            .set("auto.offset.reset", "error")
            .set("fetch.wait.max.ms", "100")
            .create()
            .context("Kafka consumer")?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("metadata for {topic} from {brokers}"))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            bail!("topic {topic} not found on {brokers}");
        };
        if t.partitions().is_empty() {
            bail!("topic {topic} has no partitions on {brokers} (create it first)");
        }
        let mut tpl = TopicPartitionList::new();
        for p in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .with_context(|| format!("watermarks of {topic}/{}", p.id()))?;
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
        }
        consumer.assign(&tpl)?;
        let control = Arc::new(Control {
            finish: AtomicBool::new(false),
            expected: AtomicU64::new(0),
            settle,
            idle,
            timeout,
        });
        let prefix = format!("lt-{run}-");
        let ctl = control.clone();
        let thread = std::thread::Builder::new()
            .name("loadtest-check".into())
            .spawn(move || consume(consumer, ctl, prefix, kinds))?;
        Ok(Checker { control, thread })
    }

    /// Tells the reader how many events to expect (`answered` per request index), waits for
    /// them and compares.
    pub fn finish(self, answered: &[u32], kinds: &[Kind]) -> Result<CheckResult> {
        let mut count = CheckResult::default();
        compare(answered, kinds, &[], &mut count);
        self.control
            .expected
            .store(count.expected, Ordering::Relaxed);
        self.control.finish.store(true, Ordering::Release);
        let c = self
            .thread
            .join()
            .map_err(|_| anyhow!("consumer thread panicked"))?;
        let mut r = c.result;
        compare(answered, kinds, &c.received, &mut r);
        Ok(r)
    }
}

impl CheckResult {
    /// The verdict: nothing lost, nothing for a suppressed or invalid hit, no wrong type, and
    /// (when asked) no duplicate.
    pub fn passed(&self, fail_on_duplicates: bool) -> bool {
        self.lost == 0
            && self.unexpected == 0
            && self.wrong_type == 0
            && !(fail_on_duplicates && self.duplicated > 0)
    }
}

/// Compares what was answered with what the topic held, per request index: a tracked index
/// answered `n` times must appear `n` times (fewer: lost; more: duplicated); an untracked one
/// (suppressed, invalid) never (each appearance: unexpected). Sets `expected` too.
fn compare(answered: &[u32], kinds: &[Kind], received: &[u32], r: &mut CheckResult) {
    r.expected = answered
        .iter()
        .zip(kinds)
        .filter(|(_, k)| k.tracked())
        .map(|(&n, _)| n as u64)
        .sum();
    for ((&got, &sent), kind) in received.iter().zip(answered).zip(kinds) {
        if kind.tracked() {
            r.lost += sent.saturating_sub(got) as u64;
            r.duplicated += got.saturating_sub(sent) as u64;
        } else {
            r.unexpected += got as u64;
        }
    }
}

/// Counts one record read from the topic: an event of this run (`message_id` is
/// `{prefix}{index}` with a known index) counts against its request index, and is checked for
/// its type; anything else (another run's event, another producer's) is ignored.
fn tally(
    ev: &EngagementEvent,
    prefix: &str,
    kinds: &[Kind],
    received: &mut [u32],
    r: &mut CheckResult,
) {
    let Some(i) = ev
        .message_id
        .strip_prefix(prefix)
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&i| i < kinds.len())
    else {
        return;
    };
    received[i] += 1;
    r.received += 1;
    let ty = if kinds[i].is_click() {
        EventType::Click
    } else {
        EventType::Open
    };
    if ev.r#type != ty as i32 {
        r.wrong_type += 1;
    }
}

fn consume(
    consumer: BaseConsumer,
    ctl: Arc<Control>,
    prefix: String,
    kinds: Vec<Kind>,
) -> Collected {
    let mut received = vec![0u32; kinds.len()];
    let mut r = CheckResult::default();
    let mut finish_at: Option<Instant> = None;
    let mut last = Instant::now();
    let mut complete_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if finish_at.is_none() && ctl.finish.load(Ordering::Acquire) {
            finish_at = Some(now);
            last = now;
        }
        if let Some(f) = finish_at {
            let expected = ctl.expected.load(Ordering::Relaxed);
            if r.received >= expected && complete_at.is_none() {
                complete_at = Some(now);
            }
            if now - f >= ctl.timeout
                || now - last >= ctl.idle
                || complete_at.is_some_and(|t| now - t >= ctl.settle)
            {
                r.elapsed = now - f;
                break;
            }
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                r.consume_errors += 1;
                if r.consume_errors <= 3 {
                    eprintln!("consume error: {e}");
                }
                continue;
            }
        };
        last = Instant::now();
        let Ok(ev) = EngagementEvent::decode(m.payload().unwrap_or_default()) else {
            r.undecodable += 1;
            continue;
        };
        tally(&ev, &prefix, &kinds, &mut received, &mut r);
    }
    Collected {
        received,
        result: r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "lt-r1-";

    fn ev(i: usize, ty: EventType) -> EngagementEvent {
        EngagementEvent {
            message_id: format!("{RUN}{i}"),
            r#type: ty as i32,
            ..Default::default()
        }
    }

    /// Feeds `events` through `tally` and `compare`, as the checker does.
    fn check(answered: &[u32], kinds: &[Kind], events: &[EngagementEvent]) -> CheckResult {
        let mut received = vec![0u32; kinds.len()];
        let mut r = CheckResult::default();
        for e in events {
            tally(e, RUN, kinds, &mut received, &mut r);
        }
        compare(answered, kinds, &received, &mut r);
        r
    }

    const KINDS: [Kind; 4] = [
        Kind::OpenTracked,
        Kind::ClickTracked,
        Kind::OpenSuppressed,
        Kind::ClickInvalid,
    ];

    #[test]
    fn everything_answered_once_and_found_once_passes() {
        let r = check(
            &[1, 1, 1, 1],
            &KINDS,
            &[ev(0, EventType::Open), ev(1, EventType::Click)],
        );
        assert_eq!((r.expected, r.received), (2, 2));
        assert_eq!(
            (r.lost, r.duplicated, r.unexpected, r.wrong_type),
            (0, 0, 0, 0)
        );
        assert!(r.passed(true));
    }

    #[test]
    fn a_missing_event_is_lost_and_fails() {
        // Index 0 answered 3 times (a keep-alive client retried), found twice.
        let r = check(
            &[3, 1, 0, 0],
            &KINDS,
            &[
                ev(0, EventType::Open),
                ev(0, EventType::Open),
                ev(1, EventType::Click),
            ],
        );
        assert_eq!((r.expected, r.received, r.lost), (4, 3, 1));
        assert!(!r.passed(false));
    }

    #[test]
    fn an_extra_copy_is_duplicated_and_fails_only_when_asked() {
        let r = check(
            &[1, 1, 0, 0],
            &KINDS,
            &[
                ev(0, EventType::Open),
                ev(0, EventType::Open),
                ev(1, EventType::Click),
            ],
        );
        assert_eq!((r.lost, r.duplicated), (0, 1));
        assert!(
            r.passed(false),
            "at least once: duplicates are allowed by default"
        );
        assert!(!r.passed(true));
    }

    #[test]
    fn a_lost_event_is_not_hidden_by_a_duplicate_of_another() {
        // Same total count as expected, but index 0 twice and index 1 never.
        let r = check(
            &[1, 1, 0, 0],
            &KINDS,
            &[ev(0, EventType::Open), ev(0, EventType::Open)],
        );
        assert_eq!(r.received, r.expected);
        assert_eq!((r.lost, r.duplicated), (1, 1));
        assert!(!r.passed(false));
    }

    #[test]
    fn events_for_suppressed_or_invalid_hits_are_unexpected_and_fail() {
        let r = check(
            &[1, 1, 5, 5],
            &KINDS,
            &[
                ev(0, EventType::Open),
                ev(1, EventType::Click),
                ev(2, EventType::Open),
                ev(3, EventType::Click),
            ],
        );
        assert_eq!(r.expected, 2, "suppressed and invalid hits expect nothing");
        assert_eq!((r.lost, r.unexpected), (0, 2));
        assert!(!r.passed(false));
    }

    #[test]
    fn a_wrong_type_fails() {
        let r = check(
            &[1, 1, 0, 0],
            &KINDS,
            &[ev(0, EventType::Click), ev(1, EventType::Click)],
        );
        assert_eq!((r.lost, r.wrong_type), (0, 1));
        assert!(!r.passed(false));
    }

    #[test]
    fn other_runs_and_out_of_range_indexes_are_ignored() {
        let other = EngagementEvent {
            message_id: "lt-r2-0".into(),
            r#type: EventType::Open as i32,
            ..Default::default()
        };
        let r = check(
            &[1, 1, 0, 0],
            &KINDS,
            &[
                other,
                ev(99, EventType::Open),
                ev(0, EventType::Open),
                ev(1, EventType::Click),
            ],
        );
        assert_eq!(r.received, 2);
        assert_eq!((r.lost, r.unexpected, r.wrong_type), (0, 0, 0));
        assert!(r.passed(true));
    }
}
