//! Kafka client properties from a Java-style `client.properties` file (what Confluent Cloud,
//! MSK and Aiven hand their users), merged under the command line's `--kafka-property`.
//!
//! The file is parsed strictly: `key=value` lines under the same rules as [`KafkaProperty`],
//! `#` and `!` comment lines and blank lines; a key may appear once. Java line continuations
//! (a trailing `\`) are refused rather than guessed at.
//!
//! Two Java-client habits are translated, so a file handed out for Java clients works as is:
//! - `sasl.jaas.config` with a `PlainLoginModule` or `ScramLoginModule` becomes
//!   `sasl.username` and `sasl.password` (librdkafka has no JAAS);
//! - keys only Java clients know and that do not configure the connection (`client.dns.lookup`,
//!   serializers, `schema.registry.*`, `basic.auth.*`) are left out and reported by name in
//!   [`PropertiesFile::ignored`].
//!
//! Everything else goes to librdkafka, which refuses unknown properties and bad values when a
//! client is created (`openclick check-config` creates one).

use crate::client::{KafkaProperty, PropertyError};

/// Keys Java clients (and Confluent's serializers) read that librdkafka does not know and that
/// do not change how the connection is made.
const JAVA_ONLY_KEYS: &[&str] = &[
    "client.dns.lookup",
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
];
/// Prefixes of keys for the schema registry, not the cluster.
const JAVA_ONLY_PREFIXES: &[&str] = &["schema.registry.", "basic.auth."];

/// A parsed properties file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertiesFile {
    /// The properties for librdkafka, in file order (`sasl.jaas.config` translated).
    pub properties: Vec<KafkaProperty>,
    /// Keys left out (Java-client-only); the caller says so, by name only.
    pub ignored: Vec<String>,
}

/// A properties file that does not parse. Never holds a value (only keys and line numbers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesFileError {
    /// A line is not `key=value` with a valid key.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong (its message shows no value).
        source: PropertyError,
    },
    /// A key appears twice.
    #[error("line {line}: {key} is already set on an earlier line")]
    Duplicate {
        /// 1-based line number of the second occurrence.
        line: usize,
        /// The key.
        key: String,
    },
    /// A trailing `\` (a Java continuation line).
    #[error("line {line}: continuation lines (a trailing \\) are not supported")]
    Continuation {
        /// 1-based line number.
        line: usize,
    },
    /// A `sasl.jaas.config` that is not a PLAIN or SCRAM login with a username and password.
    #[error("line {line}: sasl.jaas.config: {reason}")]
    Jaas {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Parses the text of a properties file.
pub fn parse_properties(text: &str) -> Result<PropertiesFile, PropertiesFileError> {
    let mut out = PropertiesFile::default();
    let mut seen: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
            continue;
        }
        if t.ends_with('\\') {
            return Err(PropertiesFileError::Continuation { line });
        }
        let p: KafkaProperty = t
            .parse()
            .map_err(|source| PropertiesFileError::Line { line, source })?;
        if seen.iter().any(|k| k == p.key()) {
            return Err(PropertiesFileError::Duplicate {
                line,
                key: p.key().to_string(),
            });
        }
        seen.push(p.key().to_string());
        if JAVA_ONLY_KEYS.contains(&p.key())
            || JAVA_ONLY_PREFIXES.iter().any(|x| p.key().starts_with(x))
        {
            out.ignored.push(p.key().to_string());
            continue;
        }
        if p.key() == "sasl.jaas.config" {
            let (user, password) = jaas_credentials(p.value())
                .map_err(|reason| PropertiesFileError::Jaas { line, reason })?;
            for (k, v) in [("sasl.username", user), ("sasl.password", password)] {
                if seen.iter().any(|s| s == k) {
                    return Err(PropertiesFileError::Duplicate {
                        line,
                        key: k.to_string(),
                    });
                }
                seen.push(k.to_string());
                out.properties.push(
                    KafkaProperty::new(k, &v)
                        .map_err(|source| PropertiesFileError::Line { line, source })?,
                );
            }
            continue;
        }
        out.properties.push(p);
    }
    Ok(out)
}

