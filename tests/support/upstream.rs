//! A real HTTP/1.1 upstream for tests: a thread per connection on a loopback port,
//! keep-alive, answering each request with what a handler decides. Counts connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// 1 for the first request on its connection, 2 for the next, ...
    pub on_connection: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to do with a request.
pub enum Reply {
    /// Status, extra headers, body (Content-Length framing).
    Send(u16, Vec<(String, String)>, Vec<u8>),
    /// Chunked framing.
    Chunked(u16, Vec<u8>),
    /// Say nothing for this long, then close.
    Stall(Duration),
    /// Send half of a response, then close.
    CloseMidResponse,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Upstream {
        Self::start_with(handler, None)
    }

    /// The same over TLS with `config` (the caller makes the certificates).
    pub fn start_tls(
        handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
        config: Arc<rustls::ServerConfig>,
    ) -> Upstream {
        Self::start_with(handler, Some(config))
    }

    fn start_with(
        handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (c, r, s) = (connections.clone(), requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::Relaxed);
                let (handler, r, tls) = (handler.clone(), r.clone(), tls.clone());
                std::thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .unwrap();
                    match tls {
                        None => serve(stream, &*handler, &r),
                        Some(config) => {
                            let conn = rustls::ServerConnection::new(config).unwrap();
                            serve(rustls::StreamOwned::new(conn, stream), &*handler, &r)
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            connections,
            requests,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

fn serve<S: Read + Write>(
    stream: S,
    handler: &(dyn Fn(&Seen, usize) -> Reply + Send + Sync),
    count: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream);
    let mut on_connection = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap_or(0));
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        on_connection += 1;
        let n = count.fetch_add(1, Ordering::Relaxed) + 1;
        let seen = Seen {
            method,
            target,
            headers,
            body,
            on_connection,
        };
        let reply = handler(&seen, n);
        let written = match reply {
            Reply::Send(status, extra, body) => {
                let mut r = format!(
                    "HTTP/1.1 {status} Status{status}\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (n, v) in extra {
                    r.push_str(&format!("{n}: {v}\r\n"));
                }
                r.push_str("\r\n");
                let mut bytes = r.into_bytes();
                bytes.extend_from_slice(&body);
                reader.get_mut().write_all(&bytes)
            }
            Reply::Chunked(status, body) => {
                let mut bytes = format!(
                    "HTTP/1.1 {status} Status{status}\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                .into_bytes();
                for piece in body.chunks(7) {
                    bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    bytes.extend_from_slice(piece);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
                reader.get_mut().write_all(&bytes)
            }
            Reply::Stall(d) => {
                std::thread::sleep(d);
                return;
            }
            Reply::CloseMidResponse => {
                let _ = reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
                let _ = reader.get_mut().flush();
                return;
            }
        };
        if written.and_then(|()| reader.get_mut().flush()).is_err() {
            return;
        }
    }
}
