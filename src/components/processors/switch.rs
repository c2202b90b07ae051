//! `switch` processor: each message runs the processors of the first case whose
//! `check` it passes; `fallthrough: true` runs the next case's processors as well.

use serde::Deserialize;

use crate::components::outputs::switch::Check;
use crate::components::{Build, BuildError, Context};
use crate::config::Component;
use crate::message::Batch;

use super::{Processor, ProcessorConfig};

pub type Config = Vec<Case>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub check: Check,
    #[serde(default)]
    pub processors: Vec<Component<ProcessorConfig>>,
    #[serde(default)]
    pub fallthrough: bool,
}

pub struct Switch {
    cases: Vec<(Check, Vec<Processor>, bool)>,
}

impl Switch {
    pub fn build(conf: &Config, b: &Build<'_>) -> Result<Self, BuildError> {
        let cases = conf
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let procs = Processor::build_all(
                    &c.processors,
                    &b.child(&format!("switch.{i}.processors")),
                )?;
                Ok((c.check.clone(), procs, c.fallthrough))
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Switch { cases })
    }

    pub fn process<'a>(&self, cx: &Context<'a>, batch: &mut Batch<'a>) -> u64 {
        // Decide each message's case against the batch as it came in.
        let chosen = bumpalo::collections::Vec::from_iter_in(
            (0..batch.len()).map(|i| {
                self.cases
                    .iter()
                    .position(|(c, _, _)| c.passes(cx, batch, i))
            }),
            cx.arena,
        );
        let mut index = 0;
        super::per_message(
            cx,
            batch,
            |_| true,
            |one| {
                let mut case = chosen[index];
                index += 1;
                while let Some(c) = case {
                    let (_, procs, fallthrough) = &self.cases[c];
                    super::run_all(procs, cx, one);
                    case = (*fallthrough && c + 1 < self.cases.len()).then_some(c + 1);
                }
            },
        );
        0
    }
}
