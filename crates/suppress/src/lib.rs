//! The suppression set: who must not be tracked.
//!
//! A contact who opts out, or asks to restrict processing, still gets the pixel and the redirect,
//! but the edge publishes no event for them. The set is checked on every hit, so it lives in
//! memory and reads take no lock that could be held across an `.await` (a sharded concurrent
//! map, lock-free for readers in practice).
//!
//! Entries are keyed by a keyed 64-bit SipHash-1-3 of `(tenant_id, contact_id)`, not by the
//! strings: 8 bytes per contact instead of two heap strings, and no allocation to look one up.
//! The cost is a false positive (a wrongly dropped event) when two different contacts hash
//! alike: with `n` entries, a lookup of an unsuppressed contact collides with probability about
//! `n / 2^64` (5e-13 at 10 million entries). The hash key is random per process, so a collision
//! cannot be engineered from outside and does not repeat across replicas or restarts.
//!
//! Whole tenants can be suppressed too (tracking disabled for an account).
//!
//! Sources: a snapshot file read at start ([`SuppressionSet::load_file`]); the Kafka topic and
//! admin API come on top of the same [`SuppressionSet::insert`] / [`SuppressionSet::remove`].

use std::hash::Hasher;
use std::io::BufRead;
use std::path::Path;

use dashmap::{DashMap, DashSet};
use siphasher::sip::SipHasher13;

/// Why a contact is suppressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The contact opted out of tracking.
    OptOut,
    /// The contact asked to restrict processing (GDPR art. 18); treated as an opt-out.
    Restrict,
    /// The contact asked for erasure.
    Erase,
    /// The contact complained (spam report).
    Complaint,
    /// The address bounced.
    Bounce,
    /// Suppressed by an operator.
    Manual,
}

impl std::str::FromStr for Reason {
    type Err = SuppressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "" | "opt_out" | "optout" | "opt-out" | "unsubscribe" => Reason::OptOut,
            "restrict" => Reason::Restrict,
            "erase" => Reason::Erase,
            "complaint" => Reason::Complaint,
            "bounce" => Reason::Bounce,
            "manual" => Reason::Manual,
            other => return Err(SuppressError::Parse(format!("unknown reason {other:?}"))),
        })
    }
}

/// Errors loading or changing the set.
#[derive(Debug, thiserror::Error)]
pub enum SuppressError {
    /// Reading a snapshot file failed. Retryable (the file may appear or become readable).
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A snapshot line could not be parsed. Not retryable.
    #[error("{0}")]
    Parse(String),
}

impl SuppressError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SuppressError::Io { .. })
    }
}

/// The in-memory suppression set.
#[derive(Debug)]
pub struct SuppressionSet {
    k0: u64,
    k1: u64,
    contacts: DashMap<u64, Reason>,
    tenants: DashSet<String>,
}

impl Default for SuppressionSet {
    fn default() -> Self {
        Self::new()
    }
}

impl SuppressionSet {
    /// An empty set with a random hash key.
    pub fn new() -> Self {
        SuppressionSet {
            k0: rand::random(),
            k1: rand::random(),
            contacts: DashMap::new(),
            tenants: DashSet::new(),
        }
    }

    fn key(&self, tenant: &str, contact: &str) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(tenant.as_bytes());
        h.write_u8(0xff); // never appears in UTF-8: separates tenant from contact unambiguously
        h.write(contact.as_bytes());
        h.finish()
    }

    /// Whether hits from this contact must produce no event.
    pub fn is_suppressed(&self, tenant: &str, contact: &str) -> bool {
        (!self.tenants.is_empty() && self.tenants.contains(tenant))
            || self.contacts.contains_key(&self.key(tenant, contact))
    }

    /// The reason a contact is suppressed, if it is (not counting tenant-wide suppression).
    pub fn reason(&self, tenant: &str, contact: &str) -> Option<Reason> {
        self.contacts.get(&self.key(tenant, contact)).map(|r| *r)
    }

    /// Suppresses a contact. Returns whether it was new.
    pub fn insert(&self, tenant: &str, contact: &str, reason: Reason) -> bool {
        self.contacts
            .insert(self.key(tenant, contact), reason)
            .is_none()
    }

    /// Lifts a contact's suppression. Returns whether it was present.
    pub fn remove(&self, tenant: &str, contact: &str) -> bool {
        self.contacts.remove(&self.key(tenant, contact)).is_some()
    }

    /// Disables tracking for a whole tenant.
    pub fn suppress_tenant(&self, tenant: &str) {
        self.tenants.insert(tenant.to_string());
    }

    /// Re-enables tracking for a tenant.
    pub fn unsuppress_tenant(&self, tenant: &str) -> bool {
        self.tenants.remove(tenant).is_some()
    }

    /// Number of suppressed contacts.
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Whether no contact is suppressed.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    /// Loads a snapshot file: CSV lines `tenant,contact[,reason]` (a `tenant,contact` header
    /// line and `#` comments are skipped), or NDJSON lines
    /// `{"tenant":"…","contact":"…","reason":"opt_out"}`. Returns the number of entries read.
    pub fn load_file(&self, path: &Path) -> Result<usize, SuppressError> {
        let io = |source| SuppressError::Io {
            path: path.display().to_string(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        let mut n = 0usize;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(io)?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if i == 0 && line.starts_with("tenant,contact") {
                continue;
            }
            let at = |e: String| SuppressError::Parse(format!("{}:{}: {e}", path.display(), i + 1));
            let (tenant, contact, reason) = parse_line(line).map_err(at)?;
            self.insert(&tenant, &contact, reason);
            n += 1;
            if n % 1_000_000 == 0 {
                tracing::info!(entries = n, "loading suppression snapshot");
            }
        }
        tracing::info!(entries = n, file = %path.display(), "suppression snapshot loaded");
        Ok(n)
    }
}

