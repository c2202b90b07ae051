//! `Poller`: the readiness of this shard's sockets, from one edge-triggered epoll set,
//! and the one place the shard's thread waits for them.
//!
//! glommio waits on a socket with a one-shot io_uring poll. glommio 0.9 sets its rings
//! up without `IORING_SETUP_COOP_TASKRUN`, so a poll that completes while the shard is
//! running interrupts the shard's core (a reschedule IPI, several microseconds on a
//! VM). Under moderate load, when most requests arrive while the shard is busy with
//! others, that was about one interrupt per request, plus a poll to submit and reap
//! and three `recv` calls that found nothing.
//!
//! Here each socket is added once, at creation, to an epoll set of its shard, with
//! `EPOLLET`, for reading (and, once a `send` has found no room, for room to write).
//! The kernel then queues readiness silently, however busy the shard is, and one
//! driver task collects it with `epoll_wait(.., 0)` and wakes the sockets' tasks: the
//! way an nginx worker runs. glommio does no I/O on the sockets.
//!
//! When a turn finds nothing, the driver waits in one of two ways:
//!
//! - **Blocking in `epoll_wait`**, while requests come (the last event is less than
//!   `PARK_AFTER` old). glommio's own sleep costs about a dozen syscalls (io_uring
//!   submissions, a `membarrier`, the poll of the epoll descriptor) and a blocking
//!   `epoll_wait` one, which at moderate load, when the shard sleeps between most
//!   requests, cut its CPU per request by a quarter or more. The driver blocks only
//!   when nothing else can run: after a pass of the run queue in which no other task
//!   was polled (tasks are spawned with [`spawn`], which counts their polls), and with
//!   no glommio operation in flight ([`GlommioWait`]: a lookup on glommio's blocking
//!   threads). The block ends when an event comes, at the next [`sleep`]'s
//!   deadline or the next socket's read deadline, when another thread rings the
//!   shard's [`Alarm`] (the Kafka client's answers), or at the next visit of glommio's
//!   reactor (`REACTOR_EVERY`); the deadlines through a timerfd in the set
//!   ([`WakeTimer`]), not a timeout of the wait. Listeners are in the epoll set too.
//! - **Through glommio's reactor**, with one io_uring poll on the epoll descriptor
//!   itself, when the shard has been quiet for `PARK_AFTER` or waits on glommio I/O:
//!   an idle shard sleeps for as long as it has nothing to do and wakes for its next
//!   sleep or read deadline (one glommio timer, the driver's) and other I/O. A sleep
//!   or a read that starts meanwhile with an earlier deadline wakes the driver to park
//!   again.
//!
//! Sleeps and read deadlines are the driver's, not glommio timers, so that a blocked
//! thread is woken for them and so that starting one is cheap:
//! - **Sleeps** ([`sleep`]: the shard's tick, a Kafka linger, `http_client`'s timeout
//!   of each request) sit in one ordered set (`Poller::sleeps`). The driver fires the
//!   due ones each turn and waits no later than the next, to the timerfd's precision.
//!   A sleep dropped before it fires (a request that answered in time) leaves the set.
//! - **Read deadlines** sit in another ordered set (`Poller::timeouts`, an entry per
//!   socket at most) that the driver checks each turn. A socket's entry is left in
//!   place when its deadline moves later (the next request's wait); when the entry
//!   comes up, the driver moves it to the deadline then current, or drops it if the
//!   socket no longer waits. A waiting driver wakes for them on a coarse grid
//!   (`DEADLINE_TICK`). A glommio timer per socket, moved in glommio's timer map
//!   whenever a connection had been quiet for a sixteenth of its timeout, cost
//!   1,300-2,400 instructions per move; here a socket with a stream of requests
//!   touches the set once per timeout.
//!
//! Either way a busy shard goes through glommio's reactor at least every
//! `REACTOR_EVERY`, or every `REACTOR_EVERY_GLOMMIO` while an operation of glommio's is
//! in flight.
//!
//! glommio has no public way to poll an arbitrary descriptor, but a glommio
//! `TcpStream` arms a poll on its descriptor when it is created, and its read reports
//! that poll's completion (the `recv` that follows fails with `ENOTSOCK`). The driver
//! wraps a duplicate of the epoll descriptor in one for each wait (`readable`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::yield_now;
use futures_lite::AsyncReadExt;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 64;
/// Longest the driver keeps the shard from glommio's reactor while it collects events,
/// spins or blocks. Nothing on the request path needs the reactor: sleeps and read
/// deadlines are the driver's, wakes from other threads ring the [`Alarm`], and
/// glommio operations in flight shorten the period (`REACTOR_EVERY_GLOMMIO`). The
/// visit is a safety net, and a costly one: several io_uring calls during which the
/// requests that arrive wait. Traced at 84k req/s with a visit every 50 ms, the 0.2%
/// of requests answered within 100 us after one spent a median 60-74 us in the
/// server, against 18-23 us for the rest: enough to move the p99 by a microsecond
/// or two. At 5 ms the visits set the p99 (116 us against nginx's 81 at 50k req/s).
/// glommio's own preemption timer is longer (`PREEMPT_AFTER`): it forces no visits.
pub(crate) const REACTOR_EVERY: Duration = Duration::from_millis(500);
/// The same while an operation of glommio's is in flight ([`GlommioWait`]): its
/// completion is seen only in the reactor.
const REACTOR_EVERY_GLOMMIO: Duration = Duration::from_millis(5);
/// glommio's preemption timer for the shard's executor: when its run queue has not
/// emptied for this long (the driver is always queued while the shard is busy),
/// glommio polls its rings between two tasks. Each visit re-arms it, so it never
/// expires; at glommio's default, 100 ms, it would when visits are rarer.
pub(crate) const PREEMPT_AFTER: Duration = Duration::from_secs(1);
/// Longest the driver goes without collecting events while other tasks keep running.
const HARVEST_EVERY: Duration = Duration::from_micros(50);
/// Quiet time after which the driver waits through glommio's reactor rather than
/// blocking: an idle shard then sleeps without waking every `REACTOR_EVERY`.
const PARK_AFTER: Duration = Duration::from_millis(1);
/// Read deadlines are seen on a grid of this step (from the poller's creation): a
/// waiting driver wakes at the first tick at or after the next deadline, so the
/// deadlines that come up within one tick share one wake. Most that come up are not
/// expiries but entries to move on (see `Slot::queued`): waking for each, 1,000
/// connections each sending a request every 100 ms, under a 1 s timeout, set the wake
/// timer 1,000 times a second (20 without them) and took about a tenth more CPU per
/// request. A read times out late by this much at most, plus, when the shard is busy,
/// the time until the driver's next turn (or glommio's timer latency when parked).
const DEADLINE_TICK: Duration = Duration::from_millis(16);
/// Events after which no more bytes will come.
const HANGUP: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
/// The epoll token of the shard's [`Alarm`] (socket tokens have a slot index below it).
const ALARM: u64 = u64::MAX;
/// The epoll token of the shard's [`WakeTimer`].
const WAKE_TIMER: u64 = u64::MAX - 1;

