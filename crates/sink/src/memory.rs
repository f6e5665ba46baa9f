//! An in-memory [`Sink`] for unit tests of the layers above. Not for production: it delivers
//! nowhere, and it is never the only sink a behaviour is tested against.

use std::time::Duration;

use openclick_events::v1::EngagementEvent;
use parking_lot::Mutex;

use crate::{Health, Record, Sink, SinkError, SinkStats};

/// Keeps every published event, decoded, in a vector. A record whose key is not its event's
/// (`{tenant_id}/{contact_id}`) or whose payload does not decode is refused.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<EngagementEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events published so far, in order.
    pub fn events(&self) -> Vec<EngagementEvent> {
        self.events.lock().clone()
    }

    /// Removes and returns the events published so far.
    pub fn take(&self) -> Vec<EngagementEvent> {
        std::mem::take(&mut *self.events.lock())
    }
}

impl Sink for MemorySink {
    fn publish(&self, record: &Record) -> Result<(), SinkError> {
        let event = record.decode()?;
        let mut key = Vec::new();
        crate::record_key_into(&event, &mut key);
        if key != record.key {
            return Err(SinkError::Refused {
                reason: "wrong_key",
                retryable: false,
                detail: String::from_utf8_lossy(&record.key).into_owned(),
            });
        }
        self.events.lock().push(event);
        Ok(())
    }

    fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        Ok(())
    }

    fn health(&self) -> Health {
        Health::Up
    }

    fn stats(&self) -> SinkStats {
        let n = self.events.lock().len() as u64;
        SinkStats {
            accepted: n,
            delivered: n,
            ..SinkStats::default()
        }
    }
}
