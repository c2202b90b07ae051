//! `reject_errored` output: messages flagged with a processing error are nacked with
//! that error; the rest go to the wrapped output.

use serde::Deserialize;

use crate::components::Context;
use crate::config::Component;
use crate::message::Batch;

use super::{Nack, Output, OutputKind};

/// The wrapped output.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Config(pub Box<Component<OutputKind>>);

pub async fn send<'a>(child: &Output, cx: &Context<'a>, mut batch: Batch<'a>) -> Result<(), Nack> {
    if let Some(err) = batch.iter().find_map(|m| m.error) {
        // Upstream nacks the errored messages and delivers the rest; with one request
        // per batch, any errored message means the request is not fully delivered.
        batch.retain(|m| m.error.is_none());
        if !batch.is_empty() {
            child.send_boxed(cx, batch).await?;
        }
        return Err(err.to_string());
    }
    child.send_boxed(cx, batch).await
}
