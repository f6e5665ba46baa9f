//! `openclick enrich`: classify hits the way the edge would, to check a rule quickly.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use openclick_enrich::{Enricher, Evidence, Hit, HitKind, MachineOpenBasis};

use crate::args::EnrichCmdArgs;
use crate::serve::build_enricher;

/// One hit from flags, or one user agent per stdin line; one JSON line out per hit.
pub fn enrich(args: EnrichCmdArgs) -> Result<()> {
    let mut enricher_args = args.enrich.clone();
    // A hit typed at the terminal has no send time: never flag it as too fast.
    enricher_args.min_delay_ms = 0;
    let enricher = build_enricher(&enricher_args).map_err(crate::serve::bad_config)?;
    let headers: Vec<(String, String)> = args
        .headers
        .iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: expected `Name: value`"))?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect::<Result<_>>()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match &args.ua {
        Some(ua) => writeln!(out, "{}", one(&enricher, &args, &headers, Some(ua))?)?,
        None => {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let ua = line.trim_end_matches('\r');
                let ua = (!ua.is_empty()).then_some(ua);
                writeln!(out, "{}", one(&enricher, &args, &headers, ua)?)?;
            }
        }
    }
    Ok(())
}

fn one(
    enricher: &Enricher,
    args: &EnrichCmdArgs,
    headers: &[(String, String)],
    ua: Option<&str>,
) -> Result<String> {
    let h = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let now = openclick_common::now_ms();
    let hit = Hit {
        kind: if args.click {
            HitKind::Click
        } else {
            HitKind::Open
        },
        user_agent: ua,
        ip: args.ip,
        is_head: args.method.eq_ignore_ascii_case("HEAD"),
        purpose: h("purpose"),
        sec_purpose: h("sec-purpose"),
        dnt: h("dnt"),
        sec_gpc: h("sec-gpc"),
        sent_at_ms: now,
        now_ms: now,
    };
    let e = enricher.enrich(&hit);
    Ok(serde_json::json!({
        "client": e.client,
        "geo": e.geo,
        "network": e.network,
        "signals": e.signals,
        "evidence": evidence(&e.evidence),
    })
    .to_string())
}

/// What the enricher found beside the event's signals (not part of the event).
fn evidence(e: &Evidence) -> serde_json::Value {
    let machine_open = match e.machine_open {
        MachineOpenBasis::None => "none",
        MachineOpenBasis::BareUserAgent => "bare_user_agent",
        MachineOpenBasis::AppleNetwork => "apple_network",
        MachineOpenBasis::PrivateRelayEgress => "private_relay_egress",
    };
    serde_json::json!({
        "machineOpen": machine_open,
        "bareUserAgent": e.bare_user_agent,
        "gateway": e.gateway.map(|g| format!("{g:?}").to_ascii_lowercase()),
    })
}
