//! The suppression set: who must not be tracked.
//!
//! A contact who opts out, or asks to restrict processing, still gets the pixel and the redirect,
//! but the edge publishes no event for them. The set is checked on every hit, so it lives in
//! memory and reads take no lock at all (see [`table`](self) below).
//!
//! # Scopes
//! - a contact: `(tenant_id, contact_id)`, the bulk of the set (millions of entries);
//! - a whole tenant: tracking disabled for an account;
//! - a campaign: `(tenant_id, campaign_id)`, tracking disabled for one campaign;
//! - a contact in one list: `(tenant_id, list_id, contact_id)`, what a list unsubscribe
//!   (`/u/TOKEN` with a `list_id`, docs/token-v1.md) writes. Open and click tokens name no list,
//!   so these entries are **not** consulted by [`SuppressionSet::check`] (a hit's cost does not
//!   change, however many there are): a contact who left one list is still tracked on the
//!   tenant's other mail, and the sender stops mailing that list. They are read by
//!   [`SuppressionSet::check_in_list`] (the unsubscribe page) and [`SuppressionSet::get`], and
//!   replicated like every scope.
//!
//! # Structure and its cost
//! Contacts are stored as a keyed 64-bit hash of `(tenant, contact)` (foldhash with a random
//! per-process seed), not as strings, in a dense sharded open-addressing table: `AtomicU64`
//! slots (61 hash bits + a 3-bit reason) in groups of eight per cache line, plus one tag byte
//! per slot in a separate small array that answers most lookups of absent contacts without
//! touching the slots. 9 bytes per slot, 10 to 15.5 bytes of memory per entry depending on
//! where each shard is in its growth cycle (12.9 measured at 10 million). Readers probe it with
//! plain atomic loads through a per-thread cached snapshot of each shard: lock-free, fence-free,
//! never blocked by writers; writers take a short per-shard mutex (nothing here is async, so it
//! cannot be held across an `.await`). It replaced a `DashMap<u64, Reason>`, which took about
//! 2.2x the memory for slower lookups: see `BENCHMARKS.md` and `benches/lookup.rs`.
//!
//! # False positives
//! Storing 61 bits of hash instead of the key means two different contacts can look alike: a
//! lookup of a contact who is *not* suppressed wrongly matches with probability about
//! `n / 2^61`, where `n` is the number of entries: 4.3e-12 at 10 million entries, i.e. one
//! wrongly dropped event per ~230 billion hits of unsuppressed contacts. The hash seed is random
//! per process, so a collision does not repeat across replicas or restarts. foldhash is not a
//! cryptographic PRF, but contact ids reach the edge only inside tokens signed with our key, so
//! an outsider cannot choose ids to aim at a collision. There are no false negatives: a
//! suppressed contact is always found.
//!
//! # Sources
//! A snapshot file read at start ([`SuppressionSet::load_file`], lines parsed by [`parse`]),
//! the compacted Kafka topic followed by every replica (its records are [`record`]; the Kafka
//! clients live in `openclick-kafka`), and the admin API, which writes to that topic through a
//! [`SuppressionWriter`].

pub mod blocks;
pub mod parse;
pub mod record;
mod table;
mod writer;

use std::hash::{BuildHasher, Hasher};
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

pub use writer::{SuppressionWriter, WriteFuture};

