//! The shard side of the `kafka` output: gathers the records of concurrent requests per
//! topic-partition and sends one produce request per partition when its batch fills or
//! a short linger passes, with at most `max_in_flight` produce requests out at once.
//!
//! Each partition has at most one produce request in flight (group commit): records
//! that arrive while it is out form the next batch, sent as soon as it is acked. Under
//! load a batch is everything that arrived during one broker round trip, so batches
//! grow with the load without a longer linger, and a partition's records reach the
//! broker in the order they were pushed.
//! Each request holds a [`Ticket`] that resolves once every produce request carrying one
//! of its records was acknowledged (`Ok`), or any of them failed (`Err`).
//!
//! Everything here is shard-local (`Rc`, `Cell`, `RefCell`) and runs on the shard's
//! glommio executor; only whole batches cross to the tokio thread ([`super::bridge`]).
//! While all `max_in_flight` slots are busy, records keep collecting in their partition's
//! batch, so batches grow exactly when the broker is the bottleneck.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rskafka::client::partition::Compression;
use rskafka::record::Record;

use crate::metrics::ComponentMetrics;

use super::bridge;
use super::client::Producer;

/// Why records were not delivered: the text of the nack.
pub type Nack = String;

/// Bytes a record costs in a batch beyond its key, value and headers (length fields,
/// varints, attributes): a conservative guess so a full batch stays under the limit.
const RECORD_OVERHEAD: usize = 32;

/// When to cut a partition's batch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Records per produce request at most.
    pub max_records: usize,
    /// Approximate bytes per produce request at most (a single larger record is still
    /// sent, alone; the broker judges it).
    pub max_bytes: usize,
    /// How long the first record of a batch waits for company.
    pub linger: Duration,
    /// Produce requests out at once (per output, per shard).
    pub max_in_flight: usize,
    /// How long a topic's partition count is trusted.
    pub metadata_max_age: Duration,
}

pub struct Batcher {
    inner: Rc<Inner>,
}

struct Inner {
    producer: Arc<Producer>,
    /// The output's metrics: each acked produce request is one `output_batch_sent`.
    metrics: Arc<ComponentMetrics>,
    compression: Compression,
    limits: Limits,
    in_flight: glommio::sync::Semaphore,
    pending: RefCell<HashMap<(Arc<str>, i32), Pending>>,
    topics: RefCell<HashMap<Arc<str>, TopicInfo>>,
    /// One metadata lookup at a time: a burst of requests for a new topic waits for the
    /// first lookup instead of sending one each (lookups are rare: once per topic and
    /// `metadata_max_age`, or after a failed produce).
    lookup: glommio::sync::Semaphore,
}

#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    /// The ticket of each record, index for index.
    tickets: Vec<Rc<Ack>>,
    bytes: usize,
    /// Bumped at every cut, so a linger timer set for an earlier batch does nothing.
    generation: u64,
    /// A flush for a full batch is already queued.
    flush_queued: bool,
    /// A produce request of this partition is out; the next batch waits for its ack.
    in_flight: bool,
}

struct TopicInfo {
    name: Arc<str>,
    partitions: u32,
    fetched: Instant,
}

/// One request's share of the output: how many of its records are unacknowledged.
#[derive(Default)]
struct Ack {
    remaining: Cell<usize>,
    error: RefCell<Option<Nack>>,
    waker: Cell<Option<Waker>>,
    /// The request is gone (deadline): its records not yet sent are dropped.
    abandoned: Cell<bool>,
}

impl Ack {
    fn settle(&self, error: Option<&Nack>) {
        if let Some(e) = error {
            self.error.borrow_mut().get_or_insert_with(|| e.clone());
        }
        self.remaining.set(self.remaining.get().saturating_sub(1));
        if self.remaining.get() == 0 {
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
    }
}

/// A request's claim on the acks of the records it pushed.
pub struct Ticket(Rc<Ack>);

impl Ticket {
    /// Resolves when every record pushed with this ticket is settled.
    pub fn wait(&self) -> Wait<'_> {
        Wait(&self.0)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.abandoned.set(true);
    }
}

