//! Per-shard slab of in-flight requests: each entry holds the request's response store
//! and its one deadline. Outputs and processors reach an
//! entry by [`InFlightId`]; the connection task waits on it. No lock, no channel: the
//! slab is shard-local (`RefCell`), and wake-ups go through one stored `Waker`.
//!
//! Entries and their buffers are reused, so a steady stream of requests allocates
//! nothing here once the slab and the stored payloads have grown to their working size.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bumpalo::Bump;

use crate::message::{Message, Meta, Value};

/// Key of an in-flight request: slot index plus a generation, so a late ack for a
/// request that already timed out can never land on the slot's next occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlightId {
    index: u32,
    generation: u32,
}

/// A message kept as a response: owned copies in buffers that are reused.
#[derive(Debug, Default)]
pub struct StoredMessage {
    pub payload: Vec<u8>,
    /// Metadata as text (what response headers and status interpolation read).
    meta: Vec<(String, String)>,
    meta_len: usize,
}

impl StoredMessage {
    fn fill(&mut self, arena: &Bump, msg: &Message<'_>, all_meta: bool) {
        self.payload.clear();
        self.payload.extend_from_slice(msg.payload);
        self.meta_len = 0;
        let mut put = |k: &str, v: Value<'_>| {
            if self.meta_len == self.meta.len() {
                self.meta.push(Default::default());
            }
            let (key, value) = &mut self.meta[self.meta_len];
            key.clear();
            key.push_str(k);
            value.clear();
            value.push_str(v.to_text(arena));
            self.meta_len += 1;
        };
        // Without interpolation or metadata headers, only a part's Content-Type is read
        // (the first, as `HttpServer::respond` reads it).
        if all_meta {
            msg.meta.iter().for_each(|(k, v)| put(k, v));
        } else if let Some((k, v)) = msg.meta.find_ignore_case("Content-Type") {
            put(k, v);
        }
    }

    pub fn meta(&self) -> impl Iterator<Item = (&str, &str)> {
        self.meta[..self.meta_len]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The stored message as an arena message again (for status/header interpolation).
    pub fn to_message<'a>(&self, arena: &'a Bump) -> Message<'a> {
        let mut meta = Meta::new_in(arena);
        for (k, v) in self.meta() {
            meta.set(arena.alloc_str(k), Value::Str(arena.alloc_str(v)));
        }
        Message {
            payload: arena.alloc_slice_copy(&self.payload),
            meta,
            error: None,
        }
    }
}

/// The ordered list of messages a request answers with.
#[derive(Debug, Default)]
pub struct ResponseStore {
    messages: Vec<StoredMessage>,
    len: usize,
    /// Keep every metadata entry of stored messages (the response reads them).
    all_meta: bool,
}

impl ResponseStore {
    pub fn push(&mut self, arena: &Bump, msg: &Message<'_>) {
        if self.len == self.messages.len() {
            self.messages.push(StoredMessage::default());
        }
        self.messages[self.len].fill(arena, msg, self.all_meta);
        self.len += 1;
    }

