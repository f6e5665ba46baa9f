//! `openclick tail`: events from the topic as proto3 JSON lines.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use openclick_events::v1::EngagementEvent;
use openclick_events::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::args::TailArgs;

/// Reads the topic (every partition, assigned, no consumer group offsets) and prints events.
pub fn tail(args: TailArgs) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", "openclick-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("Kafka consumer")?;
    let md = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(10))
        .with_context(|| format!("metadata for {} from {}", args.topic, args.brokers))?;
    let Some(topic) = md.topics().iter().find(|t| t.name() == args.topic) else {
        bail!("topic {} not found", args.topic);
    };
    if topic.partitions().is_empty() {
        bail!("topic {} has no partitions", args.topic);
    }
    let mut tpl = TopicPartitionList::new();
    let offset = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    for p in topic.partitions() {
        tpl.add_partition_offset(&args.topic, p.id(), offset)?;
    }
    consumer.assign(&tpl)?;
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
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consume error");
                continue;
            }
            Some(Ok(m)) => {
                last = Instant::now();
                let payload = m.payload().unwrap_or_default();
                let line = match EngagementEvent::decode(payload) {
                    Ok(ev) => serde_json::to_string(&ev)?,
                    Err(e) => serde_json::json!({
                        "error": format!("not an EngagementEvent: {e}"),
                        "partition": m.partition(),
                        "offset": m.offset(),
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
