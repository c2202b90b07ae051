//! Request heads (RFC 9112 §2-§3, §6-§9) parsed with httparse into offsets, so the bytes
//! can be copied into the request arena once and every field read from there.

use super::{Limits, RequestError, MAX_HEADERS_CAP};

/// A byte range into the head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn of<'b>(&self, head: &'b [u8]) -> &'b [u8] {
        &head[self.start as usize..self.end as usize]
    }

    fn within(base: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
}

/// How the body of a request is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (no Content-Length and no Transfer-Encoding).
    None,
    Length(u64),
    Chunked,
}

/// One parsed request head. Spans point into the first `len` bytes of the buffer.
#[derive(Debug, Clone)]
pub struct Head {
    /// Bytes of the head, including the final CRLF CRLF.
    pub len: usize,
    pub method: Span,
    /// The request-target as sent (origin-form: path and query).
    pub target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub framing: Framing,
    /// Whether the connection stays open after this exchange (RFC 9112 §9.3).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent (RFC 9110 §10.1.1).
    pub expect_continue: bool,
    pub is_head: bool,
}

/// One header field's name and value.
pub type HeaderSpan = (Span, Span);

/// Parses the head at the start of `buf`. `Ok(None)` means more bytes are needed.
/// Header spans are written to `headers` (cleared first) so the caller can reuse it.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Option<Head>, RequestError> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Uninitialised slots: initialising 1024 headers per parse costs more than the parse.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let slots = &mut slots[..limits.max_headers.clamp(1, MAX_HEADERS_CAP)];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, slots) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(RequestError::VersionNotSupported),
        Err(_) => return Err(RequestError::BadRequest("malformed request head")),
    };
    let len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            // Decide early so a client cannot make us buffer past the limits.
            let line_done = buf.contains(&b'\n');
            if !line_done && buf.len() > limits.max_uri_bytes + 32 {
                return Err(RequestError::UriTooLong);
            }
            if buf.len() > limits.max_head_bytes {
                return Err(if line_done {
                    RequestError::HeadTooLarge
                } else {
                    RequestError::UriTooLong
                });
            }
            return Ok(None);
        }
    };
    let path = req.path.unwrap_or("");
    if path.len() > limits.max_uri_bytes {
        return Err(RequestError::UriTooLong);
    }
    if len > limits.max_head_bytes {
        return Err(RequestError::HeadTooLarge);
    }
    let method = req.method.unwrap_or("");
    let minor = req.version.unwrap_or(1);

    headers.clear();
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        headers.push((
            Span::within(buf, h.name.as_bytes()),
            Span::within(buf, h.value),
        ));
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3 (5): a list of identical values is one value; anything else
            // (differing, signed, empty) is an unrecoverable framing error.
            for part in h.value.split(|&b| b == b',') {
                let n = parse_length(trim(part))
                    .ok_or(RequestError::BadRequest("malformed Content-Length"))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(RequestError::BadRequest("differing Content-Length values"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Codings apply in order; only a lone, final `chunked` is something we decode.
            for coding in h.value.split(|&b| b == b',').map(trim) {
                if coding.is_empty() {
                    continue;
                }
                if chunked {
                    // chunked applied twice or not last: RFC 9112 §6.1 forbids it.
                    return Err(RequestError::BadRequest("chunked is not the final coding"));
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else {
                    return Err(RequestError::NotImplemented);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim) {
                conn_close |= token.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim(h.value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(RequestError::ExpectationFailed);
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1.
    if minor == 1 && hosts != 1 {
        return Err(RequestError::BadRequest("HTTP/1.1 needs exactly one Host"));
    }
    let framing = if transfer_encoding {
        // RFC 9112 §6.1: both framings at once is how requests are smuggled; refuse.
        if content_length.is_some() {
            return Err(RequestError::BadRequest(
                "Transfer-Encoding and Content-Length together",
            ));
        }
        if minor == 0 {
            return Err(RequestError::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        if !chunked {
            return Err(RequestError::BadRequest("chunked is not the final coding"));
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };
    if let Framing::Length(n) = framing {
        if n > limits.max_body_bytes {
            return Err(RequestError::BodyTooLarge);
        }
    }
    let keep_alive = if minor == 0 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    Ok(Some(Head {
        len,
        method: Span::within(buf, method.as_bytes()),
        target: Span::within(buf, path.as_bytes()),
        minor,
        framing,
        keep_alive,
        expect_continue: expect_continue && minor == 1,
        is_head: method == "HEAD",
    }))
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Strips optional whitespace (RFC 9110 §5.6.3).
pub fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<Head>, RequestError> {
        parse_head(raw.as_bytes(), &Limits::default(), &mut Vec::new())
    }

    #[test]
    fn content_length_and_keep_alive() {
        let h = parse("POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        let raw = "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(h.len, raw.len());
        assert_eq!(h.target.of(raw.as_bytes()), b"/a?b=1");
    }

    #[test]
    fn partial_head_needs_more() {
        assert_eq!(
            parse("POST / HTTP/1.1\r\nHost: x\r\n")
                .unwrap()
                .map(|h| h.len),
            None
        );
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let h = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let bad = [
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\n\r\n",
        ];
        for raw in bad {
            assert!(
                matches!(parse(raw), Err(RequestError::BadRequest(_))),
                "accepted: {raw:?}"
            );
        }
        let same = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n");
        assert_eq!(same.unwrap().unwrap().framing, Framing::Length(3));
        let gz = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(gz.unwrap_err(), RequestError::NotImplemented);
    }

    #[test]
    fn limits_map_to_their_errors() {
        let limits = Limits {
            max_headers: 3,
            max_uri_bytes: 10,
            max_head_bytes: 200,
            max_body_bytes: 100,
            ..Limits::default()
        };
        let p = |raw: &str| parse_head(raw.as_bytes(), &limits, &mut Vec::new());
        assert_eq!(
            p("GET / HTTP/1.1\r\nHost: x\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n").unwrap_err(),
            RequestError::TooManyHeaders
        );
        assert_eq!(
            p("GET /0123456789abc HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_err(),
            RequestError::UriTooLong
        );
        assert_eq!(
            p(&format!("GET /{} HTTP/1.1", "a".repeat(300))).unwrap_err(),
            RequestError::UriTooLong
        );
        assert_eq!(
            p(&format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX: {}",
                "a".repeat(300)
            ))
            .unwrap_err(),
            RequestError::HeadTooLarge
        );
        assert_eq!(
            p("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n").unwrap_err(),
            RequestError::BodyTooLarge
        );
        assert_eq!(
            p("POST / HTTP/1.1\r\nHost: x\r\nExpect: nothing\r\n\r\n").unwrap_err(),
            RequestError::ExpectationFailed
        );
    }
}
