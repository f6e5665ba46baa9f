//! `openclick suppress add|remove|check|import`: a thin client of a running edge's admin API
//! (`/v1/suppressions/...`), over plain HTTP with `ureq` (the admin listener is meant for a
//! private address; no TLS client is pulled in for it), with the bearer token from
//! `--admin-token` / `OPENCLICK_ADMIN_TOKEN`.
//!
//! `import` reads its file with the one suppression-input parser
//! ([`openclick_suppress::parse`]), so a bad line is refused here, with its number, before
//! anything is sent; the changes travel as batch-API NDJSON lines.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use openclick_suppress::parse::{read_changes, ChangeLine};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::args::{SuppressAction, SuppressArgs, Target};

/// Everything but RFC 3986 unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn pct(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// Runs `openclick suppress`.
pub fn suppress(args: SuppressArgs) -> Result<()> {
    let token =
        crate::serve::admin_token(args.admin_token.as_ref(), args.admin_token_file.as_deref())?;
    let client = Client::new(&args.admin_url, token.as_deref())?;
    match args.action {
        SuppressAction::Add { target, reason } => {
            let path = format!("{}?reason={}", target_path(&target), reason.as_str());
            finish(client.request("PUT", &path, None)?)
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

fn import(client: &Client, file: &Path, batch_size: usize) -> Result<()> {
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
    let mut send = |batch: &mut String, n: &mut usize| -> Result<()> {
        if *n == 0 {
            return Ok(());
        }
        let r = client.request("POST", "/v1/suppressions/batch", Some(batch.as_bytes()))?;
        if r.status != 200 {
            bail!(
                "batch ending at change {}: HTTP {}: {}",
                total + *n,
                r.status,
                r.body.trim_end()
            );
        }
        total += *n;
        eprintln!("imported {total}");
        batch.clear();
        *n = 0;
        Ok(())
    };
    let mut failed = None;
    let now = openclick_common::now_ms();
    read_changes(reader, now, |_, change| {
        let line = serde_json::to_string(&ChangeLine::from(&change))
            .map_err(|e| openclick_suppress::SuppressError::Parse(e.to_string()))?;
        batch.push_str(&line);
        batch.push('\n');
        in_batch += 1;
        if in_batch == batch_size {
            if let Err(e) = send(&mut batch, &mut in_batch) {
                failed = Some(e);
                return Err(openclick_suppress::SuppressError::Kafka(
                    "batch refused".into(),
                ));
            }
        }
        Ok(())
    })
    .map_err(|e| match failed.take() {
        Some(sent) => sent,
        None => anyhow::Error::new(e).context(format!("{}", file.display())),
    })?;
    send(&mut batch, &mut in_batch)?;
    println!("{{\"published\":{total}}}");
    Ok(())
}

struct Client {
    agent: ureq::Agent,
    base: String,
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
        let host_port = rest.trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') {
            bail!("--admin-url {url:?}: expected http://host:port");
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Client {
            agent,
            base: format!("http://{host_port}"),
            token: token.map(str::to_string),
        })
    }

    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match method {
            "GET" => with_auth(self.agent.get(&url), auth.as_deref()).call(),
            "DELETE" => with_auth(self.agent.delete(&url), auth.as_deref()).call(),
            "PUT" => with_auth(self.agent.put(&url), auth.as_deref()).send_empty(),
            "POST" => with_auth(self.agent.post(&url), auth.as_deref())
                .header("Content-Type", "application/x-ndjson")
                .send(body.unwrap_or_default()),
            other => bail!("unsupported method {other}"),
        };
        let mut resp = result.with_context(|| format!("calling the admin API at {}", self.base))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .context("reading the admin API's answer")?;
        Ok(Reply { status, body })
    }
}

fn with_auth<B>(req: ureq::RequestBuilder<B>, auth: Option<&str>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
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
}
