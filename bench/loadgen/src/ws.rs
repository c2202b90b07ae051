//! WebSocket client side of RFC 6455: the opening handshake (§4.1: 101 and
//! `Sec-WebSocket-Accept` checked), masked text frames out (§5.3), and an incremental
//! frame parser that reports each complete data message without buffering it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID every accept key is derived from (§1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// A handshake answer larger than this is refused.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

/// Fills `buf` from the kernel's random source.
pub fn random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let r =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if r > 0 {
            filled += r as usize;
        }
    }
}

/// Does the opening handshake on a blocking `stream`; returns the bytes read past the
/// server's head (frames the server sent right away), or why the upgrade failed.
pub fn handshake(
    stream: &mut TcpStream,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let mut nonce = [0u8; 16];
    random(&mut nonce);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let deadline = Instant::now() + timeout;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("WebSocket handshake: write: {e}"))?;
    let mut buf = vec![0u8; MAX_HANDSHAKE_BYTES];
    let mut len = 0;
    loop {
        if Instant::now() >= deadline {
            return Err("WebSocket handshake: no answer in time".into());
        }
        let n = match stream.read(&mut buf[len..]) {
            Ok(0) => return Err("WebSocket handshake: the server closed the connection".into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("WebSocket handshake: read: {e}")),
        };
        len += n;
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut hs);
        let used = match res.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            Ok(httparse::Status::Partial) => {
                return Err("WebSocket handshake: answer head too large".into())
            }
            Err(e) => return Err(format!("WebSocket handshake: bad answer: {e}")),
        };
        let code = res.code.unwrap_or(0);
        if code != 101 {
            return Err(format!(
                "WebSocket handshake: the server answered {code} {} instead of 101",
                res.reason.unwrap_or("")
            ));
        }
        let want = accept_key(&key);
        let got = res
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|h| h.value);
        if got != Some(want.as_bytes()) {
            return Err("WebSocket handshake: missing or wrong Sec-WebSocket-Accept".into());
        }
        stream.set_read_timeout(None).map_err(|e| e.to_string())?;
        return Ok(buf[used..len].to_vec());
    }
}

/// `base64(sha1(key + GUID))` (§4.2.2, item 5.4).
fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Appends one final text frame carrying `payload`, masked with `mask` (§5.2, §5.3).
pub fn encode_text(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | 0x1);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// What ended in the bytes a step consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The last frame of a text or binary message: one answer.
    Message,
    /// The server sent a close frame.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Payload { left: u64, ends: Option<Event> },
}

/// One connection's frame parser; it keeps its place between reads. Pings and pongs
/// are skipped (sluice sends none; a server that pings gets no pong from here).
#[derive(Debug)]
pub struct FrameParser {
    state: State,
}

impl Default for FrameParser {
    fn default() -> Self {
        FrameParser {
            state: State::Header,
        }
    }
}

impl FrameParser {
    /// Consumes a prefix of `buf`: returns how many bytes were used and what ended.
    /// `(0, None)` means more bytes are needed.
    pub fn step(&mut self, buf: &[u8]) -> Result<(usize, Option<Event>), ParseError> {
        match self.state {
            State::Header => {
                let Some((used, len, ends)) = header(buf)? else {
                    return Ok((0, None));
                };
                if len == 0 {
                    return Ok((used, ends));
                }
                self.state = State::Payload { left: len, ends };
                Ok((used, None))
            }
            State::Payload { left, ends } => {
                let take = left.min(buf.len() as u64);
                if take == left {
                    self.state = State::Header;
                    return Ok((take as usize, ends));
                }
                self.state = State::Payload {
                    left: left - take,
                    ends,
                };
                Ok((take as usize, None))
            }
        }
    }
}

/// A frame header (§5.2): its length, the payload length and what the frame ends.
fn header(buf: &[u8]) -> Result<Option<(usize, u64, Option<Event>)>, ParseError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let ends = match b0 & 0x0f {
        // continuation, text, binary: a message ends with its FIN frame
        0x0..=0x2 => fin.then_some(Event::Message),
        0x8 => Some(Event::Close),
        0x9 | 0xA => None,
        _ => return Err(ParseError),
    };
    let masked = b1 & 0x80 != 0;
    let (mut used, len) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (4, u64::from(u16::from_be_bytes([buf[2], buf[3]]))),
        127 if buf.len() >= 10 => (10, u64::from_be_bytes(buf[2..10].try_into().unwrap())),
        126 | 127 => return Ok(None),
        n => (2, u64::from(n)),
    };
    if masked {
        used += 4;
    }
    if buf.len() < used {
        return Ok(None);
    }
    Ok(Some((used, len, ends)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_text_frame() {
        let mut out = Vec::new();
        encode_text(&mut out, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        // RFC 6455 §5.7, "A single-frame masked text message".
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn messages_in_pieces_fragmented_and_with_control_frames() {
        let mut wire = vec![0x81, 0x03, b'a', b'b', b'c']; // one text message
        wire.extend([0x89, 0x00]); // ping
        wire.extend([0x01, 0x01, b'x', 0x80, 0x01, b'y']); // fragmented text
        wire.extend([0x82, 126, 0x01, 0x00]); // binary, 256 bytes
        wire.extend([0u8; 256]);
        wire.extend([0x88, 0x02, 0x03, 0xe8]); // close
        for piece in [1, 3, wire.len()] {
            let mut p = FrameParser::default();
            let mut buf = Vec::new();
            let mut seen = Vec::new();
            for part in wire.chunks(piece) {
                buf.extend_from_slice(part);
                loop {
                    let (used, ev) = p.step(&buf).unwrap();
                    buf.drain(..used);
                    seen.extend(ev);
                    if used == 0 && ev.is_none() || buf.is_empty() {
                        break;
                    }
                }
            }
            assert_eq!(
                seen,
                [Event::Message, Event::Message, Event::Message, Event::Close],
                "pieces of {piece}"
            );
        }
    }
}
