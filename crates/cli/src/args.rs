//! Command-line arguments. Each flag also reads an `OPENCLICK_*` environment variable (clap's
//! `env`), so tests pass arguments and never touch the process environment.
//!
//! Values are typed and parsed once, here, by clap: listen addresses, networks, the IP policy
//! ([`IpPolicy`]), the spool's fsync policy ([`FsyncPolicy`]) and every Kafka property
//! ([`KafkaProperty`], one strict parser for every client).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `--unsubscribe-brand`'s parser.
fn parse_brand(s: &str) -> Result<(String, openclick_edge::unsubscribe::Brand), String> {
    openclick_edge::unsubscribe::Brand::parse(s).map_err(|e| e.to_string())
}
use openclick_enrich::IpPolicy;
use openclick_kafka::KafkaProperty;
use openclick_sink::spool::FsyncPolicy;

/// openclick: email opens and clicks in, enriched protobuf events on Kafka out.
#[derive(Debug, Parser)]
#[command(name = "openclick", version, about)]
pub struct Cli {
    /// TOML configuration file: any long flag of `serve` as a top-level key (kebab-case), other
    /// subcommands' flags under `[sign]`, `[tail]`, `[enrich]`, `[suppress]`; flags and
    /// OPENCLICK_* variables override it (docs/config.md).
    #[arg(long, env = "OPENCLICK_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "OPENCLICK_LOG", default_value = "info", global = true,
          value_parser = parse_log_filter)]
    pub log: String,
    /// Log format: auto (text, coloured only when stderr is a terminal and NO_COLOR is unset)
    /// | text (never coloured) | json (one object per line; docs/logging.md).
    #[arg(
        long,
        env = "OPENCLICK_LOG_FORMAT",
        default_value = "auto",
        global = true
    )]
    pub log_format: LogFormat,
    /// Same as --log-format json (kept for compatibility).
    #[arg(long, env = "OPENCLICK_LOG_JSON", global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain text; ANSI colours only when stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Plain text, never coloured.
    Text,
    /// One JSON object per line.
    Json,
}

/// How background threads yield the CPU to the request threads (`--background-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackgroundPolicy {
    /// Linux's `SCHED_IDLE` (and the nice value): a request thread that wakes preempts them at
    /// once.
    Idle,
    /// The nice value only.
    Nice,
}

fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A secret given as a value (`--keys`, `--admin-token`): its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the edge.
    Serve(ServeArgs),
    /// Print a signed open-pixel or click URL.
    ///
    /// Exit status: 0 when the URL is printed. 64 (EX_USAGE) for a bad setting, with nothing
    /// printed: neither `open`, `click` nor --batch; keys that are missing, malformed or
    /// unreadable (--keys, --keys-file, the development keyring); a claim the token rules
    /// refuse (--tenant, --campaign, --contact, --message, --link-id, --channel, or a --url that
    /// is not an absolute http(s) URL).
    ///
    /// With --batch, after the same check of the keys: 65 (EX_DATAERR) for a line that cannot
    /// be signed (at the first one, or at the end with --keep-going), 74 (EX_IOERR) when reading
    /// stdin or writing stdout fails.
    Sign(SignArgs),
    /// Print events from the topic, one proto3 JSON object per line.
    Tail(TailArgs),
    /// Classify a hit, or one user agent per stdin line, and print JSON.
    Enrich(EnrichCmdArgs),
    /// Validate the serve configuration (keys, databases, files) and exit.
    CheckConfig(ServeArgs),
    /// Add, remove, check or import suppressions through a running edge's admin API.
    Suppress(SuppressArgs),
    /// Track an HTML email: signed click URLs for its links and an open pixel, for one
    /// recipient or for every row of a recipients CSV.
    ///
    /// Exit status: 0 when every recipient's copy is written.
    ///
    /// 64 (EX_USAGE) for a bad setting, found before any recipient is rewritten, with nothing
    /// written: an id the id rule refuses (--tenant, --campaign, --contact, --message), an
    /// unknown --channel, a --base-url that is not an absolute http(s) URL without query or
    /// fragment; keys that are missing, malformed or unreadable (--keys, --keys-file, the
    /// development keyring); an --input that cannot be read; a template that is not UTF-8 or
    /// that the rewriter refuses (a bad data-link-id); a --recipients file that cannot be
    /// opened, whose header cannot be read or lacks a `contact` or `message` column; an
    /// --out-dir that cannot be created.
    ///
    /// 1 for a failure while rewriting: a recipients row that cannot be read (a malformed CSV
    /// record) or whose ids are refused, a message id that is not a file name with --out-dir,
    /// reading standard input, writing stdout or a file. It stops at that row; the rows before
    /// it are already written.
    Rewrite(RewriteArgs),
}

