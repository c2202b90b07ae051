//! Client side of HTTP/1.1 (RFC 9112): target URLs, request encoding, and response
//! parsing with the same framing rules and chunked decoder the server uses. The I/O
//! (pools, sockets, TLS) belongs to the `http_client` output; this is bytes only.

use std::ops::Range;

use super::chunked::ChunkedDecoder;
use super::{Limits, RequestError};

/// The parts of an `http://` or `https://` URL a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url<'u> {
    pub tls: bool,
    pub host: &'u str,
    pub port: u16,
    /// `host` or `host:port` as the Host header wants it.
    pub authority: &'u str,
    /// Path and query, at least `/`.
    pub target: &'u str,
}

/// Parses an absolute http(s) URL; userinfo and fragments are refused or dropped.
pub fn parse_url(url: &str) -> Result<Url<'_>, String> {
    UrlParts::parse(url).map(|parts| parts.of(url))
}

/// Where the parts of a URL lie in its text: what [`parse_url`] finds, kept apart from
/// the text so that a [`ParsedUrl`] can hold both.
#[derive(Debug, Clone)]
struct UrlParts {
    tls: bool,
    port: u16,
    host: Range<usize>,
    authority: Range<usize>,
    /// Path and query; empty: `/`.
    target: Range<usize>,
}

impl UrlParts {
    fn parse(url: &str) -> Result<Self, String> {
        let (tls, start) = if url.starts_with("http://") {
            (false, "http://".len())
        } else if url.starts_with("https://") {
            (true, "https://".len())
        } else {
            return Err(format!(
                "unsupported URL {url:?}: expected http:// or https://"
            ));
        };
        let at = |from: usize, i: Option<usize>, or: usize| i.map_or(or, |i| from + i);
        let end = at(start, url[start..].find('#'), url.len());
        let split = at(start, url[start..end].find(['/', '?']), end);
        let authority = &url[start..split];
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("bad URL authority in {url:?}"));
        }
        let (host, port) = match authority.rfind(':') {
            // A port follows a bracketed IPv6 host or a host without colons; the
            // colons of a bare IPv6 address are not one.
            Some(i) if authority[..i].ends_with(']') || !authority[..i].contains(':') => {
                let port = authority[i + 1..]
                    .parse()
                    .map_err(|_| format!("bad port in {url:?}"))?;
                (&authority[..i], port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        // An IPv6 host without its brackets.
        let unbracketed = host.trim_start_matches('[');
        let host_start = start + host.len() - unbracketed.len();
        let host_len = unbracketed.trim_end_matches(']').len();
        Ok(UrlParts {
            tls,
            port,
            host: host_start..host_start + host_len,
            authority: start..split,
            target: split..end,
        })
    }

    fn of<'u>(&self, url: &'u str) -> Url<'u> {
        Url {
            tls: self.tls,
            host: &url[self.host.clone()],
            port: self.port,
            authority: &url[self.authority.clone()],
            target: match &url[self.target.clone()] {
                "" => "/",
                target => target,
            },
        }
    }
}

/// A URL parsed once (`http_client`'s `url` when it has no interpolation), with its
/// text. Parsing per request cost about 800 instructions, 4% of a proxied one.
#[derive(Debug, Clone)]
pub struct ParsedUrl {
    src: String,
    parts: UrlParts,
}

