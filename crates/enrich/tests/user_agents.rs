//! Data-driven test over `tests/fixtures/user_agents.yaml`: real user agents with the expected
//! email client, version, device, proxy, machine-open flag and UA-derived bot reasons.

use openclick_enrich::{EnrichConfig, Enricher, Hit, HitKind};
use openclick_events::v1::{BotReason, DeviceCategory, ImageProxy};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    ua: String,
    source: String,
    #[serde(default)]
    ip: Option<String>,
    email_client: String,
    version: String,
    device: String,
    proxy: String,
    #[serde(default)]
    machine_open: bool,
    bot: Vec<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    heuristic: bool,
}

fn lower_name(full: &str, prefix: &str) -> String {
    full.trim_start_matches(prefix).to_ascii_lowercase()
}

#[test]
fn user_agent_fixtures() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/user_agents.yaml"
    ))
    .unwrap();
    let rows: Vec<Row> = serde_yaml::from_str(&text).unwrap();
    assert!(rows.len() >= 150, "only {} fixture rows", rows.len());
    let e = Enricher::new(EnrichConfig {
        reload_poll: None,
        ..Default::default()
    })
    .unwrap();
    let mut failures = Vec::new();
    for row in &rows {
        assert!(
            !row.source.trim().is_empty(),
            "row without source: {}",
            row.ua
        );
        let _ = row.heuristic;
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
        let mut diffs = Vec::new();
        let mut check = |what: &str, want: &str, got: &str| {
            if want != got {
                diffs.push(format!("{what}: want {want:?}, got {got:?}"));
            }
        };
        check("email_client", &row.email_client, &r.client.email_client);
        check("version", &row.version, &r.client.email_client_version);
        check("device", &row.device, &device);
        check("proxy", &row.proxy, &proxy);
        check(
            "machine_open",
            &row.machine_open.to_string(),
            &r.signals.machine_open.to_string(),
        );
        check("bot", &row.bot.join(","), &bot.join(","));
        if let Some(os) = &row.os {
            check("os", os, &r.client.os);
        }
        if r.signals.suspected_bot == bot.is_empty() {
            diffs.push("suspected_bot disagrees with bot_reasons".into());
        }
        if !diffs.is_empty() {
            failures.push(format!("{}\n    {}", row.ua, diffs.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn every_canonical_client_with_a_fixture_is_spelled_canonically() {
    const CANONICAL: &[&str] = &[
        "Apple Mail",
        "Outlook",
        "Gmail",
        "Yahoo Mail",
        "Thunderbird",
        "Samsung Email",
        "AOL Mail",
        "Proton Mail",
        "Fastmail",
        "Spark",
        "Airmail",
        "eM Client",
        "Mailbird",
        "Postbox",
        "The Bat!",
        "Foxmail",
        "NAVER Mail",
        "Windows Mail",
        "Lotus Notes",
        "GMX",
        "WEB.DE",
        "Mail.ru",
        "Yandex Mail",
        "Mail Master",
        "BlueMail",
        "Mailspring",
        "Canary Mail",
        "Edison Mail",
        "K-9 Mail",
        "FairEmail",
        "Zoho Mail",
        "Superhuman",
        "HEY",
    ];
    for rule in openclick_enrich::rules::EMAIL_CLIENT_RULES {
        assert!(
            CANONICAL.contains(&rule.client),
            "non-canonical client name {:?}",
            rule.client
        );
    }
}
