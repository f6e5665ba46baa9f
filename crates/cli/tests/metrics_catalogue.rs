//! The metrics catalogue (`docs/metrics.md`) against a live `openclick serve`: every family
//! scraped is catalogued with its type and `# HELP` text, every catalogued family is scraped,
//! label values are the catalogued ones, and the figures match what the test did (hits made,
//! the build time written into the GeoIP files).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::*;
use mmdb_writer::Writer;
use serde_json::json;

/// `build_epoch` written into the test's GeoIP databases.
const BUILD_EPOCH: u64 = 1_700_000_000;
/// Modification time given to the test's network files.
const NETDATA_MTIME: u64 = 1_750_000_000;
const ADMIN_TOKEN: &str = "metrics-catalogue-token";
const GMAIL_UA: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

struct Row {
    kind: String,
    labels: String,
}

/// The catalogue's rows: `| \`name\` | type | labels | meaning | alert |`.
fn catalogue() -> BTreeMap<String, Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `openclick_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let row = Row {
            kind: cells[2].to_string(),
            labels: cells[3].to_string(),
        };
        assert!(
            rows.insert(name.clone(), row).is_none(),
            "{name} catalogued twice"
        );
    }
    assert!(rows.len() > 50, "catalogue not parsed: {} rows", rows.len());
    rows
}

struct Scrape {
    types: BTreeMap<String, String>,
    helps: BTreeSet<String>,
    /// (metric name, labels, value) of every sample.
    samples: Vec<(String, Labels, f64)>,
}

type Labels = Vec<(String, String)>;

fn parse_labels(s: &str) -> Labels {
    // Label values here never hold `"` or `,` (closed sets, numbers, the version).
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

fn scrape(s: &Server) -> Scrape {
    let (status, body) = try_http(s.admin, "GET", "/metrics", &[]).expect("scrape");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let mut out = Scrape {
        types: BTreeMap::new(),
        helps: BTreeSet::new(),
        samples: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let dup = out.types.insert(name.into(), kind.into());
            assert!(dup.is_none(), "{name} has two TYPE lines");
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(help.len() > 10, "{name}: HELP too short: {help:?}");
            out.helps.insert(name.into());
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            out.samples
                .push((name.into(), labels, value.parse().unwrap_or(f64::NAN)));
        }
    }
    out
}

impl Scrape {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.2)
    }
}

fn geoip_dbs(dir: &Path) -> (String, String) {
    let epoch = UNIX_EPOCH + Duration::from_secs(BUILD_EPOCH);
    let mut city = Writer::builder("GeoLite2-City").build_epoch(epoch).build();
    city.insert(
        "127.0.0.0/8".parse::<ipnet::IpNet>().unwrap(),
        &json!({"country": {"iso_code": "GB"}, "city": {"names": {"en": "London"}}}),
    )
    .unwrap();
    let mut asn = Writer::builder("GeoLite2-ASN").build_epoch(epoch).build();
    asn.insert(
        "127.0.0.0/8".parse::<ipnet::IpNet>().unwrap(),
        &json!({"autonomous_system_number": 64496, "autonomous_system_organization": "Test"}),
    )
    .unwrap();
    let (c, a) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&c, city.to_bytes().unwrap()).unwrap();
    std::fs::write(&a, asn.to_bytes().unwrap()).unwrap();
    (c.display().to_string(), a.display().to_string())
}

/// Writes a network file and sets its modification time to [`NETDATA_MTIME`].
fn netdata_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(NETDATA_MTIME))
        .unwrap();
    path.display().to_string()
}

/// Entries of the shipped gateway list, counted here from the file's lines.
fn shipped_gateway_entries() -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../enrich/data/gateways.csv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("cidr_or_asn"))
        .count()
}

