//! WebSocket wire protocol (RFC 6455), server side: the opening handshake's checks and
//! `Sec-WebSocket-Accept`, frame heads, unmasking, reassembly of fragmented messages with
//! control frames interleaved, close codes, and frame encoding. Nothing here knows about
//! pipelines; `runtime::server` drives it on an upgraded connection.

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes sent by the server (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// A close frame's payload: 2 bytes of code and at most 123 of reason (§5.5).
const MAX_CLOSE_REASON: usize = 123;

/// Why an opening handshake is refused, with the status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `GET` (405).
    Method,
    /// A header the handshake needs is missing or wrong (400).
    BadRequest(&'static str),
    /// `Sec-WebSocket-Version` is not 13 (426, with the version we speak).
    Version,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Method => 405,
            Refusal::BadRequest(_) => 400,
            Refusal::Version => 426,
        }
    }

    pub fn body(&self) -> &'static str {
        match self {
            Refusal::Method => "websocket: request method is not GET\n",
            Refusal::BadRequest(why) => why,
            Refusal::Version => "websocket: unsupported version (this server speaks 13)\n",
        }
    }
}

/// Checks an upgrade request (§4.2.1) and returns its `Sec-WebSocket-Key`.
pub fn check_handshake<'h>(
    method: &str,
    minor: u8,
    has_body: bool,
    headers: impl Iterator<Item = (&'h str, &'h [u8])>,
) -> Result<&'h [u8], Refusal> {
    if method != "GET" {
        return Err(Refusal::Method);
    }
    if minor == 0 {
        return Err(Refusal::BadRequest("websocket: needs HTTP/1.1\n"));
    }
    if has_body {
        return Err(Refusal::BadRequest(
            "websocket: an upgrade request has no body\n",
        ));
    }
    let (mut upgrade, mut connection, mut key, mut version) = (false, false, None, None);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(super::request::trim(value));
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(super::request::trim(value));
        }
    }
    if !connection {
        return Err(Refusal::BadRequest(
            "websocket: 'upgrade' token not found in 'Connection' header\n",
        ));
    }
    if !upgrade {
        return Err(Refusal::BadRequest(
            "websocket: 'websocket' token not found in 'Upgrade' header\n",
        ));
    }
    if version != Some(b"13".as_slice()) {
        return Err(Refusal::Version);
    }
    // The key is 16 random bytes, base64-encoded (§4.1).
    let key = key.unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if decoded.is_ok_and(|k| k.len() == 16) {
        Ok(key)
    } else {
        Err(Refusal::BadRequest(
            "websocket: 'Sec-WebSocket-Key' is missing or not 16 bytes in base64\n",
        ))
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| super::request::trim(t).eq_ignore_ascii_case(token))
}

/// `Sec-WebSocket-Accept` for a client's key (§4.2.2 step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The `101 Switching Protocols` answer to an accepted handshake.
pub fn write_accept(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// A protocol violation: the connection is closed with this code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// What a complete frame means to the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'b> {
    /// A whole data message (reassembled if it came in fragments).
    Message {
        text: bool,
        payload: &'b [u8],
    },
    Ping(&'b [u8]),
    Pong,
    /// The peer's close frame: its code, if it sent one.
    Close(Option<u16>),
    /// A fragment of a message that is not complete yet.
    Fragment,
}

/// Reads frames from a connection's buffer and reassembles messages. One per connection.
pub struct Reader {
    max_message_bytes: u64,
    /// The first frame's opcode of a fragmented message in progress.
    partial: Option<u8>,
    /// Payload of the fragments so far; unfragmented messages are never copied here.
    fragments: Vec<u8>,
}

impl Reader {
    pub fn new(max_message_bytes: u64) -> Self {
        Reader {
            max_message_bytes,
            partial: None,
            fragments: Vec::new(),
        }
    }

    /// Frees the reassembly buffer when no fragmented message is in progress.
    pub fn trim(&mut self) {
        if self.partial.is_none() {
            self.fragments = Vec::new();
        }
    }

    /// Takes the next complete frame from the start of `input`, unmasking it in place.
    /// `Ok(None)`: more bytes are needed. `Ok(Some((n, event)))`: the frame was `n`
    /// bytes; the event borrows `input` or the reassembly buffer until the next call.
    pub fn next<'b>(
        &'b mut self,
        input: &'b mut [u8],
    ) -> Result<Option<(usize, Event<'b>)>, Violation> {
        let Some(head) = parse_head(input)? else {
            return Ok(None);
        };
        let is_control = head.opcode & 0x8 != 0;
        // Refuse an oversized message from its head, before buffering its payload.
        if !is_control {
            // Only a message in progress counts: `fragments` may hold the last one.
            let so_far = if head.opcode == OP_CONTINUATION && self.partial.is_some() {
                self.fragments.len() as u64
            } else {
                0
            };
            if so_far.saturating_add(head.payload_len) > self.max_message_bytes {
                return Err(violation(CLOSE_TOO_BIG, "message too big"));
            }
        }
        let end = head.header_len as u64 + head.payload_len;
        if (input.len() as u64) < end {
            return Ok(None);
        }
        let end = end as usize;
        let payload = &mut input[head.header_len..end];
        unmask(payload, head.mask);
        let payload = &*payload;
        let event = match head.opcode {
            OP_PING => Event::Ping(payload),
            OP_PONG => Event::Pong,
            OP_CLOSE => Event::Close(close_code(payload)?),
            OP_TEXT | OP_BINARY => {
                if self.partial.is_some() {
                    return Err(violation(
                        CLOSE_PROTOCOL_ERROR,
                        "new message inside a fragmented one",
                    ));
                }
                if head.fin {
                    message(head.opcode, payload)?
                } else {
                    self.partial = Some(head.opcode);
                    self.fragments.clear();
                    self.fragments.extend_from_slice(payload);
                    Event::Fragment
                }
            }
            _ => {
                // OP_CONTINUATION: parse_head refused every other opcode.
                let Some(opcode) = self.partial else {
                    return Err(violation(
                        CLOSE_PROTOCOL_ERROR,
                        "continuation frame without a message",
                    ));
                };
                self.fragments.extend_from_slice(payload);
                if head.fin {
                    self.partial = None;
                    message(opcode, &self.fragments)?
                } else {
                    Event::Fragment
                }
            }
        };
        Ok(Some((end, event)))
    }
}

