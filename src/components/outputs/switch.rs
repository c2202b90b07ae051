//! `switch` output: routes each message to the outputs whose `check` it passes.
//! A case with `continue: true` lets the message test the cases after it too. With
//! `strict_mode`, a message that matches no case is an error; otherwise it is dropped
//! (acked). The request is acked when every output it reached has acked.

use serde::Deserialize;

use crate::bloblang::Mapping;
use crate::components::{Build, BuildError, Context};
use crate::config::Component;
use crate::message::{Batch, Value};

use super::{Nack, Output, OutputKind};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub cases: Vec<Case>,
    #[serde(default)]
    pub strict_mode: bool,
    /// Accepted for compatibility: sluice routes each request's messages directly.
    #[serde(default)]
    pub retry_until_success: bool,
    #[serde(default)]
    pub max_in_flight: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// A Bloblang query; empty matches everything.
    #[serde(default)]
    pub check: Check,
    pub output: Component<OutputKind>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
}

/// A compiled `check` (`None` when empty).
#[derive(Debug, Clone, Default)]
pub struct Check(pub Option<Mapping>);

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::scalar_with(d, |s| {
            if s.trim().is_empty() {
                return Ok(Check(None));
            }
            Mapping::parse(s)
                .map(|m| Check(Some(m)))
                .map_err(|e| format!("failed to parse check: {e}"))
        })
    }
}

impl Check {
    /// Whether message `i` passes; a check that errors or is not a boolean fails it.
    pub fn passes(
        &self,
        cx: &Context<'_>,
        batch: &[crate::message::Message<'_>],
        i: usize,
    ) -> bool {
        match &self.0 {
            None => true,
            Some(m) => matches!(m.query(cx.arena, batch, i), Ok(Value::Bool(true))),
        }
    }
}

pub struct Switch {
    cases: Vec<(Check, Output, bool)>,
    strict: bool,
}

impl Switch {
    pub fn outputs(&self) -> impl Iterator<Item = &Output> {
        self.cases.iter().map(|(_, o, _)| o)
    }

    pub fn build(conf: &Config, b: &Build<'_>) -> Result<Self, BuildError> {
        let cases = conf
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let out = Output::build(&c.output, &b.child(&format!("switch.cases.{i}.output")))?;
                Ok((c.check.clone(), out, c.continue_))
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(Switch {
            cases,
            strict: conf.strict_mode,
        })
    }

    pub async fn send<'a>(&self, cx: &Context<'a>, batch: Batch<'a>) -> Result<(), Nack> {
        // Decide every message's cases first (against the batch as it came in), then
        // send each case its sub-batch, in case order, all at once.
        let mut per_case: bumpalo::collections::Vec<Batch<'a>> =
            bumpalo::collections::Vec::from_iter_in(
                self.cases.iter().map(|_| Batch::new_in(cx.arena)),
                cx.arena,
            );
        for i in 0..batch.len() {
            let mut matched = false;
            for (c, (check, _, cont)) in self.cases.iter().enumerate() {
                if check.passes(cx, &batch, i) {
                    matched = true;
                    per_case[c].push(batch[i].clone());
                    if !cont {
                        break;
                    }
                }
            }
            if !matched && self.strict {
                return Err("no switch case matched the message".into());
            }
        }
        let mut join = super::JoinAll::new_in(cx.arena, false);
        for ((_, out, _), sub) in self.cases.iter().zip(per_case) {
            if !sub.is_empty() {
                join.push(out.send_boxed(cx, sub));
            }
        }
        join.await
    }
}
