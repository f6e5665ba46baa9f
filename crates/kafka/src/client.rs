//! Every Kafka client the process makes is configured here, from one set of typed settings.
//!
//! `--kafka-brokers` and every `--kafka-property key=value` become a [`ClientSettings`], parsed
//! once (at argument parsing, by [`KafkaProperty`]'s strict parser). Each client asks for its
//! `ClientConfig` with [`ClientSettings::client_config`], naming its [`Role`]: the role gives
//! the `client.id` suffix (so broker logs and quotas tell the clients apart), the role's own
//! defaults are applied next (idempotence for producers, assignment for readers), and the
//! operator's properties last, so TLS, SASL and tuning settings reach every client alike and
//! can override any default. One exception: `statistics.interval.ms` reaches only the events
//! producer, the one client whose statistics become metrics ([`crate::stats`]); the others
//! would only log them.

use std::fmt;
use std::str::FromStr;

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

/// The librdkafka property that turns statistics on.
const STATISTICS_INTERVAL: &str = "statistics.interval.ms";

/// Which client a configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The events producer (the sink).
    EventsProducer,
    /// The suppression-topic writer (and erasure requests).
    SuppressionWriter,
    /// The suppression-topic follower every replica runs.
    SuppressionFollower,
    /// Topic administration (creating the suppression topics).
    Admin,
    /// A reader of a whole topic (`openclick tail`, tests).
    Reader,
}

impl Role {
    /// The `client.id` suffix (`None`: the bare client id).
    fn suffix(self) -> Option<&'static str> {
        match self {
            Role::EventsProducer => None,
            Role::SuppressionWriter => Some("suppress-writer"),
            Role::SuppressionFollower => Some("suppress-follower"),
            Role::Admin => Some("admin"),
            Role::Reader => Some("reader"),
        }
    }
}

/// One librdkafka property, `key=value`.
///
/// Parsed strictly: the key must look like a librdkafka property name (lower-case ASCII letters,
/// digits, `.`, `_`, `-`), the `=` is required; surrounding spaces are trimmed. Whether
/// librdkafka knows the property and accepts the value is checked when a client is created
/// (`openclick check-config` creates one). `Display` and `Debug` hide the values of secret
/// properties (passwords, keys, secrets).
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaProperty {
    key: String,
    value: String,
}

/// A `--kafka-property` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kafka property {0:?}: expected key=value with a librdkafka property name as key")]
pub struct PropertyError(String);

impl KafkaProperty {
    /// A property from its parts (validated like the parser does).
    pub fn new(key: &str, value: &str) -> Result<KafkaProperty, PropertyError> {
        format!("{key}={value}").parse()
    }

    /// The property name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the value is a secret that must never be printed: passwords and passphrases
    /// (`sasl.password`, `ssl.key.password`, `ssl.keystore.password`, ...), secrets
    /// (`sasl.oauthbearer.client.secret`), private keys in PEM (`ssl.key.pem`), and
    /// configurations that carry credentials (`sasl.oauthbearer.config`, `sasl.jaas.config`,
    /// `basic.auth.user.info`).
    pub fn is_secret(&self) -> bool {
        is_secret_key(&self.key)
    }
}

impl FromStr for KafkaProperty {
    type Err = PropertyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PropertyError(redact_input(s));
        let (k, v) = s.split_once('=').ok_or_else(bad)?;
        let key = k.trim();
        let valid_key = !key.is_empty()
            && key.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && key.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if !valid_key {
            return Err(bad());
        }
        Ok(KafkaProperty {
            key: key.to_string(),
            value: v.trim().to_string(),
        })
    }
}

/// Whether a property of this name holds a secret (see [`KafkaProperty::is_secret`]).
pub fn is_secret_key(k: &str) -> bool {
    k.contains("password")
        || k.contains("passphrase")
        || k.contains("secret")
        || k.ends_with("key.pem")
        || k.ends_with("jaas.config")
        || k == "sasl.oauthbearer.config"
        || k.ends_with("user.info")
}

/// An unparsable property for an error message: what stands before the first `=` or space
/// only (anything after it may be a secret).
fn redact_input(s: &str) -> String {
    let s = s.trim();
    let end = s.find(['=', ' ', '\t']).unwrap_or(s.len());
    let head: String = s[..end].chars().take(64).collect();
    if end < s.len() {
        format!("{head}…")
    } else {
        head
    }
}

impl fmt::Display for KafkaProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_secret() {
            write!(f, "{}=<redacted>", self.key)
        } else {
            write!(f, "{}={}", self.key, self.value)
        }
    }
}

impl fmt::Debug for KafkaProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KafkaProperty({self})")
    }
}

/// Where the cluster is and how every client talks to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// `client.id` of the events producer; other roles append a suffix.
    pub client_id: String,
    /// The operator's properties, applied last to every client.
    pub properties: Vec<KafkaProperty>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings::new("127.0.0.1:9092")
    }
}

impl ClientSettings {
    /// Settings for `brokers`, client id `openclick`, no extra properties.
    pub fn new(brokers: impl Into<String>) -> ClientSettings {
        ClientSettings {
            brokers: brokers.into(),
            client_id: "openclick".into(),
            properties: Vec::new(),
        }
    }

