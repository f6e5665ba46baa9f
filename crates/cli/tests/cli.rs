//! The `openclick` binary, black box: what each subcommand prints and how it exits, checked
//! against an independent truth.
//!
//! - `sign open|click`: the printed URL's token verifies under a keyring built from the same
//!   `--keys` (and not under another key), and carries exactly the claims given on the command
//!   line; the click destination is the `--url`. `sign click --honeypot` prints exactly the
//!   token vectors' honeypot click (and without it, the same click without the flag).
//! - `sign` exits 64 (`EX_USAGE`), printing nothing, for each bad setting: no kind, bad or
//!   missing keys (also with `--batch`), a refused id, channel or destination.
//! - `enrich --ua`: Gmail's documented image-proxy user agent is classified as the Gmail proxy.
//! - `check-config`: exit 0 with a good configuration; non-zero with a bad `--keys` or a bad
//!   `--kafka-property`.
//! - `OPENCLICK_*` variables (set on the child only): `check-config` reports the values they
//!   carry, and a `serve` configured by environment alone answers tokens signed by `sign`
//!   configured the same way.
//! - `tail --count N` against a running `serve`: exactly N events, the ones the test caused.
//! - `suppress add|import|check` against a running `serve --admin-token`: CSV with a quoted
//!   comma, NDJSON, and the edge's own view of each entry.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{openclick, run, serve_command, sign_click, sign_open, try_http, Server, KEYS};
use openclick_token::{Channel, Keyring, TokenKind};

/// `EX_USAGE` (sysexits.h).
const EX_USAGE: i32 = 64;

const GMAIL_PROXY_UA: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The token of a signed URL (`/o/TOKEN.gif` or `/c/TOKEN`).
fn token_of(url: &str) -> &str {
    let path = &url[url.find("://").unwrap() + 3..];
    let path = &path[path.find('/').unwrap()..];
    if let Some(t) = path.strip_prefix("/o/") {
        t.strip_suffix(".gif").unwrap()
    } else {
        path.strip_prefix("/c/").unwrap()
    }
}

