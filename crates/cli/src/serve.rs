//! `openclick serve` and `openclick check-config`: the process wiring.
//!
//! Components are built from typed arguments, then assembled: the sink (`openclick-kafka`), the
//! suppression set and its topic follower and writer, the public edge (`openclick-edge`) on the
//! tokio workers, and the admin plane (`openclick-admin`) on its own thread, with readiness
//! checks and metrics exporters registered by each component. Shutdown order: a signal marks
//! the process draining (`/readyz` 503), the public listener drains, the sink closes (flush,
//! then spool what is left), the follower stops, and the admin plane stops last.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use openclick_admin::{Admin, Metrics, Readiness, SuppressApi};
use openclick_edge::{
    ClientIpConfig, EdgeState, LimitConfig, Limits, Pipeline, ReplayLimiter, ServerConfig,
};
use openclick_enrich::{EnrichConfig, Enricher};
use openclick_http::tls::CertStore;
use openclick_http::ConnConfig;
use openclick_kafka::suppress::{ensure_topics, Follower, KafkaSuppressionWriter, SyncConfig};
use openclick_kafka::{ClientSettings, EmbeddedBroker, KafkaConfig, KafkaSink};
use openclick_sink::spool::SpoolConfig;
use openclick_sink::{Health, Sink};
use openclick_suppress::blocks::BlockList;
use openclick_suppress::{SuppressionSet, SuppressionWriter};
use openclick_token::Keyring;
use serde_json::{Map, Value};

use crate::args::{EnrichArgs, KeyArgs, ServeArgs};

/// Open files kept for everything but public connections (the admin plane and its
/// connections, Kafka clients, the spool, GeoIP databases, logs) when an explicit
/// `--max-connections` is checked against the open-file limit. An idle process holds about 30.
const RESERVED_FILES: u64 = 128;

/// A configuration error: the binary exits with status 64 (EX_USAGE), before binding a port.
#[derive(Debug)]
pub struct BadConfig(pub String);

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadConfig {}

/// Loads the HTTPS certificates when `--https-listen` is set; either flag without the other is
/// a configuration error.
fn load_tls(args: &ServeArgs) -> Result<Option<Arc<CertStore>>> {
    match (&args.https_listen, &args.tls_cert_dir) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(BadConfig(
            "--https-listen needs --tls-cert-dir (OPENCLICK_TLS_CERT_DIR)".into(),
        )
        .into()),
        (None, Some(_)) => Err(BadConfig(
            "--tls-cert-dir is set but --https-listen (OPENCLICK_HTTPS_LISTEN) is not".into(),
        )
        .into()),
        (Some(_), Some(dir)) => {
            let store =
                CertStore::open(dir).map_err(|e| BadConfig(format!("--tls-cert-dir: {e}")))?;
            // Builds the rustls configuration once, so that whatever it refuses, it refuses now.
            store
                .server_config(args.http2)
                .map_err(|e| BadConfig(format!("--tls-cert-dir: {e}")))?;
            Ok(Some(store))
        }
    }
}

