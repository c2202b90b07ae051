//! `fallback` output: tries its outputs in order; the first that acks ends it. Only when
//! every one has failed is the message nacked (with the last error).

use crate::components::{Build, BuildError, Context};
use crate::config::Component;
use crate::message::Batch;

use super::{Nack, Output, OutputKind};

/// A list of outputs.
pub type Config = Vec<Component<OutputKind>>;

pub struct Fallback {
    outputs: Vec<Output>,
}

impl Fallback {
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }

    pub fn build(conf: &Config, b: &Build<'_>) -> Result<Self, BuildError> {
        if conf.is_empty() {
            return Err(format!("{}: fallback needs at least one output", b.path));
        }
        let outputs = conf
            .iter()
            .enumerate()
            .map(|(i, c)| Output::build(c, &b.child(&format!("fallback.{i}"))))
            .collect::<Result<_, _>>()?;
        Ok(Fallback { outputs })
    }

    pub async fn send<'a>(&self, cx: &Context<'a>, batch: Batch<'a>) -> Result<(), Nack> {
        let mut last = String::new();
        for o in &self.outputs {
            match o.send_boxed(cx, batch.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}