#[test]
fn sign_prints_urls_whose_tokens_verify_under_the_same_keys_with_the_given_claims() {
    let keyring = Keyring::from_spec(KEYS).unwrap();
    // Another key with the same id: a token that verifies under it was not signed by KEYS.
    let other = Keyring::from_spec("k1:AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();

    let out = run(&[
        "sign",
        "open",
        "--tenant",
        "acme",
        "--campaign",
        "spring",
        "--message",
        "m-7",
        "--contact",
        "c-42",
        "--channel",
        "sms",
        "--sent-at-ms",
        "1700000000123",
        "--keys",
        KEYS,
        "--base-url",
        "https://t.example.com/",
    ]);
    assert!(out.status.success(), "{out:?}");
    let url = stdout(&out).trim().to_string();
    assert!(url.starts_with("https://t.example.com/o/"), "{url}");
    assert!(url.ends_with(".gif"), "{url}");
    let v = keyring.verify(token_of(&url)).unwrap();
    assert_eq!(v.key_id, "k1");
    let c = v.claims;
    assert_eq!(c.kind, TokenKind::Open);
    assert_eq!(
        (
            c.tenant_id.as_str(),
            c.campaign_id.as_str(),
            c.message_id.as_str(),
            c.contact_id.as_str()
        ),
        ("acme", "spring", "m-7", "c-42")
    );
    assert_eq!(c.channel, Channel::Sms);
    assert_eq!(c.issued_at_ms, 1_700_000_000_123);
    assert!(
        other.verify(token_of(&url)).is_err(),
        "verified under a foreign key"
    );

    let dest = "https://shop.example.com/sale?a=1&b=two%20words";
    let out = run(&[
        "sign",
        "click",
        "--tenant",
        "acme",
        "--campaign",
        "spring",
        "--message",
        "m-7",
        "--contact",
        "c-42",
        "--link-id",
        "hero",
        "--url",
        dest,
        "--keys",
        KEYS,
        "--base-url",
        "https://t.example.com",
    ]);
    assert!(out.status.success(), "{out:?}");
    let url = stdout(&out).trim().to_string();
    assert!(url.starts_with("https://t.example.com/c/"), "{url}");
    let c = keyring.verify(token_of(&url)).unwrap().claims;
    assert_eq!(c.kind, TokenKind::Click);
    assert_eq!((c.link_id.as_str(), c.url.as_str()), ("hero", dest));
    assert_eq!(c.channel, Channel::Email, "the default channel");
    assert!(other.verify(token_of(&url)).is_err());

    // A destination that is not an absolute http(s) URL is refused, as a bad setting.
    let out = run(&[
        "sign",
        "click",
        "--tenant",
        "acme",
        "--campaign",
        "s",
        "--message",
        "m",
        "--contact",
        "c",
        "--link-id",
        "l",
        "--url",
        "javascript:alert(1)",
        "--keys",
        KEYS,
    ]);
    assert_eq!(out.status.code(), Some(EX_USAGE), "{out:?}");
    assert!(stdout(&out).is_empty());
}

/// `sign click --honeypot` against the token vectors (docs/token-v1.md §2, click flags): the
/// claims of `click-email-honeypot` on the command line give exactly its token; without
/// `--honeypot`, exactly the token of `click-email` (the same click without the flag).
#[test]
fn sign_click_honeypot_gives_the_vector_token() {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../token/tests/vectors/token-v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let vector = |name: &str| {
        v["valid"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
            .clone()
    };
    let (trap, plain) = (vector("click-email-honeypot"), vector("click-email"));
    assert_eq!(trap["claims"]["honeypot"], true);
    let key_id = trap["key_id"].as_str().unwrap();
    let secret = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id)
        .unwrap()["secret"]
        .as_str()
        .unwrap();
    let keys = format!("{key_id}:{secret}");
    let c = &trap["claims"];
    let f = |k: &str| c[k].as_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let sign = |extra: &[&str]| {
        let mut args = vec![
            "sign",
            "click",
            "--tenant",
            f("tenant_id"),
            "--campaign",
            f("campaign_id"),
            "--message",
            f("message_id"),
            "--contact",
            f("contact_id"),
            "--channel",
            f("channel"),
            "--sent-at-ms",
            f("issued_at_ms"),
            "--link-id",
            f("link_id"),
            "--url",
            f("url"),
            "--keys",
            &keys,
            "--base-url",
            "https://t.example.com",
            "--data-dir",
            data.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(out.status.success(), "{out:?}");
        stdout(&out).trim().to_owned()
    };
    let url = sign(&["--honeypot"]);
    assert_eq!(
        url,
        format!(
            "https://t.example.com/c/{}",
            trap["token"].as_str().unwrap()
        )
    );
    let keyring = Keyring::from_spec(&keys).unwrap();
    assert!(keyring.verify(token_of(&url)).unwrap().claims.honeypot);
    let url = sign(&[]);
    assert_eq!(
        url,
        format!(
            "https://t.example.com/c/{}",
            plain["token"].as_str().unwrap()
        )
    );
    assert!(!keyring.verify(token_of(&url)).unwrap().claims.honeypot);
}

#[test]
fn sign_exits_64_on_a_bad_setting_and_prints_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let missing = data.path().join("missing-keys");
    let not_keys = data.path().join("not-keys");
    std::fs::write(&not_keys, "this is not a key\n").unwrap();
    let open = |extra: &[&str], keys: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["sign", "open", "--data-dir", d]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut ids = vec![
            ("--tenant", "acme"),
            ("--campaign", "spring"),
            ("--message", "m-1"),
            ("--contact", "c-1"),
        ];
        let mut extra = extra.to_vec();
        // A flag given in `extra` replaces the default one.
        ids.retain(|(k, _)| !extra.contains(k));
        for (k, v) in ids {
            a.extend([k.to_string(), v.to_string()]);
        }
        a.extend(extra.drain(..).map(str::to_string));
        a.extend(keys.iter().map(|s| s.to_string()));
        a
    };
    // (what, arguments, what stderr must name)
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "no kind and no --batch",
            vec!["sign".into(), "--keys".into(), KEYS.into()],
            "say what to sign",
        ),
        (
            "malformed --keys",
            open(&[], &["--keys", "k1:short"]),
            "--keys",
        ),
        (
            "missing --keys-file",
            open(&[], &["--keys-file", missing.to_str().unwrap()]),
            "missing-keys",
        ),
        (
            "malformed --keys-file",
            open(&[], &["--keys-file", not_keys.to_str().unwrap()]),
            "not-keys",
        ),
        (
            "unknown --channel",
            open(&["--channel", "fax"], &["--keys", KEYS]),
            "channel",
        ),
        (
            "empty --tenant",
            open(&["--tenant", ""], &["--keys", KEYS]),
            "tenant",
        ),
        (
            "a contact id with a control character",
            open(&["--contact", "c\u{1}"], &["--keys", KEYS]),
            "contact",
        ),
        (
            "--batch with malformed --keys",
            vec![
                "sign".into(),
                "--batch".into(),
                "--keys".into(),
                "k1:short".into(),
            ],
            "--keys",
        ),
    ];
    for (what, args, names) in &cases {
        let out = openclick().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EX_USAGE), "{what}: {stderr}");
        assert!(stdout(&out).is_empty(), "{what}: {out:?}");
        assert!(stderr.contains(names), "{what}: {names:?} not in {stderr}");
    }
    // The defaults alone sign: each case failed for its one bad value.
    let out = openclick()
        .args(open(&[], &["--keys", KEYS]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("/o/"), "{out:?}");
}