fn message(opcode: u8, payload: &[u8]) -> Result<Event<'_>, Violation> {
    let text = opcode == OP_TEXT;
    if text && std::str::from_utf8(payload).is_err() {
        return Err(violation(CLOSE_INVALID_DATA, "text message is not UTF-8"));
    }
    Ok(Event::Message { text, payload })
}

/// A frame's head (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHead {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: u64,
}

fn parse_head(buf: &[u8]) -> Result<Option<FrameHead>, Violation> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        // No extension was negotiated, so no RSV bit may be set.
        return Err(violation(CLOSE_PROTOCOL_ERROR, "reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(violation(CLOSE_PROTOCOL_ERROR, "unknown opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(violation(
            CLOSE_PROTOCOL_ERROR,
            "client frames must be masked",
        ));
    }
    let (payload_len, len_bytes) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let n = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if n >> 63 != 0 {
                    return Err(violation(CLOSE_PROTOCOL_ERROR, "payload length too large"));
                }
                (n, 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    if opcode & 0x8 != 0 && (!fin || payload_len > 125) {
        return Err(violation(
            CLOSE_PROTOCOL_ERROR,
            "control frames must be whole and at most 125 bytes",
        ));
    }
    let header_len = 2 + len_bytes + 4;
    let Some(mask) = buf.get(header_len - 4..header_len) else {
        return Ok(None);
    };
    Ok(Some(FrameHead {
        fin,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        header_len,
        payload_len,
    }))
}

/// XORs the payload with the 4-byte key (§5.3), eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so the key lines up from its first byte.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The code of a close frame's payload (§5.5.1, §7.4), validated.
fn close_code(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(violation(CLOSE_PROTOCOL_ERROR, "close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // 1004-1006 and 1015 are reserved, never sent; 1016-2999 are unassigned.
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(violation(CLOSE_PROTOCOL_ERROR, "invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(violation(CLOSE_INVALID_DATA, "close reason is not UTF-8"));
            }
            Ok(Some(code))
        }
    }
}

/// Appends one unmasked, unfragmented frame (servers never mask, §5.1).
pub fn write_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a close frame; the reason is cut at a character boundary to fit §5.5.
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
    write_frame(out, OP_CLOSE, &payload[..2 + cut]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `key`.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, opcode, payload);
        if !fin {
            out[0] &= 0x7F;
        }
        out[1] |= 0x80;
        let at = out.len() - payload.len();
        out.splice(at..at, key);
        let body = &mut out[at + 4..];
        for (i, b) in body.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        out
    }

    #[test]
    fn accept_key_matches_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn handshake_checks_method_headers_and_version() {
        let good: Vec<(&str, &[u8])> = vec![
            ("Upgrade", b"WebSocket"),
            ("Connection", b"keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", b"13"),
        ];
        let check = |m, h: &[(&'static str, &'static [u8])]| {
            check_handshake(m, 1, false, h.iter().copied())
        };
        assert_eq!(check("GET", &good), Ok(&b"dGhlIHNhbXBsZSBub25jZQ=="[..]));
        assert_eq!(check("POST", &good), Err(Refusal::Method));
        let mut v8 = good.clone();
        v8[3].1 = b"8";
        assert_eq!(check("GET", &v8).unwrap_err().status(), 426);
        assert_eq!(check("GET", &good[1..]).unwrap_err().status(), 400);
        let mut short_key = good.clone();
        short_key[2].1 = b"c2hvcnQ=";
        assert_eq!(check("GET", &short_key).unwrap_err().status(), 400);
    }

    #[test]
    fn reads_masked_frames_of_each_length_form() {
        for len in [0, 5, 125, 126, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut buf = client_frame(true, OP_BINARY, &payload, [1, 2, 3, 4]);
            let total = buf.len();
            let mut reader = Reader::new(1 << 20);
            // Every prefix is incomplete.
            for cut in [1, 2, total / 2, total - 1] {
                assert_eq!(
                    reader.next(&mut buf.clone()[..cut]),
                    Ok(None),
                    "{len} {cut}"
                );
            }
            let (n, event) = reader.next(&mut buf).unwrap().unwrap();
            assert_eq!(n, total);
            assert_eq!(
                event,
                Event::Message {
                    text: false,
                    payload: &payload
                }
            );
        }
    }

    #[test]
    fn reassembles_fragments_around_a_ping() {
        let mut stream = client_frame(false, OP_TEXT, b"Hel", [9, 8, 7, 6]);
        stream.extend(client_frame(true, OP_PING, b"p", [1, 1, 1, 1]));
        stream.extend(client_frame(false, OP_CONTINUATION, b"lo, ", [0, 0, 0, 1]));
        stream.extend(client_frame(true, OP_CONTINUATION, b"world", [5, 5, 5, 5]));
        let mut reader = Reader::new(1024);
        let mut events = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let (n, event) = reader.next(&mut stream[at..]).unwrap().unwrap();
            events.push(format!("{event:?}"));
            at += n;
        }
        assert_eq!(
            events,
            [
                "Fragment",
                "Ping([112])",
                "Fragment",
                r#"Message { text: true, payload: [72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100] }"#
            ]
        );
    }

    #[test]
    fn violations_get_their_close_codes() {
        let code = |frames: Vec<Vec<u8>>, limit: u64| {
            let mut reader = Reader::new(limit);
            for mut f in frames {
                if let Err(v) = reader.next(&mut f) {
                    return v.code;
                }
            }
            0
        };
        let mut unmasked = Vec::new();
        write_frame(&mut unmasked, OP_TEXT, b"hi");
        assert_eq!(code(vec![unmasked], 100), CLOSE_PROTOCOL_ERROR);
        let bad_utf8 = client_frame(true, OP_TEXT, &[0xC3, 0x28], [1, 2, 3, 4]);
        assert_eq!(code(vec![bad_utf8], 100), CLOSE_INVALID_DATA);
        let big = client_frame(true, OP_BINARY, &[0; 101], [1, 2, 3, 4]);
        assert_eq!(code(vec![big], 100), CLOSE_TOO_BIG);
        // Too big across fragments, refused at the fragment that crosses the limit.
        let a = client_frame(false, OP_BINARY, &[0; 60], [1, 2, 3, 4]);
        let b = client_frame(true, OP_CONTINUATION, &[0; 60], [1, 2, 3, 4]);
        assert_eq!(code(vec![a, b], 100), CLOSE_TOO_BIG);
        let stray = client_frame(true, OP_CONTINUATION, b"x", [1, 2, 3, 4]);
        assert_eq!(code(vec![stray], 100), CLOSE_PROTOCOL_ERROR);
        // A stray continuation after a reassembled message is a protocol error, not
        // an oversized one.
        let a = client_frame(false, OP_BINARY, &[0; 60], [1, 2, 3, 4]);
        let b = client_frame(true, OP_CONTINUATION, &[0; 30], [1, 2, 3, 4]);
        let stray = client_frame(true, OP_CONTINUATION, &[0; 60], [1, 2, 3, 4]);
        assert_eq!(code(vec![a, b, stray], 100), CLOSE_PROTOCOL_ERROR);
        let a = client_frame(false, OP_TEXT, b"x", [1, 2, 3, 4]);
        let b = client_frame(true, OP_TEXT, b"y", [1, 2, 3, 4]);
        assert_eq!(code(vec![a, b], 100), CLOSE_PROTOCOL_ERROR);
        let split_ping = client_frame(false, OP_PING, b"x", [1, 2, 3, 4]);
        assert_eq!(code(vec![split_ping], 100), CLOSE_PROTOCOL_ERROR);
        let reserved = client_frame(true, OP_CLOSE, &1005u16.to_be_bytes(), [1, 2, 3, 4]);
        assert_eq!(code(vec![reserved], 100), CLOSE_PROTOCOL_ERROR);
        let mut rsv = client_frame(true, OP_TEXT, b"x", [1, 2, 3, 4]);
        rsv[0] |= 0x40;
        assert_eq!(code(vec![rsv], 100), CLOSE_PROTOCOL_ERROR);
    }

    #[test]
    fn close_frames_carry_code_and_a_bounded_reason() {
        let mut out = Vec::new();
        write_close(&mut out, CLOSE_INTERNAL_ERROR, &"é".repeat(100));
        assert_eq!(out[0], 0x88);
        let len = out[1] as usize;
        assert!(len <= 125);
        assert_eq!(&out[2..4], &1011u16.to_be_bytes());
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        let mut echoed = client_frame(true, OP_CLOSE, &out[2..], [3, 3, 3, 3]);
        let mut reader = Reader::new(10);
        let (_, event) = reader.next(&mut echoed).unwrap().unwrap();
        assert_eq!(event, Event::Close(Some(1011)));
    }
}
