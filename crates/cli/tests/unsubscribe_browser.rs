//! A real browser on the unsubscribe page: headless Chromium loads `GET /u/TOKEN` from a running
//! `openclick serve` (embedded broker), which changes nothing; then the test presses the page's
//! button with a real mouse event (Chrome DevTools Protocol `Input.dispatchMouseEvent` at the
//! button's on-screen centre), the browser submits the form, and the contact is suppressed (the
//! admin API says so, and the `EVENT_TYPE_UNSUBSCRIBE` event with method PAGE reaches Kafka).
//! Then the Undo button, pressed the same way, re-subscribes the contact.
//!
//! The DevTools client is `common::chromium::Cdp`. Needs Chromium (`chromium`, or `CHROMIUM`):
//! `#[ignore]`d in a plain `cargo test`, run by `.ci/browser`. No script runs in the page
//! itself: the page has none, and the button is pressed from outside, as a person would.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::chromium::{launch, page_target, Cdp};
use common::{run, serve_command, tail, try_http, Server, KEYS};
use serde_json::json;

const ADMIN: &str = "unsubscribe-browser-admin";

fn suppressed(admin: SocketAddr, contact: &str) -> bool {
    let auth = format!("Bearer {ADMIN}");
    try_http(
        admin,
        "GET",
        &format!("/v1/suppressions/acme/{contact}"),
        &[("Authorization", &auth)],
    )
    .unwrap()
    .0 == 200
}

#[test]
#[ignore = "needs chromium: run by .ci/browser"]
fn chromium_loads_the_page_presses_the_button_and_the_contact_is_suppressed_then_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(&dir.path().join("data"));
    cmd.args(["--admin-token", ADMIN])
        .args(["--unsubscribe-brand", "acme=ACME Outdoor|#0b6e4f|#f3f7f5"]);
    let s = Server::spawn(cmd);
    let out = run(&[
        "sign",
        "unsubscribe",
        "--tenant",
        "acme",
        "--contact",
        "c-browser",
        "--base-url",
        &format!("http://{}", s.listen),
        "--keys",
        KEYS,
    ]);
    assert!(out.status.success(), "{out:?}");
    let url = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let token = url.rsplit('/').next().unwrap().to_owned();

    let (_browser, port) = launch(&dir.path().join("profile"), &url);
    let mut cdp = Cdp::connect(port, &page_target(port, &token));
    cdp.wait_text("Unsubscribe?");
    assert_eq!(
        cdp.eval("document.querySelector('h1').innerText"),
        "ACME Outdoor"
    );
    assert_eq!(cdp.eval("document.scripts.length"), 0);
    // Loading the page changed nothing.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !suppressed(s.admin, "c-browser"),
        "a GET must not unsubscribe"
    );

    cdp.press_button("button");
    cdp.wait_text("You are unsubscribed");
    assert!(
        suppressed(s.admin, "c-browser"),
        "applied on this edge before the page answered"
    );

    cdp.press_button("button");
    cdp.wait_text("You are subscribed again");
    // Deterministic, not eventually: the edge's own change is not undone by the opt-out's
    // record arriving late from the topic (`SuppressionSet::apply_local`).
    assert!(
        !suppressed(s.admin, "c-browser"),
        "re-subscribed on this edge before the page answered"
    );

    let brokers = s.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = tail(&brokers, 2, 3);
    let types: Vec<_> = events
        .iter()
        .map(|e| (e["type"].clone(), e["unsubscribeMethod"].clone()))
        .collect();
    assert_eq!(
        types,
        [
            (
                json!("EVENT_TYPE_UNSUBSCRIBE"),
                json!("UNSUBSCRIBE_METHOD_PAGE")
            ),
            (
                json!("EVENT_TYPE_RESUBSCRIBE"),
                json!("UNSUBSCRIBE_METHOD_UNDO")
            ),
        ],
        "{events:#?}"
    );
    // The browser's own user agent is on the event.
    let ua = cdp.eval("navigator.userAgent");
    assert_eq!(events[0]["client"]["userAgent"], ua);
}
