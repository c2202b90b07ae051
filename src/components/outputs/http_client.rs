//! `http_client` output: sends each message to an HTTP server through a per-shard
//! keep-alive pool, with upstream's success, retry and backoff rules; with
//! `propagate_response` the server's answer becomes a response message.
//!
//! The wire format is `http::client`; this file owns connections (pool per origin,
//! `max_in_flight`, one retry of a dead pooled connection on a fresh one), name
//! resolution off the request path (cached), TLS (rustls) for `https://`, timeouts and
//! retries.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration as StdDuration, Instant};

use bumpalo::collections::Vec as BVec;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::sync::Semaphore;
use serde::Deserialize;

use crate::components::{Build, BuildError, Context, InterpolatedString, MetadataFilter};
use crate::config::Duration;
use crate::http::client::{self, BodyReader, ParsedUrl, ResponseHead, Url};
use crate::http::Limits;
use crate::message::{Batch, Message, Value};
use crate::runtime::poller;
use crate::runtime::socket::Socket;

use super::Nack;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub url: InterpolatedString,
    #[serde(default = "post")]
    pub verb: String,
    #[serde(default)]
    pub headers: BTreeMap<String, InterpolatedString>,
    /// Metadata sent as request headers.
    #[serde(default)]
    pub metadata: MetadataFilter,
    #[serde(default)]
    pub propagate_response: bool,
    /// Response headers kept as metadata (lowercased keys) on a propagated response.
    #[serde(default)]
    pub extract_headers: MetadataFilter,
    #[serde(default)]
    pub successful_on: Vec<u16>,
    #[serde(default)]
    pub drop_on: Vec<u16>,
    #[serde(default = "default_backoff_on")]
    pub backoff_on: Vec<u16>,
    #[serde(default = "three")]
    pub retries: u32,
    #[serde(default = "one_second")]
    pub retry_period: Duration,
    #[serde(default = "five_minutes")]
    pub max_retry_backoff: Duration,
    #[serde(default = "five_seconds")]
    pub timeout: Duration,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "sixty_four")]
    pub max_in_flight: usize,
    #[serde(default)]
    pub batch_as_multipart: bool,
    /// Accepted for compatibility: requests are sent as they come.
    #[serde(default)]
    pub batching: Option<serde_yaml::Value>,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub basic_auth: BasicAuth,
}

fn post() -> String {
    "POST".into()
}
fn default_backoff_on() -> Vec<u16> {
    vec![429]
}
fn three() -> u32 {
    3
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn yes() -> bool {
    true
}
fn sixty_four() -> usize {
    64
}

/// `tls`: settings for `https://` URLs (which always use TLS, through rustls).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Upstream needs it for custom settings; sluice applies them either way.
    pub enabled: bool,
    /// Accept any server certificate (tests and private networks only).
    pub skip_cert_verify: bool,
    /// PEM file of CA certificates to trust instead of the system's roots.
    pub root_cas_file: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub enabled: bool,
    pub username: String,
    pub password: String,
}

/// Response heads and bodies from upstreams are bounded like requests to us.
const MAX_RESPONSE_HEAD_BYTES: usize = 64 * 1024;
const MAX_RESPONSE_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Resolved names are reused this long.
const DNS_TTL: StdDuration = StdDuration::from_secs(30);
/// Idle pooled connections older than this are closed rather than reused.
const POOL_IDLE: StdDuration = StdDuration::from_secs(30);

/// One origin's idle connections.
type Origin = (String, u16, bool);

struct Idle {
    stream: Conn,
    since: Instant,
}

/// The per-shard client.
pub struct HttpClient {
    conf: Config,
    limits: Limits,
    /// Idle connections per origin (few origins: a list is cheaper than hashing a key
    /// that would have to be allocated per request).
    pool: RefCell<Vec<(Origin, Vec<Idle>)>>,
    /// Buffers reused across exchanges: to read responses into, and to append requests
    /// and response bodies to.
    read_buffers: RefCell<Vec<Vec<u8>>>,
    append_buffers: RefCell<Vec<Vec<u8>>>,
    in_flight: Rc<Semaphore>,
    dns: RefCell<HashMap<String, (Vec<SocketAddr>, Instant)>>,
    basic_auth: Option<String>,
    /// `url`, parsed at start-up, when it has no interpolation (boxed: most of the
    /// output's fields are not touched per request).
    static_url: Option<Box<ParsedUrl>>,
    /// Built on first use of an `https://` URL (loading the system roots costs time).
    tls: std::cell::OnceCell<futures_rustls::TlsConnector>,
}

