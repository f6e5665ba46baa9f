//! GeoIP behaviour against generated MMDB fixtures: schemas, IPv6, IPv4-mapped, errors, reload.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclick_enrich::*;
use openclick_events::v1::{BotReason, ImageProxy};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn hit(ip: &str, ua: &'static str) -> Hit<'static> {
    Hit {
        kind: HitKind::Open,
        user_agent: Some(ua),
        ip: ip.parse::<IpAddr>().unwrap(),
        is_head: false,
        purpose: None,
        sec_purpose: None,
        dnt: None,
        sec_gpc: None,
        sent_at_ms: 0,
        now_ms: 0,
    }
}

fn cfg(city: Option<std::path::PathBuf>, asn: Option<std::path::PathBuf>) -> EnrichConfig {
    EnrichConfig {
        geoip_city: city,
        geoip_asn: asn,
        reload_poll: None,
        ..Default::default()
    }
}

#[test]
fn city_and_asn_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let e = Enricher::new(cfg(
        Some(support::city_db(dir.path())),
        Some(support::asn_db(dir.path())),
    ))
    .unwrap();

    let r = e.enrich(&hit("81.2.69.142", CHROME));
    assert_eq!(r.geo.country_code, "GB");
    assert_eq!(r.geo.region, "ENG"); // first subdivision only
    assert_eq!(r.geo.city, "London");
    assert_eq!(r.geo.postal_code, "EC1A");
    assert_eq!(r.geo.time_zone, "Europe/London");
    assert_eq!(r.geo.accuracy_radius_km, 10);
    assert!((r.geo.latitude - 51.5142).abs() < 1e-9 && (r.geo.longitude + 0.0931).abs() < 1e-9);
    assert!(r.geo.reliable);
    assert_eq!(
        (r.network.asn, r.network.as_org.as_str()),
        (20712, "Andrews & Arnold Ltd")
    );
    assert_eq!(r.network.ip, "81.2.69.0");
    assert!(!r.signals.suspected_bot);

    // Non-ASCII names survive.
    assert_eq!(
        e.enrich(&hit("89.160.20.128", CHROME)).geo.city,
        "Linköping"
    );

    // IPv4-mapped IPv6 is normalised: same geo, IPv4 truncation.
    let m = e.enrich(&hit("::ffff:81.2.69.142", CHROME));
    assert_eq!(m.geo, r.geo);
    assert_eq!(m.network.ip, "81.2.69.0");

    // IPv6.
    let v6 = e.enrich(&hit("2001:db8:1234:5678::1", CHROME));
    assert_eq!(
        (v6.geo.country_code.as_str(), v6.geo.city.as_str()),
        ("JP", "Tokyo")
    );
    assert_eq!(v6.network.ip, "2001:db8:1234::");
    assert_eq!(v6.network.asn, 8075);
    assert!(v6
        .signals
        .bot_reasons
        .contains(&(BotReason::HostingAsn as i32)));

    // Registered-country fallback.
    let rc = e.enrich(&hit("198.51.100.1", CHROME));
    assert_eq!(rc.geo.country_code, "US");
    assert_eq!(rc.geo.city, "");

    // Not found: empty geo, not reliable, no panic.
    let nf = e.enrich(&hit("192.0.2.1", CHROME));
    assert_eq!(nf.geo.country_code, "");
    assert!(!nf.geo.reliable);
    assert_eq!(nf.network.asn, 0);
}