    /// With these operator properties.
    pub fn with_properties(mut self, properties: Vec<KafkaProperty>) -> ClientSettings {
        self.properties = properties;
        self
    }

    /// The `client.id` a role's client uses.
    pub fn client_id_for(&self, role: Role) -> String {
        match role.suffix() {
            Some(s) => format!("{}-{s}", self.client_id),
            None => self.client_id.clone(),
        }
    }

    /// The configuration of one client: bootstrap servers, `client.id` for its role, CA
    /// certificates from the system's bundle (`ssl.ca.location=probe`), warning log level,
    /// then `role_defaults`, then the operator's properties (which win;
    /// `statistics.interval.ms` only for [`Role::EventsProducer`]).
    pub fn client_config(
        &self,
        role: Role,
        role_defaults: impl FnOnce(&mut ClientConfig),
    ) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", self.client_id_for(role))
            // OpenSSL is vendored: its own default CA path (/usr/local/ssl) is empty on every
            // distribution, so brokers with public certificates (Confluent Cloud, MSK) would
            // fail verification. `probe` finds the system bundle (/etc/ssl/certs/...) instead.
            // An `ssl.ca.location` or `ssl.ca.pem` of the operator's replaces it.
            .set("ssl.ca.location", "probe")
            .set_log_level(RDKafkaLogLevel::Warning);
        role_defaults(&mut c);
        for p in &self.properties {
            if p.key == STATISTICS_INTERVAL && role != Role::EventsProducer {
                continue;
            }
            c.set(&p.key, &p.value);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_strictly() {
        let p: KafkaProperty = " security.protocol = ssl ".parse().unwrap();
        assert_eq!((p.key(), p.value()), ("security.protocol", "ssl"));
        let p: KafkaProperty = "ssl.endpoint.identification.algorithm=".parse().unwrap();
        assert_eq!(p.value(), "");
        let p: KafkaProperty = "sasl.jaas.config=a=b".parse().unwrap();
        assert_eq!(p.value(), "a=b");
        for bad in [
            "",
            "linger.ms",
            "=5",
            "Linger.ms=5",
            "linger ms=5",
            ".x=1",
            "läuft=1",
        ] {
            assert!(bad.parse::<KafkaProperty>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_never_printed() {
        let p: KafkaProperty = "sasl.password=hunter2".parse().unwrap();
        assert_eq!(p.to_string(), "sasl.password=<redacted>");
        assert!(!format!("{p:?}").contains("hunter2"));
        let e = "sasl.password hunter2"
            .parse::<KafkaProperty>()
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("sasl.password"), "{e}");
        let e = "Sasl.Password=hunter2"
            .parse::<KafkaProperty>()
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let p: KafkaProperty = "ssl.key.password=s3cret".parse().unwrap();
        assert!(!p.to_string().contains("s3cret"));
    }

    /// Every client is configured here: no other source file of the crate makes a
    /// `ClientConfig` of its own (so none can miss the operator's TLS and SASL settings).
    #[test]
    fn no_client_config_is_made_elsewhere() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        assert!(files.len() > 10, "{files:?}");
        let makers: Vec<_> = files
            .iter()
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                text.contains(concat!("ClientConfig", "::new("))
                    || text.contains(concat!("ClientConfig", "::default("))
            })
            .collect();
        assert_eq!(makers, vec![&src.join("client.rs")]);
    }

    #[test]
    fn every_role_gets_the_operator_properties_last() {
        let s = ClientSettings::new("b:9092").with_properties(vec![
            "security.protocol=sasl_ssl".parse().unwrap(),
            "ssl.ca.location=/etc/ca.pem".parse().unwrap(),
            "sasl.mechanism=SCRAM-SHA-512".parse().unwrap(),
            "sasl.username=svc".parse().unwrap(),
            "sasl.password=pw".parse().unwrap(),
            "acks=1".parse().unwrap(),
            "statistics.interval.ms=1000".parse().unwrap(),
        ]);
        for role in [
            Role::EventsProducer,
            Role::SuppressionWriter,
            Role::SuppressionFollower,
            Role::Admin,
            Role::Reader,
        ] {
            let c = s.client_config(role, |c| {
                c.set("acks", "all");
            });
            assert_eq!(c.get("bootstrap.servers"), Some("b:9092"));
            for (k, v) in [
                ("security.protocol", "sasl_ssl"),
                ("ssl.ca.location", "/etc/ca.pem"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", "svc"),
                ("sasl.password", "pw"),
            ] {
                assert_eq!(c.get(k), Some(v), "{role:?} {k}");
            }
            assert_eq!(c.get("acks"), Some("1"), "operator wins over role default");
            let stats = (role == Role::EventsProducer).then_some("1000");
            assert_eq!(c.get("statistics.interval.ms"), stats, "{role:?}");
        }
        // Without the operator's CA, every client trusts the system's bundle.
        let plain = ClientSettings::new("b:9092").client_config(Role::Reader, |_| {});
        assert_eq!(plain.get("ssl.ca.location"), Some("probe"));
        assert_eq!(s.client_id_for(Role::EventsProducer), "openclick");
        assert_eq!(
            s.client_id_for(Role::SuppressionFollower),
            "openclick-suppress-follower"
        );
    }
}
