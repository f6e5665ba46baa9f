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
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::Error;

/// A control request and where to send its outcome.
type Request = (Ctl, mpsc::Sender<Result<(), Error>>);

/// What the owner thread of the mock cluster can be asked to do.
enum Ctl {
    Stop,
    /// Take brokers down (`true`) or bring them back up (`false`): all of them if `None`.
    Down(Option<i32>, bool),
    /// Make the next requests of this API fail with these errors, one error per request.
    RequestErrors(RDKafkaApiKey, Vec<RDKafkaRespErr>),
}

/// A running in-process broker cluster.
#[derive(Debug)]
pub struct EmbeddedBroker {
    bootstrap: String,
    brokers: i32,
    stop: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts `brokers` mock brokers on loopback and creates `topics` (name, partitions) on them.
    pub fn start(brokers: i32, topics: &[(&str, i32)]) -> Result<EmbeddedBroker, Error> {
        let topics: Vec<(String, i32)> = topics.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, Error>>();
        let (stop_tx, stop_rx) = mpsc::channel::<Request>();
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
                // Serve control requests until told to stop (or the handle is dropped).
                while let Ok((ctl, reply)) = stop_rx.recv() {
                    let result = match ctl {
                        Ctl::Stop => {
                            let _ = reply.send(Ok(()));
                            break;
                        }
                        Ctl::Down(which, down) => {
                            let ids: Vec<i32> = match which {
                                Some(id) => vec![id],
                                None => (1..=brokers).collect(),
                            };
                            ids.into_iter().try_for_each(|id| {
                                if down {
                                    cluster.broker_down(id)
                                } else {
                                    cluster.broker_up(id)
                                }
                            })
                        }
                        Ctl::RequestErrors(key, errors) => {
                            cluster.request_errors(key, &errors);
                            Ok(())
                        }
                    };
                    let _ = reply.send(result.map_err(Error::from));
                }
                drop(cluster);
            })
            .map_err(|e| Error::Config(format!("cannot start embedded broker thread: {e}")))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| Error::Config("embedded broker thread died".into()))??;
        Ok(EmbeddedBroker {
            bootstrap,
            brokers,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The comma-separated `host:port` list clients bootstrap from.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    fn control(&self, ctl: Ctl) -> Result<(), Error> {
        let gone = || Error::Config("embedded broker thread is gone".into());
        let tx = self.stop.as_ref().ok_or_else(gone)?;
        let (reply_tx, reply_rx) = mpsc::channel();
        tx.send((ctl, reply_tx)).map_err(|_| gone())?;
        reply_rx.recv().map_err(|_| gone())?
    }

    /// Takes every broker down: connections are closed and new ones refused until
    /// [`all_brokers_up`](Self::all_brokers_up). For outage tests.
    pub fn all_brokers_down(&self) -> Result<(), Error> {
        self.control(Ctl::Down(None, true))
    }

    /// Brings every broker back up.
    pub fn all_brokers_up(&self) -> Result<(), Error> {
        self.control(Ctl::Down(None, false))
    }

    /// Takes one broker (ids start at 1) down or brings it back up.
    pub fn set_broker_down(&self, broker_id: i32, down: bool) -> Result<(), Error> {
        if broker_id < 1 || broker_id > self.brokers {
            return Err(Error::Config(format!("no broker {broker_id}")));
        }
        self.control(Ctl::Down(Some(broker_id), down))
    }

    /// Makes the next requests of `api` fail with `errors`, one per request, in order (librdkafka
    /// `rd_kafka_mock_push_request_errors`). For error-injection tests.
    pub fn request_errors(
        &self,
        api: RDKafkaApiKey,
        errors: &[RDKafkaRespErr],
    ) -> Result<(), Error> {
        self.control(Ctl::RequestErrors(api, errors.to_vec()))
    }

    /// Stops the brokers and waits for them to close.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let (reply_tx, _reply_rx) = mpsc::channel();
            let _ = tx.send((Ctl::Stop, reply_tx));
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
