//! `openclick serve` and `openclick check-config`: the process wiring.
//!
//! Components are built from typed arguments, then assembled: the sink (`openclick-kafka`), the
//! suppression set and its topic follower and writer, the public edge (`openclick-edge`) on the
//! tokio workers, and the admin plane (`openclick-admin`) on its own thread, with readiness
//! checks and metrics exporters registered by each component. Shutdown order: a signal marks
//! the process draining (`/readyz` 503), the public listener drains, the sink closes (flush,
//! then spool what is left), the follower stops, and the admin plane stops last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use openclick_admin::{Admin, BearerToken, Metrics, Readiness, SuppressApi};
use openclick_edge::{
    ClientIpConfig, EdgeState, LimitConfig, Limits, Pipeline, ReplayLimiter, ServerConfig,
    SharedKeys,
};
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_http::tls::CertStore;
use openclick_http::ConnConfig;
use openclick_kafka::suppress::{ensure_topics, Follower, KafkaSuppressionWriter, SyncConfig};
use openclick_kafka::{ClientSettings, EmbeddedBroker, KafkaConfig, KafkaSink};
use openclick_sink::handoff::{HandOff, HandOffConfig};
use openclick_sink::spool::SpoolConfig;
use openclick_sink::{Health, Sink};
use openclick_suppress::blocks::BlockList;
use openclick_suppress::{SuppressionSet, SuppressionWriter};
use openclick_token::{KeyStore, Keyring};
use serde_json::{Map, Value};

use crate::args::{EnrichArgs, KeyArgs, Secret, ServeArgs};
use crate::config::Setting;

/// Open files kept for everything but public and admin connections (listeners, Kafka clients,
/// the spool, GeoIP databases, logs) when an explicit
/// `--max-connections` is checked against the open-file limit. An idle process holds about 30.
const RESERVED_FILES: u64 = 128;
/// The admin listener's connection cap, lowered to a quarter of the open-file limit when that is
/// smaller.
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// A configuration error: the process exits 64 (`EX_USAGE`) before binding any port.
#[derive(Debug)]
pub struct BadConfig;

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bad configuration")
    }
}

/// Marks `e` as a configuration error.
pub fn bad_config(e: anyhow::Error) -> anyhow::Error {
    e.context(BadConfig)
}

/// When the development-keyring warning is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevWarning {
    /// Every time the development keyring is used (`serve`, `check-config`).
    Always,
    /// Only by the call that generates it (`sign`, which scripts call once per URL: the
    /// keyring is announced once, and `serve` announces it at every start).
    WhenCreated,
}

/// Where the keyring came from (no secret in it).
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `--keys` / `OPENCLICK_KEYS` (or the file's `keys`).
    Inline,
    /// `--keys-file`.
    File(PathBuf),
    /// The development keyring at this path.
    Development(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Inline => f.write_str("--keys"),
            KeySource::File(p) => write!(f, "--keys-file {}", p.display()),
            KeySource::Development(p) => write!(f, "development keyring {}", p.display()),
        }
    }
}

/// Loads the HTTPS certificates when `--https-listen` is set; either flag without the other is
/// a configuration error.
fn load_tls(args: &ServeArgs) -> Result<Option<Arc<CertStore>>> {
    match (&args.https_listen, &args.tls_cert_dir) {
        (None, None) => Ok(None),
        (Some(_), None) => {
            anyhow::bail!("--https-listen needs --tls-cert-dir (OPENCLICK_TLS_CERT_DIR)")
        }
        (None, Some(_)) => {
            anyhow::bail!(
                "--tls-cert-dir is set but --https-listen (OPENCLICK_HTTPS_LISTEN) is not"
            )
        }
        (Some(_), Some(dir)) => {
            let store = CertStore::open(dir).context("--tls-cert-dir")?;
            // Builds the rustls configuration once, so that whatever it refuses, it refuses now.
            store.server_config(args.http2).context("--tls-cert-dir")?;
            Ok(Some(store))
        }
    }
}

