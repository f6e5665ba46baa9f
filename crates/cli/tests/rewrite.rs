//! `openclick rewrite`, black box: the tracked HTML it prints (one recipient from stdin, a
//! recipients CSV as NDJSON, `--out-dir` files) carries click tokens that verify under the same
//! `--keys` with the recipient's ids and the destinations written in the test by hand; link
//! ids are equal across recipients.
//!
//! Exit statuses (sysexits.h): every bad setting (keys, ids, channel, base URL, input,
//! template, recipients file and header, out dir) exits 64 (`EX_USAGE`) with nothing written
//! and no out dir created; a failure while rewriting (a malformed or refused recipients row,
//! a message id that is no file name, a full output device) exits 1, after the rows before it.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use common::{openclick, KEYS};
use openclick_token::{Claims, Keyring, TokenKind};

const BASE: &str = "https://t.example.com";

const HTML: &str = "<html><body>\n\
<a href=\"https://shop.example.com/?a=1&amp;b=2#x\">Shop</a>\n\
<a href='mailto:hi@example.com'>Mail</a>\n\
<!--[if mso]><v:roundrect href=\"https://shop.example.com/cta\" data-link-id=\"cta\"></v:roundrect><![endif]-->\n\
</body></html>\n";

/// `EX_USAGE` (sysexits.h).
const EX_USAGE: i32 = 64;

/// The flags every run here starts from; a case that changes one of them passes its own list.
const DEFAULTS: &[&str] = &[
    "--tenant",
    "acme",
    "--campaign",
    "autumn",
    "--keys",
    KEYS,
    "--base-url",
    BASE,
    "--sent-at-ms",
    "1790000000000",
];

fn rewrite(extra: &[&str], stdin: &str) -> Output {
    rewrite_raw(&[DEFAULTS, extra].concat(), stdin.as_bytes())
}

