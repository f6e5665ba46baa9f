//! An in-process Kafka-protocol broker for running openclick with nothing installed.
//!
//! It is librdkafka's mock cluster (`rd_kafka_mock_cluster_new`, via
//! [`rdkafka::mocking::MockCluster`]): real brokers speaking the Kafka wire protocol on loopback
//! TCP ports, so any Kafka client (`kcat`, `openclick tail`, a data team's consumer) can read
//! from it while `openclick serve` runs. It keeps data in memory only and forgets it on exit:
//! it is a development and test default, never a production broker.
//!
//! The mock cluster handle is not `Send`, so it lives on a dedicated thread for its whole life;
//! [`EmbeddedBroker`] is the `Send + Sync` handle to it. Dropping the handle (or calling
//! [`EmbeddedBroker::shutdown`]) stops the brokers.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

use crate::SinkError;

/// A running in-process broker cluster.
#[derive(Debug)]
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts `brokers` mock brokers on loopback and creates `topics` (name, partitions) on them.
    pub fn start(brokers: i32, topics: &[(&str, i32)]) -> Result<EmbeddedBroker, SinkError> {
        let topics: Vec<(String, i32)> = topics.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, SinkError>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                for (topic, partitions) in &topics {
                    if let Err(e) = cluster.create_topic(topic, *partitions, brokers.min(3)) {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Park until told to stop (or the handle is dropped and the channel closes).
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| SinkError::Config(format!("cannot start embedded broker thread: {e}")))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| SinkError::Config("embedded broker thread died".into()))??;
        Ok(EmbeddedBroker {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The comma-separated `host:port` list clients bootstrap from.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Stops the brokers and waits for them to close.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_reports_a_loopback_bootstrap() {
        let b = EmbeddedBroker::start(1, &[("t1", 2)]).unwrap();
        let addr = b.bootstrap_servers().to_string();
        assert!(addr.contains("127.0.0.1:"), "{addr}");
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        // A real TCP listener is behind the address.
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        b.shutdown();
    }
}
