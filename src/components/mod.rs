//! Inputs, processors and outputs: one component per file, named as in YAML, each with
//! its config struct, defaults and runtime type side by side.

pub mod inputs;
pub mod outputs;
pub mod processors;

use bumpalo::Bump;
use serde::Deserialize;

use crate::metrics::{Registry, Stopwatch};
use crate::transaction::{InFlightId, Transactions};

/// What a component sees of the request it is working on.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The request's arena: every message and Bloblang value lives here.
    pub arena: &'a Bump,
    /// The shard's in-flight slab, to store responses and ack by key.
    pub txns: &'a Transactions,
    /// This request's slab key.
    pub id: InFlightId,
    /// This request's clock for latency metrics.
    pub clock: &'a Stopwatch,
}

/// What building a component needs: where its metrics go and its config path
/// (`root.pipeline.processors.0`), which names it in metrics and errors.
pub struct Build<'r> {
    pub metrics: &'r Registry,
    pub path: String,
}

impl Build<'_> {
    /// The builder for a child at `segment` below this one.
    pub fn child(&self, segment: &str) -> Build<'_> {
        Build {
            metrics: self.metrics,
            path: format!("{}.{segment}", self.path),
        }
    }
}

/// Why a component could not be built from a config that parsed.
pub type BuildError = String;

/// A config string that upstream interpolates (`${! expr }`), parsed while the config is
/// read so a bad expression is a config error with its position.
#[derive(Debug, Clone)]
pub struct InterpolatedString(pub crate::bloblang::Interpolated);

impl InterpolatedString {
    pub fn new(s: &str) -> Result<Self, String> {
        crate::bloblang::Interpolated::parse(s)
            .map(InterpolatedString)
            .map_err(|e| format!("failed to parse interpolation: {e}"))
    }
}

impl<'de> serde::Deserialize<'de> for InterpolatedString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Scalars of any type (`status: 201`) count as their text.
        crate::config::scalar_with(d, InterpolatedString::new)
    }
}

/// `include_prefixes` / `include_patterns` (regular expressions) over metadata keys.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataFilter {
    pub include_prefixes: Vec<String>,
    #[serde(deserialize_with = "regexes")]
    pub include_patterns: Vec<Patterns>,
}

/// A compiled `include_patterns` entry.
#[derive(Clone)]
pub struct Patterns(pub regex::Regex);

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl MetadataFilter {
    pub fn matches(&self, key: &str) -> bool {
        self.include_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
            || self.include_patterns.iter().any(|p| p.0.is_match(key))
    }

    pub fn is_empty(&self) -> bool {
        self.include_prefixes.is_empty() && self.include_patterns.is_empty()
    }
}

fn regexes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Patterns>, D::Error> {
    use serde::de::Error;
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|p| {
            regex::Regex::new(&p)
                .map(Patterns)
                .map_err(D::Error::custom)
        })
        .collect()
}
