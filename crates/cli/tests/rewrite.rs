//! `openclick rewrite`, black box: the tracked HTML it prints (one recipient from stdin, a
//! recipients CSV as NDJSON, `--out-dir` files) carries click tokens that verify under the same
//! `--keys` with the recipient's ids and the destinations written in the test by hand; link
//! ids are equal across recipients; a CSV without a `message` column is refused.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::{openclick, KEYS};
use openclick_token::{Claims, Keyring, TokenKind};

const BASE: &str = "https://t.example.com";

const HTML: &str = "<html><body>\n\
<a href=\"https://shop.example.com/?a=1&amp;b=2#x\">Shop</a>\n\
<a href='mailto:hi@example.com'>Mail</a>\n\
<!--[if mso]><v:roundrect href=\"https://shop.example.com/cta\" data-link-id=\"cta\"></v:roundrect><![endif]-->\n\
</body></html>\n";

fn rewrite(extra: &[&str], stdin: &str) -> Output {
    let mut child = openclick()
        .args([
            "rewrite",
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
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
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
fn a_csv_without_a_message_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    std::fs::write(&csv, "contact,msg\nc-1,m-1\n").unwrap();
    let out = rewrite(&["--recipients", csv.to_str().unwrap()], HTML);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no `message` column"), "{stderr}");
}
