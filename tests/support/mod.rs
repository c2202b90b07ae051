//! Shared helpers for integration tests: start a real `sluice` process on a loopback
//! port, talk raw HTTP/1.1 to it, read responses the way a client would.

#![allow(dead_code)]

pub mod tansu;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running sluice process; killed on drop.
pub struct Sluice {
    pub child: Child,
    /// The address of the first listener (the shared `http.address` server).
    pub addr: SocketAddr,
    /// Every address it logged.
    pub addrs: Vec<SocketAddr>,
    /// Stderr lines after the start-up line.
    pub logs: mpsc::Receiver<String>,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn file(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The CPUs this test process may use, taken in turn: tests run in parallel, and one
/// shard each, all on the first CPU, would queue behind each other.
pub fn next_cpu() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let allowed = sluice::runtime::allowed_cpus();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    allowed[n % allowed.len()]
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

impl Sluice {
    /// Starts `sluice run` on `yaml` (which should listen on `127.0.0.1:0`) with one
    /// shard unless the config says otherwise, and waits for its start-up line.
    pub fn start(yaml: &str) -> Sluice {
        let cpus = format!("runtime.cpus=[{}]", next_cpu());
        Self::start_with(yaml, &["--set", "runtime.shards=1", "--set", &cpus])
    }

    pub fn start_with(yaml: &str, args: &[&str]) -> Sluice {
        let dir = TempDir::new();
        let path = dir.file("config.yaml", yaml);
        let mut child = Command::new(bin())
            .arg("run")
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let list = rest.split('"').next().unwrap();
                        let addrs: Vec<SocketAddr> =
                            list.split(", ").map(|a| a.parse().unwrap()).collect();
                        return Sluice {
                            child,
                            addr: addrs[0],
                            addrs,
                            logs: rx,
                            _dir: dir,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().unwrap();
                    panic!("sluice did not start ({status}); config:\n{yaml}");
                }
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Polls `/metrics` until it has `line` (a whole line), for up to 10 s: the way to
    /// know a request reached the pipeline without sleeping on a guess.
    pub fn wait_for_metric(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = ureq::get(&self.url("/metrics"))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .unwrap_or_default();
            if text.lines().any(|l| l == line) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no `{line}` in /metrics:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, wait: Duration) -> Option<i32> {
        unsafe_kill(self.child.id(), 15);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads responses from one connection, keeping bytes between calls.
pub struct Reader<R: Read> {
    inner: BufReader<R>,
}

impl<R: Read> Reader<R> {
    pub fn new(r: R) -> Self {
        Reader {
            inner: BufReader::new(r),
        }
    }

    /// Reads one response (`head_only` for answers to HEAD). `None` on EOF.
    pub fn response(&mut self, head_only: bool) -> Option<Response> {
        let mut line = String::new();
        if self.inner.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.inner.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':')?;
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; if head_only || status < 200 { 0 } else { len }];
        self.inner.read_exact(&mut body).ok()?;
        Some(Response {
            status,
            headers,
            body,
        })
    }

    /// The buffered stream, for reading what follows a response (such as frames).
    pub fn get_mut(&mut self) -> &mut BufReader<R> {
        &mut self.inner
    }

    /// True if the peer closed (EOF) within the read timeout.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.inner.read(&mut b), Ok(0) | Err(_))
    }
}

/// Sends `raw` on a fresh connection and reads one response.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    Reader::new(s).response(false).expect("a response")
}
#[allow(dead_code)]
pub mod upstream;
