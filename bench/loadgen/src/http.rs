//! HTTP/1.1 on the wire: the request bytes (built once, written as they are for every
//! request) and an incremental response parser that skips bodies without buffering them
//! (Content-Length, chunked, or read-until-close), RFC 9112.

use httparse::Status;

/// A response head larger than this is an error, not a reason to keep buffering.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers parsed per response; a benchmark answer has a handful.
const MAX_HEADERS: usize = 32;
/// A chunk-size or trailer line longer than this is an error (RFC 9112 §7.1).
const MAX_LINE_BYTES: usize = 4096;

/// The bytes of one request: request line, `Host`, the caller's headers,
/// `Content-Length` (when there is a body or the method carries one) and the body.
pub fn encode_request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("host") {
        out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
    }
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let carries_body = matches!(method, "POST" | "PUT" | "PATCH");
    if (!body.is_empty() || carries_body) && !has("content-length") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A whole response was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server will close the connection after it (`Connection: close`, HTTP/1.0,
    /// or a body delimited by the close).
    pub close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Content-Length bytes still to skip.
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer fields after the last chunk, up to the empty line.
    Trailer,
    /// No length: the body ends when the server closes (RFC 9112 §6.3, item 8).
    UntilClose,
}

/// One connection's response parser; it keeps its place between reads.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// The current response's status and close flag, known once its head is parsed.
    current: Response,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser {
            state: State::Head,
            current: Response {
                status: 0,
                close: false,
            },
        }
    }
}

impl ResponseParser {
    /// Consumes a prefix of `buf`: returns how many bytes were used and the response if
    /// one ended. `(0, None)` means more bytes are needed. `head_request`: the request
    /// was HEAD, so no body follows whatever the headers say (RFC 9112 §6.3, item 1).
    pub fn step(
        &mut self,
        buf: &[u8],
        head_request: bool,
    ) -> Result<(usize, Option<Response>), ParseError> {
        match self.state {
            State::Head => self.head(buf, head_request),
            State::Body(left) => {
                let take = left.min(buf.len() as u64);
                if take == left {
                    return Ok((take as usize, Some(self.finish())));
                }
                self.state = State::Body(left - take);
                Ok((take as usize, None))
            }
            State::ChunkSize => match httparse::parse_chunk_size(buf) {
                Ok(Status::Complete((used, 0))) => {
                    self.state = State::Trailer;
                    Ok((used, None))
                }
                Ok(Status::Complete((used, size))) => {
                    self.state = State::ChunkData(size);
                    Ok((used, None))
                }
                Ok(Status::Partial) if buf.len() < MAX_LINE_BYTES => Ok((0, None)),
                _ => Err(ParseError),
            },
            State::ChunkData(left) => {
                let take = left.min(buf.len() as u64);
                let left = left - take;
                self.state = if left == 0 {
                    State::ChunkEnd
                } else {
                    State::ChunkData(left)
                };
                Ok((take as usize, None))
            }
            State::ChunkEnd => match buf {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    Ok((2, None))
                }
                [] | [b'\r'] => Ok((0, None)),
                _ => Err(ParseError),
            },
            State::Trailer => match buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => Ok((2, Some(self.finish()))),
                Some(i) => Ok((i + 2, None)),
                None if buf.len() < MAX_LINE_BYTES => Ok((0, None)),
                None => Err(ParseError),
            },
            State::UntilClose => Ok((buf.len(), None)),
        }
    }

    /// The server closed the connection: that ends a close-delimited body; anything
    /// else cut short is not a response.
    pub fn at_close(&mut self) -> Option<Response> {
        (self.state == State::UntilClose).then(|| self.finish())
    }

    fn head(
        &mut self,
        buf: &[u8],
        head_request: bool,
    ) -> Result<(usize, Option<Response>), ParseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let used = match res.parse(buf) {
            Ok(Status::Complete(n)) => n,
            Ok(Status::Partial) if buf.len() < MAX_HEAD_BYTES => return Ok((0, None)),
            _ => return Err(ParseError),
        };
        let status = res.code.ok_or(ParseError)?;
        // Interim 1xx answers precede the real one (RFC 9110 §15.2); 101 is not expected.
        if (100..200).contains(&status) && status != 101 {
            return Ok((used, None));
        }
        let mut close = res.version == Some(0);
        let mut length = None;
        let mut chunked = false;
        for h in res.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value).map_err(|_| ParseError)?;
                length = Some(v.trim().parse::<u64>().map_err(|_| ParseError)?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked is the final coding when present (RFC 9112 §6.1).
                chunked = h.value.trim_ascii_end().ends_with(b"chunked");
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = h.value.to_ascii_lowercase();
                if v.windows(5).any(|w| w == b"close") {
                    close = true;
                } else if v.windows(10).any(|w| w == b"keep-alive") {
                    close = false;
                }
            }
        }
        self.current = Response { status, close };
        let no_body = head_request || status == 204 || status == 304;
        self.state = match (no_body, chunked, length) {
            (true, _, _) | (false, false, Some(0)) => return Ok((used, Some(self.finish()))),
            (false, true, _) => State::ChunkSize,
            (false, false, Some(n)) => State::Body(n),
            (false, false, None) => {
                self.current.close = true;
                State::UntilClose
            }
        };
        Ok((used, None))
    }

    fn finish(&mut self) -> Response {
        self.state = State::Head;
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes; returns the responses seen.
    fn feed(wire: &[u8], step: usize) -> Vec<Response> {
        let mut p = ResponseParser::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                let (used, done) = p.step(&buf, false).unwrap();
                buf.drain(..used);
                out.extend(done);
                if used == 0 && done.is_none() || buf.is_empty() {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn content_length_and_chunked_responses_in_any_pieces() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n\
HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
        let want = vec![
            Response {
                status: 200,
                close: false,
            },
            Response {
                status: 404,
                close: false,
            },
            Response {
                status: 204,
                close: true,
            },
        ];
        for step in [1, 2, 7, wire.len()] {
            assert_eq!(feed(wire, step), want, "pieces of {step}");
        }
    }

    #[test]
    fn body_until_close_ends_at_close() {
        let mut p = ResponseParser::default();
        let wire = b"HTTP/1.1 200 OK\r\n\r\nsome body";
        let (used, done) = p.step(wire, false).unwrap();
        assert_eq!(done, None);
        assert_eq!(p.step(&wire[used..], false).unwrap(), (9, None));
        assert_eq!(
            p.at_close(),
            Some(Response {
                status: 200,
                close: true
            })
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let mut p = ResponseParser::default();
        assert!(p.step(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
    }

    #[test]
    fn request_has_host_and_length() {
        let r = encode_request(
            "POST",
            "127.0.0.1:80",
            "/w",
            &[("Content-Type".into(), "application/json".into())],
            b"{}",
        );
        assert_eq!(
            r,
            b"POST /w HTTP/1.1\r\nHost: 127.0.0.1:80\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
