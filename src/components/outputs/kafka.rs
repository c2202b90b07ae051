//! `kafka` output (and `kafka_franz`, the same producer under upstream's other field
//! names): each message becomes a record of an interpolated topic, key and partition,
//! with metadata as record headers; a request acks only once the broker acknowledged
//! the produce request holding each of its records (docs/kafka.md).
//!
//! Records of concurrent requests are batched per shard and topic-partition by
//! [`crate::kafka::batcher`]; rskafka runs on the one tokio thread behind
//! [`crate::kafka::bridge`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use regex::Regex;
use rskafka::chrono::{TimeZone, Utc};
use rskafka::client::partition::Compression;
use rskafka::record::Record;
use serde::{Deserialize, Deserializer};

use crate::components::{Build, BuildError, Context, InterpolatedString};
use crate::config::{Duration, NOT_YET};
use crate::kafka::batcher::{Batcher, Limits};
use crate::kafka::client::{ClientSettings, Producer, SaslMechanism};
use crate::kafka::partitioner::{Cursor, Partitioner};
use crate::message::{Batch, Message};
use crate::metrics::ComponentMetrics;

use super::Nack;

/// Records per produce request when `batching.count` does not say.
const DEFAULT_BATCH_RECORDS: usize = 1024;
/// Approximate bytes per produce request when `batching.byte_size` does not say.
/// rskafka writes a request as its 4-byte length and then its body through tokio's
/// 8 KiB `BufStream`, on a socket without TCP_NODELAY: a request that fits the buffer
/// leaves in one write, a longer one as two, and Nagle then holds the body until the
/// broker ACKs the 4 bytes, which a delayed ACK makes ~40 ms. Measured on loopback with
/// 64 connections: 2.4k req/s with 64-record requests, 49k under 8 KiB. 7 KiB leaves
/// room for the request's own framing and the varints the estimate does not count.
const DEFAULT_BATCH_BYTES: usize = 7 * 1024;
/// How long the first record of a partition's batch waits for others (sluice's
/// `linger`): short enough to be invisible next to a network round trip, long enough
/// for requests arriving in the same burst to share a produce request.
const DEFAULT_LINGER: StdDuration = StdDuration::from_micros(200);
/// First and largest pause of rskafka's own retries (reconnects, leader moves) inside
/// one produce attempt; the attempt as a whole is cut at `timeout`.
const CLIENT_RETRY_INITIAL: StdDuration = StdDuration::from_millis(50);
const CLIENT_RETRY_MAX: StdDuration = StdDuration::from_secs(1);
/// How long a topic's partition count is trusted by `kafka` (upstream's
/// `metadata_max_age` default; `kafka_franz` sets it).
const DEFAULT_METADATA_MAX_AGE: StdDuration = StdDuration::from_secs(300);

/// `kafka` output fields (upstream names and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Seed brokers; an entry may be a comma-separated list.
    pub addresses: Vec<String>,
    pub topic: InterpolatedString,
    /// Record key; empty means no key (then hashing partitioners pick at random).
    #[serde(default = "empty")]
    pub key: InterpolatedString,
    #[serde(default)]
    pub partitioner: Partitioner,
    /// The partition for `partitioner: manual`, interpolated to an integer.
    #[serde(default = "empty")]
    pub partition: InterpolatedString,
    #[serde(default)]
    pub compression: CompressionName,
    /// Headers added to every record.
    #[serde(default)]
    pub static_headers: BTreeMap<String, String>,
    /// Metadata keys that are not sent as headers.
    #[serde(default)]
    pub metadata: ExcludeMetadata,
    /// Produce requests in flight at once, per shard.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Upstream: wait for all replicas. rskafka always asks for all (acks=-1), so both
    /// values are honoured by the stricter one.
    #[serde(default)]
    pub ack_replicas: bool,
    /// Largest record accepted (key + value + headers); larger ones nack.
    #[serde(default = "default_max_msg_bytes")]
    pub max_msg_bytes: usize,
    /// Cut for one produce attempt (connecting, leader lookup and retries included).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Attempts after a failed produce (0: until `backoff.max_elapsed_time`).
    #[serde(default)]
    pub max_retries: u64,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default)]
    pub batching: Batching,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub sasl: Sasl,
    /// sluice: how long a partition's first pending record waits for more (default
    /// 200us); `batching.period`, when set, takes its place.
    #[serde(default)]
    pub linger: Option<Duration>,
}

