//! `http_server` input: turns an HTTP request into a batch with upstream's metadata, and
//! the request's outcome and response store into the HTTP response (status and headers
//! interpolated, `metadata_headers`, multipart for several messages).
//!
//! The socket side (accepting, framing, keep-alive) is `runtime::server`; the pipeline
//! between the two halves is `pipeline`.

use std::collections::BTreeMap;

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::components::{InterpolatedString, MetadataFilter};
use crate::config::Duration;
use crate::http::{multipart, response, Limits};
use crate::message::{canonical_header, text_in, Batch, Message, Meta, Value};
use crate::transaction::{Outcome, ResponseStore};

/// `input.http_server` as in upstream, plus sluice's named HTTP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Own listener address; empty serves on the shared `http.address` server.
    pub address: String,
    /// `/x` exact, `/x/` the subtree, `/{name}` segments are path parameters.
    pub path: String,
    /// WebSocket endpoint (same pattern rules as `path`); empty serves none.
    pub ws_path: String,
    /// Sent as a text message to every WebSocket client when it connects.
    pub ws_welcome_message: String,
    /// Only meaningful with `rate_limit`, which is not supported yet.
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub ws_rate_limit_message: String,
    #[serde(deserialize_with = "verbs")]
    pub allowed_verbs: Vec<String>,
    /// Total time for processing and acks; one deadline per request (408 after it).
    pub timeout: Duration,
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub rate_limit: String,
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub cert_file: String,
    #[serde(deserialize_with = "crate::config::unsupported_nonempty")]
    pub key_file: String,
    pub cors: Cors,
    pub sync_response: SyncResponse,
    /// sluice: request line plus headers, bytes (431).
    pub max_head_bytes: usize,
    /// sluice: header fields per request (431).
    pub max_headers: usize,
    /// sluice: request-target bytes (414).
    pub max_uri_bytes: usize,
    /// sluice: decoded body bytes (413).
    pub max_body_bytes: u64,
    /// sluice: time allowed for a request head to arrive (408, then close).
    pub header_read_timeout: Duration,
    /// sluice: how long an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        let l = Limits::default();
        Config {
            address: String::new(),
            path: "/post".into(),
            ws_path: "/post/ws".into(),
            ws_welcome_message: String::new(),
            ws_rate_limit_message: String::new(),
            allowed_verbs: vec!["POST".into()],
            timeout: Duration::from_secs(5),
            rate_limit: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            cors: Cors::default(),
            sync_response: SyncResponse::default(),
            max_head_bytes: l.max_head_bytes,
            max_headers: l.max_headers,
            max_uri_bytes: l.max_uri_bytes,
            max_body_bytes: l.max_body_bytes,
            header_read_timeout: Duration(l.header_read_timeout),
            idle_timeout: Duration(l.idle_timeout),
        }
    }
}

impl Config {
    /// The protocol limits this input asks for.
    pub fn limits(&self) -> Limits {
        Limits {
            max_head_bytes: self.max_head_bytes,
            max_headers: self.max_headers,
            max_uri_bytes: self.max_uri_bytes,
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: self.header_read_timeout.0,
            idle_timeout: self.idle_timeout.0,
            ..Limits::default()
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cors {
    /// CORS headers: not supported yet, refused when enabled.
    #[serde(deserialize_with = "crate::config::unsupported_true")]
    pub enabled: bool,
    pub allowed_origins: Vec<String>,
}

/// `sync_response`: how the response message becomes the HTTP response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncResponse {
    /// Interpolated against the (first) response message; must give an integer.
    pub status: InterpolatedString,
    /// Values interpolated against the (first) response message.
    pub headers: BTreeMap<String, InterpolatedString>,
    /// Metadata of the response message copied to response headers.
    pub metadata_headers: MetadataFilter,
}

impl Default for SyncResponse {
    fn default() -> Self {
        SyncResponse {
            status: InterpolatedString::new("200").expect("static"),
            headers: [(
                "Content-Type".to_string(),
                InterpolatedString::new("application/octet-stream").expect("static"),
            )]
            .into(),
            metadata_headers: MetadataFilter::default(),
        }
    }
}

fn verbs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(D::Error::custom("allowed_verbs must not be empty"));
    }
    Ok(v)
}

