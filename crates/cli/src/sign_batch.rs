//! `openclick sign --batch`: one signed URL per NDJSON line of claims, for a whole campaign in
//! one process (the keyring is read once; `sign open|click` pays a process start per URL).
//!
//! Input: one JSON object per line in the token vectors' claim form (docs/token-v1.md,
//! `crates/token/tests/vectors/token-v1.json`):
//!
//! ```json
//! {"kind":"click","tenant_id":"t1","campaign_id":"c1","message_id":"m1","contact_id":"x1",
//!  "channel":"email","issued_at_ms":1717000000000,"link_id":"l1","url":"https://shop.example/"}
//! ```
//!
//! `channel` defaults to `email`, `issued_at_ms` (a number or a decimal string) to now, and
//! `link_id`/`url` to empty (opens). Unknown fields are refused, so a misspelt claim is an error
//! rather than a silently different token. Blank lines are skipped. Output: `BASE/o/TOKEN.gif` or
//! `BASE/c/TOKEN`, one line per input line, in order. Ids follow the id rule
//! (`openclick_common::ids`): an id nobody could be opted out by is refused, as in `sign`.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use openclick_token::{KeyStore, TokenKind};

use openclick_sending::claims::{parse_line, tracked_url, TenantRule};

/// What a batch did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Lines signed.
    pub signed: u64,
    /// Lines refused (only with `keep_going`; otherwise the first one is the error).
    pub failed: u64,
}

/// Why a batch stopped.
#[derive(Debug)]
pub enum Stop {
    /// A line could not be signed (without `keep_going`): exit 65, EX_DATAERR.
    BadLine(anyhow::Error),
    /// Reading stdin or writing stdout failed: exit 74, EX_IOERR.
    Io(anyhow::Error),
}

/// Signs every line of `input`, writing one URL per line to `output`. `now` gives the issue
/// time of lines without one. Without `keep_going` the first bad line is the error (with its
/// line number); with it, a bad line writes an empty line and a message on stderr.
pub fn run(
    keyring: &KeyStore,
    base_url: &str,
    mut input: impl BufRead,
    output: impl Write,
    keep_going: bool,
    now: impl Fn() -> i64,
) -> Result<Report, Stop> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, output);
    let mut line = String::new();
    let mut report = Report::default();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = input.read_line(&mut line).context("reading stdin");
        if read.map_err(Stop::Io)? == 0 {
            break;
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        match sign_line(keyring, text, &now) {
            Ok((kind, token)) => writeln!(out, "{}", tracked_url(base_url, kind, &token)),
            Err(e) if keep_going => {
                report.failed += 1;
                eprintln!("line {number}: {e:#}");
                writeln!(out)
            }
            Err(e) => return Err(Stop::BadLine(e.context(format!("line {number}")))),
        }
        .context("writing stdout")
        .map_err(Stop::Io)?;
        report.signed += 1;
    }
    report.signed -= report.failed;
    out.flush().context("writing stdout").map_err(Stop::Io)?;
    Ok(report)
}

fn sign_line(
    keyring: &KeyStore,
    text: &str,
    now: &impl Fn() -> i64,
) -> Result<(TokenKind, String)> {
    let claims = parse_line(text, TenantRule::Required, now())?;
    Ok((claims.kind, keyring.sign(&claims)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclick_token::{Channel, Key};

    fn keyring() -> KeyStore {
        openclick_token::Keyring::new(Key::new("k1", &[7u8; 32]).unwrap(), Vec::new())
            .unwrap()
            .into()
    }

    fn batch(input: &str, keep_going: bool) -> (Result<Report, Stop>, String) {
        let mut out = Vec::new();
        let r = run(
            &keyring(),
            "https://t.example.com/",
            input.as_bytes(),
            &mut out,
            keep_going,
            || 1_700_000_000_000,
        );
        (r, String::from_utf8(out).unwrap())
    }

    const OPEN: &str =
        r#"{"kind":"open","tenant_id":"t","campaign_id":"c","message_id":"m","contact_id":"x"}"#;
    const CLICK: &str = r#"{"kind":"click","tenant_id":"t","campaign_id":"c","message_id":"m","contact_id":"x","link_id":"l1","url":"https://shop.example/a?b=1&c=2","issued_at_ms":"1700000000001"}"#;

    #[test]
    fn each_line_verifies_to_its_claims_in_order() {
        let (r, out) = batch(&format!("{OPEN}\n\n{CLICK}\r\n"), false);
        assert_eq!(
            r.unwrap(),
            Report {
                signed: 2,
                failed: 0
            }
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let open = lines[0]
            .strip_prefix("https://t.example.com/o/")
            .and_then(|t| t.strip_suffix(".gif"))
            .unwrap();
        let c = keyring().verify(open).unwrap().claims;
        assert_eq!(
            (c.kind, c.issued_at_ms),
            (TokenKind::Open, 1_700_000_000_000)
        );
        assert_eq!(c.channel, Channel::Email);
        let click = lines[1].strip_prefix("https://t.example.com/c/").unwrap();
        let c = keyring().verify(click).unwrap().claims;
        assert_eq!(c.url, "https://shop.example/a?b=1&c=2");
        assert_eq!(
            (c.link_id.as_str(), c.issued_at_ms),
            ("l1", 1_700_000_000_001)
        );
    }

    #[test]
    fn a_bad_line_stops_the_batch_with_its_number() {
        let bad = OPEN.replace("tenant_id", "tenant");
        let (r, _) = batch(&format!("{OPEN}\n{bad}\n{OPEN}\n"), false);
        let Err(Stop::BadLine(e)) = r else {
            panic!("not a bad line: {r:?}")
        };
        let e = format!("{e:#}");
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn keep_going_keeps_stdout_aligned_with_stdin() {
        let bad_url = CLICK.replace("https://shop.example/a?b=1&c=2", "javascript:alert(1)");
        let bad_id = OPEN.replace(r#""contact_id":"x""#, r#""contact_id":"""#);
        let (r, out) = batch(&format!("{OPEN}\n{bad_url}\n{bad_id}\n{CLICK}\n"), true);
        assert_eq!(
            r.unwrap(),
            Report {
                signed: 2,
                failed: 2
            }
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].ends_with(".gif") && lines[3].contains("/c/"));
        assert_eq!((lines[1], lines[2]), ("", ""));
    }
}