#[test]
fn every_scraped_series_is_catalogued_and_vice_versa() {
    let started = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = geoip_dbs(dir.path());
    // The network lists, so their size and age series are scraped: three egress prefixes in
    // Apple's format, two gateway entries besides the shipped ones.
    let egress = netdata_file(
        dir.path(),
        "egress.csv",
        "172.224.226.0/27,GB,GB-EN,London\n2a02:26f7:b3c0:4000::/64,US,US-CA,Los Angeles\n104.28.0.12/31,DE,,\n",
    );
    let gateways = netdata_file(
        dir.path(),
        "gateways.csv",
        "# test\n192.0.2.0/24,acme,clicks,https://example.test\nAS64500,acme,both,https://example.test\n",
    );
    // An HTTPS listener too, so its series (certificates, reloads, the `https` listener) are
    // scraped and checked like the rest.
    let tls = dir.path().join("tls/t");
    std::fs::create_dir_all(&tls).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["t.example.com".to_owned()]).unwrap();
    std::fs::write(tls.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(tls.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    let mut cmd = serve_command(&dir.path().join("data"));
    cmd.args(["--https-listen", "127.0.0.1:0"])
        .arg("--tls-cert-dir")
        .arg(dir.path().join("tls"))
        .args(["--geoip-city", &city, "--geoip-asn", &asn])
        .args([
            "--apple-egress-ranges",
            &egress,
            "--gateway-networks",
            &gateways,
        ])
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--kafka-property", "statistics.interval.ms=200"]);
    // The sending API too, with one request, so its series are scraped.
    let tokens = dir.path().join("sending-tokens");
    std::fs::write(&tokens, "acme:metrics-sending-token-1\n").unwrap();
    cmd.args(["--sending-listen", "127.0.0.1:0"])
        .arg("--sending-tokens-file")
        .arg(&tokens)
        .args(["--sending-base-url", "https://t.example.com"]);
    // Website activity on for acme, so the web family is scraped (the clicks hand off).
    let web = dir.path().join("web.toml");
    std::fs::write(
        &web,
        "[tenant.acme]\nhandoff = true\norigins = [\"https://shop.example.com\"]\n",
    )
    .unwrap();
    cmd.arg("--web-settings").arg(&web);
    let server = Server::spawn(cmd);
    let sending: std::net::SocketAddr = server.info()["sending_listen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let line = br#"{"kind":"open","tenant_id":"acme","campaign_id":"c","message_id":"m","contact_id":"c-9"}"#;
    let signed = try_post(
        sending,
        "/v1/sign",
        &[("Authorization", "Bearer metrics-sending-token-1")],
        line,
    )
    .unwrap();
    assert_eq!(signed.0, 200, "{}", String::from_utf8_lossy(&signed.2));

    const OPENS: usize = 5;
    const CLICKS: usize = 3;
    let open = sign_open("c-1");
    for _ in 0..OPENS {
        let r = try_http(server.listen, "GET", &open, &[("User-Agent", GMAIL_UA)]);
        assert_eq!(r.unwrap().0, 200);
    }
    let click = sign_click("c-1", "https://shop.example.com/sale");
    for _ in 0..CLICKS {
        assert_eq!(try_http(server.listen, "GET", &click, &[]).unwrap().0, 302);
    }
    assert_eq!(try_http(server.listen, "GET", "/nope", &[]).unwrap().0, 404);
    assert_eq!(try_http(server.listen, "POST", &open, &[]).unwrap().0, 405);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let put = try_http(
        server.admin,
        "PUT",
        "/v1/suppressions/acme/c-2?reason=opt_out",
        &[("Authorization", &bearer)],
    )
    .unwrap();
    assert!(put.0 < 300, "suppression PUT: {}", put.0);

    // Wait for what arrives later: delivery, librdkafka's statistics naming the broker, the
    // suppression change coming back from the topic.
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = scrape(&server);
        let ready = s.value("openclick_sink_delivered_total", &[]) == Some((OPENS + CLICKS) as f64)
            && s.value("openclick_kafka_broker_rtt_avg_seconds", &[])
                .is_some()
            && s.value("openclick_kafka_tx_messages_total", &[]) == Some((OPENS + CLICKS) as f64)
            && s.value("openclick_suppression_last_change_age_seconds", &[])
                .is_some();
        if ready {
            break s;
        }
        assert!(Instant::now() < deadline, "series never complete");
        std::thread::sleep(Duration::from_millis(100));
    };

    // The catalogue and the scrape name the same families, with the same types, all described.
    let cat = catalogue();
    let scraped: BTreeSet<&String> = s.types.keys().collect();
    let catalogued: BTreeSet<&String> = cat.keys().collect();
    let missing: Vec<_> = scraped.difference(&catalogued).collect();
    let absent: Vec<_> = catalogued.difference(&scraped).collect();
    assert!(
        missing.is_empty(),
        "scraped but not in docs/metrics.md: {missing:?}"
    );
    assert!(
        absent.is_empty(),
        "in docs/metrics.md but not scraped: {absent:?}"
    );
    for (name, kind) in &s.types {
        assert_eq!(&cat[name].kind, kind, "{name}: type");
        assert!(s.helps.contains(name), "{name}: no HELP");
    }
    // Every sample belongs to a typed family; its label values are the catalogued ones.
    for (name, labels, _) in &s.samples {
        let family = if s.types.contains_key(name) {
            name.as_str()
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|f| s.types.get(*f).is_some_and(|k| k == "histogram"))
                .unwrap_or_else(|| panic!("{name}: sample of no family"))
        };
        for (k, v) in labels {
            if matches!(k.as_str(), "le" | "broker" | "version") {
                continue;
            }
            let row = &cat[family].labels;
            assert!(
                row.contains(&format!("`{k}`")) && row.contains(v.as_str()),
                "{family}: label {k}={v} not in the catalogue's {row:?}"
            );
        }
    }

    // Figures against what the test did.
    let count = |route, class| {
        s.value(
            "openclick_http_request_duration_seconds_count",
            &[("route", route), ("status_class", class)],
        )
    };
    assert_eq!(
        s.value(
            "openclick_web_requests_total",
            &[("route", "handoff"), ("outcome", "added")]
        ),
        Some(CLICKS as f64)
    );
    assert_eq!(count("open", "2xx"), Some(OPENS as f64));
    assert_eq!(count("click", "3xx"), Some(CLICKS as f64));
    assert_eq!(
        count("other", "4xx"),
        Some(2.0),
        "the 404 and the POST's 405"
    );
    assert_eq!(count("open", "4xx"), None, "an open always gets its pixel");
    let inf = s.value(
        "openclick_http_request_duration_seconds_bucket",
        &[("route", "open"), ("status_class", "2xx"), ("le", "+Inf")],
    );
    assert_eq!(inf, Some(OPENS as f64));
    let gmail = s.value(
        "openclick_events_by_image_proxy_total",
        &[("proxy", "gmail")],
    );
    assert_eq!(gmail, Some(OPENS as f64));
    let none = s.value(
        "openclick_events_by_image_proxy_total",
        &[("proxy", "none")],
    );
    assert_eq!(none, Some(CLICKS as f64));
    let hit = s.value("openclick_ua_cache_lookups_total", &[("result", "hit")]);
    let miss = s.value("openclick_ua_cache_lookups_total", &[("result", "miss")]);
    assert_eq!(miss, Some(2.0), "two distinct user agents");
    assert_eq!(hit, Some((OPENS + CLICKS - 2) as f64));
    for db in ["location", "asn"] {
        let built = s.value("openclick_geoip_build_timestamp_seconds", &[("db", db)]);
        assert_eq!(built, Some(BUILD_EPOCH as f64), "{db}");
    }
    let entries = |list| s.value("openclick_netdata_entries", &[("list", list)]);
    assert_eq!(entries("apple_egress"), Some(3.0));
    assert_eq!(
        entries("gateways"),
        Some((shipped_gateway_entries() + 2) as f64)
    );
    for list in ["apple_egress", "gateways"] {
        let modified = s.value(
            "openclick_netdata_modified_timestamp_seconds",
            &[("list", list)],
        );
        assert_eq!(modified, Some(NETDATA_MTIME as f64), "{list}");
        let loaded = s
            .value(
                "openclick_netdata_loaded_timestamp_seconds",
                &[("list", list)],
            )
            .unwrap();
        assert!(
            loaded >= started.floor(),
            "{list}: loaded {loaded} before the test"
        );
    }
    assert_eq!(s.value("openclick_kafka_broker_up", &[]), Some(1.0));
    drop(server);
}