thread_local! {
    static POLLER: RefCell<Option<Rc<Poller>>> = const { RefCell::new(None) };
    /// `runtime.spin_before_park` of this shard.
    static SPIN: Cell<Duration> = const { Cell::new(DEFAULT_SPIN) };
    /// Polls of this thread's tasks spawned with [`spawn`], so far.
    static POLLS: Cell<u64> = const { Cell::new(0) };
}

/// How long the driver keeps polling after the last event before the shard may sleep
/// (`runtime.spin_before_park`). Zero: a shard with nothing to run blocks in epoll at
/// once, as an nginx worker does. A spin picks up a request that arrives within it
/// without the block and wake-up (a single connection's round trips: 61-66k/s
/// against 29-33k on the benchmark VM), but keeps the core busy between requests,
/// which costs CPU and, on a VM, tail latency at moderate load.
pub const DEFAULT_SPIN: Duration = Duration::ZERO;

/// Sets this shard's spin (see `DEFAULT_SPIN`); zero lets it sleep as soon as it has
/// nothing to do.
pub fn set_spin(spin: Duration) {
    SPIN.set(spin);
}

/// Spawns a task on this shard. Its polls are counted: the driver blocks the thread
/// only after a pass of the run queue in which no counted task ran, so every task of
/// the shard must be spawned here (`clippy.toml` forbids `glommio::spawn_local`).
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> glommio::Task<T> {
    #[allow(clippy::disallowed_methods)]
    glommio::spawn_local(Counted(future))
}

/// A future whose polls are counted in `POLLS`.
pub struct Counted<F>(pub F);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLS.set(POLLS.get().wrapping_add(1));
        // SAFETY: the inner future is never moved out of the pinned wrapper.
        unsafe { self.map_unchecked_mut(|c| &mut c.0) }.poll(cx)
    }
}

/// Sleeps for `d` on this shard, like `glommio::timer::sleep`, but fired by the shard's
/// driver (see [`Sleeps`]): on time while the driver blocks in epoll, which glommio's
/// timers do not wake, and without a glommio timer (its map and allocation, about
/// 1,000 instructions, once per proxied request for `http_client`'s timeout).
pub async fn sleep(d: Duration) {
    // A deadline past what `Instant` holds (a timeout of centuries) never comes.
    let Some(at) = Instant::now().checked_add(d) else {
        return std::future::pending().await;
    };
    match Poller::get() {
        Ok(poller) => {
            Sleep {
                poller,
                at,
                state: SleepState::New,
            }
            .await
        }
        // No epoll set (out of descriptors): a glommio timer, which the reactor fires.
        Err(_) => {
            #[allow(clippy::disallowed_methods)]
            glommio::timer::Timer::new(d).await;
        }
    }
}

/// A [`sleep`] in its shard's [`Sleeps`].
struct Sleep {
    poller: Rc<Poller>,
    at: Instant,
    state: SleepState,
}

enum SleepState {
    /// Not polled yet: not in the set.
    New,
    /// In the set under this sequence number, until it fires.
    Queued(u64),
    Done,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match this.state {
            SleepState::New => {
                let seq = this.poller.add_sleep(this.at, cx.waker());
                this.state = SleepState::Queued(seq);
                Poll::Pending
            }
            SleepState::Queued(seq) => {
                // Still in the set: not fired yet.
                if let Some(w) = this
                    .poller
                    .sleeps
                    .borrow_mut()
                    .wakers
                    .get_mut(&(this.at, seq))
                {
                    w.clone_from(cx.waker());
                    return Poll::Pending;
                }
                this.state = SleepState::Done;
                Poll::Ready(())
            }
            SleepState::Done => Poll::Ready(()),
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let SleepState::Queued(seq) = self.state {
            // Gone already if it fired.
            self.poller
                .sleeps
                .borrow_mut()
                .wakers
                .remove(&(self.at, seq));
        }
    }
}

/// `f` on this thread's poller, if it has one (a shard's, not necessarily its
/// current executor's: harmless for what the callers do).
fn with_current<R>(f: impl FnOnce(&Rc<Poller>) -> R) -> Option<R> {
    POLLER.with(|p| p.borrow().as_ref().map(f))
}

/// Held while an operation of glommio's is in flight on this shard (a lookup on
/// glommio's blocking threads): its completion comes through glommio's reactor, which
/// a thread blocked in epoll does not see, so the driver sleeps through glommio
/// meanwhile.
struct GlommioWait(Rc<Poller>);

/// Starts a [`GlommioWait`]; `None` off a shard (no driver to tell).
fn glommio_wait() -> Option<GlommioWait> {
    with_current(|p| {
        p.glommio_waits.set(p.glommio_waits.get() + 1);
        GlommioWait(p.clone())
    })
}

/// Awaits `op`, an operation of glommio's (see [`GlommioWait`]).
pub async fn through_glommio<T>(op: impl Future<Output = T>) -> T {
    let _wait = glommio_wait();
    op.await
}

impl Drop for GlommioWait {
    fn drop(&mut self) {
        self.0.glommio_waits.set(self.0.glommio_waits.get() - 1);
    }
}

/// Wakes a shard whose driver may be blocked in `epoll_wait`, from another thread.
///
/// A task woken from another thread is queued in glommio, which only notices it in
/// its reactor: ringing after the wake makes the driver visit the reactor at once,
/// blocked or not. An eventfd in the epoll set is written only while the driver
/// blocks (a `SeqCst` handshake on `rung` and `blocked`: either the driver sees
/// `rung` before it blocks, or the ringer sees `blocked` and writes).
pub struct Alarm {
    fd: OwnedFd,
    rung: AtomicBool,
    blocked: AtomicBool,
}