/// A small egress list in the shape of Apple's `egress-ip-ranges.csv` (generated; never
/// downloaded).
const EGRESS: &str = "172.224.226.0/27,GB,GB-EN,London,\n\
                      \n\
                      104.28.12.0/24,US,US-CA,Los Angeles,\n\
                      2a02:26f7:b3c0:4000::/64,DE,DE-BE,Berlin,\n";

fn enrich_json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

#[test]
fn enrich_shows_private_relay_machine_opens_and_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let egress = dir.path().join("egress-ip-ranges.csv");
    std::fs::write(&egress, EGRESS).unwrap();
    let egress = egress.to_str().unwrap();
    // The bare agent of Apple's proxy from a Private Relay egress prefix: certain.
    for ip in ["104.28.12.3", "2a02:26f7:b3c0:4000::9"] {
        let v = enrich_json(&[
            "enrich",
            "--ua",
            "Mozilla/5.0",
            "--ip",
            ip,
            "--apple-egress-ranges",
            egress,
        ]);
        assert_eq!(v["signals"]["machineOpen"], true, "{ip}: {v}");
        assert_eq!(v["signals"]["imageProxy"], "IMAGE_PROXY_APPLE", "{ip}: {v}");
        assert_eq!(v["client"]["emailClient"], "Apple Mail", "{ip}: {v}");
        assert_eq!(
            v["evidence"]["machineOpen"], "private_relay_egress",
            "{ip}: {v}"
        );
        assert_eq!(v["signals"]["verdict"], "VERDICT_MACHINE", "{ip}: {v}");
        assert_eq!(v["signals"]["certainty"], "CERTAINTY_CERTAIN", "{ip}: {v}");
    }
    // The same variable the deployment files would set.
    let out = openclick()
        .args(["enrich", "--ua", "Mozilla/5.0", "--ip", "172.224.226.1"])
        .env("OPENCLICK_APPLE_EGRESS_RANGES", egress)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["evidence"]["machineOpen"], "private_relay_egress", "{v}");
    // Without the list, the bare agent alone: a machine open, probable, not attributed.
    let v = enrich_json(&["enrich", "--ua", "Mozilla/5.0", "--ip", "104.28.12.3"]);
    assert_eq!(v["signals"]["machineOpen"], true, "{v}");
    assert_eq!(v["signals"]["imageProxy"], serde_json::Value::Null, "{v}");
    assert_eq!(v["evidence"]["machineOpen"], "bare_user_agent", "{v}");
    assert_eq!(v["signals"]["verdict"], "VERDICT_MACHINE", "{v}");
    assert_eq!(v["signals"]["certainty"], "CERTAINTY_PROBABLE", "{v}");
    // A click from Microsoft's published EOP range (shipped list, clicks only).
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let v = enrich_json(&["enrich", "--click", "--ua", chrome, "--ip", "40.92.1.1"]);
    assert_eq!(
        v["signals"]["botReasons"],
        serde_json::json!(["BOT_REASON_GATEWAY_MICROSOFT"]),
        "{v}"
    );
    assert_eq!(v["evidence"]["gateway"], "microsoft", "{v}");
    assert_eq!(v["signals"]["verdict"], "VERDICT_BOT", "{v}");
    assert_eq!(v["signals"]["certainty"], "CERTAINTY_CERTAIN", "{v}");
    let v = enrich_json(&["enrich", "--ua", chrome, "--ip", "40.92.1.1"]);
    assert_eq!(v["signals"]["botReasons"], serde_json::Value::Null, "{v}");
    // An operator's own gateway file, with the shipped list left out.
    let gw = dir.path().join("gateways.csv");
    std::fs::write(
        &gw,
        "198.51.100.0/24,Acme Link Guard,both,https://example.test\n",
    )
    .unwrap();
    let gw = gw.to_str().unwrap();
    let v = enrich_json(&[
        "enrich",
        "--click",
        "--ua",
        chrome,
        "--ip",
        "198.51.100.7",
        "--gateway-networks",
        gw,
    ]);
    assert_eq!(
        v["signals"]["botReasons"],
        serde_json::json!(["BOT_REASON_GATEWAY_OTHER"]),
        "{v}"
    );
    let v = enrich_json(&[
        "enrich",
        "--click",
        "--ua",
        chrome,
        "--ip",
        "40.92.1.1",
        "--gateway-networks",
        gw,
        "--no-default-gateways",
    ]);
    assert_eq!(v["signals"]["botReasons"], serde_json::Value::Null, "{v}");
}

