//! Behaviour per message: clicks are held for a short window before they are published, so
//! that a click's event already says whether it was part of a burst (a scanner following every
//! link of a message within a moment) or shared its window with a honeypot link (a place no
//! person sees). Consumers get the final verdict on one record, without joining two.
//!
//! - [`ClickWindow::record`] (called by the pure request -> event function, like the replay
//!   limiter: state passed in) notes a tracked click: message key, link, time, honeypot.
//! - [`ClickWindow::hold`] parks the click's event for `window_ms`; [`ClickWindow::release_due`]
//!   (the server calls it every [`TICK`]) publishes what is due, after applying what the window
//!   saw: a click is in a **burst** when at least `burst_links` distinct links of its message
//!   were clicked within `window_ms` before or after it (the first click of a burst included),
//!   and is flagged **honeypot** when a honeypot link of its message was clicked within
//!   `window_ms` of it. Both go through `openclick_enrich::add_behaviour` (reason + verdict BOT).
//! - Nothing held is lost: past `max_held` events the click is published at once, with what is
//!   known (counted); at shutdown [`ClickWindow::release_all`] publishes everything held before
//!   the sink closes. (A process killed with SIGKILL loses what it held, at most `window_ms` of
//!   clicks, as it loses events still in librdkafka's memory.)
//! - Memory is bounded: at most `max_messages` messages are tracked (a click of a message past
//!   that is published without a hold, counted), and a message's entry goes when its last
//!   click is released. About `ENTRY_BYTES` per message (BENCHMARKS.md).
//!
//! **Across replicas** the window is per process: exact when one replica serves all of a
//! message's clicks (scanners click from one address, so a load balancer hashing the client
//! address keeps a burst on one replica), a lower bound otherwise.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use openclick_events::v1::BotReason;

use crate::pipeline::Tracked;
use parking_lot::Mutex;

/// How often the server releases due clicks.
pub const TICK: Duration = Duration::from_millis(50);
/// How often the server sweeps messages no release removed.
pub const SWEEP: Duration = Duration::from_secs(10);
/// Most clicks remembered per message (the oldest are dropped first).
const MAX_CLICKS_PER_MESSAGE: usize = 32;

/// Settings of the window.
#[derive(Clone, Debug)]
pub struct WindowConfig {
    /// Distinct links of one message within `window_ms` that make a burst; 0 turns the hold
    /// off (clicks are published at once, no burst or honeypot flags).
    pub burst_links: usize,
    /// The window, in milliseconds: how long clicks are held, and how close two clicks must be.
    pub window_ms: i64,
    /// Most messages tracked at once.
    pub max_messages: usize,
    /// Most click events held at once.
    pub max_held: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            burst_links: 2,
            window_ms: 1_000,
            max_messages: 1_000_000,
            max_held: 200_000,
        }
    }
}

/// One remembered click.
#[derive(Clone, Copy, Debug)]
struct Click {
    link: u64,
    at_ms: i64,
    honeypot: bool,
}

/// A click [`ClickWindow::record`] noted, to hand to [`ClickWindow::hold`] with its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    key: u64,
    link: u64,
    at_ms: i64,
}

struct Held {
    hold: Hold,
    event: Tracked,
}

/// What the window says about a released click.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Part of a burst.
    pub burst: bool,
    /// A honeypot link of the message was clicked within the window.
    pub honeypot: bool,
}

/// Clicks per message, and the events held (module docs).
pub struct ClickWindow {
    config: WindowConfig,
    messages: DashMap<u64, Vec<Click>, foldhash::fast::RandomState>,
    entries: AtomicUsize,
    seed: foldhash::quality::RandomState,
    held: Mutex<VecDeque<Held>>,
    held_len: AtomicUsize,
    overflow: AtomicU64,
    untracked: AtomicU64,
    bursts: AtomicU64,
    honeypots: AtomicU64,
}

impl std::fmt::Debug for ClickWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickWindow")
            .field("config", &self.config)
            .field("messages", &self.entries.load(Ordering::Relaxed))
            .field("held", &self.held_len.load(Ordering::Relaxed))
            .finish()
    }
}

impl ClickWindow {
    /// A window with `config`.
    pub fn new(config: WindowConfig) -> ClickWindow {
        ClickWindow {
            config,
            messages: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            entries: AtomicUsize::new(0),
            seed: foldhash::quality::RandomState::default(),
            held: Mutex::new(VecDeque::new()),
            held_len: AtomicUsize::new(0),
            overflow: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
            bursts: AtomicU64::new(0),
            honeypots: AtomicU64::new(0),
        }
    }

