//! `openclick rewrite`: track an HTML email for one recipient, or for every row of a recipients
//! CSV (NDJSON on stdout, or one file per recipient). The template is parsed once; each
//! recipient costs only the signing and the copy (see `openclick_rewrite::Template`).

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use openclick_common::ids::{check_id, IdKind};
use openclick_rewrite::{Message, Skip, Template};
use openclick_token::{Channel, MAX_ID_LEN};

use crate::args::RewriteArgs;
use crate::serve::{load_keyring, DevWarning};

/// Runs the subcommand.
pub fn rewrite(args: RewriteArgs) -> Result<()> {
    check_id(IdKind::Tenant, &args.tenant).context("--tenant")?;
    check_id(IdKind::Campaign, &args.campaign).context("--campaign")?;
    let channel: Channel = args
        .channel
        .parse()
        .map_err(|e| anyhow::anyhow!("--channel: {e}"))?;
    let html = read_input(args.input.as_deref())?;
    let template = Template::compile(&html, &args.base_url).context("rewriting the HTML")?;
    // Counts only: a template's URLs are not personal, but a log line needs none of them.
    let summary = template.summary();
    if summary.skipped(Skip::Refused) > 0 {
        tracing::warn!(
            refused = summary.skipped(Skip::Refused),
            "links whose destination the token rules refuse are left untracked: \
             absolute http(s) URLs of visible ASCII, no user info, a host name or \
             dotted-decimal IPv4 (docs/token-v1.md)"
        );
    }
    tracing::info!(%summary, "template compiled");
    let (keys, _) = load_keyring(&args.keys, DevWarning::WhenCreated)?;
    let keyring = keys.keyring_for(&args.tenant).context(
        "no signing key for --tenant: the keys hold neither its own keys nor a global keyring",
    )?;
    let sent_at_ms = args.sent_at_ms.unwrap_or_else(openclick_common::now_ms);
    let check_recipient = |contact: &'_ str, message: &'_ str| -> Result<()> {
        check_id(IdKind::Contact, contact).context("contact")?;
        if message.is_empty() || message.len() > MAX_ID_LEN {
            bail!("message id must be 1..={MAX_ID_LEN} bytes");
        }
        Ok(())
    };
    let Some(recipients) = &args.recipients else {
        let (contact, msg) = (
            args.contact.as_deref().unwrap_or_default(),
            args.message.as_deref().unwrap_or_default(),
        );
        check_recipient(contact, msg).context("--contact / --message")?;
        let out = template.render(
            keyring,
            &Message {
                tenant_id: &args.tenant,
                campaign_id: &args.campaign,
                message_id: msg,
                contact_id: contact,
                channel,
                sent_at_ms,
            },
        )?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        return Ok(());
    };

    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(recipients)
        .with_context(|| format!("opening {}", recipients.display()))?;
    let headers = reader.headers().context("reading the CSV header")?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .with_context(|| format!("the recipients CSV has no `{name}` column"))
    };
    let (contact_col, message_col) = (column("contact")?, column("message")?);
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let started = Instant::now();
    let mut stdout = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut html_buf = String::with_capacity(html.len() * 2);
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    while reader.read_record(&mut record).context("reading the CSV")? {
        rows += 1;
        // Row numbers, never ids, in errors (contact ids are personal data).
        let row = rows + 1;
        let contact = record.get(contact_col).unwrap_or_default();
        let msg = record.get(message_col).unwrap_or_default();
        check_recipient(contact, msg).with_context(|| format!("recipients CSV line {row}"))?;
        html_buf.clear();
        template.render_into(
            keyring,
            &Message {
                tenant_id: &args.tenant,
                campaign_id: &args.campaign,
                message_id: msg,
                contact_id: contact,
                channel,
                sent_at_ms,
            },
            &mut html_buf,
        )?;
        match &args.out_dir {
            Some(dir) => {
                if !is_file_name(msg) {
                    bail!(
                        "recipients CSV line {row}: with --out-dir the message id must be \
                         [A-Za-z0-9._-] and not start with a dot"
                    );
                }
                let path = dir.join(format!("{msg}.html"));
                std::fs::write(&path, html_buf.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            None => {
                stdout.write_all(b"{\"contact\":")?;
                serde_json::to_writer(&mut stdout, contact)?;
                stdout.write_all(b",\"message\":")?;
                serde_json::to_writer(&mut stdout, msg)?;
                stdout.write_all(b",\"html\":")?;
                serde_json::to_writer(&mut stdout, html_buf.as_str())?;
                stdout.write_all(b"}\n")?;
            }
        }
    }
    stdout.flush()?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        recipients = rows,
        seconds = format!("{secs:.3}"),
        per_second = format!("{:.0}", rows as f64 / secs.max(1e-9)),
        "rewritten"
    );
    Ok(())
}

fn read_input(path: Option<&Path>) -> Result<String> {
    let mut bytes = Vec::new();
    match path {
        Some(p) => {
            bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        }
        None => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("reading standard input")?;
        }
    }
    String::from_utf8(bytes).context("the HTML must be UTF-8")
}

fn is_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