pub struct Wait<'t>(&'t Ack);

impl Future for Wait<'_> {
    type Output = Result<(), Nack>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ack = self.0;
        if ack.remaining.get() == 0 {
            return Poll::Ready(ack.error.borrow_mut().take().map_or(Ok(()), Err));
        }
        ack.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Batcher {
    pub fn new(
        producer: Arc<Producer>,
        compression: Compression,
        limits: Limits,
        metrics: Arc<ComponentMetrics>,
    ) -> Batcher {
        Batcher {
            inner: Rc::new(Inner {
                producer,
                metrics,
                compression,
                in_flight: glommio::sync::Semaphore::new(limits.max_in_flight.max(1) as u64),
                limits,
                pending: RefCell::new(HashMap::new()),
                topics: RefCell::new(HashMap::new()),
                lookup: glommio::sync::Semaphore::new(1),
            }),
        }
    }

    /// How many batches of `topic`/`partition` have been cut (the sticky partitioner
    /// moves on when this changes).
    pub fn batches_cut(&self, topic: &Arc<str>, partition: i32) -> u64 {
        self.inner
            .pending
            .borrow()
            .get(&(topic.clone(), partition))
            .map_or(0, |p| p.generation)
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(Rc::new(Ack::default()))
    }

    /// `topic`'s shared name and partition count, from the cache while it is fresh.
    pub async fn topic(&self, topic: &str) -> Result<(Arc<str>, u32), Nack> {
        if let Some(hit) = self.cached(topic) {
            return Ok(hit);
        }
        let _one_at_a_time = self
            .inner
            .lookup
            .acquire_permit(1)
            .await
            .map_err(|e| e.to_string())?;
        // Whoever held the permit before may have looked this topic up already.
        if let Some(hit) = self.cached(topic) {
            return Ok(hit);
        }
        let reply = bridge::run(
            self.inner
                .producer
                .clone()
                .partition_count(topic.to_string()),
        );
        let partitions = reply.await.map_err(|_| lost())??;
        let name: Arc<str> = Arc::from(topic);
        self.inner.topics.borrow_mut().insert(
            name.clone(),
            TopicInfo {
                name: name.clone(),
                partitions,
                fetched: Instant::now(),
            },
        );
        Ok((name, partitions))
    }

    fn cached(&self, topic: &str) -> Option<(Arc<str>, u32)> {
        let topics = self.inner.topics.borrow();
        let t = topics.get(topic)?;
        (t.fetched.elapsed() < self.inner.limits.metadata_max_age)
            .then(|| (t.name.clone(), t.partitions))
    }

    /// Queues `record` for `topic`/`partition`; `ticket` settles when it is acked.
    pub fn push(&self, ticket: &Ticket, topic: Arc<str>, partition: i32, record: Record) {
        let inner = &self.inner;
        let size = record.approximate_size() + RECORD_OVERHEAD;
        let key = (topic, partition);
        let mut map = inner.pending.borrow_mut();
        let p = map.entry(key.clone()).or_default();
        let first = p.records.is_empty();
        p.records.push(record);
        p.tickets.push(ticket.0.clone());
        p.bytes += size;
        ticket.0.remaining.set(ticket.0.remaining.get() + 1);
        let full = p.records.len() >= inner.limits.max_records || p.bytes >= inner.limits.max_bytes;
        if p.in_flight {
            // Sent when the request in flight is acked.
        } else if full && !p.flush_queued {
            p.flush_queued = true;
            drop(map);
            spawn_flush(inner.clone(), key);
        } else if first {
            let generation = p.generation;
            drop(map);
            spawn_linger(inner.clone(), key, generation);
        }
    }
}

fn lost() -> Nack {
    "kafka: the client thread stopped".to_string()
}