/// What one exchange produced.
struct Exchange<'c> {
    head: ResponseHead,
    body: Buffer<'c>,
}

impl HttpClient {
    pub fn build(conf: &Config, b: &Build<'_>) -> Result<Self, BuildError> {
        let static_url = conf
            .url
            .0
            .as_static()
            .map(|url| ParsedUrl::new(url).map(Box::new))
            .transpose()
            .map_err(|e| format!("{}: {e}", b.path))?;
        // A bad CA file is a start-up error, not a per-request one.
        let tls = match &conf.tls.root_cas_file {
            f if f.is_empty() => None,
            _ => Some(tls_connector(&conf.tls).map_err(|e| format!("{}: {e}", b.path))?),
        };
        let basic_auth = conf.basic_auth.enabled.then(|| {
            let raw = format!("{}:{}", conf.basic_auth.username, conf.basic_auth.password);
            format!("Basic {}", base64_encode(raw.as_bytes()))
        });
        Ok(HttpClient {
            conf: conf.clone(),
            limits: Limits {
                max_head_bytes: MAX_RESPONSE_HEAD_BYTES,
                max_body_bytes: MAX_RESPONSE_BODY_BYTES,
                ..Limits::default()
            },
            pool: RefCell::new(Vec::new()),
            read_buffers: RefCell::new(Vec::new()),
            append_buffers: RefCell::new(Vec::new()),
            in_flight: Rc::new(Semaphore::new(conf.max_in_flight.max(1) as u64)),
            dns: RefCell::new(HashMap::new()),
            basic_auth,
            static_url,
            tls: tls.map_or_else(std::cell::OnceCell::new, std::cell::OnceCell::from),
        })
    }