impl Alarm {
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Alarm {
            // SAFETY: `fd` was just created and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            rung: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
        })
    }

    /// Call after waking a task of the alarm's shard from another thread.
    pub fn ring(&self) {
        self.rung.store(true, Ordering::SeqCst);
        if self.blocked.load(Ordering::SeqCst) {
            let one = 1u64;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd this alarm owns. A
            // full counter (EAGAIN) already wakes the driver.
            unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Whether the alarm rang since the last call (then the reactor should run).
    fn take(&self) -> bool {
        self.rung.load(Ordering::Relaxed) && self.rung.swap(false, Ordering::AcqRel)
    }

    /// Announces a block; false if the alarm rang meanwhile (do not block then).
    fn block(&self) -> bool {
        self.blocked.store(true, Ordering::SeqCst);
        if self.rung.load(Ordering::SeqCst) {
            self.blocked.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn unblock(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }

    /// Resets the eventfd after it woke the driver.
    fn clear(&self) {
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}

/// The alarm of the shard running on this thread, if any: take it on the shard, ring
/// it from the thread that wakes the shard's task.
pub fn alarm() -> Option<Arc<Alarm>> {
    with_current(|p| p.alarm.clone())
}

/// The deadline of the driver's block, as a timerfd in the epoll set.
///
/// A timeout on the `epoll_wait` itself arms and cancels a kernel timer on every call
/// that finds nothing ready. On the benchmark VM (Firecracker) that cost 2-3 us of the
/// shard's CPU per request at 50k req/s, the whole gap to nginx (13.6-14.1 us per
/// request against 10.5-11.6 with this timer; nginx 10.8-11.7). The block's deadline
/// (the next reactor visit, sleep or read-deadline tick) changes far more rarely than
/// the driver blocks, so the timer is set only when it changes, and the wait has no
/// timeout.
///
/// Two kernel rules make this sound: setting a timerfd resets its expiration count (an
/// event of an earlier setting still in the ready list is dropped, as no longer
/// readable), and each expiry queues a new edge-triggered event even if the count was
/// never read.
struct WakeTimer {
    /// `None` if it could not be created or added (a sandbox that refuses timerfds):
    /// the block then takes a timeout again.
    fd: Option<OwnedFd>,
    /// The deadline it is set to, if any (until its event comes or it is disarmed).
    armed: Cell<Option<Instant>>,
}

impl WakeTimer {
    fn new() -> Self {
        let flags = libc::TFD_NONBLOCK | libc::TFD_CLOEXEC;
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, flags) };
        WakeTimer {
            // SAFETY: `fd` was just created and is owned by nothing else.
            fd: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) }),
            armed: Cell::new(None),
        }
    }

    /// Makes the epoll set readable at `due`, unless it already will be then (most
    /// blocks: no syscall, no clock read). False if it cannot: the caller bounds its
    /// wait itself.
    fn arm(&self, due: Instant) -> bool {
        if self.armed.get() == Some(due) {
            return true;
        }
        // At least 1 ns: a zero value would disarm it.
        let after = due.saturating_duration_since(Instant::now());
        if !self.set(after.max(Duration::from_nanos(1))) {
            return false;
        }
        self.armed.set(Some(due));
        true
    }

    /// Keeps a set deadline from waking the shard, before the driver sleeps through
    /// glommio (`readable`), whose poll of the epoll set would wake on it. `dormant`
    /// needs none: nothing polls the set then, and the next harvest takes the event.
    fn disarm(&self) {
        if self.armed.take().is_some() {
            self.set(Duration::ZERO);
        }
    }

    /// Its event came: it is no longer set (an event always belongs to the latest
    /// setting, by the rules above).
    fn fired(&self) {
        self.armed.set(None);
    }

    fn set(&self, after: Duration) -> bool {
        let Some(fd) = &self.fd else {
            return false;
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; a null old value is allowed.
        let ok = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        ok == 0
    }
}

/// This shard's epoll set and the sockets in it.
pub struct Poller {
    epfd: OwnedFd,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    /// Sockets waiting for readiness (a waker in their slot).
    waiting: Cell<usize>,
    /// glommio operations in flight ([`GlommioWait`]).
    glommio_waits: Cell<usize>,
    driver: RefCell<Driver>,
    alarm: Arc<Alarm>,
    /// The shard's sleeps, fired by the driver (see [`sleep`]).
    sleeps: RefCell<Sleeps>,
    /// Read deadlines of the sockets, soonest first, with their epoll tokens: where
    /// [`Poller::expire`] next looks at each waiting socket, one entry per socket at
    /// most (see `Slot::queued`).
    timeouts: RefCell<ReadDeadlines>,
    /// While the driver is parked: when its glommio timer wakes it (the earlier of the
    /// next sleep and the grid tick of the earliest read deadline; `None`: no timer),
    /// and its waker, to wake it for an earlier one (see `park`).
    parked: RefCell<Option<(Option<Instant>, Waker)>>,
    /// Ends the driver's block at its deadline.
    timer: WakeTimer,
    /// The duplicate of `epfd` that `readable` waits on, kept while its poll is armed:
    /// a park that ends at its timer (an idle shard's tick) leaves it for the next
    /// park, which would otherwise pay a `dup`, a poll, its cancellation and a
    /// `close`. While the shard runs, the kept poll completes at most once.
    park_stream: Cell<Option<glommio::net::TcpStream>>,
    /// The glommio executor this poller's driver runs on.
    executor: usize,
}

/// The shard's read deadlines (`Poller::timeouts`): an ordered set of (deadline,
/// epoll token), and beside it the earliest deadline and when the driver must wake for
/// it, which the driver reads on every turn.
struct ReadDeadlines {
    set: BTreeSet<(Instant, u64)>,
    /// The earliest deadline in `set`, and its tick of the `DEADLINE_TICK` grid.
    first: Option<(Instant, Instant)>,
    /// The origin of the grid.
    epoch: Instant,
}

impl ReadDeadlines {
    fn new() -> Self {
        ReadDeadlines {
            set: BTreeSet::new(),
            first: None,
            epoch: Instant::now(),
        }
    }

    fn insert(&mut self, at: Instant, token: u64) {
        self.set.insert((at, token));
        if self.first.is_none_or(|(first, _)| at < first) {
            self.first = Some((at, self.on_grid(at)));
        }
    }

    fn remove(&mut self, at: Instant, token: u64) {
        self.set.remove(&(at, token));
        if self.first.is_some_and(|(first, _)| first == at) {
            self.first_changed();
        }
    }

    /// Whether the earliest entry is due by `now`.
    fn any_due(&self, now: Instant) -> bool {
        self.first.is_some_and(|(first, _)| first <= now)
    }

    /// Takes the earliest entry, if it is due by `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(Instant, u64)> {
        if !self.any_due(now) {
            return None;
        }
        let entry = self.set.pop_first();
        self.first_changed();
        entry
    }

    /// When a waiting driver must wake for them: the first tick of the grid at or
    /// after the earliest deadline.
    fn wake(&self) -> Option<Instant> {
        self.first.map(|(_, wake)| wake)
    }

    fn first_changed(&mut self) {
        self.first = self.set.first().map(|&(at, _)| (at, self.on_grid(at)));
    }

    /// The first tick of the `DEADLINE_TICK` grid at or after `at`.
    fn on_grid(&self, at: Instant) -> Instant {
        let tick = DEADLINE_TICK.as_nanos();
        let ticks = at
            .saturating_duration_since(self.epoch)
            .as_nanos()
            .div_ceil(tick);
        // Past 584 years (a timeout the config allows): the deadline itself.
        u64::try_from(ticks * tick)
            .ok()
            .and_then(|n| self.epoch.checked_add(Duration::from_nanos(n)))
            .unwrap_or(at)
    }
}

