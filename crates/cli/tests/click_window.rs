//! The behaviour window through a running `openclick serve` (embedded broker), read back from
//! Kafka with `openclick tail`:
//! - two distinct links of one message clicked within the window: both click events carry
//!   `BOT_REASON_CLICK_BURST` and verdict BOT, the first one included, though the first was
//!   answered (302) before the second was made;
//! - a single click of another message, and a click of the same link twice, do not; a plain
//!   browser click is verdict HUMAN;
//! - clicks are published only after their window (not in Kafka right after the redirect);
//! - a click still held at SIGTERM is published before the sink closes (accounted in the
//!   `sink flushed` line), and nothing is lost.

mod common;

use std::time::{Duration, Instant};

use common::{serve_command, sign_link, tail, try_http_full, Server};

const URL: &str = "https://shop.example.com/sale";

#[test]
fn bursts_are_flagged_on_every_click_and_held_clicks_survive_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(data.path());
    cmd.args(["--click-window-ms", "1500"]);
    let server = Server::spawn(cmd);
    let bootstrap = server.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_owned();
    let click = |path: &str| {
        let (status, _, _) = try_http_full(server.listen, "GET", path, &[]).unwrap();
        assert_eq!(status, 302);
    };
    let (a, b) = (
        sign_link("m-burst", "a", URL),
        sign_link("m-burst", "b", URL),
    );
    let single = sign_link("m-single", "a", URL);
    let twice = sign_link("m-twice", "a", URL);
    let started = Instant::now();
    click(&a);
    click(&b);
    click(&single);
    click(&twice);
    click(&twice);
    // Held: nothing in Kafka while the window runs (checked well inside it).
    if started.elapsed() < Duration::from_millis(700) {
        assert_eq!(
            tail(&bootstrap, 1, 1).len(),
            0,
            "published before its window ended"
        );
    }
    let events = tail(&bootstrap, 5, 20);
    assert_eq!(events.len(), 5, "{events:#?}");
    for e in &events {
        let burst = e["signals"]["botReasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == "BOT_REASON_CLICK_BURST"));
        let in_burst = e["messageId"] == "m-burst";
        assert_eq!(burst, in_burst, "{e:#}");
        let verdict = if in_burst {
            "VERDICT_BOT"
        } else {
            "VERDICT_HUMAN"
        };
        assert_eq!(e["signals"]["verdict"], verdict, "{e:#}");
    }

    // A click held when SIGTERM arrives is published before the sink closes.
    click(&sign_link("m-last", "a", URL));
    server.sigterm();
    let lines = server.wait();
    let released = common::log_fields(&lines, "held clicks published at shutdown");
    assert_eq!(released.len(), 1, "{lines:#?}");
    assert_eq!(released[0]["released"], 1);
    let flushed = common::log_fields(&lines, "sink flushed");
    assert_eq!(flushed.len(), 1, "{lines:#?}");
    assert_eq!(flushed[0]["accepted"], 6);
    assert_eq!(flushed[0]["delivered"], 6);
}