/// Where signing keys come from.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Directory for local state (the development keyring, the spool).
    #[arg(long, env = "OPENCLICK_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Signing keys, `ID:BASE64URL_SECRET[,ID:SECRET...]`: the first signs, all verify. An
    /// entry `TENANT/ID:SECRET` is that tenant's own key: a tenant with keys of its own signs and
    /// verifies only with them (the first signs); other tenants use the unscoped keys, and with
    /// none are refused. Without it (or --keys-file), a development keyring is generated in the
    /// data directory. On the command line it is visible to every local user: prefer
    /// --keys-file.
    #[arg(long, env = "OPENCLICK_KEYS", hide_env_values = true)]
    pub keys: Option<Secret>,
    /// File holding the signing keys in the --keys format (one or more keys per line, `#`
    /// comment lines; tenants' own keys as `TENANT/ID:SECRET`); `serve` re-reads it on SIGHUP
    /// and within 5 s of a change on disk.
    #[arg(long, env = "OPENCLICK_KEYS_FILE", value_name = "FILE")]
    pub keys_file: Option<PathBuf>,
}

/// Enrichment settings shared by `serve` and `enrich`.
#[derive(Debug, Clone, Args)]
pub struct EnrichArgs {
    /// GeoIP2/GeoLite2 City or Country, or DB-IP lite MMDB.
    #[arg(long, env = "OPENCLICK_GEOIP_CITY")]
    pub geoip_city: Option<PathBuf>,
    /// GeoLite2 ASN MMDB.
    #[arg(long, env = "OPENCLICK_GEOIP_ASN")]
    pub geoip_asn: Option<PathBuf>,
    /// What the event keeps of the client IP: keep | truncate[:V4[:V6]] | drop.
    #[arg(long, env = "OPENCLICK_IP_POLICY", default_value = "truncate:24:48")]
    pub ip_policy: IpPolicy,
    /// Hits sooner than this after sending are flagged as too fast (0 disables).
    #[arg(long, env = "OPENCLICK_MIN_DELAY_MS", default_value_t = 2000)]
    pub min_delay_ms: i64,
    /// Apple's iCloud Private Relay egress list, `egress-ip-ranges.csv`
    /// (https://mask-api.icloud.com/egress-ip-ranges.csv): a bare `Mozilla/5.0` open from one of
    /// its prefixes is certainly Apple Mail Privacy Protection. Reloaded when the file changes
    /// (replace it by renaming a new file over it) and on SIGHUP; a bad file is refused.
    #[arg(long, env = "OPENCLICK_APPLE_EGRESS_RANGES", value_name = "FILE")]
    pub apple_egress_ranges: Option<PathBuf>,
    /// Security-gateway networks (`cidr_or_asn,provider,scope,source` lines), added to the
    /// list shipped in the binary; hits from them get BOT_REASON_GATEWAY_*. Reloaded like
    /// --apple-egress-ranges.
    #[arg(long, env = "OPENCLICK_GATEWAY_NETWORKS", value_name = "FILE")]
    pub gateway_networks: Option<PathBuf>,
    /// Leave out the shipped security-gateway list: only --gateway-networks is used.
    #[arg(long, env = "OPENCLICK_NO_DEFAULT_GATEWAYS")]
    pub no_default_gateways: bool,
}