#[test]
fn hosting_asn_and_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let e = Enricher::new(cfg(
        Some(support::city_db(dir.path())),
        Some(support::asn_db(dir.path())),
    ))
    .unwrap();
    let r = e.enrich(&hit("203.0.113.10", CHROME));
    assert_eq!(r.network.asn, 16509);
    assert_eq!(r.signals.bot_reasons, vec![BotReason::HostingAsn as i32]);
    assert!(r.signals.suspected_bot);

    // The Gmail proxy fetches from Google: proxied, geo unreliable, not a bot.
    let g = e.enrich(&hit(
        "66.102.8.1",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    ));
    assert_eq!(g.signals.image_proxy, ImageProxy::Gmail as i32);
    assert_eq!(g.client.email_client, "Gmail");
    assert!(!g.geo.reliable);
    assert!(!g.signals.suspected_bot);

    // A proxied hit from a listed ASN is not flagged for it.
    let e2 = Enricher::new(EnrichConfig {
        hosting_asns: vec![15169],
        ..cfg(None, Some(support::asn_db(dir.path())))
    })
    .unwrap();
    let g2 = e2.enrich(&hit(
        "66.102.8.1",
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
    ));
    assert!(!g2.signals.suspected_bot);
    let c2 = e2.enrich(&hit("66.102.8.1", CHROME));
    assert_eq!(c2.signals.bot_reasons, vec![BotReason::HostingAsn as i32]);
    // ...and the configured list replaces the defaults.
    assert!(
        !e2.enrich(&hit("203.0.113.10", CHROME))
            .signals
            .suspected_bot
    );
}

#[test]
fn country_database() {
    let dir = tempfile::tempdir().unwrap();
    let e = Enricher::new(cfg(Some(support::country_db(dir.path())), None)).unwrap();
    let r = e.enrich(&hit("81.2.69.1", CHROME));
    assert_eq!(r.geo.country_code, "GB");
    assert_eq!(r.geo.city, "");
    assert!(r.geo.reliable);
    assert_eq!(e.enrich(&hit("2001:db8::5", CHROME)).geo.country_code, "JP");
    assert_eq!(e.databases()[0].database_type, "GeoLite2-Country");
}

#[test]
fn flat_dbip_layout() {
    let dir = tempfile::tempdir().unwrap();
    let e = Enricher::new(cfg(Some(support::flat_v4_db(dir.path())), None)).unwrap();
    let r = e.enrich(&hit("192.0.2.77", CHROME));
    assert_eq!(r.geo.country_code, "FR");
    assert_eq!(r.geo.region, "Île-de-France");
    assert_eq!(r.geo.city, "Paris");
    assert_eq!(r.geo.postal_code, "75001");
    assert_eq!(r.geo.time_zone, "Europe/Paris");
    assert_eq!(r.geo.latitude, 48.8566);
    assert_eq!(r.geo.longitude, 2.3522);
    assert!(r.geo.reliable);
    assert_eq!(
        e.enrich(&hit("::ffff:81.2.69.5", CHROME)).geo.city,
        "London"
    );
    // IPv6 against an IPv4-only file: not found, no panic.
    let v6 = e.enrich(&hit("2001:db8::1", CHROME));
    assert_eq!(v6.geo.country_code, "");
    assert!(!v6.geo.reliable);
    let info = &e.databases()[0];
    assert_eq!(
        (info.database_type.as_str(), info.ip_version),
        ("city ipv4", 4)
    );

    let e6 = Enricher::new(cfg(Some(support::flat_v6_db(dir.path())), None)).unwrap();
    let r6 = e6.enrich(&hit("2001:db8::1", CHROME));
    assert_eq!(
        (r6.geo.country_code.as_str(), r6.geo.city.as_str()),
        ("CA", "Montreal")
    );
    assert_eq!(r6.geo.latitude, 45.5019);
}

