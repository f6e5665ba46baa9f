//! README promise: "The client IP is looked up for geo first, then kept, truncated or dropped".
//!
//! Generated MMDB databases (City and ASN) whose records cover only the full client addresses
//! (an IPv4 /32 and an IPv6 /128), not the truncated networks. With `truncate` and `drop` the
//! event must still carry the geo and ASN of the full address, while `Network.ip` holds the
//! truncated address or nothing. A lookup of the truncated address itself, through the same
//! enricher, finds nothing: that is the independent check that the fixture does not cover the
//! truncated address, so a lookup after anonymisation would have come back empty.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use mmdb_writer::Writer;
use openclick_enrich::{EnrichConfig, Enricher, Hit, HitKind, IpPolicy};
use serde_json::json;

const V4: &str = "81.2.69.142";
const V4_TRUNCATED: &str = "81.2.69.0";
const V6: &str = "2001:db8:1234:5678::42";
const V6_TRUNCATED: &str = "2001:db8:1234::";

fn write(w: &Writer, path: &Path) {
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
}

/// City and ASN databases with one record per full address, nothing around them.
fn databases(dir: &Path) -> (PathBuf, PathBuf) {
    let mut city = Writer::builder("GeoIP2-City").build();
    let mut asn = Writer::builder("GeoLite2-ASN").build();
    for (ip, prefix, cc, name, n) in [
        (V4, 32, "GB", "Only-This-Host", 64_500u32),
        (V6, 128, "JP", "Only-This-V6-Host", 64_501),
    ] {
        let net: IpNet = format!("{ip}/{prefix}").parse().unwrap();
        city.insert(
            net,
            &json!({
                "country": {"iso_code": cc, "names": {"en": "Country"}},
                "city": {"names": {"en": name}},
                "location": {"latitude": 51.5, "longitude": -0.1, "accuracy_radius": 5,
                             "time_zone": "Europe/London"}
            }),
        )
        .unwrap();
        asn.insert(
            net,
            &json!({"autonomous_system_number": n, "autonomous_system_organization": name}),
        )
        .unwrap();
    }
    let (c, a) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    write(&city, &c);
    write(&asn, &a);
    (c, a)
}

fn enricher(dir: &Path, policy: &str) -> Enricher {
    let (city, asn) = databases(dir);
    Enricher::new(EnrichConfig {
        geoip_city: Some(city),
        geoip_asn: Some(asn),
        ip_policy: policy.parse::<IpPolicy>().unwrap(),
        reload_poll: None,
        min_delay_ms: 0,
        ..EnrichConfig::default()
    })
    .unwrap()
}

fn hit(ip: &str) -> Hit<'static> {
    Hit {
        kind: HitKind::Open,
        user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
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

#[test]
fn the_fixture_covers_the_full_addresses_only() {
    let dir = tempfile::tempdir().unwrap();
    let e = enricher(dir.path(), "keep");
    assert_eq!(e.enrich(&hit(V4)).geo.city, "Only-This-Host");
    assert_eq!(e.enrich(&hit(V6)).geo.city, "Only-This-V6-Host");
    for ip in [
        V4_TRUNCATED,
        V6_TRUNCATED,
        "81.2.69.143",
        "2001:db8:1234:5678::43",
    ] {
        let r = e.enrich(&hit(ip));
        assert_eq!(r.geo.country_code, "", "{ip} is covered");
        assert_eq!(r.network.asn, 0, "{ip} is covered");
    }
}

#[test]
fn truncate_keeps_the_geo_of_the_full_address_and_stores_the_truncated_one() {
    let dir = tempfile::tempdir().unwrap();
    let e = enricher(dir.path(), "truncate:24:48");
    let r = e.enrich(&hit(V4));
    assert_eq!(r.network.ip, V4_TRUNCATED);
    assert_eq!(
        (r.geo.country_code.as_str(), r.geo.city.as_str()),
        ("GB", "Only-This-Host")
    );
    assert_eq!(r.geo.time_zone, "Europe/London");
    assert_eq!(
        (r.network.asn, r.network.as_org.as_str()),
        (64_500, "Only-This-Host")
    );

    let r6 = e.enrich(&hit(V6));
    assert_eq!(r6.network.ip, V6_TRUNCATED);
    assert_eq!(
        (r6.geo.country_code.as_str(), r6.geo.city.as_str()),
        ("JP", "Only-This-V6-Host")
    );
    assert_eq!(r6.network.asn, 64_501);

    // The stored address is what the second lookup would have used: it finds nothing.
    let after = e.enrich(&hit(&r.network.ip));
    assert_eq!(
        (after.geo.country_code.as_str(), after.network.asn),
        ("", 0)
    );
    // IPv4-mapped IPv6 is the same client: same geo, IPv4 truncation.
    let mapped = e.enrich(&hit(&format!("::ffff:{V4}")));
    assert_eq!(mapped.geo, r.geo);
    assert_eq!(mapped.network.ip, V4_TRUNCATED);
}

#[test]
fn drop_keeps_the_geo_of_the_full_address_and_stores_no_address() {
    let dir = tempfile::tempdir().unwrap();
    let e = enricher(dir.path(), "drop");
    for (ip, cc, asn) in [(V4, "GB", 64_500), (V6, "JP", 64_501)] {
        let r = e.enrich(&hit(ip));
        assert_eq!(r.network.ip, "", "{ip}");
        assert_eq!(r.geo.country_code, cc, "{ip}");
        assert!(r.geo.city.starts_with("Only-This"), "{ip}: {:?}", r.geo);
        assert_eq!(r.network.asn, asn, "{ip}");
    }
}