/// Loads the keys from `--keys`, `--keys-file`, or the development keyring in the data
/// directory: a global keyring and tenants' own keys (`TENANT/KEY_ID:SECRET` entries).
pub fn load_keyring(args: &KeyArgs, warn: DevWarning) -> Result<(KeyStore, KeySource)> {
    if let Some(spec) = &args.keys {
        let k = KeyStore::from_spec(spec.expose()).context("--keys / OPENCLICK_KEYS")?;
        return Ok((k, KeySource::Inline));
    }
    if let Some(path) = &args.keys_file {
        return Ok((
            crate::secrets::read_keys_file(path)?,
            KeySource::File(path.clone()),
        ));
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let path = args.data_dir.join("dev-keyring");
    let (keyring, created) = Keyring::load_or_create_dev(&path)
        .with_context(|| format!("development keyring {}", path.display()))?;
    if warn == DevWarning::Always || created {
        tracing::warn!(
            path = %path.display(),
            created,
            "USING A DEVELOPMENT KEYRING: tokens are signed with a key generated on this machine. \
             Do not send real email with it; configure --keys-file / OPENCLICK_KEYS_FILE in production."
        );
    }
    Ok((KeyStore::global(keyring), KeySource::Development(path)))
}

/// Key ids only, never a secret, and no tenant id: `global signing k2 (verify: k2, k1); 3
/// tenants with their own keys`.
pub fn describe_keys(keys: &KeyStore) -> String {
    let global = match keys.global_keyring() {
        Some(k) => format!(
            "global signing {} (verify: {})",
            k.signing_key_id(),
            k.key_ids().collect::<Vec<_>>().join(", ")
        ),
        None => "no global keyring".to_owned(),
    };
    match keys.tenant_count() {
        0 => global,
        n => format!("{global}; {n} tenant(s) with their own keys"),
    }
}

/// The admin API's bearer token from `--admin-token` or `--admin-token-file`.
pub fn admin_token(token: Option<&Secret>, file: Option<&Path>) -> Result<Option<String>> {
    if let Some(t) = token {
        return Ok(Some(t.expose().to_owned()).filter(|t| !t.is_empty()));
    }
    match file {
        Some(p) => Ok(Some(crate::secrets::read_token_file(p)?)),
        None => Ok(None),
    }
}

/// Builds the enricher from flags.
pub fn build_enricher(args: &EnrichArgs) -> Result<Enricher> {
    let config = EnrichConfig {
        geoip_city: args.geoip_city.clone(),
        geoip_asn: args.geoip_asn.clone(),
        ip_policy: args.ip_policy,
        min_delay_ms: args.min_delay_ms,
        apple_egress_ranges: args.apple_egress_ranges.clone(),
        gateway_networks: args.gateway_networks.clone(),
        default_gateways: !args.no_default_gateways,
        ..EnrichConfig::default()
    };
    let enricher = Enricher::new(config).context(
        "opening the GeoIP databases and network files (--apple-egress-ranges, --gateway-networks)",
    )?;
    let data = enricher.network_data();
    if args.apple_egress_ranges.is_some() || args.gateway_networks.is_some() {
        tracing::info!(
            egress_prefixes = data.egress_prefixes,
            gateway_entries = data.gateway_entries,
            "network files loaded"
        );
    }
    Ok(enricher)
}

/// The settings every Kafka client of the process shares.
fn client_settings(args: &ServeArgs, brokers: &str) -> ClientSettings {
    ClientSettings::new(brokers).with_properties(args.kafka_properties.clone())
}

fn kafka_config(args: &ServeArgs, brokers: &str) -> KafkaConfig {
    KafkaConfig {
        client: client_settings(args, brokers),
        topic: args.topic.clone(),
        linger_ms: args.kafka_linger_ms,
        spool: Some(SpoolConfig {
            max_bytes: args.spool_max_bytes,
            fsync: args.spool_fsync,
            ..SpoolConfig::new(args.keys.data_dir.join("spool"))
        }),
        ..KafkaConfig::default()
    }
}

struct Components {
    sending_tokens: Option<openclick_sending::TenantTokens>,
    keyring: KeyStore,
    key_source: KeySource,
    admin_token: Option<String>,
    enricher: Arc<Enricher>,
    suppression: Arc<SuppressionSet>,
    client_ip: ClientIpConfig,
    tls: Option<Arc<CertStore>>,
}

fn build_components(args: &ServeArgs) -> Result<Components> {
    let client_ip =
        ClientIpConfig::new(args.trusted_proxies.clone(), args.client_ip_header.clone())
            .map_err(anyhow::Error::msg)
            .context("--trusted-proxies")?;
    for n in client_ip.wide_networks() {
        tracing::warn!(network = %n, "a very wide trusted proxy network: every address in it can set its own client address");
    }
    let tls = load_tls(args)?;
    let (keyring, key_source) = load_keyring(&args.keys, DevWarning::Always)?;
    let admin_token = admin_token(args.admin_token.as_ref(), args.admin_token_file.as_deref())?;
    let sending_tokens = match &args.sending_tokens_file {
        Some(p) => Some(crate::secrets::read_sending_tokens(p)?),
        None => None,
    };
    if let Some(base) = &args.sending_base_url {
        openclick_rewrite::Template::compile("", base).context("--sending-base-url")?;
    }
    let enricher = Arc::new(build_enricher(&args.enrich)?);
    let suppression = Arc::new(SuppressionSet::new());
    if let Some(path) = &args.suppression_file {
        suppression
            .load_file(path)
            .with_context(|| format!("--suppression-file {}", path.display()))?;
    }
    // librdkafka judges the properties here, so a bad one stops the process before anything
    // starts; with an empty bootstrap list the throw-away client connects nowhere.
    kafka_config(args, "")
        .validate()
        .context("Kafka producer configuration")?;
    Ok(Components {
        sending_tokens,
        keyring,
        key_source,
        admin_token,
        enricher,
        suppression,
        client_ip,
        tls,
    })
}

/// `args` with the Kafka properties file read and merged under `--kafka-property`:
/// `kafka_brokers` and `kafka_properties` are final from here on (see `kafka_props`).
fn resolve_kafka(mut args: ServeArgs) -> Result<ServeArgs> {
    let r = crate::kafka_props::resolve(
        args.kafka_brokers.as_deref(),
        args.kafka_properties_file.as_deref(),
        &args.kafka_properties,
    )?;
    args.kafka_brokers = r.brokers;
    args.kafka_properties = r.properties;
    Ok(args)
}

/// `openclick check-config`: every error is a configuration error (exit 64).
pub fn check_config(args: ServeArgs, settings: &[Setting], file: Option<&Path>) -> Result<()> {
    let args = resolve_kafka(args).map_err(bad_config)?;
    let c = build_components(&args).map_err(bad_config)?;
    crate::web_cmd::load(args.web_settings.as_deref()).map_err(bad_config)?;
    println!("configuration ok");
    println!("  listen:           {}", args.listen);
    println!("  admin listen:     {}", args.admin_listen);
    if let (Some(https), Some(store)) = (&args.https_listen, &c.tls) {
        println!("  https listen:     {https}");
        for (i, (dir, names)) in store.certificates().iter().enumerate() {
            let default = if i == 0 { " (default)" } else { "" };
            println!("  certificate:      {dir}{default}: {}", names.join(", "));
        }
    }
    println!(
        "  kafka:            {}",
        args.kafka_brokers
            .as_deref()
            .unwrap_or("embedded in-process broker (development)")
    );
    if let Some(f) = &args.kafka_properties_file {
        println!("  kafka properties: {}", f.display());
    }
    for p in &args.kafka_properties {
        println!("  kafka property:   {p}");
    }
    println!("  topic:            {}", args.topic);
    println!(
        "  spool:            {} (max {} bytes, fsync {})",
        args.keys.data_dir.join("spool").display(),
        args.spool_max_bytes,
        args.spool_fsync
    );
    println!(
        "  keys:             {} from {}",
        describe_keys(&c.keyring),
        c.key_source
    );
    println!(
        "  admin token:      {}",
        if c.admin_token.is_some() {
            "set"
        } else {
            "none (the admin API's write routes refuse)"
        }
    );
    for db in c.enricher.databases() {
        println!("  database:         {db:?}");
    }
    println!("  suppressed:       {} contacts", c.suppression.len());
    println!();
    match file {
        Some(f) => println!("# effective configuration (config file {})", f.display()),
        None => println!("# effective configuration (no config file)"),
    }
    println!("# key = value  # source (flag, env, file or default); secrets redacted");
    for s in settings {
        if s.values.is_empty() && !s.many {
            println!("# {} (unset)", s.key);
            continue;
        }
        let quoted = |v: &String| {
            if v.parse::<i64>().is_ok() || v == "true" || v == "false" {
                v.clone()
            } else {
                toml::Value::String(v.clone()).to_string()
            }
        };
        let value = if s.many {
            format!(
                "[{}]",
                s.values.iter().map(quoted).collect::<Vec<_>>().join(", ")
            )
        } else {
            s.values.first().map(quoted).unwrap_or_default()
        };
        let env = match (&s.env, s.source) {
            (Some(e), crate::config::Source::Env) => format!(" {e}"),
            _ => String::new(),
        };
        println!("{} = {value}  # {}{env}", s.key, s.source.as_str());
    }
    Ok(())
}

/// Starts the topic follower and the writer, and builds the admin API on them.
async fn start_sync(
    args: &ServeArgs,
    brokers: &str,
    embedded: bool,
    set: &Arc<SuppressionSet>,
    blocks: &Arc<BlockList>,
    token: Option<&str>,
) -> Result<(
    Option<Follower>,
    SuppressApi,
    Option<Arc<dyn SuppressionWriter>>,
)> {
    if token.is_none() {
        tracing::warn!(
            "no --admin-token-file / OPENCLICK_ADMIN_TOKEN_FILE: the suppression admin API refuses requests"
        );
    }
    if args.no_suppression_sync {
        tracing::warn!("--no-suppression-sync: the suppression topic is not followed");
        return Ok((
            None,
            SuppressApi::new(token, set.clone(), None).with_blocks(blocks.clone()),
            None,
        ));
    }
    let config = SyncConfig {
        client: client_settings(args, brokers),
        topic: args.suppressions_topic.clone(),
        erasure_topic: args.erasures_topic.clone(),
        ..SyncConfig::default()
    };
    if !embedded {
        // Best effort: a cluster that forbids creating topics leaves them to the operator.
        if let Err(e) = ensure_topics(&config, -1, -1).await {
            tracing::warn!(error = %e, "could not create the suppression topics (create them compacted by hand)");
        }
    }
    let follower = Follower::start(&config, set.clone(), blocks.clone())
        .context("suppression topic follower")?;
    let writer: Arc<dyn SuppressionWriter> =
        Arc::new(KafkaSuppressionWriter::new(&config).context("suppression topic writer")?);
    tracing::info!(
        topic = %config.topic,
        erasures = %config.erasure_topic,
        "following the suppression topic; /readyz waits until it has caught up"
    );
    Ok((
        Some(follower),
        SuppressApi::new(token, set.clone(), Some(writer.clone())).with_blocks(blocks.clone()),
        Some(writer),
    ))
}

/// `openclick serve`. Everything read from the configuration is checked before the embedded
/// broker starts or a port is bound; those errors exit 64.
pub fn serve(args: ServeArgs) -> Result<()> {
    let args = resolve_kafka(args).map_err(bad_config)?;
    let c = build_components(&args).map_err(bad_config)?;
    let web = crate::web_cmd::load(args.web_settings.as_deref()).map_err(bad_config)?;
    let embedded = match &args.kafka_brokers {
        Some(_) => None,
        None => {
            let b = EmbeddedBroker::start(
                1,
                &[
                    (&args.topic, args.embedded_partitions),
                    (&args.suppressions_topic, args.embedded_partitions),
                    (&args.erasures_topic, args.embedded_partitions),
                ],
            )
            .context("starting the embedded Kafka broker")?;
            tracing::warn!(
                bootstrap = b.bootstrap_servers(),
                topic = %args.topic,
                "embedded in-process Kafka broker started (development only: events live in memory); \
                 read them with `openclick tail --brokers {} --from-beginning`",
                b.bootstrap_servers()
            );
            Some(b)
        }
    };
    let brokers = args
        .kafka_brokers
        .clone()
        .or_else(|| embedded.as_ref().map(|b| b.bootstrap_servers().to_string()))
        .unwrap_or_default();
    let kafka = Arc::new(KafkaSink::new(&kafka_config(&args, &brokers)).context("Kafka producer")?);
    // The request threads buffer events; a thread of the sink's hands them to librdkafka.
    let sink: Arc<dyn Sink> = match args.kafka_handoff_us {
        0 => kafka,
        us => Arc::new(
            HandOff::new(
                kafka,
                HandOffConfig {
                    interval: Duration::from_micros(u64::from(us)),
                    ..HandOffConfig::default()
                },
            )
            .context("Kafka hand-off thread")?,
        ),
    };

    let open_files = match openclick_http::raise_open_files_limit() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            1024
        }
    };
    let default_cap = usize::try_from(open_files.saturating_sub(1024))
        .unwrap_or(usize::MAX)
        .max(64);
    // A cap the open-file limit cannot hold would let a connection flood exhaust the files
    // first: every accept, the admin listener's too, then fails with EMFILE and health checks
    // stop answering. An explicit cap is lowered to leave `RESERVED_FILES` for the rest.
    // The admin listener's own cap comes out of the same file budget: at most
    // `ADMIN_MAX_CONNECTIONS`, and never more than a quarter of the files.
    let admin_cap = usize::try_from(open_files / 4)
        .unwrap_or(usize::MAX)
        .clamp(8, ADMIN_MAX_CONNECTIONS);
    let ceiling = usize::try_from(open_files.saturating_sub(RESERVED_FILES))
        .unwrap_or(usize::MAX)
        .saturating_sub(admin_cap)
        .max(default_cap);
    let max_connections = match args.max_connections {
        0 => default_cap,
        n if n > ceiling => {
            tracing::warn!(
                requested = n,
                open_files,
                max_connections = ceiling,
                "--max-connections is more than the open-file limit allows; lowered"
            );
            ceiling
        }
        n => n,
    };
    let admin_listener = std::net::TcpListener::bind(args.admin_listen)
        .with_context(|| format!("binding --admin-listen {}", args.admin_listen))?;
    let sending_listener = match args.sending_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding --sending-listen {addr}"))?,
        ),
        None => None,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.workers > 0 {
        rt.worker_threads(args.workers);
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding --listen {}", args.listen))?;
        let listen = listener.local_addr()?.to_string();
        let https = match (args.https_listen, &c.tls) {
            (Some(addr), Some(store)) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding --https-listen {addr}"))?;
                let acceptor = store.acceptor(args.http2).context("TLS configuration")?;
                Some((l, acceptor))
            }
            _ => None,
        };
        let https_listen = match &https {
            Some((l, _)) => l.local_addr()?.to_string(),
            None => String::new(),
        };
        let _tls_watch = match &c.tls {
            Some(store) => Some(
                store
                    .watch(Duration::from_secs(args.tls_poll_secs))
                    .context("starting the TLS certificate poller")?,
            ),
            None => None,
        };
        let admin_listen = admin_listener.local_addr()?.to_string();
        let blocks = Arc::new(BlockList::new());
        let (follower, suppress_api, writer) = start_sync(
            &args,
            &brokers,
            embedded.is_some(),
            &c.suppression,
            &blocks,
            c.admin_token.as_deref(),
        )
        .await?;
        let bearer = suppress_api.bearer_token();
        let header_read_timeout = Duration::from_secs(args.header_read_timeout_secs);
        let server = ServerConfig {
            conn: ConnConfig {
                header_read_timeout,
                first_byte_timeout: header_read_timeout,
                http2: args.http2,
                idle_timeout: Duration::from_secs(args.idle_timeout_secs),
                max_connection_age: Duration::from_secs(args.max_connection_age_secs),
                max_connections,
                max_connections_per_ip: args.max_connections_per_ip,
                tls_handshake_timeout: header_read_timeout,
                ..ConnConfig::default()
            },
            drain_timeout: Duration::from_secs(args.drain_timeout_secs),
            flush_timeout: Duration::from_secs(args.flush_timeout_secs),
            defer_opens: (args.defer_opens_us > 0)
                .then(|| Duration::from_micros(u64::from(args.defer_opens_us))),
        };
        // The admin listener: HTTP/1 only, its own small cap (it is for operators and
        // orchestrators on a private address), taken from the file budget above.
        let admin_conn = ConnConfig {
            header_read_timeout,
            max_connections: admin_cap,
            ..ConnConfig::default()
        };
        let limiter = (args.rate_limit_burst > 0).then(|| {
            Arc::new(ReplayLimiter::new(&LimitConfig {
                burst: args.rate_limit_burst,
                per_minute: args.rate_limit_per_minute,
                max_entries: args.rate_limit_max_tokens,
                ..LimitConfig::default()
            }))
        });
        let _sweeper = match &limiter {
            Some(l) => Some(
                l.start_sweeper(LimitConfig::default().sweep_every)
                    .context("starting the rate limiter's sweeper")?,
            ),
            None => None,
        };
        let limits = Limits {
            replay: limiter.clone(),
            max_token_age_ms: (args.max_token_age_days > 0).then(|| {
                i64::try_from(args.max_token_age_days.saturating_mul(86_400_000))
                    .unwrap_or(i64::MAX)
            }),
            max_future_skew_ms: i64::try_from(args.max_clock_skew_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        };
        let pipeline = Pipeline::new(
            c.keyring,
            c.enricher.clone(),
            c.suppression.clone(),
            c.client_ip,
        )
        .with_limits(limits)
        .with_blocks(blocks.clone());
        let click_window = Arc::new(openclick_edge::window::ClickWindow::new(
            openclick_edge::window::WindowConfig {
                burst_links: args.click_burst_links,
                window_ms: i64::from(args.click_window_ms),
                max_messages: args.click_window_max_messages,
                max_held: args.max_held_clicks,
            },
        ));
        let pipeline = pipeline.with_click_window(click_window.clone());
        let pipeline = match (&web, &args.web_settings) {
            (Some(w), Some(path)) => {
                crate::web_cmd::watch(path.clone(), w.clone());
                pipeline.with_web(w.clone())
            }
            _ => pipeline,
        };
        let shared_keyring = pipeline.keys().clone();
        let sink_dyn = sink.clone();
        // `/u/`: one-click unsubscribe through the suppression writer (none without the topic:
        // then `/u/` is 404).
        let unsubscribe = match writer {
            Some(w) => {
                let mut cfg = openclick_edge::unsubscribe::UnsubscribeConfig::new(
                    args.keys.data_dir.join("unsubscribe-spool.ndjson"),
                );
                cfg.undo_window_ms = i64::from(args.unsubscribe_undo_window_secs) * 1000;
                cfg.ack_timeout = Duration::from_millis(u64::from(args.unsubscribe_ack_timeout_ms));
                cfg.brands = args.unsubscribe_brand.iter().cloned().collect();
                Some(Arc::new(
                    openclick_edge::unsubscribe::Unsubscribe::new(cfg, w, c.suppression.clone())
                        .context("unsubscribe routes")?,
                ))
            }
            None => {
                tracing::warn!(
                    "no suppression writer (--no-suppression-sync): /u/ (unsubscribe) answers 404"
                );
                None
            }
        };
        let mut edge_state = EdgeState::new(pipeline, sink_dyn, server.clone());
        if let Some(u) = &unsubscribe {
            edge_state = edge_state.with_unsubscribe(u.clone());
        }
        let state = Arc::new(edge_state);

        let mut info = Map::new();
        info.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        info.insert("listen".into(), listen.clone().into());
        info.insert("admin_listen".into(), admin_listen.clone().into());
        for (k, v) in sink.describe() {
            info.insert(k.into(), v.into());
        }
        info.insert("kafka_embedded".into(), Value::Bool(embedded.is_some()));
        info.insert("http2".into(), Value::Bool(args.http2));
        if let Some(store) = &c.tls {
            info.insert("https_listen".into(), https_listen.clone().into());
            let certs: Vec<Value> = store
                .certificates()
                .into_iter()
                .map(|(dir, names)| serde_json::json!({ "dir": dir, "names": names }))
                .collect();
            info.insert("tls_certificates".into(), certs.into());
        }
        info.insert("open_files_limit".into(), open_files.into());
        info.insert("max_connections".into(), max_connections.into());
        info.insert("admin_max_connections".into(), admin_cap.into());
        let readiness = {
            let (sink, set) = (sink.clone(), c.suppression.clone());
            Readiness::new()
                .with_check("kafka", move || sink.health() == Health::Up)
                .with_check("suppression_sync", move || set.is_caught_up())
        };
        let metrics = {
            let (edge, sink, set) = (state.clone(), sink.clone(), c.suppression.clone());
            let (histogram, enricher) = (state.clone(), c.enricher.clone());
            // Every crate's series described once (`# HELP`); the catalogue is
            // docs/metrics.md.
            let tls = c.tls.clone();
            Metrics::new()
                .describe(openclick_edge::describe_metrics)
                .describe(openclick_enrich::describe_metrics)
                .describe(openclick_kafka::describe_metrics)
                .describe(SuppressionSet::describe_metrics)
                .describe(openclick_edge::unsubscribe::Unsubscribe::describe_metrics)
                .with_exporter(move || {
                    edge.metrics.export();
                    if let Some(opens) = &edge.opens {
                        opens.export();
                    }
                    edge.connections.export("public");
                    if let Some(store) = &tls {
                        edge.https_connections.export("https");
                        store.export_metrics();
                    }
                })
                .with_exporter(move || enricher.export_metrics())
                .with_text_exporter(move |out| histogram.metrics.render_histogram(out))
                .with_exporter(move || sink.export_metrics())
                .with_exporter(move || set.export_metrics())
                .with_exporter(move || {
                    if let Some(u) = &unsubscribe {
                        u.export_metrics();
                    }
                })
                .with_exporter(move || {
                    if let Some(l) = &limiter {
                        l.export_metrics();
                    }
                    click_window.export_metrics();
                    blocks.export_metrics();
                    if let Some(w) = &web {
                        w.export_metrics();
                    }
                })
        };
        // The sending API: its own thread, listener and small connection cap; it signs with
        // the keys the edge verifies with (rotations included).
        let sending_stats = Arc::new(openclick_http::ConnStats::default());
        let sending_tokens = c.sending_tokens.clone().unwrap_or_default();
        let mut sending_api = None;
        let sending = match sending_listener {
            Some(l) => {
                let addr = l.local_addr()?.to_string();
                let keys = shared_keyring.clone();
                let api = openclick_sending::SendingApi::new(
                    Arc::new(move || keys.load()),
                    sending_tokens.clone(),
                    args.sending_base_url.clone(),
                );
                let conn = ConnConfig {
                    header_read_timeout,
                    max_connections: admin_cap,
                    ..ConnConfig::default()
                };
                info.insert("sending_listen".into(), addr.into());
                let api = Arc::new(api);
                sending_api = Some(api.clone());
                Some(
                    openclick_sending::server::spawn(l, api, conn, sending_stats.clone())
                        .context("starting the sending listener")?,
                )
            }
            None => None,
        };
        let metrics = metrics
            .describe(openclick_sending::describe_metrics)
            .with_exporter(move || {
                if let Some(api) = &sending_api {
                    sending_stats.export("sending");
                    api.export_metrics();
                }
            });
        let admin = Arc::new(Admin::new(info, readiness, metrics, Some(suppress_api)));
        let admin_handle =
            openclick_admin::server::spawn(admin_listener, admin.clone(), admin_conn)
                .context("starting the admin listener")?;
        crate::priority::lower_background_threads(
            args.background_nice,
            args.background_policy == crate::args::BackgroundPolicy::Idle,
        );
        let shutdown = shutdown_signal();
        tracing::info!(
            listen = %listen,
            https = %https_listen,
            admin = %admin_listen,
            kafka = %brokers,
            topic = %args.topic,
            "openclick serving"
        );
        spawn_reload_on_sighup(Reload {
            enricher: c.enricher.clone(),
            keyring: shared_keyring,
            keys_file: args.keys.keys_file.clone(),
            bearer,
            admin_token_file: args.admin_token_file.clone(),
            sending_tokens,
            sending_tokens_file: args.sending_tokens_file.clone(),
        });
        let draining = admin.clone();
        openclick_edge::run_with_https(listener, https, state, async move {
            shutdown.await;
            draining.readiness.set_draining();
        })
        .await;
        drop(follower);
        drop(sending);
        admin_handle.stop();
        anyhow::Ok(())
    });
    drop(rt);
    drop(sink);
    if let Some(b) = embedded {
        b.shutdown();
    }
    result
}

