//! The tokio side of the `kafka` output: one rskafka client per output per shard, its
//! partition clients, and the two operations shards ask for through the bridge
//! (a topic's partition count, and one produce request). Everything here runs on the
//! bridge's tokio thread; shards only hold an `Arc<Producer>` to hand it work.
//!
//! Reconnects and leader changes are rskafka's job (a partition client invalidates its
//! broker connection on I/O errors and re-reads metadata on `NOT_LEADER_OR_FOLLOWER`);
//! what this module adds is bounds: every rskafka retry loop has a deadline, and every
//! operation is cut at the output's `timeout`, so an outage turns into errors (and so
//! nacks) instead of requests that hang.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use rskafka::BackoffConfig;
use tokio::sync::OnceCell;

/// How a client connects: fixed when the output is built.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `host:port` seed brokers (comma lists already split).
    pub addresses: Vec<String>,
    pub client_id: String,
    /// Cut for one operation (connect, metadata, produce), retries included.
    pub timeout: Duration,
    /// First and largest pause between rskafka's internal retries.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// TLS to every broker (`None`: plain TCP).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL mechanism and credentials (`None`: no authentication).
    pub sasl: Option<(SaslMechanism, String, String)>,
}

/// The SASL mechanisms rskafka speaks that upstream configs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

/// One output's connection to the cluster (per shard).
pub struct Producer {
    settings: ClientSettings,
    /// Built on first use; a failed build leaves it empty so the next call tries again.
    client: OnceCell<Client>,
    partitions: Mutex<HashMap<(String, i32), Arc<PartitionClient>>>,
}

/// Why an operation failed, as the text a nack carries.
pub type KafkaError = String;

impl Producer {
    pub fn new(settings: ClientSettings) -> Arc<Producer> {
        Arc::new(Producer {
            settings,
            client: OnceCell::new(),
            partitions: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the client has reached the cluster. It stays so through later outages
    /// (rskafka reconnects per request; those fail as nacks).
    pub fn connected(&self) -> bool {
        self.client.initialized()
    }

    /// Builds the client at start-up, as upstream's outputs connect before traffic,
    /// retrying until a broker answers: the first request does not pay for it, and
    /// `/ready` can tell when the output can deliver.
    pub async fn connect(self: Arc<Self>) {
        let mut pause = self.settings.retry_initial;
        while self.client().await.is_err() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.settings.retry_max);
        }
    }

    fn backoff(&self) -> BackoffConfig {
        BackoffConfig {
            init_backoff: self.settings.retry_initial,
            max_backoff: self.settings.retry_max,
            base: 2.0,
            // Without a deadline rskafka retries a dead broker forever.
            deadline: Some(self.settings.timeout),
        }
    }

    async fn client(&self) -> Result<&Client, KafkaError> {
        self.client
            .get_or_try_init(|| async {
                let mut builder = ClientBuilder::new(self.settings.addresses.clone())
                    .client_id(self.settings.client_id.as_str())
                    .backoff_config(self.backoff());
                if let Some(tls) = &self.settings.tls {
                    builder = builder.tls_config(tls.clone());
                }
                if let Some((mechanism, user, password)) = &self.settings.sasl {
                    let creds = Credentials::new(user.clone(), password.clone());
                    builder = builder.sasl_config(match mechanism {
                        SaslMechanism::Plain => SaslConfig::Plain(creds),
                        SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(creds),
                        SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(creds),
                    });
                }
                builder.build().await.map_err(|e| {
                    format!(
                        "kafka: cannot connect to {:?}: {e}",
                        self.settings.addresses
                    )
                })
            })
            .await
    }

    async fn partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, KafkaError> {
        let key = (topic.to_string(), partition);
        if let Some(pc) = self.partitions.lock().unwrap().get(&key) {
            return Ok(pc.clone());
        }
        self.new_partition(topic, partition).await
    }

    /// A fresh partition client (its creation asks the broker for the topic by name).
    async fn new_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, KafkaError> {
        let key = (topic.to_string(), partition);
        let client = self.client().await?;
        // `Retry`: a topic the broker auto-creates on this very metadata request may
        // not be visible at once; the backoff deadline bounds the wait.
        let pc = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .map_err(|e| format!("kafka: no leader for {topic}/{partition}: {e}"))?;
        let pc = Arc::new(pc);
        self.partitions.lock().unwrap().insert(key, pc.clone());
        Ok(pc)
    }

    /// The number of partitions of `topic`. Creating a partition client first makes
    /// the broker auto-create an unknown topic (a metadata request that names it): not
    /// a cached one, since the topic may be gone (a broker without storage restarted).
    pub async fn partition_count(self: Arc<Self>, topic: String) -> Result<u32, KafkaError> {
        let timeout = self.settings.timeout;
        let work = async {
            self.new_partition(&topic, 0).await?;
            let topics = self
                .client()
                .await?
                .list_topics()
                .await
                .map_err(|e| format!("kafka: metadata request failed: {e}"))?;
            match topics.into_iter().find(|t| t.name == topic) {
                Some(t) if !t.partitions.is_empty() => Ok(t.partitions.len() as u32),
                _ => Err(format!("kafka: topic {topic:?} has no partitions")),
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "kafka: metadata for {topic:?} timed out after {timeout:?}"
                ))
            })
    }

    /// Sends `records` as one produce request to `topic`/`partition` and resolves when
    /// the broker acknowledged it (acks=all: rskafka always asks for all replicas).
    pub async fn produce(
        self: Arc<Self>,
        topic: Arc<str>,
        partition: i32,
        records: Vec<Record>,
        compression: Compression,
    ) -> Result<(), KafkaError> {
        let timeout = self.settings.timeout;
        let work = async {
            let pc = self.partition(&topic, partition).await?;
            pc.produce(records, compression)
                .await
                .map(|_offsets| ())
                .map_err(|e| format!("kafka: produce to {topic}/{partition} failed: {e}"))
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "kafka: produce to {topic}/{partition} timed out after {timeout:?}"
                ))
            })
    }
}
