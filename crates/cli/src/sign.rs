//! `openclick sign`: print a signed tracking URL (`--batch`: many, see [`crate::sign_batch`]).

use anyhow::{Context, Result};
use openclick_token::TokenKind;

use crate::args::{SignArgs, SignKind};
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