/// One segment of a path pattern.
#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A compiled `path`: exact, subtree (trailing `/`), with `{name}` parameters.
#[derive(Debug, Clone)]
pub struct PathPattern {
    segments: Vec<Segment>,
    subtree: bool,
    /// For a pattern of literal segments only (the usual `/weather`): the segments
    /// joined by `/`, matched by one comparison.
    literal: Option<String>,
}

impl PathPattern {
    pub fn new(path: &str) -> Self {
        let subtree = path.ends_with('/');
        let segments: Vec<Segment> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_string()),
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        let literal = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                Segment::Param(_) => None,
            })
            .collect::<Option<Vec<&str>>>()
            .filter(|_| !subtree)
            .map(|parts| parts.join("/"));
        PathPattern {
            segments,
            subtree,
            literal,
        }
    }

    /// Whether `path` matches; path parameters are pushed to `params`.
    pub fn matches<'p, 'a>(
        &'p self,
        path: &'a str,
        params: &mut BVec<'_, (&'p str, &'a str)>,
    ) -> bool {
        params.clear();
        if let Some(literal) = &self.literal {
            return path.trim_start_matches('/') == literal;
        }
        let mut parts = path.trim_start_matches('/').split('/');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (Segment::Literal(l), Some(p)) if l == p => {}
                (Segment::Param(name), Some(p)) if !p.is_empty() => params.push((name, p)),
                _ => return false,
            }
        }
        match parts.next() {
            None => true,
            // `/x/` also matches `/x` itself? No: like Go's mux, the subtree is below it,
            // and `/x/` itself (an empty last part) matches.
            Some(_) if self.subtree => true,
            Some("") => path.ends_with('/') && self.segments.is_empty(),
            Some(_) => false,
        }
    }
}

/// A request as the input reads it; every slice lives in the request arena.
pub struct Request<'a> {
    pub method: &'a str,
    /// Path without the query string, as sent (percent-encoded).
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
    pub remote_ip: &'a str,
}

impl<'a> Request<'a> {
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Where an endpoint is served: its pattern, and `root_path`+pattern on the shared
/// server.
struct Endpoint {
    patterns: Vec<PathPattern>,
    /// Whether it has `{name}` segments (metadata to extract per request).
    params: bool,
}

impl Endpoint {
    fn new(path: &str, root_path: Option<&str>) -> Self {
        let mut patterns = vec![PathPattern::new(path)];
        if let Some(root) = root_path.filter(|r| !r.is_empty() && *r != "/") {
            patterns.push(PathPattern::new(&format!(
                "{}{}",
                root.trim_end_matches('/'),
                path
            )));
        }
        Endpoint {
            patterns,
            params: path.contains('{'),
        }
    }

    fn matches(&self, arena: &Bump, path: &str) -> bool {
        let mut params = BVec::new_in(arena);
        self.patterns.iter().any(|p| p.matches(path, &mut params))
    }
}

/// The runtime half of one `http_server` input on one shard.
pub struct HttpServer {
    conf: Config,
    http: Endpoint,
    /// `ws_path`, unless it is empty.
    ws: Option<Endpoint>,
    /// Response status when it needs no interpolation (the common case).
    static_status: Option<u16>,
    /// Multipart boundary state (a per-shard xorshift; boundaries need only be unique).
    boundary_seed: std::cell::Cell<u64>,
}

/// What the input says about a request before its body is read.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// An upgrade to a WebSocket on `ws_path` (the handshake is checked next).
    WebSocket,
    NotFound,
    MethodNotAllowed,
}

