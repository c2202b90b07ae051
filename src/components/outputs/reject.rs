//! `reject` output: nacks every message with its (interpolated) reason, so the client
//! gets a 502 carrying that text.

use serde::Deserialize;

use crate::components::{Context, InterpolatedString};
use crate::message::Batch;

/// The reason string, e.g. `reject: "${! error() }"`.
#[derive(Debug, Clone, Deserialize)]
pub struct Config(pub InterpolatedString);

pub struct Reject {
    reason: InterpolatedString,
}

impl Reject {
    pub fn new(conf: &Config) -> Self {
        Reject {
            reason: conf.0.clone(),
        }
    }

    /// The nack text for this batch (evaluated against its first message).
    pub fn reason<'a>(&self, cx: &Context<'a>, batch: &Batch<'a>) -> String {
        match self.reason.0.render(cx.arena, batch, 0) {
            Ok(s) => s.to_string(),
            Err(e) => format!("reject reason failed: {e}"),
        }
    }
}