    /// Sends every message of the batch (one request each, or one multipart request
    /// with `batch_as_multipart`); acked when all succeeded.
    pub async fn send<'a>(&self, cx: &Context<'a>, batch: Batch<'a>) -> Result<(), Nack> {
        if self.conf.batch_as_multipart && batch.len() > 1 {
            let (body, ctype) = multipart_body(&batch);
            return self.deliver(cx, &batch, 0, &body, Some(&ctype)).await;
        }
        for i in 0..batch.len() {
            self.deliver(cx, &batch, i, batch[i].payload, None).await?;
        }
        Ok(())
    }

    /// One message (or multipart body) with retries, then its response handled.
    async fn deliver<'a>(
        &self,
        cx: &Context<'a>,
        batch: &[Message<'a>],
        index: usize,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<(), Nack> {
        let url = self
            .conf
            .url
            .0
            .render(cx.arena, batch, index)
            .map_err(|e| format!("url: {e}"))?;
        let mut headers: BVec<(&str, &[u8])> = BVec::new_in(cx.arena);
        for (name, value) in &self.conf.headers {
            let v = value
                .0
                .render(cx.arena, batch, index)
                .map_err(|e| format!("header {name}: {e}"))?;
            headers.push((name.as_str(), v.as_bytes()));
        }
        let msg = &batch[index];
        if !self.conf.metadata.is_empty() {
            for (k, v) in msg.meta.iter() {
                if self.conf.metadata.matches(k) {
                    headers.push((k, v.to_text(cx.arena).as_bytes()));
                }
            }
        }
        if let Some(auth) = &self.basic_auth {
            headers.push(("Authorization", auth.as_bytes()));
        }
        if let Some(ct) = content_type {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
            headers.push(("Content-Type", ct.as_bytes()));
        }

        let mut backoff = self.conf.retry_period.0;
        let mut attempt = 0;
        loop {
            let (error, wait) = match self
                .exchange(cx, url, &self.conf.verb, &headers, body)
                .await
            {
                Ok(x) if self.is_success(x.head.status) => {
                    if self.conf.propagate_response {
                        self.store_response(cx, msg, &x);
                    }
                    return Ok(());
                }
                Ok(x) => {
                    let text = format!(
                        "HTTP request returned unexpected response code ({}): {} {}, Error: {}",
                        x.head.status,
                        x.head.status,
                        x.head.reason(),
                        String::from_utf8_lossy(&x.body)
                    );
                    if self.conf.drop_on.contains(&x.head.status) {
                        return Err(text);
                    }
                    if self.conf.backoff_on.contains(&x.head.status) {
                        let wait = backoff;
                        backoff = (backoff * 2).min(self.conf.max_retry_backoff.0);
                        (text, wait)
                    } else {
                        (text, self.conf.retry_period.0)
                    }
                }
                Err(e) => (e, self.conf.retry_period.0),
            };
            attempt += 1;
            if attempt > self.conf.retries {
                return Err(error);
            }
            poller::sleep(wait).await;
        }
    }

    /// Upstream's rule: 2xx not in `drop_on`/`backoff_on`, or listed in `successful_on`.
    fn is_success(&self, status: u16) -> bool {
        self.conf.successful_on.contains(&status)
            || ((200..300).contains(&status)
                && !self.conf.drop_on.contains(&status)
                && !self.conf.backoff_on.contains(&status))
    }

    /// The response as a message: the original metadata, `http_status_code`, and the
    /// headers `extract_headers` selects (lowercased keys); appended to the store.
    fn store_response<'a>(&self, cx: &Context<'a>, original: &Message<'a>, x: &Exchange) {
        let mut meta = original.meta.clone();
        meta.set("http_status_code", Value::Int(i64::from(x.head.status)));
        if !self.conf.extract_headers.is_empty() {
            for (name, value) in x.head.headers() {
                let key = name.to_ascii_lowercase();
                if self.conf.extract_headers.matches(&key) {
                    meta.set(
                        cx.arena.alloc_str(&key),
                        Value::Str(cx.arena.alloc_str(value)),
                    );
                }
            }
        }
        // The store copies the payload into its own buffer: no arena copy first.
        let msg = Message {
            payload: &x.body,
            meta,
            error: None,
        };
        cx.txns.store(cx.id, cx.arena, &msg);
    }

    /// One request/response, following redirects, bounded by `timeout`.
    async fn exchange(
        &self,
        cx: &Context<'_>,
        url: &str,
        verb: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<Exchange<'_>, String> {
        let _permit = self
            .in_flight
            .acquire_permit(1)
            .await
            .map_err(|e| e.to_string())?;
        let timeout = self.conf.timeout.0;
        let work = async {
            // Owned only after a redirect.
            let mut location = Cow::Borrowed(url);
            let mut verb = Cow::Borrowed(verb);
            let mut body = body;
            for hop in 0..=MAX_REDIRECTS {
                let u = match &self.static_url {
                    Some(parsed) if hop == 0 => parsed.url(),
                    _ => client::parse_url(&location)?,
                };
                let x = self.round_trip(cx, &u, &verb, headers, body).await?;
                let redirect = self.conf.follow_redirects
                    && matches!(x.head.status, 301 | 302 | 303 | 307 | 308);
                let Some(next) = x.head.header("location").filter(|_| redirect) else {
                    return Ok(x);
                };
                location = Cow::Owned(resolve_location(&u, next));
                // RFC 9110 §15.4: 303 (and, as clients do, 301/302 after POST) become GET.
                if x.head.status == 303 || (matches!(x.head.status, 301 | 302) && verb == "POST") {
                    verb = Cow::Borrowed("GET");
                    body = &[];
                }
            }
            Err(format!("stopped after {MAX_REDIRECTS} redirects"))
        };
        futures_lite::future::or(work, async {
            poller::sleep(timeout).await;
            Err(format!("request timed out after {timeout:?}"))
        })
        .await
    }

    /// Sends on a pooled connection, or a fresh one; a pooled connection that turns
    /// out dead (closed while idle) is retried once on a fresh connection.
    async fn round_trip(
        &self,
        cx: &Context<'_>,
        u: &Url<'_>,
        verb: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Result<Exchange<'_>, String> {
        let mut req = Buffer::for_appending(&self.append_buffers);
        client::write_request(&mut req.0, verb, u, headers.iter().copied(), body);
        // A pooled connection's age needs no fresh clock read: the request's latest one
        // is microseconds old.
        if let Some(stream) = self.checkout(u, cx.clock.last()) {
            match self.on(stream, &req, verb).await {
                Ok((x, stream)) => return Ok(self.checkin(u, x, stream)),
                Err((e, got_bytes)) if got_bytes => return Err(e),
                Err(_) => {} // dead before answering: try a fresh connection
            }
        }
        // Boxed: connecting (TLS included) is rare, and its future would otherwise make
        // every exchange's future, and each move of it, that much larger.
        let stream = Box::pin(self.connect(u)).await?;
        match self.on(stream, &req, verb).await {
            Ok((x, stream)) => Ok(self.checkin(u, x, stream)),
            Err((e, _)) => Err(e),
        }
    }

    fn checkout(&self, u: &Url<'_>, now: Instant) -> Option<Conn> {
        let mut pool = self.pool.borrow_mut();
        let (_, idle) = pool
            .iter_mut()
            .find(|((h, p, t), _)| h == u.host && *p == u.port && *t == u.tls)?;
        while let Some(c) = idle.pop() {
            if now.saturating_duration_since(c.since) < POOL_IDLE {
                return Some(c.stream);
            }
        }
        None
    }

    fn checkin<'c>(&'c self, u: &Url<'_>, x: (Exchange<'c>, bool), stream: Conn) -> Exchange<'c> {
        let (exchange, reusable) = x;
        if reusable {
            let mut pool = self.pool.borrow_mut();
            let at = match pool
                .iter()
                .position(|((h, p, t), _)| h == u.host && *p == u.port && *t == u.tls)
            {
                Some(i) => i,
                None => {
                    pool.push(((u.host.to_string(), u.port, u.tls), Vec::new()));
                    pool.len() - 1
                }
            };
            let idle = &mut pool[at].1;
            if idle.len() < self.conf.max_in_flight {
                idle.push(Idle {
                    stream,
                    since: Instant::now(),
                });
            }
        }
        exchange
    }

    async fn connect(&self, u: &Url<'_>) -> Result<Conn, String> {
        let addrs = self.resolve(u.host, u.port).await?;
        let mut last = String::from("no address");
        for addr in addrs {
            match Socket::connect(addr).await {
                Ok(s) => {
                    if !u.tls {
                        return Ok(Conn::Plain(s));
                    }
                    let connector = match self.tls.get() {
                        Some(c) => c,
                        None => {
                            let c = tls_connector(&self.conf.tls)?;
                            self.tls.get_or_init(|| c)
                        }
                    };
                    let name = rustls_pki_types::ServerName::try_from(u.host.to_string())
                        .map_err(|e| format!("bad TLS server name {}: {e}", u.host))?;
                    return connector
                        .connect(name, s)
                        .await
                        .map(|t| Conn::Tls(Box::new(t)))
                        .map_err(|e| format!("TLS handshake with {addr}: {e}"));
                }
                Err(e) => last = format!("connect {addr}: {e}"),
            }
        }
        Err(last)
    }

    /// Addresses of `host`, from the cache or resolved on a blocking thread so the
    /// shard never waits on the resolver.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some((addrs, at)) = self.dns.borrow().get(host) {
            if at.elapsed() < DNS_TTL {
                return Ok(addrs
                    .iter()
                    .map(|a| SocketAddr::new(a.ip(), port))
                    .collect());
            }
        }
        let name = host.to_string();
        let resolved = poller::through_glommio(glommio::executor().spawn_blocking(move || {
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
        }))
        .await
        .map_err(|e| format!("resolve {host}: {e}"))?;
        self.dns
            .borrow_mut()
            .insert(host.to_string(), (resolved.clone(), Instant::now()));
        Ok(resolved)
    }

    /// Writes the request and reads the response on `stream`. On failure, says whether
    /// any response byte had arrived (only a silent failure is retried on a new socket).
    async fn on(
        &self,
        mut stream: Conn,
        req: &[u8],
        verb: &str,
    ) -> Result<((Exchange<'_>, bool), Conn), (String, bool)> {
        // TLS buffers records: flush so the request leaves now.
        if let Err(e) = async {
            stream.write_all(req).await?;
            stream.flush().await
        }
        .await
        {
            return Err((format!("write: {e}"), false));
        }
        let mut buf = Buffer::for_reading(&self.read_buffers);
        let buf = &mut buf.0;
        let mut filled = 0;
        let head = loop {
            match client::parse_response_head(&buf[..filled], &self.limits, verb) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => return Err((format!("bad response: {}", e.body().trim_end()), true)),
            }
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match stream.read(&mut buf[filled..]).await {
                Ok(0) => return Err(("connection closed before a response".into(), filled > 0)),
                Ok(n) => filled += n,
                Err(e) => return Err((format!("read: {e}"), filled > 0)),
            }
        };
        let mut body = Buffer::for_appending(&self.append_buffers);
        let mut reader = BodyReader::new(head.framing, &mut body.0);
        let mut start = head.len;
        loop {
            let (used, done) = reader
                .feed(&buf[start..filled], &self.limits)
                .map_err(|e| (format!("bad response body: {}", e.body().trim_end()), true))?;
            start += used;
            if done {
                // Bytes after the response mean the framing is off: do not reuse.
                let reusable = head.keep_alive && start == filled;
                return Ok(((Exchange { body, head }, reusable), stream));
            }
            start = 0;
            match stream.read(&mut buf[..]).await {
                Ok(0) if reader.eof_completes() => {
                    return Ok(((Exchange { body, head }, false), stream));
                }
                Ok(0) => return Err(("connection closed mid-response".into(), true)),
                Ok(n) => filled = n,
                Err(e) => return Err((format!("read: {e}"), true)),
            }
        }
    }
}

