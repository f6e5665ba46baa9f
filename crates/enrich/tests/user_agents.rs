//! Data-driven test over `tests/fixtures/user_agents.yaml`: real user agents from public test
//! data, what their source says about them, and what the enricher must make of them.
//!
//! Three layers of assertions:
//!
//! 1. **The fixture follows its sources.** Each row's `email_client` is derived from the client
//!    name its source records (`says`) through the fixture's `vocabulary`, its version is the
//!    source's, its OS is the source's where the source names one. A row may depart from its
//!    source only visibly: `heuristic` (the Apple Mail bare-WebKit rule), `interpretation` (a
//!    stated reading of a less specific source) or `version_note`.
//! 2. **The enricher agrees with the fixture**, field by field, except the fields a row lists
//!    under `known_gap`, which must still *disagree* (so a fix shows up as a failure asking to
//!    drop the gap).
//! 3. **Every rule has evidence.** Each email-client, bot and proxy rule of `rules.rs` is
//!    exercised by a row with a real source, or is marked `unverified` in the code and matched by
//!    no row.
//!
//! It prints a summary line (run with `--nocapture` to see it).

use std::collections::{BTreeMap, BTreeSet};

use openclick_enrich::rules::{BOT_RULES, EMAIL_CLIENT_RULES, PROXY_RULES};
use openclick_enrich::{EnrichConfig, Enricher, Hit, HitKind};
use openclick_events::v1::{BotReason, DeviceCategory, ImageProxy};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// Repository -> commit at which every cited path and user agent was checked.
    sources: BTreeMap<String, String>,
    /// A source's spelling of a mail client -> the project's name.
    vocabulary: BTreeMap<String, String>,
    /// Names sources file under pim/email that are not mail clients -> why.
    not_email_clients: BTreeMap<String, String>,
    /// A source's OS name -> the enricher's canonical one.
    os_vocabulary: BTreeMap<String, String>,
    rows: Vec<Row>,
}

/// What the cited source records for the user agent, verbatim.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Says {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    version: Option<String>,
    category: Option<String>,
    os: Option<String>,
    os_version: Option<String>,
    device: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    ua: String,
    source: String,
    #[serde(default)]
    says: Option<Says>,
    #[serde(default)]
    ip: Option<String>,
    email_client: String,
    version: String,
    os: String,
    os_version: String,
    device: String,
    proxy: String,
    #[serde(default)]
    machine_open: bool,
    bot: Vec<String>,
    #[serde(default)]
    heuristic: bool,
    #[serde(default)]
    synthetic: Option<String>,
    #[serde(default)]
    known_gap: BTreeMap<String, String>,
    #[serde(default)]
    version_note: Option<String>,
    #[serde(default)]
    interpretation: Option<String>,
}

const FIELDS: &[&str] = &[
    "email_client",
    "version",
    "os",
    "os_version",
    "device",
    "proxy",
    "machine_open",
    "bot",
];
const MAIL_TYPES: &[&str] = &["pim", "email"];
/// Source types whose names may stand for a mail client (an image proxy for its webmail,
/// uap-core's untyped families).
const NAMED_TYPES: &[&str] = &["pim", "email", "bot", "fetcher", "ua family"];
const BOT_TYPES: &[&str] = &["bot", "crawler", "fetcher", "library", "cli"];

fn load() -> Fixture {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/user_agents.yaml"
    ))
    .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn lower_name(full: &str, prefix: &str) -> String {
    full.trim_start_matches(prefix).to_ascii_lowercase()
}

impl Row {
    fn real(&self) -> bool {
        self.synthetic.is_none()
    }
}

