//! `mutation` processor: like `mapping`, but `root` starts as the input document, so
//! assignments edit it in place instead of building a new one.

use crate::components::Context;
use crate::message::Batch;

pub use super::mapping::Config;

/// Runtime of `mutation`.
pub struct Mutation {
    mapping: crate::bloblang::Mapping,
}

impl Mutation {
    pub fn new(conf: &Config) -> Self {
        Mutation {
            mapping: conf.0.clone(),
        }
    }

    /// Mutates every message; returns how many failed.
    pub fn process<'a>(&self, cx: &Context<'a>, batch: &mut Batch<'a>) -> u64 {
        super::mapping::apply(cx, batch, &self.mapping, crate::bloblang::Mode::Mutation)
    }
}
