//! One shard's state: its in-flight slab, `Date` cache, metrics registry handle and the
//! shutdown signal its accept loops and idle connections listen to. Everything here is
//! touched by this shard's thread only (`Rc`, `Cell`, `RefCell`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::http::date::DateCache;
use crate::metrics::Registry;
use crate::transaction::Transactions;

/// What all shards and the main thread share: set by the main thread, read by shards.
#[derive(Default)]
pub struct Global {
    /// A shutdown signal arrived.
    pub shutdown: AtomicBool,
    /// Shards that have stopped accepting and have no request in flight.
    pub drained: AtomicUsize,
    /// Set when a shard had to abandon requests at the shutdown deadline.
    pub abandoned: AtomicBool,
}

impl Global {
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// Per-shard state shared by its tasks.
pub struct Shard {
    pub index: usize,
    pub txns: Transactions,
    pub date: DateCache,
    pub metrics: Registry,
    pub closing: Closing,
    pub global: Arc<Global>,
    /// Idle connections freed buffers since the allocator was last asked to give free
    /// pages back to the OS (the shard's tick does that, at most once a second).
    pub released: Cell<bool>,
}

/// The shard-local shutdown signal. Waiters hold a slot, so an idle connection that
/// waits many times re-registers in O(1) and never grows the list.
#[derive(Default)]
pub struct Closing {
    closed: Cell<bool>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Closing {
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Raises the signal and wakes every waiter.
    pub fn close(&self) {
        self.closed.set(true);
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// A slot for one waiter (a connection keeps its slot for its whole life).
    pub fn slot(&self) -> ClosingSlot<'_> {
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(None);
                slots.len() - 1
            }
        };
        ClosingSlot {
            closing: self,
            index,
        }
    }
}

/// A registered waiter on [`Closing`]; freed on drop.
pub struct ClosingSlot<'c> {
    closing: &'c Closing,
    index: usize,
}

impl ClosingSlot<'_> {
    /// Resolves when the shard starts closing.
    pub fn wait(&self) -> WaitClosed<'_, '_> {
        WaitClosed { slot: self }
    }
}

impl Drop for ClosingSlot<'_> {
    fn drop(&mut self) {
        self.closing.slots.borrow_mut()[self.index] = None;
        self.closing.free.borrow_mut().push(self.index);
    }
}

pub struct WaitClosed<'s, 'c> {
    slot: &'s ClosingSlot<'c>,
}

impl Future for WaitClosed<'_, '_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let c = self.slot.closing;
        if c.closed.get() {
            return Poll::Ready(());
        }
        let mut slots = c.slots.borrow_mut();
        let w = &mut slots[self.slot.index];
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
