//! Where the Kafka cluster is and how to talk to it, from `--kafka-brokers`,
//! `--kafka-properties-file` and `--kafka-property`, resolved once at start.
//!
//! The file's properties come first and each `--kafka-property` key replaces the file's (one
//! parser for both: [`openclick_kafka::KafkaProperty`]). The bootstrap servers are
//! `--kafka-brokers`, else a `bootstrap.servers` property (command line, then file). A secret
//! property given on the command line (or in `OPENCLICK_KAFKA_PROPERTIES`) works but draws a
//! warning naming the key only: argv is visible to every user of the machine.

use std::path::Path;

use anyhow::{Context, Result};
use openclick_kafka::properties::{merge, parse_properties, take_bootstrap_servers};
use openclick_kafka::KafkaProperty;

/// The resolved Kafka settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Bootstrap servers, when any source names them.
    pub brokers: Option<String>,
    /// Every property but `bootstrap.servers`, file first, command line last.
    pub properties: Vec<KafkaProperty>,
}

/// Reads the file (if any) and merges it under the command line's properties.
pub fn resolve(
    brokers: Option<&str>,
    file: Option<&Path>,
    argv: &[KafkaProperty],
) -> Result<Resolved> {
    for p in argv.iter().filter(|p| p.is_secret()) {
        tracing::warn!(
            property = p.key(),
            "a secret Kafka property came from --kafka-property / OPENCLICK_KAFKA_PROPERTIES, \
             where other users of the machine may see it (process list, shell history): \
             put it in --kafka-properties-file"
        );
    }
    let from_file = match file {
        None => Vec::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--kafka-properties-file {}", path.display()))?;
            let parsed = parse_properties(&text)
                .with_context(|| format!("--kafka-properties-file {}", path.display()))?;
            for key in &parsed.ignored {
                tracing::warn!(
                    property = %key,
                    "--kafka-properties-file: a Java-client-only property, left out"
                );
            }
            parsed.properties
        }
    };
    let mut properties = merge(&from_file, argv);
    let bootstrap = take_bootstrap_servers(&mut properties);
    Ok(Resolved {
        brokers: brokers.map(str::to_string).or(bootstrap),
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(s: &[&str]) -> Vec<KafkaProperty> {
        s.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn file_under_command_line_and_brokers_from_either() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client.properties");
        std::fs::write(
            &f,
            "bootstrap.servers=file:9093\nsecurity.protocol=SSL\nlinger.ms=5\n",
        )
        .unwrap();
        let r = resolve(None, Some(&f), &props(&["linger.ms=50"])).unwrap();
        assert_eq!(r.brokers.as_deref(), Some("file:9093"));
        assert_eq!(
            r.properties,
            props(&["security.protocol=SSL", "linger.ms=50"])
        );
        let r = resolve(Some("flag:9092"), Some(&f), &[]).unwrap();
        assert_eq!(r.brokers.as_deref(), Some("flag:9092"));
        let r = resolve(None, Some(&f), &props(&["bootstrap.servers=argv:1"])).unwrap();
        assert_eq!(r.brokers.as_deref(), Some("argv:1"));
        let r = resolve(None, None, &[]).unwrap();
        assert_eq!(r.brokers, None);
        let e = resolve(None, Some(&dir.path().join("missing")), &[]).unwrap_err();
        assert!(
            format!("{e:#}").contains("--kafka-properties-file"),
            "{e:#}"
        );
    }
}
