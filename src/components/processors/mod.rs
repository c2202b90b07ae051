//! Processors: synchronous transforms of a request's batch, run in config order.

pub mod bloblang;
pub mod catch;
pub mod log;
pub mod mapping;
pub mod mutation;
pub mod noop;
pub mod switch;
pub mod sync_response;
#[path = "try.rs"]
pub mod try_;

use std::sync::Arc;

use crate::config::Component;
use crate::message::Batch;
use crate::metrics::{ComponentMetrics, Family};

use super::{Build, BuildError, Context};

crate::kinds!(
    /// Every processor type sluice runs, keyed by its YAML name.
    ProcessorConfig, "processor", false, {
        "bloblang" => Bloblang(bloblang::Config),
        "catch" => Catch(catch::Config),
        "log" => Log(log::Config),
        "mapping" => Mapping(mapping::Config),
        "mutation" => Mutation(mutation::Config),
        "noop" => Noop(noop::Config),
        "switch" => Switch(switch::Config),
        "sync_response" => SyncResponse(sync_response::Config),
        "try" => Try(try_::Config),
    }
);

enum Kind {
    Catch(Vec<Processor>),
    Log(log::Config),
    Mapping(mapping::Mapping),
    Mutation(mutation::Mutation),
    Noop,
    Switch(switch::Switch),
    SyncResponse,
    Try(Vec<Processor>),
}

/// A built processor with its metrics.
pub struct Processor {
    kind: Kind,
    metrics: Arc<ComponentMetrics>,
}

impl Processor {
    pub fn build(conf: &Component<ProcessorConfig>, b: &Build<'_>) -> Result<Self, BuildError> {
        let kind = match &conf.kind {
            ProcessorConfig::Mapping(c) | ProcessorConfig::Bloblang(c) => {
                Kind::Mapping(mapping::Mapping::new(c))
            }
            ProcessorConfig::Mutation(c) => Kind::Mutation(mutation::Mutation::new(c)),
            ProcessorConfig::Noop(_) => Kind::Noop,
            ProcessorConfig::SyncResponse(_) => Kind::SyncResponse,
            ProcessorConfig::Catch(c) => Kind::Catch(Processor::build_all(c, &b.child("catch"))?),
            ProcessorConfig::Try(c) => Kind::Try(Processor::build_all(c, &b.child("try"))?),
            ProcessorConfig::Log(c) => Kind::Log(c.clone()),
            ProcessorConfig::Switch(c) => Kind::Switch(switch::Switch::build(c, b)?),
        };
        Ok(Processor {
            kind,
            metrics: b.metrics.register(Family::Processor, &conf.label, &b.path),
        })
    }

    /// Builds a list, each named by its index below `b`.
    pub fn build_all(
        confs: &[Component<ProcessorConfig>],
        b: &Build<'_>,
    ) -> Result<Vec<Processor>, BuildError> {
        confs
            .iter()
            .enumerate()
            .map(|(i, c)| Processor::build(c, &b.child(&i.to_string())))
            .collect()
    }

    /// Runs on every message of the batch; failures flag messages, they never stop them.
    pub fn process<'a>(&self, cx: &Context<'a>, batch: &mut Batch<'a>) {
        let start = cx.clock.last();
        self.metrics.count.add(batch.len() as u64);
        let errors = match &self.kind {
            Kind::Mapping(m) => m.process(cx, batch),
            Kind::Mutation(m) => m.process(cx, batch),
            Kind::Noop => 0,
            Kind::SyncResponse => sync_response::process(cx, batch),
            Kind::Catch(p) => catch::process(p, cx, batch),
            Kind::Try(p) => try_::process(p, cx, batch),
            Kind::Log(c) => log::process(c, cx, batch),
            Kind::Switch(s) => s.process(cx, batch),
        };
        self.metrics.error.add(errors);
        self.metrics.latency.record(cx.clock.lap() - start);
    }
}

/// Runs a list of processors in order.
pub fn run_all<'a>(processors: &[Processor], cx: &Context<'a>, batch: &mut Batch<'a>) {
    for p in processors {
        if batch.is_empty() {
            break;
        }
        p.process(cx, batch);
    }
}

/// Runs `f` on each message that passes `select`, one message at a time (as a batch of
/// one), and splices what it leaves (none, one or more messages) back in order.
pub fn per_message<'a>(
    cx: &Context<'a>,
    batch: &mut Batch<'a>,
    select: impl Fn(&crate::message::Message<'a>) -> bool,
    mut f: impl FnMut(&mut Batch<'a>),
) {
    let mut out = Batch::with_capacity_in(batch.len(), cx.arena);
    for msg in batch.drain(..) {
        if !select(&msg) {
            out.push(msg);
            continue;
        }
        let mut one = Batch::with_capacity_in(1, cx.arena);
        one.push(msg);
        f(&mut one);
        out.extend(one);
    }
    *batch = out;
}