/// What SIGHUP re-reads: the GeoIP databases and network files, and the secrets given as files.
struct Reload {
    enricher: Arc<Enricher>,
    keyring: SharedKeys,
    keys_file: Option<PathBuf>,
    bearer: BearerToken,
    admin_token_file: Option<PathBuf>,
    sending_tokens: openclick_sending::TenantTokens,
    sending_tokens_file: Option<PathBuf>,
}

impl Reload {
    /// Blocking: file reads. A file that fails keeps the secret in force; the error names the
    /// file, never its content.
    fn run(&self) {
        match self.enricher.reload() {
            Ok(()) => {
                let data = self.enricher.network_data();
                tracing::info!(
                    egress_prefixes = data.egress_prefixes,
                    gateway_entries = data.gateway_entries,
                    "SIGHUP: GeoIP databases and network files reloaded"
                )
            }
            Err(err) => {
                tracing::error!(error = %err, "SIGHUP: GeoIP / network file reload failed; keeping the old ones")
            }
        }
        self.reload_secrets("SIGHUP");
    }

    /// Re-reads the secret files (`trigger`: SIGHUP, or a change seen by
    /// [`watch_secret_files`]).
    fn reload_secrets(&self, trigger: &'static str) {
        if let Some(path) = &self.keys_file {
            match crate::secrets::read_keys_file(path) {
                Ok(k) => {
                    let keys = describe_keys(&k);
                    self.keyring.store(k);
                    tracing::info!(trigger, %keys, "keys reloaded from --keys-file");
                }
                Err(err) => tracing::error!(
                    trigger,
                    error = %format!("{err:#}"),
                    "--keys-file not reloaded; keeping the keys in force"
                ),
            }
        }
        if let Some(path) = &self.admin_token_file {
            match crate::secrets::read_token_file(path) {
                Ok(t) => {
                    self.bearer.set(Some(&t));
                    tracing::info!(trigger, "admin token reloaded from --admin-token-file");
                }
                Err(err) => tracing::error!(
                    trigger,
                    error = %format!("{err:#}"),
                    "--admin-token-file not reloaded; keeping the token in force"
                ),
            }
        }
        if let Some(path) = &self.sending_tokens_file {
            match crate::secrets::read_sending_tokens(path) {
                Ok(t) => {
                    let tokens = t.len();
                    self.sending_tokens.set(t);
                    tracing::info!(
                        trigger,
                        tokens,
                        "sending tokens reloaded from --sending-tokens-file"
                    );
                }
                Err(err) => tracing::error!(
                    trigger,
                    error = %format!("{err:#}"),
                    "--sending-tokens-file not reloaded; keeping the tokens in force"
                ),
            }
        }
    }
}

