//! `try` processor: runs its processors in order on each message, and stops at the
//! first that flags it with an error (the rest are skipped for that message).

use crate::components::Context;
use crate::config::Component;
use crate::message::Batch;

use super::{Processor, ProcessorConfig};

pub type Config = Vec<Component<ProcessorConfig>>;

pub fn process<'a>(processors: &[Processor], cx: &Context<'a>, batch: &mut Batch<'a>) -> u64 {
    super::per_message(
        cx,
        batch,
        |msg| msg.error.is_none(),
        |one| {
            for p in processors {
                if one.is_empty() || one.iter().any(|m| m.error.is_some()) {
                    break;
                }
                p.process(cx, one);
            }
        },
    );
    0
}
