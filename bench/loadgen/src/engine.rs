//! One thread's event loop: its connections, the closed- or open-loop schedule, reading
//! and parsing answers, and recording latencies. Once the connections are up nothing
//! here allocates: buffers and queues are reused for every request.
//!
//! Closed loop: every connection keeps `pipeline` requests in flight, written in one
//! write, and sends the next batch when the last answer of the previous one arrives;
//! latency runs from the write. Open loop: request k is due at a fixed time on the
//! thread's schedule; a due request goes out on the next idle connection (up to
//! `pipeline` of them in one write) and otherwise waits in the queue, and its latency
//! runs from when it was due, so waiting for a connection counts (no coordinated
//! omission).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::epoll::{self, Epoll};
use crate::http::{self, ResponseParser};
use crate::rxstamp;
use crate::stats::{self, Tally};
use crate::ws::{self, FrameParser};

/// First size of a connection's read buffer; it doubles when one answer head needs it.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Pause before reconnecting after a failed connect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);
/// How often in-flight requests are checked against `--timeout`.
const TIMEOUT_SCAN: Duration = Duration::from_millis(100);
/// Longest a connect (and a WebSocket handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What every connection sends, and to where.
pub enum Protocol {
    /// One request's bytes, written as they are; HEAD answers carry no body.
    Http { request: Vec<u8>, head: bool },
    /// The handshake's `Host`, path and extra headers, and each message's payload.
    Ws {
        host: String,
        path: String,
        headers: Vec<(String, String)>,
        payload: Vec<u8>,
    },
}

/// The whole run's settings, shared read-only by the threads.
pub struct Plan {
    pub addr: SocketAddr,
    pub protocol: Protocol,
    pub pipeline: usize,
    /// Open loop: requests per second for the whole run (split evenly over threads).
    pub rate: Option<f64>,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    /// How long to poll for events before sleeping (open loop: also how close to the
    /// next due time).
    pub spin: Duration,
}

/// Why a connection is being closed.
enum Fail {
    Read,
    Write,
    /// The server closed; an error only if requests were in flight.
    Closed,
}

struct Conn {
    stream: Option<TcpStream>,
    /// Unparsed input is `rbuf[rstart..rend]`.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// The batch being written is `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Per request in flight, oldest first: when its latency started (ns on the
    /// thread's clock): the write (closed loop) or its due time (open loop).
    inflight: VecDeque<u64>,
    /// When the current batch was written, for `--timeout`.
    written_at: u64,
    http: ResponseParser,
    ws: FrameParser,
    /// xorshift state for WebSocket masking keys.
    mask_state: u64,
    /// Open loop: queued in `Worker::idle` (at most once).
    queued_idle: bool,
    /// While down: when to try connecting again.
    retry_at: u64,
}

impl Conn {
    fn new(pipeline: usize) -> Conn {
        let mut seed = [0u8; 8];
        ws::random(&mut seed);
        Conn {
            stream: None,
            rbuf: vec![0; READ_BUFFER_BYTES],
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            inflight: VecDeque::with_capacity(pipeline),
            written_at: 0,
            http: ResponseParser::default(),
            ws: FrameParser::default(),
            mask_state: u64::from_ne_bytes(seed) | 1,
            queued_idle: false,
            retry_at: 0,
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.mask_state = x;
        (x as u32).to_ne_bytes()
    }
}

struct Worker<'a> {
    plan: &'a Plan,
    epoll: Epoll,
    conns: Vec<Conn>,
    /// Connections that are down, waiting for `retry_at`.
    down: Vec<usize>,
    /// Open loop: connections with nothing in flight, longest idle first.
    idle: VecDeque<usize>,
    clock: Instant,
    /// The measured window, ns on `clock`.
    window_start: u64,
    window_end: u64,
    /// Open loop: request k is due at `first_due + k * interval` ns.
    first_due: f64,
    interval: f64,
    /// Open loop: the next request to send.
    next: u64,
    tally: Tally,
}

