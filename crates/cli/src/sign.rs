//! `openclick sign`: print a signed tracking URL (`--batch`: many, see [`crate::sign_batch`]),
//! or with `sign unsubscribe` an RFC 8058 one-click unsubscribe URL and its two headers.

use anyhow::{Context, Result};
use openclick_token::TokenKind;

use crate::args::{SignArgs, SignKind, SignUnsubscribe};
use crate::serve::{bad_config, load_keyring, DevWarning};

/// Prints the URL, or with `--batch` one URL per stdin line. Everything `sign open|click` is
/// given is a setting, so whatever it refuses (no kind, the keys, an id, the channel, a
/// destination the token rules refuse) is a configuration error (exit 64) and nothing is
/// printed; `--batch` refuses its keys the same way, then exits 65 for a bad line and 74 for
/// an I/O error (see [`crate::sign_batch`]).
pub fn sign(args: SignArgs) -> Result<()> {
    let Some(kind) = args.kind else {
        if !args.batch {
            return Err(bad_config(anyhow::anyhow!(
                "say what to sign: `sign open`, `sign click` or `sign --batch`"
            )));
        }
        let (keyring, _) = load_keyring(&args.keys, DevWarning::WhenCreated).map_err(bad_config)?;
        let stdin = std::io::stdin().lock();
        let stdout = std::io::stdout().lock();
        use crate::sign_batch::{run, Stop};
        let report = match run(
            &keyring,
            &args.base_url,
            stdin,
            stdout,
            args.keep_going,
            openclick_common::now_ms,
        ) {
            Ok(r) => r,
            Err(Stop::BadLine(e)) => {
                eprintln!("sign --batch: {e:#}");
                std::process::exit(65);
            }
            Err(Stop::Io(e)) => {
                eprintln!("sign --batch: {e:#}");
                std::process::exit(74);
            }
        };
        if report.failed > 0 {
            eprintln!(
                "sign --batch: {} of {} lines not signed",
                report.failed,
                report.failed + report.signed
            );
            std::process::exit(65);
        }
        return Ok(());
    };
    let (common, kind, link_id, url, honeypot) = match kind {
        SignKind::Open(c) => (c, TokenKind::Open, String::new(), String::new(), false),
        SignKind::Click {
            common,
            link_id,
            url,
            honeypot,
        } => (common, TokenKind::Click, link_id, url, honeypot),
        SignKind::Unsubscribe(u) => return sign_unsubscribe(u),
    };
    let (keyring, _) = load_keyring(&common.keys, DevWarning::WhenCreated).map_err(bad_config)?;
    let mut claims = openclick_sending::claims::checked_claims(
        kind,
        common.tenant,
        common.campaign,
        common.message,
        common.contact,
        Some(&common.channel),
        common.sent_at_ms.unwrap_or_else(openclick_common::now_ms),
        link_id,
        url,
    )
    .map_err(|e| bad_config(e.into()))?;
    claims.honeypot = honeypot;
    let token = keyring
        .sign(&claims)
        .context("signing")
        .map_err(bad_config)?;
    println!(
        "{}",
        openclick_sending::claims::tracked_url(&common.base_url, kind, &token)
    );
    Ok(())
}

/// The header RFC 8058 section 3.1 asks for next to `List-Unsubscribe`.
pub const LIST_UNSUBSCRIBE_POST: &str = "List-Unsubscribe-Post: List-Unsubscribe=One-Click";

/// `sign unsubscribe`: the URL on the first line, then the two headers (RFC 8058 section 3.1).
fn sign_unsubscribe(u: SignUnsubscribe) -> Result<()> {
    use openclick_common::ids::{check_id, IdKind};
    let check = |kind, v: &str| check_id(kind, v).map_err(|e| bad_config(anyhow::anyhow!("{e}")));
    check(IdKind::Tenant, &u.tenant)?;
    check(IdKind::Contact, &u.contact)?;
    if let Some(l) = &u.list {
        check(IdKind::List, l)?;
    }
    if !u.campaign.is_empty() {
        check(IdKind::Campaign, &u.campaign)?;
    }
    let channel: openclick_token::Channel = u
        .channel
        .parse()
        .map_err(|e: openclick_token::ParseChannelError| bad_config(e.into()))?;
    let base = u.base_url.trim_end_matches('/');
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(bad_config(anyhow::anyhow!(
            "--base-url must be an http(s) URL"
        )));
    }
    if !base.starts_with("https://") {
        eprintln!("sign unsubscribe: RFC 8058 requires an https URL in List-Unsubscribe; {base:?} is for testing only");
    }
    let (keyring, _) = load_keyring(&u.keys, DevWarning::WhenCreated).map_err(bad_config)?;
    let claims = openclick_token::Claims {
        kind: TokenKind::Unsubscribe,
        tenant_id: u.tenant,
        campaign_id: u.campaign,
        message_id: u.message,
        contact_id: u.contact,
        channel,
        issued_at_ms: u.sent_at_ms.unwrap_or_else(openclick_common::now_ms),
        link_id: String::new(),
        url: String::new(),
        honeypot: false,
        list_id: u.list.unwrap_or_default(),
        undo: false,
    };
    let token = keyring
        .sign(&claims)
        .context("signing")
        .map_err(bad_config)?;
    let url = openclick_sending::claims::tracked_url(base, TokenKind::Unsubscribe, &token);
    let text = format!("{url}\nList-Unsubscribe: <{url}>\n{LIST_UNSUBSCRIBE_POST}\n");
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        // A reader that took the first line (`| head -n 1`) and left is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing stdout"),
        _ => Ok(()),
    }
}