/// A buffer borrowed from one of the client's free lists and given back on drop, so a
/// steady stream of exchanges allocates none.
struct Buffer<'b>(Vec<u8>, &'b RefCell<Vec<Vec<u8>>>);

impl<'b> Buffer<'b> {
    /// 8 KiB (or more, once grown) of initialised bytes to read into.
    fn for_reading(free: &'b RefCell<Vec<Vec<u8>>>) -> Self {
        let buf = free.borrow_mut().pop().unwrap_or_else(|| vec![0; 8192]);
        Buffer(buf, free)
    }

    /// An empty buffer to append to (a request, a response body).
    fn for_appending(free: &'b RefCell<Vec<Vec<u8>>>) -> Self {
        let mut buf = free.borrow_mut().pop().unwrap_or_default();
        buf.clear();
        Buffer(buf, free)
    }
}

impl std::ops::Deref for Buffer<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        // Oversized buffers (a large request or response) are not kept.
        if self.0.capacity() <= 64 * 1024 {
            self.1.borrow_mut().push(std::mem::take(&mut self.0));
        }
    }
}

/// A pooled connection: plain TCP or TLS over it. The TLS state is boxed (it is large);
/// a plain socket is not: a few of them live per origin, and every read goes through it.
#[allow(clippy::large_enum_variant)]
enum Conn {
    Plain(Socket),
    Tls(Box<futures_rustls::client::TlsStream<Socket>>),
}