/// The email client a row must expect according to its source, or an error.
fn client_from_source(f: &Fixture, says: &Says) -> Result<String, String> {
    let kind = says.kind.as_deref().unwrap_or("");
    let Some(name) = says.name.as_deref() else {
        return Ok(String::new());
    };
    if NAMED_TYPES.contains(&kind) {
        if let Some(c) = f.vocabulary.get(name) {
            return Ok(c.clone());
        }
    }
    if MAIL_TYPES.contains(&kind) && !f.not_email_clients.contains_key(name) {
        return Err(format!(
            "source names the {kind} {name:?}: add it to `vocabulary` or `not_email_clients`"
        ));
    }
    Ok(String::new())
}

/// Checks that the row's expectations are its source's (layer 1).
fn follows_source(f: &Fixture, row: &Row) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(why) = &row.synthetic {
        if why.trim().is_empty() {
            errs.push("synthetic row without a reason".into());
        }
        return errs;
    }
    let repo = row.source.split(' ').next().unwrap_or("");
    if !f.sources.contains_key(repo) || !row.source.contains(' ') {
        errs.push(format!(
            "source {:?} is not `<repo> <path>` with a repo listed in `sources`",
            row.source
        ));
    }
    let Some(says) = &row.says else {
        errs.push("a real row must record what its source `says`".into());
        return errs;
    };
    match client_from_source(f, says) {
        Err(e) => errs.push(e),
        Ok(want) => {
            if row.heuristic {
                if row.email_client != "Apple Mail" {
                    errs.push("a heuristic row expects Apple Mail".into());
                }
            } else if row.interpretation.is_some() {
                if row.email_client == want {
                    errs.push("`interpretation` given but the row agrees with its source".into());
                }
            } else if row.email_client != want {
                errs.push(format!(
                    "source says {:?} {:?}, i.e. email_client {want:?}, row expects {:?}",
                    says.kind, says.name, row.email_client
                ));
            }
        }
    }
    let src_version = says.version.as_deref().unwrap_or("");
    if row.email_client.is_empty() || row.heuristic {
        if !row.version.is_empty() {
            errs.push("a version without an email client".into());
        }
    } else if row.interpretation.is_some() {
        // The interpretation stands for the client and its version.
    } else if row.version_note.is_some() {
        if row.version == src_version {
            errs.push("`version_note` given but the version is the source's".into());
        }
    } else if row.version != src_version {
        errs.push(format!(
            "source version {src_version:?}, row expects {:?}",
            row.version
        ));
    }
    if let Some(os) = says.os.as_deref() {
        if let Some(canonical) = f.os_vocabulary.get(os) {
            if row.os != *canonical {
                errs.push(format!(
                    "source OS {os:?} is {canonical:?}, row says {:?}",
                    row.os
                ));
            }
            let v = says.os_version.as_deref().unwrap_or("");
            if row.os_version != v {
                errs.push(format!(
                    "source OS version {v:?}, row says {:?}",
                    row.os_version
                ));
            }
        }
    }
    let kind = says.kind.as_deref().unwrap_or("");
    if BOT_TYPES.contains(&kind) && row.bot.is_empty() && row.proxy == "none" {
        errs.push(format!(
            "source files it as a {kind} ({:?}) but the row expects neither bot reasons nor a proxy",
            says.category.as_deref().or(says.name.as_deref())
        ));
    }
    let device = match says.device.as_deref() {
        Some("smartphone" | "phablet" | "feature phone") => Some("mobile"),
        Some("tablet") => Some("tablet"),
        Some("desktop") => Some("desktop"),
        _ => None,
    };
    if let Some(d) = device {
        if row.device != d && !row.known_gap.contains_key("device") {
            errs.push(format!(
                "source device {:?}, row expects {:?}",
                says.device, row.device
            ));
        }
    }
    errs
}