/// `openclick rewrite ARGS` with `stdin` on its standard input.
fn rewrite_raw(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = openclick()
        .arg("rewrite")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // A refused setting may exit before reading stdin: a broken pipe here is not an error.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// A flag and its value.
type Flag<'a> = (&'a str, &'a str);

/// [`DEFAULTS`] with each `(flag, value)` of `set` in place of that flag's value (or added);
/// `--keys-file` drops `--keys`.
fn args_with(set: &[Flag<'_>]) -> Vec<String> {
    let mut args: Vec<String> = DEFAULTS.iter().map(|s| s.to_string()).collect();
    for (flag, value) in set {
        if *flag == "--keys-file" {
            let i = args.iter().position(|a| a == "--keys").unwrap();
            args.drain(i..i + 2);
        }
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
    }
    args
}

/// The click claims of `html` in order, and its open claims, verified with [`KEYS`].
fn tokens(html: &str) -> (Vec<Claims>, Claims) {
    let keyring = Keyring::from_spec(KEYS).unwrap();
    let token_at = |s: &str| -> String {
        s.bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            .map(char::from)
            .collect()
    };
    let clicks = html
        .split(&format!("{BASE}/c/"))
        .skip(1)
        .map(|s| keyring.verify(&token_at(s)).unwrap().claims)
        .collect::<Vec<_>>();
    let opens = html
        .split(&format!("{BASE}/o/"))
        .skip(1)
        .collect::<Vec<_>>();
    assert_eq!(opens.len(), 1, "one pixel");
    let open = keyring.verify(&token_at(opens[0])).unwrap().claims;
    assert_eq!(open.kind, TokenKind::Open);
    (clicks, open)
}

fn check(html: &str, contact: &str, message: &str) -> Vec<String> {
    let (clicks, open) = tokens(html);
    let dests: Vec<(&str, &str)> = clicks
        .iter()
        .map(|c| (c.link_id.as_str(), c.url.as_str()))
        .collect();
    assert_eq!(
        dests,
        [
            ("l1", "https://shop.example.com/?a=1&b=2#x"),
            ("cta", "https://shop.example.com/cta"),
        ]
    );
    for c in clicks.iter().chain([&open]) {
        assert_eq!(
            (
                c.tenant_id.as_str(),
                c.campaign_id.as_str(),
                c.contact_id.as_str(),
                c.message_id.as_str(),
                c.issued_at_ms
            ),
            ("acme", "autumn", contact, message, 1_790_000_000_000)
        );
    }
    assert!(html.contains("<a href='mailto:hi@example.com'>Mail</a>"));
    assert!(!html.contains("data-link-id"));
    assert!(html.contains(".gif\" width=\"1\" height=\"1\""));
    assert!(html.ends_with("padding:0\"></body></html>\n"), "{html}");
    clicks.into_iter().map(|c| c.link_id).collect()
}

#[test]
fn one_recipient_from_stdin() {
    let out = rewrite(&["--contact", "c-1", "--message", "m-1"], HTML);
    assert!(out.status.success(), "{out:?}");
    check(&String::from_utf8(out.stdout).unwrap(), "c-1", "m-1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 links, 2 tracked"), "{stderr}");
    assert!(
        !stderr.contains("shop.example.com"),
        "no URL in logs: {stderr}"
    );
}

#[test]
fn recipients_csv_to_ndjson_and_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    std::fs::write(
        &csv,
        "name,contact,message\n\"Doe, Jane\",c-1,m-1\nBob,c-2,m-2\n,c-3,m-3\n",
    )
    .unwrap();
    let html_file = dir.path().join("t.html");
    std::fs::write(&html_file, HTML).unwrap();
    let out = rewrite(
        &[
            "--recipients",
            csv.to_str().unwrap(),
            "--input",
            html_file.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let mut ids = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let (contact, message) = (format!("c-{}", i + 1), format!("m-{}", i + 1));
        assert_eq!(l["contact"], contact.as_str());
        assert_eq!(l["message"], message.as_str());
        ids.push(check(l["html"].as_str().unwrap(), &contact, &message));
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]));

    let out_dir = dir.path().join("out");
    let out = rewrite(
        &[
            "--recipients",
            csv.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
        HTML,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    for i in 1..=3 {
        let html = std::fs::read_to_string(out_dir.join(format!("m-{i}.html"))).unwrap();
        check(&html, &format!("c-{i}"), &format!("m-{i}"));
    }
}

#[test]
fn bad_settings_exit_64_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // A path in the directory, with a file of `body` there unless it is empty.
    let file = |name: &str, body: &[u8]| {
        let path = dir.path().join(name);
        if !body.is_empty() {
            std::fs::write(&path, body).unwrap();
        }
        path.to_str().unwrap().to_string()
    };
    let good_csv = file("good.csv", b"contact,message\nc-1,m-1\n");
    let no_message_csv = file("no-message.csv", b"contact,msg\nc-1,m-1\n");
    let latin1_header_csv = file("latin1-header.csv", b"contact,m\xe9ssage\nc-1,m-1\n");
    let missing_csv = file("missing.csv", b"");
    let not_keys = file("not-keys", b"this is not a key\n");
    let missing_keys = file("missing-keys", b"");
    let template = file("template.html", HTML.as_bytes());
    let latin1_html = file(
        "latin1.html",
        b"<body>caf\xe9 <a href=\"https://e.com/\">x</a></body>",
    );
    let bad_link_id = file(
        "bad-link-id.html",
        b"<a data-link-id=\"\" href=\"https://e.com/\">x</a>",
    );
    let missing_html = file("missing.html", b"");
    let a_file = file("a-file", b"x");
    let under_a_file = format!("{a_file}/sub");
    let not_created = file("not-created", b"");
    let (contact, message) = (("--contact", "c-1"), ("--message", "m-1"));
    // (what, flags in place of the defaults', what stderr must name)
    let cases: &[(&str, &[Flag<'_>], &str)] = &[
        (
            "malformed --keys",
            &[("--keys", "k1:short"), contact, message],
            "--keys",
        ),
        (
            "missing --keys-file",
            &[("--keys-file", &missing_keys), contact, message],
            "missing-keys",
        ),
        (
            "malformed --keys-file",
            &[("--keys-file", &not_keys), contact, message],
            "not-keys",
        ),
        (
            "unknown --channel",
            &[("--channel", "fax"), contact, message],
            "--channel",
        ),
        (
            "ftp --base-url",
            &[("--base-url", "ftp://t.example.com"), contact, message],
            "--base-url",
        ),
        (
            "--base-url with a query",
            &[("--base-url", "https://t.example.com/?a"), contact, message],
            "--base-url",
        ),
        (
            "empty --tenant",
            &[("--tenant", ""), contact, message],
            "--tenant",
        ),
        (
            "empty --contact",
            &[("--contact", ""), message],
            "--contact",
        ),
        (
            "missing --input",
            &[("--input", &missing_html), contact, message],
            "missing.html",
        ),
        (
            "template not UTF-8",
            &[("--input", &latin1_html), contact, message],
            "UTF-8",
        ),
        (
            "empty data-link-id",
            &[("--input", &bad_link_id), contact, message],
            "data-link-id",
        ),
        (
            "missing --recipients",
            &[("--recipients", &missing_csv)],
            "missing.csv",
        ),
        (
            "CSV without a message column",
            &[("--recipients", &no_message_csv)],
            "no `message` column",
        ),
        (
            "CSV header not UTF-8",
            &[("--recipients", &latin1_header_csv)],
            "latin1-header.csv",
        ),
        (
            "--out-dir under a file",
            &[("--recipients", &good_csv), ("--out-dir", &under_a_file)],
            "--out-dir",
        ),
        (
            "unknown --channel, with an --out-dir to create",
            &[
                ("--channel", "fax"),
                ("--recipients", &good_csv),
                ("--out-dir", &not_created),
            ],
            "--channel",
        ),
        (
            "malformed --keys, with an --out-dir to create",
            &[
                ("--keys", "k1:short"),
                ("--recipients", &good_csv),
                ("--out-dir", &not_created),
            ],
            "--keys",
        ),
    ];
    for (what, set, names) in cases {
        let args = args_with(set);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rewrite_raw(&args, HTML.as_bytes());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(EX_USAGE), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: wrote {:?}", out.stdout);
        assert!(stderr.contains("bad configuration"), "{what}: {stderr}");
        assert!(stderr.contains(names), "{what}: {names:?} not in {stderr}");
        assert!(
            !Path::new(&not_created).exists(),
            "{what}: created the --out-dir"
        );
    }
    // Good values in the same places succeed: each case failed for its one bad value.
    for set in [
        &[("--input", template.as_str()), contact, message][..],
        &[("--recipients", &good_csv), ("--out-dir", &not_created)],
    ] {
        let args = args_with(set);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rewrite_raw(&args, HTML.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{set:?}: {out:?}");
    }
    assert!(Path::new(&not_created).join("m-1.html").is_file());
}

#[test]
fn failures_while_rewriting_exit_1_after_the_rows_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let csv = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_string()
    };
    // (what, CSV, what stderr must name): row 1 is good, the row on line 3 is not.
    let cases = [
        (
            "a row with a missing field",
            csv("short-row.csv", "contact,message\nc-1,m-1\nc-2\nc-3,m-3\n"),
            "line: 3",
        ),
        (
            "a row with an empty contact",
            csv(
                "empty-contact.csv",
                "contact,message\nc-1,m-1\n,m-2\nc-3,m-3\n",
            ),
            "recipients CSV line 3",
        ),
    ];
    for (what, path, names) in &cases {
        let out = rewrite(&["--recipients", path], HTML);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(!stderr.contains("bad configuration"), "{what}: {stderr}");
        assert!(stderr.contains(names), "{what}: {names:?} not in {stderr}");
        // Row 1 was written, and only it.
        let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{what}");
        check(lines[0]["html"].as_str().unwrap(), "c-1", "m-1");
    }

    // With --out-dir, a message id that is not a file name: row 1's file is written.
    let path = csv("bad-name.csv", "contact,message\nc-1,m-1\nc-2,../m-2\n");
    let out_dir = dir.path().join("out");
    let out = rewrite(
        &[
            "--recipients",
            &path,
            "--out-dir",
            out_dir.to_str().unwrap(),
        ],
        HTML,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("recipients CSV line 3"), "{stderr}");
    check(
        &std::fs::read_to_string(out_dir.join("m-1.html")).unwrap(),
        "c-1",
        "m-1",
    );
    assert!(!dir.path().join("m-2.html").exists());

    // Writing the output fails (a full device): 1, one recipient or many.
    let good = csv("good.csv", "contact,message\nc-1,m-1\n");
    for extra in [
        &["--contact", "c-1", "--message", "m-1"][..],
        &["--recipients", &good],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut child = openclick()
            .arg("rewrite")
            .args(DEFAULTS)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(full)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(HTML.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(!stderr.contains("bad configuration"), "{extra:?}: {stderr}");
        assert!(stderr.contains("No space left"), "{extra:?}: {stderr}");
    }
}

#[test]
fn honeypot_marker_signs_the_flag_and_an_untracked_one_exits_64() {
    let html = "<body><a href=\"https://shop.example.com/a\">A</a>\n\
                <a href=\"https://shop.example.com/trap\" data-honeypot tabindex=\"-1\">&#8203;</a></body>\n";
    let out = rewrite(&["--contact", "c-1", "--message", "m-1"], html);
    assert!(out.status.success(), "{out:?}");
    let tracked = String::from_utf8(out.stdout).unwrap();
    let (clicks, _) = tokens(&tracked);
    let got: Vec<(&str, &str, bool)> = clicks
        .iter()
        .map(|c| (c.link_id.as_str(), c.url.as_str(), c.honeypot))
        .collect();
    assert_eq!(
        got,
        [
            ("l1", "https://shop.example.com/a", false),
            ("l2", "https://shop.example.com/trap", true),
        ]
    );
    assert!(!tracked.contains("data-honeypot"), "{tracked}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 links, 2 tracked (1 honeypot)"),
        "{stderr}"
    );

    let out = rewrite(
        &["--contact", "c-1", "--message", "m-1"],
        "<a href='mailto:hi@example.com' data-honeypot>x</a>",
    );
    assert_eq!(out.status.code(), Some(EX_USAGE), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data-honeypot"), "{stderr}");
}