/// The shard's sleeps (`Poller::sleeps`): the waker of each sleep not yet fired, by
/// (deadline, sequence number), soonest first. The driver fires the due ones on each
/// turn (a fired sleep is one no longer in the map) and, when it waits, wakes at the
/// next one (to the timerfd's precision, however far ahead it is). A sleep that ends
/// early (a request's timeout, raced against the request) takes its entry out when it
/// is dropped.
#[derive(Default)]
struct Sleeps {
    wakers: BTreeMap<(Instant, u64), Waker>,
    /// The next sleep's sequence number (two sleeps may share a deadline).
    seq: u64,
}

impl Sleeps {
    /// The next deadline.
    fn next(&self) -> Option<Instant> {
        self.wakers.first_key_value().map(|(&(at, _), _)| at)
    }
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
    /// The deadline of the socket's wait, if it has one (as of its last `poll_ready`);
    /// meaningless once the wait ends (`waker` taken), which is all [`Poller::expire`]
    /// checks, so nothing clears it.
    due: Option<Instant>,
    /// When the socket's entry in `timeouts` comes up, if it has one. A wait whose
    /// deadline is later leaves it there: at that time [`Poller::expire`] moves it
    /// on to the deadline then current. So a socket with a stream of short waits
    /// touches the set once per timeout, not once per wait. An earlier deadline
    /// replaces it at once.
    queued: Option<Instant>,
    /// A deadline that passed while the socket waited: `poll_ready` with that
    /// deadline reports it.
    expired: Option<Instant>,
    /// A `send` found no room (or a connect is in progress): set until an `EPOLLOUT`
    /// (or error) event; `write_waker` waits for it.
    blocked: bool,
    write_waker: Option<Waker>,
}

enum Driver {
    /// No driver task yet (it runs as long as its executor: a new executor on the
    /// thread gets a new poller).
    Absent,
    /// Running or queued to run: it will collect events soon.
    Active,
    /// No socket waits and no sleep is queued; woken by the next socket that waits
    /// or sleep that starts.
    Dormant(Waker),
}

