//! `mapping` processor: a Bloblang mapping builds a new message from each input message
//! (metadata kept, payload replaced when `root` is assigned). A failing mapping leaves
//! the message unchanged and flags it with the error; `root = deleted()` drops it.

use crate::bloblang;
use crate::components::Context;
use bumpalo::collections::Vec as BVec;

use crate::message::Batch;

/// The mapping source, compiled while the config is read so a bad mapping is a config
/// error with its position.
#[derive(Debug, Clone)]
pub struct Config(pub bloblang::Mapping);

impl<'de> serde::Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::scalar_with(d, |src| {
            bloblang::Mapping::parse(src)
                .map(Config)
                .map_err(|e| format!("failed to parse mapping: {e}"))
        })
    }
}

/// Runtime of `mapping` (and of `bloblang`, its old name).
pub struct Mapping {
    mapping: bloblang::Mapping,
}

impl Mapping {
    pub fn new(conf: &Config) -> Self {
        Mapping {
            mapping: conf.0.clone(),
        }
    }

    /// Maps every message; returns how many failed.
    pub fn process<'a>(&self, cx: &Context<'a>, batch: &mut Batch<'a>) -> u64 {
        apply(cx, batch, &self.mapping, bloblang::Mode::Mapping)
    }
}

/// Runs `mapping` on each message as `mode` says: a result replaces the message (its
/// metadata moved over unless the mapping wrote some), a deletion drops it, an error
/// flags it. Shared by `mapping` and `mutation`. Every result is computed against the
/// batch as it came in (so `batch_index()` and friends see the original batch), then
/// the batch is rebuilt in the arena.
pub fn apply<'a>(
    cx: &Context<'a>,
    batch: &mut Batch<'a>,
    mapping: &bloblang::Mapping,
    mode: bloblang::Mode,
) -> u64 {
    let results = BVec::from_iter_in(
        (0..batch.len()).map(|i| mapping.exec_parts(cx.arena, batch, i, mode)),
        cx.arena,
    );
    let mut out = BVec::with_capacity_in(batch.len(), cx.arena);
    let mut errors = 0;
    for (mut msg, result) in batch.drain(..).zip(results) {
        match result {
            Ok(Some(mapped)) => out.push(mapped.into_message(msg.error, || msg.meta)),
            Ok(None) => {}
            Err(e) => {
                errors += 1;
                msg.error = Some(cx.arena.alloc_str(&e.to_string()));
                out.push(msg);
            }
        }
    }
    *batch = out;
    errors
}