/// Loads the keyring from `--keys`, or the development keyring in the data directory.
pub fn load_keyring(args: &KeyArgs) -> Result<Keyring> {
    if let Some(spec) = &args.keys {
        return Keyring::from_spec(spec).context("--keys / OPENCLICK_KEYS");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let path = args.data_dir.join("dev-keyring");
    let (keyring, created) = Keyring::load_or_create_dev(&path)
        .with_context(|| format!("development keyring {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        created,
        "USING A DEVELOPMENT KEYRING: tokens are signed with a key generated on this machine. \
         Do not send real email with it; configure --keys / OPENCLICK_KEYS in production."
    );
    Ok(keyring)
}

/// Builds the enricher from flags.
pub fn build_enricher(args: &EnrichArgs) -> Result<Enricher> {
    let config = EnrichConfig {
        geoip_city: args.geoip_city.clone(),
        geoip_asn: args.geoip_asn.clone(),
        ip_policy: args.ip_policy,
        min_delay_ms: args.min_delay_ms,
        ..EnrichConfig::default()
    };
    Enricher::new(config).context("opening GeoIP databases")
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
    keyring: Keyring,
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
    let keyring = load_keyring(&args.keys)?;
    let enricher = Arc::new(build_enricher(&args.enrich)?);
    let suppression = Arc::new(SuppressionSet::new());
    if let Some(path) = &args.suppression_file {
        suppression
            .load_file(path)
            .with_context(|| format!("--suppression-file {}", path.display()))?;
    }
    Ok(Components {
        keyring,
        enricher,
        suppression,
        client_ip,
        tls,
    })
}

/// `openclick check-config`.
pub fn check_config(args: ServeArgs) -> Result<()> {
    let c = build_components(&args)?;
    if let Some(b) = &args.kafka_brokers {
        kafka_config(&args, b)
            .validate()
            .context("Kafka producer configuration")?;
    }
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
        "  keys:             signing {} (verify: {})",
        c.keyring.signing_key_id(),
        c.keyring.key_ids().collect::<Vec<_>>().join(", ")
    );
    for db in c.enricher.databases() {
        println!("  database:         {db:?}");
    }
    println!("  suppressed:       {} contacts", c.suppression.len());
    Ok(())
}

/// Starts the topic follower and the writer, and builds the admin API on them.
async fn start_sync(
    args: &ServeArgs,
    brokers: &str,
    embedded: bool,
    set: &Arc<SuppressionSet>,
    blocks: &Arc<BlockList>,
) -> Result<(Option<Follower>, SuppressApi)> {
    let token = args.admin_token.as_deref().filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!(
            "no --admin-token / OPENCLICK_ADMIN_TOKEN: the suppression admin API refuses requests"
        );
    }
    if args.no_suppression_sync {
        tracing::warn!("--no-suppression-sync: the suppression topic is not followed");
        return Ok((
            None,
            SuppressApi::new(token, set.clone(), None).with_blocks(blocks.clone()),
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
        SuppressApi::new(token, set.clone(), Some(writer)).with_blocks(blocks.clone()),
    ))
}

/// `openclick serve`.
pub fn serve(args: ServeArgs) -> Result<()> {
    let c = build_components(&args)?;
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
    let sink = Arc::new(KafkaSink::new(&kafka_config(&args, &brokers)).context("Kafka producer")?);

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
    let ceiling = usize::try_from(open_files.saturating_sub(RESERVED_FILES))
        .unwrap_or(usize::MAX)
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
        let (follower, suppress_api) =
            start_sync(&args, &brokers, embedded.is_some(), &c.suppression, &blocks).await?;
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
        };
        // The admin listener: HTTP/1 only, its own small cap (it is for operators and
        // orchestrators on a private address).
        let admin_conn = ConnConfig {
            header_read_timeout,
            max_connections: 256,
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
        let sink_dyn: Arc<dyn Sink> = sink.clone();
        let state = Arc::new(EdgeState::new(pipeline, sink_dyn, server.clone()));

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
        let readiness = {
            let (sink, set) = (sink.clone(), c.suppression.clone());
            Readiness::new()
                .with_check("kafka", move || sink.health() == Health::Up)
                .with_check("suppression_sync", move || set.is_caught_up())
        };
        let metrics = {
            let (edge, sink, set) = (state.clone(), sink.clone(), c.suppression.clone());
            let tls = c.tls.clone();
            Metrics::new()
                .with_exporter(move || {
                    edge.metrics.export();
                    edge.connections.export("public");
                    if let Some(store) = &tls {
                        edge.https_connections.export("https");
                        store.export_metrics();
                    }
                })
                .with_exporter(move || sink.export_metrics())
                .with_exporter(move || set.export_metrics())
                .with_exporter(move || {
                    if let Some(l) = &limiter {
                        l.export_metrics();
                    }
                    blocks.export_metrics();
                })
        };
        let admin = Arc::new(Admin::new(info, readiness, metrics, Some(suppress_api)));
        let admin_handle =
            openclick_admin::server::spawn(admin_listener, admin.clone(), admin_conn)
                .context("starting the admin listener")?;
        crate::priority::lower_background_threads(args.background_nice);
        tracing::info!(
            listen = %listen,
            https = %https_listen,
            admin = %admin_listen,
            kafka = %brokers,
            topic = %args.topic,
            "openclick serving"
        );
        spawn_reload_on_sighup(c.enricher.clone());
        let draining = admin.clone();
        openclick_edge::run_with_https(listener, https, state, async move {
            shutdown_signal().await;
            draining.readiness.set_draining();
        })
        .await;
        drop(follower);
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

fn spawn_reload_on_sighup(enricher: Arc<Enricher>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let e = enricher.clone();
            match tokio::task::spawn_blocking(move || e.reload()).await {
                Ok(Ok(())) => tracing::info!("SIGHUP: GeoIP databases reloaded"),
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "SIGHUP: reload failed; keeping the old databases")
                }
                Err(err) => tracing::error!(error = %err, "SIGHUP: reload task failed"),
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
