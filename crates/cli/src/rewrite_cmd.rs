//! `openclick rewrite`: track an HTML email for one recipient, or for every row of a recipients
//! CSV (NDJSON on stdout, or one file per recipient). The template is parsed once; each
//! recipient costs only the signing and the copy (see `openclick_rewrite::Template`).

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use openclick_common::ids::{check_id, IdKind};
use openclick_rewrite::{Message, RewriteError, Skip, Template};
use openclick_token::Channel;

use crate::args::RewriteArgs;
use crate::serve::{bad_config, load_keyring, DevWarning};

/// Runs the subcommand. Every setting is checked before the first recipient is rewritten, and
/// a bad one is a configuration error (exit 64, nothing written): the ids, `--channel`,
/// `--base-url`, the keys, `--input` and the template, the `--recipients` file and its header,
/// `--out-dir`. After that, a recipient row that cannot be read or signed, and reading standard
/// input or writing the output, are failures while running (exit 1).
pub fn rewrite(args: RewriteArgs) -> Result<()> {
    let channel = check_settings(&args).map_err(bad_config)?;
    let (keys, _) = load_keyring(&args.keys, DevWarning::WhenCreated).map_err(bad_config)?;
    let keyring = keys
        .keyring_for(&args.tenant)
        .context(
            "no signing key for --tenant: the keys hold neither its own keys nor a global keyring",
        )
        .map_err(bad_config)?;
    let recipients = match &args.recipients {
        Some(path) => Some(open_recipients(path).map_err(bad_config)?),
        None => None,
    };
    let html = read_input(args.input.as_deref())?;
    let template = match Template::compile(&html, &args.base_url) {
        Ok(t) => t,
        Err(e @ RewriteError::Internal(_)) => {
            return Err(anyhow::Error::new(e).context("rewriting the HTML"))
        }
        Err(e @ RewriteError::BaseUrl(_)) => {
            return Err(bad_config(anyhow::Error::new(e).context("--base-url")))
        }
        Err(e) => return Err(bad_config(anyhow::Error::new(e).context("the template"))),
    };
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
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating --out-dir {}", dir.display()))
            .map_err(bad_config)?;
    }
    let sent_at_ms = args.sent_at_ms.unwrap_or_else(openclick_common::now_ms);

    let Some(Recipients {
        mut reader,
        contact_col,
        message_col,
    }) = recipients
    else {
        let (contact, msg) = (
            args.contact.as_deref().unwrap_or_default(),
            args.message.as_deref().unwrap_or_default(),
        );
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

/// The settings checked without reading a file: the ids and the channel (returned).
fn check_settings(args: &RewriteArgs) -> Result<Channel> {
    check_id(IdKind::Tenant, &args.tenant).context("--tenant")?;
    check_id(IdKind::Campaign, &args.campaign).context("--campaign")?;
    let channel: Channel = args
        .channel
        .parse()
        .map_err(|e| anyhow::anyhow!("--channel: {e}"))?;
    if args.recipients.is_none() {
        check_recipient(
            args.contact.as_deref().unwrap_or_default(),
            args.message.as_deref().unwrap_or_default(),
        )
        .context("--contact / --message")?;
    }
    Ok(channel)
}

/// A contact id follows the id rule; a message id is 1..=255 bytes
/// (`openclick_sending::claims::check_recipient`, as the sending API checks).
fn check_recipient(contact: &str, message: &str) -> Result<()> {
    Ok(openclick_sending::claims::check_recipient(
        contact, message,
    )?)
}

/// The recipients CSV, open, its header read.
struct Recipients {
    reader: csv::Reader<std::fs::File>,
    contact_col: usize,
    message_col: usize,
}

/// Opens `--recipients` and finds its `contact` and `message` columns.
fn open_recipients(path: &Path) -> Result<Recipients> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening --recipients {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("reading the header of --recipients {}", path.display()))?;
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .with_context(|| format!("the recipients CSV has no `{name}` column"))
    };
    let (contact_col, message_col) = (column("contact")?, column("message")?);
    Ok(Recipients {
        reader,
        contact_col,
        message_col,
    })
}

/// The template: `--input` (a file that cannot be read, or that is not UTF-8, is a
/// configuration error) or standard input (a read error is not; bytes that are not UTF-8
/// are).
fn read_input(path: Option<&Path>) -> Result<String> {
    let bytes = match path {
        Some(p) => std::fs::read(p)
            .with_context(|| format!("reading --input {}", p.display()))
            .map_err(bad_config)?,
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("reading standard input")?;
            bytes
        }
    };
    String::from_utf8(bytes)
        .context("the HTML must be UTF-8")
        .map_err(bad_config)
}

fn is_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
