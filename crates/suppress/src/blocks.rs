//! The redirect kill switch: clicks that must never reach their destination.
//!
//! A phishing destination signed with the edge's key would otherwise keep redirecting until the
//! whole key is rotated. A block stops it at once, on every replica: a blocked click gets a small
//! `410 Gone` page and never the destination. Blocks are scoped:
//! - a whole tenant's links ([`BlockScope::Tenant`]);
//! - one campaign ([`BlockScope::Campaign`]) or one link id ([`BlockScope::Link`]) of a tenant;
//! - a destination host, for every tenant ([`BlockScope::Host`]): matched case-insensitively
//!   on the exact host and on every subdomain of it (blocking `evil.example` blocks
//!   `login.evil.example` too).
//!
//! Each block carries a reason and a time. Blocks travel the same road as suppressions: the
//! admin API writes them through the [`crate::SuppressionWriter`] to the compacted control topic
//! (key prefix `block:`, see [`crate::record`]), and every replica's follower applies them here.
//! So this is the same replicated per-tenant state mechanism, with its own key space, not a
//! second one.
//!
//! Lookups take no lock: a flag says whether any block exists (the common case answers after
//! one atomic load), and the blocks themselves sit in a copy-on-write map (blocks are few and
//! rare; each change copies it, which costs microseconds for the hundreds a deployment may
//! hold).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::SuppressError;

/// What a block covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockScope {
    /// Every link of a tenant.
    Tenant {
        /// Tenant id.
        tenant: String,
    },
    /// Every link of one campaign.
    Campaign {
        /// Tenant id.
        tenant: String,
        /// Campaign id.
        campaign: String,
    },
    /// One link id of a tenant (across its campaigns).
    Link {
        /// Tenant id.
        tenant: String,
        /// Link id.
        link: String,
    },
    /// A destination host and its subdomains, for every tenant. Stored lower-case.
    Host {
        /// Host name (or IP literal), no port.
        host: String,
    },
}

impl BlockScope {
    /// Checks the ids (the one id rule; a link id like a campaign id) and normalises a host
    /// (lower case; 1..=253 bytes of `[a-z0-9.-]`, or an IP literal in brackets).
    pub fn validated(self) -> Result<BlockScope, SuppressError> {
        use openclick_common::ids::{check_id, IdKind};
        let inv = |e: openclick_common::ids::IdError| SuppressError::Invalid(e.to_string());
        Ok(match self {
            BlockScope::Tenant { tenant } => {
                check_id(IdKind::Tenant, &tenant).map_err(inv)?;
                BlockScope::Tenant { tenant }
            }
            BlockScope::Campaign { tenant, campaign } => {
                check_id(IdKind::Tenant, &tenant).map_err(inv)?;
                check_id(IdKind::Campaign, &campaign).map_err(inv)?;
                BlockScope::Campaign { tenant, campaign }
            }
            BlockScope::Link { tenant, link } => {
                check_id(IdKind::Tenant, &tenant).map_err(inv)?;
                check_id(IdKind::Campaign, &link).map_err(inv)?;
                BlockScope::Link { tenant, link }
            }
            BlockScope::Host { host } => {
                let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
                let host = canonical_ipv6_literal(&host).unwrap_or(host);
                let ok = !host.is_empty()
                    && host.len() <= 253
                    && (host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
                        || (host.starts_with('[') && host.ends_with(']')));
                if !ok {
                    return Err(SuppressError::Invalid(
                        "host must be a host name or a bracketed IP literal, without port".into(),
                    ));
                }
                BlockScope::Host { host }
            }
        })
    }

    /// The kind, as a fixed word (`tenant`, `campaign`, `link`, `host`).
    pub fn kind(&self) -> &'static str {
        match self {
            BlockScope::Tenant { .. } => "tenant",
            BlockScope::Campaign { .. } => "campaign",
            BlockScope::Link { .. } => "link",
            BlockScope::Host { .. } => "host",
        }
    }
}

/// Why and when a block was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Why (an operator's words, e.g. a ticket reference; never personal data).
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

/// One change to the block list: `Some` adds or replaces, `None` lifts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockChange {
    /// What it covers.
    pub scope: BlockScope,
    /// The block, or `None` to lift it.
    pub block: Option<Block>,
}