#[test]
fn user_agent_fixtures() {
    let f = load();
    let e = Enricher::new(EnrichConfig {
        reload_poll: None,
        ..Default::default()
    })
    .unwrap();
    assert!(f.rows.len() >= 250, "only {} fixture rows", f.rows.len());
    for (repo, commit) in &f.sources {
        assert!(
            commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "source {repo}: {commit:?} is not a commit id"
        );
    }
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &f.rows {
        let mut diffs = follows_source(&f, row);
        if !seen.insert((row.ua.as_str(), row.ip.as_deref())) {
            diffs.push("duplicate row".into());
        }
        for (field, why) in &row.known_gap {
            if !FIELDS.contains(&field.as_str()) || why.trim().is_empty() {
                diffs.push(format!("bad known_gap entry {field:?}: {why:?}"));
            }
        }
        let hit = Hit {
            kind: HitKind::Open,
            user_agent: Some(&row.ua),
            ip: row.ip.as_deref().unwrap_or("203.0.113.9").parse().unwrap(),
            is_head: false,
            purpose: None,
            sec_purpose: None,
            dnt: None,
            sec_gpc: None,
            sent_at_ms: 0,
            now_ms: 0,
        };
        let r = e.enrich(&hit);
        let device = lower_name(
            DeviceCategory::try_from(r.client.device_category)
                .unwrap()
                .as_str_name(),
            "DEVICE_CATEGORY_",
        );
        let proxy = lower_name(
            ImageProxy::try_from(r.signals.image_proxy)
                .unwrap()
                .as_str_name(),
            "IMAGE_PROXY_",
        );
        let bot: Vec<String> = r
            .signals
            .bot_reasons
            .iter()
            .map(|&b| lower_name(BotReason::try_from(b).unwrap().as_str_name(), "BOT_REASON_"))
            .collect();
        let got = [
            r.client.email_client.clone(),
            r.client.email_client_version.clone(),
            r.client.os.clone(),
            r.client.os_version.clone(),
            device,
            proxy,
            r.signals.machine_open.to_string(),
            bot.join(","),
        ];
        let want = [
            row.email_client.clone(),
            row.version.clone(),
            row.os.clone(),
            row.os_version.clone(),
            row.device.clone(),
            row.proxy.clone(),
            row.machine_open.to_string(),
            row.bot.join(","),
        ];
        for ((field, want), got) in FIELDS.iter().zip(&want).zip(&got) {
            match (row.known_gap.contains_key(*field), want == got) {
                (false, false) => diffs.push(format!("{field}: want {want:?}, got {got:?}")),
                (true, true) => diffs.push(format!(
                    "{field}: known gap fixed (got {got:?}): remove it from `known_gap`"
                )),
                _ => {}
            }
        }
        if !r.client.os.is_empty() && !openclick_enrich::ua::os::ALL.contains(&r.client.os.as_str())
        {
            diffs.push(format!("os {:?} is not a canonical name", r.client.os));
        }
        if r.signals.suspected_bot == bot.is_empty() {
            diffs.push("suspected_bot disagrees with bot_reasons".into());
        }
        // Heuristic rows match through a heuristic rule, and only they do.
        let rule = openclick_enrich::ua::email_client(&row.ua).map(|(i, _, _)| i);
        let via_heuristic = rule.is_some_and(|i| EMAIL_CLIENT_RULES[i].heuristic);
        if row.heuristic != via_heuristic && !row.known_gap.contains_key("email_client") {
            diffs.push(format!(
                "heuristic: row says {}, matched rule {rule:?} (heuristic: {via_heuristic})",
                row.heuristic
            ));
        }
        if !diffs.is_empty() {
            failures.push(format!("{}\n    {}", row.ua, diffs.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        f.rows.len(),
        failures.join("\n")
    );

    let real = f.rows.iter().filter(|r| r.real()).count();
    let gaps = f.rows.iter().filter(|r| !r.known_gap.is_empty()).count();
    let heuristic = f.rows.iter().filter(|r| r.heuristic).count();
    let interpretations = f.rows.iter().filter(|r| r.interpretation.is_some()).count();
    let unverified = EMAIL_CLIENT_RULES
        .iter()
        .filter(|r| r.unverified.is_some())
        .count()
        + BOT_RULES.iter().filter(|r| r.unverified.is_some()).count()
        + PROXY_RULES
            .iter()
            .filter(|r| r.unverified.is_some())
            .count();
    println!(
        "user_agents.yaml: {} rows, {real} with a real source, {} synthetic, {gaps} with known \
         gaps, {heuristic} heuristic, {interpretations} interpretations; rules: {} email-client, \
         {} bot, {} proxy, {unverified} of them unverified",
        f.rows.len(),
        f.rows.len() - real,
        EMAIL_CLIENT_RULES.len(),
        BOT_RULES.len(),
        PROXY_RULES.len(),
    );
}

/// Rows that count as evidence for a rule: a real source and no known gap on `field`.
fn evidence<'a>(f: &'a Fixture, field: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
    f.rows
        .iter()
        .filter(move |r| r.real() && !r.known_gap.contains_key(field))
}

#[test]
fn every_email_client_rule_has_a_real_user_agent_or_is_unverified() {
    let f = load();
    let mut hits = vec![0usize; EMAIL_CLIENT_RULES.len()];
    for row in evidence(&f, "email_client") {
        if let Some((i, client, _)) = openclick_enrich::ua::email_client(&row.ua) {
            if client == row.email_client {
                hits[i] += 1;
            }
        }
    }
    let mut errs = Vec::new();
    for (rule, n) in EMAIL_CLIENT_RULES.iter().zip(&hits) {
        match (rule.unverified, *n) {
            (None, 0) => errs.push(format!(
                "{} {:?}: no fixture row; add a real user agent or mark it unverified",
                rule.client, rule.when
            )),
            (Some(_), n) if n > 0 => errs.push(format!(
                "{} {:?}: marked unverified but {n} real rows match: drop the flag",
                rule.client, rule.when
            )),
            _ => {}
        }
    }
    // A vocabulary target without a rule must be a known gap of every row expecting it.
    for row in &f.rows {
        let ruled = EMAIL_CLIENT_RULES
            .iter()
            .any(|r| r.client == row.email_client);
        if !row.email_client.is_empty() && !ruled && !row.known_gap.contains_key("email_client") {
            errs.push(format!(
                "{:?} expects {:?}, which no rule produces, without a known gap",
                row.ua, row.email_client
            ));
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

#[test]
fn every_bot_and_proxy_token_has_a_real_user_agent_or_is_unverified() {
    let f = load();
    let mut errs = Vec::new();
    for rule in BOT_RULES {
        let token = rule.token.to_ascii_lowercase();
        let reason = lower_name(rule.reason.as_str_name(), "BOT_REASON_");
        let rows: Vec<&Row> = f
            .rows
            .iter()
            .filter(|r| r.ua.to_ascii_lowercase().contains(&token))
            .collect();
        let evidence = rows
            .iter()
            .filter(|r| r.real() && !r.known_gap.contains_key("bot") && r.bot.contains(&reason))
            .count();
        match rule.unverified {
            None if evidence == 0 => errs.push(format!(
                "bot token {:?}: no real row with reason {reason}; add one or mark it unverified",
                rule.token
            )),
            Some(_) if !rows.is_empty() => errs.push(format!(
                "bot token {:?}: marked unverified but {} rows contain it",
                rule.token,
                rows.len()
            )),
            _ => {}
        }
    }
    for rule in PROXY_RULES {
        let proxy = lower_name(rule.proxy.as_str_name(), "IMAGE_PROXY_");
        let rows: Vec<&Row> = f
            .rows
            .iter()
            .filter(|r| r.ua.contains(rule.token))
            .collect();
        let evidence = rows
            .iter()
            .filter(|r| r.real() && !r.known_gap.contains_key("proxy") && r.proxy == proxy)
            .count();
        match rule.unverified {
            None if evidence == 0 => errs.push(format!(
                "proxy token {:?}: no real row; add one or mark it unverified",
                rule.token
            )),
            Some(_) if !rows.is_empty() => errs.push(format!(
                "proxy token {:?}: marked unverified but {} rows contain it",
                rule.token,
                rows.len()
            )),
            _ => {}
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}