#[test]
fn a_bad_network_file_is_a_usage_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_egress = dir.path().join("egress-ip-ranges.csv");
    std::fs::write(&bad_egress, format!("{EGRESS}<html>oops</html>\n")).unwrap();
    let bad_gateways = dir.path().join("gateways.csv");
    std::fs::write(
        &bad_gateways,
        "10.0.0.0/8,acme,both,x\n\n# comment\n\n10.0.0.0/33,acme,both,x\n",
    )
    .unwrap();
    for (flag, path, what) in [
        ("--apple-egress-ranges", &bad_egress, "Apple egress list"),
        ("--gateway-networks", &bad_gateways, "gateway networks file"),
    ] {
        let path = path.to_str().unwrap();
        let out = run(&["enrich", "--ua", "Mozilla/5.0", flag, path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EX_USAGE), "{flag}: {stderr}");
        assert!(stdout(&out).is_empty(), "{flag}: {out:?}");
        assert!(
            stderr.contains(what) && stderr.contains(path) && stderr.contains("line 5"),
            "{flag}: {stderr}"
        );
    }
    let out = run(&[
        "enrich",
        "--ua",
        "Mozilla/5.0",
        "--apple-egress-ranges",
        "/nonexistent/egress.csv",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(EX_USAGE), "{stderr}");
    assert!(stderr.contains("/nonexistent/egress.csv"), "{stderr}");
}

