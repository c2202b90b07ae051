//! Outputs: where a request's messages go. An output's `send` resolves when the batch
//! is acked (`Ok`) or nacked (`Err` with the text the client sees in a 502).
//!
//! Outputs nest (a broker's children are outputs), so a child's send is boxed; the box
//! lives in the request arena, so nesting costs no global allocation.

pub mod broker;
pub mod drop;
pub mod drop_on;
pub mod fallback;
pub mod http_client;
pub mod kafka;
pub mod reject;
pub mod reject_errored;
pub mod switch;
pub mod sync_response;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

use crate::config::Component;
use crate::message::Batch;
use crate::metrics::{ComponentMetrics, Family};

use super::processors::{self, Processor};
use super::{Build, BuildError, Context};

crate::kinds!(
    /// Every output type sluice runs, keyed by its YAML name.
    OutputKind, "output", true, {
        "broker" => Broker(broker::Config),
        "drop" => Drop(drop::Config),
        "drop_on" => DropOn(drop_on::Config),
        "fallback" => Fallback(fallback::Config),
        "http_client" => HttpClient(http_client::Config),
        "kafka" => Kafka(kafka::Config),
        "kafka_franz" => KafkaFranz(kafka::FranzConfig),
        "reject" => Reject(reject::Config),
        "reject_errored" => RejectErrored(reject_errored::Config),
        "switch" => Switch(switch::Config),
        "sync_response" => SyncResponse(sync_response::Config),
    }
);

enum Kind {
    Broker(broker::Broker),
    Drop,
    DropOn(drop_on::DropOn),
    Fallback(fallback::Fallback),
    HttpClient(http_client::HttpClient),
    Kafka(kafka::Kafka),
    Reject(reject::Reject),
    RejectErrored(Box<Output>),
    Switch(switch::Switch),
    SyncResponse,
}

/// A built output: its own processors, then its type.
pub struct Output {
    processors: Vec<Processor>,
    kind: Kind,
    metrics: Arc<ComponentMetrics>,
}

/// Why an output did not deliver; becomes the 502 body.
pub type Nack = String;

/// A child output's send, boxed in the request arena.
pub type SendFuture<'f> = Pin<bumpalo::boxed::Box<'f, dyn Future<Output = Result<(), Nack>> + 'f>>;

/// Boxes a send future in the arena (dropped, like any box, when it is done or abandoned).
pub fn boxed<'f>(
    arena: &'f Bump,
    fut: impl Future<Output = Result<(), Nack>> + 'f,
) -> SendFuture<'f> {
    let slot: &'f mut (dyn Future<Output = Result<(), Nack>> + 'f) = arena.alloc(fut);
    // SAFETY: `slot` is a unique, live arena allocation; the box takes ownership of its
    // value (and drops it) and the arena never moves it, so pinning it is sound.
    unsafe { Pin::new_unchecked(bumpalo::boxed::Box::from_raw(slot)) }
}

impl Output {
    pub fn build(conf: &Component<OutputKind>, b: &Build<'_>) -> Result<Self, BuildError> {
        let metrics = b.metrics.register(Family::Output, &conf.label, &b.path);
        let kind = match &conf.kind {
            OutputKind::Broker(c) => Kind::Broker(broker::Broker::build(c, b)?),
            OutputKind::Drop(_) => Kind::Drop,
            OutputKind::DropOn(c) => Kind::DropOn(drop_on::DropOn::build(c, b)?),
            OutputKind::Fallback(c) => Kind::Fallback(fallback::Fallback::build(c, b)?),
            OutputKind::HttpClient(c) => Kind::HttpClient(http_client::HttpClient::build(c, b)?),
            OutputKind::Kafka(c) => Kind::Kafka(kafka::Kafka::build(c, b, &metrics)?),
            OutputKind::KafkaFranz(c) => Kind::Kafka(kafka::Kafka::build_franz(c, b, &metrics)?),
            OutputKind::Reject(c) => Kind::Reject(reject::Reject::new(c)),
            OutputKind::RejectErrored(c) => {
                Kind::RejectErrored(Box::new(Output::build(&c.0, &b.child("reject_errored"))?))
            }
            OutputKind::Switch(c) => Kind::Switch(switch::Switch::build(c, b)?),
            OutputKind::SyncResponse(_) => Kind::SyncResponse,
        };
        Ok(Output {
            processors: Processor::build_all(&conf.processors, &b.child("processors"))?,
            kind,
            metrics,
        })
    }

