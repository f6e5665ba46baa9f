//! Suppression wiring for `serve`, and `openclick suppress add|remove|check|import`.
//!
//! The subcommand is a thin client of a running edge's admin API (`/v1/suppressions/...`): it
//! speaks plain HTTP/1.1 over a TCP socket (the admin listener is meant for a private address;
//! no TLS client is pulled in for it), with the bearer token from `--admin-token` /
//! `OPENCLICK_ADMIN_TOKEN`.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use openclick_edge::suppress_api::SuppressApi;
use openclick_suppress::sync::{ensure_topics, Follower, SyncConfig, Writer};
use openclick_suppress::SuppressionSet;

use crate::args::ServeArgs;

/// Starts the topic follower and the writer for `serve`, and builds the admin API on them.
pub async fn start_sync(
    args: &ServeArgs,
    brokers: &str,
    embedded: bool,
    set: &Arc<SuppressionSet>,
) -> Result<(Option<Follower>, SuppressApi)> {
    let token = args.admin_token.as_deref().filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!(
            "no --admin-token / OPENCLICK_ADMIN_TOKEN: the suppression admin API refuses requests"
        );
    }
    if args.no_suppression_sync {
        tracing::warn!("--no-suppression-sync: the suppression topic is not followed");
        return Ok((None, SuppressApi::new(token, set.clone(), None)));
    }
    let mut extra = Vec::new();
    for p in &args.kafka_properties {
        if let Some((k, v)) = p.split_once('=') {
            extra.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let config = SyncConfig {
        brokers: brokers.to_string(),
        topic: args.suppressions_topic.clone(),
        erasure_topic: args.erasures_topic.clone(),
        extra,
        ..SyncConfig::default()
    };
    if !embedded {
        // Best effort: a cluster that forbids creating topics leaves them to the operator.
        if let Err(e) = ensure_topics(&config, -1, -1).await {
            tracing::warn!(error = %e, "could not create the suppression topics (create them compacted by hand)");
        }
    }
    let follower = Follower::start(&config, set.clone()).context("suppression topic follower")?;
    let writer = Writer::new(&config).context("suppression topic writer")?;
    tracing::info!(
        topic = %config.topic,
        erasures = %config.erasure_topic,
        "following the suppression topic; /readyz waits until it has caught up"
    );
    Ok((
        Some(follower),
        SuppressApi::new(token, set.clone(), Some(Arc::new(writer))),
    ))
}

/// `openclick suppress`.
#[derive(Debug, Clone, Args)]
pub struct SuppressArgs {
    /// The edge's admin listener.
    #[arg(
        long,
        env = "OPENCLICK_ADMIN_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub admin_url: String,
    /// Bearer token of the admin API.
    #[arg(long, env = "OPENCLICK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub action: SuppressAction,
}

/// Which entry: a contact, a whole tenant (no contact), or a campaign (`--campaign`).
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Tenant id.
    pub tenant: String,
    /// Contact id (omit for the whole tenant or a campaign).
    pub contact: Option<String>,
    /// Campaign id: the entry covers this campaign of the tenant.
    #[arg(long, conflicts_with = "contact")]
    pub campaign: Option<String>,
}

/// `openclick suppress` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum SuppressAction {
    /// Suppress (answers once the broker acknowledged).
    Add {
        /// Which entry.
        #[command(flatten)]
        target: Target,
        /// opt_out | restrict | erase | complaint | bounce | manual.
        #[arg(long, default_value = "opt_out")]
        reason: String,
    },
    /// Lift a suppression.
    Remove {
        /// Which entry.
        #[command(flatten)]
        target: Target,
    },
    /// Whether an entry is suppressed on that edge (exit status 0 yes, 1 no).
    Check {
        /// Which entry.
        #[command(flatten)]
        target: Target,
    },
    /// Import a CSV (`tenant,contact[,reason]`) or NDJSON file (batch API lines) in batches.
    Import {
        /// The file (`-` for stdin).
        file: PathBuf,
        /// Changes per request.
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
    },
}