/// The blocks in force on this replica.
#[derive(Default)]
pub struct BlockList {
    any: AtomicBool,
    map: ArcSwap<HashMap<BlockScope, Block>>,
    writer: Mutex<()>,
    blocked_clicks: AtomicU64,
}

impl std::fmt::Debug for BlockList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockList")
            .field("blocks", &self.map.load().len())
            .finish_non_exhaustive()
    }
}

impl BlockList {
    /// No blocks.
    pub fn new() -> BlockList {
        BlockList::default()
    }

    /// Applies one change. Returns whether the list changed.
    pub fn apply(&self, change: &BlockChange) -> bool {
        let _w = self.writer.lock();
        let mut next = HashMap::clone(&self.map.load());
        let changed = match &change.block {
            Some(b) => next.insert(change.scope.clone(), b.clone()).as_ref() != Some(b),
            None => next.remove(&change.scope).is_some(),
        };
        self.any.store(!next.is_empty(), Ordering::Release);
        self.map.store(Arc::new(next));
        changed
    }

    /// The block a click falls under, if any: its tenant, campaign, link id, or destination
    /// host (or a parent domain of it). Counts a blocked click.
    #[inline]
    pub fn check(&self, tenant: &str, campaign: &str, link: &str, url: &str) -> Option<Block> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let map = self.map.load();
        let found = self.find(&map, tenant, campaign, link, url);
        if found.is_some() {
            self.blocked_clicks.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    fn find(
        &self,
        map: &HashMap<BlockScope, Block>,
        tenant: &str,
        campaign: &str,
        link: &str,
        url: &str,
    ) -> Option<Block> {
        // Blocks are rare: the scopes are built only when some block exists.
        let t = tenant.to_string();
        let mut keys = vec![BlockScope::Tenant { tenant: t.clone() }];
        if !campaign.is_empty() {
            keys.push(BlockScope::Campaign {
                tenant: t.clone(),
                campaign: campaign.to_string(),
            });
        }
        if !link.is_empty() {
            keys.push(BlockScope::Link {
                tenant: t,
                link: link.to_string(),
            });
        }
        if let Some(host) = url_host(url) {
            // As a browser reads it: `evil.example.` is `evil.example`, and an IPv6 address has
            // one spelling (`[2001:DB8:0::1]` is `[2001:db8::1]`), as in `validated`.
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let host = canonical_ipv6_literal(&host).unwrap_or(host);
            let mut h = host.as_str();
            loop {
                keys.push(BlockScope::Host {
                    host: h.to_string(),
                });
                match h.split_once('.') {
                    Some((_, parent)) if !parent.is_empty() && !h.starts_with('[') => h = parent,
                    _ => break,
                }
            }
        }
        keys.iter().find_map(|k| map.get(k).cloned())
    }

    /// Every block in force, sorted.
    pub fn list(&self) -> Vec<(BlockScope, Block)> {
        let mut v: Vec<_> = self
            .map
            .load()
            .iter()
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The block for exactly this scope.
    pub fn get(&self, scope: &BlockScope) -> Option<Block> {
        self.map.load().get(scope).cloned()
    }

    /// Emits the list's series through the `metrics` macros.
    pub fn export_metrics(&self) {
        metrics::gauge!("openclick_redirect_blocks").set(self.map.load().len() as f64);
        metrics::counter!("openclick_blocked_clicks_total")
            .absolute(self.blocked_clicks.load(Ordering::Relaxed));
    }
}

/// `[addr]` in the one text form of the IPv6 address (RFC 5952), if `host` is a bracketed IPv6
/// literal.
fn canonical_ipv6_literal(host: &str) -> Option<String> {
    let inner = host.strip_prefix('[')?.strip_suffix(']')?;
    let addr: std::net::Ipv6Addr = inner.parse().ok()?;
    Some(format!("[{addr}]"))
}

/// The host of an absolute http(s) URL (as the token crate validated it): between `://` and
/// the first `/`, `?` or `#`, without the port. `None` for anything else.
pub fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.starts_with('[') {
        return authority.find(']').map(|end| &authority[..=end]);
    }
    let host = authority.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(scope: BlockScope) -> BlockChange {
        BlockChange {
            scope: scope.validated().unwrap(),
            block: Some(Block {
                reason: "phishing report 17".into(),
                at_ms: 5,
            }),
        }
    }

    #[test]
    fn hosts_are_read_like_the_destination_validator_writes_them() {
        assert_eq!(
            url_host("https://Shop.Example.com:8443/a?b#c"),
            Some("Shop.Example.com")
        );
        assert_eq!(url_host("http://e.com"), Some("e.com"));
        assert_eq!(url_host("http://[2001:db8::1]:80/x"), Some("[2001:db8::1]"));
        assert_eq!(url_host("mailto:x@e.com"), None);
    }

    #[test]
    fn every_scope_blocks_what_it_covers_and_nothing_else() {
        let l = BlockList::new();
        let url = "https://login.evil.example/a";
        assert_eq!(l.check("acme", "spring", "hero", url), None);
        l.apply(&block(BlockScope::Host {
            host: "EVIL.example.".into(),
        }));
        assert!(
            l.check("acme", "spring", "hero", url).is_some(),
            "subdomain"
        );
        assert!(
            l.check("other", "", "", "http://evil.example:81/")
                .is_some(),
            "any tenant"
        );
        assert_eq!(
            l.check("acme", "spring", "hero", "https://notevil.example/"),
            None
        );
        assert_eq!(
            l.check("acme", "spring", "hero", "https://evil.example.com/"),
            None
        );

        let l = BlockList::new();
        l.apply(&block(BlockScope::Link {
            tenant: "acme".into(),
            link: "hero".into(),
        }));
        assert!(l.check("acme", "spring", "hero", url).is_some());
        assert_eq!(l.check("acme", "spring", "footer", url), None);
        assert_eq!(
            l.check("globex", "spring", "hero", url),
            None,
            "other tenant"
        );

        let l = BlockList::new();
        l.apply(&block(BlockScope::Campaign {
            tenant: "acme".into(),
            campaign: "spring".into(),
        }));
        assert!(l.check("acme", "spring", "x", url).is_some());
        assert_eq!(l.check("acme", "summer", "x", url), None);

        let l = BlockList::new();
        let t = block(BlockScope::Tenant {
            tenant: "acme".into(),
        });
        assert!(l.apply(&t));
        assert!(!l.apply(&t), "same block twice: no change");
        assert!(l.check("acme", "", "", url).is_some());
        assert!(l.apply(&BlockChange {
            scope: t.scope.clone(),
            block: None
        }));
        assert_eq!(l.check("acme", "", "", url), None);
        assert!(l.list().is_empty());
    }

    /// Found by the `destination` fuzz target (fuzz/): a block on a host did not block the
    /// same host written with a trailing dot, or an IPv6 address spelt another way, which a
    /// browser reads as the same host.
    #[test]
    fn other_spellings_of_a_blocked_host_are_blocked() {
        let l = BlockList::new();
        l.apply(&block(BlockScope::Host {
            host: "evil.example".into(),
        }));
        for url in [
            "https://evil.example./",
            "https://login.evil.example.:8443/x",
        ] {
            assert!(l.check("acme", "", "", url).is_some(), "{url}");
        }
        let l = BlockList::new();
        l.apply(&block(BlockScope::Host {
            host: "xn-.".into(),
        }));
        assert!(l.check("acme", "", "", "http://xn-.").is_some());

        let l = BlockList::new();
        l.apply(&block(BlockScope::Host {
            host: "[2001:DB8:0:0::1]".into(),
        }));
        for url in [
            "https://[2001:db8::1]/",
            "https://[2001:0db8:0000::0001]:443/",
            "http://[2001:DB8::0:1]",
        ] {
            assert!(l.check("acme", "", "", url).is_some(), "{url}");
        }
        assert_eq!(l.check("acme", "", "", "https://[2001:db8::2]/"), None);
    }

    #[test]
    fn scopes_are_validated() {
        assert!(BlockScope::Tenant {
            tenant: "a/b".into()
        }
        .validated()
        .is_err());
        assert!(BlockScope::Host {
            host: "evil.example:443".into()
        }
        .validated()
        .is_err());
        assert!(BlockScope::Host { host: "".into() }.validated().is_err());
        assert_eq!(
            BlockScope::Host {
                host: " Evil.EXAMPLE. ".into()
            }
            .validated()
            .unwrap(),
            BlockScope::Host {
                host: "evil.example".into()
            }
        );
    }
}
