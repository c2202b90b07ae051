//! The command line as a user meets it: `lint` with located errors, `--set`, env
//! interpolation, `--version`, and graceful shutdown on SIGTERM under load.

mod support;

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::upstream::{Reply, Upstream};
use support::{bin, connect, Reader, Sluice, TempDir};

#[test]
fn lint_reports_every_file_with_line_and_column() {
    let dir = TempDir::new();
    let good = dir.file(
        "good.yaml",
        "input:\n  http_server:\n    path: /x\noutput:\n  sync_response: {}\n",
    );
    let unknown = dir.file(
        "unknown.yaml",
        "input:\n  http_server:\n    path: /x\n    bogus_field: 1\noutput:\n  drop: {}\n",
    );
    let bad_duration = dir.file(
        "duration.yaml",
        "input:\n  http_server:\n    timeout: soon\noutput:\n  drop: {}\n",
    );
    let out = Command::new(bin())
        .arg("lint")
        .args([&good, &unknown, &bad_duration])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("{}:4:5: ", unknown.display())),
        "{text}"
    );
    assert!(lines[0].contains("unknown field `bogus_field`"));
    assert!(
        lines[1].starts_with(&format!("{}:3:14: ", bad_duration.display())),
        "{text}"
    );
    assert!(lines[1].contains("invalid duration"));

    let ok = Command::new(bin()).arg("lint").arg(&good).output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(ok.stdout.is_empty());
}

#[test]
fn lint_names_a_missing_environment_variable() {
    let dir = TempDir::new();
    let conf = dir.file(
        "env.yaml",
        "input:\n  http_server:\n    path: ${SLUICE_TEST_SURELY_UNSET}\noutput:\n  drop: {}\n",
    );
    let out = Command::new(bin()).arg("lint").arg(&conf).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(":3:11: required environment variable SLUICE_TEST_SURELY_UNSET is not set"),
        "{text}"
    );
}

#[test]
fn set_overrides_and_env_defaults_apply() {
    // The path comes from an env default, then --set replaces it.
    let s = Sluice::start_with(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: ${SLUICE_TEST_PATH:/first}\noutput:\n  sync_response: {}\n",
        &["--set", "input.http_server.path=/second", "--set", &format!("runtime.cpus=[{}]", support::next_cpu()), "--set", "runtime.shards=1"],
    );
    let mut c = connect(s.addr);
    c.write_all(b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        .unwrap();
    let resp = Reader::new(c).response(false).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "ok".to_string()));
}

