//! `drop_on` output: wraps an output and turns some of its failures into acks:
//! `error: true` drops (acks) messages the output fails on; `back_pressure: 1s` drops
//! them when the output has not acked within that time.

use serde::Deserialize;

use crate::components::{Build, BuildError, Context};
use crate::config::{Component, Duration};
use crate::message::Batch;

use super::{Nack, Output, OutputKind};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub error: bool,
    /// Accepted: sluice has no separate error patterns.
    #[serde(default)]
    pub error_patterns: Vec<String>,
    #[serde(default)]
    pub back_pressure: Option<Duration>,
    pub output: Box<Component<OutputKind>>,
}

pub struct DropOn {
    error: bool,
    back_pressure: Option<std::time::Duration>,
    output: Box<Output>,
}

impl DropOn {
    pub fn output(&self) -> &Output {
        &self.output
    }

    pub fn build(conf: &Config, b: &Build<'_>) -> Result<Self, BuildError> {
        Ok(DropOn {
            error: conf.error,
            back_pressure: conf.back_pressure.map(|d| d.0).filter(|d| !d.is_zero()),
            output: Box::new(Output::build(&conf.output, &b.child("drop_on"))?),
        })
    }

    pub async fn send<'a>(&self, cx: &Context<'a>, batch: Batch<'a>) -> Result<(), Nack> {
        let send = self.output.send_boxed(cx, batch);
        let result = match self.back_pressure {
            Some(limit) => {
                futures_lite::future::or(send, async {
                    crate::runtime::poller::sleep(limit).await;
                    Ok(())
                })
                .await
            }
            None => send.await,
        };
        match result {
            Err(_) if self.error => Ok(()),
            other => other,
        }
    }
}