/// The username and password of a JAAS PLAIN or SCRAM login:
/// `org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";`
fn jaas_credentials(value: &str) -> Result<(String, String), &'static str> {
    let v = value.trim().trim_end_matches(';').trim();
    let (module, rest) = v
        .split_once(char::is_whitespace)
        .ok_or("no login module options")?;
    let module = module.rsplit('.').next().unwrap_or(module);
    if module != "PlainLoginModule" && module != "ScramLoginModule" {
        return Err("only PlainLoginModule and ScramLoginModule are supported (set sasl.oauthbearer.* for OAUTHBEARER; GSSAPI is not supported)");
    }
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix("required")
        .ok_or("expected `required` after the login module")?;
    let (mut user, mut password) = (None, None);
    let mut s = rest.trim_start();
    while !s.is_empty() {
        let (k, after) = s.split_once('=').ok_or("expected key=\"value\" options")?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
        let (val, next) = match quote {
            Some(q) => {
                let body = &after[1..];
                let end = body.find(q).ok_or("unterminated quoted value")?;
                (&body[..end], &body[end + 1..])
            }
            None => match after.find(char::is_whitespace) {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        match k.trim() {
            "username" => user = Some(val.to_string()),
            "password" => password = Some(val.to_string()),
            _ => {}
        }
        s = next.trim_start();
    }
    match (user, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err("username and password are both required"),
    }
}

/// The file's properties under the command line's: a key given with `--kafka-property` replaces
/// the file's; among repeated command-line keys the last wins. File order, then command line.
pub fn merge(file: &[KafkaProperty], argv: &[KafkaProperty]) -> Vec<KafkaProperty> {
    let mut out: Vec<KafkaProperty> = file
        .iter()
        .filter(|p| !argv.iter().any(|a| a.key() == p.key()))
        .cloned()
        .collect();
    for (i, p) in argv.iter().enumerate() {
        if !argv[i + 1..].iter().any(|later| later.key() == p.key()) {
            out.push(p.clone());
        }
    }
    out
}

/// Removes `bootstrap.servers` from the list and returns its value: where the cluster is comes
/// from `--kafka-brokers` first, then this.
pub fn take_bootstrap_servers(props: &mut Vec<KafkaProperty>) -> Option<String> {
    let i = props.iter().position(|p| p.key() == "bootstrap.servers")?;
    Some(props.remove(i).value().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(p: &[KafkaProperty]) -> Vec<(&str, &str)> {
        p.iter().map(|p| (p.key(), p.value())).collect()
    }

    /// The Java client.properties Confluent Cloud hands out (placeholders for the secrets).
    const CONFLUENT: &str = "\
# Required connection configs for Kafka producer, consumer, and admin
bootstrap.servers=pkc-abc12.eu-west-1.aws.confluent.cloud:9092
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username='APIKEY123' password='s3cr3t/with=signs';

# Required for correctness in Apache Kafka clients prior to 2.6
client.dns.lookup=use_all_dns_ips

! Best practice for higher availability in Apache Kafka clients prior to 3.0
session.timeout.ms=45000
acks=all

# Required connection configs for Confluent Cloud Schema Registry
schema.registry.url=https://psrc-xyz.europe-west3.gcp.confluent.cloud
basic.auth.credentials.source=USER_INFO
basic.auth.user.info=SRKEY:srsecret
";

    #[test]
    fn a_confluent_cloud_file_becomes_librdkafka_properties() {
        let f = parse_properties(CONFLUENT).unwrap();
        assert_eq!(
            kv(&f.properties),
            vec![
                (
                    "bootstrap.servers",
                    "pkc-abc12.eu-west-1.aws.confluent.cloud:9092"
                ),
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "APIKEY123"),
                ("sasl.password", "s3cr3t/with=signs"),
                ("session.timeout.ms", "45000"),
                ("acks", "all"),
            ]
        );
        assert_eq!(
            f.ignored,
            vec![
                "client.dns.lookup",
                "schema.registry.url",
                "basic.auth.credentials.source",
                "basic.auth.user.info"
            ]
        );
    }

    #[test]
    fn scram_jaas_with_double_quotes() {
        let f = parse_properties(
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"alice\" password=\"p w\";",
        )
        .unwrap();
        assert_eq!(
            kv(&f.properties),
            vec![("sasl.username", "alice"), ("sasl.password", "p w")]
        );
    }

    #[test]
    fn the_file_is_parsed_strictly_and_errors_show_no_value() {
        for (text, line) in [
            ("acks=all\nlinger.ms\n", 2),
            ("Sasl.Password=hunter2\n", 1),
            ("sasl.password hunter2\n", 1),
            ("acks=all\nacks=1\n", 2),
            ("ssl.ca.location=/a\\\n/b\n", 1),
            ("sasl.jaas.config=x.OAuthBearerLoginModule required;\n", 1),
            ("sasl.jaas.config=x.PlainLoginModule required username=\"u\";\n", 1),
            ("sasl.username=u\nsasl.jaas.config=x.PlainLoginModule required username=u password=hunter2;\n", 2),
        ] {
            let e = parse_properties(text).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("line {line}:")), "{text:?}: {msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }

    #[test]
    fn the_command_line_wins_per_key() {
        let file: Vec<KafkaProperty> = ["acks=all", "linger.ms=5", "sasl.username=f"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let argv: Vec<KafkaProperty> = ["linger.ms=20", "batch.size=1", "linger.ms=30"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let m = merge(&file, &argv);
        assert_eq!(
            kv(&m),
            vec![
                ("acks", "all"),
                ("sasl.username", "f"),
                ("batch.size", "1"),
                ("linger.ms", "30")
            ]
        );
        let mut m = m;
        assert_eq!(take_bootstrap_servers(&mut m), None);
        m.push("bootstrap.servers=b:9092".parse().unwrap());
        assert_eq!(take_bootstrap_servers(&mut m).as_deref(), Some("b:9092"));
        assert!(m.iter().all(|p| p.key() != "bootstrap.servers"));
    }
}
