//! `Socket`: a glommio TCP stream whose reads do not leave io_uring polls armed.
//!
//! glommio's own `TcpStream` read, after every read that returns data, arms an io_uring
//! poll for the *next* bytes ("early poll"). That poll then completes whenever the peer
//! sends again, usually while the shard is busy with other connections, and glommio
//! 0.9 sets up its rings without `IORING_SETUP_COOP_TASKRUN`: every such completion
//! interrupts the shard's core (a reschedule IPI, several microseconds on a VM). With
//! requests that wait on Kafka or an upstream this was about one interrupt per request.
//!
//! `Socket` reads the way an epoll server does: bytes already received are taken with
//! a plain non-blocking `recv`; when there are none, the task first yields once, so the
//! shard finishes its other ready work (by then the peer has often answered), and only
//! then waits through glommio, with a one-byte read that fills its buffer and so arms
//! no early poll. Writes, timeouts and everything else are glommio's.
//!
//! A socket whose last wait saw no other socket of its shard receive anything (one
//! client, or light load) reads the plain glommio way instead: the shard is asleep
//! when such a peer answers, so the early poll cannot interrupt it, and that path makes
//! three fewer `recv` calls per round trip (about 7 us with one connection on the
//! benchmark VM). Its next wait that does see other sockets receive switches it back.
//!
//! A new socket starts on the plain path, so its first read allocates glommio's poll
//! source for the next bytes in place of the one glommio armed at accept. Arming it
//! later, when the connection first waits after its answer, put that long-lived
//! allocation between the request buffers that an idle connection frees after 1 s:
//! `malloc_trim` then found single free pages instead of long runs, and 10,000 idle
//! connections kept +75 MiB resident instead of +35 MiB (`bench/memory.sh`).

use std::cell::Cell;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

thread_local! {
    /// Reads that returned bytes, over every socket of this thread (shard).
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// A TCP stream of this shard; see the module docs for how it reads.
pub struct Socket {
    stream: TcpStream,
    wait: Wait,
    /// Other sockets of the shard received bytes during this one's last wait.
    busy_shard: bool,
    /// `READS` when the current (or last) wait began.
    reads_at_wait: u64,
}

/// Where a read that found no bytes is.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Not waiting: the next read starts with a `recv`.
    No,
    /// Yielded once; the next poll tries `recv` again, then waits through glommio.
    Yielded,
    /// In a glommio read, of one byte or (`Glommio(true)`) of the whole buffer: only
    /// glommio may finish it (it owns the read timeout's timer, which it cancels when
    /// the read completes).
    Glommio(bool),
}

impl Socket {
    /// Wraps a connected stream and turns Nagle off (requests and answers are small and
    /// must leave at once).
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Socket {
            stream,
            wait: Wait::No,
            // The first read goes through glommio (see the module docs on memory).
            busy_shard: false,
            reads_at_wait: 0,
        }
    }

    /// Bounds the wait of every read from now on (glommio's read timeout: a read that
    /// waits longer fails with `ErrorKind::TimedOut`).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        let _ = self.stream.set_read_timeout(timeout);
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }

    pub async fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write).await;
    }

    /// One non-blocking `recv`; `None` when nothing has arrived.
    fn recv_now(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and the fd is the
            // open socket `self.stream` owns.
            let n = unsafe {
                libc::recv(
                    self.stream.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                return Some(Ok(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                ErrorKind::Interrupted => continue,
                ErrorKind::WouldBlock => return None,
                _ => return Some(Err(e)),
            }
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let whole = match this.wait {
            Wait::Glommio(whole) => whole,
            Wait::No if !this.busy_shard => {
                this.reads_at_wait = READS.get();
                true
            }
            _ => {
                if let Some(read) = this.recv_now(buf) {
                    this.wait = Wait::No;
                    return Poll::Ready(counted(read));
                }
                if this.wait == Wait::No {
                    this.wait = Wait::Yielded;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.reads_at_wait = READS.get();
                false
            }
        };
        this.wait = Wait::Glommio(whole);
        let want = if whole { buf.len() } else { 1 };
        let Poll::Ready(read) = Pin::new(&mut this.stream).poll_read(cx, &mut buf[..want]) else {
            return Poll::Pending;
        };
        this.wait = Wait::No;
        this.busy_shard = READS.get() != this.reads_at_wait;
        let read = match read {
            // The rest of what arrived with that byte, if any.
            Ok(1) if !whole && buf.len() > 1 => match this.recv_now(&mut buf[1..]) {
                Some(Ok(n)) => Ok(1 + n),
                _ => Ok(1),
            },
            other => other,
        };
        Poll::Ready(counted(read))
    }
}

/// Notes a read that returned bytes (see `READS`).
fn counted(read: io::Result<usize>) -> io::Result<usize> {
    if matches!(read, Ok(n) if n > 0) {
        READS.set(READS.get().wrapping_add(1));
    }
    read
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}