/// Runs one thread's share of the load: `connections` connections; `index` staggers
/// its open-loop schedule against the other threads'. `ready` is called once the
/// connections are up; the clock starts when it returns.
pub fn run(
    plan: &Plan,
    index: usize,
    connections: usize,
    ready: impl FnOnce(),
) -> io::Result<Tally> {
    // Sleeping to the next due time must not overshoot by the default 50 µs slack.
    // SAFETY: plain prctl on the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let epoll = match Epoll::new() {
        Ok(e) => e,
        Err(e) => {
            ready(); // the other threads wait for this one
            return Err(e);
        }
    };
    let mut w = Worker {
        plan,
        epoll,
        conns: (0..connections).map(|_| Conn::new(plan.pipeline)).collect(),
        down: Vec::with_capacity(connections),
        idle: VecDeque::with_capacity(connections),
        clock: Instant::now(),
        window_start: 0,
        window_end: 0,
        first_due: 0.0,
        interval: 0.0,
        next: 0,
        tally: Tally::new(),
    };
    for i in 0..connections {
        w.connect(i, 0);
    }
    ready();
    w.clock = Instant::now();
    w.window_start = plan.warmup.as_nanos() as u64;
    w.window_end = w.window_start + plan.duration.as_nanos() as u64;
    if let Some(rate) = plan.rate {
        w.interval = 1e9 * plan.threads as f64 / rate;
        w.first_due = w.interval * index as f64 / plan.threads as f64;
    }
    for i in 0..connections {
        if w.conns[i].stream.is_some() {
            w.start(i);
        }
    }
    w.event_loop()?;
    Ok(w.tally)
}