#[test]
fn version_flag() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// Clients keep sending while SIGTERM arrives: every request that got an answer got 200
/// (with its own body) or 503, none is left hanging, and the process exits 0.
#[test]
fn sigterm_during_load_loses_no_accepted_request() {
    let mut s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /echo\noutput:\n  sync_response: {}\nshutdown_timeout: 5s\n",
    );
    let addr = s.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let closing = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, ok, closing) = (stop.clone(), ok.clone(), closing.clone());
        workers.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut n = 0;
            'conns: while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok(mut c) = std::net::TcpStream::connect(addr) else {
                    break; // listener closed: shutdown has begun
                };
                c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
                let mut r = Reader::new(c.try_clone().unwrap());
                loop {
                    n += 1;
                    let body = format!("w{w}-{n}");
                    let req = format!(
                        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if c.write_all(req.as_bytes()).is_err() {
                        continue 'conns; // closed before this request was sent
                    }
                    match r.response(false) {
                        Some(resp) if resp.status == 200 => {
                            assert_eq!(resp.text(), body);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(resp) => {
                            assert_eq!(
                                (resp.status, resp.text()),
                                (503, "Server closing\n".into())
                            );
                            closing.fetch_add(1, Ordering::Relaxed);
                            continue 'conns;
                        }
                        // Closed without reading this request: it was never accepted.
                        None => continue 'conns,
                    }
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = ok.load(Ordering::Relaxed);
    assert!(before > 100, "load did not start: {before}");
    let code = s.terminate(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a worker saw a wrong answer");
    }
    assert_eq!(code, Some(0));
    assert!(ok.load(Ordering::Relaxed) >= before);
}

/// glommio locks memory for io_uring; a non-root user usually has `ulimit -l 8192`.
/// sluice must size its io memory to fit, with a shard per CPU.
#[test]
fn starts_as_a_non_root_user_with_an_8_mib_memlock_limit() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n");
    let has_setpriv = Command::new("setpriv").arg("--help").output().is_ok();
    if is_root.ok() != Some(true) || !has_setpriv {
        eprintln!("skipped: needs root and setpriv to switch to an unprivileged user");
        return;
    }
    let dir = TempDir::new();
    let exe = dir.0.join("sluice");
    std::fs::copy(bin(), &exe).unwrap();
    let conf = dir.file(
        "c.yaml",
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /x\noutput:\n  sync_response: {}\n",
    );
    use std::os::unix::fs::PermissionsExt;
    for p in [&dir.0, &exe, &conf] {
        let mode = if p.is_dir() || p.as_path() == exe.as_path() {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // sh and setpriv both exec, so the child's pid is sluice's and kill reaches it.
    let script = format!(
        "ulimit -l 8192 && exec setpriv --reuid=nobody --regid=nogroup --clear-groups \\
         {} run {} --set http.address=127.0.0.1:0",
        exe.display(),
        conf.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Warnings (glommio's, under the small memlock limit) may come first.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let started = line.contains("listening on");
        seen.push(line);
        if started {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.last().is_some_and(|l| l.contains("listening on")),
        "did not start as nobody: {seen:?}"
    );
}

/// A request still in flight when `shutdown_timeout` runs out is abandoned, and the
/// exit status says so.
#[test]
fn shutdown_that_abandons_requests_exits_non_zero() {
    let mut s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\n    timeout: 30s\n\
         output:\n  broker:\n    pattern: fan_out\n    outputs:\n      - reject: never delivered\n\
         shutdown_timeout: 500ms\n",
    );
    let mut c = connect(s.addr);
    c.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    s.wait_for_metric("input_received{label=\"\",path=\"root.input\"} 1");
    let started = Instant::now();
    let code = s.terminate(Duration::from_secs(5));
    assert_eq!(code, Some(1));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// While the shard drains, `/ready` says so (upstream's 503 with a JSON reason) so a
/// balancer stops sending, and the request in flight before SIGTERM still gets its answer.
#[test]
fn ready_answers_503_while_draining() {
    let up = Upstream::start(|_, _| {
        std::thread::sleep(Duration::from_millis(800));
        Reply::Send(200, vec![], b"delivered".to_vec())
    });
    let mut s = Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\n\
         output:\n  http_client:\n    url: {}\n    verb: POST\n    propagate_response: true\n\
         shutdown_timeout: 5s\n",
        up.url("/slow")
    ));
    let mut c = connect(s.addr);
    // The /ready behind the slow request is read only once that request is answered,
    // which is after SIGTERM has arrived.
    c.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.wait_for_metric("input_received{label=\"\",path=\"root.input\"} 1");
    let answers = std::thread::spawn(move || {
        let mut r = Reader::new(c);
        let first = r
            .response(false)
            .expect("the request in flight is answered");
        let second = r.response(false).expect("/ready is answered");
        (first, second, r.closed())
    });
    assert_eq!(s.terminate(Duration::from_secs(5)), Some(0));
    let (first, ready, closed) = answers.join().unwrap();
    assert_eq!((first.status, first.text()), (200, "delivered".into()));
    assert_eq!(
        (ready.status, ready.text()),
        (503, r#"{"error":"shutting down"}"#.into())
    );
    assert_eq!(ready.header("connection"), Some("close"));
    assert!(closed, "the connection stays open after draining");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let s = Sluice::start_with(
        "http:\n  address: 127.0.0.1:0\ninput:\n  http_server:\n    path: /p\noutput:\n  drop: {}\n",
        &["--set", "runtime.shards=1", "--set", "logger.format=json", "--log.level", "debug"],
    );
    drop(s.connect());
    // The start-up line was consumed by `start`; ask for more through SIGTERM, and
    // read every line up to the exit.
    let mut s = s;
    assert_eq!(s.terminate(Duration::from_secs(5)), Some(0));
    // The reader thread ends at the pipe's end of file, which ends this loop.
    let lines: Vec<String> =
        std::iter::from_fn(|| s.logs.recv_timeout(Duration::from_secs(5)).ok()).collect();
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let shutdown = objects
        .iter()
        .find(|v| v["msg"] == "shutting down")
        .unwrap_or_else(|| panic!("no shutdown line in {lines:?}"));
    assert_eq!(shutdown["level"], "info");
    assert_eq!(shutdown["@service"], "sluice");
}