/// `openclick serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Public tracking listener.
    #[arg(long, env = "OPENCLICK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listener (/metrics, /healthz, /readyz, /info).
    #[arg(long, env = "OPENCLICK_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Kafka bootstrap servers. Without it an in-process broker is started (development only:
    /// it keeps events in memory).
    #[arg(long, env = "OPENCLICK_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Events topic.
    #[arg(long, env = "OPENCLICK_TOPIC", default_value = openclick_sink::DEFAULT_EVENTS_TOPIC)]
    pub topic: String,
    /// Partitions of the topic on the embedded broker.
    #[arg(long, env = "OPENCLICK_EMBEDDED_PARTITIONS", default_value_t = 3)]
    pub embedded_partitions: i32,
    /// Producer linger, milliseconds.
    #[arg(long, env = "OPENCLICK_KAFKA_LINGER_MS", default_value_t = 5)]
    pub kafka_linger_ms: u32,
    /// Events published one at a time (clicks, unsubscribes, page views) reach the producer
    /// from a thread of their own, every this many microseconds while they arrive: the request
    /// thread only buffers them (see `openclick_sink::handoff`); opens' events go to the
    /// producer in their batches. 0 hands each event to librdkafka on the request thread.
    #[arg(long, env = "OPENCLICK_KAFKA_HANDOFF_US", default_value_t = 1000)]
    pub kafka_handoff_us: u32,
    /// Open hits are answered at once and run through the pipeline (token check, enrichment,
    /// event) in batches: by the request thread when its buffer fills (16 KiB), and by a thread
    /// of their own every this many microseconds for what has not (see
    /// `openclick_edge::defer`). 0 processes each open on its request thread.
    #[arg(long, env = "OPENCLICK_DEFER_OPENS_US", default_value_t = 20_000)]
    pub defer_opens_us: u32,
    /// Extra librdkafka properties, `key=value`, repeatable; applied to every Kafka client
    /// (events producer, suppression writer and follower, topic admin). Each key overrides the
    /// properties file's. Keep secrets in the file.
    #[arg(
        long = "kafka-property",
        env = "OPENCLICK_KAFKA_PROPERTIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_properties: Vec<KafkaProperty>,
    /// A Java-style client.properties (`key=value` lines, `#` comments): TLS, SASL and tuning
    /// for every Kafka client, secrets included. Its `bootstrap.servers` is used when
    /// --kafka-brokers is not given.
    #[arg(long, env = "OPENCLICK_KAFKA_PROPERTIES_FILE")]
    pub kafka_properties_file: Option<PathBuf>,
    /// Signing keys.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Enrichment.
    #[command(flatten)]
    pub enrich: EnrichArgs,
    /// Suppression snapshot file (CSV `tenant,contact[,reason]` or NDJSON).
    #[arg(long, env = "OPENCLICK_SUPPRESSION_FILE")]
    pub suppression_file: Option<PathBuf>,
    /// Bearer token of the admin API's `/v1/suppressions` and `/v1/blocks` routes; without
    /// one they refuse. On the command line it is visible to every local user: prefer
    /// --admin-token-file.
    #[arg(long, env = "OPENCLICK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// File holding the admin API's bearer token (surrounding whitespace ignored); re-read on
    /// SIGHUP.
    #[arg(long, env = "OPENCLICK_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Sending API listener (`POST /v1/sign`, `/v1/rewrite`) for sending services, on its own
    /// thread; off unless given. Keep it on a private address: it signs URLs.
    #[arg(
        long,
        env = "OPENCLICK_SENDING_LISTEN",
        requires = "sending_tokens_file"
    )]
    pub sending_listen: Option<SocketAddr>,
    /// File of the sending API's bearer tokens, `TENANT:TOKEN` per line (`#` comments; a token
    /// is 16+ characters and names its tenant: a caller signs only for it, with its keys);
    /// re-read on SIGHUP and within 5 s of a change.
    #[arg(long, env = "OPENCLICK_SENDING_TOKENS_FILE", value_name = "FILE")]
    pub sending_tokens_file: Option<PathBuf>,
    /// Tracking base URL of the sending API's URLs when a request gives no `?base_url=`.
    #[arg(long, env = "OPENCLICK_SENDING_BASE_URL")]
    pub sending_base_url: Option<String>,
    /// Website activity after a click (README "Website activity"): a TOML file of per-tenant
    /// settings (`[tenant.ID]`: handoff, param, origins, lifetime_days, honour_gpc,
    /// honour_dnt); re-read on SIGHUP and within 5 s of a change. Without it the `/w.js` and
    /// `/w/` routes answer 404 and clicks hand nothing over.
    #[arg(long, env = "OPENCLICK_WEB_SETTINGS", value_name = "FILE")]
    pub web_settings: Option<PathBuf>,
    /// Compacted suppressions topic, read from the beginning and followed by every replica.
    #[arg(long, env = "OPENCLICK_SUPPRESSIONS_TOPIC", default_value = openclick_suppress::record::DEFAULT_SUPPRESSIONS_TOPIC)]
    pub suppressions_topic: String,
    /// Erasure-requests topic (reason `erase` publishes one).
    #[arg(long, env = "OPENCLICK_ERASURES_TOPIC", default_value = openclick_suppress::record::DEFAULT_ERASURES_TOPIC)]
    pub erasures_topic: String,
    /// Do not follow the suppressions topic (snapshot file only; the admin API cannot write).
    #[arg(long, env = "OPENCLICK_NO_SUPPRESSION_SYNC")]
    pub no_suppression_sync: bool,
    /// Networks of the proxies (load balancers) whose client-address header is believed. Keep
    /// them as narrow as the proxies' own addresses; `0.0.0.0/0` is refused.
    #[arg(long, env = "OPENCLICK_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header the trusted proxies write the client address into:
    /// x-forwarded-for | forwarded | any single-address header (x-real-ip, cf-connecting-ip...).
    #[arg(
        long,
        env = "OPENCLICK_CLIENT_IP_HEADER",
        default_value = "x-forwarded-for"
    )]
    pub client_ip_header: openclick_edge::ClientIpHeader,
    /// Hits one token may produce events for back to back (0: no rate limit). Hits past the
    /// rate still get their pixel or redirect, but no event (counted as rate_limited).
    #[arg(long, env = "OPENCLICK_RATE_LIMIT_BURST", default_value_t = 12)]
    pub rate_limit_burst: u32,
    /// Events per token per minute after the burst.
    #[arg(long, env = "OPENCLICK_RATE_LIMIT_PER_MINUTE", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_minute: u32,
    /// Most tokens the rate limiter tracks at once (about 40 bytes each); past it, hits of
    /// new tokens are not limited (counted as untracked).
    #[arg(
        long,
        env = "OPENCLICK_RATE_LIMIT_MAX_TOKENS",
        default_value_t = 1_000_000
    )]
    pub rate_limit_max_tokens: usize,
    /// Distinct links of one message clicked within --click-window-ms that make a burst (a
    /// scanner following every link): each click of the burst is flagged `CLICK_BURST`, verdict
    /// BOT. Clicks are held for the window before publishing so their events carry it. 0 turns
    /// the hold off.
    #[arg(long, env = "OPENCLICK_CLICK_BURST_LINKS", default_value_t = 2)]
    pub click_burst_links: usize,
    /// How long after a one-click unsubscribe (`POST /u/TOKEN`) its undo button works,
    /// seconds. 0: no undo.
    #[arg(long, env = "OPENCLICK_UNSUBSCRIBE_UNDO_WINDOW_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u32).range(0..=86_400))]
    pub unsubscribe_undo_window_secs: u32,
    /// How long an unsubscribe POST waits for the suppressions topic to acknowledge the opt-out
    /// before writing it to the unsubscribe spool (DATA_DIR/unsubscribe-spool.ndjson, replayed
    /// every second), milliseconds.
    #[arg(long, env = "OPENCLICK_UNSUBSCRIBE_ACK_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub unsubscribe_ack_timeout_ms: u32,
    /// A tenant's look on the unsubscribe page: TENANT=NAME|#ACCENT|#BACKGROUND (colours
    /// optional, #rgb or #rrggbb). Repeatable; `;`-separated in the variable.
    #[arg(long, env = "OPENCLICK_UNSUBSCRIBE_BRAND", value_delimiter = ';',
          value_parser = parse_brand)]
    pub unsubscribe_brand: Vec<(String, openclick_edge::unsubscribe::Brand)>,
    /// The behaviour window, milliseconds: how long click events are held, and how close two
    /// clicks of a message must be to count together.
    #[arg(long, env = "OPENCLICK_CLICK_WINDOW_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub click_window_ms: u32,
    /// Most messages the behaviour window tracks at once; past it, clicks of new messages are
    /// published without the window (counted).
    #[arg(
        long,
        env = "OPENCLICK_CLICK_WINDOW_MAX_MESSAGES",
        default_value_t = 1_000_000
    )]
    pub click_window_max_messages: usize,
    /// Most click events held at once; past it, a click is published at once (counted).
    #[arg(long, env = "OPENCLICK_MAX_HELD_CLICKS", default_value_t = 200_000)]
    pub max_held_clicks: usize,
    /// Tokens issued longer ago than this many days are invalid (0: no maximum age). A click
    /// past it gets a 404 instead of the redirect: set it only if old links may die.
    #[arg(long, env = "OPENCLICK_MAX_TOKEN_AGE_DAYS", default_value_t = 0)]
    pub max_token_age_days: u64,
    /// Tokens issued more than this many seconds in the future are invalid (clock skew).
    #[arg(long, env = "OPENCLICK_MAX_CLOCK_SKEW_SECS", default_value_t = 3600)]
    pub max_clock_skew_secs: u64,
    /// Tokio worker threads (0: one per core).
    #[arg(long, env = "OPENCLICK_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Nice value for every thread but the tokio workers and the main thread (librdkafka,
    /// delivery reports, spool replay, suppression follower), so they yield the CPU to requests.
    /// 0 leaves them at the process's priority. Linux only.
    #[arg(long, env = "OPENCLICK_BACKGROUND_NICE", default_value_t = 19,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub background_nice: i32,
    /// Scheduling policy of the same threads: `idle` (SCHED_IDLE: they run when a core would
    /// otherwise idle, and a request thread that wakes preempts them at once) or `nice` (only
    /// the nice value). Ignored with `--background-nice 0`. Linux only.
    #[arg(long, env = "OPENCLICK_BACKGROUND_POLICY", value_enum, default_value_t = BackgroundPolicy::Idle)]
    pub background_policy: BackgroundPolicy,
    /// Serve h2c (HTTP/2 by prior knowledge) on the public listener besides HTTP/1.1. Off by
    /// default: browsers never use cleartext HTTP/2; turn it on for a load balancer that
    /// speaks h2c to its upstreams.
    #[arg(long, env = "OPENCLICK_HTTP2")]
    pub http2: bool,
    /// HTTPS public listener, serving the same routes as --listen (needs --tls-cert-dir).
    /// With --http2, HTTP/2 is offered through ALPN.
    #[arg(long, env = "OPENCLICK_HTTPS_LISTEN")]
    pub https_listen: Option<SocketAddr>,
    /// HTTPS certificates: one subdirectory per certificate holding `tls.crt` (PEM chain) and
    /// `tls.key` (PEM key), the layout of a mounted kubernetes.io/tls Secret. Chosen by SNI
    /// against each certificate's DNS names; clients without SNI get the first subdirectory by
    /// name. Reloaded when the files change.
    #[arg(long, env = "OPENCLICK_TLS_CERT_DIR")]
    pub tls_cert_dir: Option<PathBuf>,
    /// Seconds between looks at the certificate files for changes.
    #[arg(long, env = "OPENCLICK_TLS_POLL_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_poll_secs: u64,
    /// Seconds a client may take to send a request head, checked once per timeout, so closed
    /// within twice this (also the idle keep-alive bound, with --http2 the time to the first
    /// bytes, and on --https-listen the TLS handshake's).
    #[arg(long, env = "OPENCLICK_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,
    /// Seconds without a request after which an HTTP/2 connection is told to go away.
    #[arg(long, env = "OPENCLICK_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Seconds after which any connection is told to finish (0: no limit).
    #[arg(long, env = "OPENCLICK_MAX_CONNECTION_AGE_SECS", default_value_t = 600)]
    pub max_connection_age_secs: u64,
    /// Most public connections open at once; past it new ones are closed at once and counted
    /// (0: the open-file limit minus 1024, at least 64). A value the open-file limit cannot
    /// hold is lowered to the limit minus 128 (at least the default).
    #[arg(long, env = "OPENCLICK_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Most public connections open at once from one peer address (0: no limit). Leave it off
    /// behind a load balancer: every connection then comes from the balancer.
    #[arg(long, env = "OPENCLICK_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// Seconds to let in-flight requests finish at shutdown.
    #[arg(long, env = "OPENCLICK_DRAIN_TIMEOUT_SECS", default_value_t = 10)]
    pub drain_timeout_secs: u64,
    /// Seconds to wait for the producer to flush at shutdown.
    #[arg(long, env = "OPENCLICK_FLUSH_TIMEOUT_SECS", default_value_t = 15)]
    pub flush_timeout_secs: u64,
    /// Bound on the durable spool (`DATA_DIR/spool`), bytes. When full, new events are dropped
    /// (counted and logged); what is spooled is kept.
    #[arg(long, env = "OPENCLICK_SPOOL_MAX_BYTES", default_value_t = openclick_sink::spool::DEFAULT_MAX_BYTES)]
    pub spool_max_bytes: u64,
    /// When the spool fsyncs: always | never | every N ms (`200ms`, `2s`, `every:200`).
    #[arg(long, env = "OPENCLICK_SPOOL_FSYNC", default_value = "200ms")]
    pub spool_fsync: FsyncPolicy,
}