/// `kafka_franz` output fields (upstream names and defaults), served by the same
/// producer as `kafka`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FranzConfig {
    pub seed_brokers: Vec<String>,
    pub topic: InterpolatedString,
    #[serde(default = "empty")]
    pub key: InterpolatedString,
    #[serde(default = "empty")]
    pub partition: InterpolatedString,
    /// Unset: the franz default, Java-compatible murmur2 hashing of the key.
    #[serde(default)]
    pub partitioner: Option<FranzPartitioner>,
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Only consumers use the rack; a producer accepts and ignores it, as upstream does.
    #[serde(default)]
    pub rack_id: String,
    /// Upstream default `true`. rskafka has no idempotent producer: records are
    /// delivered at least once either way (docs/kafka.md).
    #[serde(default = "yes")]
    pub idempotent_write: bool,
    #[serde(default)]
    pub compression: Option<CompressionName>,
    #[serde(default = "default_franz_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_max_msg_bytes")]
    pub max_message_bytes: usize,
    /// Upper bound of one produce request's bytes.
    #[serde(default = "default_broker_write_max_bytes")]
    pub broker_write_max_bytes: usize,
    /// Which metadata keys become headers (none unless listed, as upstream).
    #[serde(default)]
    pub metadata: IncludeMetadata,
    #[serde(default = "default_franz_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default)]
    pub batching: Batching,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub sasl: Vec<FranzSasl>,
    #[serde(default = "default_metadata_max_age")]
    pub metadata_max_age: Duration,
    /// Record timestamp in Unix milliseconds, interpolated (empty: now).
    #[serde(default)]
    pub timestamp_ms: Option<InterpolatedString>,
    /// sluice: as `kafka`'s `linger`.
    #[serde(default)]
    pub linger: Option<Duration>,
}

