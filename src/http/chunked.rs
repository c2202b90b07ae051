//! The chunked transfer coding decoder (RFC 9112 §7.1), an explicit state machine over
//! whatever bytes have arrived; it consumes only complete lines, so it can be fed again
//! from the same buffer after more bytes are read.

use super::{Limits, RequestError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting `chunk-size [ chunk-ext ] CRLF`.
    SizeLine,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF that ends chunk data.
    DataEnd,
    /// After the last chunk: trailer fields until an empty line.
    Trailers,
    Done,
}

/// Decoder state for one chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// Decoded bytes so far, checked against `max_body_bytes`.
    total: u64,
    /// Trailer bytes so far, checked against `max_trailer_bytes`.
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::SizeLine,
            total: 0,
            trailer_bytes: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending body bytes to `out`; returns how many input bytes
    /// were consumed. Call again with the unconsumed rest plus new bytes until done.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limits: &Limits,
    ) -> Result<usize, RequestError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::SizeLine => {
                    let Some(line) = take_line(rest, limits.max_chunk_line_bytes)? else {
                        return Ok(pos);
                    };
                    let size = parse_size_line(&rest[..line.content])?;
                    pos += line.total;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        self.total = self
                            .total
                            .checked_add(size)
                            .filter(|t| *t <= limits.max_body_bytes)
                            .ok_or(RequestError::BodyTooLarge)?;
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok(pos);
                    }
                    let n = (left.min(rest.len() as u64)) as usize;
                    out.extend_from_slice(&rest[..n]);
                    pos += n;
                    self.state = if left == n as u64 {
                        State::DataEnd
                    } else {
                        State::Data(left - n as u64)
                    };
                }
                State::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(pos);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(RequestError::BadRequest("chunk data not followed by CRLF"));
                    }
                    pos += 2;
                    self.state = State::SizeLine;
                }
                State::Trailers => {
                    let Some(line) = take_line(rest, limits.max_trailer_bytes)? else {
                        return Ok(pos);
                    };
                    self.trailer_bytes += line.total;
                    if self.trailer_bytes > limits.max_trailer_bytes {
                        return Err(RequestError::HeadTooLarge);
                    }
                    let field = &rest[..line.content];
                    pos += line.total;
                    if field.is_empty() {
                        self.state = State::Done;
                    } else if !field.contains(&b':')
                        || field.iter().any(|&b| b < 0x20 && b != b'\t')
                    {
                        return Err(RequestError::BadRequest("malformed trailer field"));
                    }
                    // Trailer fields are read and dropped: nothing downstream may trust them.
                }
            }
        }
    }
}

struct Line {
    /// Length without the CRLF.
    content: usize,
    /// Length with the CRLF.
    total: usize,
}

/// A CRLF-terminated line at the start of `buf`, or `None` if it has not all arrived.
fn take_line(buf: &[u8], max: usize) -> Result<Option<Line>, RequestError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            if lf == 0 || buf[lf - 1] != b'\r' {
                return Err(RequestError::BadRequest("bare LF in chunked body"));
            }
            if lf + 1 > max {
                return Err(RequestError::BadRequest("chunk line too long"));
            }
            Ok(Some(Line {
                content: lf - 1,
                total: lf + 1,
            }))
        }
        None if buf.len() > max => Err(RequestError::BadRequest("chunk line too long")),
        None => Ok(None),
    }
}

/// `1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`; extensions are
/// checked for control bytes and otherwise ignored.
fn parse_size_line(line: &[u8]) -> Result<u64, RequestError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(RequestError::BadRequest("bad chunk size"));
    }
    let size = line[..digits].iter().fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        (n << 4) | d
    });
    let ext = &line[digits..];
    let first = ext.iter().find(|b| !matches!(b, b' ' | b'\t'));
    match first {
        None => {}
        Some(b';') if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) => {
            return Err(RequestError::BadRequest("bad chunk extension"));
        }
        Some(b';') => {}
        Some(_) => return Err(RequestError::BadRequest("bad chunk size")),
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), RequestError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out, &Limits::default())?;
        assert!(d.is_done(), "not done");
        Ok((out, n))
    }

    #[test]
    fn decodes_with_extensions_and_trailers() {
        let body = b"5;name=val\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, n) = decode_all(body).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(&body[n..], b"NEXT");
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_body() {
        let body = b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for &b in body.iter() {
            buf.push(b);
            let n = d.decode(&buf, &mut out, &Limits::default()).unwrap();
            buf.drain(..n);
        }
        assert!(d.is_done());
        assert_eq!(out, b"abc0123456789");
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"-1\r\n",
            b"\r\n",
            b"11111111111111111\r\nx",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5 z\r\nhello\r\n",
        ] {
            let mut d = ChunkedDecoder::default();
            let r = d.decode(bad, &mut Vec::new(), &Limits::default());
            assert!(
                matches!(r, Err(RequestError::BadRequest(_))),
                "{bad:?} gave {r:?}"
            );
        }
    }

    #[test]
    fn body_limit_applies_to_decoded_size() {
        let limits = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        let mut d = ChunkedDecoder::default();
        let r = d.decode(b"3\r\nabc\r\n2\r\nde\r\n", &mut Vec::new(), &limits);
        assert_eq!(r, Err(RequestError::BodyTooLarge));
    }
}