impl futures_lite::AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl futures_lite::AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_close(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// The rustls client for `https://` URLs (shared code with Kafka's TLS): the roots of
/// `root_cas_file` if set, else the system's; `skip_cert_verify` accepts any
/// certificate (handshake signatures are still checked).
fn tls_connector(conf: &Tls) -> Result<futures_rustls::TlsConnector, String> {
    let root_pems = if conf.root_cas_file.is_empty() {
        Vec::new()
    } else {
        std::fs::read(&conf.root_cas_file)
            .map_err(|e| format!("tls.root_cas_file {}: {e}", conf.root_cas_file))?
    };
    let config = crate::tls::client_config(&crate::tls::TlsSettings {
        skip_cert_verify: conf.skip_cert_verify,
        root_pems,
        client_cert: None,
    })?;
    Ok(futures_rustls::TlsConnector::from(config))
}

/// An absolute or origin-relative `Location` against the URL it came from.
fn resolve_location(base: &Url<'_>, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!(
            "{}://{}{location}",
            if base.tls { "https" } else { "http" },
            base.authority
        )
    } else {
        let dir = base.target.rsplit_once('/').map_or("", |(d, _)| d);
        format!(
            "{}://{}{dir}/{location}",
            if base.tls { "https" } else { "http" },
            base.authority
        )
    }
}

/// `batch_as_multipart`: one `multipart/form-data` body, a part per message.
fn multipart_body(batch: &[Message<'_>]) -> (Vec<u8>, String) {
    let boundary = format!(
        "sluice{:016x}",
        batch.as_ptr() as usize as u64 ^ 0x5bd1_e995_1234_5678
    );
    let mut body = Vec::new();
    for m in batch {
        let ctype = m
            .meta
            .find_ignore_case("Content-Type")
            .and_then(|(_, v)| if let Value::Str(s) = v { Some(s) } else { None })
            .unwrap_or("application/octet-stream");
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: {ctype}\r\n\r\n").as_bytes());
        body.extend_from_slice(m.payload);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

fn base64_encode(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}