/// `openclick sign`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_required = false)]
pub struct SignArgs {
    /// open or click.
    #[command(subcommand)]
    pub kind: Option<SignKind>,
    /// Sign many: read NDJSON claims on stdin (the token vectors' claim form: kind, tenant_id,
    /// campaign_id, message_id, contact_id, channel, issued_at_ms, link_id, url, and optionally
    /// "honeypot": true for a honeypot click), write one URL per line on stdout, in order.
    #[arg(long)]
    pub batch: bool,
    /// With --batch: a line that cannot be signed writes an empty line (stdout stays aligned with
    /// stdin) and an error naming the line on stderr; the exit code is 65 at the end if any
    /// line failed. Without it the first bad line stops the batch (exit 65).
    #[arg(long, requires = "batch")]
    pub keep_going: bool,
    /// With --batch: the base URL of the edge, as recipients reach it.
    #[arg(
        long,
        env = "OPENCLICK_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub base_url: String,
    /// With --batch: signing keys.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// What to sign.
#[derive(Debug, Clone, Subcommand)]
pub enum SignKind {
    /// An open-pixel URL.
    Open(SignCommon),
    /// A click URL.
    Click {
        /// Common claims.
        #[command(flatten)]
        common: SignCommon,
        /// Id of the link within the message.
        #[arg(long)]
        link_id: String,
        /// Destination (absolute http or https URL).
        #[arg(long)]
        url: String,
        /// A honeypot link: put it where no person sees or clicks it, so a hit on it is a
        /// machine (a link scanner). Edges older than the token's flags extension refuse it
        /// (404): use it only once every edge runs a version that knows it.
        #[arg(long)]
        honeypot: bool,
    },
    /// An RFC 8058 one-click unsubscribe URL (`BASE/u/TOKEN`), printed with the two headers to
    /// put in the message: `List-Unsubscribe: <URL>` and
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
    Unsubscribe(SignUnsubscribe),
}

/// `openclick sign unsubscribe`.
#[derive(Debug, Clone, Args)]
pub struct SignUnsubscribe {
    /// Tenant id.
    #[arg(long)]
    pub tenant: String,
    /// Contact id: who opts out.
    #[arg(long)]
    pub contact: String,
    /// Opt out of this list only (no `/`). Default: the contact across the whole tenant.
    #[arg(long)]
    pub list: Option<String>,
    /// Campaign the message belongs to (carried into the unsubscribe event; not a scope).
    #[arg(long, default_value = "")]
    pub campaign: String,
    /// Message id (carried into the unsubscribe event).
    #[arg(long, default_value = "")]
    pub message: String,
    /// email | sms | push | web.
    #[arg(long, default_value = "email")]
    pub channel: String,
    /// When the message was sent, ms since the epoch (default: now).
    #[arg(long)]
    pub sent_at_ms: Option<i64>,
    /// Base URL of the edge, as mailbox providers reach it (RFC 8058 wants https).
    #[arg(
        long,
        env = "OPENCLICK_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub base_url: String,
    /// Signing keys.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Claims every token carries.
#[derive(Debug, Clone, Args)]
pub struct SignCommon {
    /// Tenant id.
    #[arg(long)]
    pub tenant: String,
    /// Campaign id.
    #[arg(long)]
    pub campaign: String,
    /// Message id.
    #[arg(long)]
    pub message: String,
    /// Contact id.
    #[arg(long)]
    pub contact: String,
    /// email | sms | push | web.
    #[arg(long, default_value = "email")]
    pub channel: String,
    /// When the message was sent, ms since the epoch (default: now).
    #[arg(long)]
    pub sent_at_ms: Option<i64>,
    /// Base URL of the edge, as recipients reach it.
    #[arg(
        long,
        env = "OPENCLICK_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub base_url: String,
    /// Signing keys.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// `openclick rewrite`.
#[derive(Debug, Clone, Args)]
pub struct RewriteArgs {
    /// Tenant id.
    #[arg(long)]
    pub tenant: String,
    /// Campaign id.
    #[arg(long)]
    pub campaign: String,
    /// Message id (one recipient; with --recipients it comes from the file).
    #[arg(
        long,
        required_unless_present = "recipients",
        conflicts_with = "recipients"
    )]
    pub message: Option<String>,
    /// Contact id (one recipient; with --recipients it comes from the file).
    #[arg(
        long,
        required_unless_present = "recipients",
        conflicts_with = "recipients"
    )]
    pub contact: Option<String>,
    /// email | sms | push | web.
    #[arg(long, default_value = "email")]
    pub channel: String,
    /// When the message is sent, ms since the epoch (default: now).
    #[arg(long)]
    pub sent_at_ms: Option<i64>,
    /// Base URL of the edge, as recipients reach it.
    #[arg(
        long,
        env = "OPENCLICK_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub base_url: String,
    /// The HTML email (UTF-8); default: standard input.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Recipients CSV with a header row: columns `contact` and `message` are required, any
    /// other column is ignored. Writes one NDJSON record per row to stdout:
    /// `{"contact":..,"message":..,"html":..}`.
    #[arg(long)]
    pub recipients: Option<PathBuf>,
    /// With --recipients: write `DIR/MESSAGE_ID.html` per row instead of NDJSON (message ids
    /// must then be file names: `[A-Za-z0-9._-]`, not starting with a dot).
    #[arg(long, requires = "recipients")]
    pub out_dir: Option<PathBuf>,
    /// Signing keys.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// `openclick tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Kafka bootstrap servers (the embedded broker's address is in `/info`); default: the
    /// properties file's `bootstrap.servers`, else 127.0.0.1:9092.
    #[arg(long, env = "OPENCLICK_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// Topic.
    #[arg(long, env = "OPENCLICK_TOPIC", default_value = openclick_sink::DEFAULT_EVENTS_TOPIC)]
    pub topic: String,
    /// Start at the oldest record instead of the newest.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds without a new event.
    #[arg(long)]
    pub idle_timeout_secs: Option<u64>,
    /// Extra librdkafka properties, `key=value`, repeatable (TLS, SASL, ...); each key
    /// overrides the properties file's. Keep secrets in the file.
    #[arg(
        long = "kafka-property",
        env = "OPENCLICK_KAFKA_PROPERTIES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_properties: Vec<KafkaProperty>,
    /// A Java-style client.properties (`key=value` lines, `#` comments), as for `serve`.
    #[arg(long, env = "OPENCLICK_KAFKA_PROPERTIES_FILE")]
    pub kafka_properties_file: Option<PathBuf>,
}

