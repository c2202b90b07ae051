//! Response encoding (RFC 9112 §4, §6): status line, headers, `Date`, framing, body,
//! appended to a connection's write buffer so pipelined responses leave in one write.

use super::reason;

/// How a response is framed and whether the connection closes after it.
#[derive(Debug, Clone, Copy)]
pub struct Framing<'d> {
    /// HTTP minor version of the request (responses to 1.0 say so).
    pub minor: u8,
    /// `Connection: close` is sent and the connection closed after this response.
    pub close: bool,
    /// Answering `HEAD`: headers (with the GET length) but no body.
    pub head_only: bool,
    /// IMF-fixdate for the `Date` header.
    pub date: &'d [u8; 29],
}

/// Appends a complete response. Header fields with CR or LF in them are dropped, so a
/// value from a message's metadata can never split the response.
pub fn write<'h>(
    out: &mut Vec<u8>,
    status: u16,
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    body: &[u8],
    f: Framing<'_>,
) {
    // Room for a typical head and the body at once, so the appends below do not grow it.
    out.reserve(160 + body.len());
    out.extend_from_slice(if f.minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    // Statuses are three digits (100-999, checked where they are configured).
    let status = status.clamp(100, 999);
    out.extend_from_slice(&[
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if !is_token(name) || value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(f.date);
    out.extend_from_slice(b"\r\n");
    // RFC 9110 §8.6: no Content-Length on 1xx and 204.
    if status >= 200 && status != 204 {
        out.extend_from_slice(b"Content-Length: ");
        push_u64(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if f.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if f.minor == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !f.head_only {
        out.extend_from_slice(body);
    }
}

/// A plain-text response (error bodies and service endpoints).
pub fn write_text(out: &mut Vec<u8>, status: u16, body: &str, f: Framing<'_>) {
    let headers: [(&[u8], &[u8]); 1] = [(b"Content-Type", b"text/plain; charset=utf-8")];
    write(out, status, headers, body.as_bytes(), f);
}

/// `HTTP/1.1 100 Continue` (RFC 9110 §15.2.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// RFC 9110 §5.6.2 token characters.
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| TOKEN[b as usize])
}

/// `TOKEN[b]`: whether byte `b` may appear in a token (a table: checked per header byte).
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_status_headers_length_and_drops_injections() {
        let mut out = Vec::new();
        let date = *b"Sun, 06 Nov 1994 08:49:37 GMT";
        let f = Framing {
            minor: 1,
            close: false,
            head_only: false,
            date: &date,
        };
        let headers: [(&[u8], &[u8]); 2] = [(b"X-A", b"1"), (b"X-B", b"a\r\nSet-Cookie: x")];
        write(&mut out, 201, headers, b"body", f);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 201 Created\r\nX-A: 1\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 4\r\n\r\nbody"
        );
    }

    #[test]
    fn tokens_are_rfc_9110_tchars() {
        assert!(is_token(b"X-Request-Id"));
        assert!(is_token(b"!#$%&'*+-.^_`|~09AZaz"));
        for bad in [
            &b""[..],
            b"a b",
            b"a:b",
            b"a(b",
            b"\"a\"",
            b"a\x80",
            b"a/b",
            b"a\tb",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn head_keeps_length_but_sends_no_body() {
        let mut out = Vec::new();
        let date = [b'x'; 29];
        let f = Framing {
            minor: 0,
            close: true,
            head_only: true,
            date: &date,
        };
        write_text(&mut out, 200, "pong", f);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(s.contains("Content-Length: 4\r\n"));
        assert!(s.ends_with("Connection: close\r\n\r\n"));
    }
}
