//! The HTTP/1.1 server as a client sees it: keep-alive, pipelining, bodies, limits,
//! smuggling refusals, timeouts, routing, service endpoints. Raw bytes over loopback
//! against a running `sluice`, plus a real client crate (ureq).

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::{connect, exchange, Reader, Sluice};

/// Echo pipeline on the shared server, with extra `http_server` fields.
fn echo(extra: &str) -> Sluice {
    Sluice::start(&format!(
        "http:\n  address: 127.0.0.1:0\n\
         input:\n  http_server:\n    path: /echo\n    allowed_verbs: [POST, GET, HEAD]\n{extra}\
         output:\n  sync_response: {{}}\n"
    ))
}

#[test]
fn real_client_round_trip_and_service_endpoints() {
    let s = echo("");
    let agent = ureq::AgentBuilder::new().build();
    let resp = agent.post(&s.url("/echo")).send_string("hello").unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(resp.header("date").unwrap().ends_with(" GMT"));
    assert_eq!(resp.into_string().unwrap(), "hello");

    let ping = agent.get(&s.url("/ping")).call().unwrap();
    assert_eq!(ping.into_string().unwrap(), "pong");
    let ready = agent.get(&s.url("/benthos/ready")).call().unwrap();
    assert_eq!(ready.status(), 200);
    let version = agent
        .get(&s.url("/version"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    // The echo path is also served below root_path on the shared server.
    let under_root = agent
        .post(&s.url("/benthos/echo"))
        .send_string("x")
        .unwrap();
    assert_eq!(under_root.into_string().unwrap(), "x");

    let metrics = agent
        .get(&s.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("input_received{label=\"\",path=\"root.input\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("output_sent{label=\"\",path=\"root.output\"} 2"));
    assert!(metrics.contains("# TYPE input_latency_ns histogram"));
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let s = echo("");
    let mut c = connect(s.addr);
    let mut r = Reader::new(c.try_clone().unwrap());
    for i in 0..5 {
        let body = format!("msg-{i}");
        write!(
            c,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let resp = r.response(false).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), body);
        assert_eq!(resp.header("connection"), None);
    }
    // HTTP/1.0 closes unless asked to keep alive.
    write!(c, "POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi").unwrap();
    let resp = r.response(false).unwrap();
    assert_eq!(resp.text(), "hi");
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(r.closed());
}

#[test]
fn ten_pipelined_requests_in_one_write_are_answered_in_order() {
    let s = echo("");
    let mut c = connect(s.addr);
    let mut all = Vec::new();
    for i in 0..10 {
        let body = format!("request-{i}");
        write!(
            all,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
    c.write_all(&all).unwrap();
    let mut r = Reader::new(c);
    for i in 0..10 {
        let resp = r.response(false).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), format!("request-{i}"));
    }
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let s = echo("");
    let raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1 ; a=\"b\"\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
    let mut c = connect(s.addr);
    // Sent in small pieces so the decoder has to resume mid-line.
    for piece in raw.chunks(7) {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let resp = Reader::new(c).response(false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "hello world");
}

#[test]
fn expect_100_continue() {
    let s = echo("");
    let mut c = connect(s.addr);
    let mut r = Reader::new(c.try_clone().unwrap());
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let cont = r.response(false).unwrap();
    assert_eq!(cont.status, 100);
    c.write_all(b"body").unwrap();
    let resp = r.response(false).unwrap();
    assert_eq!((resp.status, resp.text()), (200, "body".into()));

    // A refused request is answered without asking for the body, then closed.
    c.write_all(
        b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let resp = r.response(false).unwrap();
    assert_eq!(resp.status, 404);
    assert!(r.closed());

    // Too large: 413 at once, the body is never requested.
    let resp = exchange(
        s.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(resp.status, 413);
}

#[test]
fn head_answers_headers_only() {
    let s = echo("");
    let mut c = connect(s.addr);
    c.write_all(b"HEAD /ping HTTP/1.1\r\nHost: x\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = Reader::new(c);
    let head = r.response(true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("4"));
    assert!(head.body.is_empty());
    // The next response starts right after the head: no stray body bytes.
    assert_eq!(r.response(false).unwrap().text(), "pong");
}

#[test]
fn each_limit_has_its_status() {
    let s = echo(
        "    max_head_bytes: 2048\n    max_headers: 20\n    max_uri_bytes: 256\n    max_body_bytes: 1000\n",
    );
    let long_header = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(3000)
    );
    assert_eq!(exchange(s.addr, long_header.as_bytes()).status, 431);

    let mut many = String::from("POST /echo HTTP/1.1\r\nHost: x\r\n");
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(exchange(s.addr, many.as_bytes()).status, 431);

    let long_uri = format!("GET /echo?{} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(300));
    assert_eq!(exchange(s.addr, long_uri.as_bytes()).status, 414);

    // 413 is decided from Content-Length alone: the body is never sent here.
    let started = Instant::now();
    let resp = exchange(
        s.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
    );
    assert_eq!(resp.status, 413);
    assert!(started.elapsed() < Duration::from_secs(2));

    // A chunked body over the limit is cut off as it decodes.
    let chunked = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n{}\r\n0\r\n\r\n",
        "z".repeat(1001)
    );
    assert_eq!(exchange(s.addr, chunked.as_bytes()).status, 413);

    // Unknown path and wrong verb.
    let resp = exchange(
        s.addr,
        b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(
        (resp.status, resp.text()),
        (404, "404 page not found\n".into())
    );
    let resp = exchange(s.addr, b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (resp.status, resp.text()),
        (405, "Incorrect method\n".into())
    );
}

#[test]
fn smuggling_shapes_get_400_and_close() {
    let s = echo("");
    let cases: [&[u8]; 7] = [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
    ];
    for raw in cases {
        let mut c = connect(s.addr);
        c.write_all(raw).unwrap();
        // A smuggled second request must never be answered.
        c.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut r = Reader::new(c);
        let resp = r.response(false).unwrap();
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(raw));
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(
            r.closed(),
            "connection left open after {}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn a_stalled_client_does_not_delay_others_and_is_cut_off() {
    let s = echo("    header_read_timeout: 2s\n");
    // Half a head, then nothing. The header timer starts after `stalled_at`.
    let stalled_at = Instant::now();
    let mut stalled = connect(s.addr);
    stalled
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    // Others are served at once, many times over, while it stalls.
    let started = Instant::now();
    for _ in 0..50 {
        let resp = exchange(
            s.addr,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nk",
        );
        assert_eq!(resp.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    // The stalled one is answered 408 and closed after the header timeout.
    let mut r = Reader::new(stalled);
    let resp = r.response(false).unwrap();
    assert_eq!(resp.status, 408);
    assert!(stalled_at.elapsed() >= Duration::from_secs(2));
    assert!(r.closed());
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let s = echo("    idle_timeout: 300ms\n");
    // Before the connect: sluice's idle timer cannot start earlier.
    let started = Instant::now();
    let c = connect(s.addr);
    assert!(Reader::new(c).closed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn a_connection_idle_past_the_trim_point_serves_its_next_request() {
    // After 1 s idle a connection frees its buffers, the read buffer too; the next
    // request must find everything it needs, and the idle timeout still runs.
    let s = echo("    idle_timeout: 2500ms\n");
    let c = connect(s.addr);
    let mut r = Reader::new(c.try_clone().unwrap());
    let mut c = c;
    let body = "x".repeat(3000); // more than the first read buffer holds
    for round in 0..2 {
        write!(
            c,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let resp = r.response(false).unwrap();
        assert_eq!(
            (resp.status, resp.text()),
            (200, body.clone()),
            "round {round}"
        );
        std::thread::sleep(Duration::from_millis(1300));
    }
    // 1.3 s after the last answer: still open. It closes at 2.5 s.
    let started = Instant::now();
    assert!(r.closed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn a_second_instance_on_the_same_port_exits_non_zero() {
    let first = echo("");
    let dir = support::TempDir::new();
    let conf = dir.file(
        "second.yaml",
        &format!(
            "http:\n  address: {}\ninput:\n  http_server:\n    path: /echo\noutput:\n  sync_response: {{}}\n",
            first.addr
        ),
    );
    let out = std::process::Command::new(support::bin())
        .arg("run")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already in use by another process"),
        "{stderr}"
    );
    // The first instance still serves.
    let resp = exchange(first.addr, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(resp.text(), "pong");
}

#[test]
fn bad_verbs_config_and_unsupported_fields_are_refused() {
    let dir = support::TempDir::new();
    let conf = dir.file(
        "c.yaml",
        "input:\n  http_server:\n    path: /x\n    rate_limit: foo\noutput:\n  drop: {}\n",
    );
    let out = std::process::Command::new(support::bin())
        .arg("run")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("c.yaml:4:17: input.http_server.rate_limit: not supported yet"),
        "{stderr}"
    );
}

#[test]
fn the_client_address_is_in_the_metadata() {
    let s = Sluice::start(
        "http:\n  address: 127.0.0.1:0\n\
         input:\n  http_server:\n    path: /ip\n\
         pipeline:\n  processors:\n    - mapping: 'root = @http_server_remote_ip'\n\
         output:\n  sync_response: {}\n",
    );
    let agent = ureq::AgentBuilder::new().build();
    for _ in 0..2 {
        let resp = agent.post(&s.url("/ip")).send_string("x").unwrap();
        assert_eq!(resp.into_string().unwrap(), "127.0.0.1");
    }
}