impl Worker<'_> {
    fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn due_at(&self, k: u64) -> u64 {
        (self.first_due + k as f64 * self.interval) as u64
    }

    /// How many requests are due by `now` (open loop).
    fn due_by(&self, now: u64) -> u64 {
        let t = now as f64 - self.first_due;
        if t < 0.0 {
            0
        } else {
            (t / self.interval) as u64 + 1
        }
    }

    fn event_loop(&mut self) -> io::Result<()> {
        let mut events = vec![epoll::Event { events: 0, u64: 0 }; self.conns.len().clamp(1, 1024)];
        let mut cpu_start = (0, 0);
        let mut measuring = false;
        let mut next_scan = TIMEOUT_SCAN.as_nanos() as u64;
        loop {
            let now = self.now();
            if !measuring && now >= self.window_start {
                measuring = true;
                cpu_start = stats::thread_cpu_us();
            }
            if now >= self.window_end {
                break;
            }
            if now >= next_scan {
                self.expire(now);
                next_scan = now + TIMEOUT_SCAN.as_nanos() as u64;
            }
            self.reconnect(now);
            let mut wake = self.window_end.min(next_scan);
            if !measuring {
                wake = wake.min(self.window_start);
            }
            if self.plan.rate.is_some() {
                self.dispatch(now);
                if !self.idle.is_empty() {
                    wake = wake.min(self.due_at(self.next));
                }
            }
            if let Some(&i) = self.down.iter().min_by_key(|&&i| self.conns[i].retry_at) {
                wake = wake.min(self.conns[i].retry_at);
            }
            let n = self.wait(&mut events, wake)?;
            for (k, ev) in events[..n].iter().enumerate() {
                // Open loop: a request that came due while the answers before this one
                // were read goes out now, not after the rest of them (the loop's top
                // dispatches after the last).
                if k > 0 && self.plan.rate.is_some() && !self.idle.is_empty() {
                    self.dispatch(self.now());
                }
                let (bits, i) = (ev.events, ev.u64 as usize);
                if self.conns[i].stream.is_none() {
                    continue;
                }
                let result = if bits & epoll::WRITABLE != 0 {
                    self.flush(i)
                } else {
                    Ok(())
                };
                let result = result.and_then(|()| {
                    if bits & epoll::READABLE != 0 {
                        self.read(i)
                    } else {
                        Ok(())
                    }
                });
                if let Err(f) = result {
                    self.fail(i, f);
                }
            }
        }
        let (u1, s1) = stats::thread_cpu_us();
        self.tally.user_us = u1 - cpu_start.0;
        self.tally.sys_us = s1 - cpu_start.1;
        if self.plan.rate.is_some() {
            // Requests due in [window_start, window_end).
            let due_before = |t: u64| if t == 0 { 0 } else { self.due_by(t - 1) };
            let before = due_before(self.window_start);
            let by_end = due_before(self.window_end);
            self.tally.due = by_end - before;
            self.tally.backlog = by_end.saturating_sub(self.next.max(before));
        }
        Ok(())
    }

    /// Waits for events until `wake`. Before sleeping it polls for up to `--spin`, and in
    /// open loop also through the last `--spin` before `wake` (the next due time),
    /// yielding the CPU between polls. A client that sleeps makes the server pay to wake
    /// it up (an inter-processor interrupt per answer, several µs on a VM), and one woken
    /// by a timer sends late. The CPU time spent polling for nothing is counted apart.
    fn wait(&mut self, events: &mut [epoll::Event], wake: u64) -> io::Result<usize> {
        let spin = self.plan.spin.as_nanos() as u64;
        let open = self.plan.rate.is_some();
        let started = self.now();
        // This thread's CPU clock when polling first found nothing.
        let mut idle_since = None;
        loop {
            let now = self.now();
            let left = wake.saturating_sub(now);
            if left > 0 && !(open && left <= spin) && now - started >= spin {
                self.idle_polled(idle_since, now);
                // Open loop: wake up `spin` early, to poll through the rest.
                return self
                    .epoll
                    .wait(events, if open { left - spin } else { left });
            }
            let n = self.epoll.wait(events, 0)?;
            if n > 0 || left == 0 {
                self.idle_polled(idle_since, now);
                return Ok(n);
            }
            if idle_since.is_none() && now >= self.window_start {
                idle_since = Some(stats::thread_cpu_ns());
            }
            std::thread::yield_now();
        }
    }

    /// Adds the CPU time since `since` (if polling found nothing) to the idle polling.
    fn idle_polled(&mut self, since: Option<u64>, now: u64) {
        if let (Some(since), true) = (since, now <= self.window_end) {
            self.tally.idle_poll_ns += stats::thread_cpu_ns().saturating_sub(since);
        }
    }

    /// Opens connection `i` (blocking connect, then non-blocking); on failure, counts a
    /// connect error and schedules a retry.
    fn connect(&mut self, i: usize, now: u64) {
        match self.open() {
            Ok((stream, early)) => {
                let c = &mut self.conns[i];
                c.rbuf[..early.len()].copy_from_slice(&early);
                c.rstart = 0;
                c.rend = early.len();
                if let Err(e) = self.epoll.add(stream.as_raw_fd(), i as u64) {
                    eprintln!("loadgen: epoll_ctl: {e}");
                    self.down_until(i, now + RECONNECT_PAUSE.as_nanos() as u64);
                    return;
                }
                self.conns[i].stream = Some(stream);
            }
            Err(_) => {
                if now >= self.window_start {
                    self.tally.errors.connect += 1;
                }
                self.down_until(i, now + RECONNECT_PAUSE.as_nanos() as u64);
            }
        }
    }

    fn open(&self) -> Result<(TcpStream, Vec<u8>), String> {
        let mut s = TcpStream::connect_timeout(&self.plan.addr, CONNECT_TIMEOUT)
            .map_err(|e| e.to_string())?;
        // Requests go out whole in one write; Nagle would only hold back a pipeline.
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        if self.plan.rate.is_some() {
            rxstamp::enable(s.as_raw_fd()).map_err(|e| e.to_string())?;
        }
        let early = match &self.plan.protocol {
            Protocol::Ws {
                host,
                path,
                headers,
                ..
            } => ws::handshake(&mut s, host, path, headers, CONNECT_TIMEOUT)?,
            Protocol::Http { .. } => Vec::new(),
        };
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok((s, early))
    }

    fn down_until(&mut self, i: usize, at: u64) {
        self.conns[i].retry_at = at;
        self.down.push(i);
    }

    fn reconnect(&mut self, now: u64) {
        let mut k = 0;
        while k < self.down.len() {
            let i = self.down[k];
            if self.conns[i].retry_at > now {
                k += 1;
                continue;
            }
            self.down.swap_remove(k);
            self.connect(i, now);
            if self.conns[i].stream.is_some() {
                self.start(i);
            }
        }
    }

    /// A connection just came up: closed loop sends its first batch, open loop queues
    /// it as idle.
    fn start(&mut self, i: usize) {
        if self.plan.rate.is_some() {
            self.make_idle(i);
        } else if let Err(f) = self.send(i, self.plan.pipeline) {
            self.fail(i, f);
        }
    }

    fn make_idle(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.queued_idle {
            c.queued_idle = true;
            self.idle.push_back(i);
        }
    }

    /// Open loop: hands due requests to idle connections.
    fn dispatch(&mut self, now: u64) {
        let due = self.due_by(now);
        while self.next < due {
            let Some(i) = self.idle.pop_front() else {
                return;
            };
            let c = &mut self.conns[i];
            c.queued_idle = false;
            if c.stream.is_none() || !c.inflight.is_empty() {
                continue;
            }
            let n = (due - self.next).min(self.plan.pipeline as u64) as usize;
            if let Err(f) = self.send(i, n) {
                self.fail(i, f);
            }
        }
    }

    /// Writes a batch of `n` requests on connection `i`. Closed loop: their latency
    /// starts at this write; open loop: they are the next `n` of the schedule, each
    /// one's latency starting at its own due time.
    fn send(&mut self, i: usize, n: usize) -> Result<(), Fail> {
        let open = self.plan.rate.is_some();
        let now = self.now();
        for k in 0..n as u64 {
            let since = if open {
                self.due_at(self.next + k)
            } else {
                now
            };
            self.conns[i].inflight.push_back(since);
        }
        if open {
            self.next += n as u64;
        }
        let c = &mut self.conns[i];
        c.wbuf.clear();
        c.wpos = 0;
        c.written_at = now;
        match &self.plan.protocol {
            Protocol::Http { request, .. } => {
                for _ in 0..n {
                    c.wbuf.extend_from_slice(request);
                }
            }
            Protocol::Ws { payload, .. } => {
                for _ in 0..n {
                    let mask = c.next_mask();
                    ws::encode_text(&mut c.wbuf, payload, mask);
                }
            }
        }
        self.flush(i)
    }

    /// Writes what is left of the current batch; stops at EAGAIN (EPOLLOUT resumes it).
    fn flush(&mut self, i: usize) -> Result<(), Fail> {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else {
            return Ok(());
        };
        while c.wpos < c.wbuf.len() {
            match stream.write(&c.wbuf[c.wpos..]) {
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Fail::Write),
            }
        }
        Ok(())
    }

    /// Reads until the socket is drained, handling every answer found.
    fn read(&mut self, i: usize) -> Result<(), Fail> {
        let clock = self.clock;
        loop {
            let c = &mut self.conns[i];
            if c.rstart == c.rend {
                c.rstart = 0;
                c.rend = 0;
            } else if c.rend == c.rbuf.len() {
                if c.rstart > 0 {
                    c.rbuf.copy_within(c.rstart..c.rend, 0);
                    c.rend -= c.rstart;
                    c.rstart = 0;
                } else if c.rbuf.len() < http::MAX_HEAD_BYTES * 2 {
                    c.rbuf.resize(c.rbuf.len() * 2, 0);
                } else {
                    return Err(Fail::Read);
                }
            }
            let room = c.rbuf.len() - c.rend;
            let Some(stream) = c.stream.as_mut() else {
                return Ok(());
            };
            match rxstamp::recv(stream.as_raw_fd(), &mut c.rbuf[c.rend..]) {
                Ok((0, _)) => return Err(Fail::Closed),
                Ok((n, stamp)) => {
                    // The realtime clock first: a delay between the two readings then
                    // moves the arrival toward the read, never before the true one.
                    let stamp = stamp.map(|at| (at, rxstamp::realtime_ns()));
                    let now = clock.elapsed().as_nanos() as u64;
                    // The stamp's age, taken off this clock's now. An arrival before the
                    // batch was written can only come from a step of the realtime
                    // clock: no stamp then.
                    let arrived = stamp
                        .and_then(|(at, real_now)| now.checked_sub(real_now.saturating_sub(at)))
                        .filter(|&arrived| arrived >= c.written_at);
                    c.rend += n;
                    self.parse(i, now, arrived)?;
                    // A short read drained the socket; edge-triggered epoll reports
                    // whatever arrives after it.
                    if n < room || self.conns[i].stream.is_none() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Fail::Read),
            }
        }
    }

    /// Takes every whole answer out of the read buffer: read at `now`, its newest
    /// bytes there since `arrived` (see `read`).
    fn parse(&mut self, i: usize, now: u64, arrived: Option<u64>) -> Result<(), Fail> {
        let head = matches!(self.plan.protocol, Protocol::Http { head: true, .. });
        loop {
            let c = &mut self.conns[i];
            let buf = &c.rbuf[c.rstart..c.rend];
            if buf.is_empty() {
                return Ok(());
            }
            let (used, status, close) = match &self.plan.protocol {
                Protocol::Http { .. } => match c.http.step(buf, head) {
                    Ok((used, Some(r))) => (used, Some(r.status), r.close),
                    Ok((used, None)) => (used, None, false),
                    Err(_) => return Err(Fail::Read),
                },
                Protocol::Ws { .. } => match c.ws.step(buf) {
                    Ok((used, Some(ws::Event::Message))) => (used, Some(200), false),
                    Ok((_, Some(ws::Event::Close))) => return Err(Fail::Closed),
                    Ok((used, None)) => (used, None, false),
                    Err(_) => return Err(Fail::Read),
                },
            };
            c.rstart += used;
            if let Some(status) = status {
                self.answered(i, status, now, arrived)?;
                if close {
                    return Err(Fail::Closed);
                }
            } else if used == 0 {
                return Ok(());
            }
        }
    }

    /// One answer arrived on connection `i` in a read at `now`: time it, then send
    /// more or go idle.
    fn answered(
        &mut self,
        i: usize,
        status: u16,
        now: u64,
        arrived: Option<u64>,
    ) -> Result<(), Fail> {
        let Some(since) = self.conns[i].inflight.pop_front() else {
            // An answer nobody asked for: the stream is out of step.
            return Err(Fail::Read);
        };
        let written = self.conns[i].written_at;
        self.record(since, written, now, arrived, status);
        if !self.conns[i].inflight.is_empty() {
            return Ok(());
        }
        if self.plan.rate.is_some() {
            self.make_idle(i);
            Ok(())
        } else if now < self.window_end {
            // Right away: the server may be about to run out of work.
            self.send(i, self.plan.pipeline)
        } else {
            Ok(())
        }
    }

    /// Counts an answer if its request belongs to the measured window: due (or
    /// written, closed loop) at `since`, written at `written`, read at `now`, its bytes
    /// on the socket since `arrived` (if stamped).
    fn record(&mut self, since: u64, written: u64, now: u64, arrived: Option<u64>, status: u16) {
        self.tally.answers_total += 1;
        if since < self.window_start || now > self.window_end {
            return;
        }
        let t = &mut self.tally;
        t.completed += 1;
        if !(200..300).contains(&status) {
            t.errors.status += 1;
        }
        t.latency
            .saturating_record(now.saturating_sub(since).max(1));
        if self.plan.rate.is_none() {
            return;
        }
        // Open loop: the latency is the send delay, the round trip, then the read.
        t.send_delay
            .saturating_record(written.saturating_sub(since).max(1));
        match arrived {
            Some(at) => {
                t.arrival.saturating_record(at.saturating_sub(since).max(1));
                t.round_trip
                    .saturating_record(at.saturating_sub(written).max(1));
            }
            None => t.unstamped += 1,
        }
    }

    /// Closes connection `i`, counting what was lost, and schedules its reconnect.
    fn fail(&mut self, i: usize, f: Fail) {
        let now = self.now();
        let c = &mut self.conns[i];
        if matches!(f, Fail::Closed) {
            // A body delimited by the close: the close completed that answer.
            if let Some(r) = c.http.at_close() {
                if let Some(since) = c.inflight.pop_front() {
                    let written = c.written_at;
                    self.record(since, written, now, None, r.status);
                }
            }
        }
        let c = &mut self.conns[i];
        let lost = !c.inflight.is_empty();
        c.stream = None;
        c.rstart = 0;
        c.rend = 0;
        c.wbuf.clear();
        c.wpos = 0;
        c.inflight.clear();
        c.http = ResponseParser::default();
        c.ws = FrameParser::default();
        if now >= self.window_start {
            match f {
                Fail::Write => self.tally.errors.write += 1,
                Fail::Read => self.tally.errors.read += 1,
                Fail::Closed if lost => self.tally.errors.read += 1,
                Fail::Closed => {}
            }
        }
        self.down_until(i, now);
    }

    /// Counts and drops requests that waited longer than `--timeout` for an answer.
    fn expire(&mut self, now: u64) {
        let limit = self.plan.timeout.as_nanos() as u64;
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.stream.is_none() || c.inflight.is_empty() || now - c.written_at < limit {
                continue;
            }
            if now >= self.window_start {
                self.tally.errors.timeout += c.inflight.len() as u64;
            }
            // Counted as timeouts: closing it is not a further error.
            c.inflight.clear();
            self.fail(i, Fail::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A server answering every request head on each connection after `delay`.
    fn slow_server(delay: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n @ 1..) = conn.read(&mut buf) {
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            std::thread::sleep(delay);
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if conn.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// An open-loop run of 0.4 s (after 0.1 s of warm-up) at `rate` over `connections`
    /// connections to a server that answers each request after `delay`.
    fn open_loop(delay: Duration, rate: f64, connections: usize) -> Tally {
        let plan = Plan {
            addr: slow_server(delay),
            protocol: Protocol::Http {
                request: http::encode_request("GET", "test", "/", &[], b""),
                head: false,
            },
            pipeline: 1,
            rate: Some(rate),
            threads: 1,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            timeout: Duration::from_secs(2),
            spin: Duration::from_micros(100),
        };
        run(&plan, 0, connections, || {}).unwrap()
    }

    #[test]
    fn open_loop_times_each_answer_at_the_read_and_at_arrival() {
        let delay = Duration::from_micros(300);
        let t = open_loop(delay, 500.0, 4);
        assert_eq!(t.errors.connect + t.errors.read + t.errors.write, 0);
        // 500 req/s for 0.4 s: 200 due. Answers that come after the window closes are
        // not counted, and on a busy machine the server's threads run late.
        assert_eq!(t.due, 200);
        assert!((150..=200).contains(&t.completed), "{}", t.completed);
        // The kernel turns stamping on a moment after the first socket asks, well
        // within the warm-up: every answer in the window is timed both ways.
        assert_eq!(t.unstamped, 0);
        assert_eq!(t.arrival.len(), t.completed);
        // Each answer waited out the server's delay before it reached the socket.
        let floor = delay.as_nanos() as u64;
        assert!(t.arrival.min() >= floor, "{}", t.arrival.min());
        // The client reads each answer some time after it arrived (at this size the
        // histogram resolves 0.1 us): with the stamps missing, the two would be equal.
        let (read, arrived) = (t.latency.mean(), t.arrival.mean());
        assert!(arrived < read - 100.0, "{arrived} {read}");
        // From the write, not the due time: never longer than from the due time.
        assert_eq!(t.round_trip.len(), t.completed);
        assert!(t.round_trip.min() >= floor, "{}", t.round_trip.min());
        assert!(
            t.round_trip.mean() <= arrived,
            "{} {arrived}",
            t.round_trip.mean()
        );
    }

    #[test]
    fn open_loop_tells_the_clients_send_delay_from_the_servers_round_trip() {
        // One connection to a server that takes 1 ms per answer, at 2,000 req/s: the
        // requests queue in the client for the one connection, and their latency grows
        // by the queue while each one's round trip stays near the server's 1 ms.
        let delay = Duration::from_millis(1);
        let t = open_loop(delay, 2000.0, 1);
        assert_eq!(t.errors.connect + t.errors.read + t.errors.write, 0);
        assert!(t.completed >= 50, "{}", t.completed);
        assert!(t.backlog > 100, "{}", t.backlog);
        assert_eq!(t.send_delay.len(), t.completed);
        assert_eq!(t.round_trip.len(), t.completed);
        let floor = delay.as_nanos() as u64;
        assert!(t.round_trip.min() >= floor, "{}", t.round_trip.min());
        // Tens of milliseconds in the queue against about one in the server.
        let (queued, trip) = (
            t.send_delay.value_at_quantile(0.5),
            t.round_trip.value_at_quantile(0.5),
        );
        assert!(queued > 10 * floor, "{queued}");
        assert!(trip < queued / 4, "{trip} {queued}");
    }
}