    pub fn messages(&self) -> &[StoredMessage] {
        &self.messages[..self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every output acked.
    Acked,
    /// An output failed; the text goes to the client with a 502.
    Nacked(String),
    /// The deadline passed first (408).
    TimedOut,
}

#[derive(Debug, Default)]
struct Entry {
    generation: u32,
    occupied: bool,
    deadline: Option<Instant>,
    expired: bool,
    /// The task waiting for this request to settle or expire.
    waker: Option<Waker>,
    store: ResponseStore,
}

/// One shard's in-flight requests.
#[derive(Default)]
pub struct Transactions {
    inner: RefCell<Slab>,
}

#[derive(Default)]
struct Slab {
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl Transactions {
    /// Opens an entry for a request that must be answered by `deadline`. `all_meta`:
    /// whether the response will read stored messages' metadata (interpolated status or
    /// headers, metadata headers); if not, only their Content-Type is kept.
    pub fn begin(&self, deadline: Instant, all_meta: bool) -> InFlightId {
        let mut s = self.inner.borrow_mut();
        let index = match s.free.pop() {
            Some(i) => i,
            None => {
                s.entries.push(Entry::default());
                (s.entries.len() - 1) as u32
            }
        };
        s.live += 1;
        let e = &mut s.entries[index as usize];
        e.occupied = true;
        e.deadline = Some(deadline);
        e.expired = false;
        e.waker = None;
        e.store.clear();
        e.store.all_meta = all_meta;
        InFlightId {
            index,
            generation: e.generation,
        }
    }

    fn with<R>(&self, id: InFlightId, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let mut s = self.inner.borrow_mut();
        match s.entries.get_mut(id.index as usize) {
            Some(e) if e.occupied && e.generation == id.generation => Some(f(e)),
            _ => None,
        }
    }

    /// Appends a copy of `msg` to the request's response store.
    pub fn store(&self, id: InFlightId, arena: &Bump, msg: &Message<'_>) {
        self.with(id, |e| e.store.push(arena, msg));
    }

    /// Closes the entry, giving its store to `f` (the response writer).
    pub fn finish<R>(&self, id: InFlightId, f: impl FnOnce(&ResponseStore) -> R) -> R {
        let mut s = self.inner.borrow_mut();
        let e = &mut s.entries[id.index as usize];
        assert!(
            e.occupied && e.generation == id.generation,
            "finish of a closed entry"
        );
        let r = f(&e.store);
        e.occupied = false;
        e.generation = e.generation.wrapping_add(1);
        e.waker = None;
        s.free.push(id.index);
        s.live -= 1;
        r
    }

    /// Number of requests in flight on this shard.
    pub fn len(&self) -> usize {
        self.inner.borrow().live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks every entry whose deadline has passed and wakes its task. Called by the
    /// shard's sweeper tick, so requests need no timer of their own.
    pub fn expire(&self, now: Instant) {
        let mut wake = Vec::new();
        {
            let mut s = self.inner.borrow_mut();
            for e in s.entries.iter_mut().filter(|e| e.occupied && !e.expired) {
                if e.deadline.is_some_and(|d| d <= now) {
                    e.expired = true;
                    wake.extend(e.waker.take());
                }
            }
        }
        wake.into_iter().for_each(Waker::wake);
    }

    /// Whether the request's deadline has been reached (by the sweeper).
    pub fn is_expired(&self, id: InFlightId) -> bool {
        self.with(id, |e| e.expired).unwrap_or(true)
    }

    /// Resolves once the sweeper has expired `id` (raced against processing).
    pub fn deadline(&self, id: InFlightId) -> Deadline<'_> {
        Deadline { txns: self, id }
    }
}

/// Future of [`Transactions::deadline`].
pub struct Deadline<'t> {
    txns: &'t Transactions,
    id: InFlightId,
}

impl Future for Deadline<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let expired = self.txns.with(self.id, |e| {
            if !e.expired {
                e.waker = Some(cx.waker().clone());
            }
            e.expired
        });
        if expired.unwrap_or(true) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let waker = Waker::noop();
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn stale_ids_are_ignored_after_reuse() {
        let arena = Bump::new();
        let t = Transactions::default();
        let old = t.begin(Instant::now(), true);
        t.finish(old, |_| ());
        let new = t.begin(Instant::now() + Duration::from_secs(5), true);
        // A late store for the old request must not reach the slot's new occupant.
        t.store(old, &arena, &Message::new(&arena, b"late"));
        assert!(t.is_expired(old), "a closed id reads as expired");
        assert!(!t.is_expired(new));
        t.finish(new, |store| assert!(store.messages().is_empty()));
    }

    #[test]
    fn sweeper_expires_past_deadlines_only() {
        let t = Transactions::default();
        let now = Instant::now();
        let late = t.begin(now, true);
        let fine = t.begin(now + Duration::from_secs(60), true);
        let mut waiting = t.deadline(late);
        assert!(poll_once(&mut waiting).is_pending());
        t.expire(now);
        assert!(poll_once(&mut waiting).is_ready());
        assert!(t.is_expired(late));
        assert!(!t.is_expired(fine));
        t.finish(late, |_| ());
        t.finish(fine, |_| ());
        assert!(t.is_empty());
    }

    #[test]
    fn store_keeps_copies_in_order() {
        let arena = Bump::new();
        let t = Transactions::default();
        let id = t.begin(Instant::now(), true);
        let mut m = Message::new(&arena, b"one");
        m.meta.set("status", Value::Int(201));
        t.store(id, &arena, &m);
        t.store(id, &arena, &Message::new(&arena, b"two"));
        t.finish(id, |store| {
            let msgs = store.messages();
            assert_eq!(msgs.len(), 2);
            assert_eq!(msgs[0].payload, b"one");
            assert_eq!(msgs[0].meta().collect::<Vec<_>>(), [("status", "201")]);
            assert_eq!(msgs[1].payload, b"two");
        });
    }
}
