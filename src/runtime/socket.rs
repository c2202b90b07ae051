//! `Socket`: a TCP stream of this shard, read and written the way an epoll server does.
//!
//! Reads are plain non-blocking `recv` calls. When one finds nothing, the socket waits
//! for its shard's `Poller` (edge-triggered epoll, see `poller.rs`) instead of a glommio
//! io_uring poll, which interrupted the shard's core whenever it completed while the
//! shard was busy. A `recv` that comes back short has drained the socket, so the next
//! read waits for the next event without trying `recv` first (as nginx does): one
//! `recv` per request. Writes are plain non-blocking `send` calls; one that finds no
//! room waits for the poller's `EPOLLOUT` edge. Connecting is non-blocking too. So
//! glommio does no I/O on a socket: no io_uring poll armed per connection (a glommio
//! stream arms one when it is created), no completion to reap, and a waiting write
//! does not keep the driver out of its blocking wait.
//!
//! A read's timeout (`set_read_timeout`) starts when the read first has to wait. The
//! deadline is kept by the poller, next to the socket's readiness, in one set of the
//! shard's read deadlines that its driver wakes for. A wait costs one clock read and,
//! most of the time, nothing in that set: see `Registration::poll_ready`.

use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};

use super::poller::Registration;

/// A TCP stream of this shard; see the module docs for how it reads and writes.
pub struct Socket {
    /// Dropped first: the descriptor closes after it (which leaves the epoll set).
    reg: Registration,
    stream: TcpStream,
    read_timeout: Option<Duration>,
    /// The current read's deadline, from its first wait.
    due: Option<Instant>,
}

impl Socket {
    /// Adds a connected stream with Nagle off to the shard's poller (requests and
    /// answers are small and must leave at once): one accepted from a listener with
    /// `TCP_NODELAY`, which Linux copies to it (no `setsockopt` per connection).
    pub fn wrap(stream: TcpStream) -> io::Result<Self> {
        let reg = Registration::new(stream.as_raw_fd())?;
        Ok(Self::with(reg, stream))
    }

    /// A socket of `stream`, registered as `reg`.
    fn with(reg: Registration, stream: TcpStream) -> Self {
        Socket {
            reg,
            stream,
            read_timeout: None,
            due: None,
        }
    }

    /// Connects to `addr` without blocking the shard: the connect's end is the
    /// socket's first room to write. Unbounded here; callers race it with their timeout.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        use socket2::{Domain, Protocol, Type};
        let socket = socket2::Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        socket.set_nodelay(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        // Registered only now: a socket that has not started connecting reads as hung
        // up to epoll.
        let stream: TcpStream = socket.into();
        let s = Self::with(Registration::connecting(stream.as_raw_fd())?, stream);
        std::future::poll_fn(|cx| s.reg.poll_writable(cx.waker())).await;
        match s.stream.take_error()? {
            Some(e) => Err(e),
            None => Ok(s),
        }
    }

