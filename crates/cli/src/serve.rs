//! `openclick serve` and `openclick check-config`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use openclick_edge::{EdgeState, Info, Pipeline, ServerConfig};
use openclick_enrich::{EnrichConfig, Enricher, IpPolicy};
use openclick_sink::embedded::EmbeddedBroker;
use openclick_sink::kafka::{KafkaConfig, KafkaSink};
use openclick_sink::spool::{FsyncPolicy, SpoolConfig};
use openclick_suppress::SuppressionSet;
use openclick_token::Keyring;

use crate::args::{EnrichArgs, KeyArgs, ServeArgs};

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
    let ip_policy: IpPolicy = args.ip_policy.parse().context("--ip-policy")?;
    let config = EnrichConfig {
        geoip_city: args.geoip_city.clone(),
        geoip_asn: args.geoip_asn.clone(),
        ip_policy,
        min_delay_ms: args.min_delay_ms,
        ..EnrichConfig::default()
    };
    Enricher::new(config).context("opening GeoIP databases")
}

fn kafka_config(args: &ServeArgs, brokers: &str) -> Result<KafkaConfig> {
    let mut extra = Vec::new();
    for p in &args.kafka_properties {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--kafka-property {p:?}: expected key=value");
        };
        extra.push((k.trim().to_string(), v.trim().to_string()));
    }
    let fsync: FsyncPolicy = args.spool_fsync.parse().context("--spool-fsync")?;
    Ok(KafkaConfig {
        brokers: brokers.to_string(),
        topic: args.topic.clone(),
        linger_ms: args.kafka_linger_ms,
        extra,
        spool: Some(SpoolConfig {
            max_bytes: args.spool_max_bytes,
            fsync,
            ..SpoolConfig::new(args.keys.data_dir.join("spool"))
        }),
        ..KafkaConfig::default()
    })
}

struct Components {
    keyring: Keyring,
    enricher: Arc<Enricher>,
    suppression: Arc<SuppressionSet>,
}

fn build_components(args: &ServeArgs) -> Result<Components> {
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
    })
}

/// `openclick check-config`.
pub fn check_config(args: ServeArgs) -> Result<()> {
    let c = build_components(&args)?;
    if let Some(b) = &args.kafka_brokers {
        kafka_config(&args, b)?
            .client_config()
            .create::<rdkafka::producer::BaseProducer>()
            .context("Kafka producer configuration")?;
    }
    println!("configuration ok");
    println!("  listen:           {}", args.listen);
    println!("  admin listen:     {}", args.admin_listen);
    println!(
        "  kafka:            {}",
        args.kafka_brokers
            .as_deref()
            .unwrap_or("embedded in-process broker (development)")
    );
    println!("  topic:            {}", args.topic);
    println!(
        "  spool:            {} (max {} bytes, fsync {})",
        args.keys.data_dir.join("spool").display(),
        args.spool_max_bytes,
        args.spool_fsync
            .parse::<openclick_sink::spool::FsyncPolicy>()
            .context("--spool-fsync")?
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
    let sink = Arc::new(KafkaSink::new(&kafka_config(&args, &brokers)?).context("Kafka producer")?);

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.workers > 0 {
        rt.worker_threads(args.workers);
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    crate::priority::lower_background_threads(args.background_nice);
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding --listen {}", args.listen))?;
        let admin = tokio::net::TcpListener::bind(args.admin_listen)
            .await
            .with_context(|| format!("binding --admin-listen {}", args.admin_listen))?;
        let info = Info {
            version: env!("CARGO_PKG_VERSION").to_string(),
            listen: listener.local_addr()?.to_string(),
            admin_listen: admin.local_addr()?.to_string(),
            kafka_bootstrap_servers: brokers.clone(),
            kafka_embedded: embedded.is_some(),
            topic: args.topic.clone(),
        };
        tracing::info!(
            listen = %info.listen,
            admin = %info.admin_listen,
            kafka = %info.kafka_bootstrap_servers,
            topic = %info.topic,
            "openclick serving"
        );
        let suppression = c.suppression.clone();
        let (follower, suppress_api) =
            crate::suppress_cmd::start_sync(&args, &brokers, embedded.is_some(), &suppression)
                .await?;
        let pipeline = Pipeline::new(
            c.keyring,
            c.enricher.clone(),
            c.suppression,
            args.trusted_proxies.clone(),
        );
        let config = ServerConfig {
            drain_timeout: Duration::from_secs(args.drain_timeout_secs),
            flush_timeout: Duration::from_secs(args.flush_timeout_secs),
            ..ServerConfig::default()
        };
        let state = EdgeState::new(pipeline, sink.clone(), info, config)
            .with_metrics_exporter(move || suppression.export_metrics())
            .with_suppression_api(suppress_api);
        spawn_reload_on_sighup(c.enricher.clone());
        openclick_edge::run(listener, admin, Arc::new(state), shutdown_signal()).await;
        drop(follower);
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
