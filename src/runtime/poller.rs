//! `Poller`: the readiness of this shard's sockets, from one edge-triggered epoll set.
//!
//! glommio waits on a socket with a one-shot io_uring poll. glommio 0.9 sets its rings
//! up without `IORING_SETUP_COOP_TASKRUN`, so a poll that completes while the shard is
//! running interrupts the shard's core (a reschedule IPI, several microseconds on a
//! VM). Under moderate load, when most requests arrive while the shard is busy with
//! others, that was about one interrupt per request, plus a poll to submit and reap
//! and three `recv` calls that found nothing.
//!
//! Here each socket is added once, at creation, to an epoll set of its shard, with
//! `EPOLLET`. The kernel then queues readiness silently, however busy the shard is, and
//! one driver task collects it with `epoll_wait(.., 0)` and wakes the sockets' tasks:
//! the way an nginx worker runs. Only when turns have found nothing for
//! `runtime.spin_before_park` does the driver wait through glommio, with one io_uring
//! poll on the epoll descriptor itself; so an idle shard still sleeps in glommio's
//! reactor and wakes for its timers and other I/O. A busy shard goes through that
//! reactor too, at least every `REACTOR_EVERY` (the wait then completes at once).
//!
//! glommio has no public way to poll an arbitrary descriptor, but a glommio
//! `TcpStream` arms a poll on its descriptor when it is created, and its read reports
//! that poll's completion (the `recv` that follows fails with `ENOTSOCK`). The driver
//! wraps a duplicate of the epoll descriptor in one for each wait (`readable`).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::yield_now;
use futures_lite::AsyncReadExt;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 64;
/// Longest the driver keeps the shard from glommio's reactor while it collects events
/// or spins: the reactor's loop handles timers, accepts and the other I/O, which must
/// not wait long behind a stream of socket events.
const REACTOR_EVERY: Duration = Duration::from_micros(500);
/// Events after which no more bytes will come.
const HANGUP: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

thread_local! {
    static POLLER: RefCell<Option<Rc<Poller>>> = const { RefCell::new(None) };
    /// `runtime.spin_before_park` of this shard.
    static SPIN: Cell<Duration> = const { Cell::new(DEFAULT_SPIN) };
}

/// How long the driver keeps polling after the last event before the shard may sleep
/// (`runtime.spin_before_park`). A request that arrives within it is picked up without
/// glommio's sleep and wake-up (several io_uring calls and, on a VM, an interrupt).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Sets this shard's spin (see `DEFAULT_SPIN`); zero lets it sleep as soon as it has
/// nothing to do.
pub fn set_spin(spin: Duration) {
    SPIN.set(spin);
}

/// This shard's epoll set and the sockets in it.
pub struct Poller {
    epfd: OwnedFd,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    /// Sockets waiting for readiness (a waker in their slot).
    waiting: Cell<usize>,
    driver: RefCell<Driver>,
    /// The glommio executor this poller's driver runs on.
    executor: usize,
}

/// One socket's entry; its epoll token is its index and generation.
#[derive(Default)]
struct Slot {
    generation: u32,
    /// The socket may have bytes: set by an event, cleared when a `recv` comes back
    /// short or empty (edge-triggered: the next arrival brings a new event).
    ready: bool,
    /// The peer has closed its side, or the socket has an error: no event follows,
    /// so a short read does not clear `ready` (the next `recv` returns 0 or the error).
    hangup: bool,
    waker: Option<Waker>,
}

enum Driver {
    /// No driver task yet (it runs as long as its executor: a new executor on the
    /// thread gets a new poller).
    Absent,
    /// Running or queued to run: it will collect events soon.
    Active,
    /// No socket waits; woken by the next one that does.
    Dormant(Waker),
}

/// A socket's place in its shard's poller; leaving it (drop) removes the socket.
pub struct Registration {
    poller: Rc<Poller>,
    fd: i32,
    index: u32,
}