    /// Bounds the wait of the next reads: a read that waits longer fails with
    /// `ErrorKind::TimedOut`. Starts a new deadline even if a read was abandoned
    /// while waiting; without a call, a read started after an abandoned one keeps
    /// that one's deadline (the server calls this before every read).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
        self.due = None;
    }

    /// Sends the end of the stream (after what was written).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Waits until a read may find bytes (or the end of the stream), under the read
    /// timeout, without reading: a caller can then allocate its buffer only when there
    /// is something to put in it. The wait counts toward the next read's deadline.
    pub async fn readable(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            if self.reg.ready() {
                return Poll::Ready(Ok(()));
            }
            self.poll_wait(cx)
        })
        .await
    }

    /// One step of waiting for the next event: `Ready(Ok)` when the socket may have
    /// become readable, `Ready(Err(TimedOut))` past the read's deadline.
    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let due = (self.read_timeout)
            .map(|timeout| *self.due.get_or_insert_with(|| Instant::now() + timeout));
        let waited = std::task::ready!(self.reg.poll_ready(cx.waker(), due));
        if waited.is_err() {
            self.due = None;
        }
        Poll::Ready(waited)
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
        loop {
            if this.reg.ready() {
                match this.recv_now(buf) {
                    Some(read) => {
                        if matches!(read, Ok(n) if n < buf.len()) {
                            this.reg.short_read();
                        }
                        this.due = None;
                        return Poll::Ready(read);
                    }
                    None => this.reg.drained(),
                }
            }
            if let Err(e) = std::task::ready!(this.poll_wait(cx)) {
                return Poll::Ready(Err(e));
            }
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            std::task::ready!(this.reg.poll_writable(cx.waker()));
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes, and the fd is the
            // open socket `self.stream` owns. No SIGPIPE: a closed peer is an error.
            let n = unsafe {
                libc::send(
                    this.stream.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                return Poll::Ready(Ok(n as usize));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                ErrorKind::Interrupted => {}
                ErrorKind::WouldBlock => {
                    if let Err(e) = this.reg.blocked() {
                        return Poll::Ready(Err(e));
                    }
                }
                _ => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shutdown_write();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use std::io::Write;
    use std::time::Instant;

    /// Runs `f` on a glommio executor with a std listener to `connect` to.
    fn with_listener(f: impl AsyncFnOnce(std::net::TcpListener) + Send + 'static) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move { f(listener).await })
            .unwrap()
            .join()
            .unwrap();
    }

    /// A socket connected to `listener`, and its std peer.
    async fn connect(listener: &std::net::TcpListener) -> (Socket, std::net::TcpStream) {
        let socket = Socket::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        (socket, peer)
    }

    /// Runs `f` on a glommio executor with a socket connected to a std peer.
    fn with_pair(f: impl AsyncFnOnce(Socket, std::net::TcpStream) + Send + 'static) {
        with_listener(async move |listener| {
            let (socket, peer) = connect(&listener).await;
            f(socket, peer).await;
        });
    }

    /// A read that its caller gives up after `ms` milliseconds (`None` then).
    async fn read_within(s: &mut Socket, buf: &mut [u8], ms: u64) -> Option<io::Result<usize>> {
        let read = async { Some(s.read(buf).await) };
        let give_up = async {
            crate::runtime::poller::sleep(Duration::from_millis(ms)).await;
            None
        };
        futures_lite::future::or(read, give_up).await
    }

    #[test]
    fn bytes_then_close_read_as_bytes_then_end() {
        with_pair(async |mut s, mut peer| {
            // A read that waits for an event that never comes fails instead of hanging.
            s.set_read_timeout(Some(Duration::from_secs(2)));
            peer.write_all(b"hello").unwrap();
            drop(peer);
            let mut buf = [0u8; 64];
            let mut got = Vec::new();
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"hello");
        });
    }

    #[test]
    fn a_short_read_then_waits_for_more() {
        with_pair(async |mut s, mut peer| {
            s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 64];
            peer.write_all(b"one").unwrap();
            assert_eq!(s.read(&mut buf).await.unwrap(), 3);
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                peer.write_all(b"two").unwrap();
                peer
            });
            assert_eq!(s.read(&mut buf).await.unwrap(), 3);
            assert_eq!(&buf[..3], b"two");
            s.write_all(b"ok").await.unwrap();
            let mut peer = writer.join().unwrap();
            let mut back = [0u8; 2];
            std::io::Read::read_exact(&mut peer, &mut back).unwrap();
            assert_eq!(&back, b"ok");
        });
    }

    #[test]
    fn readable_waits_for_bytes_without_taking_them() {
        with_pair(async |mut s, mut peer| {
            // Nothing sent: the wait ends at the read timeout.
            s.set_read_timeout(Some(Duration::from_millis(100)));
            let e = s.readable().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            // Bytes sent later end the wait, and are all still there to read.
            s.set_read_timeout(Some(Duration::from_secs(2)));
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                peer.write_all(b"abc").unwrap();
                peer
            });
            s.readable().await.unwrap();
            s.readable().await.unwrap(); // still readable: nothing was taken
            let mut buf = [0u8; 8];
            assert_eq!(s.read(&mut buf).await.unwrap(), 3);
            assert_eq!(&buf[..3], b"abc");
            drop(writer.join().unwrap());
            // The end of the stream makes it readable too.
            s.readable().await.unwrap();
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        });
    }

    #[test]
    fn a_silent_peer_times_the_read_out_and_a_new_timeout_restarts_the_clock() {
        with_pair(async |mut s, _peer| {
            let mut buf = [0u8; 8];
            s.set_read_timeout(Some(Duration::from_millis(100)));
            let started = Instant::now();
            let e = s.read(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(2));

            // A read abandoned while waiting leaves no stale deadline behind.
            // (Its 200 ms stays ahead of the 10 ms give-up even if the thread stalls,
            // and would end the 300 ms read below early if it were left behind.)
            s.set_read_timeout(Some(Duration::from_millis(200)));
            assert!(read_within(&mut s, &mut buf, 10).await.is_none());
            s.set_read_timeout(Some(Duration::from_millis(300)));
            let started = Instant::now();
            assert!(s.read(&mut buf).await.is_err());
            assert!(started.elapsed() >= Duration::from_millis(300));
        });
    }

    #[test]
    fn a_read_started_while_the_driver_sleeps_still_times_out_on_time() {
        with_listener(async |listener| {
            let (mut a, _peer_a) = connect(&listener).await;
            let (mut b, _peer_b) = connect(&listener).await;
            // A read without a deadline (as the listener's): the driver does not go
            // dormant, it parks through glommio, with no read deadline to wake for.
            let forever = crate::runtime::poller::spawn(async move {
                let _ = a.read(&mut [0u8; 4]).await;
            });
            // A glommio timer, not a `sleep` (which the driver fires): glommio wakes
            // this task while the driver stays parked. The driver parks once its first
            // block has ended, at the latest after one reactor period (`REACTOR_EVERY`):
            // 200 ms more leaves it time to.
            let parked = crate::runtime::poller::REACTOR_EVERY + Duration::from_millis(200);
            #[allow(clippy::disallowed_methods)]
            glommio::timer::Timer::new(parked).await;
            b.set_read_timeout(Some(Duration::from_millis(100)));
            let started = Instant::now();
            let read = read_within(&mut b, &mut [0u8; 4], 3000).await;
            let took = started.elapsed();
            let e = read
                .expect("the read timed out only at the give-up")
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
            assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(1));
            drop(forever);
        });
    }

    #[test]
    fn a_second_executor_on_the_same_thread_gets_its_own_driver() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for round in 0..2u8 {
                let listener = listener.try_clone().unwrap();
                glommio::LocalExecutor::default().run(async move {
                    let mut s = Socket::connect(addr).await.unwrap();
                    let (mut peer, _) = listener.accept().unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4];
                    // Wait first (the driver parks), then get a byte.
                    assert!(read_within(&mut s, &mut buf, 20).await.is_none());
                    peer.write_all(&[round]).unwrap();
                    assert_eq!(s.read(&mut buf).await.unwrap(), 1, "round {round}");
                    assert_eq!(buf[0], round);
                });
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_write_larger_than_the_buffers_waits_for_room_and_arrives_whole() {
        with_pair(async |mut s, mut peer| {
            // Far more than the socket buffers hold: the sends find no room until the
            // peer, which starts reading only later, makes some.
            let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
            let reader = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut peer, &mut got).unwrap();
                got
            });
            // Its own task, so that only the socket's wake-up can finish it.
            let write = crate::runtime::poller::spawn(async move {
                s.write_all(&data).await.unwrap();
                s.shutdown_write();
                data
            });
            let give_up = async {
                crate::runtime::poller::sleep(Duration::from_secs(10)).await;
                None
            };
            let written = futures_lite::future::or(async { Some(write.await) }, give_up).await;
            let data = written.expect("the write never found room again");
            let got = reader.join().unwrap();
            assert!(
                got == data,
                "{} of {} bytes, or out of order",
                got.len(),
                data.len()
            );
        });
    }

    #[test]
    fn a_refused_connect_is_an_error() {
        with_listener(async |_| {
            // Bound but not listening: the port is refused, and no other test can
            // take it meanwhile.
            let bound =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            bound
                .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
                .unwrap();
            let addr = bound.local_addr().unwrap().as_socket().unwrap();
            let e = Socket::connect(addr)
                .await
                .err()
                .expect("connected to nothing");
            assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
        });
    }

    #[test]
    fn many_waiting_sockets_each_get_their_own_bytes() {
        with_listener(async |listener| {
            let mut peers = Vec::new();
            let mut tasks = Vec::new();
            for i in 0..50u8 {
                let (mut s, peer) = connect(&listener).await;
                peers.push(peer);
                s.set_read_timeout(Some(Duration::from_secs(2)));
                tasks.push(crate::runtime::poller::spawn(async move {
                    let mut buf = [0u8; 4];
                    assert_eq!(s.read(&mut buf).await.unwrap(), 1);
                    assert_eq!(buf[0], i);
                }));
            }
            crate::runtime::poller::sleep(Duration::from_millis(20)).await;
            for (i, p) in peers.iter_mut().enumerate().rev() {
                p.write_all(&[i as u8]).unwrap();
            }
            for t in tasks {
                t.await;
            }
        });
    }
}