    /// The settings.
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    fn hash(&self, parts: &[&str]) -> u64 {
        let mut h = self.seed.build_hasher();
        for p in parts {
            h.write_usize(p.len());
            h.write(p.as_bytes());
        }
        h.finish()
    }

    /// Notes a tracked click of `link_id` in message (`tenant`, `campaign`, `message`) at
    /// `now_ms`. `None`: do not hold it (the hold is off, or the map is full).
    pub fn record(
        &self,
        tenant: &str,
        campaign: &str,
        message: &str,
        link_id: &str,
        honeypot: bool,
        now_ms: i64,
    ) -> Option<Hold> {
        if self.config.burst_links == 0 {
            return None;
        }
        let key = self.hash(&[tenant, campaign, message]);
        let link = self.hash(&[link_id]);
        let click = Click {
            link,
            at_ms: now_ms,
            honeypot,
        };
        match self.messages.entry(key) {
            Entry::Occupied(mut e) => {
                let clicks = e.get_mut();
                if clicks.len() >= MAX_CLICKS_PER_MESSAGE {
                    clicks.remove(0);
                }
                clicks.push(click);
            }
            Entry::Vacant(e) => {
                if self.entries.load(Ordering::Relaxed) >= self.config.max_messages {
                    self.untracked.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                self.entries.fetch_add(1, Ordering::Relaxed);
                let mut v = Vec::with_capacity(2);
                v.push(click);
                e.insert(v);
            }
        }
        Some(Hold {
            key,
            link,
            at_ms: now_ms,
        })
    }

    /// Parks `event` until its window ends. `Err(event)`: too many held, publish it now
    /// (counted; its message's entry is left to [`ClickWindow::sweep`]).
    #[allow(clippy::result_large_err)]
    pub fn hold(&self, hold: Hold, mut event: Tracked) -> Result<(), Tracked> {
        // A held record keeps only its bytes, not the spare capacity of the thread's buffers.
        event.record.key.shrink_to_fit();
        event.record.payload.shrink_to_fit();
        let mut q = self.held.lock();
        if q.len() >= self.config.max_held {
            drop(q);
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return Err(event);
        }
        q.push_back(Held { hold, event });
        self.held_len.store(q.len(), Ordering::Relaxed);
        Ok(())
    }

    /// What the window saw around a click (the rule in the module docs); the message's entry
    /// goes when this is its latest click and no later click can need it (`now_ms` is past
    /// this click's window). One map lookup.
    fn seen_and_forget(&self, hold: Hold, now_ms: i64) -> Seen {
        let Entry::Occupied(e) = self.messages.entry(hold.key) else {
            return Seen::default();
        };
        let w = self.config.window_ms;
        let clicks = e.get();
        // Distinct links, on the stack (at most MAX_CLICKS_PER_MESSAGE).
        let mut links = [0u64; MAX_CLICKS_PER_MESSAGE];
        let mut distinct = 0;
        let mut honeypot = false;
        let mut last = true;
        for c in clicks {
            last &= c.at_ms <= hold.at_ms;
            if (c.at_ms - hold.at_ms).abs() > w {
                continue;
            }
            honeypot |= c.honeypot;
            if !links[..distinct].contains(&c.link) && distinct < links.len() {
                links[distinct] = c.link;
                distinct += 1;
            }
        }
        if last && now_ms.saturating_sub(hold.at_ms) >= w {
            e.remove();
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
        Seen {
            burst: distinct >= self.config.burst_links,
            honeypot,
        }
    }

    fn finish(&self, held: Held, now_ms: i64) -> Tracked {
        let Held { hold, mut event } = held;
        let seen = self.seen_and_forget(hold, now_ms);
        if seen.burst {
            self.bursts.fetch_add(1, Ordering::Relaxed);
        }
        if seen.honeypot {
            self.honeypots.fetch_add(1, Ordering::Relaxed);
        }
        // The event is already encoded: a flagged click (the rare case) is decoded, flagged
        // and encoded again. (It always decodes: this process encoded it.)
        let flagged = seen.burst || seen.honeypot;
        if let Some(Ok(mut e)) = flagged.then(|| event.record.decode()) {
            let signals = e.signals.get_or_insert_with(Default::default);
            if seen.burst {
                openclick_enrich::add_behaviour(signals, BotReason::ClickBurst);
            }
            if seen.honeypot {
                openclick_enrich::add_behaviour(signals, BotReason::Honeypot);
            }
            event.signals = signals.clone();
            event.record.set(&e);
        }
        event
    }

    /// Hands every held click whose window ended by `now_ms` to `publish`, oldest first, with
    /// what its window saw. Returns how many.
    pub fn release_due(&self, now_ms: i64, mut publish: impl FnMut(Tracked)) -> usize {
        let mut n = 0;
        loop {
            let held = {
                let mut q = self.held.lock();
                match q.front() {
                    Some(h) if now_ms.saturating_sub(h.hold.at_ms) >= self.config.window_ms => {
                        let h = q.pop_front();
                        self.held_len.store(q.len(), Ordering::Relaxed);
                        h
                    }
                    _ => None,
                }
            };
            let Some(held) = held else {
                return n;
            };
            publish(self.finish(held, now_ms));
            n += 1;
        }
    }

    /// Hands every held click to `publish` now (shutdown), with what the window saw so far.
    pub fn release_all(&self, mut publish: impl FnMut(Tracked)) -> usize {
        let all: Vec<Held> = {
            let mut q = self.held.lock();
            self.held_len.store(0, Ordering::Relaxed);
            q.drain(..).collect()
        };
        let n = all.len();
        for h in all {
            publish(self.finish(h, i64::MAX));
        }
        n
    }

    /// Drops messages whose latest click is older than twice the window (entries no release
    /// removed: clicks published without a hold). The server calls it every [`SWEEP`].
    pub fn sweep(&self, now_ms: i64) {
        let horizon = now_ms.saturating_sub(2 * self.config.window_ms);
        let mut removed = 0;
        self.messages.retain(|_, clicks| {
            let keep = clicks.last().is_some_and(|c| c.at_ms > horizon);
            removed += usize::from(!keep);
            keep
        });
        self.entries.fetch_sub(removed, Ordering::Relaxed);
    }

    /// Clicks held now.
    pub fn held(&self) -> usize {
        self.held_len.load(Ordering::Relaxed)
    }

    /// Messages tracked now.
    pub fn messages(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Emits the window's series.
    pub fn export_metrics(&self) {
        metrics::gauge!("openclick_clicks_held").set(self.held() as f64);
        metrics::gauge!("openclick_click_window_messages").set(self.messages() as f64);
        metrics::counter!("openclick_click_window_skipped_total", "reason" => "held_full")
            .absolute(self.overflow.load(Ordering::Relaxed));
        metrics::counter!("openclick_click_window_skipped_total", "reason" => "messages_full")
            .absolute(self.untracked.load(Ordering::Relaxed));
        metrics::counter!("openclick_click_window_flagged_total", "reason" => "click_burst")
            .absolute(self.bursts.load(Ordering::Relaxed));
        metrics::counter!("openclick_click_window_flagged_total", "reason" => "honeypot")
            .absolute(self.honeypots.load(Ordering::Relaxed));
    }
}

/// Describes the window's series.
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "openclick_clicks_held",
        "Click events held for the behaviour window before publishing."
    );
    metrics::describe_gauge!(
        "openclick_click_window_messages",
        "Messages whose recent clicks the behaviour window remembers."
    );
    metrics::describe_counter!(
        "openclick_click_window_skipped_total",
        "Clicks published without the window, by why (held_full: too many held; messages_full: \
         too many messages tracked)."
    );
    metrics::describe_counter!(
        "openclick_click_window_flagged_total",
        "Click events flagged by the window, by reason (click_burst, honeypot)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclick_events::v1::{Certainty, EngagementEvent, Signals, Verdict};

    fn event(link: &str) -> Tracked {
        Tracked::of(&EngagementEvent {
            link_id: link.into(),
            tenant_id: "t".into(),
            contact_id: "c".into(),
            signals: Some(Signals {
                verdict: Verdict::Human as i32,
                certainty: Certainty::Probable as i32,
                ..Signals::default()
            }),
            ..EngagementEvent::default()
        })
    }

    fn window(burst_links: usize, max_held: usize) -> ClickWindow {
        ClickWindow::new(WindowConfig {
            burst_links,
            window_ms: 1_000,
            max_messages: 4,
            max_held,
        })
    }

    /// Clicks `(message, link, at_ms, honeypot)`; released at `until`: (link, burst, honeypot).
    fn run(
        w: &ClickWindow,
        clicks: &[(&str, &str, i64, bool)],
        until: i64,
    ) -> Vec<(String, bool, bool)> {
        let mut out = Vec::new();
        let mut publish = |t: Tracked| {
            let e = t.event();
            // The signals kept for the metrics are the ones in the record.
            assert_eq!(e.signals.as_ref(), Some(&t.signals));
            assert_eq!(t.record.key, b"t/c");
            let s = e.signals.unwrap();
            let has = |r: BotReason| s.bot_reasons.contains(&(r as i32));
            out.push((
                e.link_id,
                has(BotReason::ClickBurst),
                has(BotReason::Honeypot),
            ));
        };
        for &(m, l, at, hp) in clicks {
            w.release_due(at, &mut publish);
            let h = w.record("t", "c", m, l, hp, at).expect("held");
            w.hold(h, event(l)).unwrap();
        }
        w.release_due(until, &mut publish);
        out
    }

    #[test]
    fn two_links_within_the_window_are_a_burst_both_flagged() {
        let w = window(2, 100);
        let got = run(
            &w,
            &[("m1", "a", 0, false), ("m1", "b", 400, false)],
            10_000,
        );
        assert_eq!(got, [("a".into(), true, false), ("b".into(), true, false)]);
        assert_eq!((w.held(), w.messages()), (0, 0), "nothing left behind");
    }

    #[test]
    fn the_same_link_twice_or_links_far_apart_are_not() {
        let w = window(2, 100);
        let got = run(
            &w,
            &[
                ("m1", "a", 0, false),
                ("m1", "a", 300, false),
                ("m1", "b", 2_500, false),
            ],
            10_000,
        );
        assert!(got.iter().all(|(_, burst, _)| !burst), "{got:?}");
        // Other messages never make a burst together.
        let got = run(
            &w,
            &[("m1", "a", 20_000, false), ("m2", "b", 20_001, false)],
            30_000,
        );
        assert!(got.iter().all(|(_, burst, _)| !burst), "{got:?}");
        assert_eq!(w.messages(), 0);
    }

    #[test]
    fn a_honeypot_flags_itself_and_its_neighbours() {
        let w = window(3, 100);
        let got = run(
            &w,
            &[
                ("m1", "a", 0, false),
                ("m1", "trap", 500, true),
                ("m1", "b", 3_000, false),
            ],
            10_000,
        );
        assert_eq!(
            got,
            [
                ("a".into(), false, true),
                ("trap".into(), false, true),
                ("b".into(), false, false)
            ]
        );
    }

    #[test]
    fn events_wait_for_their_window_and_none_is_lost() {
        let w = window(2, 2);
        let h = w.record("t", "c", "m1", "a", false, 0).unwrap();
        w.hold(h, event("a")).unwrap();
        let mut n = 0;
        assert_eq!(w.release_due(999, |_| n += 1), 0, "still in its window");
        assert_eq!(w.release_due(1_000, |_| n += 1), 1);
        // Past max_held the event comes straight back to be published.
        for i in 0..2 {
            let h = w.record("t", "c", "m2", "a", false, 5_000 + i).unwrap();
            w.hold(h, event("a")).unwrap();
        }
        let h = w.record("t", "c", "m2", "b", false, 5_002).unwrap();
        assert!(w.hold(h, event("b")).is_err());
        // Its entry stays for the held clicks, until a sweep long after.
        w.sweep(5_003);
        assert_eq!(w.messages(), 1);
        // Shutdown: everything held goes out at once.
        assert_eq!(w.release_all(|_| n += 1), 2);
        assert_eq!((w.held(), n), (0, 3));
        w.sweep(5_002 + 2_001);
        assert_eq!(w.messages(), 0);
    }

    #[test]
    fn the_message_map_is_bounded_and_off_means_no_hold() {
        let w = window(2, 100);
        for m in ["m1", "m2", "m3", "m4"] {
            assert!(w.record("t", "c", m, "a", false, 0).is_some());
        }
        assert!(w.record("t", "c", "m5", "a", false, 0).is_none(), "full");
        assert!(
            w.record("t", "c", "m1", "b", false, 1).is_some(),
            "known message"
        );
        assert!(window(0, 100)
            .record("t", "c", "m1", "a", false, 0)
            .is_none());
    }
}