/// Why a contact is suppressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The contact opted out of tracking.
    OptOut,
    /// The contact asked to restrict processing (GDPR art. 18); treated as an opt-out.
    Restrict,
    /// The contact asked for erasure (also published as an erasure request).
    Erase,
    /// The contact complained (spam report).
    Complaint,
    /// The address bounced.
    Bounce,
    /// Suppressed by an operator.
    Manual,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 6] = [
        Reason::OptOut,
        Reason::Restrict,
        Reason::Erase,
        Reason::Complaint,
        Reason::Bounce,
        Reason::Manual,
    ];

    /// The snake_case name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::OptOut => "opt_out",
            Reason::Restrict => "restrict",
            Reason::Erase => "erase",
            Reason::Complaint => "complaint",
            Reason::Bounce => "bounce",
            Reason::Manual => "manual",
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Reason {
        Reason::ALL[(c.clamp(1, 6) - 1) as usize]
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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

/// What a suppression entry covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One contact of one tenant.
    Contact {
        /// Tenant id.
        tenant: String,
        /// Contact id.
        contact: String,
    },
    /// Every contact of a tenant (tracking disabled for the account).
    Tenant {
        /// Tenant id.
        tenant: String,
    },
    /// Every contact in one campaign of a tenant.
    Campaign {
        /// Tenant id.
        tenant: String,
        /// Campaign id.
        campaign: String,
    },
    /// One contact of a tenant, for one list only (a list unsubscribe). Not checked on hits:
    /// see the crate docs.
    ContactInList {
        /// Tenant id.
        tenant: String,
        /// List id (no `/`).
        list: String,
        /// Contact id.
        contact: String,
    },
}

impl Scope {
    /// The tenant the scope belongs to.
    pub fn tenant(&self) -> &str {
        match self {
            Scope::Contact { tenant, .. }
            | Scope::Tenant { tenant }
            | Scope::Campaign { tenant, .. }
            | Scope::ContactInList { tenant, .. } => tenant,
        }
    }

    /// Checks ids by the one id rule ([`openclick_common::ids`]): 1..=255 bytes, no control
    /// characters, a tenant id without `/` or `:` (they delimit record keys).
    pub fn validate(&self) -> Result<(), SuppressError> {
        use openclick_common::ids::{check_id, IdKind};
        let r =
            match self {
                Scope::Contact { tenant, contact } => check_id(IdKind::Tenant, tenant)
                    .and_then(|_| check_id(IdKind::Contact, contact)),
                Scope::Tenant { tenant } => check_id(IdKind::Tenant, tenant),
                Scope::Campaign { tenant, campaign } => check_id(IdKind::Tenant, tenant)
                    .and_then(|_| check_id(IdKind::Campaign, campaign)),
                Scope::ContactInList {
                    tenant,
                    list,
                    contact,
                } => check_id(IdKind::Tenant, tenant)
                    .and_then(|_| check_id(IdKind::List, list))
                    .and_then(|_| check_id(IdKind::Contact, contact)),
            };
        r.map_err(|e| SuppressError::Invalid(e.to_string()))
    }
}

/// How far in the future a change's time may lie (clock skew between writers).
pub const MAX_FUTURE_AT_MS: i64 = 5 * 60 * 1000;

/// A change time brought into the sane window `[0, now + MAX_FUTURE_AT_MS]`: a time far in the
/// future (`i64::MAX` from a buggy writer or a hostile record) would otherwise pin the
/// "last change" age at zero and hide a stalled follower.
pub fn clamp_at_ms(at_ms: i64, now_ms: i64) -> i64 {
    // `.max(0)`: `clamp` panics when its maximum is below its minimum (a clock before 1970).
    at_ms.clamp(0, now_ms.saturating_add(MAX_FUTURE_AT_MS).max(0))
}

/// One change to the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What it covers.
    pub scope: Scope,
    /// `Some(reason)` adds (or updates) the entry, `None` removes it.
    pub reason: Option<Reason>,
    /// When the change was made, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// Errors loading or changing the set, or syncing it through Kafka.
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
    /// A snapshot line or a record could not be parsed. Not retryable.
    #[error("{0}")]
    Parse(String),
    /// An id or request is not acceptable. Not retryable.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The Kafka client could not be configured. Not retryable.
    #[error("kafka configuration: {0}")]
    Config(String),
    /// The replicated store (the Kafka topic) did not acknowledge a write, or a read failed.
    /// Retryable. The message names no contact.
    #[error("kafka: {0}")]
    Kafka(String),
}

impl SuppressError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SuppressError::Io { .. } | SuppressError::Kafka(_))
    }
}

/// One stripe of the hit counters, on its own cache lines so that threads do not fight over one.
#[repr(align(128))]
#[derive(Default)]
struct Counters {
    lookups: AtomicU64,
    /// Suppressed checks, by reason code - 1.
    dropped: [AtomicU64; 6],
}