impl HttpServer {
    pub fn new(conf: &Config, root_path: Option<&str>) -> Self {
        let static_status = conf
            .sync_response
            .status
            .0
            .as_static()
            .and_then(|s| s.trim().parse().ok());
        HttpServer {
            http: Endpoint::new(&conf.path, root_path),
            ws: (!conf.ws_path.is_empty()).then(|| Endpoint::new(&conf.ws_path, root_path)),
            conf: conf.clone(),
            static_status,
            boundary_seed: std::cell::Cell::new(0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64),
        }
    }

    /// Whether writing the response reads the stored messages' metadata.
    pub fn reads_response_meta(&self) -> bool {
        let sr = &self.conf.sync_response;
        self.static_status.is_none()
            || sr.headers.values().any(|h| h.0.as_static().is_none())
            || !sr.metadata_headers.is_empty()
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.conf.timeout.0
    }

    /// Routing and verb check, from the head alone (before any body byte is read). A
    /// path served by both `path` and `ws_path` goes to the WebSocket endpoint only when
    /// the request asks to upgrade.
    pub fn admit(
        &self,
        arena: &Bump,
        method: &str,
        path: &str,
        asks_upgrade: impl FnOnce() -> bool,
    ) -> Admission {
        let http = self.http.matches(arena, path);
        // Most requests are plain HTTP on `path`: they skip the WebSocket pattern.
        let ws = self
            .ws
            .as_ref()
            .is_some_and(|ws| (!http || asks_upgrade()) && ws.matches(arena, path));
        if ws {
            return Admission::WebSocket;
        }
        if !http {
            return Admission::NotFound;
        }
        if self.conf.allowed_verbs.iter().any(|v| v == method) {
            Admission::Accept
        } else {
            Admission::MethodNotAllowed
        }
    }

    /// The request as a batch with upstream's metadata: one message, or one per part of
    /// a `multipart/*` body (each with its part's headers as metadata too). `None` for a
    /// malformed multipart body (400).
    pub fn batch<'a>(&self, arena: &'a Bump, req: &Request<'a>) -> Option<Batch<'a>> {
        let meta = self.request_meta(arena, req, &self.http);
        let content_type = req.header("content-type").map_or("", |v| text_in(arena, v));
        let Some(boundary) = multipart::boundary(content_type) else {
            return Some(single(arena, req.body, meta));
        };
        let parts = multipart::parse(req.body, boundary).ok()?;
        let mut batch = BVec::with_capacity_in(parts.len(), arena);
        for part in parts {
            let mut m = meta.clone();
            for (k, v) in part.headers {
                m.set(canonical_header(arena, k), Value::Str(arena.alloc_str(v)));
            }
            batch.push(Message {
                payload: part.body,
                meta: m,
                error: None,
            });
        }
        Some(batch)
    }

    /// The metadata every message of a WebSocket connection carries: the upgrade
    /// request's, built once per connection.
    pub fn ws_meta<'a>(&self, arena: &'a Bump, req: &Request<'a>) -> Meta<'a> {
        let ws = self.ws.as_ref().expect("only upgraded on ws_path");
        self.request_meta(arena, req, ws)
    }

    /// One WebSocket message as a batch in its own arena, with the connection's `meta`.
    pub fn ws_batch<'a>(&self, arena: &'a Bump, meta: &Meta<'a>, payload: &[u8]) -> Batch<'a> {
        single(arena, arena.alloc_slice_copy(payload), meta.clone_in(arena))
    }

    /// Text sent to every WebSocket client when it connects (empty: nothing).
    pub fn ws_welcome_message(&self) -> &str {
        &self.conf.ws_welcome_message
    }

