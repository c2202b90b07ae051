//! One shard's wiring of input -> processors -> output, and the life of one request (or
//! WebSocket message) through it: open a slab entry, build the batch, run the
//! processors, send to the output, wait for its ack or the deadline, write the
//! response, close the entry.

use std::sync::Arc;

use bumpalo::Bump;
use futures_lite::future;

use crate::components::inputs::http_server::{HttpServer, Request};
use crate::components::inputs::InputKind;
use crate::components::outputs::Output;
use crate::components::processors::{self, Processor};
use crate::components::{Build, BuildError, Context};
use crate::config::Config;
use crate::http::response::{self, Framing};
use crate::message::Batch;
use crate::metrics::{ComponentMetrics, Family, Registry, Stopwatch};
use crate::transaction::{Outcome, ResponseStore, Transactions};

/// A shard's built pipeline (`!Send`: each shard builds its own from the config).
pub struct Pipeline {
    pub input: HttpServer,
    input_metrics: Arc<ComponentMetrics>,
    /// Input-level processors, then `pipeline.processors`.
    processors: Vec<Processor>,
    output: Output,
}

impl Pipeline {
    /// Whether the outputs can deliver (`/ready`).
    pub fn connected(&self) -> bool {
        self.output.connected()
    }

    pub fn build(conf: &Config, metrics: &Registry) -> Result<Self, BuildError> {
        let root = Build {
            metrics,
            path: "root".into(),
        };
        let InputKind::HttpServer(input_conf) = &conf.input.kind;
        let shared = input_conf.address.is_empty();
        let input = HttpServer::new(input_conf, shared.then_some(conf.http.root_path.as_str()));
        let input_build = root.child("input");
        let mut processors =
            Processor::build_all(&conf.input.processors, &input_build.child("processors"))?;
        processors.extend(Processor::build_all(
            &conf.pipeline.processors,
            &root.child("pipeline").child("processors"),
        )?);
        Ok(Pipeline {
            input_metrics: metrics.register(Family::Input, &conf.input.label, &input_build.path),
            input,
            processors,
            output: Output::build(&conf.output, &root.child("output"))?,
        })
    }

    /// Runs one HTTP request and appends its response to `out`.
    pub async fn handle<'a>(
        &self,
        txns: &Transactions,
        arena: &'a Bump,
        req: &Request<'a>,
        out: &mut Vec<u8>,
        f: Framing<'_>,
    ) {
        let Some(batch) = self.input.batch(arena, req) else {
            self.input_metrics.count.add(1);
            return response::write_text(out, 400, "Bad request\n", f);
        };
        self.process(txns, arena, batch, |outcome, store| {
            self.input.respond(arena, outcome, store, out, f)
        })
        .await
    }

    /// Runs one batch from the input to its outcome and hands that with the response
    /// store to `answer` (which writes the HTTP response or WebSocket frames).
    pub async fn process<'a, R>(
        &self,
        txns: &Transactions,
        arena: &'a Bump,
        mut batch: Batch<'a>,
        answer: impl FnOnce(Outcome, &ResponseStore) -> R,
    ) -> R {
        let clock = Stopwatch::start();
        let start = clock.last();
        self.input_metrics.count.add(1);
        let id = txns.begin(
            start + self.input.timeout(),
            self.input.reads_response_meta(),
        );
        let cx = Context {
            arena,
            txns,
            id,
            clock: &clock,
        };
        let work = async {
            processors::run_all(&self.processors, &cx, &mut batch);
            if batch.is_empty() {
                // Every message was deleted: acked, nothing stored.
                return Ok(());
            }
            self.output.send(&cx, batch).await
        };
        // The output's future resolves with its ack; the slab's deadline (expired by the
        // shard's tick, no timer per request) ends it first if it is late.
        let outcome = match future::or(async { Some(work.await) }, async {
            txns.deadline(id).await;
            None
        })
        .await
        {
            Some(Ok(())) => Outcome::Acked,
            Some(Err(e)) => Outcome::Nacked(e),
            None => {
                clock.lap();
                Outcome::TimedOut
            }
        };
        let answered = txns.finish(id, |store| answer(outcome, store));
        // Upstream's input latency ends at the ack: the output's last reading.
        self.input_metrics.latency.record(clock.last() - start);
        answered
    }
}