#[derive(serde::Deserialize)]
struct JsonLine {
    tenant: String,
    contact: String,
    #[serde(default)]
    reason: Option<String>,
}

fn parse_line(line: &str) -> Result<(String, String, Reason), String> {
    if line.starts_with('{') {
        let j: JsonLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let reason = match j.reason {
            Some(r) => r.parse().map_err(|e: SuppressError| e.to_string())?,
            None => Reason::OptOut,
        };
        return Ok((j.tenant, j.contact, reason));
    }
    let mut parts = line.splitn(3, ',');
    let tenant = parts.next().unwrap_or("").trim();
    let contact = parts.next().unwrap_or("").trim();
    if tenant.is_empty() || contact.is_empty() {
        return Err("expected `tenant,contact[,reason]`".into());
    }
    let reason = match parts.next() {
        Some(r) => r.parse().map_err(|e: SuppressError| e.to_string())?,
        None => Reason::OptOut,
    };
    Ok((tenant.to_string(), contact.to_string(), reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn insert_remove_contains() {
        let s = SuppressionSet::new();
        assert!(!s.is_suppressed("t", "c"));
        assert!(s.insert("t", "c", Reason::OptOut));
        assert!(s.is_suppressed("t", "c"));
        assert!(!s.is_suppressed("t", "c2"));
        assert!(!s.is_suppressed("t2", "c"));
        assert_eq!(s.reason("t", "c"), Some(Reason::OptOut));
        assert!(s.remove("t", "c"));
        assert!(!s.is_suppressed("t", "c"));
    }

    #[test]
    fn tenant_contact_boundary_is_unambiguous() {
        let s = SuppressionSet::new();
        s.insert("ab", "c", Reason::OptOut);
        assert!(!s.is_suppressed("a", "bc"));
    }

    #[test]
    fn whole_tenant() {
        let s = SuppressionSet::new();
        s.suppress_tenant("t9");
        assert!(s.is_suppressed("t9", "anyone"));
        assert!(!s.is_suppressed("t1", "anyone"));
        assert!(s.unsuppress_tenant("t9"));
        assert!(!s.is_suppressed("t9", "anyone"));
    }

    #[test]
    fn loads_csv_and_ndjson() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "tenant,contact,reason").unwrap();
        writeln!(f, "t1,c1").unwrap();
        writeln!(f, "# comment").unwrap();
        writeln!(f, "t1,c2,restrict").unwrap();
        writeln!(f, r#"{{"tenant":"t2","contact":"c3","reason":"erase"}}"#).unwrap();
        let s = SuppressionSet::new();
        assert_eq!(s.load_file(f.path()).unwrap(), 3);
        assert_eq!(s.reason("t1", "c1"), Some(Reason::OptOut));
        assert_eq!(s.reason("t1", "c2"), Some(Reason::Restrict));
        assert_eq!(s.reason("t2", "c3"), Some(Reason::Erase));
    }

    #[test]
    fn bad_line_is_a_clear_error() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "t1,c1").unwrap();
        writeln!(f, "only-one-field").unwrap();
        let e = SuppressionSet::new().load_file(f.path()).unwrap_err();
        assert!(e.to_string().contains(":2:"), "{e}");
        assert!(!e.is_retryable());
        let e = SuppressionSet::new()
            .load_file(Path::new("/nonexistent/x.csv"))
            .unwrap_err();
        assert!(e.is_retryable());
    }
}
