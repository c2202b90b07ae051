//! `sync_response` output: appends the batch to the request's response store and acks.
//! The HTTP response is written from the store once every output has acked.

use serde::Deserialize;

use crate::components::Context;
use crate::message::Batch;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// Stores every message of the batch in order.
pub fn send<'a>(cx: &Context<'a>, batch: &Batch<'a>) {
    for msg in batch.iter() {
        cx.txns.store(cx.id, cx.arena, msg);
    }
}
