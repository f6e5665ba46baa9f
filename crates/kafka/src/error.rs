//! One classification of Kafka errors, code by code, for every client in the process.
//!
//! Callers never match `RDKafkaErrorCode` themselves: they ask [`classify_code`] whether an
//! error may go away by itself ([`ErrorClass::Retryable`]: keep the record, try again) or never
//! will ([`ErrorClass::Fatal`]: this record or this configuration will not be accepted).
//! Errors that leave this crate are [`Error`] or the callers' own error types; they carry the
//! classification, not the rdkafka type.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Whether an error may go away by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The broker or network may recover: keep the record and try again.
    Retryable,
    /// This record or configuration will never be accepted.
    Fatal,
}

/// An error of this crate's own operations (creating clients, the embedded broker, reading a
/// topic).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client could not be configured or created. Not retryable.
    #[error("kafka client configuration: {0}")]
    Config(String),
    /// The cluster or the network failed. Retryable.
    #[error("kafka: {0}")]
    Unavailable(String),
    /// The cluster refused for good (authorization, unknown topic, ...). Not retryable.
    #[error("kafka refused: {0}")]
    Refused(String),
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<KafkaError> for Error {
    fn from(e: KafkaError) -> Self {
        match e {
            KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => {
                Error::Config(describe(&e))
            }
            e if classify_kafka_error(&e) == ErrorClass::Retryable => {
                Error::Unavailable(e.to_string())
            }
            e => Error::Refused(e.to_string()),
        }
    }
}

/// An error's message for logs and errors. A refused configuration value is left out when the
/// property holds a secret (rdkafka's own message quotes the value, and librdkafka's may too).
pub fn describe(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, key, value) if crate::client::is_secret_key(key) => {
            let desc = if value.is_empty() {
                desc.clone()
            } else {
                desc.replace(value.as_str(), "<redacted>")
            };
            format!("Client config error: {desc} {key} <redacted>")
        }
        e => e.to_string(),
    }
}

/// Classifies a librdkafka error code, explicitly, code by code.
pub fn classify_code(code: RDKafkaErrorCode) -> ErrorClass {
    use RDKafkaErrorCode as C;
    match code {
        C::QueueFull
        | C::MessageTimedOut
        | C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::Resolve
        | C::NetworkException
        | C::RequestTimedOut
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::BrokerNotAvailable
        | C::ReplicaNotAvailable
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::NotCoordinator
        | C::CoordinatorNotAvailable
        | C::CoordinatorLoadInProgress
        | C::KafkaStorageError
        | C::FencedLeaderEpoch
        | C::UnknownLeaderEpoch
        | C::OutOfOrderSequenceNumber
        | C::UnknownTopicOrPartition
        | C::UnknownPartition
        | C::TimedOutQueue
        | C::WaitCache
        | C::InProgress
        | C::Retry
        | C::PurgeQueue
        | C::PurgeInflight
        | C::ThrottlingQuotaExceeded
        | C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::UnknownProducerId
        | C::InvalidProducerIdMapping => ErrorClass::Retryable,
        C::MessageSizeTooLarge
        | C::InvalidMessage
        | C::InvalidMessageSize
        | C::InvalidRecord
        | C::TopicAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::InvalidTopic
        | C::InvalidRequiredAcks
        | C::UnsupportedVersion
        | C::UnsupportedCompressionType
        | C::Fatal
        | C::InvalidArgument
        | C::UnknownTopic
        | C::Authentication
        | C::SaslAuthenticationFailed => ErrorClass::Fatal,
        // Unknown codes: keep the record. Losing data on a code we did not foresee is worse than
        // retrying a record that will fail again (the spool bounds the cost).
        _ => ErrorClass::Retryable,
    }
}

/// Errors that say the idempotent producer's own state (producer id, epoch, sequence numbers)
/// is no longer accepted by the cluster: the record is fine, the producer instance is not. The
/// sink replaces its producer (a fresh id) and retries the records (see [`crate::KafkaSink`]). Seen
/// when a broker loses its producer state (restart with memory storage) or fences an epoch
/// after timeouts.
pub fn is_producer_state_error(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::Fatal
            | C::ProducerFenced
            | C::InvalidProducerEpoch
            | C::UnknownProducerId
            | C::InvalidProducerIdMapping
            | C::OutOfOrderSequenceNumber
    )
}

/// Classifies a client error: see [`classify_code`].
pub fn classify_kafka_error(e: &KafkaError) -> ErrorClass {
    match e.rdkafka_error_code() {
        Some(code) => classify_code(code),
        None => match e {
            KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => ErrorClass::Fatal,
            _ => ErrorClass::Retryable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_explicit() {
        assert_eq!(
            classify_code(RDKafkaErrorCode::QueueFull),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify_code(RDKafkaErrorCode::MessageTimedOut),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify_code(RDKafkaErrorCode::MessageSizeTooLarge),
            ErrorClass::Fatal
        );
        assert_eq!(
            classify_code(RDKafkaErrorCode::TopicAuthorizationFailed),
            ErrorClass::Fatal
        );
    }

    #[test]
    fn errors_leave_with_their_class() {
        let e: Error =
            KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure).into();
        assert!(e.is_retryable(), "{e}");
        let e: Error =
            KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed).into();
        assert!(matches!(e, Error::Refused(_)), "{e}");
        let e: Error = KafkaError::ClientCreation("bad".into()).into();
        assert!(matches!(e, Error::Config(_)) && !e.is_retryable());
    }
}