fn spawn_linger(inner: Rc<Inner>, key: (Arc<str>, i32), generation: u64) {
    crate::runtime::poller::spawn(async move {
        crate::runtime::poller::sleep(inner.limits.linger).await;
        let due =
            inner.pending.borrow().get(&key).is_some_and(|p| {
                p.generation == generation && !p.in_flight && !p.records.is_empty()
            });
        if due {
            flush(inner, key).await;
        }
    })
    .detach();
}

fn spawn_flush(inner: Rc<Inner>, key: (Arc<str>, i32)) {
    crate::runtime::poller::spawn(flush(inner, key)).detach();
}

/// Waits for an in-flight slot, cuts the partition's batch and sends it.
async fn flush(inner: Rc<Inner>, key: (Arc<str>, i32)) {
    // The slot is taken before the cut: while we wait, the batch keeps growing.
    let Ok(_permit) = inner.in_flight.acquire_permit(1).await else {
        return;
    };
    let Some((records, tickets)) = cut(&inner, &key) else {
        return;
    };
    // (`cut` marked the partition in flight.)
    if crate::log::enabled(crate::config::LogLevel::DEBUG) {
        crate::log::log(
            crate::config::LogLevel::DEBUG,
            "kafka produce",
            &[
                ("topic", &key.0),
                ("partition", &key.1.to_string()),
                ("records", &records.len().to_string()),
            ],
        );
    }
    let produce = inner
        .producer
        .clone()
        .produce(key.0.clone(), key.1, records, inner.compression);
    let result = match bridge::run(produce).await {
        Ok(r) => r,
        Err(_) => Err(lost()),
    };
    if result.is_ok() {
        inner.metrics.batches.add(1);
    } else {
        // The partition count may be what changed (topic re-created): read it again.
        inner.topics.borrow_mut().remove(&key.0);
    }
    for t in &tickets {
        t.settle(result.as_ref().err());
    }
    // What gathered meanwhile goes now: it has waited a round trip already.
    let mut map = inner.pending.borrow_mut();
    if let Some(p) = map.get_mut(&key) {
        p.in_flight = false;
        if !p.records.is_empty() && !p.flush_queued {
            p.flush_queued = true;
            drop(map);
            spawn_flush(inner.clone(), key);
        }
    }
}

/// Takes up to one produce request's worth of records off the partition's batch
/// (skipping those of requests that are gone) and marks the partition in flight; what
/// is left goes when that request is acked.
fn cut(inner: &Rc<Inner>, key: &(Arc<str>, i32)) -> Option<(Vec<Record>, Vec<Rc<Ack>>)> {
    let mut map = inner.pending.borrow_mut();
    let p = map.get_mut(key)?;
    p.generation += 1;
    p.flush_queued = false;
    if p.in_flight {
        // A linger or flush raced with the request in flight; its ack sends this batch.
        return None;
    }
    let limits = &inner.limits;
    let mut n = 0;
    let mut bytes = 0;
    for r in &p.records {
        let size = r.approximate_size() + RECORD_OVERHEAD;
        if n > 0 && (n >= limits.max_records || bytes + size > limits.max_bytes) {
            break;
        }
        n += 1;
        bytes += size;
    }
    p.bytes -= bytes.min(p.bytes);
    let mut records = Vec::with_capacity(n);
    let mut tickets = Vec::with_capacity(n);
    for (r, t) in p.records.drain(..n).zip(p.tickets.drain(..n)) {
        if !t.abandoned.get() {
            records.push(r);
            tickets.push(t);
        }
    }
    if p.records.is_empty() && p.records.capacity() > 4 * limits.max_records.min(1024) {
        // Do not keep a burst's worth of capacity per partition forever.
        *p = Pending {
            generation: p.generation,
            ..Pending::default()
        };
    }
    if records.is_empty() {
        // Every record's request was gone: nothing goes out, the rest waits as before.
        if !p.records.is_empty() {
            spawn_linger(inner.clone(), key.clone(), p.generation);
        }
        return None;
    }
    p.in_flight = true;
    Some((records, tickets))
}
