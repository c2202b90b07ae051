//! sluice: a thread-per-core stream engine that runs Redpanda Connect-style pipelines
//! for request/response traffic.
//!
//! # Layout
//!
//! - [`config`]: the YAML model, env interpolation, `--set`, located errors.
//! - [`runtime`]: executors, pinning, listeners and connections, shutdown.
//! - [`pipeline`]: one shard's input -> processors -> output wiring, one request's life.
//! - [`components`]: inputs, processors and outputs, one per file, named as in YAML.
//! - [`bloblang`]: the mapping language: parser, evaluator, functions, interpolation.
//! - [`log`]: logfmt/JSON logging set once at start-up.
//! - [`http`]: the HTTP/1.1 wire protocol (heads, bodies, responses, limits, the client
//!   side) and WebSocket framing.
//! - [`kafka`]: rskafka producing: partitioners, per-shard batcher, the tokio bridge.
//! - [`tls`]: rustls client configs shared by outputs (Kafka, http_client).
//! - [`transaction`]: per-shard slab of in-flight requests, response stores, acks.
//! - [`message`]: messages, metadata and values, all in the request arena.
//! - [`metrics`]: per-shard counters summed at scrape, Prometheus text.

pub mod bloblang;
pub mod components;
pub mod config;
pub mod http;
pub mod kafka;
pub mod log;
pub mod message;
pub mod metrics;
pub mod pipeline;
pub mod runtime;
pub mod tls;
pub mod transaction;