impl Poller {
    /// This thread's poller, created on first use, and again for each new executor on
    /// the thread: a driver (or its waker) left from an ended executor can never run.
    fn get() -> io::Result<Rc<Poller>> {
        let executor = glommio::executor().id();
        POLLER.with(|p| {
            let mut p = p.borrow_mut();
            if let Some(p) = p.as_ref().filter(|p| p.executor == executor) {
                return Ok(p.clone());
            }
            // SAFETY: plain syscall; the result is checked before use.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let poller = Rc::new(Poller {
                // SAFETY: `fd` was just created and is owned by nothing else.
                epfd: unsafe { OwnedFd::from_raw_fd(fd) },
                slots: RefCell::new(Vec::new()),
                free: RefCell::new(Vec::new()),
                waiting: Cell::new(0),
                driver: RefCell::new(Driver::Absent),
                executor,
            });
            *p = Some(poller.clone());
            Ok(poller)
        })
    }

    /// Takes the events queued so far, marks their sockets ready and wakes those that
    /// wait. Returns how many events there were.
    fn harvest(&self, events: &mut [libc::epoll_event; EVENTS]) -> usize {
        // SAFETY: `events` is valid for `EVENTS` entries; timeout 0 never blocks.
        let n = unsafe {
            libc::epoll_wait(self.epfd.as_raw_fd(), events.as_mut_ptr(), EVENTS as i32, 0)
        };
        if n <= 0 {
            return 0;
        }
        let mut slots = self.slots.borrow_mut();
        for ev in &events[..n as usize] {
            let token = ev.u64;
            let Some(slot) = slots.get_mut((token & 0xffff_ffff) as usize) else {
                continue;
            };
            // An event of a socket that left (its slot reused since) is dropped.
            if slot.generation != (token >> 32) as u32 {
                continue;
            }
            slot.ready = true;
            slot.hangup |= ev.events & HANGUP != 0;
            if let Some(w) = self.take_waker(slot) {
                w.wake();
            }
        }
        n as usize
    }

    /// Takes `slot`'s waker, if its socket waits, and counts it out of `waiting`.
    fn take_waker(&self, slot: &mut Slot) -> Option<Waker> {
        let w = slot.waker.take();
        if w.is_some() {
            self.waiting.set(self.waiting.get() - 1);
        }
        w
    }

    /// Makes sure a driver will collect events for a socket that starts waiting.
    fn need_driver(self: &Rc<Self>) {
        let was = std::mem::replace(&mut *self.driver.borrow_mut(), Driver::Active);
        match was {
            Driver::Active => {}
            Driver::Dormant(w) => w.wake(),
            Driver::Absent => {
                glommio::spawn_local(drive(self.clone())).detach();
            }
        }
    }

    /// Waits until the epoll set has events, through glommio's reactor (see the
    /// module docs). An error to create the wait is returned at once; the driver then
    /// retries on its next turn.
    async fn readable(&self) -> io::Result<()> {
        // SAFETY: duplicates a descriptor this poller owns; the result is checked.
        let fd = unsafe { libc::fcntl(self.epfd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nothing else; the stream closes it.
        let mut stream = unsafe { glommio::net::TcpStream::from_raw_fd(fd) };
        // The poll armed at creation completes when the set is readable; the `recv`
        // that follows fails (`ENOTSOCK`), which is the signal.
        let _ = stream.read(&mut [0u8; 1]).await;
        Ok(())
    }
}

/// The driver: collects events while there are some, lets the woken tasks run between
/// turns, and waits through glommio when a turn finds none.
async fn drive(poller: Rc<Poller>) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let spin = SPIN.get();
    let mut last_event = Instant::now();
    let mut last_reactor = last_event;
    loop {
        let n = poller.harvest(&mut events);
        let waiting = poller.waiting.get() > 0;
        let now = Instant::now();
        if n > 0 {
            last_event = now;
        }
        // Events: let the woken tasks run, then collect again. None, but some came in
        // lately: poll again rather than pay for glommio's sleep and wake-up.
        let again = n > 0 || (waiting && now - last_event < spin);
        if again && now - last_reactor < REACTOR_EVERY {
            yield_now().await;
            continue;
        }
        if waiting {
            if poller.readable().await.is_err() {
                // Out of descriptors for the wait: let the reactor run (a timer needs
                // none) instead of retrying at once.
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        } else {
            dormant(&poller).await;
        }
        last_reactor = Instant::now();
    }
}

/// Sleeps until a socket starts waiting (`need_driver`).
async fn dormant(poller: &Poller) {
    let mut parked = false;
    std::future::poll_fn(|cx| {
        let mut driver = poller.driver.borrow_mut();
        if parked && matches!(*driver, Driver::Active) {
            return Poll::Ready(());
        }
        parked = true;
        *driver = Driver::Dormant(cx.waker().clone());
        Poll::Pending
    })
    .await
}

impl Registration {
    /// Adds a socket to this shard's epoll set.
    pub fn new(fd: i32) -> io::Result<Self> {
        let poller = Poller::get()?;
        let index = poller.free.borrow_mut().pop();
        let mut slots = poller.slots.borrow_mut();
        let index = index.unwrap_or_else(|| {
            slots.push(Slot::default());
            (slots.len() - 1) as u32
        });
        let slot = &mut slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        // The first read waits for the first event, which `EPOLL_CTL_ADD` queues at once
        // if bytes are already there. So a burst of new connections is accepted, and
        // their tasks allocated, before any of them allocates request buffers: the
        // buffers that idle connections free later then lie in long runs that
        // `malloc_trim` can give back (10,000 idle connections: +34 MiB RSS; reading at
        // once interleaved them with the tasks, +77 MiB).
        slot.ready = false;
        slot.hangup = false;
        let generation = slot.generation;
        drop(slots);
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: u64::from(generation) << 32 | u64::from(index),
        };
        // SAFETY: `fd` is an open socket of the caller; `ev` is a valid event.
        let r =
            unsafe { libc::epoll_ctl(poller.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            let e = io::Error::last_os_error();
            poller.free.borrow_mut().push(index);
            return Err(e);
        }
        Ok(Registration { poller, fd, index })
    }

    /// Whether the socket may have bytes to read (see `Slot::ready`).
    pub fn ready(&self) -> bool {
        self.poller.slots.borrow()[self.index as usize].ready
    }

    /// Records that a `recv` found nothing.
    pub fn drained(&self) {
        self.poller.slots.borrow_mut()[self.index as usize].ready = false;
    }

    /// Records that a `recv` returned less than it asked for: the socket is drained,
    /// unless the peer has hung up (then the end of the stream is still to be read).
    pub fn short_read(&self) {
        let slot = &mut self.poller.slots.borrow_mut()[self.index as usize];
        slot.ready = slot.hangup;
    }

    /// Waits for the socket's next event: `Ready` if one came since `drained`,
    /// otherwise `Pending` with `waker` woken at the event.
    pub fn poll_ready(&self, waker: &Waker) -> Poll<()> {
        let mut slots = self.poller.slots.borrow_mut();
        let slot = &mut slots[self.index as usize];
        if slot.ready {
            self.poller.take_waker(slot);
            return Poll::Ready(());
        }
        match &mut slot.waker {
            Some(w) => w.clone_from(waker),
            None => {
                slot.waker = Some(waker.clone());
                self.poller.waiting.set(self.poller.waiting.get() + 1);
            }
        }
        drop(slots);
        self.poller.need_driver();
        Poll::Pending
    }

    /// Stops waiting (the read gave up, for example on its timeout).
    pub fn cancel_wait(&self) {
        self.poller
            .take_waker(&mut self.poller.slots.borrow_mut()[self.index as usize]);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancel_wait();
        // Removed before the socket closes: its descriptor number may be reused at
        // once, and an io_uring poll still holding the socket would keep it in the set.
        // SAFETY: `fd` is still open (the socket closes after this); a null event is
        // allowed for `EPOLL_CTL_DEL`.
        unsafe {
            libc::epoll_ctl(
                self.poller.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                self.fd,
                std::ptr::null_mut(),
            );
        }
        self.poller.free.borrow_mut().push(self.index);
    }
}