/// Adds one to a counter: a plain load and store on the thread's own stripe, an atomic add on
/// the shared one.
#[inline]
fn bump(c: &AtomicU64, owned: bool) {
    if owned {
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    } else {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Lookup counter stripes owned by one thread each, plus one shared by any further threads.
const STRIPES: usize = 32;

/// This thread's own counter stripe, if it got one. Only its owner ever writes a stripe, so a
/// count is a plain load and store: no locked instruction (which would be a full barrier on
/// x86) on the hot path. Threads beyond the first `STRIPES` share the last, atomically added.
#[inline]
fn stripe() -> Option<usize> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: Option<usize> = {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            (i < STRIPES).then_some(i)
        };
    }
    MINE.try_with(|m| *m).ok().flatten()
}

/// Sync progress, written by the topic follower, read by `/readyz` and `/metrics`.
#[derive(Debug)]
struct SyncStatus {
    caught_up: AtomicBool,
    lag: AtomicU64,
    last_change_at_ms: AtomicI64,
    applied: AtomicU64,
}

/// The in-memory suppression set.
pub struct SuppressionSet {
    /// The keyed hash of every key: foldhash with a random per-process seed.
    hash: foldhash::quality::SeedableRandomState,
    contacts: table::DenseTable,
    /// Tenant and campaign scopes, in a table of their own (the same structure as contacts),
    /// so a change costs one insert or remove whatever the number of scopes.
    scopes: table::DenseTable,
    /// Whether any scope exists: lets the common case skip two hashes and probes. Set and
    /// cleared only under `scopes_writer`, before an insert and after a removal.
    has_scopes: AtomicBool,
    scopes_writer: Mutex<()>,
    /// Contact-in-list entries: never looked up by [`Self::check`] (hits name no list).
    lists: table::DenseTable,
    counters: [Counters; STRIPES + 1],
    status: SyncStatus,
    /// This replica's own writes whose echo from the topic has not been read yet: scope -> the
    /// change's `at_ms`. See [`Self::apply_local`]. A handful of entries at most (one per
    /// unsubscribe in flight), so a plain map behind a mutex the hot path never takes.
    local: Mutex<std::collections::HashMap<Scope, i64>>,
}

impl std::fmt::Debug for SuppressionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuppressionSet")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for SuppressionSet {
    fn default() -> Self {
        Self::new()
    }
}

const TENANT_DOMAIN: u8 = 0xfe;
const CAMPAIGN_DOMAIN: u8 = 0xfd;
const LIST_DOMAIN: u8 = 0xfc;

impl SuppressionSet {
    /// An empty set with a random hash key. Ready (caught up) until a follower says otherwise.
    pub fn new() -> Self {
        SuppressionSet {
            hash: foldhash::quality::SeedableRandomState::random(),
            contacts: table::DenseTable::new(),
            scopes: table::DenseTable::new(),
            has_scopes: AtomicBool::new(false),
            scopes_writer: Mutex::new(()),
            lists: table::DenseTable::new(),
            counters: std::array::from_fn(|_| Counters::default()),
            status: SyncStatus {
                caught_up: AtomicBool::new(true),
                lag: AtomicU64::new(0),
                last_change_at_ms: AtomicI64::new(0),
                applied: AtomicU64::new(0),
            },
            local: Mutex::new(std::collections::HashMap::new()),
        }
    }