impl ParsedUrl {
    pub fn new(src: &str) -> Result<Self, String> {
        Ok(ParsedUrl {
            parts: UrlParts::parse(src)?,
            src: src.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.src
    }

    pub fn url(&self) -> Url<'_> {
        self.parts.of(&self.src)
    }
}

/// Appends a request head and body.
pub fn write_request<'h>(
    out: &mut Vec<u8>,
    verb: &str,
    url: &Url<'_>,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    body: &[u8],
) {
    out.extend_from_slice(verb.as_bytes());
    out.push(b' ');
    out.extend_from_slice(url.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_host = false;
    for (name, value) in headers {
        // A value with CR/LF would split the request: drop the field.
        if !super::response::is_token(name.as_bytes())
            || value.iter().any(|&b| b == b'\r' || b == b'\n')
        {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue; // framing is ours to decide
        }
        has_host |= name.eq_ignore_ascii_case("host");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_host {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(url.authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || !matches!(verb, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        out.extend_from_slice(b"Content-Length: ");
        super::response::push_u64(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    /// Read until the server closes.
    Close,
}

/// A parsed response head. Its reason and fields are kept as one text (invalid UTF-8
/// replaced) with spans into it: two allocations per response, not two per field.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    text: String,
    reason: Span,
    fields: Vec<(Span, Span)>,
    /// Bytes of the head in the buffer.
    pub len: usize,
    pub framing: BodyFraming,
    /// The server keeps the connection open after this response.
    pub keep_alive: bool,
}

/// A byte range of `ResponseHead::text`.
type Span = (u32, u32);

impl ResponseHead {
    pub fn reason(&self) -> &str {
        self.at(self.reason)
    }

    /// The header fields in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|&(n, v)| (self.at(n), self.at(v)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn at(&self, (start, end): Span) -> &str {
        &self.text[start as usize..end as usize]
    }
}

/// Response fields parsed at most (more is `TooManyHeaders`).
const MAX_RESPONSE_HEADERS: usize = 128;

/// Parses a response head; `Ok(None)` needs more bytes.
pub fn parse_response_head(
    buf: &[u8],
    limits: &Limits,
    request_verb: &str,
) -> Result<Option<ResponseHead>, RequestError> {
    // Uninitialised slots, as for requests: initialising them costs more than parsing.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => {
            return Err(RequestError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(_) => return Err(RequestError::BadRequest("malformed response head")),
    };
    let status = resp.code.unwrap_or(0);
    let minor = resp.version.unwrap_or(1);
    let mut text = String::with_capacity(len);
    let mut push = |part: &str| {
        let start = text.len() as u32;
        text.push_str(part);
        (start, text.len() as u32)
    };
    let reason = push(resp.reason.unwrap_or(""));
    let mut fields = Vec::with_capacity(resp.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = minor == 0;
    for h in resp.headers.iter() {
        let value = crate::message::text(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .trim()
                .parse()
                .map_err(|_| RequestError::BadRequest("malformed Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(RequestError::BadRequest("differing Content-Length values"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in value.split(',') {
                let t = t.trim();
                if t.eq_ignore_ascii_case("close") {
                    close = true;
                } else if t.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                    close = false;
                }
            }
        }
        fields.push((push(h.name), push(&value)));
    }
    // RFC 9112 §6.3: HEAD, 1xx, 204 and 304 have no body whatever the headers say.
    let framing = if request_verb == "HEAD" || status < 200 || status == 204 || status == 304 {
        BodyFraming::None
    } else if chunked {
        BodyFraming::Chunked
    } else {
        match length {
            Some(0) => BodyFraming::None,
            Some(n) if n > limits.max_body_bytes => return Err(RequestError::BodyTooLarge),
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::Close,
        }
    };
    Ok(Some(ResponseHead {
        status,
        text,
        reason,
        fields,
        len,
        keep_alive: !close && framing != BodyFraming::Close,
        framing,
    }))
}

/// Incremental body reader for one response, appending to the caller's buffer (which
/// the caller can reuse across responses).
pub struct BodyReader<'b> {
    framing: BodyFraming,
    chunked: ChunkedDecoder,
    /// Body bytes so far.
    body: &'b mut Vec<u8>,
}

impl<'b> BodyReader<'b> {
    /// Reads into `body`, which should be empty.
    pub fn new(framing: BodyFraming, body: &'b mut Vec<u8>) -> Self {
        BodyReader {
            framing,
            chunked: ChunkedDecoder::default(),
            body,
        }
    }

    /// Feeds received bytes; returns how many were consumed and whether the body is
    /// complete. For close-delimited bodies, completion is the caller's EOF.
    pub fn feed(&mut self, input: &[u8], limits: &Limits) -> Result<(usize, bool), RequestError> {
        match self.framing {
            BodyFraming::None => Ok((0, true)),
            BodyFraming::Length(n) => {
                let want = (n as usize).saturating_sub(self.body.len());
                let take = want.min(input.len());
                self.body.extend_from_slice(&input[..take]);
                Ok((take, self.body.len() as u64 == n))
            }
            BodyFraming::Chunked => {
                let used = self.chunked.decode(input, self.body, limits)?;
                Ok((used, self.chunked.is_done()))
            }
            BodyFraming::Close => {
                if (self.body.len() + input.len()) as u64 > limits.max_body_bytes {
                    return Err(RequestError::BodyTooLarge);
                }
                self.body.extend_from_slice(input);
                Ok((input.len(), false))
            }
        }
    }

    /// Whether EOF ends this body properly.
    pub fn eof_completes(&self) -> bool {
        self.framing == BodyFraming::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/a/b?x=1#frag").unwrap();
        assert_eq!(
            (u.tls, u.host, u.port, u.authority, u.target),
            (false, "127.0.0.1", 8080, "127.0.0.1:8080", "/a/b?x=1")
        );
        let u = parse_url("https://api.example.com").unwrap();
        assert_eq!(
            (u.tls, u.host, u.port, u.target),
            (true, "api.example.com", 443, "/")
        );
        let u = parse_url("http://[::1]:81/x").unwrap();
        assert_eq!((u.host, u.port), ("::1", 81));
        // Bracketed without a port: the default one.
        let u = parse_url("http://[::1]?q=1").unwrap();
        assert_eq!(
            (u.host, u.port, u.authority, u.target),
            ("::1", 80, "[::1]", "?q=1")
        );
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("http://user@x/").is_err());
        // Parsed once, the same parts.
        for src in [
            "http://127.0.0.1:8080/a/b?x=1#frag",
            "https://api.example.com",
            "http://[::1]:81/x",
            "http://h/",
        ] {
            let parsed = ParsedUrl::new(src).unwrap();
            assert_eq!(
                (parsed.as_str(), parsed.url()),
                (src, parse_url(src).unwrap())
            );
        }
        assert!(ParsedUrl::new("ftp://x").is_err());
    }

    #[test]
    fn request_has_host_and_length_and_drops_injected_headers() {
        let mut out = Vec::new();
        let u = parse_url("http://h:1/p").unwrap();
        let headers: [(&str, &[u8]); 3] = [
            ("X-A", b"1"),
            ("X-Bad", b"a\r\nB: c"),
            ("Content-Length", b"99"),
        ];
        write_request(&mut out, "POST", &u, headers, b"hi");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p HTTP/1.1\r\nX-A: 1\r\nHost: h:1\r\nContent-Length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn response_framing() {
        let l = Limits::default();
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            &l,
            "POST",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, BodyFraming::Length(3), true)
        );
        assert_eq!(h.reason(), "OK");
        assert_eq!(h.headers().collect::<Vec<_>>(), [("Content-Length", "3")]);
        let h = parse_response_head(
            b"HTTP/1.1 418 I'm a teapot\r\nX-A: 1\r\nx-b: \xff2\r\nContent-Length: 0\r\n\r\n",
            &l,
            "GET",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                h.reason(),
                h.header("x-a"),
                h.header("X-B"),
                h.header("x-c")
            ),
            ("I'm a teapot", Some("1"), Some("\u{fffd}2"), None)
        );
        assert_eq!(h.headers().count(), 3);
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &l,
            "GET",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        let h = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n", &l, "GET")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        let h = parse_response_head(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            &l,
            "GET",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::None);
        assert!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent", &l, "GET")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn body_reader_across_pieces() {
        let l = Limits::default();
        let mut body = Vec::new();
        let mut r = BodyReader::new(BodyFraming::Chunked, &mut body);
        let (n, done) = r.feed(b"3\r\nab", &l).unwrap();
        assert!(!done);
        let mut rest = b"3\r\nab"[n..].to_vec();
        rest.extend_from_slice(b"c\r\n0\r\n\r\n");
        let (_, done) = r.feed(&rest, &l).unwrap();
        assert!(done);
        assert_eq!(body, b"abc");
    }
}
