//! HTTP/1.1 wire protocol (RFC 9112), server side: request heads, body framing, the
//! chunked decoder, response encoding and the limits that bound them all; the client
//! side's request writer and response reader; WebSocket framing (RFC 6455). Nothing here
//! knows about pipelines or components.

pub mod chunked;
pub mod client;
pub mod date;
pub mod multipart;
pub mod request;
pub mod response;
pub mod websocket;

use std::time::Duration;

/// Bounds on what one request may make the server hold, with the status each breach gets.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line plus headers (431 when exceeded).
    pub max_head_bytes: usize,
    /// Number of header fields (431).
    pub max_headers: usize,
    /// Request-target length (414).
    pub max_uri_bytes: usize,
    /// Decoded body size (413, refused before the body is read when declared).
    pub max_body_bytes: u64,
    /// A chunk-size line with its extensions (400).
    pub max_chunk_line_bytes: usize,
    /// All trailer fields of a chunked body together (431).
    pub max_trailer_bytes: usize,
    /// From the first byte of a request head to its end; a stalled client is cut off.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may sit with no request.
    pub idle_timeout: Duration,
}

/// Defaults, each named in docs/configuration.md.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
pub const DEFAULT_MAX_HEADERS: usize = 100;
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;
pub const DEFAULT_MAX_TRAILER_BYTES: usize = 16 * 1024;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most header slots a parse may use, whatever the config says.
pub const MAX_HEADERS_CAP: usize = 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_chunk_line_bytes: DEFAULT_MAX_CHUNK_LINE_BYTES,
            max_trailer_bytes: DEFAULT_MAX_TRAILER_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why a request cannot be served; each maps to one status in [`RequestError::status`].
/// After any of these the connection is closed: its framing can no longer be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Malformed syntax or ambiguous framing (RFC 9112 §6.3, §11.2).
    BadRequest(&'static str),
    HeadTooLarge,
    TooManyHeaders,
    UriTooLong,
    BodyTooLarge,
    /// A transfer coding we do not decode (RFC 9112 §6.1).
    NotImplemented,
    /// An `Expect` other than 100-continue (RFC 9110 §10.1.1).
    ExpectationFailed,
    VersionNotSupported,
    /// The head did not arrive within `header_read_timeout`.
    HeadTimeout,
}

impl RequestError {
    /// The one place protocol errors become statuses.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::HeadTimeout => 408,
            RequestError::BodyTooLarge => 413,
            RequestError::UriTooLong => 414,
            RequestError::ExpectationFailed => 417,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::NotImplemented => 501,
            RequestError::VersionNotSupported => 505,
        }
    }

    /// The plain-text body sent with the status (ends in a newline, as upstream's do).
    pub fn body(&self) -> &'static str {
        match self {
            RequestError::BadRequest(_) => "Bad request\n",
            RequestError::HeadTimeout => "Request timed out\n",
            RequestError::BodyTooLarge => "Request body too large\n",
            RequestError::UriTooLong => "URI too long\n",
            RequestError::ExpectationFailed => "Expectation failed\n",
            RequestError::HeadTooLarge => "Request header fields too large\n",
            RequestError::TooManyHeaders => "Too many header fields\n",
            RequestError::NotImplemented => "Transfer coding not implemented\n",
            RequestError::VersionNotSupported => "HTTP version not supported\n",
        }
    }
}

/// Reason phrase for a status code (RFC 9110 §15).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