/// How often the secret files are checked for a change.
const SECRET_POLL: Duration = Duration::from_secs(5);

/// What identifies a file's content without reading it: modification time, length, inode
/// (Kubernetes swaps a mounted Secret by symlink, which changes all three). `None`: missing.
pub(crate) fn file_stamp(path: &Path) -> Option<(Option<std::time::SystemTime>, u64, u64)> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok(), m.len(), ino))
}

/// Re-reads `--keys-file` and `--admin-token-file` when either changes on disk (checked every
/// [`SECRET_POLL`]), so a tenant's key rotates without a restart or a signal. A file caught
/// half-written fails to parse and keeps the secrets in force; the next change reloads it.
fn watch_secret_files(reload: Arc<Reload>) {
    let files: Vec<PathBuf> = [
        &reload.keys_file,
        &reload.admin_token_file,
        &reload.sending_tokens_file,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    if files.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let stamps = |files: Vec<PathBuf>| async move {
            tokio::task::spawn_blocking(move || files.iter().map(|f| file_stamp(f)).collect())
                .await
                .unwrap_or_default()
        };
        let mut last: Vec<_> = stamps(files.clone()).await;
        let mut tick = tokio::time::interval(SECRET_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now: Vec<_> = stamps(files.clone()).await;
            if now != last {
                last = now;
                tracing::info!("a secret file changed on disk: reloading the secrets");
                let r = reload.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload_secrets("file change")).await;
            }
        }
    });
}

fn spawn_reload_on_sighup(reload: Reload) {
    let reload = Arc::new(reload);
    watch_secret_files(reload.clone());
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let r = reload.clone();
            if let Err(err) = tokio::task::spawn_blocking(move || r.run()).await {
                tracing::error!(error = %err, "SIGHUP: reload task failed");
            }
        }
    });
    #[cfg(not(unix))]
    drop(reload);
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that arrives as soon as `openclick serving` is
/// logged drains the process instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => tokio::select! {
                    _ = int.recv() => tracing::info!("SIGINT received"),
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                },
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