/// `openclick suppress`.
#[derive(Debug, Clone, Args)]
pub struct SuppressArgs {
    /// The edge's admin listener.
    #[arg(
        long,
        env = "OPENCLICK_ADMIN_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub admin_url: String,
    /// Bearer token of the admin API (prefer --admin-token-file).
    #[arg(long, env = "OPENCLICK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// File holding the admin API's bearer token.
    #[arg(long, env = "OPENCLICK_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: SuppressAction,
}

/// Which entry: a contact, a whole tenant (no contact), or a campaign (`--campaign`).
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Tenant id.
    pub tenant: String,
    /// Contact id (omit for the whole tenant or a campaign).
    pub contact: Option<String>,
    /// Campaign id: the entry covers this campaign of the tenant.
    #[arg(long, conflicts_with = "contact")]
    pub campaign: Option<String>,
}

/// `openclick suppress` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum SuppressAction {
    /// Suppress (answers once the broker acknowledged).
    Add {
        /// Which entry.
        #[command(flatten)]
        target: Target,
        /// opt_out | restrict | erase | complaint | bounce | manual.
        #[arg(long, default_value = "opt_out")]
        reason: openclick_suppress::Reason,
    },
    /// Lift a suppression.
    Remove {
        /// Which entry.
        #[command(flatten)]
        target: Target,
    },
    /// Whether an entry is suppressed on that edge (exit status 0 yes, 1 no).
    Check {
        /// Which entry.
        #[command(flatten)]
        target: Target,
    },
    /// Import a CSV (`tenant,contact[,reason]`) or NDJSON file (batch API lines) in batches.
    Import {
        /// The file (`-` for stdin).
        file: PathBuf,
        /// Changes per request.
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
    },
}