/// Runs `openclick suppress`.
pub fn suppress(args: SuppressArgs) -> Result<()> {
    let client = Client::new(&args.admin_url, args.admin_token.as_deref())?;
    match args.action {
        SuppressAction::Add { target, reason } => {
            let path = format!("{}?reason={}", target_path(&target), pct(&reason));
            let r = client.request("PUT", &path, None)?;
            finish(r)
        }
        SuppressAction::Remove { target } => {
            finish(client.request("DELETE", &target_path(&target), None)?)
        }
        SuppressAction::Check { target } => {
            let r = client.request("GET", &target_path(&target), None)?;
            println!("{}", r.body.trim_end());
            match r.status {
                200 => Ok(()),
                404 => std::process::exit(1),
                s => bail!("HTTP {s}"),
            }
        }
        SuppressAction::Import { file, batch_size } => import(&client, &file, batch_size.max(1)),
    }
}

fn finish(r: Reply) -> Result<()> {
    println!("{}", r.body.trim_end());
    if r.status == 200 {
        Ok(())
    } else {
        bail!("HTTP {}", r.status)
    }
}

fn target_path(t: &Target) -> String {
    match (&t.contact, &t.campaign) {
        (Some(c), _) => format!("/v1/suppressions/{}/{}", pct(&t.tenant), pct(c)),
        (None, Some(c)) => format!("/v1/suppressions/{}?campaign={}", pct(&t.tenant), pct(c)),
        (None, None) => format!("/v1/suppressions/{}", pct(&t.tenant)),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn import(client: &Client, file: &PathBuf, batch_size: usize) -> Result<()> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        ))
    };
    let mut batch = String::new();
    let mut in_batch = 0usize;
    let mut total = 0usize;
    let send = |batch: &mut String, n: &mut usize, total: &mut usize| -> Result<()> {
        if *n == 0 {
            return Ok(());
        }
        let r = client.request("POST", "/v1/suppressions/batch", Some(batch.as_bytes()))?;
        if r.status != 200 {
            bail!(
                "batch ending at change {}: HTTP {}: {}",
                *total + *n,
                r.status,
                r.body.trim_end()
            );
        }
        *total += *n;
        eprintln!("imported {total}");
        batch.clear();
        *n = 0;
        Ok(())
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.context("reading the import file")?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("tenant,")) {
            continue;
        }
        if line.starts_with('{') {
            batch.push_str(line);
        } else {
            let mut f = line.splitn(3, ',').map(str::trim);
            let (Some(t), Some(c)) = (f.next(), f.next()) else {
                bail!("line {}: expected tenant,contact[,reason]", i + 1);
            };
            let reason = f.next().filter(|r| !r.is_empty()).unwrap_or("opt_out");
            batch.push_str(
                &serde_json::json!({"tenant": t, "contact": c, "reason": reason}).to_string(),
            );
        }
        batch.push('\n');
        in_batch += 1;
        if in_batch == batch_size {
            send(&mut batch, &mut in_batch, &mut total)?;
        }
    }
    send(&mut batch, &mut in_batch, &mut total)?;
    println!("{{\"published\":{total}}}");
    Ok(())
}

struct Client {
    host_port: String,
    token: Option<String>,
}

struct Reply {
    status: u16,
    body: String,
}

impl Client {
    fn new(url: &str, token: Option<&str>) -> Result<Client> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--admin-url {url:?}: only http:// is supported (the admin listener is private)");
        };
        let host_port = rest.trim_end_matches('/').to_string();
        if host_port.is_empty() || host_port.contains('/') {
            bail!("--admin-url {url:?}: expected http://host:port");
        }
        Ok(Client {
            host_port,
            token: token.map(str::to_string),
        })
    }

    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply> {
        let mut s = TcpStream::connect(&self.host_port)
            .with_context(|| format!("connecting to the admin API at {}", self.host_port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.unwrap_or(b"");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host_port,
            body.len()
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/x-ndjson\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse_reply(&raw)
    }
}

fn parse_reply(raw: &[u8]) -> Result<Reply> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = std::str::from_utf8(&raw[..split]).context("malformed HTTP response")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded() {
        let t = Target {
            tenant: "acme".into(),
            contact: Some("a/b@x.com".into()),
            campaign: None,
        };
        assert_eq!(target_path(&t), "/v1/suppressions/acme/a%2Fb%40x.com");
        let t = Target {
            tenant: "acme".into(),
            contact: None,
            campaign: Some("spring 1".into()),
        };
        assert_eq!(target_path(&t), "/v1/suppressions/acme?campaign=spring%201");
    }

    #[test]
    fn replies_parse() {
        let r = parse_reply(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.body, "{}");
        let r = parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, "abc");
    }
}
