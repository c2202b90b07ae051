//! Kafka producing for the `kafka` and `kafka_franz` outputs, on rskafka: partition
//! choice, the per-shard batcher, the tokio-side client, and the one bridge between the
//! shards' glommio executors and the tokio runtime rskafka needs.
//!
//! - [`partitioner`]: `fnv1a_hash`, `murmur2_hash` (Java-client compatible), `random`,
//!   `round_robin`, `manual`.
//! - [`batcher`]: per shard, per topic-partition batches cut by size or linger; acks.
//! - [`client`]: rskafka client and partition clients, bounded retries and timeouts.
//! - [`bridge`]: the single tokio thread and the channel shards use to reach it.
//! - [`tls`]: the rustls client config for `tls.enabled`.

pub mod batcher;
pub mod bridge;
pub mod client;
pub mod partitioner;