/// `openclick enrich`.
#[derive(Debug, Clone, Args)]
pub struct EnrichCmdArgs {
    /// User agent. Without it, one user agent per stdin line.
    #[arg(long)]
    pub ua: Option<String>,
    /// Client IP.
    #[arg(long, default_value = "0.0.0.0")]
    pub ip: std::net::IpAddr,
    /// Extra request header `Name: value`, repeatable (Purpose, Sec-Purpose, DNT, Sec-GPC).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// HTTP method (HEAD is a bot signal).
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Treat the hit as a click instead of an open.
    #[arg(long)]
    pub click: bool,
    /// Enrichment settings.
    #[command(flatten)]
    pub enrich: EnrichArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// Drops the `env` of every argument, recursively, so the test process's `OPENCLICK_*`
    /// variables cannot change what is parsed.
    fn without_env(cmd: clap::Command) -> clap::Command {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        let mut cmd = cmd.mut_args(|a| a.env(None));
        for n in names {
            cmd = cmd.mut_subcommand(n, without_env);
        }
        cmd
    }

    #[test]
    fn parses_serve_defaults_without_environment() {
        let m = without_env(Cli::command())
            .try_get_matches_from(["openclick", "serve"])
            .unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.listen.port(), 8080);
        assert_eq!(a.topic, "openclick.events.v1");
    }

    #[test]
    fn parses_sign_click() {
        let cli = Cli::try_parse_from([
            "openclick",
            "sign",
            "click",
            "--tenant",
            "t",
            "--campaign",
            "c",
            "--message",
            "m",
            "--contact",
            "x",
            "--link-id",
            "l",
            "--url",
            "https://e.com/",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Sign(SignArgs {
                kind: Some(SignKind::Click {
                    honeypot: false,
                    ..
                }),
                batch: false,
                ..
            })
        ));
        let cli = Cli::try_parse_from([
            "openclick",
            "sign",
            "click",
            "--tenant",
            "t",
            "--campaign",
            "c",
            "--message",
            "m",
            "--contact",
            "x",
            "--link-id",
            "l",
            "--url",
            "https://e.com/",
            "--honeypot",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Sign(SignArgs {
                kind: Some(SignKind::Click { honeypot: true, .. }),
                ..
            })
        ));
        // Opens have no honeypot.
        assert!(Cli::try_parse_from([
            "openclick",
            "sign",
            "open",
            "--tenant",
            "t",
            "--campaign",
            "c",
            "--message",
            "m",
            "--contact",
            "x",
            "--honeypot",
        ])
        .is_err());
        let cli = Cli::try_parse_from(["openclick", "sign", "--batch", "--keep-going"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Sign(SignArgs {
                kind: None,
                batch: true,
                keep_going: true,
                ..
            })
        ));
        // A subcommand and --batch do not mix; --keep-going needs --batch.
        assert!(Cli::try_parse_from(["openclick", "sign", "--batch", "open"]).is_err());
        assert!(Cli::try_parse_from(["openclick", "sign", "--keep-going"]).is_err());
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let cli = Cli::try_parse_from([
            "openclick",
            "serve",
            "--keys",
            "k1:SECRETSECRETSECRET",
            "--admin-token",
            "ADMINTOKEN123",
        ])
        .unwrap();
        let d = format!("{cli:?}");
        assert!(d.contains("Secret(<redacted>)"), "{d}");
        assert!(
            !d.contains("SECRETSECRET") && !d.contains("ADMINTOKEN123"),
            "{d}"
        );
    }

    #[test]
    fn rejects_bad_listen_address() {
        assert!(Cli::try_parse_from(["openclick", "serve", "--listen", "nope"]).is_err());
    }

    #[test]
    fn typed_values_are_parsed_once_and_strictly() {
        let cli = Cli::try_parse_from([
            "openclick",
            "serve",
            "--kafka-property",
            "security.protocol=ssl",
            "--spool-fsync",
            "2s",
            "--ip-policy",
            "drop",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.kafka_properties[0].key(), "security.protocol");
        assert_eq!(a.spool_fsync, FsyncPolicy::EveryMs(2000));
        assert_eq!(a.enrich.ip_policy, IpPolicy::Drop);
        for bad in [
            ["--kafka-property", "linger.ms"],
            ["--spool-fsync", "sometimes"],
            ["--ip-policy", "maybe"],
        ] {
            let mut argv = vec!["openclick", "serve"];
            argv.extend(bad);
            assert!(Cli::try_parse_from(&argv).is_err(), "{bad:?}");
        }
    }
}