    #[inline]
    fn hasher(&self) -> foldhash::quality::FoldHasher<'static> {
        self.hash.build_hasher()
    }

    #[inline]
    fn contact_key(&self, tenant: &str, contact: &str) -> u64 {
        let mut h = self.hasher();
        h.write(tenant.as_bytes());
        h.write_u8(0xff); // never appears in UTF-8: separates tenant from contact unambiguously
        h.write(contact.as_bytes());
        h.finish()
    }

    fn tenant_key(&self, tenant: &str) -> u64 {
        let mut h = self.hasher();
        h.write_u8(TENANT_DOMAIN);
        h.write(tenant.as_bytes());
        h.finish()
    }

    fn campaign_key(&self, tenant: &str, campaign: &str) -> u64 {
        let mut h = self.hasher();
        h.write_u8(CAMPAIGN_DOMAIN);
        h.write(tenant.as_bytes());
        h.write_u8(0xff);
        h.write(campaign.as_bytes());
        h.finish()
    }

    fn list_key(&self, tenant: &str, list: &str, contact: &str) -> u64 {
        let mut h = self.hasher();
        h.write_u8(LIST_DOMAIN);
        h.write(tenant.as_bytes());
        h.write_u8(0xff);
        h.write(list.as_bytes());
        h.write_u8(0xff);
        h.write(contact.as_bytes());
        h.finish()
    }

    /// Whether mail of list `list` must not reach this contact: the contact is suppressed for
    /// that list, across the tenant, or the tenant is (campaign scopes are not consulted: a
    /// list is not a campaign). Not counted in the metrics; not on the hit path.
    pub fn check_in_list(&self, tenant: &str, list: &str, contact: &str) -> Option<Reason> {
        self.lookup(tenant, None, contact).or_else(|| {
            self.lists
                .get(self.list_key(tenant, list, contact))
                .map(Reason::from_code)
        })
    }

    /// Whether hits from this contact must produce no event (contact or whole tenant).
    /// Lock-free; not counted in the metrics (see [`Self::check`]).
    #[inline]
    pub fn is_suppressed(&self, tenant: &str, contact: &str) -> bool {
        self.lookup(tenant, None, contact).is_some()
    }

    /// The edge's check for one hit: the reason its event must be dropped, if any (contact,
    /// campaign or whole tenant). Counts the lookup and, when suppressed, the drop by reason.
    #[inline]
    pub fn check(&self, tenant: &str, campaign: &str, contact: &str) -> Option<Reason> {
        let stripe = stripe();
        let counters = &self.counters[stripe.unwrap_or(STRIPES)];
        bump(&counters.lookups, stripe.is_some());
        let r = self.lookup(tenant, Some(campaign), contact);
        if let Some(r) = r {
            bump(&counters.dropped[r.code() as usize - 1], stripe.is_some());
        }
        r
    }

    #[inline]
    fn lookup(&self, tenant: &str, campaign: Option<&str>, contact: &str) -> Option<Reason> {
        if self.has_scopes.load(Ordering::Acquire) {
            if let Some(r) = self.scopes.get(self.tenant_key(tenant)) {
                return Some(Reason::from_code(r));
            }
            if let Some(c) = campaign.filter(|c| !c.is_empty()) {
                if let Some(r) = self.scopes.get(self.campaign_key(tenant, c)) {
                    return Some(Reason::from_code(r));
                }
            }
        }
        self.contacts
            .get(self.contact_key(tenant, contact))
            .map(Reason::from_code)
    }

    /// The reason a contact is suppressed, if it is (not counting tenant or campaign scopes).
    pub fn reason(&self, tenant: &str, contact: &str) -> Option<Reason> {
        self.contacts
            .get(self.contact_key(tenant, contact))
            .map(Reason::from_code)
    }

    /// The entry for exactly this scope, if any.
    pub fn get(&self, scope: &Scope) -> Option<Reason> {
        match scope {
            Scope::Contact { tenant, contact } => self.reason(tenant, contact),
            Scope::Tenant { tenant } => self
                .scopes
                .get(self.tenant_key(tenant))
                .map(Reason::from_code),
            Scope::Campaign { tenant, campaign } => self
                .scopes
                .get(self.campaign_key(tenant, campaign))
                .map(Reason::from_code),
            Scope::ContactInList {
                tenant,
                list,
                contact,
            } => self
                .lists
                .get(self.list_key(tenant, list, contact))
                .map(Reason::from_code),
        }
    }

    /// Suppresses a contact. Returns whether it was new.
    pub fn insert(&self, tenant: &str, contact: &str, reason: Reason) -> bool {
        self.contacts
            .insert(self.contact_key(tenant, contact), reason.code())
    }

    /// Lifts a contact's suppression. Returns whether it was present.
    pub fn remove(&self, tenant: &str, contact: &str) -> bool {
        self.contacts.remove(self.contact_key(tenant, contact))
    }

    fn set_scope(&self, key: u64, reason: Option<Reason>) -> bool {
        let _w = self.scopes_writer.lock();
        match reason {
            Some(r) => {
                self.has_scopes.store(true, Ordering::Release);
                let old = self.scopes.get(key);
                self.scopes.insert(key, r.code());
                old != Some(r.code())
            }
            None => {
                let removed = self.scopes.remove(key);
                if self.scopes.len() == 0 {
                    self.has_scopes.store(false, Ordering::Release);
                }
                removed
            }
        }
    }

    /// Disables tracking for a whole tenant.
    pub fn suppress_tenant(&self, tenant: &str) {
        self.set_scope(self.tenant_key(tenant), Some(Reason::Manual));
    }

    /// Re-enables tracking for a tenant. Returns whether it was suppressed.
    pub fn unsuppress_tenant(&self, tenant: &str) -> bool {
        self.set_scope(self.tenant_key(tenant), None)
    }

    /// Applies a change this replica wrote itself (an unsubscribe, its undo, a spooled change
    /// at start-up) ahead of its echo from the topic, and remembers it until
    /// [`Self::apply_replicated`] reads that echo. Until then, older records of the same scope
    /// that the follower reads (written before ours, still in flight) are skipped instead of
    /// briefly undoing our change: without this, an undo followed by the late arrival of the
    /// unsubscribe it undid would show the contact suppressed again for a moment, and an
    /// unsubscribe followed by an older lift would track an opted-out contact for a moment.
    pub fn apply_local(&self, change: &Change) -> bool {
        // The map's lock is held across the apply, here and in `apply_replicated`, so the
        // follower cannot check the map, then apply an older record after this change.
        let mut local = self.local.lock();
        local.insert(change.scope.clone(), change.at_ms);
        self.apply(change)
    }

    /// Takes back a local change that reached neither the topic nor the spool: applies
    /// `restore` (the scope's state before it) and forgets the change, under the same lock, so
    /// the follower cannot apply a topic record in between that the restore would then
    /// overwrite. Records of that scope from the topic apply again from then on.
    pub fn revert_local(&self, restore: &Change) -> bool {
        let mut local = self.local.lock();
        local.remove(&restore.scope);
        self.apply(restore)
    }

    /// Applies a change read from the topic, unless a local change of the same scope
    /// ([`Self::apply_local`]) is newer and its echo has not arrived yet. A record at least as
    /// new as the local change is its echo (or a later change): it applies and ends the wait.
    /// Returns whether the set changed. Only the follower calls it (one uncontended lock per
    /// record); hits never do.
    pub fn apply_replicated(&self, change: &Change) -> bool {
        let mut local = self.local.lock();
        if let Some(&at_ms) = local.get(&change.scope) {
            if change.at_ms < at_ms {
                return false;
            }
            local.remove(&change.scope);
        }
        self.apply(change)
    }

    /// Local changes still waiting for their echo from the topic.
    pub fn local_pending(&self) -> usize {
        self.local.lock().len()
    }

    /// Applies one change (from the topic, a file or a test). Returns whether the set changed.
    pub fn apply(&self, change: &Change) -> bool {
        let changed = match (&change.scope, change.reason) {
            (Scope::Contact { tenant, contact }, Some(r)) => {
                let k = self.contact_key(tenant, contact);
                let old = self.contacts.get(k);
                self.contacts.insert(k, r.code());
                old != Some(r.code())
            }
            (Scope::Contact { tenant, contact }, None) => self.remove(tenant, contact),
            (Scope::Tenant { tenant }, r) => self.set_scope(self.tenant_key(tenant), r),
            (Scope::Campaign { tenant, campaign }, r) => {
                self.set_scope(self.campaign_key(tenant, campaign), r)
            }
            (
                Scope::ContactInList {
                    tenant,
                    list,
                    contact,
                },
                r,
            ) => {
                let k = self.list_key(tenant, list, contact);
                match r {
                    Some(r) => {
                        let old = self.lists.get(k);
                        self.lists.insert(k, r.code());
                        old != Some(r.code())
                    }
                    None => self.lists.remove(k),
                }
            }
        };
        self.status.applied.fetch_add(1, Ordering::Relaxed);
        self.status.last_change_at_ms.fetch_max(
            clamp_at_ms(change.at_ms, openclick_common::now_ms()),
            Ordering::Relaxed,
        );
        changed
    }

    /// Number of suppressed contacts (tenant and campaign scopes not counted).
    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Whether no contact is suppressed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of contact-in-list entries.
    pub fn list_entries_len(&self) -> usize {
        self.lists.len()
    }

    /// Number of tenant and campaign scopes.
    pub fn scopes_len(&self) -> usize {
        self.scopes.len()
    }

    /// Bytes of table memory the contacts take (slots allocated, 8 bytes each plus a tag byte).
    pub fn table_bytes(&self) -> usize {
        self.contacts.capacity() * 9
    }

    /// Makes room for `additional` more contacts up front (e.g. before a bulk load).
    pub fn reserve(&self, additional: usize) {
        self.contacts.reserve(additional);
    }

    /// Whether the set has caught up with its sources (`/readyz`). True unless a follower
    /// marked it behind.
    pub fn is_caught_up(&self) -> bool {
        self.status.caught_up.load(Ordering::Acquire)
    }

    /// Marks the set caught up, or not (the topic follower does).
    pub fn set_caught_up(&self, v: bool) {
        self.status.caught_up.store(v, Ordering::Release);
    }

    /// Records how many records the follower is behind the topic end.
    pub fn set_lag(&self, records: u64) {
        self.status.lag.store(records, Ordering::Relaxed);
    }

    /// Records behind the topic end, as last measured.
    pub fn lag(&self) -> u64 {
        self.status.lag.load(Ordering::Relaxed)
    }

    /// Changes applied since start.
    pub fn applied(&self) -> u64 {
        self.status.applied.load(Ordering::Relaxed)
    }

    /// The time of the latest change applied (milliseconds since the Unix epoch, clamped by
    /// [`clamp_at_ms`]; 0: none yet), from which `openclick_suppression_last_change_age_seconds`
    /// is computed.
    pub fn last_change_at_ms(&self) -> i64 {
        self.status.last_change_at_ms.load(Ordering::Relaxed)
    }

    /// Lookups counted by [`Self::check`].
    pub fn lookups(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.lookups.load(Ordering::Relaxed))
            .sum()
    }

    /// Events dropped (suppressed checks) for one reason.
    pub fn dropped(&self, reason: Reason) -> u64 {
        self.counters
            .iter()
            .map(|c| c.dropped[reason.code() as usize - 1].load(Ordering::Relaxed))
            .sum()
    }

    /// Describes (`# HELP`) every series [`Self::export_metrics`] and
    /// [`blocks::BlockList::export_metrics`] emit; run once per recorder.
    pub fn describe_metrics() {
        use metrics::{describe_counter, describe_gauge};
        describe_gauge!(
            "openclick_suppression_contacts",
            "Contacts in the suppression set (every scope)."
        );
        describe_gauge!(
            "openclick_suppression_scopes",
            "Tenant- and campaign-wide suppression scopes in the set."
        );
        describe_gauge!(
            "openclick_suppression_list_entries",
            "Contact-in-list suppression entries (list unsubscribes) in the set; not checked on hits."
        );
        describe_gauge!(
            "openclick_suppression_table_bytes",
            "Memory held by the suppression table, bytes."
        );
        describe_gauge!(
            "openclick_suppression_lag_records",
            "Records of the suppressions topic not yet applied to the set (the follower's consumer lag)."
        );
        describe_gauge!(
            "openclick_suppression_caught_up",
            "1 once the set has read the suppressions topic up to its end at startup (readiness check suppression_sync), else 0."
        );
        describe_gauge!(
            "openclick_suppression_last_change_age_seconds",
            "Seconds since the last suppression change was applied to the set (absent before the first)."
        );
        describe_counter!(
            "openclick_suppression_changes_applied_total",
            "Suppression changes (adds, removals, scope changes) applied to the set."
        );
        describe_counter!(
            "openclick_suppression_lookups_total",
            "Suppression checks made for valid hits."
        );
        describe_counter!(
            "openclick_suppression_dropped_events_total",
            "Hits that produced no event because the contact is suppressed, by suppression reason."
        );
        describe_gauge!(
            "openclick_redirect_blocks",
            "Redirect blocks (kill switch entries) in force."
        );
        describe_counter!(
            "openclick_blocked_clicks_total",
            "Clicks answered 410 because their link is blocked."
        );
    }

    /// Emits the set's series through the `metrics` macros (into whatever recorder is
    /// current; the edge calls it at scrape time).
    pub fn export_metrics(&self) {
        use metrics::{counter, gauge};
        gauge!("openclick_suppression_contacts").set(self.len() as f64);
        gauge!("openclick_suppression_scopes").set(self.scopes_len() as f64);
        gauge!("openclick_suppression_list_entries").set(self.list_entries_len() as f64);
        gauge!("openclick_suppression_table_bytes").set(self.table_bytes() as f64);
        gauge!("openclick_suppression_lag_records").set(self.lag() as f64);
        gauge!("openclick_suppression_caught_up").set(if self.is_caught_up() { 1.0 } else { 0.0 });
        let last = self.status.last_change_at_ms.load(Ordering::Relaxed);
        if last > 0 {
            let now = openclick_common::now_ms();
            gauge!("openclick_suppression_last_change_age_seconds")
                .set((now - last).max(0) as f64 / 1000.0);
        }
        counter!("openclick_suppression_changes_applied_total").absolute(self.applied());
        counter!("openclick_suppression_lookups_total").absolute(self.lookups());
        for r in Reason::ALL {
            counter!("openclick_suppression_dropped_events_total", "reason" => r.as_str())
                .absolute(self.dropped(r));
        }
    }

    /// Loads a snapshot file: CSV lines `tenant,contact[,reason]` (a `tenant,contact` header
    /// line and `#` comments are skipped), or NDJSON lines
    /// `{"tenant":"…","contact":"…","reason":"opt_out"}` (any change the batch API takes; see
    /// [`parse`]). Returns the number of entries read. Logs progress every million lines.
    pub fn load_file(&self, path: &Path) -> Result<usize, SuppressError> {
        let io = |source| SuppressError::Io {
            path: path.display().to_string(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
        // Size the table once from the file size and the lines seen in the first buffer,
        // instead of growing it shard by shard while loading.
        let head = reader.fill_buf().map_err(io)?;
        let lines = head.iter().filter(|b| **b == b'\n').count();
        if lines > 0 && size > 0 {
            let estimate = (size as f64 / (head.len() as f64 / lines as f64)) as usize;
            self.reserve(estimate);
        }
        let started = Instant::now();
        let mut read = 0usize;
        let n = parse::read_changes(reader, openclick_common::now_ms(), |_, change| {
            read += 1;
            if read.is_multiple_of(1_000_000) {
                tracing::info!(
                    entries = read,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loading suppression snapshot"
                );
            }
            match (&change.scope, change.reason) {
                // The bulk of a snapshot: no `applied` bookkeeping per contact.
                (Scope::Contact { tenant, contact }, Some(reason)) => {
                    self.insert(tenant, contact, reason);
                }
                _ => {
                    self.apply(&change);
                }
            }
            Ok(())
        })
        .map_err(|e| match e.error {
            SuppressError::Io { source, .. } => io(source),
            other => SuppressError::Parse(format!("{}:{}: {other}", path.display(), e.line)),
        })?;
        tracing::info!(
            entries = n,
            contacts = self.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            file = %path.display(),
            "suppression snapshot loaded"
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