    /// Whether every output in this tree can deliver now, as upstream's `/ready` asks:
    /// false while a Kafka output has not yet reached its brokers.
    pub fn connected(&self) -> bool {
        match &self.kind {
            Kind::Kafka(k) => k.connected(),
            Kind::Broker(b) => b.outputs().iter().all(Output::connected),
            Kind::Fallback(f) => f.outputs().iter().all(Output::connected),
            Kind::Switch(s) => s.outputs().all(Output::connected),
            Kind::DropOn(d) => d.output().connected(),
            Kind::RejectErrored(o) => o.connected(),
            Kind::Drop | Kind::HttpClient(_) | Kind::Reject(_) | Kind::SyncResponse => true,
        }
    }

    /// Delivers `batch` (this output's own copy) and resolves with its ack.
    pub async fn send<'a>(&self, cx: &Context<'a>, mut batch: Batch<'a>) -> Result<(), Nack> {
        let start = cx.clock.last();
        processors::run_all(&self.processors, cx, &mut batch);
        if batch.is_empty() {
            // Everything was deleted by processors: nothing to deliver, and that is an ack.
            return Ok(());
        }
        let count = batch.len() as u64;
        // Outputs that wait (for I/O or for child outputs) have their send boxed in the
        // arena: those futures are kilobytes, and inline they would make every request's
        // future that large, and each move of it (into the arena, into the race with the
        // deadline) a copy of kilobytes, even for a `sync_response` pipeline.
        let arena = cx.arena;
        let result = match &self.kind {
            Kind::Broker(b) => boxed(arena, b.send(cx, batch)).await,
            Kind::Drop => Ok(()),
            Kind::DropOn(d) => boxed(arena, d.send(cx, batch)).await,
            Kind::Fallback(f) => boxed(arena, f.send(cx, batch)).await,
            Kind::HttpClient(h) => boxed(arena, h.send(cx, batch)).await,
            Kind::Kafka(k) => boxed(arena, k.send(cx, batch)).await,
            Kind::Reject(r) => Err(r.reason(cx, &batch)),
            Kind::RejectErrored(child) => {
                boxed(arena, reject_errored::send(child, cx, batch)).await
            }
            Kind::Switch(s) => boxed(arena, s.send(cx, batch)).await,
            Kind::SyncResponse => {
                sync_response::send(cx, &batch);
                Ok(())
            }
        };
        match &result {
            // Kafka counts its produce requests itself: those are its batches.
            Ok(()) if matches!(self.kind, Kind::Kafka(_)) => self.metrics.count.add(count),
            Ok(()) => {
                self.metrics.count.add(count);
                self.metrics.batches.add(1);
            }
            Err(_) => self.metrics.error.add(1),
        }
        self.metrics.latency.record(cx.clock.lap() - start);
        result
    }

    /// [`Output::send`] boxed in the arena, for outputs that hold other outputs.
    pub fn send_boxed<'f, 'a: 'f>(
        &'f self,
        cx: &'f Context<'a>,
        batch: Batch<'a>,
    ) -> SendFuture<'f> {
        boxed(cx.arena, self.send(cx, batch))
    }
}

/// Runs sends concurrently. Without `fail_fast` it waits for all and reports the first
/// error; with it, the first error ends the join (and drops the other sends).
pub struct JoinAll<'f> {
    sends: BVec<'f, Option<SendFuture<'f>>>,
    fail_fast: bool,
    first_error: Option<Nack>,
}

impl<'f> JoinAll<'f> {
    pub fn new_in(arena: &'f Bump, fail_fast: bool) -> Self {
        JoinAll {
            sends: BVec::new_in(arena),
            fail_fast,
            first_error: None,
        }
    }

    pub fn push(&mut self, send: SendFuture<'f>) {
        self.sends.push(Some(send));
    }
}

impl Future for JoinAll<'_> {
    type Output = Result<(), Nack>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut pending = false;
        for slot in this.sends.iter_mut() {
            let Some(send) = slot else { continue };
            match send.as_mut().poll(cx) {
                Poll::Pending => pending = true,
                Poll::Ready(r) => {
                    *slot = None;
                    if let Err(e) = r {
                        if this.fail_fast {
                            return Poll::Ready(Err(e));
                        }
                        this.first_error.get_or_insert(e);
                    }
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(this.first_error.take().map_or(Ok(()), Err))
        }
    }
}