#[test]
fn database_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Missing file.
    let err = Enricher::new(cfg(Some(dir.path().join("missing.mmdb")), None)).unwrap_err();
    assert!(matches!(err, EnrichError::Io { .. }), "{err}");
    assert!(err.is_retryable());
    // Not an MMDB.
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"definitely not a database").unwrap();
    let err = Enricher::new(cfg(Some(junk.clone()), None)).unwrap_err();
    assert!(matches!(err, EnrichError::InvalidDatabase { .. }), "{err}");
    assert!(err.to_string().contains("junk.mmdb"));
    // Unsupported type, and the right file in the wrong role.
    let anon = support::anonymous_ip_db(dir.path());
    let err = Enricher::new(cfg(Some(anon), None)).unwrap_err();
    assert!(
        matches!(err, EnrichError::UnsupportedDatabase { .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("GeoIP2-Anonymous-IP"));
    let asn = support::asn_db(dir.path());
    let err = Enricher::new(cfg(Some(asn), None)).unwrap_err();
    assert!(
        matches!(err, EnrichError::UnsupportedDatabase { .. }),
        "{err}"
    );
    let city = support::city_db(dir.path());
    let err = Enricher::new(cfg(None, Some(city))).unwrap_err();
    assert!(
        matches!(err, EnrichError::UnsupportedDatabase { .. }),
        "{err}"
    );
}

#[test]
fn databases_info() {
    let dir = tempfile::tempdir().unwrap();
    let city = support::city_db(dir.path());
    let e = Enricher::new(cfg(Some(city.clone()), Some(support::asn_db(dir.path())))).unwrap();
    let dbs = e.databases();
    assert_eq!(dbs.len(), 2);
    assert_eq!(dbs[0].path, city);
    assert_eq!(dbs[0].role, DatabaseRole::Location);
    assert_eq!(dbs[0].database_type, "GeoIP2-City");
    assert!(dbs[0].build_epoch > 1_600_000_000);
    assert_eq!(dbs[1].database_type, "GeoLite2-ASN");
    assert!(Enricher::new(cfg(None, None))
        .unwrap()
        .databases()
        .is_empty());
}

#[test]
fn reload_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::city_db(dir.path());
    let e = Arc::new(Enricher::new(cfg(Some(path.clone()), None)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let seen_new = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (e, stop, seen_new) = (e.clone(), stop.clone(), seen_new.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = e.enrich(&hit("81.2.69.142", CHROME));
                    // Every hit is located: by the old database or the new one, never neither.
                    assert_eq!(r.geo.country_code, "GB");
                    assert!(
                        r.geo.city == "London" || r.geo.city == "Westminster",
                        "{}",
                        r.geo.city
                    );
                    if r.geo.city == "Westminster" {
                        seen_new.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..20 {
        let name = if i % 2 == 0 { "Westminster" } else { "London" };
        support::replace(&support::city_writer(name), &path);
        e.reload().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    support::replace(&support::city_writer("Westminster"), &path);
    e.reload().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(total > 0);
    assert!(seen_new.load(Ordering::Relaxed) > 0);
    assert_eq!(
        e.enrich(&hit("81.2.69.142", CHROME)).geo.city,
        "Westminster"
    );

    // A failed reload keeps the databases in use. (Replaced by rename: rewriting a mapped
    // file in place is exactly what the crate doc forbids.)
    let tmp = path.with_extension("garbage");
    std::fs::write(&tmp, b"garbage").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(e.reload().unwrap_err().is_retryable());
    assert_eq!(
        e.enrich(&hit("81.2.69.142", CHROME)).geo.city,
        "Westminster"
    );
}

#[test]
fn reload_on_file_change_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::city_db(dir.path());
    let e = Enricher::new(EnrichConfig {
        reload_poll: Some(Duration::from_millis(50)),
        ..cfg(Some(path.clone()), None)
    })
    .unwrap();
    assert_eq!(e.enrich(&hit("81.2.69.142", CHROME)).geo.city, "London");
    // Make sure the new file's mtime differs even on coarse-timestamp filesystems.
    std::thread::sleep(Duration::from_millis(20));
    support::replace(&support::city_writer("Westminster"), &path);
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.enrich(&hit("81.2.69.142", CHROME)).geo.city != "Westminster" {
        assert!(
            Instant::now() < deadline,
            "poller did not pick up the new database"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
