//! `sync_response` processor: appends each message, as it is at this point of the
//! pipeline, to the request's response store; processing continues, and later changes
//! do not alter what was stored.

use serde::Deserialize;

use crate::components::Context;
use crate::message::Batch;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// Stores a copy of every message; never fails.
pub fn process<'a>(cx: &Context<'a>, batch: &mut Batch<'a>) -> u64 {
    for msg in batch.iter() {
        cx.txns.store(cx.id, cx.arena, msg);
    }
    0
}