#[test]
fn enrich_classifies_the_gmail_image_proxy() {
    let out = run(&["enrich", "--ua", GMAIL_PROXY_UA]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    // Google documents this user agent as its image proxy (Gmail fetches images for the
    // recipient): the open is proxied, by Gmail, and not a bot's.
    assert_eq!(v["signals"]["imageProxy"], "IMAGE_PROXY_GMAIL", "{v}");
    assert_eq!(v["client"]["emailClient"], "Gmail", "{v}");
    assert_eq!(v["client"]["userAgent"], GMAIL_PROXY_UA, "{v}");
    assert_ne!(v["signals"]["suspectedBot"], true, "{v}");
    // One JSON line per stdin line too.
    let mut child = openclick()
        .args(["enrich"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{GMAIL_PROXY_UA}\ncurl/8.0\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["signals"]["imageProxy"], "IMAGE_PROXY_GMAIL");
    assert_eq!(lines[1]["signals"]["suspectedBot"], true, "curl is a bot");
}

#[test]
fn check_config_accepts_a_good_configuration_and_refuses_bad_keys_and_properties() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    let ok = run(&["check-config", "--keys", KEYS, "--data-dir", d]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(stdout(&ok).contains("configuration ok"), "{ok:?}");
    assert!(stdout(&ok).contains("signing k1"), "{ok:?}");
    // A valid property with real brokers named passes too.
    let ok = run(&[
        "check-config",
        "--keys",
        KEYS,
        "--data-dir",
        d,
        "--kafka-brokers",
        "127.0.0.1:9",
        "--kafka-property",
        "socket.keepalive.enable=true",
    ]);
    assert!(ok.status.success(), "{ok:?}");

    for bad_keys in [
        "nope",
        "k1:",
        "k1:short",
        ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    ] {
        let out = run(&["check-config", "--keys", bad_keys, "--data-dir", d]);
        assert!(
            !out.status.success(),
            "--keys {bad_keys:?} accepted: {out:?}"
        );
        assert!(!stdout(&out).contains("configuration ok"));
    }
    for bad_prop in ["linger.ms", "=1", "not a key=1"] {
        let out = run(&[
            "check-config",
            "--keys",
            KEYS,
            "--data-dir",
            d,
            "--kafka-property",
            bad_prop,
        ]);
        assert!(
            !out.status.success(),
            "--kafka-property {bad_prop:?}: {out:?}"
        );
    }
    // A missing suppression file is a configuration error.
    let out = run(&[
        "check-config",
        "--keys",
        KEYS,
        "--data-dir",
        d,
        "--suppression-file",
        data.path().join("missing.csv").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn openclick_environment_variables_configure_every_subcommand() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap();
    // check-config reports what the variables say.
    let out = openclick()
        .arg("check-config")
        .env("OPENCLICK_LISTEN", "127.0.0.1:4321")
        .env("OPENCLICK_ADMIN_LISTEN", "127.0.0.1:4322")
        .env(
            "OPENCLICK_KEYS",
            "k9:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        )
        .env("OPENCLICK_DATA_DIR", d)
        .env("OPENCLICK_TOPIC", "env-topic")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for want in [
        "listen:           127.0.0.1:4321",
        "admin listen:     127.0.0.1:4322",
        "topic:            env-topic",
        "signing k9",
    ] {
        assert!(text.contains(want), "no {want:?} in {text}");
    }
    let out = openclick()
        .arg("check-config")
        .env("OPENCLICK_KEYS", "garbage")
        .env("OPENCLICK_DATA_DIR", d)
        .output()
        .unwrap();
    assert!(!out.status.success(), "OPENCLICK_KEYS=garbage accepted");
    let out = openclick()
        .arg("check-config")
        .env("OPENCLICK_KEYS", KEYS)
        .env("OPENCLICK_DATA_DIR", d)
        .env("OPENCLICK_KAFKA_PROPERTIES", "linger.ms")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "bad OPENCLICK_KAFKA_PROPERTIES accepted"
    );

    // serve configured by the environment alone; sign by the environment alone. A click token
    // only redirects if both used the same keys (the default would be a development keyring
    // generated per data directory).
    let mut cmd = openclick();
    cmd.arg("serve")
        .env("OPENCLICK_LOG_JSON", "true")
        .env("OPENCLICK_LISTEN", "127.0.0.1:0")
        .env("OPENCLICK_ADMIN_LISTEN", "127.0.0.1:0")
        .env("OPENCLICK_KEYS", KEYS)
        .env("OPENCLICK_DATA_DIR", data.path().join("serve"))
        .env("OPENCLICK_MIN_DELAY_MS", "0");
    let server = Server::spawn(cmd);
    let out = openclick()
        .args(["sign", "click", "--tenant", "acme", "--campaign", "s"])
        .args(["--message", "m", "--contact", "env-c", "--link-id", "l"])
        .args(["--url", "https://dest.example.com/x"])
        .env("OPENCLICK_KEYS", KEYS)
        .env("OPENCLICK_BASE_URL", format!("http://{}", server.listen))
        .env("OPENCLICK_DATA_DIR", data.path().join("sign"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let url = stdout(&out).trim().to_string();
    assert!(
        url.starts_with(&format!("http://{}/c/", server.listen)),
        "{url}"
    );
    let (status, headers, _) =
        common::try_http_full(server.listen, "GET", &common::path_of(&url), &[]).unwrap();
    assert_eq!(status, 302);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "location" && v == "https://dest.example.com/x"));
    // And a token from another key is refused: the edge really verifies with OPENCLICK_KEYS.
    let other = openclick()
        .args(["sign", "click", "--tenant", "acme", "--campaign", "s"])
        .args(["--message", "m", "--contact", "env-c", "--link-id", "l"])
        .args(["--url", "https://dest.example.com/x"])
        .env("OPENCLICK_DATA_DIR", data.path().join("other"))
        .output()
        .unwrap();
    assert!(other.status.success(), "{other:?}");
    let path = common::path_of(stdout(&other).trim());
    assert_eq!(
        try_http(server.listen, "GET", &path, &[]).unwrap().0,
        404,
        "a development-key token redirected"
    );
    server.sigterm();
    server.wait();
}

#[test]
fn tail_count_prints_exactly_n_events_from_a_running_serve() {
    let data = tempfile::tempdir().unwrap();
    // The embedded broker, as `serve` starts it without --kafka-brokers.
    let server = Server::spawn(serve_command(data.path()));
    let bootstrap = server.info()["kafka_bootstrap_servers"]
        .as_str()
        .unwrap()
        .to_string();
    let contacts = ["tail-a", "tail-b", "tail-c", "tail-d"];
    for c in &contacts[..3] {
        let (status, _) = try_http(server.listen, "GET", &sign_open(c), &[]).unwrap();
        assert_eq!(status, 200);
    }
    let (status, _) = try_http(
        server.listen,
        "GET",
        &sign_click(contacts[3], "https://dest.example.com/"),
        &[],
    )
    .unwrap();
    assert_eq!(status, 302);

    let tail = |count: &str| {
        let out = run(&[
            "tail",
            "--brokers",
            &bootstrap,
            "--from-beginning",
            "--count",
            count,
            "--idle-timeout-secs",
            "30",
        ]);
        assert!(out.status.success(), "{out:?}");
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let all = tail("4");
    assert_eq!(all.len(), 4, "{all:#?}");
    let got: HashSet<&str> = all
        .iter()
        .map(|e| e["contactId"].as_str().unwrap())
        .collect();
    assert_eq!(got, contacts.iter().copied().collect());
    for e in &all {
        let want = if e["contactId"] == "tail-d" {
            "EVENT_TYPE_CLICK"
        } else {
            "EVENT_TYPE_OPEN"
        };
        assert_eq!(e["type"], want, "{e}");
        assert_eq!(e["tenantId"], "acme");
    }
    // --count stops early even though more events are there.
    assert_eq!(tail("2").len(), 2);
    server.sigterm();
    server.wait();
}

#[test]
fn suppress_add_and_import_csv_and_ndjson_reach_the_edge() {
    const TOKEN: &str = "cli-admin-token";
    let data = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(data.path());
    cmd.args(["--admin-token", TOKEN]);
    let server = Server::spawn(cmd);
    let admin = server.admin_url();
    let suppress = |args: &[&str]| {
        openclick()
            .args(["suppress", "--admin-url", &admin])
            .args(args)
            .env("OPENCLICK_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    // `check` asks the edge; exit status 0 suppressed, 1 not. Wait for propagation through
    // the suppression topic (the write answers once the broker has it).
    let check_until = |tenant: &str, contact: &str, want: bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = suppress(&["check", tenant, contact]);
            let code = out.status.code();
            assert!(matches!(code, Some(0) | Some(1)), "{out:?}");
            if (code == Some(0)) == want {
                return stdout(&out);
            }
            assert!(
                Instant::now() < deadline,
                "{tenant}/{contact}: want suppressed={want}: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    check_until("acme", "add-1", false);

    let out = suppress(&["add", "acme", "add-1", "--reason", "complaint"]);
    assert!(out.status.success(), "{out:?}");
    let body = check_until("acme", "add-1", true);
    assert!(body.contains("complaint"), "{body}");

    // Without the token, nothing is written.
    let out = openclick()
        .args(["suppress", "--admin-url", &admin, "add", "acme", "no-token"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");

    // CSV: a header, a comment, a quoted field holding a comma, a default reason.
    let csv = data.path().join("opt-outs.csv");
    std::fs::write(
        &csv,
        "tenant,contact,reason\n# comment\nacme,\"doe, jane\",bounce\nacme,csv-2\n",
    )
    .unwrap();
    let out = suppress(&["import", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("\"published\":2"), "{out:?}");
    assert!(check_until("acme", "doe, jane", true).contains("bounce"));
    assert!(check_until("acme", "csv-2", true).contains("opt_out"));
    // The quoted comma was not a field separator.
    check_until("acme", "\"doe", false);
    check_until("acme", "doe", false);

    // NDJSON: an add, and a removal of the first CSV entry, in batches of one.
    let nd = data.path().join("changes.ndjson");
    std::fs::write(
        &nd,
        concat!(
            r#"{"tenant":"acme","contact":"nd-1","reason":"restrict"}"#,
            "\n",
            r#"{"tenant":"acme","contact":"csv-2","action":"remove"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = suppress(&["import", nd.to_str().unwrap(), "--batch-size", "1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("\"published\":2"), "{out:?}");
    assert!(check_until("acme", "nd-1", true).contains("restrict"));
    check_until("acme", "csv-2", false);

    // A bad line is refused with its number before anything is sent.
    let bad = data.path().join("bad.csv");
    std::fs::write(&bad, "acme,ok-1\nac/me,bad\n").unwrap();
    let out = suppress(&["import", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{out:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    check_until("acme", "ok-1", false);

    // The edge acts on it: a suppressed contact's pixel is served but counted suppressed
    // (when the deferred-opens thread has processed it, within a few milliseconds).
    let (status, _) = try_http(server.listen, "GET", &sign_open("doe, jane"), &[]).unwrap();
    assert_eq!(status, 200);
    let counted = r#"openclick_hits_total{route="open",outcome="suppressed"} 1"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let (_, metrics) = try_http(server.admin, "GET", "/metrics", &[]).unwrap();
        let metrics = String::from_utf8(metrics).unwrap();
        if metrics.contains(counted) || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(metrics.contains(counted), "{metrics}");
    server.sigterm();
    server.wait();
}
