//! `openclick sign`: print a signed tracking URL (`--batch`: many, see [`crate::sign_batch`]).

use anyhow::{Context, Result};
use openclick_token::{Channel, Claims, TokenKind};

use crate::args::{SignArgs, SignKind};
use crate::serve::{load_keyring, DevWarning};

/// Prints the URL, or with `--batch` one URL per stdin line.
pub fn sign(args: SignArgs) -> Result<()> {
    let Some(kind) = args.kind else {
        if !args.batch {
            anyhow::bail!("say what to sign: `sign open`, `sign click` or `sign --batch`");
        }
        let (keyring, _) = load_keyring(&args.keys, DevWarning::WhenCreated)?;
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
    let (common, kind, link_id, url) = match kind {
        SignKind::Open(c) => (c, TokenKind::Open, String::new(), String::new()),
        SignKind::Click {
            common,
            link_id,
            url,
        } => (common, TokenKind::Click, link_id, url),
    };
    use openclick_common::ids::{check_id, IdKind};
    // Refuse an id nobody could be opted out by (the edge would never track it either).
    check_id(IdKind::Tenant, &common.tenant).context("--tenant")?;
    check_id(IdKind::Contact, &common.contact).context("--contact")?;
    check_id(IdKind::Campaign, &common.campaign).context("--campaign")?;
    let (keyring, _) = load_keyring(&common.keys, DevWarning::WhenCreated)?;
    let channel: Channel = common
        .channel
        .parse()
        .map_err(|e| anyhow::anyhow!("--channel: {e}"))?;
    let claims = Claims {
        kind,
        tenant_id: common.tenant,
        campaign_id: common.campaign,
        message_id: common.message,
        contact_id: common.contact,
        channel,
        issued_at_ms: common.sent_at_ms.unwrap_or_else(openclick_common::now_ms),
        link_id,
        url,
    };
    let token = keyring.sign(&claims).context("signing")?;
    let base = common.base_url.trim_end_matches('/');
    match kind {
        TokenKind::Open => println!("{base}/o/{token}.gif"),
        TokenKind::Click => println!("{base}/c/{token}"),
    }
    Ok(())
}
