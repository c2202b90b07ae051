//! `catch` processor: runs its processors on messages flagged with an error, then
//! clears the flag (so `errored()` is false afterwards). Other messages pass untouched.

use crate::components::Context;
use crate::config::Component;
use crate::message::Batch;

use super::{Processor, ProcessorConfig};

/// The processors to run on failed messages.
pub type Config = Vec<Component<ProcessorConfig>>;

/// Runs `processors` on each failed message; returns how many failed again.
pub fn process<'a>(processors: &[Processor], cx: &Context<'a>, batch: &mut Batch<'a>) -> u64 {
    super::per_message(
        cx,
        batch,
        |msg| msg.error.is_some(),
        |one| {
            super::run_all(processors, cx, one);
            for m in one.iter_mut() {
                m.error = None;
            }
        },
    );
    0
}
