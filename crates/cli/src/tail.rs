//! `openclick tail`: events from the topic as proto3 JSON lines.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use openclick_events::v1::EngagementEvent;
use openclick_events::Message as _;
use openclick_kafka::reader::{Start, TopicReader};
use openclick_kafka::ClientSettings;

use crate::args::TailArgs;

/// Reads the topic (every partition, assigned, no consumer group offsets) and prints events.
pub fn tail(args: TailArgs) -> Result<()> {
    let kafka = crate::kafka_props::resolve(
        args.brokers.as_deref(),
        args.kafka_properties_file.as_deref(),
        &args.kafka_properties,
    )?;
    let brokers = kafka.brokers.unwrap_or_else(|| "127.0.0.1:9092".into());
    let settings = ClientSettings::new(&brokers).with_properties(kafka.properties);
    let start = if args.from_beginning {
        Start::Beginning
    } else {
        Start::End
    };
    let reader = TopicReader::open(&settings, &args.topic, start, Duration::from_secs(10))
        .with_context(|| format!("reading {} from {brokers}", args.topic))?;
    let mut seen = 0u64;
    let mut last = Instant::now();
    let stdout = std::io::stdout();
    loop {
        if args.count.is_some_and(|n| seen >= n) {
            return Ok(());
        }
        if let Some(idle) = args.idle_timeout_secs {
            if last.elapsed() >= Duration::from_secs(idle) {
                return Ok(());
            }
        }
        match reader.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consume error");
                continue;
            }
            Some(Ok(m)) => {
                last = Instant::now();
                let payload = m.payload.as_deref().unwrap_or_default();
                let line = match EngagementEvent::decode(payload) {
                    Ok(ev) => serde_json::to_string(&ev)?,
                    Err(e) => serde_json::json!({
                        "error": format!("not an EngagementEvent: {e}"),
                        "partition": m.partition,
                        "offset": m.offset,
                    })
                    .to_string(),
                };
                let mut out = stdout.lock();
                writeln!(out, "{line}")?;
                out.flush()?;
                seen += 1;
            }
        }
    }
}