    /// Upstream's metadata of a request to `endpoint`: user agent, path, verb, remote
    /// IP, headers, query, path parameters, cookies (later ones win in that order).
    fn request_meta<'a>(
        &self,
        arena: &'a Bump,
        req: &Request<'a>,
        endpoint: &Endpoint,
    ) -> Meta<'a> {
        let text = |b: &'a [u8]| text_in(arena, b);
        // The four fixed keys, then the headers (read in place, see `Meta`); query,
        // parameters and cookies are rarer, and their keys hide headers of the same name.
        let mut meta = Meta::with_capacity_in(4, arena);
        meta.set(
            "http_server_user_agent",
            Value::Str(req.header("user-agent").map_or("", text)),
        );
        meta.set("http_server_request_path", Value::Str(req.path));
        meta.set("http_server_verb", Value::Str(req.method));
        meta.set("http_server_remote_ip", Value::Str(req.remote_ip));
        let mut meta = meta.with_headers(req.headers);
        // An empty query is not split: setting up the split alone cost ~100 instructions.
        let pairs = (!req.query.is_empty()).then(|| req.query.split('&'));
        for pair in pairs.into_iter().flatten().filter(|p| !p.is_empty()).rev() {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            meta.set(
                percent_decode(arena, k, true),
                Value::Str(percent_decode(arena, v, true)),
            );
        }
        // `admit` already matched the path; matching again is only worth it for the
        // parameters, so only paths with `{name}` segments pay for it.
        let mut params = BVec::new_in(arena);
        if endpoint.params
            && endpoint
                .patterns
                .iter()
                .any(|p| p.matches(req.path, &mut params))
        {
            for (k, v) in params.iter() {
                meta.set(
                    arena.alloc_str(k),
                    Value::Str(percent_decode(arena, v, false)),
                );
            }
        }
        for (_, value) in req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        {
            for c in text(value).split(';') {
                if let Some((k, v)) = c.trim().split_once('=') {
                    meta.set(k, Value::Str(v.trim_matches('"')));
                }
            }
        }
        meta
    }

    /// Writes the response for a finished request (spec section 2's table).
    pub fn respond(
        &self,
        arena: &Bump,
        outcome: Outcome,
        store: &ResponseStore,
        out: &mut Vec<u8>,
        f: response::Framing<'_>,
    ) {
        match outcome {
            Outcome::TimedOut => return response::write_text(out, 408, "Request timed out\n", f),
            Outcome::Nacked(err) => {
                let mut body = err;
                body.push('\n');
                return response::write_text(out, 502, &body, f);
            }
            Outcome::Acked => {}
        }
        let messages = store.messages();
        let Some(first) = messages.first() else {
            return response::write(out, 200, [], b"", f);
        };
        // The stored message is rebuilt in the arena only when something interpolates.
        let batch = std::cell::OnceCell::new();
        let message = || batch.get_or_init(|| [first.to_message(arena)]).as_slice();
        let status = match self.static_status {
            Some(s) => Some(s),
            None => self
                .conf
                .sync_response
                .status
                .0
                .render(arena, message(), 0)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok()),
        };
        let Some(status) = status.filter(|s| (100..=999).contains(s)) else {
            return response::write(out, 502, [], b"", f);
        };
        let mut headers: BVec<(&[u8], &[u8])> = BVec::new_in(arena);
        for (name, value) in &self.conf.sync_response.headers {
            let v = match value.0.as_static() {
                Some(s) => s,
                None => value.0.render(arena, message(), 0).unwrap_or(""),
            };
            set_header(&mut headers, name.as_bytes(), v.as_bytes());
        }
        if !self.conf.sync_response.metadata_headers.is_empty() {
            for (k, v) in first.meta() {
                if self.conf.sync_response.metadata_headers.matches(k) {
                    set_header(
                        &mut headers,
                        arena.alloc_str(k).as_bytes(),
                        arena.alloc_str(v).as_bytes(),
                    );
                }
            }
        }
        if messages.len() == 1 {
            return response::write(out, status, headers.iter().copied(), &first.payload, f);
        }
        // Several messages: multipart/form-data, one part each, in store order.
        let boundary = self.next_boundary();
        let mut body = BVec::new_in(arena);
        for m in messages {
            let ctype = m
                .meta()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map_or("application/octet-stream", |(_, v)| v);
            body.extend_from_slice(b"--");
            body.extend_from_slice(boundary.as_bytes());
            body.extend_from_slice(b"\r\nContent-Type: ");
            body.extend_from_slice(ctype.as_bytes());
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(&m.payload);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"--\r\n");
        let ctype = arena.alloc_str(&format!("multipart/form-data; boundary={boundary}"));
        set_header(&mut headers, b"Content-Type", ctype.as_bytes());
        response::write(out, status, headers.iter().copied(), &body, f);
    }

    fn next_boundary(&self) -> String {
        let mut x = self.boundary_seed.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.boundary_seed.set(x);
        format!("{x:016x}{:016x}", x.rotate_left(29) ^ 0xa5a5_5a5a_c3c3_3c3c)
    }
}

