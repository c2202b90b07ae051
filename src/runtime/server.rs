//! A listener on one shard and the connections it accepts: reading, framing (via
//! `http`), routing to service endpoints or the input's pipeline, and writing responses.
//!
//! A connection is one task. It parses every complete request already buffered before
//! it writes, so pipelined requests are answered in order with one write per batch. A
//! WebSocket upgrade hands the connection to `websocket` for the rest of its life.

mod websocket;

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};

use crate::components::inputs::http_server::{admission_response, Admission, Request};
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::{parse_head, Framing as BodyFraming, Head, HeaderSpan, Span};
use crate::http::response::{self, Framing};
use crate::http::websocket::{check_handshake, has_token, write_accept, Refusal};
use crate::http::{Limits, RequestError};
use crate::message::utf8;
use crate::pipeline::Pipeline;

use super::poller::{self, Registration};
use super::shard::{ClosingSlot, Shard};
use super::socket::Socket;

/// The Content-Type of the service endpoints' JSON answers.
const JSON: (&[u8], &[u8]) = (b"Content-Type", b"application/json");

/// Service endpoints on the shared `http.address` server.
pub struct Service {
    pub root_path: String,
    /// The shard's pipeline, whose outputs `/ready` asks about.
    pub pipeline: Rc<Pipeline>,
}

/// The listener's next connection and its peer's address: `accept4` while it has
/// some, then a wait for its next event in the shard's poller, like a socket's read (an
/// io_uring accept would complete unseen while the poller's driver blocks in epoll).
/// The address comes with the accept, not from a `getpeername` per connection.
async fn accept(
    listener: &TcpListener,
    reg: &Registration,
) -> io::Result<(TcpStream, Option<SocketAddr>)> {
    loop {
        if reg.ready() {
            // SAFETY: `accept4` writes at most `len` bytes of the address storage and
            // sets `len`, as `try_init` requires; the listener's descriptor is open.
            let accepted = unsafe {
                socket2::SockAddr::try_init(|addr, len| {
                    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
                    match libc::accept4(listener.as_raw_fd(), addr.cast(), len, flags) {
                        fd if fd >= 0 => Ok(fd),
                        _ => Err(io::Error::last_os_error()),
                    }
                })
            };
            match accepted {
                // SAFETY: `fd` is a new connected socket owned by nothing else.
                Ok((fd, peer)) => {
                    return Ok((unsafe { TcpStream::from_raw_fd(fd) }, peer.as_socket()))
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => reg.drained(),
                    // The peer gave up before we took it, or a signal: take the next one.
                    Some(libc::ECONNABORTED | libc::EINTR) => continue,
                    _ => return Err(e),
                },
            }
        }
        std::future::poll_fn(|cx| reg.poll_ready(cx.waker(), None)).await?;
    }
}

/// What one listener serves.
pub struct Routes {
    pub service: Option<Service>,
    pub input: Option<Rc<Pipeline>>,
    pub limits: Limits,
}

