//! `broker` output: fans a message out to several outputs, or spreads messages over
//! them, with upstream's six patterns and their ack rules (docs/delivery.md):
//!
//! | pattern | delivery | ack |
//! |---|---|---|
//! | `fan_out` | every child at once, each retried until it succeeds | when all succeed |
//! | `fan_out_fail_fast` | every child at once, no retries | first error nacks |
//! | `fan_out_sequential` | one after another, each retried | after the last |
//! | `fan_out_sequential_fail_fast` | one after another, no retries | first error nacks |
//! | `round_robin` | each message to the next child | that child's ack |
//! | `greedy` | to the child with the fewest requests in flight | that child's ack |
//!
//! Retries last until they succeed or the request's deadline passes; at the deadline
//! the whole request future is dropped (retries included) and the client gets 408, so
//! nothing outlives its request and memory stays bounded whatever a child does.

use std::cell::Cell;
use std::time::Duration;

use serde::Deserialize;

use crate::components::{Build, BuildError, Context};
use crate::config::Component;
use crate::message::Batch;

use super::{boxed, JoinAll, Nack, Output, OutputKind};

/// First and largest pause between retries of a failing child (upstream's values).
const RETRY_INITIAL: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    #[default]
    FanOut,
    FanOutFailFast,
    FanOutSequential,
    FanOutSequentialFailFast,
    RoundRobin,
    Greedy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub pattern: Pattern,
    #[serde(default)]
    pub outputs: Vec<Component<OutputKind>>,
    /// How many copies of each child to run (upstream's knob for parallel writers).
    #[serde(default = "one")]
    pub copies: usize,
    /// Accepted for compatibility; requests are not re-batched here.
    #[serde(default)]
    pub batching: Option<serde_yaml::Value>,
}

fn one() -> usize {
    1
}

pub struct Broker {
    pattern: Pattern,
    children: Vec<Output>,
    /// Next child for `round_robin`.
    next: Cell<usize>,
    /// Requests in flight per child, for `greedy`.
    busy: Vec<Cell<u32>>,
}

impl Broker {
    pub fn outputs(&self) -> &[Output] {
        &self.children
    }

    pub fn build(conf: &Config, b: &Build<'_>) -> Result<Self, BuildError> {
        if conf.outputs.is_empty() {
            return Err(format!("{}: broker needs at least one output", b.path));
        }
        let mut children = Vec::new();
        for _ in 0..conf.copies.max(1) {
            for (i, c) in conf.outputs.iter().enumerate() {
                children.push(Output::build(c, &b.child(&format!("outputs.{i}")))?);
            }
        }
        Ok(Broker {
            pattern: conf.pattern,
            busy: children.iter().map(|_| Cell::new(0)).collect(),
            children,
            next: Cell::new(0),
        })
    }

    pub async fn send<'a>(&self, cx: &Context<'a>, batch: Batch<'a>) -> Result<(), Nack> {
        match self.pattern {
            Pattern::FanOut | Pattern::FanOutFailFast => {
                let retry = self.pattern == Pattern::FanOut;
                let mut join = JoinAll::new_in(cx.arena, !retry);
                for child in &self.children {
                    let copy = batch.clone();
                    join.push(if retry {
                        boxed(cx.arena, retrying(child, cx, copy))
                    } else {
                        child.send_boxed(cx, copy)
                    });
                }
                join.await
            }
            Pattern::FanOutSequential => {
                for child in &self.children {
                    retrying(child, cx, batch.clone()).await?;
                }
                Ok(())
            }
            Pattern::FanOutSequentialFailFast => {
                for child in &self.children {
                    child.send_boxed(cx, batch.clone()).await?;
                }
                Ok(())
            }
            Pattern::RoundRobin => {
                let i = self.next.get();
                self.next.set((i + 1) % self.children.len());
                self.children[i].send_boxed(cx, batch).await
            }
            Pattern::Greedy => {
                let (i, _) = self
                    .busy
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.get())
                    .expect("at least one child");
                self.busy[i].set(self.busy[i].get() + 1);
                let _done = Decrement(&self.busy[i]);
                self.children[i].send_boxed(cx, batch).await
            }
        }
    }
}

/// Lowers a child's in-flight count when its send ends, however it ends.
struct Decrement<'c>(&'c Cell<u32>);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Sends until the child acks, pausing 500 ms doubling to 3 s between attempts. Ends
/// only by success or by being dropped at the request's deadline.
async fn retrying<'a>(child: &Output, cx: &Context<'a>, batch: Batch<'a>) -> Result<(), Nack> {
    let mut pause = RETRY_INITIAL;
    loop {
        match child.send_boxed(cx, batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                crate::log::log(
                    crate::config::LogLevel::DEBUG,
                    "broker child failed, retrying",
                    &[("error", &e)],
                );
                crate::runtime::poller::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}