/// A socket's place in its shard's poller. Its owner closes the descriptor right
/// after dropping it: the close takes the socket out of the epoll set.
pub struct Registration {
    poller: Rc<Poller>,
    fd: i32,
    index: u32,
    /// Whether the epoll set also watches for room to write: from the first `send`
    /// that found none on (see [`Registration::blocked`]).
    watches_room: Cell<bool>,
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
            // SAFETY: `fd` was just created and is owned by nothing else.
            let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
            let alarm = Arc::new(Alarm::new()?);
            add(&epfd, alarm.fd.as_raw_fd(), ALARM, libc::EPOLLIN)?;
            let mut timer = WakeTimer::new();
            if let Some(fd) = &timer.fd {
                if add(&epfd, fd.as_raw_fd(), WAKE_TIMER, libc::EPOLLIN).is_err() {
                    timer.fd = None;
                }
            }
            let poller = Rc::new(Poller {
                epfd,
                slots: RefCell::new(Vec::new()),
                free: RefCell::new(Vec::new()),
                waiting: Cell::new(0),
                glommio_waits: Cell::new(0),
                driver: RefCell::new(Driver::Absent),
                alarm,
                sleeps: RefCell::new(Sleeps::default()),
                timeouts: RefCell::new(ReadDeadlines::new()),
                parked: RefCell::new(None),
                timer,
                park_stream: Cell::new(None),
                executor,
            });
            *p = Some(poller.clone());
            Ok(poller)
        })
    }

    /// Takes the events queued so far, or, with `until`, waits for one until then; marks
    /// their sockets ready and wakes those that wait. Returns how many socket events
    /// there were.
    fn harvest(&self, events: &mut [libc::epoll_event; EVENTS], until: Option<Instant>) -> usize {
        let timeout = match until {
            None => 0,
            Some(due) if self.timer.arm(due) => -1,
            // No timer: the wait's own timeout, to the millisecond, not early.
            Some(due) => {
                let left = due.saturating_duration_since(Instant::now());
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: `events` is valid for `EVENTS` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as i32,
                timeout,
            )
        };
        if n <= 0 {
            return 0;
        }
        let mut slots = self.slots.borrow_mut();
        let mut sockets = 0;
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == ALARM {
                // `rung` is set: the driver's next turn visits the reactor.
                self.alarm.clear();
                continue;
            }
            if token == WAKE_TIMER {
                // The deadline passed: the driver fires what is due (a sleep, a read
                // deadline, a reactor visit) on this turn or, if the turn read the
                // clock just before it, on the next.
                self.timer.fired();
                continue;
            }
            sockets += 1;
            let Some(slot) = slots.get_mut((token & 0xffff_ffff) as usize) else {
                continue;
            };
            // An event of a socket that left (its slot reused since) is dropped.
            if slot.generation != (token >> 32) as u32 {
                continue;
            }
            // Anything but room to write: bytes, the end of the stream, an error.
            if ev.events & !(libc::EPOLLOUT as u32) != 0 {
                slot.ready = true;
                slot.hangup |= ev.events & HANGUP != 0;
                if let Some(w) = self.take_waker(slot) {
                    w.wake();
                }
            }
            // Room again (or an error, which the next `send` reports). Watched only
            // once a `send` has found no room, and acted on only while blocked.
            if slot.blocked && ev.events & (libc::EPOLLOUT as u32 | HANGUP) != 0 {
                slot.blocked = false;
                if let Some(w) = self.take_write_waker(slot) {
                    w.wake();
                }
            }
        }
        sockets
    }

    /// When the driver must next let glommio's reactor run, after a visit at `visited`.
    fn reactor_due(&self, visited: Instant) -> Instant {
        visited
            + if self.glommio_waits.get() > 0 {
                REACTOR_EVERY_GLOMMIO
            } else {
                REACTOR_EVERY
            }
    }

    /// Queues a sleep until `at` for the task of `waker`; its sequence number. A parked
    /// driver that would wake later is woken, to park again until then.
    fn add_sleep(self: &Rc<Self>, at: Instant, waker: &Waker) -> u64 {
        let mut sleeps = self.sleeps.borrow_mut();
        let seq = sleeps.seq;
        sleeps.seq += 1;
        sleeps.wakers.insert((at, seq), waker.clone());
        drop(sleeps);
        self.wake_parked_before(at);
        self.need_driver();
        seq
    }

    /// Fires the sleeps due by `now`; whether any did.
    fn fire_sleeps(&self, now: Instant) -> bool {
        let mut sleeps = self.sleeps.borrow_mut();
        let mut fired = false;
        while let Some(entry) = sleeps.wakers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
            fired = true;
        }
        fired
    }

    /// Takes `slot`'s waker, if its socket waits, and counts it out of `waiting`.
    fn take_waker(&self, slot: &mut Slot) -> Option<Waker> {
        self.uncount(slot.waker.take())
    }

    /// The same for a write's wait.
    fn take_write_waker(&self, slot: &mut Slot) -> Option<Waker> {
        self.uncount(slot.write_waker.take())
    }

    fn uncount(&self, w: Option<Waker>) -> Option<Waker> {
        if w.is_some() {
            self.waiting.set(self.waiting.get() - 1);
        }
        w
    }

    /// Keeps `waker` in `w`, counting a new wait in `waiting`.
    fn keep_waker(&self, w: &mut Option<Waker>, waker: &Waker) {
        match w {
            Some(w) => w.clone_from(waker),
            None => {
                *w = Some(waker.clone());
                self.waiting.set(self.waiting.get() + 1);
            }
        }
    }

    /// Ends the waits of the sockets whose deadline is `now` or earlier (wakes them to
    /// report it), and moves the entries of those whose deadline moved on. Whether it
    /// woke any.
    fn expire(&self, now: Instant) -> bool {
        let mut timeouts = self.timeouts.borrow_mut();
        if !timeouts.any_due(now) {
            return false;
        }
        let mut slots = self.slots.borrow_mut();
        let mut woke = false;
        while let Some((at, token)) = timeouts.pop_due(now) {
            // Entries leave with their socket and are replaced, never left behind.
            let slot = &mut slots[(token & 0xffff_ffff) as usize];
            let live = slot.generation == (token >> 32) as u32 && slot.queued == Some(at);
            debug_assert!(live, "a read deadline left behind");
            if !live {
                continue;
            }
            slot.queued = None;
            // Not waiting now: its next wait queues it again.
            let Some(due) = slot.due.filter(|_| slot.waker.is_some()) else {
                continue;
            };
            if due <= now {
                slot.expired = Some(due);
                if let Some(w) = self.take_waker(slot) {
                    w.wake();
                    woke = true;
                }
            } else {
                timeouts.insert(due, token);
                slot.queued = Some(due);
            }
        }
        woke
    }

    /// When a waiting driver must wake: at the next sleep, or for the read deadlines
    /// at the first tick of the `DEADLINE_TICK` grid at or after the earliest (perhaps
    /// one that has moved on since: the driver then only moves its entry).
    fn next_wake(&self) -> Option<Instant> {
        let timeouts = self.timeouts.borrow().wake();
        match (self.sleeps.borrow().next(), timeouts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Wakes a parked driver that would wake after `at` (or not at all), to park again
    /// until then.
    fn wake_parked_before(&self, at: Instant) {
        let mut parked = self.parked.borrow_mut();
        if parked
            .as_ref()
            .is_some_and(|(wake, _)| wake.is_none_or(|w| at < w))
        {
            if let Some((_, w)) = parked.take() {
                w.wake();
            }
        }
    }

    /// Sets the read deadline of the socket in `slot` (epoll token `token`) to `due`,
    /// replacing its entry in `timeouts`. A parked driver that would wake later (or
    /// not at all) is woken, to park again with the new deadline.
    fn queue_timeout(&self, slot: &mut Slot, token: u64, due: Instant) {
        let mut timeouts = self.timeouts.borrow_mut();
        if let Some(q) = slot.queued.replace(due) {
            timeouts.remove(q, token);
        }
        timeouts.insert(due, token);
        let tick = timeouts.on_grid(due);
        drop(timeouts);
        self.wake_parked_before(tick);
    }

    /// Makes sure a driver runs for a socket that starts waiting or a sleep that starts.
    fn need_driver(self: &Rc<Self>) {
        let was = std::mem::replace(&mut *self.driver.borrow_mut(), Driver::Active);
        match was {
            Driver::Active => {}
            Driver::Dormant(w) => w.wake(),
            Driver::Absent => {
                // Not counted: the driver's own polls are not other tasks' work.
                #[allow(clippy::disallowed_methods)]
                glommio::spawn_local(drive(self.clone())).detach();
            }
        }
    }

    /// Sleeps through glommio's reactor until the epoll set has events, the next sleep
    /// or read deadline comes (`next_wake`), or glommio's I/O wakes the shard. Tasks
    /// still run while it is parked (glommio's I/O wakes them): a sleep or a read that
    /// starts then with an earlier deadline ends the park (`wake_parked_before`).
    async fn park(&self) -> io::Result<()> {
        let wake = self.next_wake();
        let deadline = async {
            if let Some(at) = wake {
                // The driver's own: a `sleep` is fired by the driver, which waits here.
                #[allow(clippy::disallowed_methods)]
                let timer =
                    glommio::timer::Timer::new(at.saturating_duration_since(Instant::now()));
                timer.await;
            } else {
                std::future::pending::<()>().await;
            }
            Ok(())
        };
        let mut registered = false;
        let earlier = std::future::poll_fn(|cx| {
            let mut parked = self.parked.borrow_mut();
            if registered && parked.is_none() {
                return Poll::Ready(Ok(()));
            }
            registered = true;
            *parked = Some((wake, cx.waker().clone()));
            Poll::Pending
        });
        let woke = futures_lite::future::or(self.readable(), deadline);
        let woke = futures_lite::future::or(woke, earlier).await;
        self.parked.borrow_mut().take();
        woke
    }

    /// Waits until the epoll set has events, through glommio's reactor (see the
    /// module docs). An error to create the wait is returned at once; the driver then
    /// retries on its next turn.
    async fn readable(&self) -> io::Result<()> {
        let stream = match self.park_stream.take() {
            Some(stream) => stream,
            None => {
                // SAFETY: duplicates a descriptor this poller owns; the result is checked.
                let fd = unsafe { libc::fcntl(self.epfd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: `fd` is a new descriptor owned by nothing else; the stream
                // closes it.
                unsafe { glommio::net::TcpStream::from_raw_fd(fd) }
            }
        };
        // A park that ends first (its timer, an earlier deadline) keeps the stream, whose
        // poll is still armed, for the next park (see `park_stream`).
        struct Keep<'p>(&'p Poller, Option<glommio::net::TcpStream>);
        impl Drop for Keep<'_> {
            fn drop(&mut self) {
                if let Some(stream) = self.1.take() {
                    self.0.park_stream.set(Some(stream));
                }
            }
        }
        let mut keep = Keep(self, Some(stream));
        if let Some(stream) = keep.1.as_mut() {
            // The poll armed at creation completes when the set is readable; the `recv`
            // that follows fails (`ENOTSOCK`), which is the signal.
            let _ = stream.read(&mut [0u8; 1]).await;
        }
        // Its poll is used up: the next park makes a new one.
        keep.1 = None;
        Ok(())
    }
}

/// A socket's epoll token: its slot's generation and index.
fn token(generation: u32, index: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(index)
}

/// Adds `fd` to the epoll set `epfd`, edge-triggered, under `token`, for `events` (and
/// for the end of the stream).
fn add(epfd: &OwnedFd, fd: i32, token: u64, events: i32) -> io::Result<()> {
    ctl(epfd, libc::EPOLL_CTL_ADD, fd, token, events)
}

/// The events a socket is watched for: bytes (and the end of the stream, errors), and
/// with `room`, room to write.
fn watched(room: bool) -> i32 {
    if room {
        libc::EPOLLIN | libc::EPOLLOUT
    } else {
        libc::EPOLLIN
    }
}

/// `epoll_ctl` `op` (add or modify) of `fd` in `epfd`, as [`add`] says.
fn ctl(epfd: &OwnedFd, op: i32, fd: i32, token: u64, events: i32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (events | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: token,
    };
    // SAFETY: `fd` is an open descriptor of the caller; `ev` is a valid event.
    if unsafe { libc::epoll_ctl(epfd.as_raw_fd(), op, fd, &mut ev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The driver: collects events while there are some, lets the woken tasks run between
/// turns, and waits when a turn finds nothing (see the module docs).
async fn drive(poller: Rc<Poller>) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let spin = SPIN.get();
    let mut last_event = Instant::now();
    let mut last_reactor = last_event;
    let mut last_harvest = last_event;
    // Other tasks' polls counted when the driver last yielded; `None` after a wait,
    // when tasks woken with the driver may be queued behind it.
    let mut polls: Option<u64> = None;
    loop {
        // Nothing ran in the last pass of the run queue but the driver.
        let idle = polls == Some(POLLS.get());
        let now = Instant::now();
        let waiting = poller.waiting.get() > 0;
        // Nothing to run, but events came in lately: poll again rather than sleep.
        let spinning = idle && waiting && now - last_event < spin;
        // Other tasks ran: they may run again before the queue is idle, and the wait
        // below collects what came meanwhile (one `epoll_wait` per idle moment, as in
        // nginx's loop). Unless tasks keep running: then take events every
        // `HARVEST_EVERY`. After a wait, at once: it may have ended on events.
        if polls.is_none() || spinning || (!idle && now - last_harvest >= HARVEST_EVERY) {
            last_harvest = now;
            if poller.harvest(&mut events, None) > 0 {
                last_event = now;
            }
        }
        // Sockets whose read deadline passed are woken to fail their read, and due
        // sleeps end: their tasks run before the shard waits.
        let expired = poller.expire(now) | poller.fire_sleeps(now);
        // Nothing to run and not spinning: the shard may wait.
        let quiet = idle && !spinning && !expired;
        let due = poller.reactor_due(last_reactor);
        if poller.alarm.take() || now >= due {
            visit_reactor().await;
        } else if quiet && !waiting && poller.sleeps.borrow().wakers.is_empty() {
            dormant(&poller).await;
        } else if quiet && (now - last_event >= PARK_AFTER || poller.glommio_waits.get() > 0) {
            // glommio's reactor keeps the time now; the block's deadline would only
            // wake the shard for nothing.
            poller.timer.disarm();
            if poller.park().await.is_err() {
                // Out of descriptors for the wait: let the reactor run (a glommio
                // timer needs none; a `sleep` would wait for this driver) instead of
                // retrying at once.
                #[allow(clippy::disallowed_methods)]
                glommio::timer::Timer::new(Duration::from_millis(1)).await;
            }
        } else {
            if quiet && poller.alarm.block() {
                let until = poller.next_wake().map_or(due, |t| t.min(due));
                let sockets = poller.harvest(&mut events, Some(until));
                // The wait collected everything up to its end, not its start: dated
                // before it, a long wait made the next turn take events again at once
                // (an `epoll_wait(.., 0)` per request at low rates).
                last_harvest = Instant::now();
                if sockets > 0 {
                    last_event = last_harvest;
                }
                poller.alarm.unblock();
            }
            // Let the tasks run (those the wait woke too), then count them next turn.
            polls = Some(POLLS.get());
            yield_now().await;
            continue;
        }
        polls = None;
        // The reactor ran during the wait: on a parked or dormant shard only the reactor
        // wakes tasks, and so the driver.
        last_reactor = now;
    }
}

/// Lets glommio's reactor run once, without sleeping: a timer that comes due a moment
/// after it is set is fired by the reactor's next loop, which runs as soon as the run
/// queue is empty (or the executor's preemption timer expires).
async fn visit_reactor() {
    let mut pending = false;
    let mut after = Duration::from_micros(1);
    #[allow(clippy::disallowed_methods)]
    let mut timer = glommio::timer::Timer::new(after);
    std::future::poll_fn(|cx| {
        if Pin::new(&mut timer).poll(cx).is_pending() {
            pending = true;
            return Poll::Pending;
        }
        if pending {
            return Poll::Ready(());
        }
        // Due before its first poll, so the reactor has not run: once more, with a
        // longer delay (a slow clock read must not make this loop for ever).
        after *= 2;
        #[allow(clippy::disallowed_methods)]
        let again = glommio::timer::Timer::new(after);
        timer = again;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Sleeps until a socket starts waiting or a sleep starts (`need_driver`).
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
        Self::register(fd, false)
    }

    /// Adds a socket whose non-blocking connect is in progress: it starts
    /// [`blocked`](Registration::blocked), watched for room from the start (the
    /// connect's end is its first `EPOLLOUT`), in one `epoll_ctl`.
    pub fn connecting(fd: i32) -> io::Result<Self> {
        Self::register(fd, true)
    }

    fn register(fd: i32, connecting: bool) -> io::Result<Self> {
        let poller = Poller::get()?;
        let index = poller.free.borrow_mut().pop();
        let mut slots = poller.slots.borrow_mut();
        let index = index.unwrap_or_else(|| {
            slots.push(Slot::default());
            (slots.len() - 1) as u32
        });
        // Its generation moved on when its last socket left (`drop`).
        let slot = &mut slots[index as usize];
        // The first read waits for the first event, which `EPOLL_CTL_ADD` queues at once
        // if bytes are already there. So a burst of new connections is accepted, and
        // their tasks allocated, before any of them allocates request buffers: the
        // buffers that idle connections free later then lie in long runs that
        // `malloc_trim` can give back (10,000 idle connections: +34 MiB RSS; reading at
        // once interleaved them with the tasks, +77 MiB).
        slot.ready = false;
        slot.hangup = false;
        slot.blocked = connecting;
        // Its last socket's entry in `timeouts` left with it (`cancel_wait`).
        slot.expired = None;
        let generation = slot.generation;
        drop(slots);
        if let Err(e) = add(
            &poller.epfd,
            fd,
            token(generation, index),
            watched(connecting),
        ) {
            poller.free.borrow_mut().push(index);
            return Err(e);
        }
        Ok(Registration {
            poller,
            fd,
            index,
            watches_room: Cell::new(connecting),
        })
    }

    /// Whether the socket may have bytes to read (see `Slot::ready`).
    pub fn ready(&self) -> bool {
        self.poller.slots.borrow()[self.index as usize].ready
    }

    /// Records that a `send` found no room: writes wait in
    /// [`Registration::poll_writable`] until the socket's next `EPOLLOUT`.
    /// The first time, the epoll set starts watching for it: watched from the start,
    /// every new socket's first event would be one (a wasted driver turn per
    /// connection), while the kernel sends the edge only after a `send` found no room.
    pub fn blocked(&self) -> io::Result<()> {
        if !self.watches_room.get() {
            let token = self.token(&self.poller.slots.borrow()[self.index as usize]);
            let (epfd, fd) = (&self.poller.epfd, self.fd);
            ctl(epfd, libc::EPOLL_CTL_MOD, fd, token, watched(true))?;
            self.watches_room.set(true);
        }
        self.poller.slots.borrow_mut()[self.index as usize].blocked = true;
        Ok(())
    }

    /// `Ready` unless the socket is [`blocked`](Registration::blocked); otherwise
    /// `Pending`, with `waker` woken when there is room again (or an error). One
    /// write waiter per socket: a socket is written from one task.
    pub fn poll_writable(&self, waker: &Waker) -> Poll<()> {
        let mut slots = self.poller.slots.borrow_mut();
        let slot = &mut slots[self.index as usize];
        if !slot.blocked {
            return Poll::Ready(());
        }
        self.poller.keep_waker(&mut slot.write_waker, waker);
        drop(slots);
        self.poller.need_driver();
        Poll::Pending
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

    /// Waits for the socket's next event, until `due` if given: `Ready(Ok)` if one came
    /// since `drained`, `Ready(Err(TimedOut))` once `due` has passed, otherwise
    /// `Pending` with `waker` woken at the event or the deadline. The deadline costs
    /// no clock read here, and no new entry if an earlier wait left one that comes
    /// up no later (see `Slot::queued`).
    pub fn poll_ready(&self, waker: &Waker, due: Option<Instant>) -> Poll<io::Result<()>> {
        let mut slots = self.poller.slots.borrow_mut();
        let slot = &mut slots[self.index as usize];
        if slot.ready {
            self.poller.take_waker(slot);
            return Poll::Ready(Ok(()));
        }
        if due.is_some() && slot.expired == due {
            slot.expired = None;
            let e = io::Error::new(io::ErrorKind::TimedOut, "read timed out");
            return Poll::Ready(Err(e));
        }
        slot.expired = None;
        self.poller.keep_waker(&mut slot.waker, waker);
        slot.due = due;
        if let Some(due) = due.filter(|&d| slot.queued.is_none_or(|q| q > d)) {
            let token = self.token(slot);
            self.poller.queue_timeout(slot, token, due);
        }
        drop(slots);
        self.poller.need_driver();
        Poll::Pending
    }

    /// Stops waiting, and takes the socket's entry out of `timeouts` (it leaves).
    fn cancel_wait(&self) {
        let slot = &mut self.poller.slots.borrow_mut()[self.index as usize];
        if let Some(q) = slot.queued.take() {
            let token = self.token(slot);
            self.poller.timeouts.borrow_mut().remove(q, token);
        }
        self.poller.take_waker(slot);
        self.poller.take_write_waker(slot);
    }

    /// The socket's epoll token.
    fn token(&self, slot: &Slot) -> u64 {
        token(slot.generation, self.index)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancel_wait();
        // No `EPOLL_CTL_DEL`: closing the socket, which follows, takes it out of the
        // set (nothing else holds it open: no glommio I/O runs on these sockets). An
        // event that comes before that no longer matches the slot's generation.
        let mut slots = self.poller.slots.borrow_mut();
        let slot = &mut slots[self.index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        drop(slots);
        self.poller.free.borrow_mut().push(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn eventfd_count(a: &Alarm) -> u64 {
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd.
        unsafe { libc::read(a.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        n
    }

    #[test]
    fn an_alarm_rung_before_the_block_stops_it() {
        let a = Alarm::new().unwrap();
        a.ring();
        assert!(!a.block(), "the driver must not block after a ring");
        // Not blocked at the ring: nothing written, the flag says it.
        assert_eq!(eventfd_count(&a), 0);
        assert!(a.take());
        assert!(!a.take());
    }

    /// A new epoll set.
    fn epoll_set() -> OwnedFd {
        // SAFETY: plain syscall; checked below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        // SAFETY: `ep` was just created.
        unsafe { OwnedFd::from_raw_fd(ep) }
    }

    /// Waits up to `ms` for one event of `ep`; its token, if one came.
    fn wait_one(ep: &OwnedFd, ms: i32) -> Option<u64> {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 1];
        // SAFETY: `ev` is valid for one entry.
        let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), ev.as_mut_ptr(), 1, ms) };
        (n == 1).then_some(ev[0].u64)
    }

    #[test]
    fn an_alarm_rung_during_the_block_wakes_epoll() {
        let a = Arc::new(Alarm::new().unwrap());
        let ep = epoll_set();
        add(&ep, a.fd.as_raw_fd(), ALARM, libc::EPOLLIN).unwrap();
        assert!(a.block());
        let ringer = a.clone();
        std::thread::spawn(move || ringer.ring()).join().unwrap();
        // A 5 s bound keeps a broken alarm from hanging the test.
        let token = wait_one(&ep, 5000);
        a.unblock();
        assert_eq!(token, Some(ALARM));
        assert_eq!(eventfd_count(&a), 1);
        assert!(a.take(), "the driver must visit the reactor after the wake");
    }

    #[test]
    fn the_wake_timer_ends_a_block_at_its_deadline_and_not_once_disarmed() {
        let t = WakeTimer::new();
        let ep = epoll_set();
        add(
            &ep,
            t.fd.as_ref().unwrap().as_raw_fd(),
            WAKE_TIMER,
            libc::EPOLLIN,
        )
        .unwrap();
        let ms = Duration::from_millis;
        let start = Instant::now();
        assert!(t.arm(start + ms(20)));
        assert_eq!(wait_one(&ep, 5000), Some(WAKE_TIMER));
        let took = start.elapsed();
        assert!(took >= ms(20), "{took:?}");
        t.fired();
        assert_eq!(t.armed.get(), None);

        // Its count was never read: set again, it still ends the next block.
        assert!(t.arm(Instant::now() + ms(5)));
        assert_eq!(wait_one(&ep, 5000), Some(WAKE_TIMER));
        t.fired();

        // Set again and disarmed before its deadline: the block is not ended.
        assert!(t.arm(Instant::now() + ms(20)));
        t.disarm();
        assert_eq!(wait_one(&ep, 100), None);

        // Expired but not yet harvested, then set for later: no stale event.
        assert!(t.arm(Instant::now() + ms(1)));
        std::thread::sleep(ms(10));
        assert!(t.arm(Instant::now() + Duration::from_secs(60)));
        assert_eq!(wait_one(&ep, 50), None);
    }

    #[test]
    fn without_a_timerfd_the_block_takes_a_timeout() {
        let t = WakeTimer {
            fd: None,
            armed: Cell::new(None),
        };
        assert!(!t.arm(Instant::now() + Duration::from_millis(5)));
        assert_eq!(t.armed.get(), None);
    }

    #[test]
    fn sleeps_end_on_time_and_leave_nothing_behind() {
        glommio::LocalExecutorBuilder::default()
            .io_memory(256 * 1024)
            .spawn(|| async {
                use futures_lite::future::{or, poll_once};
                let poller = Poller::get().unwrap();
                let ms = Duration::from_millis;
                let entries = || poller.sleeps.borrow().wakers.len();
                // The reactor's period, shorter while glommio has an operation in flight.
                let t0 = Instant::now();
                assert_eq!(poller.reactor_due(t0), t0 + REACTOR_EVERY);
                let wait = glommio_wait();
                assert_eq!(poller.reactor_due(t0), t0 + REACTOR_EVERY_GLOMMIO);
                drop(wait);

                // A far sleep (a request's timeout) and a near one: both queued, and the
                // driver wakes for the near one.
                let mut far = Box::pin(sleep(Duration::from_secs(3600)));
                assert!(poll_once(&mut far).await.is_none());
                let start = Instant::now();
                let mut near = Box::pin(sleep(ms(5)));
                assert!(poll_once(&mut near).await.is_none());
                assert_eq!(entries(), 2);
                let next = poller.next_wake().unwrap();
                assert!(next >= start + ms(5) && next < start + ms(1000), "{next:?}");
                near.await;
                assert!(start.elapsed() >= ms(5));
                assert_eq!(entries(), 1);
                // Dropped before it fires (its request answered): its entry leaves.
                drop(far);
                assert_eq!(entries(), 0);
                assert_eq!(poller.next_wake(), None);

                // The driver parked (quiet, a far sleep pending) while this task waits
                // on glommio: a sleep started then ends on time, not at the parked
                // driver's wake-up an hour later.
                let mut far = Box::pin(sleep(Duration::from_secs(3600)));
                assert!(poll_once(&mut far).await.is_none());
                #[allow(clippy::disallowed_methods)]
                glommio::timer::Timer::new(ms(20)).await;
                assert!(
                    poller.parked.borrow().is_some(),
                    "the driver should be parked"
                );
                let start = Instant::now();
                #[allow(clippy::disallowed_methods)]
                let bound = async {
                    glommio::timer::Timer::new(Duration::from_secs(10)).await;
                    false
                };
                let on_time = or(
                    async {
                        sleep(ms(10)).await;
                        true
                    },
                    bound,
                )
                .await;
                assert!(on_time, "the parked driver was not woken for the new sleep");
                assert!(start.elapsed() >= ms(10));
                drop(far);
                assert_eq!(entries(), 0);

                // A deadline past what `Instant` holds never comes, and queues nothing.
                assert!(poll_once(sleep(Duration::MAX)).await.is_none());
                assert_eq!(entries(), 0);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Counts its wakes.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_stream_of_later_deadlines_keeps_one_entry_and_the_last_one_times_out() {
        glommio::LocalExecutorBuilder::default()
            .io_memory(256 * 1024)
            .spawn(|| async {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let mut client =
                    std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (server, _) = listener.accept().unwrap();
                let reg = Registration::new(server.as_raw_fd()).unwrap();
                let poller = reg.poller.clone();
                let wakes = Arc::new(Wakes(Default::default()));
                let waker = Waker::from(wakes.clone());
                let ms = |n| Instant::now() + Duration::from_millis(n);
                let (t1, t2) = (ms(50_000), ms(80_000));
                let entries = || poller.timeouts.borrow().set.len();

                assert!(reg.poll_ready(&waker, Some(t1)).is_pending());
                assert_eq!(entries(), 1);
                // The next request's wait, with a later deadline: the entry stays.
                assert!(reg.poll_ready(&waker, Some(t2)).is_pending());
                assert_eq!(entries(), 1);
                // The driver wakes for it at the next tick of the grid.
                let wake = poller.timeouts.borrow().wake().unwrap();
                assert!(wake >= t1 && wake < t1 + DEADLINE_TICK, "{wake:?} {t1:?}");
                // Past the first deadline, but not the current one: moved on, no wake.
                assert!(!poller.expire(t1));
                assert_eq!(entries(), 1);
                assert!(poller.timeouts.borrow().wake().unwrap() >= t2);
                assert!(reg.poll_ready(&waker, Some(t2)).is_pending());
                assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
                // Past the current one: woken, and the wait reports it once.
                assert!(poller.expire(t2));
                assert_eq!((entries(), wakes.0.load(Ordering::SeqCst)), (0, 1));
                let e = match reg.poll_ready(&waker, Some(t2)) {
                    Poll::Ready(Err(e)) => e,
                    other => panic!("not timed out: {other:?}"),
                };
                assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                // A new wait with a new deadline waits again; an earlier deadline than
                // the queued entry's replaces it.
                assert!(reg
                    .poll_ready(&waker, Some(t2 + Duration::from_secs(1)))
                    .is_pending());
                assert!(reg.poll_ready(&waker, Some(t1)).is_pending());
                assert_eq!(entries(), 1);
                assert!(poller.timeouts.borrow().wake().unwrap() < t2);
                // An event ends the wait before its deadline: the entry is dropped when
                // it comes up, without a wake.
                client.write_all(b"x").unwrap();
                let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
                let got = (0..100).any(|_| poller.harvest(&mut events, Some(ms(50))) > 0);
                assert!(got, "no event for the socket");
                assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
                assert!(reg.poll_ready(&waker, Some(t1)).is_ready());
                assert!(!poller.expire(t2 + Duration::from_secs(1)));
                assert_eq!(entries(), 0);
                // A socket that leaves takes its entry with it.
                let mut buf = [0u8; 8];
                assert_eq!((&server).read(&mut buf).unwrap(), 1);
                reg.drained();
                assert!(reg.poll_ready(&waker, Some(t2)).is_pending());
                assert_eq!(entries(), 1);
                drop(reg);
                assert_eq!(entries(), 0);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn deadlines_round_up_to_the_grid_even_centuries_ahead() {
        let d = ReadDeadlines::new();
        let ms = Duration::from_millis;
        assert_eq!(d.on_grid(d.epoch + DEADLINE_TICK), d.epoch + DEADLINE_TICK);
        assert_eq!(d.on_grid(d.epoch + ms(17)), d.epoch + 2 * DEADLINE_TICK);
        // Beyond what nanoseconds in a u64 count (a timeout the config accepts): no
        // wrap into the past, which would make the driver spin.
        let far = d.epoch + Duration::from_secs(600 * 365 * 24 * 3600);
        assert!(d.on_grid(far) >= far);
    }

    #[test]
    fn spawned_tasks_count_their_polls() {
        let polls = glommio::LocalExecutorBuilder::default()
            .io_memory(256 * 1024)
            .spawn(|| async {
                let before = POLLS.get();
                spawn(async {
                    for _ in 0..3 {
                        yield_now().await;
                    }
                })
                .await;
                POLLS.get() - before
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(polls, 4);
    }
}