/// Accepts until the shard starts closing; each connection is its own task.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener, routes: Rc<Routes>) {
    // Declared after `listener`, so dropped first (the listener's close then takes it
    // out of the epoll set).
    let reg = match Registration::new(listener.as_raw_fd()) {
        Ok(r) => r,
        Err(e) => return crate::error!("cannot watch the listener", "error" => e),
    };
    let slot = shard.closing.slot();
    loop {
        let accepted = future::or(async { Some(accept(&listener, &reg).await) }, async {
            slot.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            // The task is the connection's own future and nothing else: its size is
            // what every idle connection costs.
            Some(Ok((stream, peer))) => match Socket::wrap(stream) {
                Ok(stream) => {
                    let conn = Connection::new(shard.clone(), routes.clone(), stream, peer);
                    poller::spawn(conn.run()).detach();
                }
                Err(e) => crate::warn!("connection dropped", "error" => e),
            },
            Some(Err(e)) => {
                crate::warn!("accept failed", "error" => e);
                // EMFILE and friends: back off instead of spinning.
                poller::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Dropping the listener closes this shard's socket; the kernel stops routing to it.
}

/// The read buffer: bytes in `buf[start..end]` are received and not yet consumed.
struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A read buffer's size when it is allocated: enough for a typical request; it doubles
/// when a request needs more. A connection allocates it when its first bytes arrive
/// and frees it once idle for `TRIM_IDLE_AFTER`: an idle keep-alive connection then
/// holds none.
const INITIAL_READ_BYTES: usize = 1024;
/// Read buffers that grew past this for a large body shrink back after it.
const KEEP_READ_BYTES: usize = 256 * 1024;
/// A connection idle this long gives back what its last request made it allocate (the
/// request arena, the write buffer, the read buffer): an idle keep-alive connection
/// then costs a few KiB, while a busy one never reallocates.
const TRIM_IDLE_AFTER: Duration = Duration::from_secs(1);

impl ReadBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Makes room for at least one more read, keeping unconsumed bytes.
    fn reserve(&mut self) {
        if self.end < self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        } else {
            let new_len = (self.buf.len() * 2).max(INITIAL_READ_BYTES);
            self.buf.resize(new_len, 0);
        }
    }

    fn shrink(&mut self) {
        self.shrink_above(KEEP_READ_BYTES);
    }

    /// Frees the buffer if it holds nothing, else shrinks it back to the initial size
    /// if what it holds fits there.
    fn release(&mut self) {
        if self.start == self.end {
            *self = ReadBuf::empty();
        } else {
            self.shrink_above(INITIAL_READ_BYTES);
        }
    }

    /// No buffer: `reserve` allocates one.
    fn empty() -> Self {
        ReadBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Back to the initial size if it grew past `limit` and what it holds fits.
    fn shrink_above(&mut self, limit: usize) {
        if self.buf.len() > limit && self.end - self.start < INITIAL_READ_BYTES {
            let rest = self.data().to_vec();
            self.buf = vec![0; INITIAL_READ_BYTES];
            self.buf[..rest.len()].copy_from_slice(&rest);
            self.start = 0;
            self.end = rest.len();
        }
    }
}

enum Read {
    Data,
    Eof,
    TimedOut,
    Closing,
    Failed,
}

struct Connection {
    shard: Rc<Shard>,
    routes: Rc<Routes>,
    stream: Socket,
    remote_ip: String,
    rbuf: ReadBuf,
    wbuf: Vec<u8>,
    headers: Vec<HeaderSpan>,
    /// Decoded chunked bodies land here before they are copied to the arena.
    chunked_body: Vec<u8>,
}

/// What to do after a request has been answered.
enum Next {
    Continue,
    Close,
}

impl Connection {
    fn new(shard: Rc<Shard>, routes: Rc<Routes>, stream: Socket, peer: Option<SocketAddr>) -> Self {
        Connection {
            shard,
            routes,
            stream,
            remote_ip: peer.map_or_else(String::new, |p| p.ip().to_string()),
            // Allocated when the first bytes arrive: a burst of accepted connections
            // then lays out its tasks side by side, apart from the buffers that idle
            // connections free (docs/benchmarks.md, "Memory").
            rbuf: ReadBuf::empty(),
            // Grows on first use and keeps its size; idle connections hold none.
            wbuf: Vec::new(),
            headers: Vec::new(),
            chunked_body: Vec::new(),
        }
    }

    async fn run(mut self) {
        let shard = self.shard.clone();
        let slot = shard.closing.slot();
        // Allocates its first chunk on the first request, not at accept.
        let mut arena = Bump::new();
        let mut head_started: Option<Instant> = None;
        let routes = self.routes.clone();
        let limits = &routes.limits;
        loop {
            match parse_head(self.rbuf.data(), limits, &mut self.headers) {
                Err(e) => return self.fail(e).await,
                Ok(Some(head)) => {
                    head_started = None;
                    // Boxed in the request arena: a request's future is most of what a
                    // connection's task would hold while it waits for the next one.
                    let request = bumpalo::boxed::Box::pin_in(self.request(head, &arena), &arena);
                    match request.await {
                        Ok(Next::Continue) => {}
                        Ok(Next::Close) => return self.close().await,
                        Err(()) => return,
                    }
                    arena.reset();
                    self.rbuf.shrink();
                }
                Ok(None) => {
                    // Everything buffered is answered: send it in one write.
                    if self.flush().await.is_err() {
                        return;
                    }
                    let idle = self.rbuf.data().is_empty();
                    if idle && shard.closing.is_closed() {
                        return self.drain_on_close().await;
                    }
                    let timeout = if idle {
                        limits.idle_timeout
                    } else {
                        let started = *head_started.get_or_insert_with(Instant::now);
                        match limits.header_read_timeout.checked_sub(started.elapsed()) {
                            Some(left) if !left.is_zero() => left,
                            _ => return self.fail(RequestError::HeadTimeout).await,
                        }
                    };
                    let read = if idle {
                        self.read_idle(timeout, &slot, || arena = Bump::new()).await
                    } else {
                        self.read(timeout).await
                    };
                    match read {
                        // A head that is still partial starts its clock at the next
                        // turn (microseconds later), so a whole one reads no clock.
                        Read::Data => {}
                        Read::TimedOut if !idle => {
                            return self.fail(RequestError::HeadTimeout).await
                        }
                        Read::Closing => return self.drain_on_close().await,
                        Read::Eof | Read::TimedOut | Read::Failed => return,
                    }
                }
            }
        }
    }

    /// Waits up to `timeout` for the next request (or message) of an idle connection,
    /// unless the shard starts closing. Idle past `TRIM_IDLE_AFTER`, the connection
    /// frees its buffers and `release` frees the caller's (its arena).
    async fn read_idle(
        &mut self,
        timeout: Duration,
        slot: &ClosingSlot<'_>,
        release: impl FnOnce(),
    ) -> Read {
        let trim_after = TRIM_IDLE_AFTER.min(timeout);
        let read = self.read_or_close(trim_after, slot).await;
        if !matches!(read, Read::TimedOut) || trim_after == timeout {
            return read;
        }
        release();
        self.trim();
        self.read_or_close(timeout - trim_after, slot).await
    }

    /// Reads once, unless the shard starts closing first.
    async fn read_or_close(&mut self, timeout: Duration, slot: &ClosingSlot<'_>) -> Read {
        future::or(self.read(timeout), async {
            slot.wait().await;
            Read::Closing
        })
        .await
    }

    /// Frees the buffers an idle connection does not need until its next request.
    fn trim(&mut self) {
        self.rbuf.release();
        self.wbuf = Vec::new();
        self.headers = Vec::new();
        self.chunked_body = Vec::new();
        self.shard.released.set(true);
    }

    /// Reads once into the buffer; without one, waits for bytes before allocating it.
    async fn read(&mut self, timeout: Duration) -> Read {
        self.stream.set_read_timeout(Some(timeout));
        let got = async {
            if self.rbuf.buf.is_empty() {
                self.stream.readable().await?;
            }
            self.rbuf.reserve();
            let end = self.rbuf.end;
            self.stream.read(&mut self.rbuf.buf[end..]).await
        };
        match got.await {
            Ok(0) => Read::Eof,
            Ok(n) => {
                self.rbuf.end += n;
                Read::Data
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => Read::TimedOut,
            Err(_) => Read::Failed,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Answers a request that cannot be served and closes: after a protocol error the
    /// framing of whatever follows cannot be trusted (RFC 9112 §11.2). It borrows the
    /// connection, as `drain_on_close` does: a future that took it would hold a second
    /// copy in every connection's task.
    async fn fail(&mut self, e: RequestError) {
        self.write_last(e.status(), e.body());
        self.close().await;
    }

    /// Appends a plain-text answer that ends the connection (`Connection: close`).
    fn write_last(&mut self, status: u16, text: &str) {
        let date = self.shard.date.get();
        let f = Framing {
            minor: 1,
            close: true,
            head_only: false,
            date: &date,
        };
        response::write_text(&mut self.wbuf, status, text, f);
    }

    /// Sends what is buffered and closes the sending side.
    async fn close(&mut self) {
        let _ = self.flush().await;
        self.stream.shutdown_write();
    }

    /// Closing with nothing pending: answer a request that already arrived with 503.
    async fn drain_on_close(&mut self) {
        let _ = self.read(Duration::from_millis(1)).await;
        if !self.rbuf.data().is_empty() {
            self.write_last(503, "Server closing\n");
        }
        self.close().await;
    }

    /// Reads the body of `head`, runs it, and appends the response. `Err` means the
    /// peer is gone and the connection should just be dropped.
    async fn request(&mut self, head: Head, arena: &Bump) -> Result<Next, ()> {
        let date = self.shard.date.get();
        // One copy of the head into the arena; every field is a slice of it. httparse
        // checked method, target and names (tokens and URI characters: ASCII).
        let raw: &[u8] = arena.alloc_slice_copy(&self.rbuf.data()[..head.len]);
        let text = |span: Span| utf8(span.of(raw)).unwrap_or("");
        let (method, target) = (text(head.method), text(head.target));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = BVec::with_capacity_in(self.headers.len(), arena);
        headers.extend(self.headers.iter().map(|&(n, v)| (text(n), v.of(raw))));
        let closing = self.shard.closing.is_closed();
        let mut f = Framing {
            minor: head.minor,
            close: !head.keep_alive || closing,
            head_only: head.is_head,
            date: &date,
        };

        // Route from the head alone, so a refused request is answered before its body.
        let route = self.route(arena, method, path);
        // While the shard drains it takes no new work, but its service endpoints still
        // answer (and close): `/ready` says why it is not ready, `/metrics` can be read.
        let refuse_closing = closing && !matches!(route, Route::Service(_));
        if refuse_closing || (head.expect_continue && matches!(route, Route::Refused(_))) {
            // Answer without asking for the body (RFC 9110 §10.1.1), then close: the
            // body may still be on its way and we will not read it.
            f.close = true;
            let (status, text) = match &route {
                _ if refuse_closing => (503, "Server closing\n"),
                Route::Refused(a) => admission_response(a),
                _ => unreachable!("only refused routes get here"),
            };
            response::write_text(&mut self.wbuf, status, text, f);
            return Ok(Next::Close);
        }

        if let Route::Upgrade(pipeline) = &route {
            let has_body = head.framing != BodyFraming::None;
            let key = match check_handshake(method, head.minor, has_body, headers.iter().copied()) {
                Ok(key) => key,
                Err(refusal) => {
                    // A body we will not read leaves the framing unknown: close.
                    f.close |= has_body;
                    self.refuse_upgrade(refusal, f);
                    if !has_body {
                        self.rbuf.consume(head.len);
                    }
                    return Ok(if f.close { Next::Close } else { Next::Continue });
                }
            };
            write_accept(&mut self.wbuf, key);
            self.rbuf.consume(head.len);
            let req = Request {
                method,
                path,
                query,
                headers: headers.into_bump_slice(),
                body: b"",
                remote_ip: arena.alloc_str(&self.remote_ip),
            };
            // Boxed: the session's future stays out of every HTTP connection's own.
            let meta = pipeline.input.ws_meta(arena, &req);
            Box::pin(self.websocket(pipeline, &meta)).await;
            return Err(());
        }

        let body = match self.read_body(&head).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err(()),
            Err(e) => {
                f.close = true;
                response::write_text(&mut self.wbuf, e.status(), e.body(), f);
                return Ok(Next::Close);
            }
        };
        let body_bytes: &[u8] = if body.chunked {
            arena.alloc_slice_copy(&self.chunked_body)
        } else {
            arena.alloc_slice_copy(&self.rbuf.data()[head.len..body.end])
        };
        self.rbuf.consume(body.end);

        match route {
            Route::Refused(a) => {
                let (status, text) = admission_response(&a);
                response::write_text(&mut self.wbuf, status, text, f);
            }
            Route::Service(endpoint) => self.service(endpoint, f),
            Route::Upgrade(_) => unreachable!("upgrades are answered before the body"),
            Route::Input(pipeline) => {
                let req = Request {
                    method,
                    path,
                    query,
                    headers: headers.into_bump_slice(),
                    body: body_bytes,
                    remote_ip: arena.alloc_str(&self.remote_ip),
                };
                // Boxed in the request arena: the pipeline's future is large, and keeping
                // it out of the connection's own future keeps idle connections small.
                let handling = pipeline.handle(&self.shard.txns, arena, &req, &mut self.wbuf, f);
                bumpalo::boxed::Box::pin_in(handling, arena).await;
            }
        }
        Ok(if f.close { Next::Close } else { Next::Continue })
    }

    /// Waits until the whole body of `head` is buffered (decoding chunked bodies into
    /// `chunked_body`). `Ok(None)`: the peer went away.
    async fn read_body(&mut self, head: &Head) -> Result<Option<Body>, RequestError> {
        let limits = self.routes.limits.clone();
        let mut asked_continue = false;
        let mut decoder = ChunkedDecoder::default();
        let mut decoded_to = head.len;
        self.chunked_body.clear();
        loop {
            match head.framing {
                BodyFraming::None => {
                    return Ok(Some(Body {
                        end: head.len,
                        chunked: false,
                    }))
                }
                BodyFraming::Length(n) => {
                    // n <= max_body_bytes was checked with the head, so this fits.
                    let end = head.len + n as usize;
                    if self.rbuf.data().len() >= end {
                        return Ok(Some(Body {
                            end,
                            chunked: false,
                        }));
                    }
                }
                BodyFraming::Chunked => {
                    let input = &self.rbuf.data()[decoded_to..];
                    decoded_to += decoder.decode(input, &mut self.chunked_body, &limits)?;
                    if decoder.is_done() {
                        return Ok(Some(Body {
                            end: decoded_to,
                            chunked: true,
                        }));
                    }
                }
            }
            if head.expect_continue && !asked_continue {
                asked_continue = true;
                self.wbuf.extend_from_slice(response::CONTINUE);
                if self.flush().await.is_err() {
                    return Ok(None);
                }
            }
            match self.read(limits.header_read_timeout).await {
                Read::Data => {}
                Read::TimedOut => return Err(RequestError::HeadTimeout),
                Read::Eof | Read::Failed | Read::Closing => return Ok(None),
            }
        }
    }

    fn route(&self, arena: &Bump, method: &str, path: &str) -> Route {
        if let Some(service) = &self.routes.service {
            let local = path
                .strip_prefix(service.root_path.as_str())
                .filter(|p| p.starts_with('/'))
                .unwrap_or(path);
            let endpoint = match local {
                "/ping" => Some(Endpoint::Ping),
                "/ready" => Some(Endpoint::Ready),
                "/version" => Some(Endpoint::Version),
                "/metrics" | "/stats" => Some(Endpoint::Metrics),
                _ => None,
            };
            if let Some(e) = endpoint {
                return Route::Service(e);
            }
        }
        match &self.routes.input {
            Some(p) => match p.input.admit(arena, method, path, || self.asks_upgrade()) {
                Admission::Accept => Route::Input(p.clone()),
                Admission::WebSocket => Route::Upgrade(p.clone()),
                other => Route::Refused(other),
            },
            None => Route::Refused(Admission::NotFound),
        }
    }

    /// Whether the parsed head asks to upgrade to a WebSocket (`Upgrade: websocket`).
    fn asks_upgrade(&self) -> bool {
        let raw = self.rbuf.data();
        self.headers.iter().any(|(n, v)| {
            n.of(raw).eq_ignore_ascii_case(b"upgrade") && has_token(v.of(raw), b"websocket")
        })
    }

    fn refuse_upgrade(&mut self, refusal: Refusal, f: Framing<'_>) {
        let headers: [(&[u8], &[u8]); 2] = [
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Sec-WebSocket-Version", b"13"),
        ];
        let n = if refusal == Refusal::Version { 2 } else { 1 };
        let body = refusal.body().as_bytes();
        response::write(
            &mut self.wbuf,
            refusal.status(),
            headers[..n].iter().copied(),
            body,
            f,
        );
    }

    fn service(&mut self, e: Endpoint, f: Framing<'_>) {
        match e {
            Endpoint::Ping => response::write_text(&mut self.wbuf, 200, "pong", f),
            Endpoint::Ready => {
                // Upstream's 503s: the shard drains, or an output cannot deliver yet (a
                // Kafka output that has not reached its brokers), so balancers hold
                // traffic back.
                let unready: Option<&[u8]> = if self.shard.closing.is_closed() {
                    Some(br#"{"error":"shutting down"}"#)
                } else if self
                    .routes
                    .service
                    .as_ref()
                    .is_some_and(|s| !s.pipeline.connected())
                {
                    Some(br#"{"error":"output not connected"}"#)
                } else {
                    None
                };
                match unready {
                    Some(body) => response::write(&mut self.wbuf, 503, [JSON], body, f),
                    None => response::write_text(&mut self.wbuf, 200, "OK\n", f),
                }
            }
            Endpoint::Version => {
                let body = format!(
                    "{{\"version\":\"{}\",\"built\":\"sluice\"}}",
                    env!("CARGO_PKG_VERSION")
                );
                response::write(&mut self.wbuf, 200, [JSON], body.as_bytes(), f)
            }
            Endpoint::Metrics => {
                let body = self.shard.metrics.render();
                let h: [(&[u8], &[u8]); 1] =
                    [(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")];
                response::write(&mut self.wbuf, 200, h, body.as_bytes(), f)
            }
        }
    }
}

/// Where a request goes, decided from its head.
enum Route {
    Service(Endpoint),
    Input(Rc<Pipeline>),
    /// A WebSocket handshake on the input's `ws_path`.
    Upgrade(Rc<Pipeline>),
    Refused(Admission),
}

enum Endpoint {
    Ping,
    Ready,
    Version,
    Metrics,
}

/// A fully buffered body: it ends at `end` (relative to the unconsumed data).
struct Body {
    end: usize,
    /// The decoded bytes are in `chunked_body`, not at `head.len..end`.
    chunked: bool,
}
