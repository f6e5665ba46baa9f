//! Where suppression changes (and the rest of the replicated control state, redirect blocks)
//! are written: the [`SuppressionWriter`] trait.
//!
//! The admin API (and, later, the unsubscribe route) takes a `dyn SuppressionWriter`, never a
//! Kafka client: the implementation that publishes to the compacted topic lives in
//! `openclick-kafka` (`KafkaSuppressionWriter`), and tests can pass their own.

use std::future::Future;
use std::pin::Pin;

use crate::blocks::BlockChange;
use crate::{Change, SuppressError};

/// The future a [`SuppressionWriter::write`] returns.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SuppressError>> + Send + 'a>>;

/// Makes suppression changes durable for every replica.
pub trait SuppressionWriter: Send + Sync + 'static {
    /// Publishes `changes` and resolves once all of them are durable (for Kafka: acknowledged
    /// by the broker), or with the first failure once every change has settled. Every scope
    /// is validated first: an invalid one publishes nothing. `source` names what made the
    /// change (`admin-api`, ...), never a person. The writer does not apply the changes to
    /// any local set: replicas (this one included) apply them when they read them back.
    fn write<'a>(&'a self, changes: &'a [Change], source: &'a str) -> WriteFuture<'a>;

    /// Publishes redirect block changes the same way (scopes validated first; nothing is
    /// published if one is invalid).
    fn write_blocks<'a>(&'a self, changes: &'a [BlockChange], source: &'a str) -> WriteFuture<'a>;
}