/// A batch of one message.
fn single<'a>(arena: &'a Bump, payload: &'a [u8], meta: Meta<'a>) -> Batch<'a> {
    let mut batch = BVec::with_capacity_in(1, arena);
    batch.push(Message {
        payload,
        meta,
        error: None,
    });
    batch
}

/// Sets a header, replacing one of the same name (later sources override earlier ones).
fn set_header<'h>(headers: &mut BVec<'_, (&'h [u8], &'h [u8])>, name: &'h [u8], value: &'h [u8]) {
    match headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some(h) => *h = (name, value),
        None => headers.push((name, value)),
    }
}

/// Percent-decoding for query strings (`+` is a space there) and path segments.
pub fn percent_decode<'a>(arena: &'a Bump, s: &'a str, plus_is_space: bool) -> &'a str {
    if !s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+')) {
        return s;
    }
    let mut out = BVec::with_capacity_in(s.len(), arena);
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    match std::str::from_utf8(out.into_bump_slice()) {
        Ok(s) => s,
        Err(_) => s,
    }
}

/// Status and body for a request that could not be routed.
pub fn admission_response(a: &Admission) -> (u16, &'static str) {
    match a {
        Admission::NotFound => (404, "404 page not found\n"),
        Admission::MethodNotAllowed => (405, "Incorrect method\n"),
        Admission::Accept | Admission::WebSocket => (200, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        let arena = Bump::new();
        let check = |pattern: &str, path: &str| {
            let p = PathPattern::new(pattern);
            let mut params = BVec::new_in(&arena);
            let ok = p.matches(path, &mut params);
            let got: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (ok, got)
        };
        assert!(check("/post", "/post").0);
        assert!(!check("/post", "/post/x").0);
        assert!(!check("/post", "/pos").0);
        assert!(!check("/post", "/post/").0);
        assert!(check("/a/b", "/a/b").0);
        assert!(!check("/a/b", "/a//b").0);
        assert!(check("/api/", "/api/a/b").0);
        assert!(check("/api/", "/api/").0);
        assert!(!check("/api/", "/apix").0);
        let (ok, params) = check("/users/{id}/orders/{order}", "/users/7/orders/x%20y");
        assert!(ok);
        assert_eq!(
            params,
            [("id".into(), "7".into()), ("order".into(), "x%20y".into())]
        );
        assert!(!check("/users/{id}/orders/{order}", "/users//orders/1").0);
    }

    #[test]
    fn header_keys_are_canonical_and_queries_decoded() {
        let arena = Bump::new();
        assert_eq!(
            canonical_header(&arena, "x-forwarded-FOR"),
            "X-Forwarded-For"
        );
        let already = "Content-Type";
        assert!(std::ptr::eq(canonical_header(&arena, already), already));
        assert_eq!(canonical_header(&arena, "content-type"), "Content-Type");
        assert_eq!(percent_decode(&arena, "a+b%20c%2", true), "a b c%2");
        assert_eq!(percent_decode(&arena, "a+b", false), "a+b");
    }
}