fn empty() -> InterpolatedString {
    InterpolatedString::new("").expect("empty interpolation")
}
fn yes() -> bool {
    true
}
fn default_max_in_flight() -> usize {
    64
}
fn default_franz_max_in_flight() -> usize {
    10
}
fn default_max_msg_bytes() -> usize {
    1_000_000
}
fn default_broker_write_max_bytes() -> usize {
    100 * 1024 * 1024
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_franz_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_metadata_max_age() -> Duration {
    Duration(DEFAULT_METADATA_MAX_AGE)
}
fn default_client_id() -> String {
    "benthos".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CompressionName {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionName {
    fn codec(self) -> Compression {
        match self {
            CompressionName::None => Compression::NoCompression,
            CompressionName::Gzip => Compression::Gzip,
            CompressionName::Snappy => Compression::Snappy,
            CompressionName::Lz4 => Compression::Lz4,
            CompressionName::Zstd => Compression::Zstd,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FranzPartitioner {
    Murmur2Hash,
    RoundRobin,
    Manual,
}

impl<'de> Deserialize<'de> for FranzPartitioner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::scalar_with(d, |s| match s {
            "murmur2_hash" => Ok(FranzPartitioner::Murmur2Hash),
            "round_robin" => Ok(FranzPartitioner::RoundRobin),
            "manual" => Ok(FranzPartitioner::Manual),
            "least_backup" | "uniform_bytes" => Err(NOT_YET.to_string()),
            other => Err(format!(
                "unknown partitioner {other:?} (expected murmur2_hash, round_robin or manual)"
            )),
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExcludeMetadata {
    pub exclude_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncludeMetadata {
    pub include_prefixes: Vec<String>,
    pub include_patterns: Vec<String>,
}

/// Upstream's retry backoff for a failed produce.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    pub initial_interval: Duration,
    pub max_interval: Duration,
    /// Retries stop once this much time has passed since the first attempt.
    pub max_elapsed_time: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_interval: Duration::from_secs(3),
            max_interval: Duration::from_secs(10),
            max_elapsed_time: Duration::from_secs(30),
        }
    }
}

/// Upstream's batching policy, here the size limits of one produce request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batching {
    /// Records per produce request at most (0: sluice's default, 1024).
    pub count: usize,
    /// Bytes per produce request at most (0: `max_msg_bytes`-sized requests).
    pub byte_size: usize,
    /// The longest a record waits for its batch to fill (empty: `linger`).
    #[serde(deserialize_with = "optional_duration")]
    pub period: Option<Duration>,
    /// Bloblang batch-end condition: not supported yet, refused when set.
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub check: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub enabled: bool,
    /// Accept any broker certificate (tests, private CAs one cannot install).
    pub skip_cert_verify: bool,
    /// rustls does not renegotiate: refused when set.
    #[serde(deserialize_with = "crate::config::unsupported_true")]
    pub enable_renegotiation: bool,
    /// PEM roots inline; with `root_cas_file` empty too, the system's roots are used.
    pub root_cas: String,
    pub root_cas_file: String,
    /// At most one certificate presented to the brokers.
    pub client_certs: Vec<ClientCert>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCert {
    pub cert: String,
    pub key: String,
    pub cert_file: String,
    pub key_file: String,
    /// Encrypted keys: not supported yet, refused when set.
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub password: String,
}

impl Tls {
    /// The rustls config, reading the files it names (`None` when disabled).
    fn client_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let read =
            |path: &str| std::fs::read(path).map_err(|e| format!("tls: cannot read {path:?}: {e}"));
        let mut root_pems = self.root_cas.clone().into_bytes();
        if !self.root_cas_file.is_empty() {
            root_pems.push(b'\n');
            root_pems.extend(read(&self.root_cas_file)?);
        }
        let client_cert = match self.client_certs.as_slice() {
            [] => None,
            [c] => {
                let cert = if c.cert_file.is_empty() {
                    c.cert.clone().into_bytes()
                } else {
                    read(&c.cert_file)?
                };
                let key = if c.key_file.is_empty() {
                    c.key.clone().into_bytes()
                } else {
                    read(&c.key_file)?
                };
                Some((cert, key))
            }
            _ => {
                return Err(format!(
                    "tls: more than one client certificate is {NOT_YET}"
                ))
            }
        };
        crate::tls::client_config(&crate::tls::TlsSettings {
            skip_cert_verify: self.skip_cert_verify,
            root_pems: if root_pems.iter().all(u8::is_ascii_whitespace) {
                Vec::new()
            } else {
                root_pems
            },
            client_cert,
        })
        .map(Some)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sasl {
    #[serde(deserialize_with = "sasl_mechanism")]
    pub mechanism: Option<SaslMechanism>,
    pub user: String,
    pub password: String,
    /// OAUTHBEARER fields: not supported yet, refused when set.
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub access_token: String,
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub token_cache: String,
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub token_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FranzSasl {
    #[serde(deserialize_with = "sasl_mechanism")]
    pub mechanism: Option<SaslMechanism>,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::config::scalar_with(d, |s| {
        if s.is_empty() {
            Ok(None)
        } else {
            crate::config::duration::parse(s).map(|d| Some(Duration(d)))
        }
    })
}

fn sasl_mechanism<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SaslMechanism>, D::Error> {
    crate::config::scalar_with(d, |s| {
        match s {
        "none" | "" => Ok(None),
        "PLAIN" => Ok(Some(SaslMechanism::Plain)),
        "SCRAM-SHA-256" => Ok(Some(SaslMechanism::ScramSha256)),
        "SCRAM-SHA-512" => Ok(Some(SaslMechanism::ScramSha512)),
        "OAUTHBEARER" | "AWS_MSK_IAM" => Err(NOT_YET.to_string()),
        other => Err(format!(
            "unknown SASL mechanism {other:?} (expected none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
        )),
    }
    })
}

/// Which metadata keys become record headers.
enum HeaderFilter {
    Exclude(Vec<String>),
    Include {
        prefixes: Vec<String>,
        patterns: Vec<Regex>,
    },
}

impl HeaderFilter {
    fn keeps(&self, key: &str) -> bool {
        match self {
            HeaderFilter::Exclude(prefixes) => {
                !prefixes.iter().any(|p| key.starts_with(p.as_str()))
            }
            HeaderFilter::Include { prefixes, patterns } => {
                prefixes.iter().any(|p| key.starts_with(p.as_str()))
                    || patterns.iter().any(|r| r.is_match(key))
            }
        }
    }
}

/// Both configs, reduced to what the producer does.
struct Settings {
    client: ClientSettings,
    topic: InterpolatedString,
    key: InterpolatedString,
    partition: InterpolatedString,
    partitioner: Partitioner,
    compression: Compression,
    static_headers: Vec<(String, Vec<u8>)>,
    headers: HeaderFilter,
    timestamp_ms: Option<InterpolatedString>,
    max_msg_bytes: usize,
    limits: Limits,
    max_retries: u64,
    backoff: Backoff,
}

/// Splits `a,b` entries and drops blanks.
fn split_addresses(list: &[String]) -> Vec<String> {
    list.iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

fn limits(
    batching: &Batching,
    linger: Option<Duration>,
    max_bytes: usize,
    max_in_flight: usize,
    age: StdDuration,
) -> Limits {
    Limits {
        max_records: if batching.count > 0 {
            batching.count
        } else {
            DEFAULT_BATCH_RECORDS
        },
        max_bytes: if batching.byte_size > 0 {
            batching.byte_size.min(max_bytes)
        } else {
            DEFAULT_BATCH_BYTES.min(max_bytes)
        },
        linger: batching.period.or(linger).map_or(DEFAULT_LINGER, |d| d.0),
        max_in_flight: max_in_flight.max(1),
        metadata_max_age: age,
    }
}

impl Settings {
    fn from_kafka(c: &Config) -> Result<Settings, String> {
        Ok(Settings {
            client: ClientSettings {
                addresses: split_addresses(&c.addresses),
                client_id: c.client_id.clone(),
                timeout: c.timeout.0,
                retry_initial: CLIENT_RETRY_INITIAL,
                retry_max: CLIENT_RETRY_MAX,
                tls: c.tls.client_config()?,
                sasl: c
                    .sasl
                    .mechanism
                    .map(|m| (m, c.sasl.user.clone(), c.sasl.password.clone())),
            },
            topic: c.topic.clone(),
            key: c.key.clone(),
            partition: c.partition.clone(),
            partitioner: c.partitioner,
            compression: c.compression.codec(),
            static_headers: c
                .static_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect(),
            headers: HeaderFilter::Exclude(c.metadata.exclude_prefixes.clone()),
            timestamp_ms: None,
            max_msg_bytes: c.max_msg_bytes,
            limits: limits(
                &c.batching,
                c.linger,
                c.max_msg_bytes,
                c.max_in_flight,
                DEFAULT_METADATA_MAX_AGE,
            ),
            max_retries: c.max_retries,
            backoff: c.backoff.clone(),
        })
    }

    fn from_franz(c: &FranzConfig) -> Result<Settings, String> {
        let patterns = c
            .metadata
            .include_patterns
            .iter()
            .map(|p| Regex::new(p).map_err(|e| format!("metadata.include_patterns: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let sasl = match c.sasl.as_slice() {
            [] => None,
            [s] => s
                .mechanism
                .map(|m| (m, s.username.clone(), s.password.clone())),
            _ => return Err(format!("sasl: more than one mechanism is {NOT_YET}")),
        };
        Ok(Settings {
            client: ClientSettings {
                addresses: split_addresses(&c.seed_brokers),
                client_id: c.client_id.clone(),
                timeout: c.timeout.0,
                retry_initial: CLIENT_RETRY_INITIAL,
                retry_max: CLIENT_RETRY_MAX,
                tls: c.tls.client_config()?,
                sasl,
            },
            topic: c.topic.clone(),
            key: c.key.clone(),
            partition: c.partition.clone(),
            partitioner: match c.partitioner {
                None | Some(FranzPartitioner::Murmur2Hash) => Partitioner::Murmur2Hash,
                Some(FranzPartitioner::RoundRobin) => Partitioner::RoundRobin,
                Some(FranzPartitioner::Manual) => Partitioner::Manual,
            },
            compression: c.compression.unwrap_or_default().codec(),
            static_headers: Vec::new(),
            headers: HeaderFilter::Include {
                prefixes: c.metadata.include_prefixes.clone(),
                patterns,
            },
            timestamp_ms: c.timestamp_ms.clone(),
            max_msg_bytes: c.max_message_bytes,
            limits: limits(
                &c.batching,
                c.linger,
                c.broker_write_max_bytes.min(c.max_message_bytes.max(1)),
                c.max_in_flight,
                c.metadata_max_age.0,
            ),
            // franz retries inside the client until `timeout`; it has no retry fields.
            max_retries: 1,
            backoff: Backoff {
                initial_interval: Duration::from_millis(100),
                max_interval: Duration::from_secs(1),
                max_elapsed_time: c.timeout,
            },
        })
    }
}

/// A built `kafka` / `kafka_franz` output: one per shard.
pub struct Kafka {
    settings: Settings,
    producer: Arc<Producer>,
    batcher: Batcher,
    cursor: Cursor,
}

impl Kafka {
    /// `metrics` is the output's own block: acked produce requests count as its batches.
    pub fn build(
        conf: &Config,
        b: &Build<'_>,
        metrics: &Arc<ComponentMetrics>,
    ) -> Result<Self, BuildError> {
        let settings = Settings::from_kafka(conf).map_err(|e| format!("{}: {e}", b.path))?;
        Self::new(settings, b, metrics)
    }

    pub fn build_franz(
        conf: &FranzConfig,
        b: &Build<'_>,
        metrics: &Arc<ComponentMetrics>,
    ) -> Result<Self, BuildError> {
        let settings = Settings::from_franz(conf).map_err(|e| format!("{}: {e}", b.path))?;
        Self::new(settings, b, metrics)
    }

    fn new(
        settings: Settings,
        b: &Build<'_>,
        metrics: &Arc<ComponentMetrics>,
    ) -> Result<Self, BuildError> {
        if settings.client.addresses.is_empty() {
            return Err(format!(
                "{}: kafka needs at least one broker address",
                b.path
            ));
        }
        if settings.topic.0.as_static() == Some("") {
            return Err(format!("{}: kafka needs a topic", b.path));
        }
        if settings.partitioner == Partitioner::Manual
            && settings.partition.0.as_static() == Some("")
        {
            return Err(format!(
                "{}: partitioner manual needs a partition expression",
                b.path
            ));
        }
        let producer = Producer::new(settings.client.clone());
        // Runs on the Kafka thread until a broker answers; nothing waits for it.
        drop(crate::kafka::bridge::run(producer.clone().connect()));
        let batcher = Batcher::new(
            producer.clone(),
            settings.compression,
            settings.limits,
            metrics.clone(),
        );
        Ok(Kafka {
            settings,
            producer,
            batcher,
            cursor: Cursor::default(),
        })
    }

    /// Whether the producer has reached the cluster (see `Output::connected`).
    pub fn connected(&self) -> bool {
        self.producer.connected()
    }

    /// Delivers every message of `batch` as a record and resolves once the broker has
    /// acknowledged all of them; a failed produce request nacks after the retries.
    pub async fn send<'a>(&self, cx: &Context<'a>, batch: Batch<'a>) -> Result<(), Nack> {
        let started = Instant::now();
        let backoff = &self.settings.backoff;
        let mut pause = backoff.initial_interval.0;
        let mut attempt = 0u64;
        loop {
            let ticket = self.batcher.ticket();
            for i in 0..batch.len() {
                let (topic, partition, record) = self.record(cx, &batch, i).await?;
                self.batcher.push(&ticket, topic, partition, record);
            }
            let err = match ticket.wait().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            attempt += 1;
            let out_of_retries =
                self.settings.max_retries > 0 && attempt > self.settings.max_retries;
            let out_of_time = started.elapsed() + pause > backoff.max_elapsed_time.0;
            if out_of_retries || out_of_time {
                return Err(err);
            }
            crate::log::log(
                crate::config::LogLevel::DEBUG,
                "kafka produce failed, retrying",
                &[("error", &err)],
            );
            crate::runtime::poller::sleep(pause).await;
            pause = (pause * 2).min(backoff.max_interval.0.max(pause));
        }
    }

    /// Message `i` as a record, with its topic and partition.
    async fn record<'a>(
        &self,
        cx: &Context<'a>,
        batch: &[Message<'a>],
        i: usize,
    ) -> Result<(Arc<str>, i32, Record), Nack> {
        let s = &self.settings;
        let msg = &batch[i];
        let topic = s
            .topic
            .0
            .render(cx.arena, batch, i)
            .map_err(|e| format!("kafka: topic interpolation failed: {e}"))?;
        if topic.is_empty() {
            return Err("kafka: the topic is empty".into());
        }
        let (topic, partitions) = self.batcher.topic(topic).await?;
        let key = s
            .key
            .0
            .render(cx.arena, batch, i)
            .map_err(|e| format!("kafka: key interpolation failed: {e}"))?;
        let key = (!key.is_empty()).then_some(key.as_bytes());
        let partition = if s.partitioner == Partitioner::Manual {
            let text = s
                .partition
                .0
                .render(cx.arena, batch, i)
                .map_err(|e| format!("kafka: partition interpolation failed: {e}"))?;
            match text.trim().parse::<u32>() {
                Ok(p) if p < partitions => p,
                _ => {
                    return Err(format!(
                        "kafka: partition {text:?} is not one of {topic}'s {partitions} partitions"
                    ))
                }
            }
        } else {
            s.partitioner
                .choose(key, &topic, partitions, &self.cursor, |p| {
                    self.batcher.batches_cut(&topic, p as i32)
                })
        };
        let mut headers = BTreeMap::new();
        for (k, v) in &s.static_headers {
            headers.insert(k.clone(), v.clone());
        }
        for (k, v) in msg.meta.iter() {
            if s.headers.keeps(k) {
                headers.insert(k.to_string(), v.to_text(cx.arena).as_bytes().to_vec());
            }
        }
        let timestamp = match &s.timestamp_ms {
            Some(t) => {
                let text =
                    t.0.render(cx.arena, batch, i)
                        .map_err(|e| format!("kafka: timestamp_ms interpolation failed: {e}"))?;
                match text
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                {
                    Some(ts) => ts,
                    None if text.is_empty() => Utc::now(),
                    None => {
                        return Err(format!(
                            "kafka: timestamp_ms {text:?} is not Unix milliseconds"
                        ))
                    }
                }
            }
            None => Utc::now(),
        };
        let record = Record {
            key: key.map(<[u8]>::to_vec),
            value: Some(msg.payload.to_vec()),
            headers,
            timestamp,
        };
        let size = record.approximate_size();
        if size > s.max_msg_bytes {
            return Err(format!(
                "kafka: message of {size} bytes exceeds max_msg_bytes ({})",
                s.max_msg_bytes
            ));
        }
        Ok((topic, partition as i32, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::outputs::OutputKind;
    use crate::config::Component;

    fn parse(yaml: &str) -> Result<Component<OutputKind>, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_upstream() {
        let c = parse("kafka:\n  addresses: [ 'a:9092,b:9092', c:9092 ]\n  topic: t\n").unwrap();
        let OutputKind::Kafka(k) = c.kind else {
            panic!("not kafka")
        };
        assert_eq!(k.partitioner, Partitioner::Fnv1aHash);
        assert_eq!(k.compression, CompressionName::None);
        assert_eq!(k.max_in_flight, 64);
        assert_eq!(k.max_msg_bytes, 1_000_000);
        assert_eq!(k.timeout, Duration::from_secs(5));
        assert_eq!(k.client_id, "benthos");
        assert_eq!(k.backoff.initial_interval, Duration::from_secs(3));
        let s = Settings::from_kafka(&k).unwrap();
        assert_eq!(s.client.addresses, ["a:9092", "b:9092", "c:9092"]);
        assert_eq!(s.limits.max_records, DEFAULT_BATCH_RECORDS);
        assert_eq!(s.limits.max_bytes, DEFAULT_BATCH_BYTES);
        assert_eq!(s.limits.linger, DEFAULT_LINGER);
        assert!(s.limits.linger < StdDuration::from_millis(1));
    }

    #[test]
    fn batching_sets_the_cut() {
        let c = parse(
            "kafka:\n  addresses: [x:1]\n  topic: t\n  compression: zstd\n  \
             batching: { count: 10, byte_size: 5000, period: 2ms }\n",
        )
        .unwrap();
        let OutputKind::Kafka(k) = c.kind else {
            panic!("not kafka")
        };
        let s = Settings::from_kafka(&k).unwrap();
        assert_eq!(s.limits.max_records, 10);
        assert_eq!(s.limits.max_bytes, 5000);
        assert_eq!(s.limits.linger, StdDuration::from_millis(2));
        assert_eq!(s.compression, Compression::Zstd);
    }

    #[test]
    fn unsupported_fields_are_refused_at_their_position() {
        let e = parse(
            "kafka:\n  addresses: [x:1]\n  topic: t\n  tls:\n    enabled: true\n    enable_renegotiation: true\n",
        )
        .unwrap_err();
        assert!(
            e.contains("not supported yet") && e.contains("line 6"),
            "{e}"
        );
        let e = parse("kafka:\n  addresses: [x:1]\n  topic: t\n  batching:\n    check: 'true'\n")
            .unwrap_err();
        assert!(
            e.contains("not supported yet") && e.contains("line 5"),
            "{e}"
        );
        let e = parse("kafka:\n  addresses: [x:1]\n  topic: t\n  bogus: 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e =
            parse("kafka:\n  addresses: [x:1]\n  topic: t\n  sasl: { mechanism: OAUTHBEARER }\n")
                .unwrap_err();
        assert!(e.contains("not supported yet"), "{e}");
    }

    #[test]
    fn franz_fields_map_to_the_same_producer() {
        let c = parse(
            "kafka_franz:\n  seed_brokers: [ 'a:1,b:2' ]\n  topic: t\n  \
             metadata: { include_prefixes: [ x_ ] }\n  \
             sasl: [ { mechanism: PLAIN, username: u, password: p } ]\n",
        )
        .unwrap();
        let OutputKind::KafkaFranz(k) = c.kind else {
            panic!("not kafka_franz")
        };
        let s = Settings::from_franz(&k).unwrap();
        assert_eq!(s.client.addresses, ["a:1", "b:2"]);
        assert_eq!(s.partitioner, Partitioner::Murmur2Hash);
        assert_eq!(s.client.timeout, StdDuration::from_secs(10));
        assert_eq!(s.limits.max_in_flight, 10);
        assert!(s.headers.keeps("x_a") && !s.headers.keeps("y"));
        assert_eq!(
            s.client.sasl,
            Some((SaslMechanism::Plain, "u".into(), "p".into()))
        );
        let e =
            parse("kafka_franz:\n  seed_brokers: [a:1]\n  topic: t\n  partitioner: least_backup\n")
                .unwrap_err();
        assert!(e.contains("not supported yet"), "{e}");
    }

    #[test]
    fn exclude_prefixes_filter_headers() {
        let f = HeaderFilter::Exclude(vec!["http_".into()]);
        assert!(!f.keeps("http_server_user_agent"));
        assert!(f.keeps("city"));
    }
}
